"""Async Amaranth testbench steps for the token engine's port (``hw.port.engine_port``): byte
writes and reads on the bus, and token steps. Shared by the tests and the engine benchmark."""

from __future__ import annotations

__all__ = ["bus_write", "bus_read", "step"]


async def bus_write(ctx, dut, addr: int, data: bytes) -> None:
    """Write ``data`` at byte address ``addr`` onwards, one request per byte."""
    for k, byte in enumerate(data):
        ctx.set(dut.bus.valid, 1)
        ctx.set(dut.bus.payload, {"addr": addr + k, "write": 1, "data": byte})
        await ctx.tick().until(dut.bus.ready)
    ctx.set(dut.bus.valid, 0)


async def bus_read(ctx, dut, addr: int, count: int) -> bytes:
    """Read ``count`` bytes from byte address ``addr`` onwards."""
    out = bytearray()
    ctx.set(dut.rdata.ready, 1)
    for k in range(count):
        ctx.set(dut.bus.valid, 1)
        ctx.set(dut.bus.payload, {"addr": addr + k, "write": 0, "data": 0})
        await ctx.tick().until(dut.bus.ready)
        ctx.set(dut.bus.valid, 0)
        (value,) = await ctx.tick().sample(dut.rdata.payload).until(dut.rdata.valid)
        out.append(value)
    ctx.set(dut.rdata.ready, 0)
    return bytes(out)


async def step(ctx, dut, token: int) -> tuple[int, int]:
    """Run one token step; returns (argmax, cycles from the step's acceptance to ``done``)."""
    ctx.set(dut.step.valid, 1)
    ctx.set(dut.step.payload, token)
    await ctx.tick().until(dut.step.ready)
    ctx.set(dut.step.valid, 0)
    ctx.set(dut.done.ready, 1)
    cycles = 0
    while True:
        _, _, valid, value = await ctx.tick().sample(dut.done.valid, dut.done.payload)
        cycles += 1
        if valid:
            break
    ctx.set(dut.done.ready, 0)
    return value, cycles
