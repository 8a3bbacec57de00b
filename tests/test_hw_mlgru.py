"""The MLGRU state-update engine against golden.bitexact.recurrence, bit for bit, over several
tokens (the state persists in the engine's memory), every variant, with random back-pressure."""

import pytest

from hw.mlgru import MLGRUEngine
from sim.benches.mlgru import VARIANTS, expected_and_inputs
from sim.cocotb_run import missing_simulator, run_bench
from sim.streams import simulate_stream


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_amaranth_sim_matches_golden(variant):
    channels, tokens = 32, 4
    expected, inputs = expected_and_inputs(variant, channels, tokens, seed=1, reset_at=(3,))
    dut = MLGRUEngine(channels, **VARIANTS[variant])
    got = simulate_stream(dut, inputs, busy_in=0.2, busy_out=0.3, seed=2)
    bad = [(k // channels, k % channels, hex(e), hex(a)) for k, (e, a) in enumerate(zip(expected, got)) if e != a]
    assert not bad, f"{variant} (token, channel, expected, got): {bad[:6]}"


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_too_few_channels():
    with pytest.raises(ValueError, match="channels"):
        MLGRUEngine(4)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_cocotb_matches_golden(simulator):
    if why := missing_simulator(simulator):
        pytest.fail(why)
    run_bench(MLGRUEngine(64, output="code", lower_bound=True), "mlgru", "mlgru", simulator)
