"""The RMSNorm + int8 quantiser block against golden.bitexact.norm_quant, bit for bit: random
vectors of every length class, with and without a pre norm, random back-pressure on every stream."""

import random

import pytest

from hw.normquant import NormQuant
from sim.benches.normquant import code_beats, expected_and_inputs, simulate_quantiser
from sim.cocotb_run import missing_simulator, run_bench


@pytest.mark.parametrize("with_pre,width", [(True, 1), (False, 1), (True, 5), (False, 3)])
def test_amaranth_sim_matches_golden(with_pre, width):
    # lengths around the beat width: shorter than a beat, whole beats, a partial last beat
    lengths = [1, 5, 32, 17, 4, 6]
    exp_codes, exp_scales, vectors, eps, c = expected_and_inputs(lengths, with_pre, seed=4)
    inputs = [p for vec in vectors for p in vec]
    dut = NormQuant(32, with_pre=with_pre, codes_per_beat=width)
    codes, scales = simulate_quantiser(dut, inputs, exp_codes, len(vectors), eps, c, busy=0.3)
    exp_beats = code_beats(exp_codes, width)
    assert codes == exp_beats, [(k, e, g) for k, (e, g) in enumerate(zip(exp_beats, codes)) if e != g][:8]
    assert scales == exp_scales, (list(map(hex, exp_scales)), list(map(hex, scales)))


def test_codes_held_back_while_next_vectors_load():
    # q mostly stalled: the next vectors load (and the scales come out) while earlier codes wait
    lengths = [12, 1, 3, 9, 2]
    exp_codes, exp_scales, vectors, eps, c = expected_and_inputs(lengths, True, seed=7)
    inputs = [p for vec in vectors for p in vec]
    codes, scales = simulate_quantiser(NormQuant(12, codes_per_beat=4), inputs, exp_codes, len(vectors), eps, c, busy=0.9)
    assert codes == code_beats(exp_codes, 4)
    assert scales == exp_scales


@pytest.mark.parametrize("in_busy, out_busy", [(0.0, 0.0), (0.0, 0.5), (0.3, 0.3)])
def test_each_vector_keeps_its_own_c_and_eps(in_busy, out_busy):
    """Each vector with its own eps and c, presented with its elements: the next vector loads
    while the last one's are still needed (entering early after long vectors, short ones
    closing before the vector ahead is handed over), and each scale and code uses its own
    vector's."""
    from amaranth.sim import Simulator

    from sim.streams import collect

    lengths = [40, 40, 2, 40, 1, 1, 40, 7, 40]
    exp_codes, exp_scales, vectors, eps, c = expected_and_inputs(lengths, True, seed=9, per_vector_constants=True)
    assert all(a != b for values in (c, eps) for a, b in zip(values, values[1:]))  # neighbours differ
    dut = NormQuant(40, codes_per_beat=5)
    codes, scales = [], []

    async def feed(ctx):
        rng = random.Random(3)
        for vec, e, cc in zip(vectors, eps, c):
            for p in vec:
                while rng.random() < in_busy:
                    await ctx.tick()
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, p)
                ctx.set(dut.eps, e)
                ctx.set(dut.c, cc)
                while not (await ctx.tick().sample(dut.i.ready))[2]:
                    pass
                ctx.set(dut.i.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(collect(dut.q, len(code_beats(exp_codes, 5)), codes, busy=out_busy, seed=4))
    sim.add_testbench(collect(dut.scale, len(lengths), scales, busy=out_busy, seed=5))
    sim.run()
    assert [int(s) for s in scales] == exp_scales
    assert [(tuple(int(v) for v in q.codes), int(q.last)) for q in codes] == code_beats(exp_codes, 5)


def test_schedule_without_stalls():
    """The docstring's timing: first beat after the last element, scale after the last beat, the
    gap between vectors, beats back to back."""
    from amaranth.sim import Simulator

    k, per_beat = 40, 5
    dut = NormQuant(k, codes_per_beat=per_beat)
    _, _, vectors, eps, c = expected_and_inputs([k] * 3, True, seed=2)
    inputs = [p for vec in vectors for p in vec]
    taken, beats, scales = [], [], []

    async def bench(ctx):
        ctx.set(dut.eps, eps)
        ctx.set(dut.c, c)
        ctx.set(dut.q.ready, 1)
        ctx.set(dut.scale.ready, 1)
        cycle = 0
        while len(scales) < len(vectors):
            ctx.set(dut.i.valid, len(taken) < len(inputs))
            if len(taken) < len(inputs):
                ctx.set(dut.i.payload, inputs[len(taken)])
            _, _, i_fire, q_valid, q_last, s_valid = await ctx.tick().sample(
                dut.i.valid & dut.i.ready, dut.q.valid, dut.q.payload.last, dut.scale.valid)
            if i_fire:
                taken.append(cycle)
            if q_valid:
                beats.append((cycle, q_last))
            if s_valid:
                scales.append(cycle)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    n_beats = -(-k // per_beat)
    for v in range(len(vectors)):
        last_in = taken[(v + 1) * k - 1]
        mine = beats[v * n_beats:(v + 1) * n_beats]
        assert mine[0][0] - last_in == NormQuant.FIRST_BEAT_LATENCY
        assert [cyc for cyc, _ in mine] == list(range(mine[0][0], mine[0][0] + n_beats))  # back to back
        assert scales[v] - mine[-1][0] == NormQuant.SCALE_LATENCY
        if v:
            assert taken[v * k] - taken[v * k - 1] == NormQuant.LOAD_GAP + 1
    assert all(b - a == 1 for v in range(len(vectors)) for a, b in zip(taken[v * k:(v + 1) * k - 1], taken[v * k + 1:(v + 1) * k]))


def test_code_beats_pads_each_vector():
    # two vectors of 3 and 2 codes, 2 per beat
    assert code_beats([(1, 0), (2, 0), (3, 1), (4, 0), (5, 1)], 2) == [((1, 2), 0), ((3, 0), 1), ((4, 5), 1)]


@pytest.mark.parametrize("width", [0, -1, 2.0, True])
def test_rejects_bad_width(width):
    with pytest.raises(ValueError, match="codes_per_beat"):
        NormQuant(32, codes_per_beat=width)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_cocotb_matches_golden(simulator):
    if why := missing_simulator(simulator):
        pytest.fail(why)
    # the engine's configuration: 5 codes per beat (the ECP5 model's K = 192 ends in a partial beat)
    run_bench(NormQuant(192, with_pre=True, codes_per_beat=5), "normquant", "normquant", simulator)
