"""L-Mul and the float formats, checked against independent expectations.

The reference below is written from the real-valued description in lmul.md (fields decoded by
hand, the mantissa carry handled as Mitchell's form, the corner cases as the contract states them),
not from the integer trick that golden/lmul.py uses.
"""

import math

import numpy as np
import pytest
import torch

from golden.formats import FORMATS, decode, encode
from golden.lmul import lmul, lmul_constant

# Published constants (lmul.md): C per format.
PUBLISHED_C = {"fp32": 0x3F780000, "bf16": 0x3F78, "fp16": 0x3BC0, "e4m3": 0x37, "e5m2": 0x3B}


@pytest.mark.parametrize("name", sorted(PUBLISHED_C))
def test_constant_matches_published(name):
    assert lmul_constant(name) == PUBLISHED_C[name]


def reference_lmul(a: int, b: int, name: str) -> float:
    """One L-Mul, from the paper's formula in real numbers; returns the value (nan for NaN)."""
    f = FORMATS[name]
    e_bits, m_bits, bias = f.exp_bits, f.man_bits, f.bias

    def fields(x):
        return (x >> (e_bits + m_bits)) & 1, (x >> m_bits) & ((1 << e_bits) - 1), x & ((1 << m_bits) - 1)

    def kind(exp, man):
        top = (1 << e_bits) - 1
        if f.has_inf and exp == top:
            return "nan" if man else "inf"
        if not f.has_inf and exp == top and man == (1 << m_bits) - 1:
            return "nan"
        return "zero" if exp == 0 else "normal"

    (sa, ea, ma), (sb, eb, mb) = fields(a), fields(b)
    ka, kb = kind(ea, ma), kind(eb, mb)
    sign = -1.0 if sa ^ sb else 1.0
    if "nan" in (ka, kb) or ({ka, kb} == {"inf", "zero"}):
        return math.nan
    if "inf" in (ka, kb):
        return sign * math.inf
    if "zero" in (ka, kb):
        return 0.0
    l = m_bits if m_bits <= 3 else (3 if m_bits == 4 else 4)
    s = ma / 2**m_bits + mb / 2**m_bits + 2.0**-l
    exp = (ea - bias) + (eb - bias)
    # Carries into the exponent: Mitchell's form plus the offset. With l = 4 and both mantissas
    # near 1, s reaches 2 and the exponent moves by two.
    carries = math.floor(s)
    exp, mant = exp + carries, s - carries
    if exp + bias <= 0:
        return 0.0  # underflow flushes to +0
    value = math.ldexp(1 + mant, exp)
    return sign * min(value, f.max_finite)  # overflow saturates


def check_against_reference(a, b, name):
    got = decode(lmul(a, b, name), name)
    want = np.array([reference_lmul(int(x), int(y), name) for x, y in zip(a, b)])
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    # +0 is the only zero the contract produces.
    zero_sign_ok = ~((want == 0) & (lmul(a, b, name) != 0))
    bad = np.flatnonzero(~(same & zero_sign_ok))
    if len(bad):
        i = bad[0]
        raise AssertionError(
            f"{name}: {len(bad)} mismatches; first: a=0x{int(a[i]):x} b=0x{int(b[i]):x} "
            f"expected {want[i]!r} got {got[i]!r} (bits 0x{int(lmul(a[i], b[i], name)):x})")


@pytest.mark.parametrize("name", ["e4m3", "e5m2"])
def test_lmul_exhaustive_8bit(name):
    a, b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    check_against_reference(a.ravel(), b.ravel(), name)


def special_codes(name):
    f = FORMATS[name]
    m = f.man_bits
    codes = [0, 1, (1 << m) - 1, 1 << m, f.max_finite_field, f.max_finite_field - 1,
             f.bias << m, (f.bias << m) | ((1 << m) - 1), f.nan_code]
    if f.has_inf:
        codes += [f.inf_field, f.inf_field | 1]
    return np.array(codes + [c | f.sign_bit for c in codes])


@pytest.mark.parametrize("name", ["bf16", "fp16", "fp32"])
def test_lmul_wide_specials_and_random(name):
    f = FORMATS[name]
    rng = np.random.default_rng(1)
    specials = special_codes(name)
    n = 20000
    rand = rng.integers(0, 1 << f.width, size=n)
    a = np.concatenate([np.repeat(specials, n // 10), rand])
    b = np.concatenate([rng.integers(0, 1 << f.width, size=len(specials) * (n // 10)), rng.permutation(rand)])
    check_against_reference(a, b, name)
    check_against_reference(b, a, name)


def test_lmul_is_close_to_the_product():
    # Not bit-exactness but the claim: bf16 L-Mul is within 12.5% of the true product.
    rng = np.random.default_rng(2)
    x, y = rng.uniform(-4, 4, 10000), rng.uniform(-4, 4, 10000)
    xa, ya = decode(encode(x, "bf16"), "bf16"), decode(encode(y, "bf16"), "bf16")
    got = decode(lmul(encode(xa, "bf16"), encode(ya, "bf16"), "bf16"), "bf16")
    rel = np.abs(got - xa * ya) / np.abs(xa * ya)
    assert rel.max() < 0.125 and 0.01 < rel.mean() < 0.05


@pytest.mark.parametrize("name, dtype", [("bf16", torch.bfloat16), ("e4m3", torch.float8_e4m3fn),
                                         ("e5m2", torch.float8_e5m2), ("fp16", torch.float16)])
def test_encode_rounds_like_torch_in_range(name, dtype):
    """RNE rounding agrees with torch's conversion wherever both give a normal finite value."""
    f = FORMATS[name]
    rng = np.random.default_rng(3)
    x = rng.standard_normal(50000) * np.exp2(rng.uniform(-10, 10, 50000))
    x = np.clip(x, -f.max_finite, f.max_finite)
    want = torch.from_numpy(x).to(torch.float32).to(dtype).to(torch.float64).numpy()
    ours = decode(encode(x.astype(np.float32).astype(np.float64), name), name)
    # Inputs below the smallest normal round at normal precision, then flush (the contract);
    # torch rounds them onto its subnormal grid. Compare where neither is involved.
    normal = np.isfinite(want) & (np.abs(want) >= f.min_normal) & (np.abs(x) >= f.min_normal)
    assert normal.sum() > 10000
    np.testing.assert_array_equal(ours[normal], want[normal])


def test_encode_corner_cases():
    bf = FORMATS["bf16"]
    assert encode(0.0, "bf16") == 0 and encode(-0.0, "bf16") == 0  # zeros are +0
    assert encode(1e-40, "bf16") == 0  # below min normal: flush
    assert encode(1e39, "bf16") == bf.max_finite_field  # saturate, never Inf
    assert encode(-np.inf, "bf16") == bf.max_finite_field | bf.sign_bit
    assert encode(np.nan, "bf16") == 0x7FC0
    assert encode(1000.0, "e4m3") == 0x7E  # 448: e4m3's largest finite, not the NaN code 0x7F
    assert encode(1.0 + 2**-8, "bf16") == 0x3F80  # tie to even
    assert encode(1.0 + 3 * 2**-8, "bf16") == 0x3F82
