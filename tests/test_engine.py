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
from sim.engine_bus import bus_read, bus_write, step
from synthetic import make_random_params, small_config


def tiny_model(lower_bound=True, seed=3):
    config = small_config(vocab_size=32, hidden_size=16, num_hidden_layers=2, intermediate_size=32,
                          use_lower_bound=lower_bound)
    return config, DeviceModel.from_params(config, make_random_params(config, seed))


@pytest.mark.parametrize("lower_bound", [True, False])
def test_token_steps_match_golden(lower_bound):
    config, device = tiny_model(lower_bound)
    layout = DeviceLayout(config, lanes=10)
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
    print("cycles per step", [c for *_, c in got], counters)
