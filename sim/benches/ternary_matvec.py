"""cocotb bench: the ternary matrix-vector unit against golden.numerics.Numerics.ternary_matvec
(exact integers), random shapes with random stalls on every stream, and its cycle count with none.

Environment: TMV_LANES, TMV_MAX_ROWS, TMV_MAX_COLS (the instance's parameters), TMV_LATENCY (its
documented latency), TMV_JOBS (random matrices after the edge cases), TMV_SEED, TMV_BUSY (stall
probability per stream and cycle, default 0.3).
"""

import os
import random

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from golden.numerics import Numerics
from hw.ternary_matvec import acc_width, command_layout, trit_word
from sim.benches.streams import start_clock


def params():
    return {k: int(os.environ[f"TMV_{k.upper()}"]) for k in ("lanes", "max_rows", "max_cols", "latency")}


def make_jobs(rng, lanes, max_rows, max_cols, count):
    """Edge cases (K = 1, N = 1, K = max_cols, K = P +- 1, the +-127 K extremes), then random shapes."""
    shapes = [(1, 1), (1, max_cols), (max_rows, max_cols), (2, min(lanes + 1, max_cols)), (3, max(lanes - 1, 1))]
    shapes += [(int(rng.integers(1, max_rows + 1)), int(rng.integers(1, max_cols + 1))) for _ in range(count)]
    jobs = []
    for n, k in shapes:
        q = rng.integers(-127, 128, k)
        w = rng.integers(-1, 2, (n, k))
        jobs.append((q, w))
    jobs.insert(3, (np.full(max_cols, -127), np.where(np.arange(2)[:, None] == 0, -1, 1) * np.ones((2, max_cols), int)))
    return jobs


def stimulus(jobs, lanes, max_rows, max_cols, rng):
    """Flat port values: commands, codes (8-bit two's complement), weight words (padding random)."""
    layout = command_layout(max_rows, max_cols)
    cmds = [layout.const({"rows": w.shape[0], "cols": w.shape[1]}).as_value().value for _, w in jobs]
    codes = [int(v) & 0xFF for q, _ in jobs for v in q]
    words = []
    for _, w in jobs:
        n, k = w.shape
        nw = -(-k // lanes)
        for r in range(n):
            row = np.concatenate([w[r], rng.integers(-1, 2, nw * lanes - k) if rng is not None else np.zeros(nw * lanes - k, int)])
            words += [trit_word(row[j * lanes:(j + 1) * lanes]) for j in range(nw)]
    return cmds, codes, words


async def drive(dut, port, items, busy, rng, log=None):
    """Offer ``items`` on stream ``port`` in order, idling with probability ``busy`` per cycle."""
    valid, payload, ready = (getattr(dut, f"{port}__{s}") for s in ("valid", "payload", "ready"))
    cycle = 0
    for item in items:
        while rng.random() < busy:
            valid.value = 0
            await RisingEdge(dut.clk)
            cycle += 1
        valid.value = 1
        payload.value = item
        while True:
            await ReadOnly()
            took = int(ready.value)
            await RisingEdge(dut.clk)
            cycle += 1
            if took:
                if log is not None:
                    log.append(cycle)
                break
    valid.value = 0


async def take(dut, count, width, busy, rng, on_output):
    """Accept ``count`` outputs from ``o`` (stalling with probability ``busy``); returns the cycles."""
    valid, payload, ready = dut.o__valid, dut.o__payload, dut.o__ready
    got = cycles = 0
    while got < count:
        r = rng.random() >= busy
        ready.value = int(r)
        await ReadOnly()
        if r and int(valid.value):
            value = int(payload.value)
            on_output(got, value - (1 << width) if value >> (width - 1) else value)
            got += 1
        await RisingEdge(dut.clk)
        cycles += 1
    ready.value = 0
    return cycles


def row_index(jobs):
    return [(j, r) for j, (_, w) in enumerate(jobs) for r in range(w.shape[0])]


@cocotb.test()
async def matvec_matches_golden(dut):
    p = params()
    seed = int(os.environ.get("TMV_SEED", "1"))
    busy = float(os.environ.get("TMV_BUSY", "0.3"))
    rng = np.random.default_rng(seed)
    jobs = make_jobs(rng, p["lanes"], p["max_rows"], p["max_cols"], int(os.environ.get("TMV_JOBS", "10")))
    cmds, codes, words = stimulus(jobs, p["lanes"], p["max_rows"], p["max_cols"], rng)
    expected = [int(v) for q, w in jobs for v in Numerics.ternary_matvec(q, w)]
    rows = row_index(jobs)
    width = acc_width(p["max_cols"])
    bad = []

    def check(index, value):
        if value != expected[index] and len(bad) < 10:
            j, r = rows[index]
            q, w = jobs[j]
            bad.append(f"job {j} ({w.shape[0]}x{w.shape[1]}) row {r}: q[:8]={q[:8].tolist()} (min {q.min()}, "
                       f"max {q.max()}), w row: {int((w[r] == 1).sum())} x +1, {int((w[r] == -1).sum())} x -1, "
                       f"w[:8]={w[r, :8].tolist()}: expected {expected[index]}, got {value}")

    await start_clock(dut)
    for k, port in enumerate(("cmd", "a", "w")):
        items = (cmds, codes, words)[k]
        cocotb.start_soon(drive(dut, port, items, busy, random.Random(seed * 10 + k)))
    cycles = await take(dut, len(expected), width, busy, random.Random(seed * 10 + 3), check)
    dut._log.info(f"P={p['lanes']}: {len(jobs)} matrices, {len(expected)} rows, {len(words)} weight words "
                  f"in {cycles} cycles with stalls")
    assert not bad, f"ternary matvec mismatches (first {len(bad)}):\n" + "\n".join(bad)


@cocotb.test()
async def matvec_cycles(dut):
    """No stalls: back-to-back matrices (each next load hidden) take K_0 + sum N ceil(K/P) + latency
    cycles from the first command's acceptance to the last accumulator."""
    p = params()
    lanes, max_rows, max_cols = p["lanes"], p["max_rows"], p["max_cols"]
    rng = np.random.default_rng(5)
    k = max_cols
    per_row = -(-k // lanes)
    n = min(max_rows, -(-(k + 2) // per_row))  # enough rows to hide the next vector's load
    shapes = [(n, k)] * 3 if n * per_row >= k + 2 else [(n, k)]
    jobs = [(rng.integers(-127, 128, kk), rng.integers(-1, 2, (nn, kk))) for nn, kk in shapes]
    cmds, codes, words = stimulus(jobs, lanes, max_rows, max_cols, None)
    expected = [int(v) for q, w in jobs for v in Numerics.ternary_matvec(q, w)]
    width = acc_width(max_cols)
    got = []
    cmd_log = []
    await start_clock(dut)
    cocotb.start_soon(drive(dut, "cmd", cmds, 0.0, random.Random(0), cmd_log))
    cocotb.start_soon(drive(dut, "a", codes, 0.0, random.Random(0)))
    cocotb.start_soon(drive(dut, "w", words, 0.0, random.Random(0)))
    cycles = await take(dut, len(expected), width, 0.0, random.Random(0), lambda i, v: got.append(v))
    assert got == expected, f"results differ without stalls: expected {expected[:8]}..., got {got[:8]}..."
    # cycles counts the cycle the first command is accepted through the one the last accumulator
    # is taken: the docstring's B + sum W + 2 + latency (C = 1 code per beat, so B = K), plus one
    predicted = k + len(words) + 2 + p["latency"] + 1
    dut._log.info(f"P={lanes}: {len(shapes)} x ({n}x{k}): {cycles} cycles; N*ceil(K/P) = {len(words)} words; "
                  f"predicted {predicted}")
    assert cmd_log[0] == 1 and cycles == predicted, f"{cycles} cycles, predicted {predicted} (cmd at {cmd_log})"
