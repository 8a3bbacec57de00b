"""cocotb helpers for valid/ready streams as Amaranth names their ports (``i__valid`` ...)."""

from __future__ import annotations

import random

from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge


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
    while received < n:
        offer = sent < n and rng.random() >= busy_in
        if offer:
            i_payload.value = inputs[sent]
        i_valid.value = int(offer)
        o_ready.value = int(rng.random() >= busy_out)
        await ReadOnly()
        took_in = offer and int(i_ready.value)
        took_out = int(o_valid.value) and int(o_ready.value)
        value = int(o_payload.value) if took_out else None
        await RisingEdge(dut.clk)
        cycles += 1
        if took_in:
            sent += 1
        if took_out:
            on_output(received, value)
            received += 1
    i_valid.value = 0
    return cycles
