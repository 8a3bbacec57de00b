"""cocotb helpers for valid/ready streams as Amaranth names their ports (``i__valid`` ...)."""

from __future__ import annotations

import random

from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

#: A bench that waits this many cycles for one transfer has found a hang, not a slow design.
STALL_LIMIT = 100_000


def high(signal) -> bool:
    """A 1-bit signal is 1 (an unresolved X or Z, as Icarus shows some combinational outputs
    before their first evaluation, counts as 0)."""
    value = signal.value
    return value.is_resolvable and int(value) == 1


async def start_clock(dut, period_ns: int = 10) -> None:
    Clock(dut.clk, period_ns, unit="ns").start()
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


async def drive_and_collect(dut, inputs, in_port: str, out_port: str, busy_in: float, busy_out: float,
                            seed: int, on_output) -> int:
    """Feed ``inputs`` (payload ints) into stream ``in_port`` with random idle cycles (probability
    ``busy_in``), accept from ``out_port`` with random stalls (``busy_out``), and call
    ``on_output(index, value)`` for every output in order. Returns the cycle count."""
    rng = random.Random(seed)
    i_valid, i_payload, i_ready = (getattr(dut, f"{in_port}__{s}") for s in ("valid", "payload", "ready"))
    o_valid, o_payload, o_ready = (getattr(dut, f"{out_port}__{s}") for s in ("valid", "payload", "ready"))
    sent = received = cycles = 0
    n = len(inputs)
    i_valid.value = 0
    o_ready.value = 0
    idle = 0
    while received < n:
        idle += 1
        if idle > STALL_LIMIT:
            raise AssertionError(f"no output for {STALL_LIMIT} cycles after {received} of {n} (sent {sent})")
        offer = sent < n and rng.random() >= busy_in
        if offer:
            i_payload.value = inputs[sent]
        i_valid.value = int(offer)
        o_ready.value = int(rng.random() >= busy_out)
        await ReadOnly()
        took_in = offer and high(i_ready)
        took_out = high(o_valid) and high(o_ready)
        value = int(o_payload.value) if took_out else None
        await RisingEdge(dut.clk)
        cycles += 1
        if took_in:
            sent += 1
        if took_out:
            on_output(received, value)
            received += 1
            idle = 0
    i_valid.value = 0
    return cycles


async def send(dut, port: str, items, busy: float, rng: random.Random) -> None:
    """Offer ``items`` on stream ``port`` one by one, idling with probability ``busy``."""
    valid, payload, ready = (getattr(dut, f"{port}__{s}") for s in ("valid", "payload", "ready"))
    for item in items:
        while rng.random() < busy:
            valid.value = 0
            await RisingEdge(dut.clk)
        valid.value = 1
        payload.value = item
        for _ in range(STALL_LIMIT):
            await ReadOnly()
            accepted = high(ready)
            await RisingEdge(dut.clk)
            if accepted:
                break
        else:
            raise AssertionError(f"{port}: input not accepted for {STALL_LIMIT} cycles")
    valid.value = 0


async def receive(dut, port: str, count: int, busy: float, rng: random.Random, into: list) -> None:
    """Take ``count`` payloads from stream ``port`` into ``into``, stalling with probability ``busy``."""
    valid, payload, ready = (getattr(dut, f"{port}__{s}") for s in ("valid", "payload", "ready"))
    idle = 0
    while len(into) < count:
        idle += 1
        if idle > STALL_LIMIT:
            raise AssertionError(f"{port}: no transfer for {STALL_LIMIT} cycles after {len(into)} of {count}")
        ready.value = int(rng.random() >= busy)
        await ReadOnly()
        if high(valid) and high(ready):
            into.append(int(payload.value))
            idle = 0
        await RisingEdge(dut.clk)
    ready.value = 0


async def check_stream(dut, inputs, expected, show, label: str, seed: int,
                       busy_in: float = 0.1, busy_out: float = 0.1) -> None:
    """The bench pattern of every one-in, one-out unit: reset, feed ``inputs`` into ``i`` with
    random idle cycles, take ``o`` with random stalls, compare each output with ``expected``.

    ``show(index, got)`` describes a mismatch (inputs, expected bits, actual bits); the first ten
    are reported, with the total count."""
    bad, count = [], 0

    def check(index, value):
        nonlocal count
        if value != expected[index]:
            count += 1
            if len(bad) < 10:
                bad.append(show(index, value))

    await start_clock(dut)
    cycles = await drive_and_collect(dut, inputs, "i", "o", busy_in=busy_in, busy_out=busy_out, seed=seed,
                                     on_output=check)
    dut._log.info(f"{label}: {len(inputs)} results in {cycles} cycles")
    assert not bad, f"{label}: {count} mismatches (first {len(bad)}):\n" + "\n".join(bad)
