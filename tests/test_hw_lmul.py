"""The L-Mul unit: Amaranth simulation with random back-pressure, and cocotb on Verilator and
Icarus, bit for bit against golden.lmul (exhaustive for the 8-bit formats)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.formats import get_format
from golden.lmul import lmul
from hw.lmul import LMul
from sim.cocotb_run import missing_simulator, run_bench
from sim.streams import collect, feed, simulate_stream


@pytest.mark.parametrize("compact_bounds", [False, True])
@pytest.mark.parametrize("fmt", ["bf16", "fp32", "e4m3", "e5m2", "fp16"])
def test_amaranth_sim_random_with_backpressure(fmt, compact_bounds):
    f = get_format(fmt)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 1 << f.width, 600)
    b = rng.integers(0, 1 << f.width, 600)
    a[:40] = 0  # zero against anything
    b[40:80] = f.nan_code
    expected = lmul(a, b, f)
    dut = LMul(fmt, compact_bounds=compact_bounds)
    results = simulate_stream(dut, [{"a": int(x), "b": int(y)} for x, y in zip(a, b)])
    mismatch = [(hex(x), hex(y), hex(e), hex(g)) for x, y, e, g in zip(a, b, expected, results) if e != g]
    assert not mismatch, f"(a, b, expected, got): {mismatch[:5]}"


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_unknown_format():
    with pytest.raises(ValueError, match="unknown float format"):
        LMul("fp8")


@pytest.mark.parametrize("simulator, compact_bounds", [("verilator", False), ("icarus", False), ("verilator", True)])
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_cocotb_exhaustive_8bit(simulator, fmt, compact_bounds):
    if why := missing_simulator(simulator):
        pytest.fail(why)
    name = f"lmul_{fmt}" + ("_compact" if compact_bounds else "")
    run_bench(LMul(fmt, compact_bounds=compact_bounds), name, "lmul", simulator,
              env={"LMUL_FMT": fmt, "LMUL_CASES": "exhaustive"})


@pytest.mark.parametrize("simulator, cases, compact_bounds", [
    ("verilator", "1000000", False), ("icarus", "20000", False), ("verilator", "1000000", True)])
@pytest.mark.parametrize("fmt", ["bf16", "fp32"])
def test_cocotb_wide_formats(simulator, cases, fmt, compact_bounds):
    if why := missing_simulator(simulator):
        pytest.fail(why)
    name = f"lmul_{fmt}" + ("_compact" if compact_bounds else "")
    run_bench(LMul(fmt, compact_bounds=compact_bounds), name, "lmul", simulator,
              env={"LMUL_FMT": fmt, "LMUL_CASES": cases})


def test_tag_travels_with_its_product():
    f = get_format("bf16")
    rng = np.random.default_rng(4)
    a, b = rng.integers(0, 1 << 16, 300), rng.integers(0, 1 << 16, 300)
    dut = LMul("bf16", tag_width=9)
    results = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed(dut.i, [{"a": int(x), "b": int(y), "tag": k} for k, (x, y) in enumerate(zip(a, b))],
                           busy=0.3, seed=5))
    sim.add_testbench(collect(dut.o, len(a), results, busy=0.4, seed=6))
    sim.run()
    assert [int(r.tag) for r in results] == list(range(300))
    assert [int(r.product) for r in results] == lmul(a, b, f).tolist()


def test_classified_b_matches_golden():
    """``b_class=True``: b's classes come with it (here worked out from the format's fields in
    NumPy, not by the unit's own ``classify``); every special class of a and b is crossed."""
    f = get_format("bf16")
    rng = np.random.default_rng(7)
    specials = np.array([0, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x0001, 0x7F7F, 0x3F80])
    a = np.concatenate([np.repeat(specials, len(specials)), rng.integers(0, 1 << 16, 300)])
    b = np.concatenate([np.tile(specials, len(specials)), rng.integers(0, 1 << 16, 300)])
    exp, man = (b >> f.man_bits) & f.exp_all_ones, b & ((1 << f.man_bits) - 1)
    classes = [{"nan": int(e == f.exp_all_ones and m != 0), "inf": int(e == f.exp_all_ones and m == 0),
                "zero": int(e == 0)} for e, m in zip(exp, man)]
    results = simulate_stream(LMul("bf16", b_class=True),
                              [{"a": int(x), "b": int(y), "b_class": c} for x, y, c in zip(a, b, classes)])
    expected = lmul(a, b, f)
    mismatch = [(hex(x), hex(y), hex(e), hex(g)) for x, y, e, g in zip(a, b, expected, results) if e != g]
    assert not mismatch, f"(a, b, expected, got): {mismatch[:5]}"
