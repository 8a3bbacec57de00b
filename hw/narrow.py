"""fp32 -> bf16 narrowing, the state leaving the recurrence (docs/numerics.md section 4)."""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import get_format

from .pipeline import payload_register, stall_advance

__all__ = ["Narrow"]

FP32, BF16 = get_format("fp32"), get_format("bf16")


def _payload(width, tag_width, name):
    return data.StructLayout({name: width, "tag": tag_width}) if tag_width else width


class Narrow(wiring.Component):
    """fp32 -> bf16, round to nearest even; a result past the largest finite value saturates to it
    (sign kept), an fp32 zero or subnormal gives +0, Inf saturates, NaN gives the canonical NaN (as
    ``golden.numerics.round_to(daz(decode(x, "fp32"), "fp32"), "bf16")``).

    Parameters
    ----------
    tag_width : int
        Width of an optional side-band ``tag`` carried with each value (0: none).

    Attributes
    ----------
    i : In(stream.Signature(32 or StructLayout({"x": 32, "tag": tag_width})))
    o : Out(stream.Signature(16 or StructLayout({"y": 16, "tag": tag_width})))

    Latency 2 cycles (classify and decide the rounding; increment and pack), one result per
    cycle. ``i.ready`` is high whenever the output register is empty
    or being read. One 15-bit incrementer, no multiplier.
    """

    LATENCY = 2

    def __init__(self, tag_width: int = 0):
        if not isinstance(tag_width, int) or tag_width < 0:
            raise ValueError(f"tag_width must be a non-negative integer, got {tag_width!r}")
        self.tag_width = tag_width
        super().__init__({
            "i": In(stream.Signature(_payload(32, tag_width, "x"))),
            "o": Out(stream.Signature(_payload(16, tag_width, "y"))),
        })

    def elaborate(self, platform):
        m = Module()
        advance = stall_advance(m, self)
        out = payload_register(m, self.o)
        x = self.i.payload.x if self.tag_width else self.i.payload

        # Stage 1: classify; the truncated field and the rounding decision (a 15-bit OR).
        s1_valid = Signal()
        s1_sign, s1_zero, s1_nan, s1_round = (Signal(reset_less=True) for _ in range(4))
        s1_upper, s1_tag = Signal(15, reset_less=True), Signal(self.tag_width, reset_less=True)
        exp, man = x[23:31], x[:23]
        with m.If(advance):
            m.d.sync += [
                s1_valid.eq(self.i.valid), s1_sign.eq(x[31]), s1_zero.eq(exp == 0),
                s1_nan.eq((exp == FP32.exp_all_ones) & (man != 0)),
                s1_upper.eq(x[16:31]), s1_round.eq(x[15] & ((x[:15] != 0) | x[16])),
            ]
            if self.tag_width:
                m.d.sync += s1_tag.eq(self.i.payload.tag)

        # Stage 2: round (one 15-bit increment), saturate, pack.
        rounded = Signal(15)
        m.d.comb += rounded.eq(s1_upper + s1_round)
        y = Signal(16)
        with m.If(s1_zero):
            m.d.comb += y.eq(0)
        with m.Elif(s1_nan):
            m.d.comb += y.eq(BF16.nan_code)
        with m.Elif(rounded[7:15] == BF16.exp_all_ones):  # Inf in, or rounded past the largest
            m.d.comb += y.eq(Cat(Const(BF16.max_finite_field, 15), s1_sign))
        with m.Else():
            m.d.comb += y.eq(Cat(rounded, s1_sign))
        with m.If(advance):
            m.d.sync += self.o.valid.eq(s1_valid)
            if self.tag_width:
                m.d.sync += [out.y.eq(y), out.tag.eq(s1_tag)]
            else:
                m.d.sync += out.eq(y)
        return m
