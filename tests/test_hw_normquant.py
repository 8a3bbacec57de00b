"""The RMSNorm + int8 quantiser block against golden.bitexact.norm_quant, bit for bit: random
vectors of every length class, with and without a pre norm, random back-pressure on every stream."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.normquant import NormQuant
from sim.benches.normquant import expected_and_inputs
from sim.cocotb_run import missing_simulator, run_bench
from sim.streams import collect, feed


def run(dut, vectors, eps, c, busy):
    inputs = [p for vec in vectors for p in vec]
    n_codes = len(inputs)
    codes, scales = [], []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def constants(ctx):
        ctx.set(dut.eps, eps)
        ctx.set(dut.c, c)

    sim.add_testbench(constants)
    sim.add_testbench(feed(dut.i, inputs, busy=busy, seed=1))
    sim.add_testbench(collect(dut.q, n_codes, codes, busy=busy, seed=2))
    sim.add_testbench(collect(dut.scale, len(vectors), scales, busy=busy, seed=3))
    sim.run()
    return [(int(q.code), int(q.last)) for q in codes], [int(s) for s in scales]


@pytest.mark.parametrize("with_pre", [True, False])
def test_amaranth_sim_matches_golden(with_pre):
    lengths = [1, 5, 32, 17]
    exp_codes, exp_scales, vectors, eps, c = expected_and_inputs(lengths, with_pre, seed=4)
    codes, scales = run(NormQuant(32, with_pre=with_pre), vectors, eps, c, busy=0.3)
    assert codes == exp_codes, [(k, e, g) for k, (e, g) in enumerate(zip(exp_codes, codes)) if e != g][:8]
    assert scales == exp_scales, (list(map(hex, exp_scales)), list(map(hex, scales)))


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_cocotb_matches_golden(simulator):
    if why := missing_simulator(simulator):
        pytest.fail(why)
    run_bench(NormQuant(192, with_pre=True), "normquant", "normquant", simulator)
