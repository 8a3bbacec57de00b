"""Reciprocal and reciprocal square root units: every bf16 input, bit for bit against the golden
functions (which tests/test_numerics.py checks against exact arithmetic), with back-pressure."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.formats import decode, encode
from golden.numerics import Numerics
from hw.tables import Reciprocal, ReciprocalSqrt
from sim.cocotb_run import missing_simulator, run_bench
from sim.streams import collect, feed

UNITS = {"recip": Reciprocal, "rsqrt": ReciprocalSqrt}


@pytest.mark.parametrize("name", sorted(UNITS))
def test_amaranth_sim_every_input(name):
    x = np.arange(1 << 16)
    expected = encode(getattr(Numerics, name)(decode(x, "bf16")), "bf16")
    dut = UNITS[name]()
    got = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed(dut.i, x.tolist(), busy=0.05, seed=3))
    sim.add_testbench(collect(dut.o, len(x), got, busy=0.05, seed=4))
    sim.run()
    bad = [(hex(a), hex(e), hex(g)) for a, e, g in zip(x, expected, got) if e != g]
    assert not bad, f"{name} (input, expected, got): {bad[:8]}"


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
@pytest.mark.parametrize("name", sorted(UNITS))
def test_cocotb_every_input(simulator, name):
    if why := missing_simulator(simulator):
        pytest.fail(why)
    run_bench(UNITS[name](), name, "tables", simulator, env={"TABLE_FN": name})
