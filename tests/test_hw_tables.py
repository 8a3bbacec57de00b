"""Reciprocal and reciprocal square root units: every bf16 input, bit for bit against the golden
functions (which tests/test_numerics.py checks against exact arithmetic), with back-pressure."""

import numpy as np
import pytest

from golden.formats import decode, encode
from golden.numerics import Numerics
from hw.tables import Reciprocal, ReciprocalSqrt
from sim.cocotb_run import missing_simulator, run_bench
from sim.streams import simulate_stream

UNITS = {"recip": Reciprocal, "rsqrt": ReciprocalSqrt}


@pytest.mark.parametrize("name", sorted(UNITS))
def test_amaranth_sim_every_input(name):
    x = np.arange(1 << 16)
    expected = encode(getattr(Numerics, name)(decode(x, "bf16")), "bf16")
    dut = UNITS[name]()
    got = simulate_stream(dut, x.tolist(), busy_in=0.05, busy_out=0.05, seed=3)
    bad = [(hex(a), hex(e), hex(g)) for a, e, g in zip(x, expected, got) if e != g]
    assert not bad, f"{name} (input, expected, got): {bad[:8]}"


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
@pytest.mark.parametrize("name", sorted(UNITS))
def test_cocotb_every_input(simulator, name):
    if why := missing_simulator(simulator):
        pytest.fail(why)
    run_bench(UNITS[name](), name, "tables", simulator, env={"TABLE_FN": name})
