"""The skid buffer passes every element in order under random stalls on both sides, at full rate
when nothing stalls, and its ready is a register."""

from amaranth.sim import Simulator

from hw.skid import SkidBuffer
from sim.streams import collect, feed


def run(busy_in, busy_out, n=500):
    dut = SkidBuffer(12)
    got = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed(dut.i, list(range(n)), busy=busy_in, seed=1))
    sim.add_testbench(collect(dut.o, n, got, busy=busy_out, seed=2))
    sim.run()
    return got


def test_every_element_in_order_under_stalls():
    assert run(0.4, 0.5) == list(range(500))


def test_full_rate_without_stalls():
    dut = SkidBuffer(8)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    cycles = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        received = 0
        for cycle in range(40):
            ctx.set(dut.i.payload, cycle)
            _, _, valid, ready = await ctx.tick().sample(dut.o.valid, dut.i.ready)
            assert ready  # never stalls the input when the output keeps up
            received += valid
        cycles.append(received)

    sim.add_testbench(bench)
    sim.run()
    assert cycles == [39]  # one cycle of latency, then one transfer per cycle
