"""Correctly rounded reciprocal and reciprocal square root by table lookup (docs/numerics.md §6).

Both results depend only on the mantissa (and, for rsqrt, the exponent's parity); the exponent
of the result is an addition. The tables are computed by the golden model itself at
construction, so the ROM holds exactly the contract's values.
"""

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import decode, encode, get_format
from golden.numerics import Numerics

from .logic import at_least
from .pipeline import payload_register, stall_advance

__all__ = ["Reciprocal", "ReciprocalSqrt"]

BF16 = get_format("bf16")
MAN = BF16.man_bits  # 7
EXP_MAX = BF16.exp_all_ones  # 255


def _table(fn, inputs, base_exp):
    """ROM words ``(exp - base_exp) << 7 | mantissa`` of golden ``fn`` at the reference inputs."""
    bits = encode(fn(decode(inputs, BF16)), BF16)
    exp = (bits >> MAN) & EXP_MAX
    delta = exp - base_exp
    assert np.all((delta >= 0) & (delta <= 1)), "reference results span more than two binades"
    return [int(w) for w in (delta << MAN) | (bits & ((1 << MAN) - 1))]


class _TableUnit(wiring.Component):
    """Shared pipeline of the two table units. Stage 1 reads the ROM and, beside it, works out
    from the operand everything that does not need the table: the class (zero, Inf, NaN,
    negative), and for both possible table exponents (the ROM's ``delta`` bit, 0 or 1) the result
    exponent and whether it flushes or saturates. Stage 2 only picks by ``delta``: no adder or
    comparison sits after the ROM.

    Latency 2 cycles, one result per cycle. Back-pressure stalls the whole pipeline; ``i.ready`` is
    high whenever the output register is empty or being read.
    """

    i: In(stream.Signature(16))
    o: Out(stream.Signature(16))

    def __init__(self, rom_words, block_ram=False):
        super().__init__()
        # block_ram: ask for a block RAM where the tools would build the ROM from logic (a small
        # ROM costs fewer block RAM bits than LUTs by their measure, not always by the part's room)
        self._rom = memory.Memory(shape=MAN + 1, depth=len(rom_words), init=rom_words,
                                  attrs={"ram_style": "block"} if block_ram else None)

    def rom_address(self, x):
        raise NotImplementedError

    def result_exponent(self, m, exp, delta):
        """Biased result exponent (signed, may be out of range) from the operand's exponent and
        the table's ``delta`` (a constant 0 or 1 here)."""
        raise NotImplementedError

    def special(self, m, sign, exp, man):
        """(is_special, bits) for zeros, negatives, Inf and NaN."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = self._rom
        advance = stall_advance(m, self)
        out = payload_register(m, self.o)

        x = self.i.payload
        sign, exp_in, man_in = x[15], x[MAN:15], x[:MAN]
        read = self._rom.read_port(domain="sync")
        m.d.comb += [read.addr.eq(self.rom_address(x)), read.en.eq(advance)]

        # stage 1, beside the ROM read: the operand's class, and per table delta the result's
        # exponent field and its range
        is_special, special_bits = self.special(m, sign, exp_in, man_in)
        s1_valid = Signal()
        s1_sign, s1_special = Signal(reset_less=True), Signal(reset_less=True)
        s1_special_bits = Signal(16, reset_less=True)
        s1_exp = [Signal(8, name=f"s1_exp{d}", reset_less=True) for d in (0, 1)]
        s1_flush = [Signal(name=f"s1_flush{d}", reset_less=True) for d in (0, 1)]
        s1_sat = [Signal(name=f"s1_sat{d}", reset_less=True) for d in (0, 1)]
        with m.If(advance):
            m.d.sync += [s1_valid.eq(self.i.valid), s1_sign.eq(sign), s1_special.eq(is_special),
                         s1_special_bits.eq(special_bits)]
            for d in (0, 1):
                exp = Signal(range(-256, 512), name=f"exp{d}")
                m.d.comb += exp.eq(self.result_exponent(m, exp_in, d))
                # the range checks as logic on the difference's bits: comparisons after the
                # subtraction would be a second carry chain in series with it
                negative, magnitude = exp[-1], exp[:-1]
                m.d.sync += [s1_exp[d].eq(exp[:8]), s1_flush[d].eq(negative | ~magnitude.any()),
                             s1_sat[d].eq(~negative & at_least(magnitude, EXP_MAX))]

        # stage 2: pick by the table's delta bit
        delta, mant = read.data[MAN], read.data[:MAN]
        result = Signal(16)
        with m.If(s1_special):
            m.d.comb += result.eq(s1_special_bits)
        with m.Elif(Mux(delta, s1_flush[1], s1_flush[0])):
            m.d.comb += result.eq(0)  # flush to +0
        with m.Elif(Mux(delta, s1_sat[1], s1_sat[0])):
            m.d.comb += result.eq(Cat(Const(BF16.max_finite_field, 15), s1_sign))
        with m.Else():
            m.d.comb += result.eq(Cat(mant, Mux(delta, s1_exp[1], s1_exp[0]), s1_sign))
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(s1_valid), out.eq(result)]
        return m


class Reciprocal(_TableUnit):
    """bf16 ``1/x``, correctly rounded; zero (either sign) -> +largest finite, Inf -> +0, NaN -> NaN.

    A 128 x 8-bit ROM indexed by the mantissa, in block RAM with ``block_ram`` (else where the
    synthesis tools choose: LUTs on the UP5K, about 70 more LUT4). Latency 2, throughput 1/cycle
    (see ``_TableUnit``).
    """

    def __init__(self, *, block_ram=False):
        # reference inputs 1.m (exponent field 127); results have exponent field 126 or 127
        refs = (127 << MAN) | np.arange(1 << MAN)
        super().__init__(_table(Numerics.recip, refs, base_exp=126), block_ram)

    def rom_address(self, x):
        return x[:MAN]

    def result_exponent(self, m, exp, delta):
        # 1/(1.m * 2^(e-127)) = (1/1.m) * 2^(127-e): field = 126 + delta + 127 - e
        return 253 + delta - exp

    def special(self, m, sign, exp, man):
        bits = Signal(16)
        with m.If(exp == EXP_MAX):
            m.d.comb += bits.eq(Mux(man != 0, BF16.nan_code, 0))
        with m.Else():  # zero or subnormal, of either sign: zero is +0
            m.d.comb += bits.eq(BF16.max_finite_field)
        return (exp == 0) | (exp == EXP_MAX), bits


class ReciprocalSqrt(_TableUnit):
    """bf16 ``1/sqrt(x)``, correctly rounded, for x > 0; zero, negatives and NaN give the largest
    finite value, +Inf gives +0.

    A 256 x 8-bit ROM indexed by the exponent's parity and the mantissa. Latency 2, throughput
    1/cycle (see ``_TableUnit``).
    """

    def __init__(self):
        # reference inputs 1.m (field 127, even unbiased exponent) and 2 * 1.m (field 128, odd);
        # results lie in (0.5, 1]: exponent field 126 or 127
        refs = np.concatenate([(127 << MAN) | np.arange(1 << MAN), (128 << MAN) | np.arange(1 << MAN)])
        super().__init__(_table(Numerics.rsqrt, refs, base_exp=126))

    def rom_address(self, x):
        # unbiased exponent e - 127 is odd exactly when the field e is even
        return Cat(x[:MAN], ~x[MAN])

    def result_exponent(self, m, exp, delta):
        # x = t * 2^(2k) with t = 1.m (field 127 + 2k) or 2 * 1.m (field 128 + 2k): result field
        # = 126 + delta - k, and k = floor((e - 127) / 2)
        k = Signal(range(-64, 65), name=f"k{delta}")
        m.d.comb += k.eq(((exp + 1) >> 1) - 64)  # floor((e - 127) / 2) for e in [1, 254]
        return 126 + delta - k

    def special(self, m, sign, exp, man):
        bits = Signal(16)
        with m.If((exp == EXP_MAX) & (man == 0) & ~sign):
            m.d.comb += bits.eq(0)  # +Inf
        with m.Else():
            m.d.comb += bits.eq(BF16.max_finite_field)
        return (exp == 0) | sign | (exp == EXP_MAX), bits
