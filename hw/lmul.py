"""L-Mul unit: floating-point multiplication by one integer addition (docs/numerics.md, section 3).

The golden model is ``golden.lmul.lmul``; this unit computes the same bits.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import FloatFormat, get_format
from golden.lmul import lmul_constant

__all__ = ["LMul", "lmul_operands", "lmul_result"]


def lmul_operands(fmt: FloatFormat, tag_width: int = 0) -> data.StructLayout:
    fields = {"a": fmt.width, "b": fmt.width}
    if tag_width:
        fields["tag"] = tag_width
    return data.StructLayout(fields)


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

    Attributes
    ----------
    i : In(stream.Signature(StructLayout({"a": width, "b": width[, "tag": tag_width]})))
        Operand pairs as bit patterns.
    o : Out(stream.Signature(width or StructLayout({"product": width, "tag": tag_width})))
        Products as bit patterns (a plain ``width``-bit payload when there is no tag).

    Latency 2 cycles (stage 1 adds the fields and classifies the operands, stage 2 selects the
    result); throughput one product per cycle. Back-pressure stalls the whole pipeline: ``i.ready``
    is high whenever the output register is empty or being read (a combinational path from
    ``o.ready`` to ``i.ready``). No multiplier: one adder of ``width`` bits, comparators and muxes.
    """

    LATENCY = 2

    def __init__(self, fmt="bf16", tag_width: int = 0):
        self.fmt = get_format(fmt)
        if not isinstance(tag_width, int) or tag_width < 0:
            raise ValueError(f"tag_width must be a non-negative integer, got {tag_width!r}")
        self.tag_width = tag_width
        super().__init__({
            "i": In(stream.Signature(lmul_operands(self.fmt, tag_width))),
            "o": Out(stream.Signature(lmul_result(self.fmt, tag_width))),
        })

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        field_bits = f.exp_bits + f.man_bits

        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
        ]

        # Stage 1: the integer addition and the operand classes.
        a, b = self.i.payload.a, self.i.payload.b
        s1_valid = Signal()
        s1_sign = Signal()
        s1_total = Signal(range(-(1 << field_bits), 1 << (field_bits + 1)))  # F_a + F_b - C
        s1_nan, s1_inf, s1_zero = Signal(), Signal(), Signal()

        def classify(x):
            exp = x[f.man_bits:field_bits]
            man = x[:f.man_bits]
            zero = exp == 0
            if f.has_inf:
                nan = (exp == f.exp_all_ones) & (man != 0)
                inf = (exp == f.exp_all_ones) & (man == 0)
            else:
                nan = x[:field_bits] == f.field_mask
                inf = Const(0)
            return nan, inf, zero

        nan_a, inf_a, zero_a = classify(a)
        nan_b, inf_b, zero_b = classify(b)
        with m.If(advance):
            m.d.sync += [
                s1_valid.eq(self.i.valid),
                s1_sign.eq(a[field_bits] ^ b[field_bits]),
                s1_total.eq(a[:field_bits] + b[:field_bits] - lmul_constant(f)),
                s1_nan.eq(nan_a | nan_b | ((inf_a | inf_b) & (zero_a | zero_b))),
                s1_inf.eq(inf_a | inf_b),
                s1_zero.eq(zero_a | zero_b),
            ]

        # Stage 2: underflow, overflow, specials (in the contract's order of precedence).
        normal = Mux(s1_total > f.max_finite_field, f.max_finite_field, s1_total[:field_bits])
        result = Signal(f.width)
        with m.If(s1_nan):
            m.d.comb += result.eq(f.nan_code)
        with m.Elif(s1_inf):
            m.d.comb += result.eq(Cat(Const(f.inf_field or 0, field_bits), s1_sign))
        with m.Elif(s1_zero | (s1_total < (1 << f.man_bits))):
            m.d.comb += result.eq(0)
        with m.Else():
            m.d.comb += result.eq(Cat(normal, s1_sign))
        with m.If(advance):
            m.d.sync += self.o.valid.eq(s1_valid)
            if self.tag_width:
                s1_tag = Signal(self.tag_width)
                m.d.sync += [s1_tag.eq(self.i.payload.tag), self.o.payload.product.eq(result),
                             self.o.payload.tag.eq(s1_tag)]
            else:
                m.d.sync += self.o.payload.eq(result)
        return m
