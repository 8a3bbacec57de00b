"""The UART at bit level in the Amaranth simulator: TX-to-RX loopback over random bytes for several
divisors, a line waveform written here from the 8N1 definition (so neither side is checked
against itself), +-2% baud mismatch, framing errors, a break and garbage on the line, and TX
back-pressure and line timing."""

import gc
import random
import warnings

import pytest
from amaranth.hdl import Module, UnusedElaboratable
from amaranth.sim import Simulator

from hw.uart import UARTRx, UARTTx


def waveform(data, period, stop_level=1, gap_bits=0.0, start=0.0):
    """(cycle, level) edges of 8N1 bytes sent with a bit period of ``period`` cycles (fractional
    periods model a baud-rate mismatch)."""
    edges, t = [], start
    for byte in data:
        bits = [0] + [(byte >> k) & 1 for k in range(8)] + [stop_level]
        for bit in bits:
            edges.append((round(t), bit))
            t += period
        edges.append((round(t), 1))  # idle after the stop bit (matters for a low stop bit)
        t += gap_bits * period
    return edges, round(t)


def run_rx(divisor, edges, end, ready_busy=0.0):
    """Play ``edges`` into a UARTRx; return (bytes received, framing errors, overruns)."""
    dut = UARTRx(divisor)
    got, errors, overruns = [], [0], [0]
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def line(ctx):
        now = 0
        for cycle, level in edges:
            if cycle > now:
                await ctx.tick().repeat(cycle - now)
                now = cycle
            ctx.set(dut.rx, level)

    async def sink(ctx):
        rng = random.Random(3)
        for _ in range(end + 4 * divisor):
            ready = rng.random() >= ready_busy
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload, ferr, ovr = await ctx.tick().sample(
                dut.o.valid, dut.o.payload, dut.framing_error, dut.overrun)
            if valid and ready:
                got.append(payload)
            errors[0] += ferr
            overruns[0] += ovr

    sim.add_testbench(line)
    sim.add_testbench(sink)
    sim.run()
    return got, errors[0], overruns[0]


@pytest.mark.parametrize("divisor", [4, 5, 7, 16])
def test_loopback_random_bytes(divisor):
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(60)] + [0x00, 0xFF, 0x55, 0xAA]
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    got, errors = [], [0]
    sim = Simulator(m)
    sim.add_clock(1e-8)

    async def source(ctx):
        for byte in data:
            while rng.random() < 0.2:
                await ctx.tick()
            ctx.set(tx.i.valid, 1)
            ctx.set(tx.i.payload, byte)
            await ctx.tick().until(tx.i.ready)
            ctx.set(tx.i.valid, 0)

    async def sink(ctx):
        ctx.set(rx.o.ready, 1)
        while len(got) < len(data):
            _, _, valid, payload, ferr = await ctx.tick().sample(rx.o.valid, rx.o.payload, rx.framing_error)
            if valid:
                got.append(payload)
            errors[0] += ferr

    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert got == data and errors == [0]


@pytest.mark.parametrize("mismatch", [-0.02, 0.0, 0.02])
def test_baud_mismatch_back_to_back(mismatch):
    divisor = 50
    rng = random.Random(11)
    data = [rng.randrange(256) for _ in range(24)]
    edges, end = waveform(data, divisor * (1 + mismatch), start=10)
    got, errors, _ = run_rx(divisor, edges, end)
    assert got == data and errors == 0


@pytest.mark.parametrize("divisor", [4, 9])
def test_waveform_at_small_divisors(divisor):
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(30)]
    edges, end = waveform(data, divisor, start=3)
    got, errors, _ = run_rx(divisor, edges, end)
    assert got == data and errors == 0


def test_framing_error_drops_the_byte():
    divisor = 8
    edges1, t = waveform([0x41], divisor, start=5)
    edges2, t = waveform([0x42], divisor, stop_level=0, start=t)
    edges3, end = waveform([0x43, 0x00], divisor, start=t + divisor)
    got, errors, _ = run_rx(divisor, edges1 + edges2 + edges3, end)
    assert got == [0x41, 0x43, 0x00] and errors == 1


def test_break_and_garbage_do_not_wedge():
    divisor = 8
    rng = random.Random(12)
    edges = [(5, 0), (5 + 40 * divisor, 1)]             # a break: 40 bit times low
    t = 5 + 41 * divisor
    for _ in range(300):                                  # garbage: random levels and glitches
        edges.append((t, rng.randrange(2)))
        t += rng.choice([1, 2, 3, divisor // 2, divisor, 3 * divisor])
    edges.append((t, 1))
    t += 12 * divisor                                     # idle longer than a byte: resync
    data = [rng.randrange(256) for _ in range(20)]
    tail, end = waveform(data, divisor, start=t)
    got, errors, _ = run_rx(divisor, edges + tail, end)
    assert errors >= 1
    assert got[-len(data):] == data


def test_glitch_is_not_a_start_bit():
    divisor = 16
    edges = [(5, 0), (8, 1)]                              # 3 cycles low: shorter than half a bit
    tail, end = waveform([0x5A], divisor, start=40)
    got, errors, _ = run_rx(divisor, edges + tail, end)
    assert got == [0x5A] and errors == 0


def test_overrun_keeps_the_waiting_byte():
    divisor = 4
    edges, end = waveform([1, 2, 3], divisor, start=2)
    dut = UARTRx(divisor)
    seen = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        now = 0
        for cycle, level in edges:
            if cycle > now:
                await ctx.tick().repeat(cycle - now)
            now = cycle
            ctx.set(dut.rx, level)
        await ctx.tick().repeat(3 * divisor)
        ovr = 0
        ctx.set(dut.o.ready, 1)
        for _ in range(3):
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                seen.append(payload)
        seen.append(ovr)

    async def watch(ctx):
        async for _, _, ovr in ctx.tick().sample(dut.overrun):
            if ovr:
                seen.append("overrun")

    sim.add_testbench(bench)
    sim.add_process(watch)
    sim.run()
    assert seen == ["overrun", "overrun", 1, 0]


@pytest.mark.parametrize("divisor", [4, 6])
def test_tx_line_timing_and_back_pressure(divisor):
    data = [0xA5, 0x00, 0xFF, 0x3C]
    dut = UARTTx(divisor)
    levels = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        k = 0
        for _ in range(len(data) * 10 * divisor + 5):
            ctx.set(dut.i.payload, data[min(k, len(data) - 1)])
            if k == len(data):
                ctx.set(dut.i.valid, 0)
            _, _, ready, valid, tx = await ctx.tick().sample(dut.i.ready, dut.i.valid, dut.tx)
            if ready and valid:
                k += 1
            levels.append(tx)

    sim.add_testbench(bench)
    sim.run()
    expected = []
    for byte in data:
        for bit in [0] + [(byte >> j) & 1 for j in range(8)] + [1]:
            expected += [bit] * divisor
    # The start bit leaves the cycle after the first byte is taken; bytes follow with no gap.
    start = levels.index(0)
    assert start <= 1
    assert levels[start:start + len(expected)] == expected
    assert all(levels[start + len(expected):])


@pytest.mark.parametrize("bad", [3, 0, -1, 4.0, True])
def test_rejects_bad_divisor(bad):
    with warnings.catch_warnings():
        # The half-built component is collected inside this block, so its warning is ignored.
        warnings.simplefilter("ignore", UnusedElaboratable)
        for cls in (UARTRx, UARTTx):
            with pytest.raises(ValueError, match="divisor"):
                cls(bad)
            gc.collect()
