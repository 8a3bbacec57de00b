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

from golden.formats import encode, get_format
from golden.numerics import SUMSQ_GUARD_BITS

from .convert import FloatToInt8, IntToFloat
from .fadd import FAdd
from .lmul import OPERAND_CLASS, LMul, classify
from .logic import at_least
from .pipeline import NO_RW_CHECK, CreditQueue, flow, replicas
from .tables import Reciprocal, ReciprocalSqrt

__all__ = ["NormQuant", "normquant_input", "normquant_code", "quantiser_signature"]

CODE_MAX_BF16 = int(encode(127.0, "bf16"))
SIG_BITS = 8  # bf16 significand with its hidden bit
TERM_BITS = SIG_BITS + SUMSQ_GUARD_BITS

# The element buffers are small and W elements wide: LUT RAM, so the block RAMs stay for the model.
# One bank is written while the other is read: a read never meets a write (``no_rw_check``).
BUFFER_ATTRS = {"ram_style": "distributed", **NO_RW_CHECK}


def normquant_input(with_pre: bool) -> data.StructLayout:
    fields = {"x": 16, "gain": 16, "last": 1}
    if with_pre:
        fields["pre"] = 16
    return data.StructLayout(fields)


def normquant_code(codes_per_beat: int = 1) -> data.StructLayout:
    """A beat of ``codes_per_beat`` int8 codes (element ``j`` of the beat in ``codes[j]``) and ``last``."""
    return data.StructLayout({"codes": data.ArrayLayout(signed(8), codes_per_beat), "last": 1})


def quantiser_signature(input_layout, codes_per_beat: int = 1) -> wiring.Signature:
    """The ports of a block that ends in the quantiser: elements in, code beats and a scale out."""
    return wiring.Signature({
        "i": In(stream.Signature(input_layout)),
        "eps": In(16),
        "c": In(16),
        "q": Out(stream.Signature(normquant_code(codes_per_beat))),
        "scale": Out(stream.Signature(16)),
    })


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class NormQuant(wiring.Component):
    """RMSNorm + int8 quantiser for vectors of up to ``max_len`` elements, W codes per beat.

    Parameters
    ----------
    max_len : int
        The longest vector K (the buffers' depth); the sum-of-squares accumulator has
        ``8 + SUMSQ_GUARD_BITS + ceil(log2 max_len)`` bits, enough for any K <= max_len.
    with_pre : bool
        Whether the input carries a preceding norm's weight ``pre`` (False: v = x).
    codes_per_beat : int
        W, the codes per output beat: the stream-out reads, scales and converts W elements per
        cycle (W L-Muls for the codes, W for the squares, W conversions).

    Attributes
    ----------
    i : In(stream.Signature(normquant_input(with_pre)))
        The vector's elements in order, each with its ``gain`` (and ``pre``); ``last`` marks the
        final element. A vector may have 1 to ``max_len`` elements.
    eps, c : In(16)
        bf16 ``K * eps`` and the projection's output constant, sampled with the vector's first
        element (so the next vector's may be presented as soon as its first element is).
    q : Out(stream.Signature(normquant_code(codes_per_beat)))
        The codes in element order, W per beat (``ceil(K / W)`` beats; the last beat's elements
        after the K-th are 0); ``last`` on the final beat.
    scale : Out(stream.Signature(16))
        The bf16 output scale, one per vector.

    Schedule, three stages that overlap across vectors: the **load** of a vector of K elements (K
    cycles at one element per cycle, L-Mul x2, max tracking) into one of two buffer banks; its
    **stream-out** from that bank (2 scalar steps, the reciprocal with the square of max|v|
    beside it and one L-Mul, then ``ceil(K / W)`` beats, one per cycle: codes and squares, and
    the pipeline's drain), while the next vector loads into the other bank; the **scale** (8
    scalar steps: conversion, its exponent offset and range, addition, rsqrt, two L-Muls, about
    40 cycles) while the next vector streams out. With no stalls: a vector's first beat leaves
    ``FIRST_BEAT_LATENCY`` (29) cycles after its last element was accepted, one beat per cycle;
    its scale ``SCALE_LATENCY`` (38) cycles after its last beat; and the next vector's elements
    are accepted after ``LOAD_GAP`` (2) idle cycles, while the last element is still on its way
    into the buffer, if the stream-out of the vector before is done by then (for vectors of
    K >= ceil(K / W) + 30 or so); else from the cycle after it is done.

    The units never stall: the scalar steps run one at a time in each half, and the stream-out
    reads a beat only while the code queue (``hw.pipeline.CreditQueue``) has a place reserved for
    it, so back-pressure on ``q`` fills the queue and then pauses the reads. On ``scale``, the
    block holds until it is taken (and the stream-out of the next vector then waits to hand its
    sum over, then the load of the one after). No multiplier.
    """

    # stream-out, beat issued to code: the address copies, the read port, its copy, the masking register,
    # L-Mul, conversion
    CODE_CHAIN = 4 + LMul.LATENCY + FloatToInt8.LATENCY
    FIRST_BEAT_LATENCY, SCALE_LATENCY, LOAD_GAP = 29, 38, 2  # the docstring's, checked by a test

    def __init__(self, max_len: int, with_pre: bool = True, codes_per_beat: int = 1):
        self.max_len = _check_positive("max_len", max_len)
        self.codes_per_beat = _check_positive("codes_per_beat", codes_per_beat)
        self.with_pre = with_pre
        self.words = -(-max_len // codes_per_beat)
        self.acc_bits = TERM_BITS + max(1, (max_len - 1).bit_length())
        super().__init__(quantiser_signature(normquant_input(with_pre), codes_per_beat))

    def elaborate(self, platform):
        m = Module()
        W, words = self.codes_per_beat, self.words
        aw = max(1, (words - 1).bit_length())
        shape = data.ArrayLayout(16, W)
        # two banks: one loads the next vector while the other streams out. A memory per lane, each
        # with its own copies of the addresses and the written element: one register driving the
        # LUT RAM of all the lanes would span them (the device's slowest nets).
        u_mems, v_mems = ([memory.Memory(shape=16, depth=2 * words, init=[], attrs=BUFFER_ATTRS) for _ in range(W)]
                          for _ in range(2))
        for j in range(W):
            m.submodules[f"u_mem{j}"], m.submodules[f"v_mem{j}"] = u_mems[j], v_mems[j]
        all_lanes = (1 << W) - 1

        # the loader's view of the vector it loads ...
        last_word = Signal(aw)  # the vector's last beat: ceil(K / W) - 1
        tail = Signal(W)  # the lanes of the last beat holding elements (a thermometer)
        max_u, max_v = Signal(15, name="max_u"), Signal(15, name="max_v")  # magnitudes (bf16 without its sign)
        c_in, eps_in = Signal(16), Signal(16)  # sampled with the first element
        # ... and the streamer's, of the vector it streams out (handed over with the bank)
        s_last_word, s_tail, s_max_u, s_max_v, s_c, s_eps = (
            Signal.like(v, name=f"s_{v.name}") for v in (last_word, tail, max_u, max_v, c_in, eps_in))
        t, e_top = Signal(16), Signal(8)  # 127 / max|u|; the largest square's exponent field
        acc = Signal(self.acc_bits)

        # -- load: u = x * gain (tag: x, pre, last), then v = x * pre ---------------------------
        fresh = Signal(init=1)  # no element of this vector taken yet
        closed = Signal()  # the last element has entered
        # The next vector enters ("reopened") while this one's last element is on its way into
        # the buffer, once that element is two cycles in and the streamer is idle: then the
        # hand-over comes two cycles after the last element is stored (``loaded``, then
        # ``hand_over``) at the latest, so the write pointers, the bank and the maxima move on
        # for the next vector before its first element (6 cycles through the two L-Muls) is
        # stored. The closed vector's c and eps wait in ``l_c``/``l_eps`` while ``c_in`` samples
        # the next one's; a second reopening waits for the hand-over (``~reopened``), after which
        # the streamer is busy, so at most two vectors are between the input and the stream-out.
        closed_since = Signal()  # ``closed`` a cycle ago
        reopened = Signal()  # the next vector entered before this one's hand-over
        l_c, l_eps = Signal(16), Signal(16)  # the closed vector's c and eps, for the hand-over
        tag_u = data.StructLayout({"x": 16, "pre": 16, "last": 1})
        m.submodules.mul_u = mul_u = LMul("bf16", tag_width=tag_u.size)
        tag_v = data.StructLayout({"u": 16, "x": 16, "last": 1})
        m.submodules.mul_v = mul_v = LMul("bf16", tag_width=tag_v.size)
        x = self.i.payload
        m.d.comb += [
            mul_u.i.valid.eq(self.i.valid & ~closed),
            self.i.ready.eq(mul_u.i.ready & ~closed),
            mul_u.i.payload.a.eq(x.x),
            mul_u.i.payload.b.eq(x.gain),
        ]
        in_tag = data.View(tag_u, mul_u.i.payload.tag)
        m.d.comb += [in_tag.x.eq(x.x), in_tag.last.eq(x.last)]
        if self.with_pre:
            m.d.comb += in_tag.pre.eq(x.pre)
        # sampled in every cycle until the first element is taken, the last time in that cycle:
        # an enable from a register, not from the input's handshake
        with m.If(fresh):
            m.d.sync += [c_in.eq(self.c), eps_in.eq(self.eps)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += fresh.eq(0)
            with m.If(x.last):
                m.d.sync += closed.eq(1)
        m.d.sync += closed_since.eq(closed)
        with m.If(closed & ~reopened):  # c_in holds the closed vector's until a reopening
            m.d.sync += [l_c.eq(c_in), l_eps.eq(eps_in)]

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
        # element k goes to word k // W of the loading bank, lane k % W (a one-hot lane pointer)
        load_bank = Signal()
        write_word, write_lane = Signal(aw), Signal(W, init=1)
        write_addr = Signal(range(2 * words))  # the bank's base plus write_word, kept as a count
        stored = mul_v.o.valid
        # the write is registered (it lands a cycle later; the bank is read 3 cycles after its
        # last element at the earliest: ``loaded``, then ``hand_over``)
        w_addr = replicas("buf_w_addr", range(2 * words), W)
        w_u, w_v = replicas("buf_w_u", 16, W), replicas("buf_w_v", 16, W)
        for j in range(W):
            w_en = Signal(name=f"buf_w_en{j}")
            m.d.sync += [w_en.eq(stored & write_lane[j]), w_addr[j].eq(write_addr), w_u[j].eq(u_out), w_v[j].eq(v_out)]
            for mem, value in ((u_mems[j], w_u[j]), (v_mems[j], w_v[j])):
                port = mem.write_port()
                m.d.comb += [port.addr.eq(w_addr[j]), port.en.eq(w_en), port.data.eq(value)]
        # the running maxima compare a registered copy of the element (the compare's carry chain
        # and the maxima's enable then start at a register beside them); the last element's is in
        # before ``hand_over`` takes them
        m_valid, m_u, m_v = Signal(), Signal(15, name="m_u", reset_less=True), Signal(15, name="m_v", reset_less=True)
        m.d.sync += [m_valid.eq(stored), m_u.eq(u_out[:15]), m_v.eq(v_out[:15])]
        with m.If(m_valid & (m_u > max_u)):
            m.d.sync += max_u.eq(m_u)
        with m.If(m_valid & (m_v > max_v)):
            m.d.sync += max_v.eq(m_v)
        loaded = Signal()  # the last element is in the buffers
        with m.If(stored):
            with m.If(write_lane[W - 1]):
                m.d.sync += [write_lane.eq(1), write_word.eq(write_word + 1), write_addr.eq(write_addr + 1)]
            with m.Else():
                m.d.sync += write_lane.eq(write_lane << 1)
            with m.If(last_out):
                m.d.sync += [loaded.eq(1), last_word.eq(write_word), tail.eq(write_lane | (write_lane - 1))]

        # the loaded bank goes to the streamer once it is free; the loader starts the other one
        # (decided a cycle ahead into a register, like the hand-over to the back below: its enable
        # reaches ~150 flip-flops; ``loaded`` and the idle streamer both hold until it is taken)
        stream_idle = Signal()
        hand_over = Signal()
        m.d.sync += hand_over.eq(loaded & stream_idle & ~hand_over)
        with m.If(closed & closed_since & stream_idle & ~reopened & ~hand_over):
            m.d.sync += [closed.eq(0), fresh.eq(1), reopened.eq(1)]
        read_word = Signal(aw)
        read_addr = Signal(range(2 * words))  # the next beat's, in the streaming bank
        unread = Signal()  # beats left to read, a register: no comparison before the credits
        with m.If(hand_over):
            m.d.sync += [s_last_word.eq(last_word), s_tail.eq(tail), s_max_u.eq(max_u), s_max_v.eq(max_v),
                         s_c.eq(l_c), s_eps.eq(l_eps),
                         read_word.eq(0), read_addr.eq(Mux(load_bank, words, 0)), unread.eq(1),
                         load_bank.eq(~load_bank), write_addr.eq(Mux(load_bank, 0, words)),
                         loaded.eq(0), write_word.eq(0), write_lane.eq(1), max_u.eq(0), max_v.eq(0),
                         reopened.eq(0)]

        # -- stream-out: codes = int8(u * t); squares = v * v, aligned and summed ---------------
        streaming = Signal()
        u_read = [mem.read_port(domain="sync") for mem in u_mems]
        v_read = [mem.read_port(domain="sync") for mem in v_mems]
        # The stream-out chain never stalls: a beat is read only with a place reserved for its
        # codes in the queue at the chain's end (the squares are always taken). Its output is a
        # ring: the code router's ready, across the die, moves a pointer, not every code bit's
        # output register (110 enables, 12.7 ns at 49758f2).
        m.submodules.codes_queue = codes_queue = CreditQueue(
            normquant_code(W), CreditQueue.depth_for(self.CODE_CHAIN), ring=True)
        # Four registered stages: the read address reaches each memory through its own copy (one
        # register's enable or value driving every lane's LUT RAM would span them), the memories'
        # read ports, a plain copy of the read data (so the read port's register can sit beside
        # its LUT RAM, away from the L-Muls), then a register that zeroes the lanes after the
        # vector's end in its last beat (their codes and squares are then 0).
        addr_copies = replicas("buf_r_addr", range(2 * words), 2 * W)
        m.d.sync += [a.eq(read_addr) for a in addr_copies]
        m.d.comb += [port.addr.eq(a) for port, a in zip(u_read + v_read, addr_copies)]
        q_valid, q_tail, r_valid, r_tail, r1_valid, r1_tail, r2_valid, r2_tail = (Signal(name=n) for n in (
            "q_valid", "q_tail", "r_valid", "r_tail", "r1_valid", "r1_tail", "r2_valid", "r2_tail"))
        u1, v1 = Signal(shape, name="u_read_copy", reset_less=True), Signal(shape, name="v_read_copy", reset_less=True)
        u2, v2 = Signal(shape, reset_less=True), Signal(shape, reset_less=True)
        issue = streaming & unread & codes_queue.room
        m.d.comb += codes_queue.admit.eq(issue)
        m.d.sync += [q_valid.eq(issue), q_tail.eq(read_word == s_last_word),
                     r_valid.eq(q_valid), r_tail.eq(q_tail), r1_valid.eq(r_valid), r1_tail.eq(r_tail),
                     r2_valid.eq(r1_valid), r2_tail.eq(r1_tail)]
        lanes_in = Mux(r1_tail, s_tail, all_lanes)
        for j in range(W):
            m.d.sync += [u1[j].eq(u_read[j].data), v1[j].eq(v_read[j].data),
                         u2[j].eq(Mux(lanes_in[j], u1[j], 0)), v2[j].eq(Mux(lanes_in[j], v1[j], 0))]
        with m.If(issue):
            m.d.sync += [read_word.eq(read_word + 1), read_addr.eq(read_addr + 1)]
            with m.If(read_word == s_last_word):
                m.d.sync += unread.eq(0)

        codes_in = codes_queue.i.payload.codes
        # ``last`` travels beside the lanes' fixed-latency chain (it never stalls): the next
        # vector may stream out, and change ``s_last_word``, while this one's beats are queued
        tail_out = r2_tail
        for stage in range(LMul.LATENCY + FloatToInt8.LATENCY):
            delayed = Signal(name=f"last_beat{stage}")
            m.d.sync += delayed.eq(tail_out)
            tail_out = delayed
        m.d.comb += codes_queue.i.payload.last.eq(tail_out)
        terms = []  # per lane: (valid, aligned square)
        # t and e_top, constant during the stream-out, copied once per lane: one shared register
        # would fan out to every lane's L-Mul and aligner across the die
        t_lanes, e_top_lanes = self._per_lane(m, t, W), self._per_lane(m, e_top, W)
        # t's classes, registered beside it: no L-Mul works them out from t on the lanes' path
        t_class = Signal(OPERAND_CLASS, name="t_class", reset_less=True)
        m.d.sync += t_class.eq(Cat(*classify(get_format("bf16"), t)))
        for j in range(W):
            mul_q, to_int, mul_sq = LMul("bf16", b_class=True), FloatToInt8(), LMul("bf16")
            m.submodules[f"mul_q{j}"], m.submodules[f"to_int{j}"], m.submodules[f"mul_sq{j}"] = mul_q, to_int, mul_sq
            m.d.comb += [
                mul_q.i.valid.eq(r2_valid), mul_q.i.payload.a.eq(u2[j]), mul_q.i.payload.b.eq(t_lanes[j]),
                mul_q.i.payload.b_class.eq(t_class),
                mul_sq.i.valid.eq(r2_valid), mul_sq.i.payload.a.eq(v2[j]), mul_sq.i.payload.b.eq(v2[j]),
                mul_sq.o.ready.eq(1),
            ]
            flow(m, mul_q.o, to_int.i)
            m.d.comb += [to_int.i.payload.eq(mul_q.o.payload), to_int.o.ready.eq(1),
                         codes_in[j].eq(to_int.o.payload)]
            if j == 0:  # the lanes move in lockstep
                m.d.comb += codes_queue.i.valid.eq(to_int.o.valid)
            terms.append(self._aligned_square(m, mul_sq.o, e_top_lanes[j], j))

        wiring.connect(m, codes_queue.o, wiring.flipped(self.q))

        # the beat's aligned squares summed by a registered adder tree, then accumulated
        level = 0
        while len(terms) > 1:
            level += 1
            paired = []
            for k in range(0, len(terms), 2):
                if k + 1 < len(terms):
                    (va, a), (_, b) = terms[k], terms[k + 1]
                    node = Signal(a.shape().width + 1, name=f"ssq{level}_{k // 2}", reset_less=True)
                    m.d.sync += node.eq(a + b)
                    valid = Signal(name=f"ssq{level}_{k // 2}_valid")
                    m.d.sync += valid.eq(va)
                    paired.append((valid, node))
                else:
                    paired.append(self._delay(m, terms[k], f"ssq{level}_{k // 2}"))
            terms = paired
        beat_valid, beat_sum = terms[0]
        beats_in = Signal(aw + 1)
        with m.If(beat_valid):
            m.d.sync += [acc.eq(acc + beat_sum), beats_in.eq(beats_in + 1)]
        summed = Signal()  # every beat's squares are in acc (a register: no adder before the FSM)
        m.d.sync += summed.eq(streaming & ~unread & (beats_in == s_last_word + 1) & ~beat_valid)

        # -- the scalar steps -------------------------------------------------------------------
        # The streamer's (t and e_top, before its stream-out) and the back's (the scale, after it)
        # run in their own units, so the scale of one vector is computed while the next streams.
        m.submodules.recip = recip = Reciprocal()
        m.submodules.rsqrt = rsqrt = ReciprocalSqrt()
        m.submodules.smul = smul = LMul("bf16")
        m.submodules.smul_top = smul_top = LMul("bf16")
        m.submodules.smul_back = smul_back = LMul("bf16")
        m.submodules.to_float = to_float = IntToFloat(self.acc_bits + 1)
        m.submodules.add_eps = add_eps = FAdd("bf16")
        front_result, result, m_r, ssq = Signal(16), Signal(16), Signal(16), Signal(16)
        # what the back works on, handed over by the streamer at the end of the stream-out
        b_acc, b_max_u, b_e_top, b_c, b_eps = (Signal.like(v, name=f"b_{v.name}") for v in (acc, max_u, e_top, c_in, eps_in))

        # One operation at a time is in flight in each unit and its sequencer is always waiting
        # for the result, so their outputs are always taken: a constant ready leaves the units
        # without a stall enable (no FSM decode fanning out to their pipeline registers).
        for unit in (recip, rsqrt, smul, smul_top, smul_back, to_float, add_eps):
            m.d.comb += unit.o.ready.eq(1)
        # Their operands come from registers, never through a sequencer's state decode: each
        # unit's own source registers, or for the back's L-Mul two operand registers loaded one
        # state before it is started.
        back_a, back_b = Signal(16), Signal(16)
        m.d.comb += [
            recip.i.payload.eq(s_max_u), smul.i.payload.a.eq(front_result), smul.i.payload.b.eq(CODE_MAX_BF16),
            smul_top.i.payload.a.eq(s_max_v), smul_top.i.payload.b.eq(s_max_v),
            to_float.i.payload.eq(b_acc), rsqrt.i.payload.eq(result),
            add_eps.i.payload.a.eq(ssq), add_eps.i.payload.b.eq(b_eps), add_eps.i.payload.sub.eq(0),
            smul_back.i.payload.a.eq(back_a), smul_back.i.payload.b.eq(back_b),
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

        back_idle = Signal()
        # The hand-over of a summed vector from the streamer to the back is decided a cycle ahead,
        # into a register: its enable reaches ~100 flip-flops (the back's operands, acc,
        # beats_in), and no FSM decode may sit in front of that fan-out. Both FSMs hold their
        # states until it is taken (nothing else moves them), so the decision stays true.
        take = Signal()
        m.d.sync += take.eq(streaming & summed & back_idle & ~take)
        # e_top: the largest square's exponent, max|v|^2 by L-Mul beside the reciprocal (both
        # start together; the L-Mul is the shorter)
        m.d.comb += smul_top.i.valid.eq(recip.i.valid)
        with m.If(smul_top.o.valid):
            m.d.sync += e_top.eq(smul_top.o.payload[7:15])
        with m.FSM(name="streamer"):
            with m.State("idle"):
                m.d.comb += stream_idle.eq(1)
                with m.If(hand_over):
                    m.next = "recip"
            scalar("recip", recip, front_result, "t")
            scalar("t", smul, t, "stream")
            with m.State("stream"):
                m.d.comb += streaming.eq(1)
                with m.If(take):
                    m.next = "idle"
        # take is set only in "stream", which it ends: the hand-over needs no state decode (in
        # front of acc's adder it was a slow path)
        with m.If(take):
            m.d.sync += [b_acc.eq(acc), b_max_u.eq(s_max_u), b_e_top.eq(e_top), b_c.eq(s_c),
                         b_eps.eq(s_eps), summed.eq(0), acc.eq(0), beats_in.eq(0)]

        # the integer sum (a bf16 of it, in ``result``) times 2^(E - 127 - 7 - 16), flushed or
        # saturated: the exponent in one state, the range checks in the next (two carry chains
        # in series do not fit a cycle)
        ssq_exp = Signal(range(-512, 512))
        ssq_zero = Signal()
        with m.FSM(name="back"):
            with m.State("idle"):
                m.d.comb += back_idle.eq(1)
                # the front hands over in this same cycle (its registers load on this edge)
                with m.If(take):
                    m.next = "ssq"
            scalar("ssq", to_float, result, "ssq-scale")
            with m.State("ssq-scale"):
                m.d.sync += [ssq_exp.eq(result[7:15] + b_e_top - (127 + 7 + SUMSQ_GUARD_BITS)),
                             ssq_zero.eq(result[7:15] == 0)]
                m.next = "ssq-range"
            with m.State("ssq-range"):
                m.d.sync += ssq.eq(Mux(ssq_zero | (ssq_exp <= 0), 0,
                                       Mux(ssq_exp >= 255, Const(0x7F7F, 16), Cat(result[:7], ssq_exp[:8], Const(0, 1)))))
                m.next = "eps"
            scalar("eps", add_eps, result, "rsqrt")
            scalar("rsqrt", rsqrt, result, "mr")
            scalar("mr", smul_back, m_r, "mrc", operands=[(back_a, b_max_u), (back_b, result)])
            scalar("mrc", smul_back, result, "deliver", operands=[(back_a, m_r), (back_b, b_c)])
            m.d.comb += self.scale.payload.eq(result)
            with m.State("deliver"):
                m.d.comb += self.scale.valid.eq(1)
                with m.If(self.scale.ready):
                    m.next = "idle"
        return m

    @staticmethod
    def _per_lane(m, value, lanes):
        """``lanes`` registered copies of ``value`` (one cycle later), kept apart in synthesis."""
        copies = replicas(value.name, value.shape(), lanes)
        m.d.sync += [copy.eq(value) for copy in copies]
        return copies

    @staticmethod
    def _delay(m, term, name):
        """A (valid, value) pair one cycle later (an odd node of the adder tree)."""
        valid, value = term
        v, x = Signal(name=f"{name}_valid"), Signal(value.shape(), name=name, reset_less=True)
        m.d.sync += [v.eq(valid), x.eq(value)]
        return v, x

    @staticmethod
    def _aligned_square(m, sq_stream, e_top, lane):
        """A square aligned to the largest one's exponent: ``floor(sig * 2^16 / 2^(E - e))``, in
        three stages: the exponent difference (a carry chain); the shift by its low 3 bits beside
        its range check (logic, not a second chain); the shift by whole bytes. Returns (valid, term)."""
        sq = sq_stream.payload
        sq_exp = sq[7:15]
        d_valid, distance = Signal(name=f"d_valid{lane}"), Signal(8, name=f"distance{lane}", reset_less=True)
        d_sig = Signal(SIG_BITS, name=f"d_sig{lane}", reset_less=True)
        m.d.sync += [d_valid.eq(sq_stream.valid), distance.eq(e_top - sq_exp),
                     d_sig.eq(Mux(sq_exp == 0, 0, Cat(sq[:7], Const(1, 1))))]
        # floor(floor(x / 2^lo) / 2^(8 hi)) = floor(x / 2^(lo + 8 hi)); no bit falls off the
        # first shift (lo < 8 <= SUMSQ_GUARD_BITS)
        f_valid, far = Signal(name=f"f_valid{lane}"), Signal(name=f"far{lane}", reset_less=True)
        fine = Signal(TERM_BITS, name=f"fine{lane}", reset_less=True)
        coarse = Signal(range(TERM_BITS // 8 + 1), name=f"coarse{lane}", reset_less=True)
        m.d.sync += [f_valid.eq(d_valid), far.eq(at_least(distance, TERM_BITS)),
                     fine.eq(Cat(Const(0, SUMSQ_GUARD_BITS), d_sig) >> distance[:3]),
                     coarse.eq(distance[3:3 + len(coarse)])]
        term_valid, term = Signal(name=f"term_valid{lane}"), Signal(TERM_BITS, name=f"term{lane}", reset_less=True)
        m.d.sync += [term_valid.eq(f_valid), term.eq(Mux(far, 0, fine >> Cat(Const(0, 3), coarse)))]
        return term_valid, term
