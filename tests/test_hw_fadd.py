"""The floating-point adder: Amaranth simulation with random back-pressure, and cocotb on Verilator
and Icarus, bit for bit against golden Numerics.add/sub (corner cases plus random operands)."""

import gc

import numpy as np
import pytest

from hw.fadd import FAdd
from sim.cocotb_run import missing_simulator, run_bench
from sim.golden_bits import fadd_corner_pairs, fadd_expected, fadd_random_pairs
from sim.latency import measure_pipeline
from sim.streams import simulate_stream


@pytest.mark.parametrize("fmt", ["bf16", "fp32"])
def test_amaranth_sim_with_backpressure(fmt):
    ca, cb, cs = fadd_corner_pairs(fmt, seed=3)
    pick = np.random.default_rng(0).choice(len(ca), 1500, replace=False)
    ra, rb, rs = fadd_random_pairs(fmt, 1000, seed=4)
    a, b, sub = np.concatenate([ca[pick], ra]), np.concatenate([cb[pick], rb]), np.concatenate([cs[pick], rs])
    expected = fadd_expected(a, b, sub, fmt)
    dut = FAdd(fmt)
    results = simulate_stream(dut, [{"a": int(x), "b": int(y), "sub": int(s)} for x, y, s in zip(a, b, sub)])
    mismatch = [(hex(x), "-" if s else "+", hex(y), hex(e), hex(g))
                for x, y, s, e, g in zip(a, b, sub, expected, results) if e != g]
    assert not mismatch, f"(a, op, b, expected, got): {mismatch[:5]}"


def test_tag_travels_with_its_sum():
    rng = np.random.default_rng(5)
    a, b, sub = fadd_random_pairs("bf16", 300, seed=6)
    tags = rng.integers(0, 1 << 16, len(a))
    expected = fadd_expected(a, b, sub, "bf16")
    dut = FAdd("bf16", tag_width=16)
    payloads = [{"a": int(x), "b": int(y), "sub": int(s), "tag": int(t)} for x, y, s, t in zip(a, b, sub, tags)]
    results = simulate_stream(dut, payloads)
    assert [int(r.sum) for r in results] == expected.tolist()
    assert [int(r.tag) for r in results] == tags.tolist()


@pytest.mark.parametrize("fmt", ["bf16", "fp32"])
def test_latency_and_throughput(fmt):
    payloads = [{"a": 0x3F80 + k, "b": 0x4000 + k, "sub": k & 1} for k in range(20)]
    assert measure_pipeline(FAdd(fmt), payloads) == ({FAdd.LATENCY}, len(payloads) + FAdd.LATENCY - 1)


@pytest.mark.parametrize("wired", [("s0", "s2", "s5", "s7"), FAdd.STAGES])
def test_wired_stages_give_the_same_sums_sooner(wired):
    """Without some stages' registers (a slow clock's adder, hw.pipeline.Stages): the same sums
    under back-pressure, one cycle sooner per wired stage."""
    a, b, sub = fadd_random_pairs("fp32", 800, seed=8)
    expected = fadd_expected(a, b, sub, "fp32")
    payloads = [{"a": int(x), "b": int(y), "sub": int(s)} for x, y, s in zip(a, b, sub)]
    assert simulate_stream(FAdd("fp32", wired=wired), payloads) == expected.tolist()
    latency = FAdd.LATENCY - len(wired)
    dut = FAdd("fp32", wired=wired)
    assert dut.latency == latency
    assert measure_pipeline(dut, payloads[:20]) == ({latency}, 20 + latency - 1)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="FAdd supports"):
        FAdd("fp16")
    with pytest.raises(ValueError, match="unknown float format"):
        FAdd("fp8")
    with pytest.raises(ValueError, match="tag_width"):
        FAdd("bf16", tag_width=-1)
    with pytest.raises(ValueError, match=r"unknown stages \['s9'\]"):
        FAdd("bf16", wired=("s1", "s9"))
    gc.collect()  # the rejected objects' UnusedElaboratable warnings fire here, under the filter


@pytest.mark.parametrize("fmt, simulator, cases", [
    ("bf16", "verilator", "1000000"),
    ("bf16", "icarus", "20000"),
    ("fp32", "verilator", "200000"),
    ("fp32", "icarus", "20000"),
])
def test_cocotb(fmt, simulator, cases):
    if why := missing_simulator(simulator):
        pytest.fail(why)
    run_bench(FAdd(fmt), f"fadd_{fmt}", "fadd", simulator, env={"FADD_FMT": fmt, "FADD_CASES": cases})
