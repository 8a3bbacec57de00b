"""Scaling: cycles per token against lane count and model size, beside the bounds that limit them.

    python -m benchmarks.scaling [--lanes 40 80 120 195 260] [--sizes 64x2 128x2 256x2 192x1 192x6]
                                 [--synth-lanes 40 80 120 195 260 | --no-synth] [--no-write]

Measured: each point is one token of ``hw.engine.TokenEngine`` in the Amaranth simulator
(``benchmarks.engine.measure``: exact cycles, argmax checked against the golden model), for the
shipped ECP5 model at each lane count, and for random models of each size ``DxL`` (d = D,
L = layers, intermediate by the MMfreeLM formula, vocabulary 256; ``tests.synthetic``) at the
ECP5 board's lane count. Beside each point, three lower bounds on the cycles of a token step:

* lanes: the weight words of the layout (``DeviceLayout.weight_words``): the lanes take one word
  of P trits per cycle, so a step cannot be shorter (analytic, exact);
* element-wise: the busiest element-wise unit's busy cycles (``quant_busy``, ``glu_busy``,
  ``mlgru_busy`` counters of the same simulation): each unit takes its vectors one at a time;
* memory: every weight read once per token through the block RAMs' read ports, 1.6 bits per
  weight (5 trits per byte), at most ``EBR_COUNT`` x ``EBR_PORT_BITS`` bits per cycle (ECP5-85F:
  208 DP16KD, 36 bits wide read port each; /work/shared/reference/anchors.md). Past
  ``EBR_COUNT * EBR_PORT_BITS / 1.6`` lanes no layout can feed the lanes.

The chart (``docs/img/scaling.png``) draws the lanes bound for every P, the element-wise bound
extended flat past the measured points (an assumption: the element-wise work does not depend on
P), the memory ceiling, and shades where each binds. With ``--synth-lanes``, the ternary unit alone
(``hw.ternary_matvec.TernaryMatVec`` for the model's shapes) goes through Yosys ``synth_ecp5`` at
each lane count; the whole device's LUTs at another lane count are then an ESTIMATE: the recorded
whole-device build plus the unit's difference. Writes "## Scaling (issue 6)" of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from golden.image import DeviceLayout

from . import record
from .boards import MODELS
from .markdown import replace_section

ROOT = Path(__file__).resolve().parent.parent
TITLE = "## Scaling (issue 6)"
BOARD = "ulx3s-85f"
MODEL = MODELS[BOARD]
EBR_COUNT, EBR_PORT_BITS = 208, 36   # ECP5-85F: DP16KD blocks, widest read port (x36)
BITS_PER_TRIT = 8 / 5                # packed 5 trits per byte
CHART = ROOT / "docs" / "img" / "scaling.png"
DEFAULT_LANES = (40, 80, 120, 195, 260)
DEFAULT_SIZES = ("64x2", "128x2", "256x2", "192x1", "192x6")
ELEMENTWISE = ("quant_busy", "glu_busy", "mlgru_busy")


def memory_cycles(ternary_weights: int) -> float:
    """Cycles to read every weight once through all the EBR read ports."""
    return ternary_weights * BITS_PER_TRIT / (EBR_COUNT * EBR_PORT_BITS)


MAX_FED_LANES = EBR_COUNT * EBR_PORT_BITS / BITS_PER_TRIT


def bounds(layout: DeviceLayout, per_token: dict) -> dict:
    """The three lower bounds for a layout and its measured counters per token."""
    unit = max(ELEMENTWISE, key=lambda k: per_token[k])
    return {"lanes": layout.weight_words, "elementwise": per_token[unit], "elementwise_unit": unit,
            "memory": memory_cycles(layout.ternary_weights)}


def binding(b: dict) -> str:
    return max(("lanes", "elementwise", "memory"), key=lambda k: b[k])


def random_model(spec: str, seed: int = 0):
    """A random ``BitExactModel`` of size ``DxL`` (tests.synthetic)."""
    from golden.bitexact import BitExactModel
    from tests.synthetic import make_random_params, small_config

    d, layers = (int(x) for x in spec.split("x"))
    config = small_config(vocab_size=256, hidden_size=d, num_hidden_layers=layers)
    return BitExactModel.from_params(config, make_random_params(config, seed))


def point(model, lanes: int, label: str, log) -> dict:
    from .engine import measure

    return as_point(measure(model, lanes, 1, progress=lambda s: log(f"[{label}, P={lanes}] {s}")), label)


def as_point(result, label: str) -> dict:
    """A scaling point from a ``benchmarks.engine.measure`` result."""
    from .engine import figures

    fig = figures(result)
    layout = result["layout"]
    return {"label": label, "lanes": layout.lanes, "layout": layout.describe(),
            "ternary_weights": layout.ternary_weights, **fig, "bounds": bounds(layout, fig["per_token"])}


def synth_lanes(lanes_list, log) -> dict:
    """LUT4 (CCU2C as two), FF, EBR of the ternary unit alone for the ECP5 model's shapes."""
    from golden.config import ModelConfig
    from hw.ternary_matvec import TernaryMatVec

    from .synth import synth_resources

    layout = DeviceLayout(ModelConfig.load(ROOT / MODEL), 5)
    rows, cols = max(op.rows for op in layout.ops), max(op.cols for op in layout.ops)
    out = {}
    for p in lanes_list:
        with tempfile.TemporaryDirectory() as tmp:
            res = synth_resources(f"tmv_p{p}", lambda: TernaryMatVec(p, rows, cols), "ecp5", tmp, progress=log)
        out[p] = {"lut": res.lut_with_carry, "ff": res.ff, "ebr": res.ebr, "yosys_s": res.yosys_s,
                  "rows": rows, "cols": cols}
    return out


def chart(lanes_points, size_points, fmax_mhz, path=CHART):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from golden.config import ModelConfig

    config = ModelConfig.load(ROOT / MODEL)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [3, 2]})
    ps = np.unique(np.round(np.geomspace(5, 20000, 240) / 5).astype(int) * 5)
    lanes_bound = np.array([DeviceLayout(config, int(p)).weight_words for p in ps], float)
    lanes_points = sorted(lanes_points, key=lambda r: r["lanes"])
    mp = np.array([r["lanes"] for r in lanes_points])
    elem = np.array([r["bounds"]["elementwise"] for r in lanes_points])
    mem = lanes_points[0]["bounds"]["memory"]
    # element-wise bound: a unit's busy counter includes cycles it holds a vector while the lanes
    # drain it, so it grows as P shrinks; the busy cycles at the most lanes measured are the closest
    # to the units' own time, drawn flat across P
    elem_flat = np.full(ps.shape, elem[-1], float)
    floor = np.maximum(np.maximum(lanes_bound, elem_flat), mem)
    cross = ps[np.argmax(elem_flat >= lanes_bound)]
    ax.axvspan(ps[0], cross, color="#1a73e8", alpha=0.07, lw=0)
    ax.axvspan(cross, MAX_FED_LANES, color="#e8710a", alpha=0.07, lw=0)
    ax.axvspan(MAX_FED_LANES, ps[-1], color="#5f6368", alpha=0.10, lw=0)
    ax.loglog(ps, lanes_bound, color="#1a73e8", label="lanes bound: weight words (analytic)")
    ax.loglog(ps, elem_flat, color="#e8710a", ls="--",
              label=f"element-wise bound: busiest unit's busy cycles at P = {mp[-1]} (measured), flat")
    ax.loglog(mp, elem, "^", color="#e8710a", ms=5, label="busiest unit's busy cycles at each P (includes waiting)")
    ax.axhline(mem, color="#5f6368", ls=":", label=f"memory ceiling: all weights through {EBR_COUNT} EBR x {EBR_PORT_BITS} bits")
    ax.axvline(MAX_FED_LANES, color="#5f6368", ls=":")
    ax.loglog(ps, floor, color="black", lw=0.8, alpha=0.5, label="max of the bounds")
    ax.loglog(mp, [r["cycles_per_token"] for r in lanes_points], "o-", color="#d93025",
              label="measured token step (Amaranth simulation)")
    top = max(lanes_bound.max(), max(r["cycles_per_token"] for r in lanes_points)) * 1.6
    ax.set_ylim(mem / 2, top)
    ax.set_xlim(ps[0], ps[-1])
    for x0, x1, name in ((ps[0], cross, "lanes bound"), (cross, MAX_FED_LANES, "element-wise bound"),
                         (MAX_FED_LANES, ps[-1], "EBR ports\ncannot feed")):
        ax.text((x0 * x1) ** 0.5, top / 1.1, name, ha="center", va="top", fontsize=9)
    ax.set_xlabel("ternary lanes P")
    ax.set_ylabel("cycles per token")
    ax.set_title(f"{MODEL}: d={config.hidden_size}, L={config.num_hidden_layers}, "
                 f"{DeviceLayout(config, 5).ternary_weights:,} ternary weights")
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=8, loc="lower left")
    if fmax_mhz:
        sec = ax.secondary_yaxis("right", functions=(lambda c: fmax_mhz * 1e6 / np.maximum(c, 1e-9),
                                                     lambda t: fmax_mhz * 1e6 / np.maximum(t, 1e-9)))
        sec.set_ylabel(f"tokens/s at {fmax_mhz:g} MHz")
    if size_points:
        pts = sorted(size_points, key=lambda r: r["ternary_weights"])
        w = [r["ternary_weights"] for r in pts]
        bx.loglog(w, [r["bounds"]["lanes"] for r in pts], "s-", color="#1a73e8", label="lanes bound (weight words)")
        bx.loglog(w, [r["bounds"]["elementwise"] for r in pts], "^--", color="#e8710a", label="element-wise bound")
        bx.loglog(w, [r["bounds"]["memory"] for r in pts], ":", color="#5f6368", label="memory ceiling")
        bx.loglog(w, [r["cycles_per_token"] for r in pts], "o-", color="#d93025", label="measured token step")
        for r in pts:
            bx.annotate(r["label"], (r["ternary_weights"], r["cycles_per_token"]), fontsize=8,
                        textcoords="offset points", xytext=(3, 5))
        from matplotlib.ticker import NullFormatter
        bx.xaxis.set_minor_formatter(NullFormatter())
        bx.set_xlabel("ternary weights per token")
        bx.set_ylabel("cycles per token")
        bx.set_title(f"model size (d x L) at P = {pts[0]['lanes']}")
        bx.grid(True, which="both", alpha=0.2)
        bx.legend(fontsize=8)
    fig.suptitle("Token engine: cycles per token and what bounds them. Made by python -m benchmarks.scaling",
                 fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _row(r, fmax_mhz):
    b = r["bounds"]
    lay = r["layout"]
    tps = fmax_mhz * 1e6 / r["cycles_per_token"]
    return (f"| {lay['d']} | {lay['layers']} | {lay['intermediate']} | {r['lanes']} | {r['ternary_weights']:,} "
            f"| {b['lanes']:,} | {b['elementwise']:,.0f} ({b['elementwise_unit'].split('_')[0]}) | {b['memory']:,.0f} "
            f"| **{r['cycles_per_token']:,}** | {r['per_token']['lanes_starved']:,.0f} | {r['lane_utilisation']:.0%} "
            f"| {r['cycles_per_token'] / max(b['lanes'], b['elementwise'], b['memory']):.2f} | {binding(b)} "
            f"| {tps:,.0f} | {tps * r['ternary_weights'] / 1e9:.2f} |")


def render(lanes_points, size_points, synth, command, fmax_mhz, board_lut, synth_command="") -> str:
    from golden.config import ModelConfig

    head = ["| d | L | I | lanes P | ternary weights | lanes bound | element-wise bound (busiest unit) | memory ceiling "
            "| **measured** | lanes starved | lane utilisation | measured / max bound | binds | tokens/s "
            f"at {fmax_mhz:g} MHz | G weights/s |",
            "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|"]
    lines = [TITLE, "", f"Command: `{command}`", "",
             "Every row is one token of the token engine in the Amaranth simulator (exact cycles; "
             "argmax equal to the golden model's). Bounds, in cycles per token (module docstring of "
             "`benchmarks/scaling.py`): **lanes** = weight words of the layout (one word of P trits per "
             "cycle; analytic); **element-wise** = busy cycles of the busiest element-wise unit "
             "(quantiser, GLU quantiser, MLGRU; measured counters); **memory** = all weights once through "
             f"{EBR_COUNT} EBR read ports of {EBR_PORT_BITS} bits at {BITS_PER_TRIT:g} bits per weight "
             f"(ECP5-85F; no layout can feed more than {MAX_FED_LANES:,.0f} lanes). tokens/s and weights/s "
             f"take the recorded whole-device fmax ({fmax_mhz:g} MHz, measured at 195 lanes only: at another "
             "P the clock is an assumption).", "",
             f"![cycles per token against lanes and model size](docs/img/{CHART.name})", "",
             f"### Against lanes ({MODEL})", ""] + head
    lines += [_row(r, fmax_mhz) for r in sorted(lanes_points, key=lambda r: r["lanes"])]
    lines += ["", "### Against model size (random models, `tests.synthetic`)", ""] + head
    lines += [_row(r, fmax_mhz) for r in sorted(size_points, key=lambda r: r["ternary_weights"])]
    pts = sorted(lanes_points, key=lambda r: r["lanes"])
    a, b = pts[-2], pts[-1]
    ops = DeviceLayout(ModelConfig.load(ROOT / MODEL), 5).ops
    rows, widest = sum(op.rows for op in ops), max(op.cols for op in ops)
    ratios = [r["cycles_per_token"] / max(r["bounds"]["lanes"], r["bounds"]["elementwise"])
              for r in lanes_points + size_points]
    units = sorted({r["bounds"]["elementwise_unit"] for r in lanes_points + size_points})
    lines += ["", "Reading the tables (generated from the figures above):", "",
              f"- The step is the lanes' streaming **plus** the cycles they wait for the quantiser: measured = "
              f"weight words + lanes starved, within {max(abs(r['cycles_per_token'] - r['bounds']['lanes'] - r['per_token']['lanes_starved']) for r in lanes_points + size_points):,.0f} cycles "
              f"on every row, {min(ratios):.2f} to {max(ratios):.2f} times the larger bound. Overlapping the "
              "quantiser with the lanes would take the step down towards the larger of the two.",
              f"- More lanes stop paying: from {a['lanes']} to {b['lanes']} lanes the step drops "
              f"{1 - b['cycles_per_token'] / a['cycles_per_token']:.0%} ({a['cycles_per_token']:,} -> "
              f"{b['cycles_per_token']:,}) while the lanes starve {b['per_token']['lanes_starved']:,.0f} cycles. "
              f"Past P = {widest} "
              f"(the widest row) every row is one word, so the lanes bound never falls below the {rows:,} rows per token.",
              f"- The element-wise bound is the busiest unit's busy counter ({', '.join(units)} on these rows). A unit "
              "is busy while it holds a vector, including cycles it waits for the lanes to drain it, so the "
              f"counter grows as P shrinks ({pts[0]['bounds']['elementwise']:,.0f} at P = {pts[0]['lanes']}); the "
              f"chart draws the figure at the most lanes ({b['bounds']['elementwise']:,.0f}) flat. At one element per "
              f"cycle the quantiser's {b['per_token']['quant_elements']:,.0f} elements per token would be a floor.",
              f"- The memory ceiling is far below both: the block RAMs could deliver every weight in "
              f"{b['bounds']['memory']:,.0f} cycles; the lanes read {8 * b['lanes'] // 5} of the 85F's "
              f"{EBR_COUNT * EBR_PORT_BITS:,} read-port bits per cycle at P = {b['lanes']}."]
    if synth:
        base = synth.get(195)
        lines += ["", "### LUTs against lanes (ternary unit alone; whole device ESTIMATED)", "",
                  f"Command: `{synth_command or command}`", "",
                  f"Yosys `synth_ecp5` of `hw.ternary_matvec.TernaryMatVec(P, {base and base['rows'] or '?'}, "
                  f"{base and base['cols'] or '?'})` (the engine's ternary unit for this model), no place and "
                  "route. The whole-device column is an **estimate**: the recorded ULX3S build "
                  f"({board_lut:,} LUT4 at 195 lanes) plus this unit's difference from 195 lanes; the rest of "
                  "the device is taken as independent of P.", "",
                  "| lanes P | unit LUT4 (CCU2C as 2) | unit FF | unit EBR | whole device LUT4 (estimate) | of 83,640 |",
                  "|--:|--:|--:|--:|--:|--:|"]
        for p, s in sorted(synth.items()):
            est = board_lut + s["lut"] - base["lut"] if base and board_lut else None
            lines.append(f"| {p} | {s['lut']:,} | {s['ff']:,} | {s['ebr']} | "
                         f"{f'{est:,}' if est else '-'} | {f'{est / 83_640:.0%}' if est else '-'} |")
        (p0, s0), (p1, s1) = min(synth.items()), max(synth.items())
        if p1 > p0:
            slope = (s1["lut"] - s0["lut"]) / (p1 - p0)
            lines += ["", f"About {slope:.0f} LUT4 and {(s1['ff'] - s0['ff']) / (p1 - p0):.0f} flip-flops per lane "
                      f"(P = {p0} to {p1}): LUTs do not limit the lane count on the 85F; the table above shows "
                      "that more lanes no longer shorten the step."]
    return "\n".join(lines + [""])


def run(lanes_list, sizes, synth_list, log, known=None):
    """Measure every point (``known``: results already measured, keyed by (label, lanes))."""
    from hw.boards import BOARDS

    known = dict(known or {})
    lanes_points = [known.get((MODEL, p)) or point(ROOT / MODEL, p, MODEL, log) for p in lanes_list]
    p0 = BOARDS[BOARD].lanes
    size_points = [known.get((s, p0)) or point(random_model(s), p0, s, log) for s in sizes]
    synth = synth_lanes(synth_list, log) if synth_list else {}
    return lanes_points, size_points, synth


def main(argv=None, known=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0])
    ap.add_argument("--lanes", type=int, nargs="+", default=list(DEFAULT_LANES))
    ap.add_argument("--sizes", nargs="*", default=list(DEFAULT_SIZES), help="DxL: d and layers of random models")
    ap.add_argument("--synth-lanes", type=int, nargs="*", default=list(DEFAULT_LANES))
    ap.add_argument("--no-synth", action="store_true",
                    help="no Yosys runs: the LUT table is the last recorded one, with its command")
    ap.add_argument("--from-record", action="store_true",
                    help="no simulation: redraw the section and chart from benchmarks/recorded.json")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args(argv)
    previous = record.load().get("scaling", {})
    if args.from_record:
        lanes_points, size_points, command = previous["lanes_points"], previous["size_points"], previous["command"]
        synth_list = []
    else:
        synth_list = [] if args.no_synth else args.synth_lanes
        command = "python -m benchmarks.scaling " + shlex.join(
            ["--lanes", *map(str, args.lanes), "--sizes", *args.sizes]
            + (["--no-synth"] if args.no_synth else ["--synth-lanes", *map(str, synth_list)]))
        log = lambda s: print(s, file=sys.stderr)  # noqa: E731
        lanes_points, size_points, synth = run(args.lanes, args.sizes, synth_list, log, known)
    if synth_list:
        synth_command = command
    else:  # no Yosys this time: the LUT table of the last run that had one, with its command
        synth = {int(k): v for k, v in previous.get("synth", {}).items()}
        synth_command = previous.get("synth_command", previous.get("command", ""))
    if not args.from_record and not args.no_write:
        data = record.load()
        data["scaling"] = record.stamp({"lanes_points": lanes_points, "size_points": size_points,
                                        "synth": {str(k): v for k, v in synth.items()},
                                        "synth_command": synth_command}, command)
        record.save(data)
    board = record.load().get("boards", {}).get(BOARD, {})
    fmax = board.get("fmax_mhz", 0.0)
    text = render(lanes_points, size_points, synth, command, fmax, board.get("lut", 0), synth_command)
    print(text)
    if not args.no_write:
        chart(lanes_points, size_points, fmax)
        replace_section(args.out, TITLE, text)


if __name__ == "__main__":
    main()
