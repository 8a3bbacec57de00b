"""How far the iCEBreaker's core is from fitting the UP5K: Yosys's resources and nextpnr's packed
logic cells, no placement.

    python -m benchmarks.compact_fit [--d D] [--layers L] [--intermediate I] [--no-write]

The core the iCEBreaker build makes (``hw.top.core_for_model`` with the board's engine and
lanes, in ``hw.boards.BoardTop``) for ``models/mmfree-up5k`` (or that model's configuration with
the dimensions given), synthesised by the build's own Yosys script (``host.build._plan``:
``synth_ice40 -spram``, the huge memories' zero init dropped), then packed by nextpnr
(``--pack-only``): the logic cells placement would need, against the part's. Seconds, where a
build that cannot place takes minutes to say so. Writes the section "Compact engine on the UP5K
(synthesis, issue 4)" of BENCHMARKS.md (only for the shipped model).
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


def measure(d: int | None = None, layers: int | None = None, intermediate: int | None = None,
            progress=print) -> dict:
    from host.build import NAME, _plan, _tool_env
    from host.toolchain import count_cells, log_utilisation
    from hw.top import core_for_model

    base = json.loads((ROOT / "models" / "mmfree-up5k" / "config.json").read_text())
    given = {"hidden_size": d, "num_hidden_layers": layers, "intermediate_size": intermediate}
    config = ModelConfig.from_dict({**base, **{k: v for k, v in given.items() if v is not None}})
    board = BOARDS[BOARD]
    layout = DeviceLayout(config, board.lanes)

    def core(*, divisor):
        return core_for_model(config, lanes=board.lanes, divisor=divisor, engine=board.engine)

    env = _tool_env(board.family)
    with tempfile.TemporaryDirectory() as tmp:
        _top, plan = _plan(board, core, None, 1)
        plan.extract(tmp)
        progress(f"yosys (synth_ice40 -spram) on the {BOARD} core, d = {config.hidden_size}, "
                 f"{config.num_hidden_layers} layers, I = {config.intermediate_size}")
        t0 = time.monotonic()
        subprocess.run([env["YOSYS"], "-q", "-l", "yosys.log", f"{NAME}.ys"], cwd=tmp, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        cells = count_cells(Path(tmp) / f"{NAME}.json", top=NAME)
        progress("nextpnr --pack-only: the logic cells the netlist packs into")
        subprocess.run([env["NEXTPNR_ICE40"], "--quiet", "--pack-only", "--log", "pack.log", "--up5k",
                        "--package", board.platform.package.lower(), "--json", f"{NAME}.json", "--pcf", f"{NAME}.pcf"],
                       cwd=tmp, env=env, check=True, stdout=subprocess.DEVNULL)
        packed = log_utilisation((Path(tmp) / "pack.log").read_text())["ICESTORM_LC"][0]
    ff = sum(n for t, n in cells.items() if t.startswith("SB_DFF"))
    return {"config": layout.describe(), "image_bytes": layout.image_bytes, "lut4": cells.get("SB_LUT4", 0),
            "carry": cells.get("SB_CARRY", 0), "ff": ff, "ebr": cells.get("SB_RAM40_4K", 0),
            "spram": cells.get("SB_SPRAM256KA", 0), "dsp": cells.get("SB_MAC16", 0),
            "logic_cells": packed,
            "yosys_s": round(time.monotonic() - t0)}


def render(r: dict, command: str) -> str:
    c = r["config"]
    return "\n".join([
        TITLE, "",
        f"Command: `{command}`", "",
        f"The iCEBreaker's core (UART, link, compact engine at {c['lanes']} lanes) for a model of d = {c['d']}, "
        f"{c['layers']} layers, I = {c['intermediate']} (image {r['image_bytes']:,} of the SPRAM's "
        "131,072), through the build's Yosys script (`synth_ice40 -spram`), then nextpnr's packer alone "
        "(`--pack-only`): the logic cells placement would need. A cell holds one LUT4, one flip-flop and "
        "one carry; nextpnr packs a flip-flop with a LUT only when the LUT drives it, so cells exceed "
        "LUT4s.", "",
        "| resource | netlist | UP5K |",
        "|---|--:|--:|",
        f"| logic cells (packed) | {r['logic_cells']:,} | {UP5K['logic cells']:,} |",
        f"| LUT4 | {r['lut4']:,} | (one per cell) |",
        f"| flip-flops | {r['ff']:,} | (same cells) |",
        f"| carry (SB_CARRY) | {r['carry']:,} | (same cells) |",
        f"| block RAM (4 Kbit) | {r['ebr']} | {UP5K['EBR']} |",
        f"| SPRAM | {r['spram']} | {UP5K['SPRAM']} |",
        f"| DSP | {r['dsp']} | {UP5K['DSP']} |", "",
        (f"The packed cells are {r['logic_cells'] / UP5K['logic cells']:.2f}x the part's: the core does not fit "
         "yet. docs/compact_engine.md (\"Status\") lists where the cells go and what is planned."
         if r["logic_cells"] > UP5K["logic cells"] else
         f"The packed cells are {r['logic_cells'] / UP5K['logic cells']:.1%} of the part's; placement and "
         "timing are the build's to show (`mmfree build --board icebreaker`)."),
        "",
    ])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compact_fit", description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, help="hidden size (default: the shipped model's)")
    ap.add_argument("--layers", type=int, help="layers (default: the shipped model's)")
    ap.add_argument("--intermediate", type=int, help="GLU width I (default: the shipped model's)")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args(argv)
    r = measure(args.d, args.layers, args.intermediate)
    given = [f"--{k} {v}" for k, v in (("d", args.d), ("layers", args.layers), ("intermediate", args.intermediate))
             if v is not None]
    text = render(r, " ".join(["python -m benchmarks.compact_fit", *given]))
    print(text)
    if not args.no_write and not given:
        replace_section(ROOT / "BENCHMARKS.md", TITLE, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
