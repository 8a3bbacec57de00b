"""How far the iCEBreaker's core is from fitting the UP5K: Yosys's resources, no place and route.

    python -m benchmarks.compact_fit [--d 112 --layers 2 --intermediate 224] [--no-write]

The core the iCEBreaker build makes (``hw.top.core_for_model`` with the board's engine and
lanes, in ``hw.boards.BoardTop``), synthesised by the build's own Yosys script
(``host.build._plan``: ``synth_ice40 -spram``, the huge memories' zero init dropped), for a model
of the given dimensions: a model that fits the SPRAM is not shipped yet (docs/compact_engine.md),
and ``mmfree build`` refuses the shipped one before synthesis. The counts are the netlist's cells
against the part's: what nextpnr would have to place. Writes the section "Compact engine on the
UP5K (synthesis)" of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from golden.config import ModelConfig
from golden.image import DeviceLayout
from hw.boards import BOARDS

from .markdown import replace_section

ROOT = Path(__file__).resolve().parent.parent
TITLE = "## Compact engine on the UP5K (synthesis, issue 4)"
BOARD = "icebreaker"
#: The UP5K's resources (anchors.md): logic cells (LUT4 + FF), 4 Kbit block RAMs, SPRAMs.
UP5K = {"logic cells": 5280, "EBR": 30, "SPRAM": 4, "DSP": 8}


def measure(d: int, layers: int, intermediate: int, progress=print) -> dict:
    from host.build import NAME, _plan, _tool_env
    from host.toolchain import count_cells
    from hw.top import core_for_model

    base = json.loads((ROOT / "models" / "mmfree-up5k" / "config.json").read_text())
    config = ModelConfig.from_dict({**base, "hidden_size": d, "num_hidden_layers": layers,
                                    "intermediate_size": intermediate})
    board = BOARDS[BOARD]
    layout = DeviceLayout(config, board.lanes)

    def core(*, divisor):
        return core_for_model(config, lanes=board.lanes, divisor=divisor, engine=board.engine)

    env = _tool_env(board.family)
    with tempfile.TemporaryDirectory() as tmp:
        _top, plan = _plan(board, core, None, 1)
        plan.extract(tmp)
        progress(f"yosys (synth_ice40 -spram) on the {BOARD} core, d = {d}, {layers} layers, I = {intermediate}")
        t0 = time.monotonic()
        subprocess.run([env["YOSYS"], "-q", "-l", "yosys.log", f"{NAME}.ys"], cwd=tmp, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        cells = count_cells(Path(tmp) / f"{NAME}.json", top=NAME)
    ff = sum(n for t, n in cells.items() if t.startswith("SB_DFF"))
    return {"config": layout.describe(), "image_bytes": layout.image_bytes, "lut4": cells.get("SB_LUT4", 0),
            "carry": cells.get("SB_CARRY", 0), "ff": ff, "ebr": cells.get("SB_RAM40_4K", 0),
            "spram": cells.get("SB_SPRAM256KA", 0), "dsp": cells.get("SB_MAC16", 0),
            "yosys_s": round(time.monotonic() - t0)}


def render(r: dict, command: str) -> str:
    c = r["config"]
    return "\n".join([
        TITLE, "",
        f"Command: `{command}`", "",
        f"The iCEBreaker's core (UART, link, compact engine at {c['lanes']} lanes) for a model of d = {c['d']}, "
        f"{c['layers']} layers, I = {c['intermediate']} (image {r['image_bytes']:,} bytes, within the SPRAM's "
        "131,072), through the build's Yosys script (`synth_ice40 -spram`); no place and route. This is a "
        "lower bound on logic cells: nextpnr packs a LUT4 and a flip-flop into one cell only when the LUT "
        "drives the flip-flop.", "",
        "| resource | netlist | UP5K |",
        "|---|--:|--:|",
        f"| LUT4 | {r['lut4']:,} | {UP5K['logic cells']:,} logic cells |",
        f"| flip-flops | {r['ff']:,} | (same cells) |",
        f"| carry (SB_CARRY) | {r['carry']:,} | (same cells) |",
        f"| block RAM (4 Kbit) | {r['ebr']} | {UP5K['EBR']} |",
        f"| SPRAM | {r['spram']} | {UP5K['SPRAM']} |",
        f"| DSP | {r['dsp']} | {UP5K['DSP']} |", "",
        f"LUT4s alone are {r['lut4'] / UP5K['logic cells']:.2f}x the part's logic cells: the engine does not "
        "fit yet. docs/compact_engine.md (\"Status\") lists where the cells go and what is planned.",
        "",
    ])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compact_fit", description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=112)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=224)
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args(argv)
    r = measure(args.d, args.layers, args.intermediate)
    command = "python -m benchmarks.compact_fit" + (
        "" if (args.d, args.layers, args.intermediate) == (112, 2, 224)
        else f" --d {args.d} --layers {args.layers} --intermediate {args.intermediate}")
    text = render(r, command)
    print(text)
    if not args.no_write:
        replace_section(ROOT / "BENCHMARKS.md", TITLE, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
