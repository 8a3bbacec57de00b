"""Exp-free nonlinear functions (docs/numerics.md, section 5): the PLAN sigmoid and SiLU in bf16.

The golden models are ``golden.numerics.Numerics.sigmoid`` and ``.silu``; these units compute the
same bits for every one of the 65,536 bf16 inputs.

The sigmoid is one segment-select stage followed by the bf16 adder of ``hw.fadd``: the selected
power-of-two scaling of ``x`` (an exponent decrement, flushed to +0 when the exponent would reach
0) and the segment's constant are the adder's operands, and the adder's single RNE rounding is the
contract's. Saturated inputs (|x| >= 5) also go through the adder, as ``0 + 1`` or ``0 + 0``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import encode, get_format
from golden.numerics import SIGMOID_SATURATION, SIGMOID_SEGMENTS
from hw.fadd import FAdd
from hw.lmul import LMul
from hw.skid import registered

__all__ = ["Sigmoid", "SiLU", "sigmoid_operands"]

BF16 = get_format("bf16")


def _bits(value: float) -> int:
    return int(encode(value, BF16))


def _sigmoid_input(tag_width: int):
    if tag_width:
        return data.StructLayout({"x": 16, "tag": tag_width})
    return 16


def _sigmoid_output(tag_width: int):
    if tag_width:
        return data.StructLayout({"y": 16, "tag": tag_width})
    return 16


def sigmoid_operands(m: Module, x):
    """The PLAN sigmoid's segment select (combinational): the adder operands ``(x * 2**-k, c)``
    of bf16 ``x``'s segment, or ``(0, 0 or 1)`` when it saturates. ``sigmoid(x)`` is their bf16
    sum (one RNE rounding). Shared by ``Sigmoid`` and the compact engine's pipeline."""
    M = BF16.man_bits
    sign = x[15]
    exp = x[M:15]
    field = x[:15]
    nan = (exp == BF16.exp_all_ones) & (x[:M] != 0)

    def scaled(k):  # x * 2**-k: exponent decrement, +0 once the exponent field would be <= 0
        return Mux(exp <= k, 0, Cat(x[:M], (exp - k)[:8], sign))

    def constant(b):  # the segment's constant, 1 - b for x < 0
        return Mux(sign, _bits(1.0 - b), _bits(b))

    operand_a = Signal(16)
    operand_b = Signal(16)
    chain = m.If
    for lo, hi, shift, b in SIGMOID_SEGMENTS:
        with chain(field < (_bits(hi) & 0x7FFF)):
            m.d.comb += [operand_a.eq(scaled(shift)), operand_b.eq(constant(b))]
        chain = m.Elif
    assert SIGMOID_SEGMENTS[-1][1] == SIGMOID_SATURATION
    with m.Else():  # |x| >= 5, Inf, NaN: 0 + (0 or 1)
        m.d.comb += [operand_a.eq(0), operand_b.eq(Mux(sign & ~nan, 0, _bits(1.0)))]
    return operand_a, operand_b


class Sigmoid(wiring.Component):
    """Pipelined PLAN sigmoid, bf16 -> bf16.

    For ``|x|`` in ``[0, 1)``, ``[1, 2.375)``, ``[2.375, 5)``: ``x * 2**-k + c`` with ``k`` = 2, 3, 5
    and ``c`` = 0.5, 0.625 (0.375 for x < 0), 0.84375 (0.15625 for x < 0), one bf16 addition
    (RNE, ``hw.fadd.FAdd``); ``|x| >= 5``: 1 (0 for x < 0). Segments are selected by comparing the
    exponent-and-mantissa field of ``x`` with the thresholds' (all exact in bf16). An input whose
    exponent field is 0 is zero. Inf and NaN never reach the unit in the token step; as in the
    golden model, +-Inf give 1 and +0, and every NaN (either sign) gives 1.

    Parameters
    ----------
    tag_width : int
        Width of an optional side-band ``tag`` carried from each input to its result (0: none).

    Attributes
    ----------
    i : In(stream.Signature(16 or StructLayout({"x": 16, "tag": tag_width})))
        bf16 bit patterns.
    o : Out(stream.Signature(16 or StructLayout({"y": 16, "tag": tag_width})))
        bf16 bit patterns.

    Latency 11 cycles (1 segment select, then the adder's 10), throughput one result per cycle.
    Back-pressure stalls the whole pipeline: ``i.ready`` is high whenever the output register is
    empty or being read (a combinational path from ``o.ready`` to ``i.ready``). No multiplier.
    """

    LATENCY = 1 + FAdd.LATENCY

    def __init__(self, tag_width: int = 0):
        if not isinstance(tag_width, int) or tag_width < 0:
            raise ValueError(f"tag_width must be a non-negative integer, got {tag_width!r}")
        self.tag_width = tag_width
        super().__init__({
            "i": In(stream.Signature(_sigmoid_input(tag_width))),
            "o": Out(stream.Signature(_sigmoid_output(tag_width))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.add = add = FAdd("bf16", tag_width=self.tag_width)
        tagged = self.tag_width > 0

        # -- stage 1: segment select, scaled x and constant into the adder's operand register ------
        operand_a, operand_b = sigmoid_operands(m, self.i.payload.x if tagged else self.i.payload)

        # a one-entry stage in front of the adder (same stall rule as every pipeline stage)
        m.d.comb += self.i.ready.eq(~add.i.valid | add.i.ready)
        with m.If(self.i.ready):
            m.d.sync += [
                add.i.valid.eq(self.i.valid),
                add.i.payload.a.eq(operand_a),
                add.i.payload.b.eq(operand_b),
                add.i.payload.sub.eq(0),
            ]
            if tagged:
                m.d.sync += add.i.payload.tag.eq(self.i.payload.tag)

        m.d.comb += [
            self.o.valid.eq(add.o.valid),
            add.o.ready.eq(self.o.ready),
        ]
        if tagged:
            m.d.comb += [self.o.payload.y.eq(add.o.payload.sum), self.o.payload.tag.eq(add.o.payload.tag)]
        else:
            m.d.comb += self.o.payload.eq(add.o.payload)
        return m


class SiLU(wiring.Component):
    """Pipelined SiLU, bf16 -> bf16: ``lmul(x, sigmoid(x))`` (``hw.lmul.LMul``, ``Sigmoid``).

    ``x`` travels alongside the sigmoid as its side-band tag. Inf and NaN never reach the unit in the
    token step; as in the golden model (whose ``encode`` saturates Inf before the L-Mul), an Inf
    input enters the L-Mul as the largest finite value of its sign (+Inf -> 0x7F7F x 1,
    -Inf -> 0xFF7F x 0 = +0), and a NaN gives the canonical NaN 0x7FC0.

    Parameters
    ----------
    tag_width : int
        Width of an optional side-band ``tag`` carried from each input to its result (0: none).

    Attributes
    ----------
    i : In(stream.Signature(16 or StructLayout({"x": 16, "tag": tag_width})))
        bf16 bit patterns.
    o : Out(stream.Signature(16 or StructLayout({"y": 16, "tag": tag_width})))
        bf16 bit patterns.

    Latency 15 cycles (the sigmoid's 11, a skid buffer, the L-Mul's 3), throughput one result per cycle.
    Back-pressure stalls the whole pipeline: ``i.ready`` is high whenever the output register is
    empty or being read (a combinational path from ``o.ready`` to ``i.ready``). No multiplier.
    """

    LATENCY = Sigmoid.LATENCY + 1 + LMul.LATENCY

    def __init__(self, tag_width: int = 0):
        if not isinstance(tag_width, int) or tag_width < 0:
            raise ValueError(f"tag_width must be a non-negative integer, got {tag_width!r}")
        self.tag_width = tag_width
        super().__init__({
            "i": In(stream.Signature(_sigmoid_input(tag_width))),
            "o": Out(stream.Signature(_sigmoid_output(tag_width))),
        })

    def elaborate(self, platform):
        m = Module()
        tw = self.tag_width
        m.submodules.sigmoid = sigmoid = Sigmoid(tag_width=16 + tw)
        m.submodules.lmul = lmul = LMul("bf16", tag_width=tw)

        # a skid buffer between the two units keeps the stall logic of each in its own cycle
        sig_o = registered(m, "sigmoid_skid", sigmoid.o)
        x = self.i.payload.x if tw else self.i.payload
        inf = x[:15] == BF16.inf_field
        operand = Mux(inf, Cat(Const(BF16.max_finite_field, 15), x[15]), x)
        m.d.comb += [
            sigmoid.i.valid.eq(self.i.valid),
            sigmoid.i.payload.x.eq(x),
            sigmoid.i.payload.tag.eq(Cat(operand, self.i.payload.tag) if tw else operand),
            self.i.ready.eq(sigmoid.i.ready),

            lmul.i.valid.eq(sig_o.valid),
            lmul.i.payload.a.eq(sig_o.payload.tag[:16]),
            lmul.i.payload.b.eq(sig_o.payload.y),
            sig_o.ready.eq(lmul.i.ready),
            lmul.o.ready.eq(self.o.ready),
            self.o.valid.eq(lmul.o.valid),
        ]
        if tw:
            m.d.comb += [lmul.i.payload.tag.eq(sig_o.payload.tag[16:]),
                         self.o.payload.y.eq(lmul.o.payload.product), self.o.payload.tag.eq(lmul.o.payload.tag)]
        else:
            m.d.comb += self.o.payload.eq(lmul.o.payload)
        return m
