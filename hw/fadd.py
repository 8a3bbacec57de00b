"""Floating-point adder for bf16 and fp32 (docs/numerics.md, section 4).

The golden model is ``golden.numerics.Numerics.add`` / ``.sub`` applied to the operands' values
(an operand whose exponent field is 0 is zero, as the contract says); this unit computes the same
bits. ``leading_zeros`` (a log-depth leading-zero counter) is shared with ``hw.convert``.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import get_format

from .pipeline import Stages, payload_register, stall_advance

__all__ = ["FAdd", "fadd_operands", "fadd_result", "leading_zeros", "leading_zero_groups", "combine_leading_zeros"]

#: Formats of the contract the adder is built for.
FADD_FORMATS = ("bf16", "fp32")


def leading_zeros(value):
    """Leading-zero count of ``value`` (unsigned), flat enough for one pipeline stage at 150 MHz
    up to about 24 bits (``leading_zero_groups`` then ``combine_leading_zeros``; a wider value
    can register the groups between the two).

    Returns ``(count, all_zero)``; when ``value`` is zero the count is ``len(value)``."""
    zero, local = leading_zero_groups(value)
    return combine_leading_zeros(zero, local, len(value)), value == 0


def leading_zero_groups(value):
    """The first half of a leading-zero count: groups of 4 bits from the top, each with a zero flag
    and a 2-bit count of its own leading zeros (one LUT level). Returns ``(zero, local)``, lists."""
    n = len(value)
    if n < 1:
        raise ValueError("leading_zeros needs at least one bit")
    size = -(-n // 4) * 4
    # pad below with ones: the count of the padded word equals the count of the real word whenever
    # the real word is nonzero, and is exactly n when it is zero
    padded = Cat(Const((1 << (size - n)) - 1, size - n), value) if size > n else value
    groups = [padded[size - 4 * (g + 1):size - 4 * g] for g in range(size // 4)]
    zero = [group == 0 for group in groups]
    local = [Mux(group[3], 0, Mux(group[2], 1, Mux(group[1], 2, 3))) for group in groups]
    return zero, local


def combine_leading_zeros(zero, local, n):
    """The second half: a one-hot "first nonzero group" (an AND of the flags above it) selects
    ``4 * group + count`` by an AND-OR; ``n`` (the value's width) when every group is zero."""
    width = (4 * len(zero)).bit_length()  # holds 4 * group + 3 < size, and n <= size
    count = Const(0, width)
    for g, group_count in enumerate(local):
        above = Cat(*zero[:g]).all() if g else Const(1)
        first = ~zero[g] & above
        count = count | Mux(first, Cat(group_count, Const(g, width - 2)), 0)
    return Mux(Cat(*zero).all(), n, count)


def fadd_operands(fmt, tag_width: int = 0) -> data.StructLayout:
    fields = {"a": fmt.width, "b": fmt.width, "sub": 1}
    if tag_width:
        fields["tag"] = tag_width
    return data.StructLayout(fields)


def fadd_result(fmt, tag_width: int = 0):
    if tag_width:
        return data.StructLayout({"sum": fmt.width, "tag": tag_width})
    return fmt.width


class FAdd(wiring.Component):
    """Pipelined floating-point adder/subtractor: ``a + b`` (``sub`` = 0) or ``a - b`` (``sub`` = 1).

    The exact sum, rounded once to nearest (ties to even) at the format's precision with an
    unbounded exponent; a result below the smallest normal flushes to +0, one above the largest
    finite value saturates to it with its sign. Every zero produced is +0 (exact cancellation
    included). An operand whose exponent field is 0 (zero or subnormal) is zero.

    Inf and NaN never reach the unit in the token step; for such operands it returns what the golden
    model returns for their values (``encode(decode(a) +/- decode(b))``): any NaN, or Infs of
    opposite effective signs, give the canonical NaN; otherwise an Inf operand gives the largest
    finite value with the Inf's sign (the contract never produces Inf).

    Parameters
    ----------
    fmt : str or FloatFormat
        ``"bf16"`` or ``"fp32"``.
    tag_width : int
        Width of an optional side-band ``tag`` carried from each operand pair to its result (0: no
        tag). Used by ``hw.nonlinear.SiLU`` to carry ``x`` alongside the sigmoid.
    wired : collection of str
        Stages of ``STAGES`` (``"s0"`` .. ``"s8"``) to build without their registers, for a slow
        clock (``hw.pipeline.Stages``); ``latency`` drops by one for each.

    Attributes
    ----------
    i : In(stream.Signature(StructLayout({"a": width, "b": width, "sub": 1[, "tag": tag_width]})))
        Operand pairs as bit patterns and the operation.
    o : Out(stream.Signature(width or StructLayout({"sum": width, "tag": tag_width})))
        Results as bit patterns (a plain ``width``-bit payload when there is no tag).

    Latency 10 cycles (``latency``: fewer with wired stages), throughput one result per cycle. The stages: (0) classify, zero the
    operands whose exponent field is 0; (1) compare ``|a|``
    with ``|b|`` and subtract the exponents both ways; (2) swap so that ``|big| >= |small|``, clamp
    the alignment distance, decode the sticky mask; (3) align the small significand (barrel
    shifter) with guard, round and sticky bits; (4) add or subtract (one adder); (5) find the first
    nonzero 4-bit group of the sum and each group's leading zeros; (6) normalise by whole groups;
    (7) normalise by 0-3 bits and form both candidate exponents; (8) round to nearest even;
    (9) specials, flush to +0, saturate, pack. Back-pressure stalls the whole pipeline: ``i.ready``
    is high whenever the output register is empty or being read (a combinational path from
    ``o.ready`` to ``i.ready``). No multiplier: adders, shifters, comparators and muxes.
    """

    LATENCY = 10
    #: The stages that end in a register before the output register (``hw.pipeline.Stages``).
    STAGES = tuple(f"s{k}" for k in range(9))

    def __init__(self, fmt="bf16", tag_width: int = 0, *, wired=()):
        self.fmt = get_format(fmt)
        if self.fmt.name not in FADD_FORMATS:
            raise ValueError(f"FAdd supports {', '.join(FADD_FORMATS)}, not {self.fmt.name!r}")
        if not isinstance(tag_width, int) or tag_width < 0:
            raise ValueError(f"tag_width must be a non-negative integer, got {tag_width!r}")
        self.tag_width = tag_width
        self.stages = Stages(self.STAGES, wired)
        #: cycles from operands to result: LATENCY less one per wired stage
        self.latency = 1 + self.stages.count
        super().__init__({
            "i": In(stream.Signature(fadd_operands(self.fmt, tag_width))),
            "o": Out(stream.Signature(fadd_result(self.fmt, tag_width))),
        })

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        E, M, W = f.exp_bits, f.man_bits, f.width
        field_bits = E + M
        window = M + 4  # hidden bit, M fraction bits, guard, round, sticky
        shift_bits = window.bit_length()  # a shift of 2**shift_bits - 1 >= window clears the window
        exp_all_ones = f.exp_all_ones

        advance = stall_advance(m, self)
        out = payload_register(m, self.o)

        def reg(value, name, shape=None, **kw):
            return self.stages.register(m, advance, value, name, shape, **kw)

        tagged = self.tag_width > 0

        # -- stage 0: classify; an operand with exponent field 0 becomes zero ---------------------
        a, b = self.i.payload.a, self.i.payload.b
        zero_a, zero_b = a[M:field_bits] == 0, b[M:field_bits] == 0
        nan_a = (a[M:field_bits] == exp_all_ones) & (a[:M] != 0)
        nan_b = (b[M:field_bits] == exp_all_ones) & (b[:M] != 0)
        inf_a = (a[M:field_bits] == exp_all_ones) & (a[:M] == 0)
        inf_b = (b[M:field_bits] == exp_all_ones) & (b[:M] == 0)
        sign_a, sign_b = a[W - 1], b[W - 1] ^ self.i.payload.sub

        s0_valid = reg(self.i.valid, "s0_valid", reset_less=False)
        s0_field_a = reg(Mux(zero_a, 0, a[:field_bits]), "s0_field_a", field_bits)
        s0_field_b = reg(Mux(zero_b, 0, b[:field_bits]), "s0_field_b", field_bits)
        s0_hidden_a = reg(~zero_a, "s0_hidden_a")
        s0_hidden_b = reg(~zero_b, "s0_hidden_b")
        s0_sign_a = reg(sign_a, "s0_sign_a")
        s0_sign_b = reg(sign_b, "s0_sign_b")
        s0_nan = reg(nan_a | nan_b | (inf_a & inf_b & (sign_a != sign_b)), "s0_nan")
        s0_inf = reg(inf_a | inf_b, "s0_inf")
        s0_inf_sign = reg(Mux(inf_a, sign_a, sign_b), "s0_inf_sign")
        s0_tag = reg(self.i.payload.tag, "s0_tag") if tagged else None

        # -- stage 1: compare magnitudes, exponent differences --------------------------------------
        field_a, field_b = s0_field_a, s0_field_b
        exp_a, exp_b = field_a[M:], field_b[M:]
        s1_valid = reg(s0_valid, "s1_valid", reset_less=False)
        s1_field_a = reg(field_a, "s1_field_a", field_bits)
        s1_field_b = reg(field_b, "s1_field_b", field_bits)
        s1_hidden_a = reg(s0_hidden_a, "s1_hidden_a")
        s1_hidden_b = reg(s0_hidden_b, "s1_hidden_b")
        s1_sign_a = reg(s0_sign_a, "s1_sign_a")
        s1_sign_b = reg(s0_sign_b, "s1_sign_b")
        s1_a_ge_b = reg(field_a >= field_b, "s1_a_ge_b")
        s1_diff_ab = reg(exp_a - exp_b, "s1_diff_ab", E)  # used only when exp_a >= exp_b
        s1_diff_ba = reg(exp_b - exp_a, "s1_diff_ba", E)
        s1_nan = reg(s0_nan, "s1_nan")
        s1_inf = reg(s0_inf, "s1_inf")
        s1_inf_sign = reg(s0_inf_sign, "s1_inf_sign")
        s1_tag = reg(s0_tag, "s1_tag") if tagged else None

        # -- stage 2: swap so that |big| >= |small|, clamp the distance, sticky mask ---------------
        big_field = Mux(s1_a_ge_b, s1_field_a, s1_field_b)
        small_field = Mux(s1_a_ge_b, s1_field_b, s1_field_a)
        distance = Mux(s1_a_ge_b, s1_diff_ab, s1_diff_ba)
        far = distance[shift_bits:].any() if E > shift_bits else Const(0)
        shift = Mux(far, (1 << shift_bits) - 1, distance[:shift_bits])
        # bit k of the mask: the small operand's bit k falls off the window (k < shift)
        # (a decode table, not ``shift > k`` per bit: comparisons become carry chains on ECP5)
        mask = Array(Const((1 << min(k, window)) - 1, window) for k in range(1 << shift_bits))[shift]

        s2_valid = reg(s1_valid, "s2_valid", reset_less=False)
        s2_big_sig = reg(Cat(big_field[:M], Mux(s1_a_ge_b, s1_hidden_a, s1_hidden_b)), "s2_big_sig", M + 1)
        s2_small_sig = reg(Cat(small_field[:M], Mux(s1_a_ge_b, s1_hidden_b, s1_hidden_a)), "s2_small_sig", M + 1)
        s2_big_exp = reg(big_field[M:], "s2_big_exp", E)
        s2_shift = reg(shift, "s2_shift", shift_bits)
        s2_mask = reg(mask, "s2_mask", window)
        s2_sign = reg(Mux(s1_a_ge_b, s1_sign_a, s1_sign_b), "s2_sign")
        s2_subtract = reg(s1_sign_a ^ s1_sign_b, "s2_subtract")
        s2_nan = reg(s1_nan, "s2_nan")
        s2_inf = reg(s1_inf, "s2_inf")
        s2_inf_sign = reg(s1_inf_sign, "s2_inf_sign")
        s2_tag = reg(s1_tag, "s2_tag") if tagged else None

        # -- stage 3: align the small significand: guard, round, sticky ----------------------------
        small_ext = Cat(Const(0, 3), s2_small_sig)
        shifted = (small_ext >> s2_shift)[:window]
        sticky = (small_ext & s2_mask).any()  # everything shifted past the window's last bit

        s3_valid = reg(s2_valid, "s3_valid", reset_less=False)
        s3_big_ext = reg(Cat(Const(0, 3), s2_big_sig), "s3_big_ext", window)
        s3_small_ext = reg(shifted | sticky, "s3_small_ext", window)
        s3_big_exp = reg(s2_big_exp, "s3_big_exp")
        s3_sign = reg(s2_sign, "s3_sign")
        s3_subtract = reg(s2_subtract, "s3_subtract")
        s3_nan = reg(s2_nan, "s3_nan")
        s3_inf = reg(s2_inf, "s3_inf")
        s3_inf_sign = reg(s2_inf_sign, "s3_inf_sign")
        s3_tag = reg(s2_tag, "s3_tag") if tagged else None

        # -- stage 4: add or subtract, one adder with the carry-in in an extra low bit ------------
        # (1 + 2 big) + (sub + 2 (small ^ sub...)) = 2 (big +/- small) + (1 + sub), so bit 0 carries
        # the subtraction's +1 into bit 1; |big| >= |small| keeps the difference non-negative.
        invert = Cat(*([s3_subtract] * window))
        lhs = Cat(Const(1, 1), s3_big_ext, Const(0, 1))
        rhs = Cat(s3_subtract, s3_small_ext ^ invert, s3_subtract)
        total = (lhs + rhs)[1:window + 2]

        s4_valid = reg(s3_valid, "s4_valid", reset_less=False)
        s4_sum = reg(total, "s4_sum", window + 1)
        s4_big_exp = reg(s3_big_exp, "s4_big_exp")
        s4_sign = reg(s3_sign, "s4_sign")
        s4_nan = reg(s3_nan, "s4_nan")
        s4_inf = reg(s3_inf, "s4_inf")
        s4_inf_sign = reg(s3_inf_sign, "s4_inf_sign")
        s4_tag = reg(s3_tag, "s4_tag") if tagged else None

        # -- stage 5: leading zeros by groups of 4 bits: the first nonzero group (one-hot) and
        #    each group's own count ------------------------------------------------------------
        # the sum, padded below with zeros to whole groups; group 0 is the top one
        size = -(-(window + 1) // 4) * 4
        padded = Cat(Const(0, size - window - 1), s4_sum)
        n_groups = size // 4
        groups = [padded[size - 4 * (g + 1):size - 4 * g] for g in range(n_groups)]
        # a group is first when it is nonzero and no group above is (a prefix OR of the groups'
        # flags: shallower than a zero test of every bit above)
        nonzero = [group != 0 for group in groups]
        first = Cat(*[nonzero[g] & ~Cat(*nonzero[:g]).any() if g else nonzero[0]
                      for g in range(n_groups)])
        local = Cat(*[Mux(gr[3], 0, Mux(gr[2], 1, Mux(gr[1], 2, 3)))[:2] for gr in groups])

        s5_valid = reg(s4_valid, "s5_valid", reset_less=False)
        s5_sum = reg(padded, "s5_sum")
        s5_first = reg(first, "s5_first")
        s5_local = reg(local, "s5_local")
        s5_zero = reg(s4_sum == 0, "s5_zero")
        s5_big_exp = reg(s4_big_exp, "s5_big_exp")
        s5_sign = reg(s4_sign, "s5_sign")
        s5_nan = reg(s4_nan, "s5_nan")
        s5_inf = reg(s4_inf, "s5_inf")
        s5_inf_sign = reg(s4_inf_sign, "s5_inf_sign")
        s5_tag = reg(s4_tag, "s5_tag") if tagged else None

        # -- stage 6: coarse normalisation (by 4 x the group, an AND-OR on the one-hot) ----------
        group_bits = max(1, (n_groups - 1).bit_length())
        coarse = Const(0, size)
        fine = Const(0, 2)
        group = Const(0, group_bits)
        for g in range(n_groups):
            coarse = coarse | Mux(s5_first[g], (s5_sum << (4 * g))[:size], 0)
            fine = fine | Mux(s5_first[g], s5_local[2 * g:2 * g + 2], 0)
            group = group | Mux(s5_first[g], g, 0)

        s6_valid = reg(s5_valid, "s6_valid", reset_less=False)
        s6_coarse = reg(coarse, "s6_coarse", size)
        s6_fine = reg(fine, "s6_fine", 2)
        s6_group = reg(group, "s6_group", group_bits)
        s6_zero = reg(s5_zero, "s6_zero")
        s6_big_exp = reg(s5_big_exp, "s6_big_exp")
        s6_sign = reg(s5_sign, "s6_sign")
        s6_nan = reg(s5_nan, "s6_nan")
        s6_inf = reg(s5_inf, "s6_inf")
        s6_inf_sign = reg(s5_inf_sign, "s6_inf_sign")
        s6_tag = reg(s5_tag, "s6_tag") if tagged else None

        # -- stage 7: fine normalisation (0..3 bits), both candidate exponents ---------------------
        # The sum has the big operand's scale, its hidden bit at window - 1. With the leading one
        # moved to the top bit (a left shift by lz = 4 group + fine), the exponent is
        # big_exp + 1 - lz, or one more if rounding carries out.
        lz = Cat(s6_fine, s6_group)
        exp_shape = signed(E + 3)
        s7_valid = reg(s6_valid, "s7_valid", reset_less=False)
        s7_norm = reg((s6_coarse << s6_fine)[size - window - 1:size], "s7_norm", window + 1)
        s7_exp = reg(s6_big_exp + 1 - lz, "s7_exp", exp_shape)
        s7_exp_up = reg(s6_big_exp + 2 - lz, "s7_exp_up", exp_shape)
        s7_zero = reg(s6_zero, "s7_zero")
        s7_sign = reg(s6_sign, "s7_sign")
        s7_nan = reg(s6_nan, "s7_nan")
        s7_inf = reg(s6_inf, "s7_inf")
        s7_inf_sign = reg(s6_inf_sign, "s7_inf_sign")
        s7_tag = reg(s6_tag, "s7_tag") if tagged else None

        # -- stage 8: round to nearest, ties to even ----------------------------------------------
        kept = s7_norm[4:window + 1]  # M + 1 bits, the hidden bit on top
        round_bit = s7_norm[3]
        sticky_bits = s7_norm[:3].any()
        increment = round_bit & (sticky_bits | kept[0])
        rounded = kept + increment  # M + 2 bits; a carry out leaves the fraction bits at 0
        carry = rounded[M + 1]

        s8_valid = reg(s7_valid, "s8_valid", reset_less=False)
        s8_man = reg(rounded[:M], "s8_man", M)
        s8_exp = reg(Mux(carry, s7_exp_up, s7_exp), "s8_exp", exp_shape)
        s8_zero = reg(s7_zero, "s8_zero")
        s8_sign = reg(s7_sign, "s8_sign")
        s8_nan = reg(s7_nan, "s8_nan")
        s8_inf = reg(s7_inf, "s8_inf")
        s8_inf_sign = reg(s7_inf_sign, "s8_inf_sign")
        s8_tag = reg(s7_tag, "s8_tag") if tagged else None

        # -- stage 9: specials, flush to +0, saturate, pack ----------------------------------------
        max_finite = Const(f.max_finite_field, field_bits)
        result = Signal(W)
        with m.If(s8_nan):
            m.d.comb += result.eq(f.nan_code)
        with m.Elif(s8_inf):
            m.d.comb += result.eq(Cat(max_finite, s8_inf_sign))
        with m.Elif(s8_zero | (s8_exp < 1)):
            m.d.comb += result.eq(0)
        with m.Elif(s8_exp > exp_all_ones - 1):
            m.d.comb += result.eq(Cat(max_finite, s8_sign))
        with m.Else():
            m.d.comb += result.eq(Cat(s8_man, s8_exp[:E], s8_sign))

        with m.If(advance):
            m.d.sync += self.o.valid.eq(s8_valid)
            if tagged:
                m.d.sync += [out.sum.eq(result), out.tag.eq(s8_tag)]
            else:
                m.d.sync += out.eq(result)
        return m
