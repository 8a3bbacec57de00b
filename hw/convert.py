"""Conversions between integers and floats (docs/numerics.md, section 4).

``IntToFloat``: a signed BitLinear accumulator to bf16 (or fp32), round to nearest even
(golden ``Numerics.from_int``). ``FloatToInt8``: bf16 to an int8 activation code, round half away
from zero, clamp to [-127, 127] (golden ``Numerics.to_int8`` of the bf16 value).
"""

from amaranth.hdl import Cat, Const, Module, Mux, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import get_format

from hw.fadd import FADD_FORMATS, combine_leading_zeros, leading_zero_groups
from hw.pipeline import payload_register, register, stall_advance

__all__ = ["IntToFloat", "FloatToInt8"]

#: Widest accumulator accepted: every value converts without overflow and float64 (the golden
#: model) holds it within double-rounding-safe precision.
MAX_INT_WIDTH = 64
#: Widest input whose leading-zero count and normalising shift each fit one stage at 150 MHz on
#: ECP5; a wider one splits both in two (the 34-bit sum of squares of ``NormQuant``: 7.3 ns for
#: the count, 6.7 ns for the shift in one stage).
ONE_STAGE_LZ_WIDTH = 24


class IntToFloat(wiring.Component):
    """Pipelined signed integer -> float conversion, round to nearest, ties to even.

    Parameters
    ----------
    width : int
        Width of the two's complement input, 2 to 64 (the contract's ``W_acc``: 16 to 21).
    fmt : str or FloatFormat
        ``"bf16"`` (the contract's ``acc -> bf16``) or ``"fp32"``.

    Attributes
    ----------
    i : In(stream.Signature(signed(width)))
        Integers.
    o : Out(stream.Signature(fmt.width))
        Float bit patterns. Zero gives +0; no input can overflow (``|x| <= 2**63``).

    Latency ``latency`` cycles, 5 for a width up to ``ONE_STAGE_LZ_WIDTH`` (24) and 7 above:
    (1) magnitude (one adder: conditional negation); (2) leading zeros (wider inputs: the groups'
    flags and counts, then the count); (3) normalise (barrel shifter; wider inputs: by whole
    groups of 4, then by the rest) and both candidate exponents; (4) the rounding decision (the
    sticky bit is an OR of up to 55 bits); (5) round to nearest even, pick the exponent, pack.
    Throughput one conversion per cycle. Back-pressure stalls the whole pipeline: ``i.ready`` is
    high whenever the output register is empty or being read (a combinational path from
    ``o.ready`` to ``i.ready``). No multiplier.
    """

    def __init__(self, width: int, fmt="bf16"):
        if not isinstance(width, int) or not 2 <= width <= MAX_INT_WIDTH:
            raise ValueError(f"width must be an integer from 2 to {MAX_INT_WIDTH}, got {width!r}")
        self.width = width
        self.split_count = width > ONE_STAGE_LZ_WIDTH
        self.latency = 5 + 2 * self.split_count
        self.fmt = get_format(fmt)
        if self.fmt.name not in FADD_FORMATS:
            raise ValueError(f"IntToFloat supports {', '.join(FADD_FORMATS)}, not {self.fmt.name!r}")
        super().__init__({
            "i": In(stream.Signature(signed(width))),
            "o": Out(stream.Signature(self.fmt.width)),
        })

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        E, M = f.exp_bits, f.man_bits
        n = self.width

        advance = stall_advance(m, self)
        out = payload_register(m, self.o)

        def reg(value, name, shape=None, **kw):
            return register(m, advance, value, name, shape, **kw)

        # -- stage 1: sign and magnitude (|-2**(n-1)| = 2**(n-1) still fits n unsigned bits) -------
        x = self.i.payload
        negative = x[n - 1]
        s1_valid = reg(self.i.valid, "s1_valid", reset_less=False)
        s1_mag = reg((x.as_unsigned() ^ Cat(*([negative] * n))) + negative, "s1_mag", n)
        s1_sign = reg(negative, "s1_sign")

        # -- stage 2: leading zeros (wide: the groups' flags and counts registered first) ---------
        group_zero, group_lz = leading_zero_groups(s1_mag)
        zero = s1_mag == 0
        if self.split_count:
            group_zero = [reg(flag, f"s1b_zero{g}") for g, flag in enumerate(group_zero)]
            group_lz = [reg(count, f"s1b_lz{g}") for g, count in enumerate(group_lz)]
            zero = reg(zero, "s1b_all_zero")
            s1_valid = reg(s1_valid, "s1b_valid", reset_less=False)
            s1_mag = reg(s1_mag, "s1b_mag")
            s1_sign = reg(s1_sign, "s1b_sign")
        lz = combine_leading_zeros(group_zero, group_lz, n)
        s2_valid = reg(s1_valid, "s2_valid", reset_less=False)
        s2_mag = reg(s1_mag, "s2_mag")
        s2_lz = reg(lz, "s2_lz", range(n + 1))
        s2_zero = reg(zero, "s2_zero")
        s2_sign = reg(s1_sign, "s2_sign")
        shift = s2_lz
        if self.split_count:  # wide: the shift by whole groups of 4 first (no leading bit is lost)
            s2_valid = reg(s2_valid, "s2b_valid", reset_less=False)
            s2_mag = reg((s2_mag << Cat(Const(0, 2), s2_lz[2:]))[:n], "s2b_mag", n)
            s2_lz = reg(s2_lz, "s2b_lz")
            s2_zero = reg(s2_zero, "s2b_zero")
            s2_sign = reg(s2_sign, "s2b_sign")
            shift = s2_lz[:2]

        # -- stage 3: normalise (leading one to bit n - 1), candidate exponents --------------------
        exp_shape = signed(E + 2)
        top_exp = f.bias + n - 1
        s3_valid = reg(s2_valid, "s3_valid", reset_less=False)
        s3_norm = reg((s2_mag << shift)[:n], "s3_norm", n)
        s3_exp = reg(top_exp - s2_lz, "s3_exp", exp_shape)
        s3_exp_up = reg(top_exp + 1 - s2_lz, "s3_exp_up", exp_shape)
        s3_zero = reg(s2_zero, "s3_zero")
        s3_sign = reg(s2_sign, "s3_sign")

        # -- stage 4: the rounding decision, to nearest even ----------------------------------------
        if n > M + 1:
            kept = s3_norm[n - M - 1:]  # M + 1 bits, the hidden bit on top
            round_bit = s3_norm[n - M - 2]
            sticky = s3_norm[:n - M - 2].any() if n > M + 2 else Const(0)
            increment = round_bit & (sticky | kept[0])
        else:  # exact: the integer fits the significand
            kept = Cat(Const(0, M + 1 - n), s3_norm)
            increment = Const(0)
        s4_valid = reg(s3_valid, "s4_valid", reset_less=False)
        s4_kept = reg(kept, "s4_kept", M + 1)
        s4_increment = reg(increment, "s4_increment")
        s4_exp = reg(s3_exp, "s4_exp", exp_shape)
        s4_exp_up = reg(s3_exp_up, "s4_exp_up", exp_shape)
        s4_zero = reg(s3_zero, "s4_zero")
        s4_sign = reg(s3_sign, "s4_sign")

        # -- stage 5: round, pick the exponent, pack -----------------------------------------------
        rounded = s4_kept + s4_increment  # M + 2 bits; a carry out leaves the fraction bits at 0
        carry = rounded[M + 1]
        exp = Mux(carry, s4_exp_up, s4_exp)
        result = Mux(s4_zero, 0, Cat(rounded[:M], exp[:E], s4_sign))
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(s4_valid),
                out.eq(result),
            ]
        return m


class FloatToInt8(wiring.Component):
    """Pipelined bf16 -> int8 activation code: round half away from zero, clamp to [-127, 127].

    An input whose exponent field is 0 is zero. Inf and NaN never reach the unit in the token step;
    both give +-127 by their sign bit (golden clamps Inf the same way and returns NaN, no code,
    for NaN).

    Attributes
    ----------
    i : In(stream.Signature(16))
        bf16 bit patterns.
    o : Out(stream.Signature(signed(8)))
        Codes in [-127, 127] (-128 is never produced).

    Latency 3 cycles: (1) range flags and the right shift of the significand (3 mux levels);
    (2) add one half and clamp; (3) apply the sign (conditional negation). Throughput one code per
    cycle. Back-pressure stalls the whole pipeline: ``i.ready`` is high whenever the output
    register is empty or being read (a combinational path from ``o.ready`` to ``i.ready``).
    """

    LATENCY = 3

    def __init__(self):
        super().__init__({
            "i": In(stream.Signature(16)),
            "o": Out(stream.Signature(signed(8))),
        })

    def elaborate(self, platform):
        m = Module()
        f = get_format("bf16")
        M = f.man_bits  # 7

        advance = stall_advance(m, self)
        out = payload_register(m, self.o)

        def reg(value, name, shape=None, **kw):
            return register(m, advance, value, name, shape, **kw)

        # |x| = sig * 2**(e - bias - M) with sig = 1.m as an 8-bit integer. For e = bias + M - k
        # (k = 1..8) the code is floor(sig / 2**k + 1/2) = ((sig >> (k - 1)) + 1) >> 1.
        x = self.i.payload
        exp = x[M:15]
        sig = Cat(x[:M], Const(1, 1))
        low = f.bias - 2  # e <= bias - 2: |x| < 0.5, code 0 (zero and subnormals included)
        high = f.bias + M  # e >= bias + 7: |x| >= 128, clamped (Inf and NaN included)
        shift = (Const((high - 1) % 8, 3) - exp[:3])[:3]  # k - 1 = bias + 6 - e, for low < e < high

        # -- stage 1: range flags and the shift ----------------------------------------------------
        s1_valid = reg(self.i.valid, "s1_valid", reset_less=False)
        s1_scaled = reg(sig >> shift, "s1_scaled", 8)
        s1_small = reg(exp <= low, "s1_small")
        s1_large = reg(exp >= high, "s1_large")
        s1_sign = reg(x[15], "s1_sign")

        # -- stage 2: round half away from zero (on the magnitude) and clamp -----------------------
        half_up = (s1_scaled + 1)[1:9]  # up to 128
        magnitude = Mux(s1_large | half_up[7], 127, half_up[:7])
        s2_valid = reg(s1_valid, "s2_valid", reset_less=False)
        s2_mag = reg(Mux(s1_small, 0, magnitude), "s2_mag", 7)
        s2_sign = reg(s1_sign, "s2_sign")

        # -- stage 3: apply the sign ---------------------------------------------------------------
        negated = (Cat(s2_mag, Const(0, 1)) ^ Cat(*([s2_sign] * 8))) + s2_sign
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(s2_valid),
                out.eq(negated[:8]),
            ]
        return m
