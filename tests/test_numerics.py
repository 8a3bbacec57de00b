"""The contract's primitives against independent expectations: exact rational arithmetic, the
published PLAN sigmoid table, and enumeration of every bf16 input where that is possible."""

from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest

from golden.formats import decode, encode
from golden.numerics import Approximations, Numerics, round_to

NX = Numerics()
ALL_POSITIVE_BF16 = decode(np.arange(0x0080, 0x7F80), "bf16")  # every positive normal value


def round_fraction_bf16(q: Fraction) -> float:
    """Correct RNE rounding of an exact positive rational to bf16 (8 significant bits)."""
    e = q.numerator.bit_length() - q.denominator.bit_length()
    if Fraction(2) ** e > q:
        e -= 1
    scaled = q / Fraction(2) ** (e - 7)  # in [128, 256)
    n, rem = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * rem
    if twice > scaled.denominator or (twice == scaled.denominator and n % 2):
        n += 1
    return float(Fraction(n) * Fraction(2) ** (e - 7))


def test_recip_correctly_rounded_for_every_bf16():
    got = NX.recip(ALL_POSITIVE_BF16)
    for x, g in zip(ALL_POSITIVE_BF16[::7], got[::7]):  # every 7th: ~4,600 values, all binades
        want = round_fraction_bf16(1 / Fraction(x))
        if abs(want) < 2.0**-126:
            want = 0.0
        assert g == want, f"recip({x!r}): expected {want!r}, got {g!r}"
    np.testing.assert_array_equal(NX.recip(-ALL_POSITIVE_BF16), -got)


def test_rsqrt_correctly_rounded_for_every_bf16():
    getcontext().prec = 60
    got = NX.rsqrt(ALL_POSITIVE_BF16)
    for x, g in zip(ALL_POSITIVE_BF16, got):
        exact = 1 / Decimal(x).sqrt()
        want = round_fraction_bf16(Fraction(exact))
        assert g == want, f"rsqrt({x!r}): expected {want!r}, got {g!r}"


def test_rsqrt_depends_on_exponent_parity_and_mantissa_only():
    # What lets the gateware use a 256-entry table: rsqrt(x * 4**k) == rsqrt(x) / 2**k.
    x = decode(np.arange(0x3F80, 0x4080), "bf16")  # [1, 4): both parities, every mantissa
    for k in (-20, -3, 5, 30):
        np.testing.assert_array_equal(NX.rsqrt(x * 4.0**k), NX.rsqrt(x) / 2.0**k)


def plan_sigmoid(x: float) -> float:
    """PLAN (Amin, Curtis, Hayes-Gill 1997), as published."""
    a = abs(x)
    if a >= 5:
        y = 1.0
    elif a >= 2.375:
        y = 0.03125 * a + 0.84375
    elif a >= 1:
        y = 0.125 * a + 0.625
    else:
        y = 0.25 * a + 0.5
    return y if x >= 0 else 1.0 - y


def test_sigmoid_is_plan_rounded_once_for_every_bf16_in_range():
    codes = np.concatenate([np.arange(0x0000, 0x4110), np.arange(0x8000, 0xC110)])  # |x| < 9
    x = decode(codes, "bf16")
    got = NX.sigmoid(x)
    want = round_to(np.array([plan_sigmoid(v) for v in x]))
    np.testing.assert_array_equal(got, want)
    # PLAN's published max error is 0.0189; the bf16 output adds at most half an ulp below 1 (2**-9).
    assert np.max(np.abs(got - 1 / (1 + np.exp(-x)))) <= 0.0189 + 2.0**-9


def test_silu_is_lmul_of_x_and_sigmoid():
    x = decode(np.arange(0x3C00, 0x4100), "bf16")
    from golden.lmul import lmul

    want = decode(lmul(encode(x, "bf16"), encode(round_to([plan_sigmoid(v) for v in x]), "bf16")), "bf16")
    np.testing.assert_array_equal(NX.silu(x), want)


def test_sum_squares_is_order_free_and_close_to_exact():
    rng = np.random.default_rng(0)
    v = round_to(rng.standard_normal((50, 512)) * np.exp2(rng.uniform(-6, 6, (50, 1))))
    ss = NX.sum_squares(v)
    perm = rng.permutation(512)
    np.testing.assert_array_equal(NX.sum_squares(v[:, perm]), ss)
    exact = np.sum(NX.mul(v, v), axis=-1, keepdims=True)
    # one bf16 rounding (2**-8) plus at most K truncations of 2**-23 relative to the largest term
    assert np.all(np.abs(ss - exact) <= exact * (2.0**-8 + 512 * 2.0**-23))


def test_sum_squares_exact_when_terms_share_an_exponent():
    v = round_to(np.array([[1.0, 1.25, -1.5, 1.75, 1.125]]))
    sq = NX.mul(v, v)
    assert float(NX.sum_squares(v)[0, 0]) == float(round_to(sq.sum()))


def test_to_int8_rounds_half_away_and_clamps():
    x = np.array([0.5, -0.5, 1.5, -2.5, 126.5, 127.6, -300.0, 0.49])
    np.testing.assert_array_equal(NX.to_int8(x), [1, -1, 2, -3, 127, 127, -127, 0])


def test_exact_switch_replaces_lmul_by_rounded_product():
    exact = Numerics(Approximations.exact())
    a, b = round_to(np.array([1.5, 3.0])), round_to(np.array([1.5, -5.0]))
    np.testing.assert_array_equal(exact.mul(a, b), [2.25, -15.0])
    np.testing.assert_array_equal(NX.mul(a, b), [2.125, -14.5])  # 1.5*1.5 carries; 3*-5 does not


@pytest.mark.parametrize("fmt", ["bf16", "fp32"])
def test_add_is_exactly_rounded(fmt):
    rng = np.random.default_rng(5)
    a = round_to(rng.standard_normal(2000) * np.exp2(rng.integers(-30, 30, 2000)), fmt)
    b = round_to(rng.standard_normal(2000) * np.exp2(rng.integers(-30, 30, 2000)), fmt)
    got = NX.add(a, b, fmt)
    for x, y, g in zip(a[:500], b[:500], got[:500]):
        q = Fraction(x) + Fraction(y)
        if fmt == "bf16" and q != 0:
            want = round_fraction_bf16(abs(q)) * (1 if q > 0 else -1)
            assert g == want
    assert np.all(np.abs(got - (a + b)) <= np.abs(a + b) * 2.0 ** -(8 if fmt == "bf16" else 24))
