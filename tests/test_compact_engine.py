"""The compact engine (hw.compact.engine) against the bit-exact model: whole token steps in
simulation, the logits bank and the argmax after each step, across steps and a reset."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.bitexact import BitExactModel, DeviceModel
from golden.formats import decode
from golden.image import DeviceLayout
from hw.compact.arith import Function
from hw.compact.engine import COUNTED, LANES, CompactEngine
from hw.compact.program import LMUL_FUNCTIONS
from sim.engine_bus import bus_read, bus_write, step
from tests.synthetic import make_random_params, small_config


def _model(lower_bound=True, seed=3):
    config = small_config(vocab_size=32, hidden_size=16, num_hidden_layers=2, intermediate_size=32,
                          use_lower_bound=lower_bound)
    return config, DeviceModel.from_params(config, make_random_params(config, seed))


def run_steps(engine, tokens, resets=()):
    """Steps the engine through ``tokens`` (a reset strobe before the indices in ``resets``);
    returns [(logits bf16 patterns, argmax, cycles)]."""
    results = []
    logits_mem = None

    async def bench(ctx):
        nonlocal logits_mem
        logits_mem = engine.memories["logits"]
        for t, token in enumerate(tokens):
            if t in resets:
                ctx.set(engine.reset, 1)
                await ctx.tick()
                ctx.set(engine.reset, 0)
            ctx.set(engine.done.ready, 1)
            ctx.set(engine.step.valid, 1)
            ctx.set(engine.step.payload, int(token))
            await ctx.tick().until(engine.step.ready)
            ctx.set(engine.step.valid, 0)
            cycles = 0
            while not ctx.get(engine.done.valid):
                await ctx.tick()
                cycles += 1
                assert cycles < 200_000, "the step did not finish"
            argmax = ctx.get(engine.done.payload)
            await ctx.tick()
            vocab = engine.layout.config.vocab_size
            logits = [ctx.get(logits_mem.data[k]) for k in range(vocab)]
            results.append((np.array(logits), argmax, cycles))

    sim = Simulator(engine)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


@pytest.mark.parametrize("lower_bound", [True, False])
def test_steps_equal_the_bitexact_model(lower_bound):
    config, device = _model(lower_bound)
    layout = DeviceLayout(config, LANES)
    engine = CompactEngine(layout, layout.image(device))
    tokens, resets = [5, 17, 5, 30, 5], (3,)
    got = run_steps(engine, tokens, resets)
    model, state = BitExactModel(device), None
    for t, (token, (logits, argmax, cycles)) in enumerate(zip(tokens, got)):
        if t in resets or state is None:
            state = model.init_state()
        want_logits, want_argmax, state = model.step(token, state)
        np.testing.assert_array_equal(decode(logits, "bf16"), want_logits, err_msg=f"step {t}")
        assert argmax == want_argmax, f"argmax of step {t}"


def test_the_bus_uploads_the_image_and_reads_logits_counters_and_scratch():
    """No preload: the image goes in through the bus (and reads back); a step's logits and
    argmax equal the bit-exact model's; the counters count what the step did."""
    from golden.image import COUNTERS, REGIONS
    config, device = _model()
    layout = DeviceLayout(config, LANES)
    engine = CompactEngine(layout)
    image = layout.image(device)
    got = {}

    async def bench(ctx):
        for region, data in image.items():
            await bus_write(ctx, engine, REGIONS[region], data)
        await bus_write(ctx, engine, REGIONS["scratch"], b"hash!")
        got["pg"] = await bus_read(ctx, engine, REGIONS["pg"], 64)
        got["weights_tail"] = await bus_read(ctx, engine, REGIONS["weights"] + len(image["weights"]) - 8, 8)
        got["scratch"] = await bus_read(ctx, engine, REGIONS["scratch"], 5)
        got["argmax"], _ = await step(ctx, engine, 9)
        got["logits"] = await bus_read(ctx, engine, REGIONS["logits"], 2 * config.vocab_size)
        got["counters"] = await bus_read(ctx, engine, REGIONS["counters"], 4 * len(COUNTERS))

    lmul_fns = {Function[fn.upper()] for fn in LMUL_FUNCTIONS}
    seen = {"lmul_ops": 0, "quant_elements": 0, "post_rows": 0}

    async def watch(ctx):  # the pipeline's results, as the step makes them, by function
        async for _, _, valid, fn in ctx.tick().sample(engine.arith.o_valid, engine.arith.fn):
            if valid:
                fn = Function(fn)
                seen["lmul_ops"] += fn in lmul_fns
                seen["quant_elements"] += fn == Function.QUANT
                seen["post_rows"] += fn == Function.INT_MUL  # a MatVec's rows, and only they

    sim = Simulator(engine)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_process(watch)
    sim.run()

    assert got["pg"] == image["pg"][:64]
    assert got["weights_tail"] == image["weights"][-8:]
    assert got["scratch"] == b"hash!"
    want_logits, want_argmax, _ = BitExactModel(device).step(9, BitExactModel(device).init_state())
    logits = np.frombuffer(got["logits"], "<u2")
    np.testing.assert_array_equal(decode(logits, "bf16"), want_logits)
    assert got["argmax"] == want_argmax
    counters = dict(zip(COUNTERS, np.frombuffer(got["counters"], "<u4").tolist()))
    assert counters["steps"] == 1
    assert 0 < counters["busy_cycles"] < counters["cycles"]
    # the step's fixed work is not counted but reported (INFO's per_step), and it is what the
    # pipeline did in the step (and what the layout implies: every weight word read once, a
    # result per row, a code per column)
    assert all(counters[name] == 0 for name in COUNTERS if name not in COUNTED)
    assert seen["post_rows"] == sum(op.rows for op in layout.ops)
    assert seen["quant_elements"] == sum(op.cols for op in layout.ops)
    assert CompactEngine.per_step(layout) == {"weight_words": layout.weight_words, **seen}


def test_engine_refuses_what_it_cannot_run(monkeypatch):
    config, _ = _model()
    with pytest.raises(ValueError, match="10 lanes"):
        CompactEngine(DeviceLayout(config, 20))
    with pytest.raises(ValueError, match="DeviceLayout"):
        CompactEngine(config)
    big = small_config(vocab_size=256, hidden_size=256, num_hidden_layers=3, intermediate_size=384)
    with pytest.raises(ValueError, match="bytes"):
        CompactEngine(DeviceLayout(big, LANES))
    # int_pow2 normalises one element at a time: a program with a longer int_pow2 pass is refused
    import hw.compact.engine as engine
    from hw.compact.isa import Pass, Scalar, Vec
    monkeypatch.setattr(engine, "step_program", lambda layout: [Pass("int_pow2", 2, Vec("t"), Vec("u"), Scalar(1))])
    with pytest.raises(ValueError, match="int_pow2 runs on passes of one element"):
        CompactEngine(DeviceLayout(config, LANES))


def test_counters_of_fixed_work_are_steps_times_the_work_and_wrap_as_counters():
    """``host.protocol.with_per_step``, which the host and the benchmarks read counters through."""
    from host.protocol import with_per_step

    counted = {"cycles": 900, "steps": 3, "weight_words": 0, "lmul_ops": 0, "glu_elements": 0}
    assert with_per_step(counted, None) == counted
    got = with_per_step(counted, {"weight_words": 29_728, "lmul_ops": 10_711})
    assert got == {**counted, "weight_words": 89_184, "lmul_ops": 32_133}
    many = with_per_step({"steps": 200_000, "weight_words": 0}, {"weight_words": 29_728})
    assert many["weight_words"] == 200_000 * 29_728 - (1 << 32)  # 5.9e9 wraps once
    for bad in ([29_728], {"weight_words": "29728"}, {"weight_words": -1}):
        with pytest.raises(ValueError, match="malformed per_step"):
            with_per_step(counted, bad)
