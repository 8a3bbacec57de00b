"""``hw.pipeline.after_read_script``: the LUT RAM hint keeps ECP5's small buffers out of block
RAM, and the iCE40 flows drop it (iCE40 has no LUT RAM; Yosys stops at a memory asking for it).
A buffer shaped like a quantiser lane's (70 x 16 bits) through Yosys for both families."""

import collections

import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import memory

from hw.normquant import BUFFER_ATTRS
from hw.pipeline import after_read_script
from yosys_netlist import synthesise


class Buffer(Elaboratable):
    def __init__(self):
        self.w_addr, self.r_addr = Signal(7), Signal(7)
        self.w_data, self.w_en, self.r_data = Signal(16), Signal(), Signal(16)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=16, depth=70, init=[], attrs=BUFFER_ATTRS)
        write, read = mem.write_port(), mem.read_port()
        m.d.comb += [write.addr.eq(self.w_addr), write.data.eq(self.w_data), write.en.eq(self.w_en),
                     read.addr.eq(self.r_addr), self.r_data.eq(read.data)]
        return m


def _synth(tmp_path, synth, script):
    d = Buffer()
    netlist, failure = synthesise(tmp_path, d, [d.w_addr, d.r_addr, d.w_data, d.w_en, d.r_data],
                                  f"{script} {synth} -top top")
    if netlist is None:
        return failure
    return collections.Counter(c["type"] for c in netlist["modules"]["top"]["cells"].values())


def test_ecp5_keeps_the_buffer_in_lut_ram(tmp_path):
    cells = _synth(tmp_path, "synth_ecp5", after_read_script("ecp5") + ";")
    assert cells["TRELLIS_DPR16X4"] > 0 and cells["DP16KD"] == 0, cells


def test_ice40_maps_the_buffer_to_block_ram(tmp_path):
    cells = _synth(tmp_path, "synth_ice40", after_read_script("ice40") + ";")
    assert cells["SB_RAM40_4K"] == 1, cells


def test_ice40_fails_with_the_hint(tmp_path):
    # the reason for dropping it
    out = _synth(tmp_path, "synth_ice40", "")
    assert isinstance(out, str) and "no valid mapping found for memory" in out


def test_unknown_family_or_source():
    with pytest.raises(ValueError, match="unknown FPGA family"):
        after_read_script("xilinx")
    with pytest.raises(ValueError, match="unknown design source"):
        after_read_script("ecp5", "vhdl")
