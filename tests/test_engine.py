"""The token engine against the bit-exact golden model: a small random model is uploaded through
the engine's bus, then several token steps (state persisting, then a reset) must give the golden
argmax and every logit bit for bit."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.bitexact import BitExactModel, DeviceModel
from golden.formats import encode
from golden.image import COUNTERS, REGIONS, DeviceLayout
from hw.engine import INVALID_TOKEN, TokenEngine
from sim.cocotb_run import missing_simulator, run_bench
from sim.engine_bus import bus_read, bus_write, step
from sim.engine_model import TINY_LANES, tiny_engine_model


@pytest.mark.parametrize("lower_bound, small_banks", [(True, False), (False, False), (True, True)])
def test_token_steps_match_golden(lower_bound, small_banks, monkeypatch):
    if small_banks:
        # several banks of weights (256 words), embedding (128 words), pg and aux words (32), and
        # several columns of weights and embedding, the last one narrower, as on the boards
        monkeypatch.setattr("hw.engine.WEIGHT_BANK_BITS", 8)
        monkeypatch.setattr("hw.engine.EMBEDDING_BANK_BITS", 7)
        monkeypatch.setattr("hw.engine.PG_BANK_BITS", 5)
        monkeypatch.setattr("hw.engine.AUX_BANK_BITS", 5)
        monkeypatch.setattr("hw.engine.WEIGHT_COLUMN_BITS", 9)
        monkeypatch.setattr("hw.engine.EMBEDDING_COLUMN_BITS", 5)
    config, device = tiny_engine_model(lower_bound=lower_bound)
    layout = DeviceLayout(config, lanes=TINY_LANES)
    dut = TokenEngine(layout)
    golden = BitExactModel(device)
    tokens = [5, 17, 17, 0, 31, 9]
    reset_before = 4  # the state restarts here
    expected = []
    state = golden.init_state()
    for t, tok in enumerate(tokens):
        if t == reset_before:
            state = golden.init_state()
        logits, top, state = golden.step(tok, state)
        expected.append((top, encode(logits, "bf16").astype("<u2").tobytes()))

    got = []

    async def bench(ctx):
        for addr, chunk in layout.blocks(device, block_size=4096):
            await bus_write(ctx, dut, addr, chunk)
        # read back a few bytes of every region
        image = layout.image(device)
        for region, data in image.items():
            assert await bus_read(ctx, dut, REGIONS[region] + len(data) - 5, 5) == data[-5:], region
        for t, tok in enumerate(tokens):
            if t == reset_before:
                ctx.set(dut.reset, 1)
                await ctx.tick()
                ctx.set(dut.reset, 0)
            top, cycles = await step(ctx, dut, tok)
            got.append((top, await bus_read(ctx, dut, REGIONS["logits"], 2 * config.vocab_size), cycles))
        bad, _ = await step(ctx, dut, config.vocab_size)
        assert bad == INVALID_TOKEN
        counters = await bus_read(ctx, dut, REGIONS["counters"], 4 * len(COUNTERS))
        got.append(dict(zip(COUNTERS, np.frombuffer(counters, "<u4").tolist())))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    counters = got.pop()
    for t, ((top, logits), (g_top, g_logits, cycles)) in enumerate(zip(expected, got)):
        assert g_top == top, f"step {t}: argmax {g_top}, golden {top}"
        if g_logits != logits:
            a, b = np.frombuffer(g_logits, "<u2"), np.frombuffer(logits, "<u2")
            k = np.flatnonzero(a != b)
            pytest.fail(f"step {t}: logits differ at {k[:8].tolist()}: got {a[k[:8]]}, golden {b[k[:8]]}")
    assert counters["steps"] == len(tokens)
    assert counters["weight_words"] == len(tokens) * layout.weight_words
    # the other groups of four counters, from the model's shape: per layer, d channel updates and
    # I GLU pairs; rescaled rows: i, f, g and o (d each), gate and up (I each), down (d), the head
    d, L, inter, vocab = config.hidden_size, config.num_hidden_layers, config.intermediate_size, config.vocab_size
    assert counters["mlgru_elements"] == len(tokens) * L * d
    assert counters["glu_elements"] == len(tokens) * L * inter
    assert counters["post_rows"] == len(tokens) * (L * (5 * d + 2 * inter) + vocab)
    assert counters["lmul_ops"] >= 5 * counters["mlgru_elements"] + counters["glu_elements"] + counters["post_rows"]
    for name in ("quant_busy", "glu_busy", "mlgru_busy", "lanes_starved", "post_starved"):
        assert 0 < counters[name] < counters["busy_cycles"] < counters["cycles"], name
    print("cycles per step", [c for *_, c in got], counters)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_cocotb_engine_matches_golden(simulator):
    """The same engine (model preloaded) on Verilator and Icarus: argmax and logits of 3 steps."""
    if why := missing_simulator(simulator):
        pytest.fail(why)
    config, device = tiny_engine_model()
    layout = DeviceLayout(config, TINY_LANES)
    run_bench(TokenEngine(layout, layout.image(device)), "engine", "engine", simulator,
              env={"ENGINE_TOKENS": "5,17,3"})


def test_waiting_bus_request_goes_before_a_step():
    """``hw.port``'s ordering rule: offered a step and a bus request in the same cycle, the idle
    engine takes the request and holds the step until no request waits."""
    config, device = tiny_engine_model()
    layout = DeviceLayout(config, TINY_LANES)
    image = layout.image(device)
    dut = TokenEngine(layout, image)
    seen = {}

    async def bench(ctx):
        await ctx.tick().repeat(4)
        ctx.set(dut.step.valid, 1)
        ctx.set(dut.step.payload, 5)
        ctx.set(dut.bus.valid, 1)
        ctx.set(dut.bus.payload, {"addr": REGIONS["embedding"] + 3, "write": 0, "data": 0})
        ctx.set(dut.rdata.ready, 1)
        seen["offered"] = (ctx.get(dut.bus.ready), ctx.get(dut.step.ready))
        await ctx.tick()
        ctx.set(dut.bus.valid, 0)
        cycles = 0
        while not ctx.get(dut.rdata.valid):
            assert not ctx.get(dut.step.ready), f"step taken {cycles} cycles before the read's byte"
            await ctx.tick()
            cycles += 1
        seen["byte"] = ctx.get(dut.rdata.payload)
        await ctx.tick()
        for _ in range(8):  # the request served, the step goes in
            if ctx.get(dut.step.ready):
                break
            await ctx.tick()
        seen["step_ready"] = ctx.get(dut.step.ready)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["offered"] == (1, 0)
    assert seen["byte"] == image["embedding"][3]
    assert seen["step_ready"] == 1


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_bad_layouts():
    with pytest.raises(ValueError, match="DeviceLayout"):
        TokenEngine("layout")
    config, _ = tiny_engine_model()
    with pytest.raises(ValueError, match="not preloadable"):
        TokenEngine(DeviceLayout(config, TINY_LANES), {"logits": b""})
    with pytest.raises(ValueError, match="multiple of 5"):
        DeviceLayout(config, 12)
