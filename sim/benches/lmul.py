"""cocotb bench: the L-Mul unit against golden.lmul, bit for bit, with random back-pressure.

Environment: LMUL_FMT (format name), LMUL_CASES ("exhaustive" for every pair of an 8-bit format,
or a count of random pairs, always preceded by every special class crossed with random operands),
LMUL_SEED.
"""

import os

import cocotb
import numpy as np

from golden.formats import get_format
from golden.lmul import lmul
from sim.benches.streams import check_stream


def special_codes(f):
    m = f.man_bits
    codes = {0, 1, (1 << m) - 1, 1 << m, f.max_finite_field, f.max_finite_field - 1, f.bias << m,
             (f.bias << m) | ((1 << m) - 1), f.nan_code}
    if f.has_inf:
        codes |= {f.inf_field, f.inf_field | 1}
    return sorted(codes | {c | f.sign_bit for c in codes})


def stimulus(f, cases: str, seed: int):
    if cases == "exhaustive":
        a, b = np.meshgrid(np.arange(1 << f.width), np.arange(1 << f.width), indexing="ij")
        return a.ravel(), b.ravel()
    rng = np.random.default_rng(seed)
    specials = np.array(special_codes(f))
    per_special = 64
    sa = np.repeat(specials, per_special)
    sb = rng.integers(0, 1 << f.width, size=len(sa))
    ra = rng.integers(0, 1 << f.width, size=int(cases))
    rb = rng.integers(0, 1 << f.width, size=int(cases))
    # each special class on either side, crossed with random operands, then random pairs
    return np.concatenate([sa, sb, ra]), np.concatenate([sb, sa, rb])


@cocotb.test()
async def lmul_matches_golden(dut):
    f = get_format(os.environ["LMUL_FMT"])
    a, b = stimulus(f, os.environ.get("LMUL_CASES", "10000"), int(os.environ.get("LMUL_SEED", "1")))
    expected = lmul(a, b, f)
    inputs = (a | (b << f.width)).tolist()
    digits = f.width // 4

    def show(index, value):
        return (f"a=0x{int(a[index]):0{digits}x} b=0x{int(b[index]):0{digits}x}: "
                f"expected 0x{int(expected[index]):0{digits}x}, got 0x{value:0{digits}x}")

    await check_stream(dut, inputs, expected, show, f"{f.name} L-Mul", int(os.environ.get("LMUL_SEED", "1")))
