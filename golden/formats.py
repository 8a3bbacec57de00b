"""Floating-point formats of the numerics contract and exact conversion to and from them.

Values travel as NumPy integer arrays of bit patterns (what the gateware sees) or as float64 arrays
holding values that lie exactly on a format's grid (what the models compute with). float64 holds
every value of every format here exactly, so the two views convert losslessly.

Rounding into a format (``encode``) follows the contract (docs/numerics.md, "Rounding"):
round to nearest, ties to even, at the format's precision with an unbounded exponent; then a
result below the smallest normal flushes to +0 and a result above the largest finite value
saturates to it. Zeros produced are always +0. The contract never produces Inf; NaN encodes to
the format's canonical NaN.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["FloatFormat", "FORMATS", "get_format", "encode", "decode"]


@dataclasses.dataclass(frozen=True)
class FloatFormat:
    name: str
    exp_bits: int
    man_bits: int
    bias: int
    # True: IEEE-style, the all-ones exponent holds Inf (mantissa 0) and NaN.
    # False: OCP "FN" style (e4m3): no Inf; only the all-ones exponent-and-mantissa code is NaN.
    has_inf: bool = True

    @property
    def width(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def field_mask(self) -> int:
        """Mask of the exponent-and-mantissa field (everything but the sign)."""
        return (1 << (self.exp_bits + self.man_bits)) - 1

    @property
    def sign_bit(self) -> int:
        return 1 << (self.exp_bits + self.man_bits)

    @property
    def exp_all_ones(self) -> int:
        return (1 << self.exp_bits) - 1

    @property
    def max_finite_field(self) -> int:
        m = self.man_bits
        if self.has_inf:
            return ((self.exp_all_ones - 1) << m) | ((1 << m) - 1)
        return (self.exp_all_ones << m) | ((1 << m) - 2)

    @property
    def inf_field(self) -> int | None:
        return (self.exp_all_ones << self.man_bits) if self.has_inf else None

    @property
    def nan_code(self) -> int:
        """Canonical NaN: positive, quiet (IEEE) or the single NaN code (FN)."""
        m = self.man_bits
        if self.has_inf:
            return (self.exp_all_ones << m) | (1 << (m - 1))
        return self.field_mask

    @property
    def max_finite(self) -> float:
        return float(decode(np.array(self.max_finite_field), self))

    @property
    def min_normal(self) -> float:
        return 2.0 ** (1 - self.bias)

    def is_nan(self, bits):
        field = bits & self.field_mask
        if self.has_inf:
            return ((field >> self.man_bits) == self.exp_all_ones) & ((field & ((1 << self.man_bits) - 1)) != 0)
        return field == self.field_mask

    def is_inf(self, bits):
        if not self.has_inf:
            return np.zeros(np.shape(bits), dtype=bool)
        return (bits & self.field_mask) == self.inf_field

    def is_zero(self, bits):
        """Zero or subnormal: the contract treats subnormal inputs as zero."""
        return ((bits & self.field_mask) >> self.man_bits) == 0


FORMATS = {
    f.name: f
    for f in (
        FloatFormat("bf16", 8, 7, 127),
        FloatFormat("fp32", 8, 23, 127),
        FloatFormat("fp16", 5, 10, 15),
        FloatFormat("e4m3", 4, 3, 7, has_inf=False),
        FloatFormat("e5m2", 5, 2, 15),
    )
}


def get_format(fmt: str | FloatFormat) -> FloatFormat:
    if isinstance(fmt, FloatFormat):
        return fmt
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown float format {fmt!r}; known: {', '.join(FORMATS)}") from None


def decode(bits, fmt) -> np.ndarray:
    """Bit patterns -> exact float64 values (subnormals decoded exactly; Inf/NaN kept)."""
    f = get_format(fmt)
    bits = np.asarray(bits).astype(np.int64) & ((1 << f.width) - 1)
    field = bits & f.field_mask
    exp = field >> f.man_bits
    man = field & ((1 << f.man_bits) - 1)
    normal = np.ldexp((man | (1 << f.man_bits)).astype(np.float64), (exp - f.bias - f.man_bits).astype(np.int32))
    sub = np.ldexp(man.astype(np.float64), np.int32(1 - f.bias - f.man_bits))
    mag = np.where(exp == 0, sub, normal)
    mag = np.where(f.is_inf(bits), np.inf, mag)
    mag = np.where(f.is_nan(bits), np.nan, mag)
    return np.where((bits & f.sign_bit) != 0, -mag, mag)


def encode(values, fmt) -> np.ndarray:
    """float64 values -> bit patterns (int64 array), rounded as the contract says."""
    f = get_format(fmt)
    v = np.array(values, dtype=np.float64)  # a contiguous copy, so that .view is allowed
    raw = v.view(np.int64)
    sign = (raw >> 63) & 1
    exp64 = (raw >> 52) & 0x7FF
    sig = (raw & ((1 << 52) - 1)) | (1 << 52)
    shift = 52 - f.man_bits
    q = sig >> shift
    rem = sig & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    q = q + ((rem > half) | ((rem == half) & ((q & 1) == 1)))
    carry = q >> (f.man_bits + 1)
    q = q >> carry
    biased = exp64 - 1023 + f.bias + carry
    field = (biased << f.man_bits) | (q & ((1 << f.man_bits) - 1))
    field = np.where(biased > (f.max_finite_field >> f.man_bits), f.max_finite_field + 1, field)
    field = np.minimum(field, f.max_finite_field)  # saturate, never Inf (and never e4m3's NaN code)
    out = (sign << (f.exp_bits + f.man_bits)) | field
    out = np.where((biased < 1) | (exp64 == 0), 0, out)  # flush to +0; float64 zero/subnormal too
    out = np.where(np.isnan(v), f.nan_code, out)
    return out.astype(np.int64)
