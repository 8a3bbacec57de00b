"""The PLAN sigmoid and SiLU: Amaranth simulation with random back-pressure, and cocotb on Verilator
and Icarus exhaustively over all 65,536 bf16 inputs, bit for bit against golden
Numerics.sigmoid/silu."""

import gc

import numpy as np
import pytest

from hw.nonlinear import Sigmoid, SiLU
from sim.benches.nonlinear import stimulus
from sim.cocotb_run import missing_simulator, run_bench
from sim.golden_bits import sigmoid_expected, silu_expected
from sim.latency import measure_pipeline
from sim.streams import simulate_stream

UNITS = {"sigmoid": (Sigmoid, sigmoid_expected), "silu": (SiLU, silu_expected)}


@pytest.mark.parametrize("func", ["sigmoid", "silu"])
def test_amaranth_sim_with_backpressure(func):
    unit, golden = UNITS[func]
    x = stimulus("1500", seed=2)  # 1024 inputs around the segments, 16 specials, 1500 random
    x = np.concatenate([x[:1024:2], x[1024:]])  # every other input around the segments
    expected = golden(x)
    dut = unit()
    results = simulate_stream(dut, [int(v) for v in x])
    mismatch = [(hex(v), hex(e), hex(g)) for v, e, g in zip(x, expected, results) if e != g]
    assert not mismatch, f"(x, expected, got): {mismatch[:5]}"


def test_sigmoid_tag_travels_with_its_result():
    x = np.random.default_rng(3).integers(0, 1 << 16, 300)
    tags = (x * 7 + 1) & 0xFFF
    dut = Sigmoid(tag_width=12)
    results = simulate_stream(dut, [{"x": int(v), "tag": int(t)} for v, t in zip(x, tags)])
    assert [int(r.y) for r in results] == sigmoid_expected(x).tolist()
    assert [int(r.tag) for r in results] == tags.tolist()


@pytest.mark.parametrize("func", ["sigmoid", "silu"])
def test_latency_and_throughput(func):
    unit, _ = UNITS[func]
    x = [0x3F80 + k for k in range(20)]
    assert measure_pipeline(unit(), x) == ({unit.LATENCY}, len(x) + unit.LATENCY - 1)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="tag_width"):
        Sigmoid(tag_width=-3)
    gc.collect()  # the rejected objects' UnusedElaboratable warnings fire here, under the filter


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
@pytest.mark.parametrize("func", ["sigmoid", "silu"])
def test_cocotb_exhaustive(func, simulator):
    if why := missing_simulator(simulator):
        pytest.fail(why)
    unit, _ = UNITS[func]
    run_bench(unit(), func, "nonlinear", simulator, env={"NL_FUNC": func, "NL_CASES": "exhaustive"})
