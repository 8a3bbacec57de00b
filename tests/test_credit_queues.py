"""The credit queues of hw.pipeline: a chain of fixed latency that never stalls feeds each queue,
admitting only while ``room``; the consumer stalls at random. Every element comes out once, in
order, none is lost when the chain delivers into a full queue, and with a ready consumer the
chain runs at one element per cycle with the documented latency. The ring's payload is read in
the cycle after each transfer, as its documentation says."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import data
from amaranth.sim import Simulator

from hw.pipeline import CreditQueue, CreditRing

CHAIN = 4  # the chain's latency, as the engine's banked reads


def queue_of(kind, shape, depth):
    return CreditQueue(shape, depth) if kind == "queue" else CreditRing(shape, depth, slices=3)


def run_chain(kind, depth, ready_prob, count=300, seed=1):
    """Elements 1..count admitted whenever there is room, through a CHAIN-cycle delay line into
    the queue; returns (elements out in order, admit cycles, output cycles, max outstanding)."""
    shape = data.ArrayLayout(8, 4)  # 32 bits: three slices of 11, 11 and 10 bits
    m = Module()
    m.submodules.q = q = queue_of(kind, shape, depth)
    line_valid = [Signal(name=f"lv{k}") for k in range(CHAIN)]
    line_data = [Signal(32, name=f"ld{k}") for k in range(CHAIN)]
    want, value = Signal(), Signal(32)
    admit = Signal()
    m.d.comb += [admit.eq(want & q.room), q.admit.eq(admit)]
    m.d.sync += [line_valid[0].eq(admit), line_data[0].eq(value)]
    m.d.sync += [b.eq(a) for a, b in zip(line_valid, line_valid[1:])]
    m.d.sync += [b.eq(a) for a, b in zip(line_data, line_data[1:])]
    m.d.comb += [q.i.valid.eq(line_valid[-1]), q.i.payload.as_value().eq(line_data[-1])]
    out, admitted_at, out_at = [], [], []
    peak = [0]
    rng = random.Random(seed)

    late = kind == "ring"

    async def bench(ctx):
        nxt, cycle = 1, 0
        taken_before = False
        while len(out) < count and cycle < 50 * count:
            ctx.set(want, nxt <= count)
            ctx.set(value, nxt * 0x01010101 ^ 0xA5C3)
            ready = rng.random() < ready_prob
            ctx.set(q.o.ready, ready)
            await ctx.delay(1e-9)
            assert ctx.get(q.i.ready) == 1  # the chain is never stalled
            if ctx.get(admit):
                admitted_at.append(cycle)
                nxt += 1
            if late:  # the ring's word of a transfer comes in the cycle after it
                if taken_before:
                    out.append(ctx.get(q.o.payload.as_value()))
                taken_before = ctx.get(q.o.valid) and ready
                if taken_before:
                    out_at.append(cycle)
            elif ctx.get(q.o.valid) and ready:
                out.append(ctx.get(q.o.payload.as_value()))
                out_at.append(cycle)
            peak[0] = max(peak[0], len(admitted_at) - len(out_at))
            await ctx.tick()
            cycle += 1

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out, admitted_at, out_at, peak[0]


@pytest.mark.parametrize("kind", ["queue", "ring"])
@pytest.mark.parametrize("ready_prob", [1.0, 0.5, 0.1])
def test_every_element_once_in_order(kind, ready_prob):
    depth = (CreditQueue if kind == "queue" else CreditRing).depth_for(CHAIN)
    out, _, _, peak = run_chain(kind, depth, ready_prob)
    assert out == [(k * 0x01010101 ^ 0xA5C3) & 0xFFFFFFFF for k in range(1, 301)]
    assert peak <= depth  # never more outstanding than credits


@pytest.mark.parametrize("kind", ["queue", "ring"])
def test_full_rate_and_latency(kind):
    cls = CreditQueue if kind == "queue" else CreditRing
    out, admitted_at, out_at, _ = run_chain(kind, cls.depth_for(CHAIN), 1.0)
    # one element per cycle from the first admit on, each CHAIN + LATENCY cycles after its admit
    assert admitted_at == list(range(len(out)))
    assert [o - a for a, o in zip(admitted_at, out_at)] == [CHAIN + cls.LATENCY] * len(out)
    # the least depth that does
    out, admitted_at, _, _ = run_chain(kind, cls.depth_for(CHAIN) - 1, 1.0)
    assert admitted_at != list(range(len(out)))


@pytest.mark.parametrize("kind", ["queue", "ring"])
def test_shallow_queue_only_slows(kind):
    out, admitted_at, _, peak = run_chain(kind, 2, 1.0, count=50)
    assert out == [(k * 0x01010101 ^ 0xA5C3) & 0xFFFFFFFF for k in range(1, 51)]
    assert peak <= 2 and admitted_at[-1] > 50  # slower than one per cycle, nothing lost


@pytest.mark.parametrize("args, message", [
    ((8, 1), "depth must be an integer >= 2"),
    ((8, 4, 0), "slices must be an integer from 1 to the word's 8 bits"),
    ((8, 4, 9), "slices must be an integer from 1 to the word's 8 bits"),
])
def test_ring_parameters(args, message):
    with pytest.raises(ValueError, match=message):
        CreditRing(*args)
