"""Cycles per token of the token engine, with the per-unit counters that show the bottleneck.

    python -m benchmarks.engine [--model models/mmfree-ecp5] [--lanes 195] [--tokens 2] [--no-write]

Simulates ``hw.engine.TokenEngine`` in the Amaranth simulator with the model preloaded (no
upload), runs ``--tokens`` steps from the zero state on the bytes of a fixed prompt, checks each
argmax against the bit-exact golden model, and reads the engine's counters. Cycle counts are
exact and deterministic (no wall clock involved). Writes the section "## Token engine cycles
(issue 4)" of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from golden.bitexact import BitExactModel
from golden.image import COUNTERS, REGIONS, DeviceLayout
from hw.engine import TokenEngine
from sim.engine_bus import bus_read, step

from .markdown import replace_section

ROOT = Path(__file__).resolve().parent.parent
TITLE = "## Token engine cycles (issue 4)"
PROMPT = b"def "


def measure(model_dir, lanes: int, tokens: int, progress=print) -> dict:
    from amaranth.sim import Simulator

    golden = BitExactModel.from_pretrained(model_dir)
    layout = DeviceLayout(golden.config, lanes)
    dut = TokenEngine(layout, layout.image(golden.device))
    ids = list(PROMPT[:tokens]) + [0] * max(0, tokens - len(PROMPT))
    steps, counters = [], {}

    async def bench(ctx):
        for tok in ids:
            t0 = time.monotonic()
            top, cycles = await step(ctx, dut, tok)
            steps.append((tok, top, cycles))
            progress(f"token {tok}: argmax {top}, {cycles} cycles ({time.monotonic() - t0:.0f} s simulated)")
        raw = await bus_read(ctx, dut, REGIONS["counters"], 4 * len(COUNTERS))
        counters.update(zip(COUNTERS, np.frombuffer(raw, "<u4").tolist()))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    state = golden.init_state()
    for tok, top, _ in steps:
        _, expect, state = golden.step(tok, state)
        if top != expect:
            raise SystemExit(f"token {tok}: the engine's argmax {top} differs from the golden model's {expect}")
    return {"layout": layout, "steps": steps, "counters": counters}


def render(result, command: str) -> str:
    layout, steps, counters = result["layout"], result["steps"], result["counters"]
    n = len(steps)
    cycles = steps[-1][2]
    ideal = layout.ternary_weights / layout.lanes
    per = {k: v / n for k, v in counters.items()}
    lines = [
        TITLE, "",
        f"Command: `{command}`", "",
        f"Model {layout.describe()}: {layout.ternary_weights:,} ternary weights per token, "
        f"{layout.weight_words:,} weight words of {layout.lanes} trits (rows padded to whole words).",
        f"Every argmax equal to the golden model's ({n} tokens). Cycle counts are exact (simulation).", "",
        "| figure | cycles per token | x ideal |",
        "|---|---|---|",
        f"| ideal: ternary weights / lanes | {ideal:,.0f} | 1.00 |",
        f"| weight words (lanes busy) | {per['weight_words']:,.0f} | {per['weight_words'] / ideal:.2f} |",
        f"| **token step** | **{cycles:,}** | **{cycles / ideal:.2f}** |",
        f"| issue 4 target (1.3 x ideal) | {1.3 * ideal:,.0f} | 1.30 |", "",
        "Per-unit counters, per token (`golden.image.COUNTERS`):", "",
        "| counter | per token | share of the step |",
        "|---|---|---|",
    ]
    for name in COUNTERS:
        if name in ("cycles", "steps"):
            continue
        value = per[name]
        share = f"{value / cycles:.0%}" if name.endswith(("busy", "starved", "words", "cycles")) else ""
        lines.append(f"| {name} | {value:,.0f} | {share} |")
    lines += ["", f"Lane utilisation: {per['weight_words'] / cycles:.0%} of the step's cycles "
              f"({ideal / cycles:.0%} counting only real weights).", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.engine", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/mmfree-ecp5")
    ap.add_argument("--lanes", type=int, default=195)
    ap.add_argument("--tokens", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args(argv)
    command = "python -m benchmarks.engine " + shlex.join(
        ["--model", args.model, "--lanes", str(args.lanes), "--tokens", str(args.tokens)])
    result = measure(args.model, args.lanes, args.tokens, progress=lambda s: print(s, file=sys.stderr))
    text = render(result, command)
    print(text)
    if not args.no_write:
        replace_section(args.out, TITLE, text)


if __name__ == "__main__":
    main()
