"""The golden model on bit patterns for the adder, the conversions and the nonlinear units, and the
stimulus (corner cases and random operands) their tests share.

``golden.numerics.Numerics`` works on values; the units see bit patterns. Inputs are ``decode``-d
(the primitives read a subnormal as zero, as the contract says), results ``encode``-d.
"""

from __future__ import annotations

import numpy as np

from golden.formats import decode, encode, get_format
from golden.numerics import Numerics

__all__ = [
    "fadd_expected", "fadd_corner_pairs", "fadd_random_pairs",
    "int_to_float_expected", "float_to_int8_expected", "sigmoid_expected", "silu_expected",
]

NX = Numerics()


def fadd_expected(a, b, sub, fmt) -> np.ndarray:
    """Bits of ``a + b`` (``sub`` 0) or ``a - b`` (``sub`` 1) by ``Numerics.add`` / ``.sub``."""
    f = get_format(fmt)
    va, vb = decode(np.asarray(a, np.int64), f), decode(np.asarray(b, np.int64), f)
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.where(np.asarray(sub) != 0, NX.sub(va, vb, f.name), NX.add(va, vb, f.name))
    return encode(out, f)


def _special_fields(f):
    m = f.man_bits
    top = f.exp_all_ones - 1
    return sorted({
        0, 1, (1 << m) - 1,  # zero, subnormals
        1 << m, (1 << m) | 1, (2 << m) - 1, 2 << m,  # around the smallest normal
        f.max_finite_field, f.max_finite_field - 1, top << m,  # around the largest finite
        f.bias << m, (f.bias << m) | 1, ((f.bias - 1) << m) | ((1 << m) - 1),  # around 1.0
        f.inf_field, f.nan_code, f.inf_field | 1,  # Inf and NaNs (never in the token step)
    })


def fadd_corner_pairs(fmt, seed: int = 0):
    """Corner-case operand triples (a, b, sub): every special code against every other (both
    signs, both operations); exact cancellation; rounding ties and near-ties; rounding that
    carries into the exponent; near-cancellation with long renormalisation; huge exponent
    differences; results that flush to +0 or saturate."""
    f = get_format(fmt)
    m, w = f.man_bits, f.width
    rng = np.random.default_rng(seed)
    special = np.array(_special_fields(f), np.int64)
    special = np.concatenate([special, special | f.sign_bit])
    sa, sb = np.meshgrid(special, special, indexing="ij")
    a_parts, b_parts, op_parts = [], [], []

    def add(a, b, sub=None):
        a = np.asarray(a, np.int64) & ((1 << w) - 1)
        b = np.asarray(b, np.int64) & ((1 << w) - 1)
        if sub is None:
            sub = rng.integers(0, 2, len(a))
        a_parts.append(a)
        b_parts.append(b)
        op_parts.append(np.broadcast_to(sub, a.shape).astype(np.int64))

    for op in (0, 1):
        add(sa.ravel(), sb.ravel(), op)

    def rand_normal(n, exp_lo=1, exp_hi=None):
        exp_hi = f.exp_all_ones - 1 if exp_hi is None else exp_hi
        exp = rng.integers(exp_lo, exp_hi + 1, n)
        return (rng.integers(0, 2, n) << (w - 1)) | (exp << m) | rng.integers(0, 1 << m, n)

    n = 2000
    x = rand_normal(n)
    add(x, x, 1)  # a - a
    add(x, x ^ f.sign_bit, 0)  # a + (-a)
    # ties: b is an odd multiple of half an ulp of a (exact ties), or just above one
    for j in range(0, 4):
        x = rand_normal(n, m + 3, f.exp_all_ones - 2)
        exp_x = (x >> m) & f.exp_all_ones
        top_bits = ((1 << m) - 1) ^ ((1 << (m - j)) - 1)  # only the top j fraction bits
        man = rng.integers(0, 1 << m, n)
        man = np.where(rng.random(n) < 0.75, man & top_bits, man)  # mostly exact ties
        y = (rng.integers(0, 2, n) << (w - 1)) | ((exp_x - m - 1 + j) << m) | man
        add(x, y)
        add(y, x)
    # rounding carries into the exponent: an all-ones mantissa plus half an ulp or more
    x = rand_normal(n, m + 3, f.exp_all_ones - 1) | ((1 << m) - 1)
    exp_x = (x >> m) & f.exp_all_ones
    man = np.where(rng.random(n) < 0.5, 0, rng.integers(0, 1 << m, n))
    y = (x & f.sign_bit) | ((exp_x - m - 1 - rng.integers(0, 2, n)) << m) | man
    add(x, y, 0)
    add(x, y ^ f.sign_bit, 1)
    # near-cancellation: b = a with a few low mantissa bits changed, opposite effective sign
    x = rand_normal(n, 2, f.exp_all_ones - 2)
    y = x ^ rng.integers(0, 1 << min(m, 6), n) ^ (rng.integers(0, 2, n) << m)
    add(x, y ^ f.sign_bit, 0)
    add(x, y, 1)
    # huge exponent differences
    big = rand_normal(n, f.exp_all_ones - 40, f.exp_all_ones - 1)
    small = rand_normal(n, 1, 40)
    add(big, small)
    add(small, big)
    # flush: tiny operands of opposite effective signs, results around and below 2^-126
    x = rand_normal(n, 1, 3)
    y = rand_normal(n, 1, 3)
    add(x, y)
    # saturation: large operands of the same effective sign, results around the largest finite
    x = rand_normal(n, f.exp_all_ones - 3, f.exp_all_ones - 1) & ~f.sign_bit
    y = rand_normal(n, f.exp_all_ones - 3 - m, f.exp_all_ones - 1) & ~f.sign_bit
    add(x, y, 0)
    add(x | f.sign_bit, y, 1)
    return np.concatenate(a_parts), np.concatenate(b_parts), np.concatenate(op_parts)


def fadd_random_pairs(fmt, count: int, seed: int = 1):
    """``count`` random triples: a third uniform bit patterns (finite only), a third with exponents
    within ``m + 6`` of each other (where alignment and rounding do work), a third with equal
    exponents and opposite signs (cancellation and long renormalisation)."""
    f = get_format(fmt)
    m, w = f.man_bits, f.width
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 3, count)
    a = rng.integers(0, 1 << w, count)
    b = rng.integers(0, 1 << w, count)
    exp_a = (a >> m) & f.exp_all_ones
    near = np.clip(exp_a + rng.integers(-(m + 6), m + 7, count), 0, f.exp_all_ones - 1)
    b = np.where(kind == 1, (b & ~(f.exp_all_ones << m)) | (near << m), b)
    b = np.where(kind == 2, ((a ^ f.sign_bit) & ~((1 << m) - 1)) | (b & ((1 << m) - 1)), b)
    # keep the random part finite: an all-ones exponent becomes the largest finite exponent
    def finite(x):
        e = (x >> m) & f.exp_all_ones
        return np.where(e == f.exp_all_ones, x & ~(1 << m), x)
    sub = rng.integers(0, 2, count)
    return finite(a), finite(b), sub


def int_to_float_expected(values, fmt="bf16") -> np.ndarray:
    """Bits of ``Numerics.from_int``."""
    return encode(NX.from_int(np.asarray(values, np.int64), fmt), fmt)


def float_to_int8_expected(bits) -> np.ndarray:
    """int8 codes of ``Numerics.to_int8`` applied to bf16 values. Golden gives NaN for a NaN input
    (no code); the unit defines it as +-127 by the sign bit, like Inf, and so does this."""
    f = get_format("bf16")
    bits = np.asarray(bits, np.int64)
    with np.errstate(invalid="ignore"):
        codes = NX.to_int8(decode(bits, f))
    nan_code = np.where(bits & f.sign_bit, -127, 127)
    return np.where(np.isnan(codes), nan_code, codes).astype(np.int64)


def sigmoid_expected(bits) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return encode(NX.sigmoid(decode(np.asarray(bits, np.int64), "bf16")), "bf16")


def silu_expected(bits) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return encode(NX.silu(decode(np.asarray(bits, np.int64), "bf16")), "bf16")
