"""``hw.pipeline.replicas`` and ``KEEP_REPLICAS``: copies of a register survive Yosys.

Yosys's ``opt_merge`` folds flip-flops with the same inputs and initial value into one, so the
copies meant to sit beside separate loads would become one register with every load again. The
synthesis flows run ``KEEP_REPLICAS`` after reading the design; these tests synthesise a small
design for ECP5 and iCE40 and count the flip-flops Yosys keeps, with and without it."""

from collections import defaultdict

import pytest
from amaranth.hdl import Elaboratable, Module, Signal

from hw.pipeline import KEEP_REPLICAS, after_read_script, replicas
from hw.ternary_matvec import TernaryMatVec
from yosys_netlist import synthesise

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
    design = Fanout()
    netlist, failure = synthesise(tmp_path, design, [design.a, *design.o],
                                  f"{KEEP_REPLICAS + ';' if keep else ''} {synth} -top top")
    assert netlist is not None, failure
    cells = netlist["modules"]["top"]["cells"].values()
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


def test_address_copies_of_memory_slices_are_kept_in_the_board_flow(tmp_path):
    """The lanes' activation memory is cut into slices, each read at its own copy of the address.
    Read as RTLIL (as the board build reads it), a copy that drives a memory port's address is a
    flip-flop whose output wire is the port's, with the copy's name only an alias: the script
    must still mark it, or the slices end up sharing one address register across the die."""
    dut = TernaryMatVec(32, 4, 64)
    assert len(dut.slices) == 2
    netlist, failure = synthesise(tmp_path, dut, None, f"{after_read_script('ecp5', 'rtlil')}; synth_ecp5 -top top",
                                  source="rtlil")
    assert netlist is not None, failure
    address_of = defaultdict(set)  # slice -> the nets on its LUT RAMs' read address bit 0
    for name, cell in netlist["modules"]["top"]["cells"].items():
        if cell["type"] == "TRELLIS_DPR16X4" and name.startswith("act"):
            address_of[name.split(".")[0]].add(cell["connections"]["RAD"][0])
    assert sorted(address_of) == ["act0", "act1"]
    assert all(len(nets) == 1 for nets in address_of.values())
    assert address_of["act0"] != address_of["act1"]


def test_copies_must_be_positive():
    with pytest.raises(ValueError, match="copies"):
        replicas("a", 8, 0)
