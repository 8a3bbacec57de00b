"""Whole-device builds per board: utilisation and fmax of the device core with the shipped model.

    python -m benchmarks.boards [--boards ulx3s-85f icebreaker] [--seed N] [--no-write]
    python -m benchmarks.boards --from-json build/ulx3s.json [--commit C]   # a saved `mmfree build --json` result

Builds each board's bitstream with ``host.build`` (the command ``mmfree build`` runs: Yosys and
nextpnr from pip, fixed seed), for the largest shipped model meant for it, and writes the
section "## Whole device on the boards (issue 4)" of BENCHMARKS.md. A build that fails (does not
fit, misses timing) is a row too, with the reason. An ECP5 build takes about 20 minutes here.
Each successful build is also recorded in benchmarks/recorded.json (``benchmarks.record``), where
the per-board summary and the regression test read it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from hw.boards import BOARDS

from . import record
from .markdown import replace_section

ROOT = Path(__file__).resolve().parent.parent
TITLE = "## Whole device on the boards (issue 4)"
MODELS = {"ulx3s-85f": "models/mmfree-ecp5", "icebreaker": "models/mmfree-up5k"}
TARGET_MHZ = {"ulx3s-85f": 100.0, "icebreaker": 24.0}


def run(board: str, seed: int | None, log=print) -> dict:
    from host.build import BuildError, build, core_factory

    model = MODELS[board]
    factory, name, _ = core_factory(ROOT / model, board)
    try:
        result = build(board, factory, build_dir=ROOT / "build" / f"bench-{board}", seed=seed,
                       progress=lambda stage, seconds: log(f"[{board}] {seconds:7.1f} s {stage}"))
    except BuildError as exc:
        return {"board": board, "model": model, "error": str(exc).splitlines()[0]}
    return {"board": board, "model": model, **json.loads(result.to_json())}


def _build_command(result: dict) -> str:
    """The ``mmfree build`` command that gives a saved result (its clock when not the board's)."""
    clock = result.get("requested_clock_mhz", result["clock_mhz"])
    clock_arg = "" if clock == BOARDS[result["board"]].clock_mhz else f" --clock-mhz {clock:g}"
    return (f"mmfree build --board {result['board']} --model {result['model']}{clock_arg} "
            f"--seed {result['seed']} --json")


def render(rows, command: str) -> str:
    """The section: one row per board, each with the command and commit that built it (a row
    without ``command`` was built by ``command``)."""
    lines = [TITLE, "",
             "The device core (UART, link and the board's engine; `hw.top.core_for_board`) for the model, in "
             "its board top (PLL, reset, pins). nextpnr, seed as given; fmax of the core clock. Each "
             "board's last build (benchmarks/recorded.json), with the command that made it.", "",
             "| board | model | lanes | LUT4 | FF | block RAM | DSP | clock | fmax | target fmax | target met "
             "| timing met at the clock | command (commit) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lanes = BOARDS[r["board"]].lanes
        made = f"`{r.get('command', command)}`" + (f" ({r['commit']})" if r.get("commit") else "")
        if "error" in r:
            lines.append(f"| {r['board']} | {r['model']} | {lanes} | | | | | | | {TARGET_MHZ[r['board']]:g} MHz | "
                         f"no: {r['error']} | no | {made} |")
            continue
        avail = r.get("available", {})
        spram = f" + {r['spram']}/{avail['spram']} SPRAM" if avail.get("spram") else ""
        lines.append(
            f"| {r['board']} | {r['model']} | {lanes} | {r['lut']:,} | {r['ff']:,} | {r['bram']}/{avail.get('bram', '?')}"
            f"{spram} | {r['dsp']} | {r['clock_mhz']:g} MHz | {r['fmax_mhz']:.1f} MHz | {TARGET_MHZ[r['board']]:g} MHz | "
            f"{'yes' if r['fmax_mhz'] >= TARGET_MHZ[r['board']] else 'no'} | "
            f"{'yes' if r['fmax_mhz'] >= r['clock_mhz'] else 'no'} | {made} |")
    return "\n".join(lines + [""])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.boards", description=__doc__.split("\n\n")[0])
    ap.add_argument("--boards", nargs="+", choices=list(MODELS), default=["ulx3s-85f"])
    ap.add_argument("--seed", type=int, default=None, help="nextpnr seed (default: each board's, hw.boards)")
    ap.add_argument("--from-json", nargs="+", metavar="FILE",
                    help="render saved `mmfree build --board B --model M --json` results instead of building")
    ap.add_argument("--commit", help="with --from-json: the commit the saved builds were made at "
                                     "(default: the work tree's)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args(argv)
    if args.commit and not args.from_json:
        ap.error("--commit goes with --from-json (a build made here is stamped with this tree's commit)")
    if args.from_json:
        rows = []
        for path in args.from_json:
            result = json.loads(Path(path).read_text().strip().splitlines()[0])
            model = Path(result["core"].split(" for ")[-1].split(" (")[0])
            if model.is_absolute() and model.is_relative_to(ROOT):
                model = model.relative_to(ROOT)
            rows.append({"model": str(model), **result})
        command = "; ".join(_build_command(r) for r in rows)
    else:
        seed = [] if args.seed is None else ["--seed", str(args.seed)]
        command = "python -m benchmarks.boards " + shlex.join(["--boards", *args.boards, *seed])
        rows = [run(board, args.seed, log=lambda s: print(s, file=sys.stderr)) for board in args.boards]
    if not args.no_write:
        for row in rows:
            if "error" not in row:
                stamped = record.stamp(row, command)
                if args.commit:
                    stamped["commit"] = args.commit
                record.update("boards", row["board"], stamped)
        # every board's last build, this run's failures in place of theirs
        recorded = record.load().get("boards", {})
        built = {r["board"]: r for r in rows if "error" in r}
        rows = [built.get(board) or recorded[board] for board in MODELS if board in built or board in recorded]
    text = render(rows, command)
    print(text)
    if not args.no_write:
        replace_section(args.out, TITLE, text)


if __name__ == "__main__":
    main()
