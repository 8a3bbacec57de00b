"""``hw.pipeline.replicas`` and ``KEEP_REPLICAS``: copies of a register survive Yosys.

Yosys's ``opt_merge`` folds flip-flops with the same inputs and initial value into one, so the
copies meant to sit beside separate loads would become one register with every load again. The
synthesis flows run ``KEEP_REPLICAS`` after reading the design; these tests synthesise a small
design for ECP5 and iCE40 and count the flip-flops Yosys keeps, with and without it."""

import pytest
from amaranth.hdl import Elaboratable, Module, Signal

from hw.pipeline import KEEP_REPLICAS, replicas
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


def test_copies_must_be_positive():
    with pytest.raises(ValueError, match="copies"):
        replicas("a", 8, 0)
