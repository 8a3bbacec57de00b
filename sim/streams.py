"""Amaranth async testbench helpers for ``amaranth.lib.stream`` interfaces, with random stalls."""

from __future__ import annotations

import random


def feed(stream, payloads, busy: float = 0.0, seed: int = 0):
    """A testbench that sends ``payloads`` into ``stream``, idling with probability ``busy``."""

    async def testbench(ctx):
        rng = random.Random(seed)
        for payload in payloads:
            while rng.random() < busy:
                await ctx.tick()
            ctx.set(stream.valid, 1)
            ctx.set(stream.payload, payload)
            await ctx.tick().until(stream.ready)
            ctx.set(stream.valid, 0)

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
