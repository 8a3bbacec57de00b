"""The open toolchain as the project runs it: finding the tools, reading what they report.

Shared by the board builder (``host.build``) and the per-block benchmark (``benchmarks.synth``).

Tools are the pip-installed YoWASP builds (the ``synth`` extra). ``find_tool`` looks, in order, at
the environment variable Amaranth's build scripts also read (``YOSYS``, ``NEXTPNR_ICE40``, ...),
next to the running Python (the virtual environment), then on PATH.
"""

import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["SYNTH_EXTRA_HINT", "count_cells", "find_tool", "parse_fmax", "parse_utilisation", "overfull",
           "pick_clock", "utilisation"]

SYNTH_EXTRA_HINT = "install the synth extra: pip install -e '.[synth]'"


def find_tool(env, default):
    """argv prefix for a tool: ``$env`` if set, else ``default`` beside the running Python or on
    PATH. FileNotFoundError (with the install hint) if none."""
    if os.environ.get(env):
        return shlex.split(os.environ[env])
    local = Path(sys.executable).parent / default
    if local.exists():
        return [str(local)]
    found = shutil.which(default)
    if found is None:
        raise FileNotFoundError(f"{default} not found: {SYNTH_EXTRA_HINT} (or set {env})")
    return [found]


def count_cells(netlist_path, top="top"):
    """Cell type -> count in module ``top`` of a Yosys JSON netlist (flattened by synth_*)."""
    netlist = json.loads(Path(netlist_path).read_text())
    counts = {}
    for cell in netlist["modules"][top].get("cells", {}).values():
        counts[cell["type"]] = counts.get(cell["type"], 0) + 1
    return counts


_FMAX_LOG = re.compile(r"Max frequency for clock '([^']+)':\s*([0-9.]+) MHz")


def pick_clock(names):
    """The clk domain among nextpnr's clock names ('clk', 'clk$SB_IO_IN_$glb_clk',
    '$glbnet$clk$TRELLIS_IO_IN', ...)."""
    names = list(names)
    if "clk" in names:
        return "clk"
    for test in (lambda n: n.startswith("clk"), lambda n: "clk" in n, lambda n: True):
        hits = [n for n in names if test(n)]
        if len(hits) == 1:
            return hits[0]
    return None


def parse_fmax(report_path=None, log_path=None, *, pick=pick_clock):
    """fmax (MHz) of one clock: nextpnr's --report JSON, else the log's last figure for it.
    ``pick`` chooses the clock among nextpnr's clock names (None: not there)."""
    if report_path is not None and Path(report_path).exists():
        report = json.loads(Path(report_path).read_text())
        fmax = report.get("fmax", {})
        clk = pick(fmax)
        if clk is not None:
            return float(fmax[clk]["achieved"])
    if log_path is not None and Path(log_path).exists():
        found = {}
        for clk, mhz in _FMAX_LOG.findall(Path(log_path).read_text()):
            found[clk] = float(mhz)      # the last one (post-route) wins
        clk = pick(found)
        if clk is not None:
            return found[clk]
    raise ValueError(f"no fmax for the clock in {report_path} / {log_path}")


def utilisation(report_path):
    """nextpnr's --report utilisation: cell type -> (used, available)."""
    report = json.loads(Path(report_path).read_text())
    return {cell: (int(v.get("used", 0)), int(v.get("available", 0)))
            for cell, v in report.get("utilization", {}).items()}


# nextpnr's ways of saying the design has more cells than the part (the analytic placer's
# "Failed to expand region" is the iCE40 flow's)
_PLACEMENT_FAILED = re.compile(r"no BELs remaining|Unable to find legal placement|Failed to expand region")
_UTILISATION_LINE = re.compile(r"(\w+):\s*(\d+)/\s*(\d+)\s+\d+%")


def log_utilisation(text):
    """The utilisation table of a nextpnr log (its last one): cell type -> (used, available).
    The packer writes it before placement, so it is there even when placement fails."""
    return {cell: (int(used), int(available)) for cell, used, available in _UTILISATION_LINE.findall(text)}


def overfull(log_path, cell):
    """``(used, available)`` of ``cell`` when nextpnr's log says the design could not be placed
    for want of room (the packer's count, which may exceed the part), else None."""
    path = Path(log_path)
    if not path.exists():
        return None
    text = path.read_text()
    if not _PLACEMENT_FAILED.search(text):
        return None
    return log_utilisation(text).get(cell)


def parse_utilisation(report_path, cell):
    """How many ``cell`` nextpnr placed (0 if the report does not list it)."""
    return utilisation(report_path).get(cell, (0, 0))[0]
