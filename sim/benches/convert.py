"""cocotb bench: IntToFloat against golden Numerics.from_int and FloatToInt8 against golden
Numerics.to_int8, bit for bit, with random back-pressure.

Environment: CONVERT_UNIT ("int_to_float" or "float_to_int8"), CONVERT_WIDTH and CONVERT_FMT
(int_to_float), CONVERT_CASES ("exhaustive": every input; or a count of random inputs, always
preceded by the corner cases), CONVERT_SEED.
"""

import os

import cocotb
import numpy as np

from golden.formats import get_format
from sim.benches.streams import check_stream
from sim.golden_bits import float_to_int8_expected, int_to_float_expected


def int_stimulus(width: int, cases: str, seed: int) -> np.ndarray:
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    if cases == "exhaustive":
        return np.arange(lo, hi, dtype=np.int64)
    rng = np.random.default_rng(seed)
    # corners: the ends, small values (exact), powers of two and their neighbours (rounding ties)
    powers = np.array([1 << k for k in range(width - 1)], np.int64)
    corners = np.concatenate([[lo, lo + 1, hi - 1, 0], np.arange(-300, 300), powers, powers - 1,
                              powers + 1, powers + powers // 2, -powers, -powers - 1, -(powers + powers // 2)])
    corners = corners[(corners >= lo) & (corners < hi)]
    # random values at every magnitude
    rand = rng.integers(lo, hi, int(cases), dtype=np.int64) >> rng.integers(0, width, int(cases))
    return np.concatenate([corners, rand])


def bf16_stimulus(cases: str, seed: int) -> np.ndarray:
    if cases == "exhaustive":
        return np.arange(1 << 16, dtype=np.int64)
    rng = np.random.default_rng(seed)
    near = np.arange(0x3D00, 0x4400, dtype=np.int64)  # |x| from 2^-5 to 512: every code boundary
    return np.concatenate([near, near | 0x8000, rng.integers(0, 1 << 16, int(cases))])


@cocotb.test()
async def convert_matches_golden(dut):
    unit = os.environ["CONVERT_UNIT"]
    cases = os.environ.get("CONVERT_CASES", "10000")
    seed = int(os.environ.get("CONVERT_SEED", "1"))
    if unit == "int_to_float":
        width = int(os.environ["CONVERT_WIDTH"])
        f = get_format(os.environ.get("CONVERT_FMT", "bf16"))
        values = int_stimulus(width, cases, seed)
        expected = int_to_float_expected(values, f)
        inputs = (values & ((1 << width) - 1)).tolist()
        digits = f.width // 4

        def show_in(i):
            return f"{int(values[i])}"

        def show_out(v):
            return f"0x{int(v):0{digits}x}"
    elif unit == "float_to_int8":
        values = bf16_stimulus(cases, seed)
        expected = float_to_int8_expected(values) & 0xFF
        inputs = values.tolist()

        def show_in(i):
            return f"0x{int(values[i]):04x}"

        def show_out(v):
            v = int(v)
            return f"{v - 256 if v & 0x80 else v} (0x{v:02x})"
    else:
        raise ValueError(f"unknown CONVERT_UNIT {unit!r}")
    def show(index, value):
        return f"{show_in(index)}: expected {show_out(expected[index])}, got {show_out(value)}"

    await check_stream(dut, inputs, expected, show, unit, seed)
