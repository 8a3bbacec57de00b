"""Measure a stream pipeline's latency and throughput in the Amaranth simulator."""

from __future__ import annotations

from amaranth.sim import Simulator


def measure_pipeline(dut, payloads) -> tuple[set, int]:
    """Stream ``payloads`` into ``dut.i`` back to back with ``dut.o`` always ready.

    Returns ``(latencies, cycles)``: the set of (output cycle - input cycle) over all items, and
    the cycles from the first input accepted to the last output taken. A fully pipelined unit of
    latency L gives ``({L}, len(payloads) + L - 1)``."""
    accepted, delivered = [], []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        sent = 0
        while len(delivered) < len(payloads):
            if sent < len(payloads):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, payloads[sent])
            else:
                ctx.set(dut.i.valid, 0)
            _, _, i_valid, i_ready, o_valid = await ctx.tick().sample(dut.i.valid, dut.i.ready, dut.o.valid)
            if i_valid and i_ready:
                accepted.append(cycle)
                sent += 1
            if o_valid:
                delivered.append(cycle)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    latencies = {out - inp for inp, out in zip(accepted, delivered)}
    return latencies, delivered[-1] - accepted[0]
