"""Amaranth async testbench helpers for ``amaranth.lib.stream`` interfaces, with random stalls."""

from __future__ import annotations

import random


def feed(stream, payloads, busy: float = 0.0, seed: int = 0, late: bool = False):
    """A testbench that sends ``payloads`` into ``stream``, idling with probability ``busy``.

    With ``late``, each payload is driven in the cycle after its transfer (the stream of a
    ``hw.pipeline.CreditRing``), and every other cycle drives a decoy, another of the payloads,
    so that a receiver reading the payload in the wrong cycle gets a wrong one."""

    async def testbench(ctx):
        rng = random.Random(seed)
        owed = None  # late: the payload of the transfer in the cycle before

        def drive(payload):  # None: an idle cycle, whose payload is not read
            if late:
                payload = owed if owed is not None else rng.choice(payloads)
            if payload is not None:
                ctx.set(stream.payload, payload)

        for payload in payloads:
            while rng.random() < busy:
                drive(None)
                await ctx.tick()
                owed = None
            ctx.set(stream.valid, 1)
            while True:
                drive(payload)
                _, _, ready = await ctx.tick().sample(stream.ready)
                owed = None
                if ready:
                    break
            owed = payload
            ctx.set(stream.valid, 0)
        if late and owed is not None:
            drive(None)
            await ctx.tick()

    return testbench


def collect(stream, count: int, into: list, busy: float = 0.0, seed: int = 0):
    """A testbench that takes ``count`` payloads from ``stream`` into ``into``, stalling with
    probability ``busy`` each cycle."""

    async def testbench(ctx):
        rng = random.Random(seed)
        while len(into) < count:
            ready = rng.random() >= busy
            ctx.set(stream.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
            if ready and valid:
                into.append(int(payload) if not hasattr(payload, "as_value") else payload)
        ctx.set(stream.ready, 0)

    return testbench


def simulate_stream(dut, inputs, busy_in: float = 0.3, busy_out: float = 0.3, seed: int = 1,
                    count: int | None = None) -> list:
    """Run a one-in, one-out stream component (``i``, ``o``) in the Amaranth simulator: feed
    ``inputs`` with random idle cycles, take ``count`` (default ``len(inputs)``) outputs with random
    stalls, return them in order."""
    from amaranth.sim import Simulator

    results = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed(dut.i, inputs, busy=busy_in, seed=seed))
    sim.add_testbench(collect(dut.o, len(inputs) if count is None else count, results, busy=busy_out,
                              seed=seed + 1))
    sim.run()
    return results
