"""L-Mul unit: floating-point multiplication by one integer addition (docs/numerics.md, section 3).

The golden model is ``golden.lmul.lmul``; this unit computes the same bits.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import FloatFormat, get_format
from golden.lmul import lmul_constant

from .pipeline import payload_register, stall_advance

__all__ = ["LMul", "OPERAND_CLASS", "classify", "lmul_operands", "lmul_result"]


#: the classes of an operand (``classify``), a field of the operands when ``b`` comes classified
OPERAND_CLASS = data.StructLayout({"nan": 1, "inf": 1, "zero": 1})


def lmul_operands(fmt: FloatFormat, tag_width: int = 0, b_class: bool = False) -> data.StructLayout:
    fields = {"a": fmt.width, "b": fmt.width}
    if b_class:
        fields["b_class"] = OPERAND_CLASS
    if tag_width:
        fields["tag"] = tag_width
    return data.StructLayout(fields)


def classify(fmt: FloatFormat, x):
    """(nan, inf, zero) of a bit pattern of ``fmt``, as the L-Mul sees it (a zero exponent field
    is zero: subnormals flush)."""
    field_bits = fmt.exp_bits + fmt.man_bits
    exp, man = x[fmt.man_bits:field_bits], x[:fmt.man_bits]
    zero = exp == 0
    if fmt.has_inf:
        nan = (exp == fmt.exp_all_ones) & (man != 0)
        inf = (exp == fmt.exp_all_ones) & (man == 0)
    else:
        nan = x[:field_bits] == fmt.field_mask
        inf = Const(0)
    return nan, inf, zero


def lmul_result(fmt: FloatFormat, tag_width: int = 0):
    if tag_width:
        return data.StructLayout({"product": fmt.width, "tag": tag_width})
    return fmt.width


class LMul(wiring.Component):
    """Pipelined L-Mul in one float format.

    Parameters
    ----------
    fmt : str or FloatFormat
        ``"bf16"`` (the contract's element-wise format), ``"fp32"`` (the recurrent state),
        ``"fp16"``, ``"e4m3"`` or ``"e5m2"``.

    tag_width : int
        Width of an optional side-band ``tag`` carried from each operand pair to its product
        (0: no tag), so that composite engines keep their other values aligned with the product.
    b_class : bool
        Whether ``b`` comes with its classes (``b_class``: ``classify(fmt, b)``, worked out by
        the caller). For a ``b`` held for many operands (a per-vector scale) the caller
        registers them beside ``b``, and the unit's first stage has no logic on ``b``'s path.
    compact_bounds : bool
        Whether the underflow and overflow tests read the difference's bits (after the
        subtraction's carry chain: a longer path, for a slow clock) instead of comparing the sum
        with two constants (two more carry chains beside the subtraction): 50 logic cells
        fewer in the iCEBreaker's core.

    Attributes
    ----------
    i : In(stream.Signature(StructLayout({"a": width, "b": width[, "tag": tag_width]})))
        Operand pairs as bit patterns.
    o : Out(stream.Signature(width or StructLayout({"product": width, "tag": tag_width})))
        Products as bit patterns (a plain ``width``-bit payload when there is no tag).

    Latency 3 cycles (stage 1 adds the fields and classifies the operands; stage 2 subtracts the
    constant and compares the sum with the underflow and overflow bounds; stage 3 selects the
    result); throughput one product per cycle. Back-pressure stalls the whole pipeline: ``i.ready``
    is high whenever the output register is empty or being read (a combinational path from
    ``o.ready`` to ``i.ready``). No multiplier: one adder of ``width`` bits, comparators and muxes.
    """

    LATENCY = 3

    def __init__(self, fmt="bf16", tag_width: int = 0, b_class: bool = False, *, compact_bounds: bool = False):
        self.fmt = get_format(fmt)
        self.compact_bounds = bool(compact_bounds)
        if not isinstance(tag_width, int) or tag_width < 0:
            raise ValueError(f"tag_width must be a non-negative integer, got {tag_width!r}")
        self.tag_width, self.b_class = tag_width, bool(b_class)
        super().__init__({
            "i": In(stream.Signature(lmul_operands(self.fmt, tag_width, self.b_class))),
            "o": Out(stream.Signature(lmul_result(self.fmt, tag_width))),
        })

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        field_bits = f.exp_bits + f.man_bits

        advance = stall_advance(m, self)
        out = payload_register(m, self.o)

        # Stage 1: the integer addition of the two fields, and the operand classes.
        a, b = self.i.payload.a, self.i.payload.b

        nan_a, inf_a, zero_a = classify(f, a)
        if self.b_class:
            given = self.i.payload.b_class
            nan_b, inf_b, zero_b = given.nan, given.inf, given.zero
        else:
            nan_b, inf_b, zero_b = classify(f, b)
        s1_valid = Signal()
        s1_sign, s1_nan, s1_inf, s1_zero = (Signal(reset_less=True) for _ in range(4))
        s1_sum = Signal(field_bits + 1, reset_less=True)  # F_a + F_b
        s1_tag = Signal(self.tag_width, reset_less=True)
        with m.If(advance):
            m.d.sync += [
                s1_valid.eq(self.i.valid),
                s1_sign.eq(a[field_bits] ^ b[field_bits]),
                s1_sum.eq(a[:field_bits] + b[:field_bits]),
                s1_nan.eq(nan_a | nan_b | ((inf_a | inf_b) & (zero_a | zero_b))),
                s1_inf.eq(inf_a | inf_b),
                s1_zero.eq(zero_a | zero_b),
            ]
            if self.tag_width:
                m.d.sync += s1_tag.eq(self.i.payload.tag)

        # Stage 2: subtract C; underflow and overflow as comparisons of the sum with constants
        # (three independent carry chains, none after another), or (compact_bounds) read from
        # the difference's bits.
        c = lmul_constant(f)
        s2_valid = Signal()
        s2_sign, s2_nan, s2_inf, s2_flush, s2_saturate = (Signal(reset_less=True) for _ in range(5))
        s2_field = Signal(field_bits, reset_less=True)
        s2_tag = Signal(self.tag_width, reset_less=True)
        if self.compact_bounds:
            # the difference t = sum - c, signed: the exponent field is <= 0 when t < 2**M (t
            # negative, or no bit set from M up); it overflows when t > max_finite_field, which
            # for a format with Inf is t >= all-ones << M (bit field_bits set, or the exponent
            # bits all ones)
            t = Signal(field_bits + 2)
            m.d.comb += t.eq(s1_sum - c)
            difference = t[:field_bits]
            negative, exponent = t[field_bits + 1], t[f.man_bits:field_bits]
            underflow = negative | (t[f.man_bits:field_bits + 1] == 0)
            if f.max_finite_field == (f.exp_all_ones << f.man_bits) - 1:
                overflow = ~negative & (t[field_bits] | (exponent == f.exp_all_ones))
            else:  # (e4m3: its all-ones exponent holds finite values) a compare after all
                overflow = ~negative & (t[:field_bits + 1] > f.max_finite_field)
        else:
            difference = s1_sum - c
            underflow = s1_sum < c + (1 << f.man_bits)
            overflow = s1_sum > c + f.max_finite_field
        with m.If(advance):
            m.d.sync += [
                s2_valid.eq(s1_valid), s2_sign.eq(s1_sign), s2_nan.eq(s1_nan), s2_inf.eq(s1_inf),
                s2_field.eq(difference),
                s2_flush.eq(s1_zero | underflow),  # exponent field <= 0
                s2_saturate.eq(overflow),
            ]
            if self.tag_width:
                m.d.sync += s2_tag.eq(s1_tag)

        # Stage 3: select (the contract's order of precedence) and register the output.
        result = Signal(f.width)
        with m.If(s2_nan):
            m.d.comb += result.eq(f.nan_code)
        with m.Elif(s2_inf):
            m.d.comb += result.eq(Cat(Const(f.inf_field or 0, field_bits), s2_sign))
        with m.Elif(s2_flush):
            m.d.comb += result.eq(0)
        with m.Elif(s2_saturate):
            m.d.comb += result.eq(Cat(Const(f.max_finite_field, field_bits), s2_sign))
        with m.Else():
            m.d.comb += result.eq(Cat(s2_field, s2_sign))
        with m.If(advance):
            m.d.sync += self.o.valid.eq(s2_valid)
            if self.tag_width:
                m.d.sync += [out.product.eq(result), out.tag.eq(s2_tag)]
            else:
                m.d.sync += out.eq(result)
        return m
