"""The RMSNorm + int8 quantiser block against golden.bitexact.norm_quant, bit for bit: random
vectors of every length class, with and without a pre norm, random back-pressure on every stream."""

import pytest

from hw.normquant import NormQuant
from sim.benches.normquant import expected_and_inputs, simulate_quantiser
from sim.cocotb_run import missing_simulator, run_bench


@pytest.mark.parametrize("with_pre", [True, False])
def test_amaranth_sim_matches_golden(with_pre):
    lengths = [1, 5, 32, 17]
    exp_codes, exp_scales, vectors, eps, c = expected_and_inputs(lengths, with_pre, seed=4)
    inputs = [p for vec in vectors for p in vec]
    codes, scales = simulate_quantiser(NormQuant(32, with_pre=with_pre), inputs, len(inputs), len(vectors), eps, c,
                                       busy=0.3)
    assert codes == exp_codes, [(k, e, g) for k, (e, g) in enumerate(zip(exp_codes, codes)) if e != g][:8]
    assert scales == exp_scales, (list(map(hex, exp_scales)), list(map(hex, scales)))


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_cocotb_matches_golden(simulator):
    if why := missing_simulator(simulator):
        pytest.fail(why)
    run_bench(NormQuant(192, with_pre=True), "normquant", "normquant", simulator)
