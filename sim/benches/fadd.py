"""cocotb bench: the floating-point adder against golden Numerics.add/sub, bit for bit, with random
back-pressure.

Environment: FADD_FMT ("bf16" or "fp32"), FADD_CASES (a count of random operand triples, always
preceded by the corner cases of ``sim.golden_bits.fadd_corner_pairs``), FADD_SEED.
"""

import os

import cocotb
import numpy as np

from golden.formats import get_format
from sim.benches.streams import check_stream
from sim.golden_bits import fadd_corner_pairs, fadd_expected, fadd_random_pairs


@cocotb.test()
async def fadd_matches_golden(dut):
    f = get_format(os.environ["FADD_FMT"])
    seed = int(os.environ.get("FADD_SEED", "1"))
    ca, cb, cs = fadd_corner_pairs(f, seed)
    ra, rb, rs = fadd_random_pairs(f, int(os.environ.get("FADD_CASES", "10000")), seed + 1)
    a, b, sub = np.concatenate([ca, ra]), np.concatenate([cb, rb]), np.concatenate([cs, rs])
    expected = fadd_expected(a, b, sub, f)
    w = f.width  # Python integers: an fp32 operand pair does not fit an int64
    inputs = [x | (y << w) | (s << (2 * w)) for x, y, s in zip(a.tolist(), b.tolist(), sub.tolist())]
    digits = f.width // 4

    def show(index, value):
        return (f"0x{int(a[index]):0{digits}x} {'-' if sub[index] else '+'} 0x{int(b[index]):0{digits}x}: "
                f"expected 0x{int(expected[index]):0{digits}x}, got 0x{value:0{digits}x}")

    await check_stream(dut, inputs, expected, show, f"{f.name} adder ({len(ca)} corner cases)", seed)
