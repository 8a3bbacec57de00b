"""The numerics contract's primitive operations (docs/numerics.md), vectorised in NumPy.

Values are float64 arrays whose elements lie exactly on a format's grid (bf16 unless a function
says otherwise); bit patterns appear only inside, where the contract is defined on bits. Each
function here is the specification of one gateware operation and is bit-exact by construction:
the gateware computes the same bits.

``Numerics`` bundles the primitives. Its ``Approximations`` switches replace one approximation at
a time by its exact counterpart, for the ablation table; the default is the contract itself.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .formats import decode, encode, get_format
from .lmul import lmul
from .float_model import lower_bounds
from .ternary import absmean_ternary

__all__ = ["Approximations", "Numerics", "NUMERICS_VERSION", "SIGMOID_SEGMENTS", "SUMSQ_GUARD_BITS", "aligned_total", "block_sum", "scale_aligned", "top_exponent"]

#: Bumped whenever any bit the contract defines changes; the gateware reports it.
NUMERICS_VERSION = 1

#: Piecewise-linear sigmoid (PLAN, Amin et al. 1997): for |x| in [lo, hi),
#: sigmoid(x) = x * 2**-shift + (b if x >= 0 else 1 - b). Every constant is exact in bf16.
SIGMOID_SEGMENTS = (
    # lo,     hi,     shift, b
    (0.0, 1.0, 2, 0.5),
    (1.0, 2.375, 3, 0.625),
    (2.375, 5.0, 5, 0.84375),
)
SIGMOID_SATURATION = 5.0

#: Fraction bits kept below the largest square's significand in the sum of squares.
SUMSQ_GUARD_BITS = 16


def round_to(values, fmt="bf16") -> np.ndarray:
    """Round float64 values onto the format's grid (RNE, flush to +0, saturate)."""
    return decode(encode(values, fmt), fmt)


def top_exponent(values) -> np.ndarray:
    """The largest bf16 exponent field over the last axis (keepdims): the sum of squares aligns
    its terms to it."""
    f = get_format("bf16")
    return ((encode(values, f) >> f.man_bits) & f.exp_all_ones).max(axis=-1, keepdims=True)


def aligned_total(values, top) -> np.ndarray:
    """The integer sum of bf16 values >= 0 over the last axis (keepdims), each aligned to exponent
    field ``top`` (at least every term's) with SUMSQ_GUARD_BITS kept below its significand, its
    lower bits truncated: the sum of squares' fixed-point accumulator."""
    f = get_format("bf16")
    bits = encode(values, f)
    exp = (bits >> f.man_bits) & f.exp_all_ones
    sig = np.where(exp > 0, (bits & ((1 << f.man_bits) - 1)) | (1 << f.man_bits), 0)
    shift = np.minimum(np.asarray(top, np.int64) - exp, 63)
    return ((sig << SUMSQ_GUARD_BITS) >> shift).sum(axis=-1, keepdims=True)


def scale_aligned(total, top) -> np.ndarray:
    """An ``aligned_total`` as the bf16 value it stands for: ``total * 2**(top - bias - 7 -
    SUMSQ_GUARD_BITS)``, rounded once."""
    f = get_format("bf16")
    scale = (np.asarray(top, np.int64) - f.bias - f.man_bits - SUMSQ_GUARD_BITS).astype(np.int32)
    return round_to(np.ldexp(np.asarray(total).astype(np.float64), scale))


def block_sum(values, top) -> np.ndarray:
    """Sum of bf16 values >= 0 over the last axis in fixed point aligned to exponent field ``top``,
    rounded to bf16 (``aligned_total``, then ``scale_aligned``): the sum of squares' reduction,
    for one pass over known squares or the gateware's two (the top exponent, then the sum)."""
    return scale_aligned(aligned_total(values, top), top)


def daz(x, fmt="bf16") -> np.ndarray:
    """Inputs below the smallest normal are zero (the contract has no subnormals). Values the
    model computes never are; this makes each unit's behaviour on every bit pattern defined."""
    x = np.asarray(x, np.float64)
    return np.where(np.abs(x) < get_format(fmt).min_normal, 0.0, x)


@dataclasses.dataclass(frozen=True)
class Approximations:
    """Which approximations are on. All True is the contract; False swaps in the exact op."""

    lmul: bool = True  # products by L-Mul; False: exact product, rounded to the format
    pwl_sigmoid: bool = True  # piecewise-linear sigmoid; False: exact logistic, rounded
    block_sumsq: bool = True  # block-aligned fixed-point sum of squares; False: exact sum, rounded
    decay_form: bool = True  # h - z*h + i; False: f*h + i with f = 1 - z (both through L-Mul)

    @classmethod
    def exact(cls) -> "Approximations":
        """Every approximation exact. The decay form stays: it equals f*h + i in real arithmetic
        and differs only in how L-Mul's error enters (docs/numerics.md section 7)."""
        return cls(lmul=False, pwl_sigmoid=False, block_sumsq=False)


class Numerics:
    """The contract's primitives. Vectors reduce along the last axis."""

    def __init__(self, approx: Approximations = Approximations()):
        self.approx = approx

    # -- arithmetic -----------------------------------------------------------------------------

    def mul(self, a, b, fmt="bf16"):
        """Every non-ternary product: L-Mul in ``fmt`` (operands must lie on its grid)."""
        if not self.approx.lmul:
            return round_to(np.multiply(a, b), fmt)
        a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
        return decode(lmul(encode(a, fmt), encode(b, fmt), fmt), fmt)

    def add(self, a, b, fmt="bf16"):
        """Exact sum rounded once (float64 holds every bf16/fp32 sum exactly or harmlessly:
        double rounding is innocuous since 53 >= 2*24 + 2)."""
        return round_to(np.add(daz(a, fmt), daz(b, fmt)), fmt)

    def sub(self, a, b, fmt="bf16"):
        return round_to(np.subtract(daz(a, fmt), daz(b, fmt)), fmt)

    @staticmethod
    def scale_pow2(x, k, fmt="bf16"):
        """x * 2**k: an exponent adjustment, not a product (exact unless it flushes/saturates)."""
        return round_to(np.ldexp(np.asarray(x, np.float64), k), fmt)

    # -- nonlinear functions --------------------------------------------------------------------

    def sigmoid(self, x):
        x = daz(x)
        if not self.approx.pwl_sigmoid:
            return round_to(1.0 / (1.0 + np.exp(-x)))
        mag = np.abs(x)
        neg = x < 0
        out = np.where(neg, 0.0, 1.0)  # |x| >= 5 saturates exactly
        for lo, hi, shift, b in SIGMOID_SEGMENTS:
            seg = (mag >= lo) & (mag < hi)
            val = self.add(self.scale_pow2(x, -shift), np.where(neg, 1.0 - b, b))
            out = np.where(seg, val, out)
        return out

    def silu(self, x):
        return self.mul(x, self.sigmoid(x))

    @staticmethod
    def rsqrt(x):
        """Correctly rounded 1/sqrt(x) for x > 0; anything else (zero, negative, NaN) -> largest
        finite (never reached in the model); +Inf -> +0.
        The gateware reads a 256-entry table indexed by exponent parity and mantissa."""
        x = daz(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return round_to(np.where(x > 0, 1.0 / np.sqrt(np.where(x > 0, x, 1.0)), np.inf))

    @staticmethod
    def recip(x):
        """Correctly rounded 1/x; 0 -> largest finite; NaN -> NaN; Inf -> +0.
        A 128-entry mantissa table in the gateware."""
        x = daz(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return round_to(np.where(x != 0, 1.0 / np.where(x != 0, x, 1.0), np.inf))

    # -- reductions and conversions -------------------------------------------------------------

    def sum_squares(self, v):
        """sum(v*v) over the last axis (keepdims), squares by ``mul``, summed exactly in fixed point
        aligned to the largest square, keeping SUMSQ_GUARD_BITS below its significand (lower bits
        truncated), then rounded to bf16. Order-free, so any lane count gives the same bits."""
        sq = self.mul(v, v)
        if not self.approx.block_sumsq:
            return round_to(np.sum(sq, axis=-1, keepdims=True))
        return block_sum(sq, top_exponent(sq))

    @staticmethod
    def absmax(x):
        return np.max(np.abs(x), axis=-1, keepdims=True)

    @staticmethod
    def to_int8(x):
        """Round half away from zero, clamp to [-127, 127] (-128 is never produced)."""
        x = np.asarray(x, np.float64)
        return np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), -127, 127)

    @staticmethod
    def from_int(acc, fmt="bf16"):
        """Integer accumulator -> format, round to nearest even."""
        return round_to(np.asarray(acc, np.float64), fmt)

    # -- array plumbing and host-side constants (overridden by a differentiable Numerics) -------

    @staticmethod
    def round(x, fmt="bf16"):
        return round_to(x, fmt)

    @staticmethod
    def stack(xs, axis):
        return np.stack(xs, axis=axis)

    @staticmethod
    def constant(x, fmt="bf16"):
        """A host-folded constant: computed in float64, rounded once."""
        return round_to(np.asarray(x, np.float64), fmt)

    @staticmethod
    def ternarize(w):
        """-> (ternary int8 matrix, beta = mean|W|)."""
        return absmean_ternary(np.asarray(w, np.float64))

    @staticmethod
    def lower_bounds(raw):
        return lower_bounds(np.asarray(raw, np.float64))

    @staticmethod
    def ternary_matvec(q, w_t):
        """Integer dot products of int8 rows with ternary rows: q[..., K] x w_t[N, K] -> [..., N].
        float64 is exact here: every partial sum is an integer far below 2**53."""
        return np.asarray(q, np.float64) @ np.asarray(w_t, np.float64).T
