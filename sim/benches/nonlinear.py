"""cocotb bench: the PLAN sigmoid and SiLU against golden Numerics.sigmoid/silu, bit for bit, with
random back-pressure.

Environment: NL_FUNC ("sigmoid" or "silu"), NL_CASES ("exhaustive": all 65,536 bf16 inputs; or a
count of random inputs, preceded by every input with |x| in [0.5, 8) and the specials), NL_SEED.
"""

import os

import cocotb
import numpy as np

from sim.benches.streams import check_stream
from sim.golden_bits import sigmoid_expected, silu_expected


def stimulus(cases: str, seed: int) -> np.ndarray:
    if cases == "exhaustive":
        return np.random.default_rng(seed).permutation(1 << 16)  # shuffled: neighbours differ
    rng = np.random.default_rng(seed)
    segments = np.arange(0x3F00, 0x4100, dtype=np.int64)  # |x| in [0.5, 8): every segment edge
    specials = np.array([0, 1, 0x7F, 0x80, 0x7F7F, 0x7F80, 0x7F81, 0x7FC0], np.int64)
    return np.concatenate([segments, segments | 0x8000, specials, specials | 0x8000,
                           rng.integers(0, 1 << 16, int(cases))])


@cocotb.test()
async def nonlinear_matches_golden(dut):
    func = os.environ["NL_FUNC"]
    golden = {"sigmoid": sigmoid_expected, "silu": silu_expected}[func]
    seed = int(os.environ.get("NL_SEED", "1"))
    x = stimulus(os.environ.get("NL_CASES", "exhaustive"), seed)
    expected = golden(x)
    def show(index, value):
        return f"x=0x{int(x[index]):04x}: expected 0x{int(expected[index]):04x}, got 0x{value:04x}"

    await check_stream(dut, x.tolist(), expected, show, func, seed)
