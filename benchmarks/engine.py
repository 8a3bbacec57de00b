"""Cycles per token of the token engine, with the per-unit counters that show the bottleneck.

    python -m benchmarks.engine [--model models/mmfree-ecp5] [--lanes 195] [--tokens 2] [--no-write]
                                [--timeline docs/img/schedule.svg]

Simulates ``hw.engine.TokenEngine`` in the Amaranth simulator with the model preloaded (no
upload), runs ``--tokens`` steps from the zero state on the bytes of a fixed prompt, checks each
argmax against the bit-exact golden model, and reads the engine's counters. Cycle counts are
exact and deterministic (no wall clock involved). Writes the section "## Token engine cycles
(issue 4)" of BENCHMARKS.md. ``--timeline`` also records what every unit does on every cycle of
the first token and draws it as an SVG (the schedule figure of docs/architecture.md).
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
from host.protocol import with_per_step
from sim.engine_bus import bus_read, step

from .markdown import replace_section

ROOT = Path(__file__).resolve().parent.parent
TITLE = "## Token engine cycles (issue 4)"
PROMPT = b"def "


TIMELINE_ROWS = ("lanes", "codes", "quantiser", "glu", "mlgru", "post", "resid")


def measure(model, lanes: int, tokens: int, progress=print, timeline: bool = False,
            engine: str = "token") -> dict:
    """Simulate ``tokens`` steps of the engine (``hw.top.ENGINES``: the token engine, or the
    compact one, which has no timeline) for ``model`` (a model folder or a ``BitExactModel``) with
    ``lanes`` lanes: the layout, each step's (token, argmax, cycles), the counters after the last
    step and (``timeline``) the first step's activity trace."""
    from amaranth.sim import Simulator

    from hw.top import ENGINES

    golden = model if isinstance(model, BitExactModel) else BitExactModel.from_pretrained(model)
    layout = DeviceLayout(golden.config, lanes)
    if timeline and engine != "token":
        raise ValueError("only the token engine records a timeline")
    dut = ENGINES[engine](layout, layout.image(golden.device))
    ids = list(PROMPT[:tokens]) + [0] * max(0, tokens - len(PROMPT))
    steps, counters, trace = [], {}, []

    async def traced_step(ctx, tok):
        """A step with every cycle's activity recorded (slower than ``step``)."""
        probes = [dut.activity[name] for name in TIMELINE_ROWS + ("op_codes",)]
        ctx.set(dut.step.valid, 1)
        ctx.set(dut.step.payload, tok)
        await ctx.tick().until(dut.step.ready)
        ctx.set(dut.step.valid, 0)
        ctx.set(dut.done.ready, 1)
        while True:
            _, _, valid, value, *row = await ctx.tick().sample(dut.done.valid, dut.done.payload, *probes)
            trace.append(row)
            if valid:
                break
        ctx.set(dut.done.ready, 0)
        return value, len(trace)

    async def bench(ctx):
        for k, tok in enumerate(ids):
            t0 = time.monotonic()
            top, cycles = await (traced_step(ctx, tok) if timeline and k == 0 else step(ctx, dut, tok))
            steps.append((tok, top, cycles))
            progress(f"token {tok}: argmax {top}, {cycles} cycles ({time.monotonic() - t0:.0f} s simulated)")
        raw = await bus_read(ctx, dut, REGIONS["counters"], 4 * len(COUNTERS))
        counted = dict(zip(COUNTERS, np.frombuffer(raw, "<u4").tolist()))
        # (the compact engine leaves a step's fixed work to its INFO, as the host reads it)
        per_step = dut.per_step(layout) if hasattr(dut, "per_step") else None
        counters.update(with_per_step(counted, per_step))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    state = golden.init_state()
    for tok, top, _ in steps:
        _, expect, state = golden.step(tok, state)
        if top != expect:
            raise SystemExit(f"token {tok}: the engine's argmax {top} differs from the golden model's {expect}")
    return {"layout": layout, "steps": steps, "counters": counters, "trace": trace}


def timeline_svg(layout, trace, width: int = 960) -> str:
    """The first token's schedule: one row per unit, shaded by the fraction of active cycles in
    each pixel column, the op boundaries (as the code router starts each op) marked on top."""
    cycles = len(trace)
    per_px = max(1, -(-cycles // width))
    left, row_h, top = 90, 22, 40
    height = top + row_h * len(TIMELINE_ROWS) + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 20}" height="{height}" '
           'font-family="Helvetica, Arial, sans-serif" font-size="11">',
           f'<text x="{left}" y="16" font-size="13" font-weight="bold">One token step of {layout.describe()["d"]}-wide, '
           f'{layout.config.num_hidden_layers}-layer model, {layout.lanes} lanes: {cycles:,} cycles '
           f'({per_px} cycles per pixel)</text>']
    for r, name in enumerate(TIMELINE_ROWS):
        y = top + r * row_h
        out.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{name}</text>')
        out.append(f'<rect x="{left}" y="{y + 2}" width="{width}" height="{row_h - 4}" fill="#f1f3f4"/>')
        for px in range(0, -(-cycles // per_px)):
            chunk = trace[px * per_px:(px + 1) * per_px]
            frac = sum(1 for c in chunk if c[r]) / len(chunk)
            if frac:
                out.append(f'<rect x="{left + px}" y="{y + 2}" width="1" height="{row_h - 4}" '
                           f'fill="#1a73e8" fill-opacity="{frac:.2f}"/>')
    previous = None
    bottom = top + row_h * len(TIMELINE_ROWS)
    for cycle, c in enumerate(trace):
        op = int(c[-1])
        if op != previous and op < len(layout.ops):
            x = left + cycle // per_px
            out.append(f'<line x1="{x}" y1="{top - 4}" x2="{x}" y2="{bottom}" stroke="#d93025" stroke-width="0.6"/>')
            out.append(f'<text x="{x + 2}" y="{top - 6 + (op % 2) * -10 + 10}" fill="#d93025" '
                       f'font-size="9">{layout.ops[op].name}</text>')
        previous = op
    out.append(f'<text x="{left}" y="{bottom + 18}">cycles 0 .. {cycles:,}; red: the code router starts an op '
               f'(its codes load into the matrix-vector unit). Made by python -m benchmarks.engine --timeline</text>')
    out.append("</svg>")
    return "\n".join(out)


def lane_waits(layout, trace) -> list[int]:
    """Per op, the cycles the lanes sat idle from the previous op's last word to this op's last
    word (the first op: from the step's start), in the first token's trace."""
    lanes = TIMELINE_ROWS.index("lanes")
    words = [op.rows * op.words_per_row for op in layout.ops]
    waits, op, done = [0] * len(words), 0, 0
    for row in trace:
        if op == len(words):
            break
        if row[lanes]:
            done += 1
            if done == words[op]:
                op, done = op + 1, 0
        else:
            waits[op] += 1
    return waits


def figures(result) -> dict:
    """The figures of a ``measure`` result that the benchmarks quote and the regression test
    compares: cycles of the last step, each counter per token, lane utilisation (weight words
    over the step's cycles) and the same counting only real weights (ternary weights / lanes)."""
    layout, steps, counters = result["layout"], result["steps"], result["counters"]
    cycles = steps[-1][2]
    per = {k: v / len(steps) for k, v in counters.items()}
    return {
        "cycles_per_token": cycles,
        "per_token": per,
        "lane_utilisation": per["weight_words"] / cycles,
        "weight_utilisation": layout.ternary_weights / layout.lanes / cycles,
    }


def render(result, command: str) -> str:
    layout, steps = result["layout"], result["steps"]
    n = len(steps)
    fig = figures(result)
    cycles, per = fig["cycles_per_token"], fig["per_token"]
    ideal = layout.ternary_weights / layout.lanes
    lines = [
        TITLE, "",
        f"Command: `{command}`", "",
        f"Model {layout.describe()}: {layout.ternary_weights:,} ternary weights per token, "
        f"{layout.weight_words:,} weight words of {layout.lanes} trits (rows padded to whole words).",
        f"Every argmax equal to the golden model's ({n} token{'s' if n != 1 else ''}). Cycle counts are exact (simulation).", "",
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
    lines += ["", f"Lane utilisation: {fig['lane_utilisation']:.0%} of the step's cycles "
              f"({fig['weight_utilisation']:.0%} counting only real weights).", ""]
    if result["trace"]:
        waits = lane_waits(layout, result["trace"])
        names = list(dict.fromkeys(op.name.split(".")[-1] for op in layout.ops if op.name != "head"))
        layers = sorted({op.layer for op in layout.ops if op.name != "head"})
        lines += ["Where the lanes wait, first token: idle lane cycles before each op's words are through "
                  "(from the previous op's last word; the first op from the step's start):", "",
                  "| layer | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for layer in layers:
            row = {op.name.split(".")[-1]: waits[k] for k, op in enumerate(layout.ops) if op.layer == layer
                   and op.name != "head"}
            lines.append(f"| {layer} | " + " | ".join(f"{row[n]:,}" if n in row else "" for n in names) + " |")
        head = [waits[k] for k, op in enumerate(layout.ops) if op.name == "head"]
        lines += ["", f"Head: {head[0]:,} cycles. Total idle: {sum(waits):,} of {len(result['trace']):,}.", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.engine", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/mmfree-ecp5")
    ap.add_argument("--lanes", type=int, default=195)
    ap.add_argument("--tokens", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--timeline", default=None, help="also draw the first token's schedule as an SVG here")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args(argv)
    command = "python -m benchmarks.engine " + shlex.join(
        ["--model", args.model, "--lanes", str(args.lanes), "--tokens", str(args.tokens)]
        + (["--timeline", args.timeline] if args.timeline else []))
    result = measure(args.model, args.lanes, args.tokens, progress=lambda s: print(s, file=sys.stderr),
                     timeline=args.timeline is not None)
    if args.timeline:
        Path(args.timeline).write_text(timeline_svg(result["layout"], result["trace"]))
    text = render(result, command)
    print(text)
    if not args.no_write:
        replace_section(args.out, TITLE, text)


if __name__ == "__main__":
    main()
