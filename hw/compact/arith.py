"""The compact engine's arithmetic pipeline: every element-wise function through shared units.

One L-Mul, one adder, one rounding unit, the two tables and an int8 conversion, side by side
(docs/compact_engine.md, "The instruction set"). A pass selects one path with ``fn``; the units of
the other paths stay idle. Values are fp32 bit patterns: a bf16 operand comes as its pattern
shifted left by 16, and a bf16 result leaves the same way (a bf16 bank keeps the upper half).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import get_format
from golden.numerics import SUMSQ_GUARD_BITS

from hw.convert import FloatToInt8
from hw.fadd import FAdd
from hw.lmul import LMul
from hw.narrow import Narrow
from hw.nonlinear import sigmoid_operands
from hw.tables import Reciprocal, ReciprocalSqrt

from .isa import FUNCTIONS

__all__ = ["Function", "Arithmetic", "operands"]


class Function(enum.Enum, shape=4):
    """The pipeline's functions (``hw.compact.isa.FUNCTIONS``), as ``Arithmetic.fn`` takes them."""
    ZERO = 0
    COPY = 1
    MUL = 2
    ADD = 3
    ADD32 = 4
    SUB32 = 5
    ROUND16 = 6
    SIGMOID = 7
    SIGMOID_NEG = 8
    QUANT = 9
    RSQRT = 10
    RECIP = 11
    INT_MUL = 12
    INT_POW2 = 13


assert {f.name.lower() for f in Function} == set(FUNCTIONS)

#: ``x`` is ``a``'s upper half as the sigmoids read it: the engine drives it from the banks the
#: sigmoid passes read alone, so that the segment select's compares do not wait for ``a``'s other
#: sources (the image memory above all: the UP5K's slowest path ran through it)
operands = data.StructLayout({"a": 32, "b": 32, "x": 16})

BF16 = get_format("bf16")
FP32_MAN = get_format("fp32").man_bits
#: ``int_mul``'s accumulators lie in [-2**22, 2**22): ``(1.5 * 2**23 + acc) - 1.5 * 2**23`` in fp32
#: is then exact, the first operand in the binade [2**23, 2**24) (exponent field 150 = 127 + 23),
#: where a unit in the last place is 1. Its significand field is ``acc + 2**22`` as 23 bits: acc's
#: two's complement with bit 22 inverted, so the conversion takes no negation and no adder.
INT_MUL_BITS = FP32_MAN - 1
MAGIC_EXPONENT = get_format("fp32").bias + FP32_MAN
MAGIC = Cat(Const(1 << INT_MUL_BITS, FP32_MAN), Const(MAGIC_EXPONENT, 8), Const(0, 1))  # 1.5 * 2**23
#: The adder's stages built without registers (``hw.pipeline.Stages``): the compact engine runs
#: on the UP5K at 24 MHz, where the ECP5's register after every step of the adder only costs
#: logic cells. Each wired stage merges two steps that fit one cycle together. The adder alone,
#: this way (``hw.catalog`` block ``fadd_fp32_compact``; ``python -m benchmarks.synth --blocks
#: fadd_fp32_compact --parts up5k --no-write``): 34.4 MHz on the UP5K, 916 placed cells with the
#: harness, against 43.7 MHz and 1,072 for all ten stages (``fadd_fp32``).
FADD_WIRED = ("s0", "s2", "s5", "s7")
#: ``int_pow2`` normalises its integer (an aligned sum of at most 256 squares, below 2**32) a bit
#: per cycle: up to 31 shifts, always that many cycles, then the rounding. It runs once per
#: quantiser (passes of one element), where a shifter of 32 bits by 0-31 would be 400 logic cells.
POW2_SHIFTS = 31
#: ``int_pow2`` scales by ``2**(b - POW2_BIAS)``: an aligned sum's weight (golden.numerics.scale_aligned)
POW2_BIAS = BF16.bias + BF16.man_bits + SUMSQ_GUARD_BITS


def _int_pow2(m: Module, start, total, exponent):
    """``int_pow2`` of ``total`` (a 32-bit unsigned integer) by ``2**(exponent - POW2_BIAS)``
    (``exponent`` an 8-bit field), begun when ``start`` is high: returns ``(valid, bf16)``,
    registers that carry the result ``POW2_SHIFTS + 2`` cycles later. One at a time: another
    start before then restarts the unit, and the element in flight is lost (the engine runs
    ``int_pow2`` only on passes of one element, and checks that its program does).

    The integer is shifted left until its top bit is set (one bit per cycle, counting down its
    leading one's position), then rounded to 8 significant bits, to nearest even, and scaled:
    flushed to +0 at or below exponent field 0, saturated at 255 and above."""
    norm = Signal(32)
    top = Signal(range(32))  # the position of norm's leading one in total
    steps = Signal(range(POW2_SHIFTS))
    busy, shifted = Signal(), Signal()
    scale = Signal(8)
    with m.If(start):
        m.d.sync += [norm.eq(total), top.eq(31), steps.eq(0), busy.eq(1), scale.eq(exponent)]
    with m.Elif(busy):
        m.d.sync += steps.eq(steps + 1)
        with m.If(~norm[31] & (top != 0)):
            m.d.sync += [norm.eq(norm << 1), top.eq(top - 1)]
        with m.If(steps == POW2_SHIFTS - 1):
            m.d.sync += busy.eq(0)
    m.d.sync += shifted.eq(busy & (steps == POW2_SHIFTS - 1))

    man_bits = BF16.man_bits
    kept = norm[32 - man_bits - 1:]  # 8 bits, the leading one on top
    round_bit = norm[32 - man_bits - 2]
    sticky = norm[:32 - man_bits - 2].any()
    rounded = kept + (round_bit & (sticky | kept[0]))  # 9 bits; a carry leaves the fraction 0
    field = Signal(range(-512, 512))
    m.d.comb += field.eq(top + rounded[man_bits + 1] + scale + (BF16.bias - POW2_BIAS))
    # the bounds as tests of field's bits, not comparisons (carry chains after its adder: the
    # UP5K's slowest path): <= 0 is negative or zero, >= 255 is not negative with bit 8 or the
    # low byte all ones
    negative = field[9]
    flush = negative | (field[:9] == 0)
    saturate = ~negative & (field[8] | (field[:8] == BF16.exp_all_ones))
    valid, result = Signal(), Signal(16)
    m.d.sync += [
        valid.eq(shifted),
        result.eq(Mux((norm == 0) | flush, 0,
                      Mux(saturate, BF16.max_finite_field, Cat(rounded[:man_bits], field[:8], Const(0, 1))))),
    ]
    return valid, result


class Arithmetic(wiring.Component):
    """One element per cycle through the path of function ``fn``.

    Attributes
    ----------
    fn : In(Function)
        Held while a pass's elements are in flight (the sequencer changes it only when the
        pipeline is empty).
    i_valid, i : In(1), In(operands)
        Operand pairs as fp32 patterns (bf16 shifted left by 16; ``b`` unused by one-operand
        functions), taken in every cycle ``i_valid`` is high; ``x`` must equal ``a[16:]`` when
        ``fn`` is a sigmoid.
    o_valid, o : Out(1), Out(32)
        Results, one in every cycle ``o_valid`` is high: fp32 patterns (``mul`` of fp32
        operands, ``add32``, ``sub32``, ``copy``), bf16 shifted left by 16 (``add``,
        ``round16``, ``sigmoid``, ``sigmoid_neg``, ``rsqrt``, ``recip``; ``mul`` of bf16
        operands in its upper half), or the int8 code in bits 0-7 (``quant``, two's complement,
        upper bits zero).

    Latency by path, counting the output register: ``mul`` 4, ``quant`` 7, ``add`` and the
    sigmoids 10, ``add32``/``sub32`` 8, ``round16`` 3, ``rsqrt``/``recip`` 3, ``copy``/``zero``
    1, ``int_mul`` 13, ``int_pow2`` 34 (``latency[fn]``). Throughput one element per cycle on
    every path but ``int_pow2``, which takes one element at a time (``_int_pow2``). No back-pressure, so no
    stream handshake: the units never stall (their outputs are always taken), and a result
    appears exactly its path's latency after its operands, so the sequencer issues freely and
    counts results to know when the pipeline is empty. No multiplier.
    """

    fn: In(Function)
    i_valid: In(1)
    i: In(operands)
    o_valid: Out(1)
    o: Out(32)

    def __init__(self):
        self._fadd = FAdd("fp32", wired=FADD_WIRED)
        adder = self._fadd.latency
        #: Cycles from operands to result, by function.
        self.latency = {
            Function.ZERO: 1, Function.COPY: 1,
            Function.MUL: LMul.LATENCY + 1,
            Function.QUANT: LMul.LATENCY + FloatToInt8.LATENCY + 1,
            Function.ADD: 1 + adder + Narrow.LATENCY + 1,
            Function.SIGMOID: 1 + adder + Narrow.LATENCY + 1,
            Function.SIGMOID_NEG: 1 + adder + Narrow.LATENCY + 1,
            Function.ADD32: 1 + adder + 1,
            Function.SUB32: 1 + adder + 1,
            Function.ROUND16: Narrow.LATENCY + 1,
            Function.RSQRT: 2 + 1, Function.RECIP: 2 + 1,
            Function.INT_MUL: 1 + adder + Narrow.LATENCY + LMul.LATENCY + 1,
            Function.INT_POW2: POW2_SHIFTS + 3,
        }
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        fn, a, b = self.fn, self.i.a, self.i.b
        m.submodules.lmul = lmul = LMul("fp32", compact_bounds=True)  # a slow clock: fewer cells
        m.submodules.to_int = to_int = FloatToInt8()
        m.submodules.fadd = fadd = self._fadd
        m.submodules.narrow = narrow = Narrow()
        m.submodules.recip = recip = Reciprocal(block_ram=True)  # the UP5K has a block RAM for it
        m.submodules.rsqrt = rsqrt = ReciprocalSqrt()
        for unit in (lmul, to_int, fadd, narrow, recip, rsqrt):
            m.d.comb += unit.o.ready.eq(1)  # never stalls: each input is taken as it comes

        def one_of(*fns):
            return Cat(*(fn == f for f in fns)).any()

        def on(*fns):
            return self.i_valid & one_of(*fns)

        # the L-Mul path, then the int8 conversion of the bf16 product for ``quant``; for
        # ``int_mul`` it takes the accumulator as bf16 from the rounding unit (below)
        from_int = narrow.o.valid & (fn == Function.INT_MUL)
        m.d.comb += [
            lmul.i.valid.eq(on(Function.MUL, Function.QUANT) | from_int),
            lmul.i.payload.a.eq(Mux(fn == Function.INT_MUL, Cat(Const(0, 16), narrow.o.payload), a)),
            lmul.i.payload.b.eq(b),
            to_int.i.valid.eq(lmul.o.valid & (fn == Function.QUANT)),
            to_int.i.payload.eq(lmul.o.payload[16:]),
        ]
        pow2_out, pow2 = _int_pow2(m, on(Function.INT_POW2), a, b[:8])

        # the adder path: a register in front, holding the sigmoid's segment operands or (a, b)
        x = Signal(16)
        m.d.comb += x.eq(self.i.x ^ Cat(Const(0, 15), fn == Function.SIGMOID_NEG))
        seg_a, seg_b = sigmoid_operands(m, x)
        sigmoid = one_of(Function.SIGMOID, Function.SIGMOID_NEG)
        # ``int_mul``: an accumulator becomes fp32 exactly as ``(1.5 * 2**23 + acc) - 1.5 * 2**23``
        # (INT_MUL_BITS), which the adder computes without rounding; the rounding unit then rounds
        # it to bf16 once, as the contract's conversion does
        int_mul = fn == Function.INT_MUL
        offset = Cat(a[:INT_MUL_BITS], ~a[INT_MUL_BITS], Const(MAGIC_EXPONENT, 8), Const(0, 1))
        m.d.sync += [
            fadd.i.valid.eq(on(Function.ADD, Function.ADD32, Function.SUB32,
                               Function.SIGMOID, Function.SIGMOID_NEG, Function.INT_MUL)),
            fadd.i.payload.a.eq(Mux(sigmoid, Cat(Const(0, 16), seg_a), Mux(int_mul, offset, a))),
            fadd.i.payload.b.eq(Mux(sigmoid, Cat(Const(0, 16), seg_b), Mux(int_mul, MAGIC, b))),
            fadd.i.payload.sub.eq((fn == Function.SUB32) | int_mul),
        ]
        narrowing = one_of(Function.ADD, Function.SIGMOID, Function.SIGMOID_NEG, Function.INT_MUL)
        m.d.comb += [
            # the rounding unit: the adder's bf16 sums, or a itself for ``round16``
            narrow.i.valid.eq((fadd.o.valid & narrowing) | on(Function.ROUND16)),
            narrow.i.payload.eq(Mux(fn == Function.ROUND16, a, fadd.o.payload)),
            recip.i.valid.eq(on(Function.RECIP)), recip.i.payload.eq(a[16:]),
            rsqrt.i.valid.eq(on(Function.RSQRT)), rsqrt.i.payload.eq(a[16:]),
        ]

        # the output register: the one path that carries a result this cycle
        with m.Switch(fn):
            with m.Case(Function.ZERO, Function.COPY):
                m.d.sync += [self.o_valid.eq(self.i_valid),
                             self.o.eq(Mux(fn == Function.COPY, a, 0))]
            with m.Case(Function.MUL, Function.INT_MUL):
                m.d.sync += [self.o_valid.eq(lmul.o.valid), self.o.eq(lmul.o.payload)]
            with m.Case(Function.INT_POW2):
                m.d.sync += [self.o_valid.eq(pow2_out), self.o.eq(Cat(Const(0, 16), pow2))]
            with m.Case(Function.QUANT):
                m.d.sync += [self.o_valid.eq(to_int.o.valid), self.o.eq(to_int.o.payload.as_unsigned())]
            with m.Case(Function.ADD32, Function.SUB32):
                m.d.sync += [self.o_valid.eq(fadd.o.valid), self.o.eq(fadd.o.payload)]
            with m.Case(Function.ADD, Function.SIGMOID, Function.SIGMOID_NEG, Function.ROUND16):
                m.d.sync += [self.o_valid.eq(narrow.o.valid), self.o.eq(Cat(Const(0, 16), narrow.o.payload))]
            with m.Case(Function.RECIP):
                m.d.sync += [self.o_valid.eq(recip.o.valid), self.o.eq(Cat(Const(0, 16), recip.o.payload))]
            with m.Case(Function.RSQRT):
                m.d.sync += [self.o_valid.eq(rsqrt.o.valid), self.o.eq(Cat(Const(0, 16), rsqrt.o.payload))]
        return m
