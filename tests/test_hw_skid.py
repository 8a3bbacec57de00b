"""The skid buffer passes every element in order under random stalls on both sides, at full rate
when nothing stalls, and its ready is a register."""

import pytest
from amaranth.sim import Simulator

from amaranth.hdl import Module
from amaranth.lib import stream

from hw.skid import HalfRateRegister, SkidBuffer, registered
from sim.streams import collect, feed


def run(busy_in, busy_out, n=500, ring=False, enable_groups=1):
    dut = SkidBuffer(12, ring=ring, enable_groups=enable_groups)
    got = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed(dut.i, list(range(n)), busy=busy_in, seed=1))
    sim.add_testbench(collect(dut.o, n, got, busy=busy_out, seed=2))
    sim.run()
    return got


@pytest.mark.parametrize("ring, enable_groups", [(False, 1), (True, 1), (False, 3), (False, 12)])
@pytest.mark.parametrize("busy_in, busy_out", [(0.4, 0.5), (0.0, 0.7), (0.7, 0.0)])
def test_every_element_in_order_under_stalls(busy_in, busy_out, ring, enable_groups):
    # 12-bit payloads 0..499: with 3 or 12 enable groups every slice's bits change, so a slice
    # loaded at the wrong time shows as a wrong value
    assert run(busy_in, busy_out, ring=ring, enable_groups=enable_groups) == list(range(500))


@pytest.mark.parametrize("ring", [False, True])
def test_full_rate_without_stalls(ring):
    dut = SkidBuffer(8, ring=ring)
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


@pytest.mark.parametrize("ring", [False, True])
def test_holds_two_then_stops_the_input(ring):
    """With the output stalled, two elements go in, then ``i.ready`` falls (a register: it
    changes only on a clock edge) and both come out in order once the output moves."""
    dut = SkidBuffer(8, ring=ring)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    seen = []

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        taken = 0
        for cycle in range(6):
            ctx.set(dut.i.payload, 10 + taken)
            ready = ctx.get(dut.i.ready)
            await ctx.tick()
            taken += ready
        seen.append(taken)
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(4):
            valid, payload = ctx.get(dut.o.valid), ctx.get(dut.o.payload)
            if valid:
                seen.append(payload)
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    assert seen == [2, 10, 11]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_a_bad_ring_flag():
    with pytest.raises(ValueError, match="ring must be a bool"):
        SkidBuffer(8, ring=1)


@pytest.mark.parametrize("copies, copy_bits, lo, width, distinct, groups",
                         [(2, None, 0, 12, 100, 1), (3, slice(3, 9), 3, 6, 40, 1), (5, slice(3, 9), 3, 6, 40, 3)])
def test_payload_copies_follow_the_output(copies, copy_bits, lo, width, distinct, groups):
    """Each copy equals its bits of ``o.payload`` (all 12, or bits 3..8) whenever ``o.valid``,
    under random stalls on both sides; with the payload in slices, the copies shared out over
    the slices' flags too."""
    import random
    dut = SkidBuffer(12, copies=copies, copy_bits=copy_bits, enable_groups=groups)
    assert [len(c) for c in dut.payload_copies] == [width] * copies
    rng = random.Random(5)
    checked = []

    async def bench(ctx):
        sent = 0
        for _ in range(400):
            ctx.set(dut.i.valid, rng.random() < 0.6)
            ctx.set(dut.i.payload, sent * 37 % 4096)
            ctx.set(dut.o.ready, rng.random() < 0.5)
            if ctx.get(dut.o.valid):
                out = ctx.get(dut.o.payload)
                assert [ctx.get(c) for c in dut.payload_copies] == [(out >> lo) & ((1 << width) - 1)] * copies
                checked.append(out)
            sent += ctx.get(dut.i.valid) and ctx.get(dut.i.ready)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # many values of the copied bits went through
    assert len({(v >> lo) & ((1 << width) - 1) for v in checked}) > distinct


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("kwargs", [{"enable_groups": 0}, {"enable_groups": True}, {"enable_groups": 2, "ring": True},
                                    {"enable_groups": 9}])
def test_rejects_bad_enable_groups(kwargs):
    with pytest.raises(ValueError, match="enable_groups must be"):
        SkidBuffer(8, **kwargs)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("bits", [slice(5, 5), slice(0, 8, 2), (0, 4), slice(12, 14)])
def test_rejects_bad_copy_bits(bits):
    with pytest.raises(ValueError, match="copy_bits must be"):
        SkidBuffer(12, copies=1, copy_bits=bits)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_copies_on_a_ring():
    with pytest.raises(ValueError, match="copies must be"):
        SkidBuffer(8, ring=True, copies=1)
    with pytest.raises(ValueError, match="copies must be"):
        SkidBuffer(8, copies=-1)


@pytest.mark.parametrize("busy_in, busy_out", [(0.0, 0.0), (0.4, 0.5), (0.0, 0.7), (0.7, 0.0)])
def test_half_rate_register_in_order_under_stalls(busy_in, busy_out):
    dut = HalfRateRegister(12)
    got = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed(dut.i, list(range(300)), busy=busy_in, seed=3))
    sim.add_testbench(collect(dut.o, 300, got, busy=busy_out, seed=4))
    sim.run()
    assert got == list(range(300))


def test_half_rate_register_takes_one_every_two_cycles_and_its_ready_is_a_register():
    """With the output always ready, one element goes through every two cycles; ``i.ready`` is
    low exactly while the entry is full, whatever ``o.ready`` does in that cycle."""
    dut = HalfRateRegister(8)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        taken = received = 0
        for cycle in range(40):
            ctx.set(dut.i.payload, cycle)
            ctx.set(dut.o.ready, 0)
            ready_stalled = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, 1)
            assert ctx.get(dut.i.ready) == ready_stalled == (not ctx.get(dut.o.valid))
            _, _, ready, valid = await ctx.tick().sample(dut.i.ready, dut.o.valid)
            taken += ready
            received += valid
        seen["taken"], seen["received"] = taken, received

    sim.add_testbench(bench)
    sim.run()
    assert seen == {"taken": 20, "received": 20}


def test_registered_picks_the_slice_and_rejects_a_half_rate_ring():
    m = Module()
    for name, kwargs, kind in (("a", {}, SkidBuffer), ("b", {"ring": True}, SkidBuffer),
                               ("c", {"half_rate": True}, HalfRateRegister)):
        registered(m, name, stream.Signature(8).create(), **kwargs)
        assert type(m.submodules[name]) is kind
    assert m.submodules["b"].ring and not m.submodules["a"].ring
    with pytest.raises(ValueError, match="half-rate register has no ring"):
        registered(m, "d", stream.Signature(8).create(), ring=True, half_rate=True)
