"""Integer <-> float conversions: Amaranth simulation with random back-pressure, and cocotb on
Verilator and Icarus, bit for bit against golden Numerics.from_int and Numerics.to_int8
(IntToFloat exhaustive over 17-bit integers on Verilator, FloatToInt8 exhaustive over bf16)."""

import gc

import numpy as np
import pytest

from hw.convert import FloatToInt8, IntToFloat
from sim.benches.convert import bf16_stimulus, int_stimulus
from sim.cocotb_run import missing_simulator, run_bench
from sim.golden_bits import float_to_int8_expected, int_to_float_expected
from sim.latency import measure_pipeline
from sim.streams import simulate_stream


@pytest.mark.parametrize("width, fmt", [(16, "bf16"), (17, "bf16"), (21, "bf16"), (8, "bf16"), (9, "bf16"),
                                        (3, "bf16"), (17, "fp32"), (30, "fp32"), (34, "bf16"), (64, "bf16")])
def test_int_to_float_amaranth_sim(width, fmt):
    values = int_stimulus(width, "300", seed=width)
    if len(values) > 1200:
        values = values[np.random.default_rng(0).choice(len(values), 1200, replace=False)]
    expected = int_to_float_expected(values, fmt)
    results = simulate_stream(IntToFloat(width, fmt), [int(v) for v in values])
    mismatch = [(int(v), hex(e), hex(g)) for v, e, g in zip(values, expected, results) if e != g]
    assert not mismatch, f"(int, expected, got): {mismatch[:5]}"


def test_float_to_int8_amaranth_sim():
    bits = bf16_stimulus("500", seed=3)
    bits = bits[np.random.default_rng(0).choice(len(bits), 1500, replace=False)]
    bits = np.concatenate([bits, [0, 0x8000, 1, 0x8001, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1, 0x42FF, 0xC2FF]])
    expected = float_to_int8_expected(bits)
    results = simulate_stream(FloatToInt8(), [int(v) for v in bits])
    mismatch = [(hex(x), int(e), g) for x, e, g in zip(bits, expected, results) if e != g]
    assert not mismatch, f"(bf16, expected, got): {mismatch[:5]}"


def test_latency_and_throughput():
    values = list(range(-10, 10))
    for width, latency in ((17, 5), (24, 5), (25, 7), (34, 7)):
        assert measure_pipeline(IntToFloat(width), values) == ({latency}, len(values) + latency - 1)
    bits = [0x3F80 + k for k in range(20)]
    assert measure_pipeline(FloatToInt8(), bits) == ({FloatToInt8.LATENCY}, len(bits) + FloatToInt8.LATENCY - 1)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_bad_parameters():
    for width in (1, 65, 17.0):
        with pytest.raises(ValueError, match="width must be"):
            IntToFloat(width)
    with pytest.raises(ValueError, match="IntToFloat supports"):
        IntToFloat(17, "e4m3")
    gc.collect()  # the rejected objects' UnusedElaboratable warnings fire here, under the filter


@pytest.mark.parametrize("simulator, cases", [("verilator", "exhaustive"), ("icarus", "20000")])
def test_cocotb_int_to_float_17(simulator, cases):
    if why := missing_simulator(simulator):
        pytest.fail(why)
    run_bench(IntToFloat(17), "int_to_float_17", "convert", simulator,
              env={"CONVERT_UNIT": "int_to_float", "CONVERT_WIDTH": "17", "CONVERT_CASES": cases})


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_cocotb_float_to_int8_exhaustive(simulator):
    if why := missing_simulator(simulator):
        pytest.fail(why)
    run_bench(FloatToInt8(), "float_to_int8", "convert", simulator,
              env={"CONVERT_UNIT": "float_to_int8", "CONVERT_CASES": "exhaustive"})
