"""hw.logic: comparisons with a constant, exhaustively against Python's ``>=``."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.logic import at_least


@pytest.mark.parametrize("width, bound", [(8, 24), (8, 255), (9, 255), (5, 0), (5, 1), (5, 31), (5, 32),
                                          (4, 7), (4, 8), (3, 5), (1, 1), (6, -3)])
def test_at_least_exhaustive(width, bound):
    value, result = Signal(width), Signal()
    m = Module()
    m.d.comb += result.eq(at_least(value, bound))
    wrong = []

    async def testbench(ctx):
        for x in range(1 << width):
            ctx.set(value, x)
            if ctx.get(result) != (x >= bound):
                wrong.append(x)

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    assert not wrong, f"at_least(value, {bound}) wrong for values {wrong[:8]}"
