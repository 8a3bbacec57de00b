"""Per-board figures and the side-by-side table against the anchors, from the recorded figures.

    python -m benchmarks.summary [--no-write]

No measurement of its own: everything comes from benchmarks/recorded.json, which the measuring
commands write (``python -m benchmarks.regression --record``: cycles and counters per token from
the Amaranth simulation; ``python -m benchmarks.boards``: the whole-device build, nextpnr's fmax
with a fixed seed), and from the published figures of the anchors (``ANCHORS``, each with its
source). Derived figures:

* tokens/s at fmax = fmax / cycles per token (tokens back to back, no host in the loop);
* ternary weights/s = tokens/s x ternary weights per token (every weight is read once per token);
  the same as lanes x fmax x (ternary weights / lanes / cycles per token), the lanes' useful share;
* estimated core energy per token: ``host.energy.estimate`` on one token's counters at fmax, with
  the build's flip-flops as the clocked cells (docs/energy.md: an ESTIMATE, coefficients labelled
  measured / scaled / assumed).

Writes "## Per board (issue 6)" and "## Side by side with the anchors (issue 6)" of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from golden.image import COUNTERS
from host.energy import FAMILIES, estimate
from hw.boards import BOARDS

from . import record
from .boards import TARGET_MHZ
from .markdown import replace_section

ROOT = Path(__file__).resolve().parent.parent
TITLE_BOARDS = "## Per board (issue 6)"
TITLE_ANCHORS = "## Side by side with the anchors (issue 6)"
COMMAND = "python -m benchmarks.summary"
AIM_WEIGHTS_PER_S = 10e9   # issue 6: >= 10 G ternary weights/s on the ECP5-85F
PARTS = {"ulx3s-85f": "ECP5 LFE5U-85F", "icebreaker": "iCE40 UP5K"}

#: Published figures (the work's own numbers; /work/shared/reference/anchors.md, mmfreelm.md).
#: params: ternary weights read per token (None: not derivable from the source);
#: watts: (low, high) as published, with what was measured.
ANCHORS = (
    dict(work="MatMul-free LM paper, FPGA core", hardware="Intel Stratix 10 SX 2800, 60 MHz, weights in DDR",
         model="one d = 512 block (~3.4M ternary weights)", params=None, tokens_s=None, weights_s=79e6,
         watts=None, basis="measured: one block forward in 43 ms",
         source="Zhu et al., arXiv 2406.02528, sec. FPGA (3.4M weights / 43 ms)"),
    dict(work="MatMul-free LM paper, projection", hardware="the same core, DDR bursting, more cores",
         model="1.3B", params=1.3e9, tokens_s=24, weights_s=None, watts=(13, 13),
         basis="projected, not measured", source="Zhu et al., arXiv 2406.02528"),
    dict(work="ZyboGPT", hardware="Zynq Zybo Z7-10, 150 MHz, all on chip", model="~115K-parameter ternary char model",
         params=115e3, tokens_s=3072, weights_s=None, watts=(2, 3), basis="measured; power is the whole board",
         source="ZyboGPT (open source); anchors.md"),
    dict(work="TerEffic (370M)", hardware="multi-FPGA, weights on chip", model="370M", params=370e6,
         tokens_s=16_300, weights_s=None, watts=(36, 36), basis="published (not open)",
         source="arXiv 2502.16473"),
    dict(work="TerEffic (2.7B)", hardware="FPGA with HBM", model="2.7B", params=2.7e9, tokens_s=727,
         weights_s=None, watts=(46, 46), basis="published (not open)", source="arXiv 2502.16473"),
    dict(work="TeLLMe v2", hardware="AMD KV260", model="BitNet b1.58 (size not in our references)", params=None,
         tokens_s=25, weights_s=None, watts=(5, 5), basis="published; 5 W is a budget", source="arXiv 2510.15926"),
    dict(work="Trinity", hardware="Xilinx XC7A100T, 92 MHz (openXC7)", model="toy: 4 blocks, d = 243",
         params=None, tokens_s=63, weights_s=None, watts=(1, 1), basis="published", source="anchors.md"),
    dict(work="sifferman/ternip", hardware="SystemVerilog, DDR/AXI", model="MatMul-free LM", params=None,
         tokens_s=None, weights_s=None, watts=None, basis="no figures published", source="github.com/sifferman/ternip"),
)


def _timing_at(build: dict, mhz: float) -> str:
    """Whether the recorded build meets ``mhz``: its own clock and nextpnr's fmax."""
    if build["fmax_mhz"] >= mhz and build["clock_mhz"] >= mhz:
        return f"timing met: the recorded build is for {build['clock_mhz']:g} MHz"
    return "timing not met there yet"


def board_figures(board: str, rec: dict) -> dict | None:
    """Throughput and estimated energy of a board from its recorded engine and build figures."""
    eng = rec.get("engine", {}).get(board)
    build = rec.get("boards", {}).get(board)
    if not eng:
        return None
    out = {"engine": eng, "build": build}
    if build:
        fmax = build["fmax_mhz"] * 1e6
        cycles = eng["cycles_per_token"]
        out["tokens_s"] = fmax / cycles
        out["weights_s"] = out["tokens_s"] * eng["ternary_weights"]
        out["peak_weights_s"] = eng["lanes"] * fmax
        out["target_weights_s"] = eng["lanes"] * TARGET_MHZ[board] * 1e6 * eng["weight_utilisation"]
        after = {name: 0 for name in COUNTERS}
        after.update({k: round(v) for k, v in eng["per_token"].items() if k in COUNTERS})
        after.update(steps=1, cycles=cycles, busy_cycles=cycles)
        out["energy"] = estimate({name: 0 for name in COUNTERS}, after, BOARDS[board].family, fmax,
                                 lanes=eng["lanes"], cells=build["ff"])
    return out


def render_boards(rec: dict) -> str:
    figs = {b: board_figures(b, rec) for b in ("ulx3s-85f", "icebreaker")}
    synth = rec.get("synth", {}).get("engine_tiny_ecp5")
    cols = [b for b in figs if figs[b]]
    lines = [TITLE_BOARDS, "", f"Command: `{COMMAND}` (from benchmarks/recorded.json; each figure's own "
             "command below)", "",
             "| figure | " + " | ".join(f"{b} ({PARTS[b]})" for b in cols) + " | from |",
             "|---|" + "--:|" * len(cols) + "---|"]

    def row(name, fn, source):
        lines.append(f"| {name} | " + " | ".join(fn(figs[b]) for b in cols) + f" | {source} |")

    def build(key, fmt="{:,}"):
        return lambda f: fmt.format(f["build"][key]) if f["build"] else "not built"

    row("model, lanes", lambda f: f"{f['engine']['model']}, {f['engine']['lanes']}", "`hw.boards`, `benchmarks.boards.MODELS`")
    row("LUT4 (CCU2C as 2)", build("lut"), "`mmfree build --board B --seed S --json` (recorded build, below)")
    row("FF", build("ff"), "recorded build")
    def block_ram(f):
        if not f["build"]:
            return "not built"
        b, avail = f["build"], f["build"].get("available", {})
        spram = f" + {b['spram']}/{avail['spram']} SPRAM" if avail.get("spram") else ""
        return f"{b['bram']}/{avail.get('bram', '?')} EBR{spram}"

    row("block RAM (EBR / SPRAM)", block_ram, "recorded build")
    row("DSP", build("dsp"), "recorded build")
    row("fmax (target)", lambda f: (f"{f['build']['fmax_mhz']:.1f} MHz ({TARGET_MHZ[f['engine']['board']]:g})"
                                    if f["build"] else f"- ({TARGET_MHZ[f['engine']['board']]:g})"),
        "nextpnr (recorded build)")
    row("**cycles per token**", lambda f: f"**{f['engine']['cycles_per_token']:,}**",
        "Amaranth simulation, `python -m benchmarks.regression --record`")
    def share(f, n):
        # the compact engine has no per-unit busy counters: its passes are the cycles besides the weights
        if f["engine"].get("engine", "token") != "token" and n != "weight_words":
            return "- (no such unit)"
        return f"{f['engine']['per_token'][n]:,.0f} ({f['engine']['per_token'][n] / f['engine']['cycles_per_token']:.0%})"

    for name in ("weight_words", "lanes_starved", "quant_busy", "glu_busy", "mlgru_busy", "post_starved"):
        row(f"&nbsp; {name}", lambda f, n=name: share(f, n), "device counters in the simulation")
    row("**lane utilisation** (weight words / cycles)", lambda f: f"**{f['engine']['lane_utilisation']:.1%}**",
        "simulation")
    row("&nbsp; counting only real weights", lambda f: f"{f['engine']['weight_utilisation']:.1%}", "simulation")
    row("tokens/s at fmax", lambda f: f"{f['tokens_s']:,.0f}" if "tokens_s" in f else "-", "fmax / cycles per token")
    row("**ternary weights/s at fmax**", lambda f: f"**{f['weights_s'] / 1e9:.2f} G**" if "weights_s" in f else "-",
        "tokens/s x ternary weights per token")
    row("peak (lanes x fmax)", lambda f: f"{f['peak_weights_s'] / 1e9:.2f} G" if "peak_weights_s" in f else "-", "")
    row("at the target clock, today's cycles", lambda f: f"{f['target_weights_s'] / 1e9:.2f} G" if "target_weights_s" in f else "-",
        "projection: lanes x target x utilisation")
    row("**energy per token (ESTIMATE, core rail)**",
        lambda f: f"**{f['energy'].joules_per_token * 1e6:.1f} uJ** ({_si(f['energy'].watts, 'W')})" if "energy" in f else "-",
        "`host.energy.estimate`, docs/energy.md")
    lines.append("")
    for b in cols:
        for what, entry in (("build", figs[b]["build"]), ("engine figures", figs[b]["engine"])):
            if entry:
                lines.append(f"{b} {what}: `{entry.get('command', '?')}` at commit {entry.get('commit', '?')} "
                             f"({entry.get('date', '?')}){'; ' + entry['note'] if entry.get('note') else ''}.  ")
    lines.append("")
    for b in cols:
        f = figs[b]
        if "energy" in f:
            e = f["energy"]
            fam = FAMILIES[BOARDS[b].family]
            parts = ", ".join(f"{k} {v / e.tokens * 1e6:.2f} uJ" for k, v in e.breakdown.items())
            largest = max(e.breakdown, key=e.breakdown.get)
            coeffs = ", ".join(f"`{c.name}` {c.value:.3g} {c.unit} ({c.basis})" for c in fam.coefficients)
            lines += [f"Energy estimate for {b}: one token at {e.clock_hz / 1e6:g} MHz, {e.lanes} lanes, "
                      f"{e.cells:,} clocked cells (the build's flip-flops): {parts}. Coefficients ({fam.family}): "
                      f"{coeffs}. The largest term is {largest} ({e.breakdown[largest] / e.joules:.0%})"
                      + (f", from the static power `static_w` ({fam['static_w'].basis}: {fam['static_w'].source.split(';')[0]})"
                         if largest == "static" else "")
                      + ". An estimate, not a measurement (docs/energy.md).", ""]
    up = figs.get("icebreaker")
    if up and not up["build"]:
        lines += ["**iCE40 UP5K: not built yet.** The iCEBreaker carries the compact engine (`hw.compact`, "
                  "[docs/compact_engine.md](docs/compact_engine.md)): one arithmetic pipeline shared by every "
                  "element-wise operation, driven by the token step as a program, and 10 ternary lanes. The "
                  "throughput engine does not fit: its quantiser, MLGRU engine and GLU stage alone each fill or "
                  "exceed the UP5K's 5,280 logic cells (per-block table above). The cycles per token in the "
                  "column come from the Amaranth simulation of the compact engine for the UP5K model, with the "
                  "argmax checked against the golden model. With no build there is no fmax, so no tokens/s, "
                  "weights/s or energy.", "", _up5k_memory(), ""]
    return "\n".join(lines)


def _up5k_memory() -> str:
    """What stands between the compact engine and a UP5K bitstream: the model's image and SPRAM."""
    from golden.config import ModelConfig
    from golden.image import DeviceLayout
    from .boards import MODELS

    board = BOARDS["icebreaker"]
    root = Path(__file__).resolve().parent.parent
    layout = DeviceLayout(ModelConfig.load(root / MODELS["icebreaker"]), board.lanes)
    regions = layout.region_bytes
    takes = (f"`{MODELS['icebreaker']}` takes {layout.image_bytes:,} bytes at {board.lanes} lanes ("
             + ", ".join(f"{k} {v:,}" for k, v in regions.items()) + "; `golden.image.DeviceLayout.region_bytes`)")
    if layout.image_bytes <= board.image_memory_bytes:
        return (f"**The model's image fits the SPRAM; the logic does not fit yet.** The compact engine keeps "
                f"the image in {board.image_memory} ({board.image_memory_bytes:,} bytes); {takes}. The core's "
                "logic is measured by `python -m benchmarks.compact_fit` (section \"Compact engine on the UP5K\" "
                "below: synthesis and nextpnr's packing, no placement); docs/compact_engine.md lists what is left.")
    return (f"**The model's image does not fit the SPRAM yet.** The compact engine keeps the image in "
            f"{board.image_memory} ({board.image_memory_bytes:,} bytes). {takes}, so `mmfree build --board "
            "icebreaker` refuses it before synthesis (`host.build.check_fits`). The simulation takes it, since "
            "there the image memory is larger. docs/compact_engine.md lists what is left.")


def _si(x, unit=""):
    """``x`` with an SI prefix: 6.59 G, 33.6 u (three significant digits)."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3), ("", 1), ("m", 1e-3), ("u", 1e-6),
                          ("n", 1e-9), ("p", 1e-12)):
        if x >= scale:
            return f"{x / scale:.3g} {prefix}{unit}".rstrip()
    return f"{x:.3g} {unit}".rstrip()


def render_anchors(rec: dict) -> str:
    ours = board_figures("ulx3s-85f", rec)
    lines = [TITLE_ANCHORS, "", f"Command: `{COMMAND}` (ours from benchmarks/recorded.json; the others are "
             "their published figures, sources in the last column)", "",
             "One unit for all: **ternary weights per second** = tokens/s x ternary weights read per token "
             "(tokens/s normalised by the parameter count). Energy per weight = J/token / weights per token. "
             "Power is what each work reports, on different rails (core, board, card): compare with care.", "",
             "| work | hardware | model | tokens/s | **ternary weights/s** | power | energy per token | energy per weight | basis | source |",
             "|---|---|---|--:|--:|--:|--:|--:|---|---|"]
    rows = []
    if ours and "tokens_s" in ours:
        eng, build, e = ours["engine"], ours["build"], ours["energy"]
        rows.append(dict(work="**this project**", hardware=f"ULX3S, ECP5-85F, {build['fmax_mhz']:g} MHz (fmax), "
                         f"{eng['lanes']} lanes, all on chip", model=f"{eng['model']} ({eng['ternary_weights']:,} ternary)",
                         params=eng["ternary_weights"], tokens_s=ours["tokens_s"], weights_s=None,
                         watts=(e.watts, e.watts), basis="simulated cycles x nextpnr fmax; power an ESTIMATE "
                         "(core rail, docs/energy.md)", source="this file: Per board"))
        t = TARGET_MHZ["ulx3s-85f"]
        rows.append(dict(work="this project at the target clock", hardware=f"the same at {t:g} MHz ({_timing_at(build, t)})",
                         model=eng["model"], params=eng["ternary_weights"], tokens_s=t * 1e6 / eng["cycles_per_token"],
                         weights_s=None, watts=None, basis="projection", source="today's cycles per token"))
    for a in rows + list(ANCHORS):
        ws = a["weights_s"] or (a["tokens_s"] * a["params"] if a["tokens_s"] and a["params"] else None)
        w = a["watts"]
        jt = (sum(w) / 2 / a["tokens_s"]) if w and a["tokens_s"] else None
        jw = (jt / a["params"]) if jt and a["params"] else None
        tokens = f"{a['tokens_s']:,.0f}" if a["tokens_s"] else "-"
        weights = f"**{_si(ws)}**" if ws else "-"
        power = "-" if not w else (f"{w[0]:.3g} W" if w[0] == w[1] else f"{w[0]:g}-{w[1]:g} W")
        per_token = _si(jt, "J") if jt else "-"
        per_weight = _si(jw, "J") if jw else "-"
        lines.append(f"| {a['work']} | {a['hardware']} | {a['model']} | {tokens} | {weights} | {power} "
                     f"| {per_token} | {per_weight} | {a['basis']} | {a['source']} |")
    if ours and "weights_s" in ours:
        eng, ws = ours["engine"], ours["weights_s"]
        need = eng["ternary_weights"] * TARGET_MHZ["ulx3s-85f"] * 1e6 / AIM_WEIGHTS_PER_S
        paper = next(a for a in ANCHORS if a["weights_s"])["weights_s"]
        zybo = next(a for a in ANCHORS if a["work"] == "ZyboGPT")
        tereffic = [a["tokens_s"] * a["params"] / ws for a in ANCHORS if a["work"].startswith("TerEffic")]
        lines += ["", f"**Where we stand.** The aim is at least {AIM_WEIGHTS_PER_S / 1e9:g} G ternary weights/s on the "
                  f"ECP5-85F. Today: **{ws / 1e9:.2f} G** ({ws / AIM_WEIGHTS_PER_S:.0%} of the aim), from "
                  f"{eng['cycles_per_token']:,} cycles per token (simulation) at the build's "
                  f"{ours['build']['fmax_mhz']:g} MHz. The lanes could give {ours['peak_weights_s'] / 1e9:.1f} G at that "
                  f"clock ({eng['lanes']} x fmax) and {eng['lanes'] * TARGET_MHZ['ulx3s-85f'] / 1e3:.1f} G at "
                  f"{TARGET_MHZ['ulx3s-85f']:g} MHz; they do useful work {eng['weight_utilisation']:.0%} of the "
                  f"cycles. " + (
                      f"The aim is met at the measured fmax; " if ws >= AIM_WEIGHTS_PER_S else
                      f"At {TARGET_MHZ['ulx3s-85f']:g} MHz the aim needs at most {need:,.0f} cycles per token "
                      f"({need / eng['cycles_per_token']:.0%} of today's); ") +
                  f"at {TARGET_MHZ['ulx3s-85f']:g} MHz ({_timing_at(ours['build'], TARGET_MHZ['ulx3s-85f'])}) "
                  f"today's cycles would give "
                  f"{ours['target_weights_s'] / 1e9:.2f} G. Against the anchors, per weight: "
                  f"{ws / paper:,.0f}x the MatMul-free paper's measured FPGA core (79M weights/s, weights in "
                  f"DDR) and {ws / (zybo['tokens_s'] * zybo['params']):,.0f}x ZyboGPT (all on chip, as here); "
                  f"TerEffic's multi-FPGA and HBM systems are {min(tereffic):,.0f}-{max(tereffic):,.0f}x above, at "
                  "tens of watts. A model this size fits on chip only because it is small: 1.38M ternary weights, "
                  "against the paper's 370M and up.", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args(argv)
    rec = record.load()
    for title, text in ((TITLE_BOARDS, render_boards(rec)), (TITLE_ANCHORS, render_anchors(rec))):
        print(text)
        if not args.no_write:
            replace_section(args.out, title, text)


if __name__ == "__main__":
    main()
