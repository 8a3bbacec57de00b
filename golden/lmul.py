"""L-Mul: floating-point multiplication by one integer addition (Luo & Sun, arXiv 2410.00907).

``lmul(a, b, fmt)`` takes and returns NumPy integer arrays of bit patterns. It is the integer form
that the gateware computes, with the corner cases the paper leaves open defined as in
docs/numerics.md ("L-Mul"):

* the exponent-and-mantissa fields are added and ``C = (bias << m) - 2**(m - l(m))`` is subtracted,
  where ``l(m) = m`` for m <= 3, 3 for m = 4 and 4 for m > 4; the sign is the XOR of the signs;
* zero or subnormal in -> +0 out (subnormal inputs count as zero);
* exponent underflow (the sum's exponent field <= 0) -> +0;
* overflow past the largest finite code -> the largest finite value with the XOR-ed sign;
* NaN in -> canonical NaN; Inf x 0 -> NaN; Inf x nonzero -> Inf with the XOR-ed sign
  (formats without Inf, e4m3, have only the NaN rule).
"""

from __future__ import annotations

import numpy as np

from .formats import FloatFormat, get_format

__all__ = ["lmul", "lmul_offset_bits", "lmul_constant"]


def lmul_offset_bits(man_bits: int) -> int:
    """``l(m)``: the paper's offset exponent, the product's missing ``x_m*y_m`` becomes ``2**-l(m)``."""
    if man_bits <= 3:
        return man_bits
    if man_bits == 4:
        return 3
    return 4


def lmul_constant(fmt: str | FloatFormat) -> int:
    """The constant subtracted from the sum of the two fields: the bias, minus the offset."""
    f = get_format(fmt)
    return (f.bias << f.man_bits) - (1 << (f.man_bits - lmul_offset_bits(f.man_bits)))


def lmul(a, b, fmt: str | FloatFormat = "bf16") -> np.ndarray:
    """L-Mul of two arrays of bit patterns in format ``fmt``; returns int64 bit patterns."""
    f = get_format(fmt)
    width_mask = (1 << f.width) - 1
    a = np.asarray(a).astype(np.int64) & width_mask
    b = np.asarray(b).astype(np.int64) & width_mask
    sign = (a ^ b) & f.sign_bit
    total = (a & f.field_mask) + (b & f.field_mask) - lmul_constant(f)
    out = sign | np.minimum(total, f.max_finite_field)  # overflow saturates
    out = np.where(total < (1 << f.man_bits), 0, out)  # exponent underflow flushes to +0
    zero = f.is_zero(a) | f.is_zero(b)
    out = np.where(zero, 0, out)
    if f.has_inf:
        inf = f.is_inf(a) | f.is_inf(b)
        out = np.where(inf, sign | f.inf_field, out)
        out = np.where(inf & zero, f.nan_code, out)
    out = np.where(f.is_nan(a) | f.is_nan(b), f.nan_code, out)
    return out
