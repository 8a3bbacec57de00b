"""RMSNorm + int8 quantiser: the front of the BitLinear composite (docs/numerics.md, sections 6-7).

Golden model: ``golden.bitexact.norm_quant``. For a vector x of K bf16 elements, a norm weight
``pre`` (or none) and the projection's folded ``gain``:

    u = x * gain,  v = x * pre (or x)                          (L-Mul, per element)
    m = max|u|,  t = recip(m) * 127,  codes = int8(u * t)       (round half away, clamp +-127)
    r = rsqrt(ssq(v) + eps),  scale = (m * r) * c               (ssq: fixed point, order-free)
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import encode
from golden.numerics import SUMSQ_GUARD_BITS

from .convert import FloatToInt8, IntToFloat
from .fadd import FAdd
from .lmul import LMul
from .pipeline import NO_RW_CHECK, CreditQueue, flow
from .tables import Reciprocal, ReciprocalSqrt

__all__ = ["NormQuant", "normquant_input", "normquant_code", "quantiser_signature"]

CODE_MAX_BF16 = int(encode(127.0, "bf16"))
SIG_BITS = 8  # bf16 significand with its hidden bit
TERM_BITS = SIG_BITS + SUMSQ_GUARD_BITS


def normquant_input(with_pre: bool) -> data.StructLayout:
    fields = {"x": 16, "gain": 16, "last": 1}
    if with_pre:
        fields["pre"] = 16
    return data.StructLayout(fields)


normquant_code = data.StructLayout({"code": signed(8), "last": 1})


def quantiser_signature(input_layout) -> wiring.Signature:
    """The ports of a block that ends in the quantiser: elements in, codes and a scale out."""
    return wiring.Signature({
        "i": In(stream.Signature(input_layout)),
        "eps": In(16),
        "c": In(16),
        "q": Out(stream.Signature(normquant_code)),
        "scale": Out(stream.Signature(16)),
    })


class NormQuant(wiring.Component):
    """RMSNorm + int8 quantiser for vectors of up to ``max_len`` elements.

    Parameters
    ----------
    max_len : int
        The longest vector K (the buffers' depth); the sum-of-squares accumulator has
        ``8 + SUMSQ_GUARD_BITS + ceil(log2 max_len)`` bits, enough for any K <= max_len.
    with_pre : bool
        Whether the input carries a preceding norm's weight ``pre`` (False: v = x).

    Attributes
    ----------
    i : In(stream.Signature(normquant_input(with_pre)))
        The vector's elements in order, each with its ``gain`` (and ``pre``); ``last`` marks the
        final element. A vector may have 1 to ``max_len`` elements.
    eps, c : In(16)
        bf16 ``K * eps`` and the projection's output constant; read when the vector's scale is
        computed, so they must hold their values until ``scale`` is delivered.
    q : Out(stream.Signature(normquant_code))
        The int8 codes in element order, ``last`` on the final one.
    scale : Out(stream.Signature(16))
        The bf16 output scale, one per vector.

    Schedule per vector of K elements: load (K cycles at one element per cycle, L-Mul x2, max
    tracking); 3 scalar steps (reciprocal, two L-Muls); stream-out (K cycles: codes and squares);
    8 scalar steps (conversion, its exponent offset and range, addition, rsqrt, two L-Muls).
    ``2K + 60`` cycles per vector when nothing stalls. The next vector is accepted once the scale
    has been delivered. The units never stall: the scalar steps run one at a time, and the
    stream-out reads an element only while the code queue (``hw.pipeline.CreditQueue``) has a
    place reserved for its code, so back-pressure on ``q`` fills the queue and then pauses the
    reads. On ``scale``, the block holds until it is taken. No multiplier.
    """

    # stream-out, RAM read to code: the read port, its output register, L-Mul, conversion
    CODE_CHAIN = 2 + LMul.LATENCY + FloatToInt8.LATENCY

    def __init__(self, max_len: int, with_pre: bool = True):
        if not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
        self.max_len, self.with_pre = max_len, with_pre
        self.acc_bits = TERM_BITS + max(1, (max_len - 1).bit_length())
        super().__init__(quantiser_signature(normquant_input(with_pre)))

    def elaborate(self, platform):
        m = Module()
        aw = max(1, (self.max_len - 1).bit_length())
        # Written while loading, read while streaming out: a read never meets a write, so Yosys
        # need not add collision logic after the block RAMs' outputs (``no_rw_check``).
        m.submodules.u_mem = u_mem = memory.Memory(shape=16, depth=self.max_len, init=[], attrs=NO_RW_CHECK)
        m.submodules.v_mem = v_mem = memory.Memory(shape=16, depth=self.max_len, init=[], attrs=NO_RW_CHECK)

        length = Signal(range(self.max_len + 1))  # K of the vector being processed
        last_index = Signal(aw)  # K - 1, so that no comparison needs a subtraction first
        max_u, max_v = Signal(15), Signal(15)  # magnitudes (bf16 without its sign)
        t, e_top = Signal(16), Signal(8)  # 127 / max|u|; the largest square's exponent field
        acc = Signal(self.acc_bits)
        m_r, ssq = Signal(16), Signal(16)

        # -- load: u = x * gain (tag: x, pre, last), then v = x * pre ---------------------------
        loading = Signal()
        closed = Signal()  # the last element has entered
        tag_u = data.StructLayout({"x": 16, "pre": 16, "last": 1})
        m.submodules.mul_u = mul_u = LMul("bf16", tag_width=tag_u.size)
        tag_v = data.StructLayout({"u": 16, "x": 16, "last": 1})
        m.submodules.mul_v = mul_v = LMul("bf16", tag_width=tag_v.size)
        x = self.i.payload
        take = loading & ~closed
        m.d.comb += [
            mul_u.i.valid.eq(self.i.valid & take),
            self.i.ready.eq(mul_u.i.ready & take),
            mul_u.i.payload.a.eq(x.x),
            mul_u.i.payload.b.eq(x.gain),
        ]
        in_tag = data.View(tag_u, mul_u.i.payload.tag)
        m.d.comb += [in_tag.x.eq(x.x), in_tag.last.eq(x.last)]
        if self.with_pre:
            m.d.comb += in_tag.pre.eq(x.pre)
        with m.If(self.i.valid & self.i.ready & x.last):
            m.d.sync += closed.eq(1)

        u_tag = data.View(tag_u, mul_u.o.payload.tag)
        v_in_tag = data.View(tag_v, mul_v.i.payload.tag)
        m.d.comb += [
            mul_v.i.valid.eq(mul_u.o.valid),
            mul_u.o.ready.eq(mul_v.i.ready),
            mul_v.i.payload.a.eq(u_tag.x),
            mul_v.i.payload.b.eq(u_tag.pre),  # without a pre norm the product is unused: v = x
            v_in_tag.u.eq(mul_u.o.payload.product), v_in_tag.x.eq(u_tag.x), v_in_tag.last.eq(u_tag.last),
            mul_v.o.ready.eq(1),  # the buffers always take
        ]
        v_tag = data.View(tag_v, mul_v.o.payload.tag)
        u_out, last_out = v_tag.u, v_tag.last
        v_out = mul_v.o.payload.product if self.with_pre else v_tag.x
        write_addr = Signal(aw)
        u_write, v_write = u_mem.write_port(), v_mem.write_port()
        stored = mul_v.o.valid
        m.d.comb += [u_write.addr.eq(write_addr), u_write.data.eq(u_out), u_write.en.eq(stored),
                     v_write.addr.eq(write_addr), v_write.data.eq(v_out), v_write.en.eq(stored)]
        loaded = Signal()  # the last element is in the buffers
        with m.If(stored):
            m.d.sync += write_addr.eq(write_addr + 1)
            with m.If(u_out[:15] > max_u):
                m.d.sync += max_u.eq(u_out[:15])
            with m.If(v_out[:15] > max_v):
                m.d.sync += max_v.eq(v_out[:15])
            with m.If(last_out):
                m.d.sync += [loaded.eq(1), length.eq(write_addr + 1), last_index.eq(write_addr)]

        # -- stream-out: codes = int8(u * t); squares = v * v, aligned and summed ---------------
        streaming = Signal()
        read_addr = Signal(aw + 1)
        u_read, v_read = u_mem.read_port(domain="sync"), v_mem.read_port(domain="sync")
        m.submodules.mul_q = mul_q = LMul("bf16")
        m.submodules.to_int = to_int = FloatToInt8()
        m.submodules.mul_sq = mul_sq = LMul("bf16")
        # The stream-out chain never stalls: an element is read only with a place reserved for
        # its code in the queue at the chain's end (the squares are always taken).
        m.submodules.codes_queue = codes_queue = CreditQueue(signed(8), CreditQueue.depth_for(self.CODE_CHAIN))
        # Two registered stages: the block RAMs' outputs (their read ports), then a register on
        # those outputs, so the RAMs' slow clock-to-output does not share a cycle with an adder.
        r_valid, r2_valid = Signal(), Signal()
        u2, v2 = Signal(16), Signal(16)
        # ``unread``: elements left to read, a register, so no comparison sits before the credits
        unread = Signal()
        issue = streaming & unread & codes_queue.room
        m.d.comb += [u_read.addr.eq(read_addr), v_read.addr.eq(read_addr), codes_queue.admit.eq(issue)]
        m.d.sync += [r_valid.eq(issue), r2_valid.eq(r_valid), u2.eq(u_read.data), v2.eq(v_read.data)]
        with m.If(issue):
            m.d.sync += read_addr.eq(read_addr + 1)
            with m.If(read_addr == last_index):
                m.d.sync += unread.eq(0)
        m.d.comb += [
            mul_q.i.valid.eq(r2_valid), mul_q.i.payload.a.eq(u2), mul_q.i.payload.b.eq(t),
            mul_sq.i.valid.eq(r2_valid), mul_sq.i.payload.a.eq(v2), mul_sq.i.payload.b.eq(v2),
            mul_sq.o.ready.eq(1),
        ]
        flow(m, mul_q.o, to_int.i)
        m.d.comb += to_int.i.payload.eq(mul_q.o.payload)
        flow(m, to_int.o, codes_queue.i)
        m.d.comb += codes_queue.i.payload.eq(to_int.o.payload)
        codes = codes_queue.o
        codes_out = Signal(range(self.max_len + 1))
        m.d.comb += [
            self.q.valid.eq(codes.valid), codes.ready.eq(self.q.ready),
            self.q.payload.code.eq(codes.payload), self.q.payload.last.eq(codes_out == last_index),
        ]
        with m.If(self.q.valid & self.q.ready):
            m.d.sync += codes_out.eq(Mux(codes_out == last_index, 0, codes_out + 1))

        # align each square to the largest one's exponent: floor(sig * 2^16 / 2^(E - e)), in two
        # stages (the exponent difference and its range check, then the shift): one carry chain
        # and one barrel shifter do not fit a cycle together
        sq = mul_sq.o.payload
        sq_exp = sq[7:15]
        distance = Signal(8)
        m.d.comb += distance.eq(e_top - sq_exp)
        d_valid, d_far, d_shift, d_sig = Signal(), Signal(), Signal(range(TERM_BITS)), Signal(SIG_BITS)
        m.d.sync += [d_valid.eq(mul_sq.o.valid), d_far.eq(distance >= TERM_BITS),
                     d_shift.eq(distance[:d_shift.shape().width]),
                     d_sig.eq(Mux(sq_exp == 0, 0, Cat(sq[:7], Const(1, 1))))]
        term_valid, term = Signal(), Signal(TERM_BITS)
        m.d.sync += [term_valid.eq(d_valid),
                     term.eq(Mux(d_far, 0, Cat(Const(0, SUMSQ_GUARD_BITS), d_sig) >> d_shift))]
        terms_in = Signal(range(self.max_len + 1))
        with m.If(term_valid):
            m.d.sync += [acc.eq(acc + term), terms_in.eq(terms_in + 1)]

        # -- the scalar steps -------------------------------------------------------------------
        m.submodules.recip = recip = Reciprocal()
        m.submodules.rsqrt = rsqrt = ReciprocalSqrt()
        m.submodules.smul = smul = LMul("bf16")
        m.submodules.to_float = to_float = IntToFloat(self.acc_bits + 1)
        m.submodules.add_eps = add_eps = FAdd("bf16")
        result = Signal(16)

        # One operation at a time is in flight in the scalar units and the sequencer is always
        # waiting for its result, so their outputs are always taken: a constant ready leaves the
        # units without a stall enable (no FSM decode fanning out to their pipeline registers).
        for unit in (recip, rsqrt, smul, to_float, add_eps):
            m.d.comb += unit.o.ready.eq(1)
        # Their operands come from registers, never through the sequencer's state decode: each
        # unit's own source register, or for the shared L-Mul two operand registers loaded one
        # state before it is started.
        smul_a, smul_b = Signal(16), Signal(16)
        m.d.comb += [
            recip.i.payload.eq(max_u), to_float.i.payload.eq(acc), rsqrt.i.payload.eq(result),
            add_eps.i.payload.a.eq(ssq), add_eps.i.payload.b.eq(self.eps), add_eps.i.payload.sub.eq(0),
            smul.i.payload.a.eq(smul_a), smul.i.payload.b.eq(smul_b),
        ]

        def scalar(state, unit, into, then, out=None, operands=()):
            """FSM states that start ``unit`` (after loading ``operands``, (register, value) pairs,
            if any), then wait for its output (valid for one cycle). The unit is empty and never
            stalls, so it takes the operands at once."""
            start = state
            if operands:
                start = state + "-go"
                with m.State(state):
                    m.d.sync += [reg.eq(value) for reg, value in operands]
                    m.next = start
            with m.State(start):
                m.d.comb += unit.i.valid.eq(1)
                m.next = state + "-wait"
            with m.State(state + "-wait"):
                with m.If(unit.o.valid):
                    m.d.sync += into.eq(unit.o.payload if out is None else out(unit.o.payload))
                    m.next = then

        # the integer sum (a bf16 of it, in ``result``) times 2^(E - 127 - 7 - 16), flushed or
        # saturated: the exponent in one state, the range checks in the next (two carry chains
        # in series do not fit a cycle)
        ssq_exp = Signal(range(-512, 512))
        ssq_zero = Signal()

        with m.FSM():
            with m.State("load"):
                m.d.comb += loading.eq(1)
                with m.If(loaded):
                    m.d.sync += unread.eq(1)
                    m.next = "recip"
            scalar("recip", recip, result, "t")
            scalar("t", smul, t, "top", operands=[(smul_a, result), (smul_b, CODE_MAX_BF16)])
            scalar("top", smul, e_top, "stream", out=lambda p: p[7:15], operands=[(smul_a, max_v), (smul_b, max_v)])
            with m.State("stream"):
                m.d.comb += streaming.eq(1)
                with m.If((terms_in == length) & ~d_valid & ~term_valid):
                    m.next = "ssq"
            scalar("ssq", to_float, result, "ssq-scale")
            with m.State("ssq-scale"):
                m.d.sync += [ssq_exp.eq(result[7:15] + e_top - (127 + 7 + SUMSQ_GUARD_BITS)),
                             ssq_zero.eq(result[7:15] == 0)]
                m.next = "ssq-range"
            with m.State("ssq-range"):
                m.d.sync += ssq.eq(Mux(ssq_zero | (ssq_exp <= 0), 0,
                                       Mux(ssq_exp >= 255, Const(0x7F7F, 16), Cat(result[:7], ssq_exp[:8], Const(0, 1)))))
                m.next = "eps"
            scalar("eps", add_eps, result, "rsqrt")
            scalar("rsqrt", rsqrt, result, "mr")
            scalar("mr", smul, m_r, "mrc", operands=[(smul_a, max_u), (smul_b, result)])
            scalar("mrc", smul, result, "deliver", operands=[(smul_a, m_r), (smul_b, self.c)])
            m.d.comb += self.scale.payload.eq(result)
            with m.State("deliver"):
                m.d.comb += self.scale.valid.eq(1)
                with m.If(self.scale.ready):
                    m.d.sync += [closed.eq(0), loaded.eq(0), write_addr.eq(0), read_addr.eq(0), max_u.eq(0),
                                 max_v.eq(0), acc.eq(0), terms_in.eq(0)]
                    m.next = "load"
        return m

