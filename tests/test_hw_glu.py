"""The GLU stage against golden glu + norm_quant, bit for bit, with random back-pressure."""

import pytest

from hw.glu import GLUStage
from sim.benches.glu import expected_and_inputs
from sim.benches.normquant import code_beats, simulate_quantiser
from sim.cocotb_run import missing_simulator, run_bench


@pytest.mark.parametrize("width", [1, 5])
def test_amaranth_sim_matches_golden(width):
    exp_codes, exp_scales, inputs, eps, c = expected_and_inputs([40, 1, 17], seed=3)
    codes, scales = simulate_quantiser(GLUStage(40, width), inputs, exp_codes, len(exp_scales), eps, c, busy=0.3)
    assert codes == code_beats(exp_codes, width)
    assert scales == exp_scales


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_cocotb_matches_golden(simulator):
    if why := missing_simulator(simulator):
        pytest.fail(why)
    run_bench(GLUStage(512, codes_per_beat=5), "glu", "glu", simulator)
