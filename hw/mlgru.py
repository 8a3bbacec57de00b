"""MLGRU state-update engine (docs/numerics.md section 7): the element-wise part of the token mixer.

Golden model: ``golden.bitexact.recurrence``. Per channel j, in channel order, every token:

    z   = sigmoid(-f_j)             ("neg": MLGRU/HGRN, z = 1 - f)   or sigmoid(f_j) ("pos": minGRU)
    z   = z * keep_j                (with a lower bound: keep = 1 - lb)
    inp = silu(i_j) * z             (candidate "silu"; "identity" for minGRU)
    h_j = (h_j - z *fp32 h_j) +fp32 inp     (state in on-chip memory, fp32)
    out = g_j * silu(bf16(h_j))     (output "code"), sigmoid(g_j) * bf16(h_j) ("paper"), or bf16(h_j)

Any element-wise linear recurrence ``h = a*h + b`` with ``a = 1 - z`` is a choice of these
parameters, not a new engine.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .fadd import FAdd
from .lmul import LMul
from .narrow import Narrow
from .nonlinear import Sigmoid, SiLU
from .pipeline import NO_RW_CHECK, CreditQueue, flow

__all__ = ["MLGRUEngine", "mlgru_input"]

OUTPUTS = ("code", "paper", "state")


def mlgru_input(with_keep: bool) -> data.StructLayout:
    fields = {"i": 16, "f": 16, "g": 16, "first": 1}
    if with_keep:
        # use_keep = 0 skips the product (z = sigmoid(-f) exactly): a layer without a lower bound
        # (layer 0 of MMfreeLM) shares the engine of the layers with one
        fields.update(keep=16, use_keep=1)
    return data.StructLayout(fields)


class MLGRUEngine(wiring.Component):
    """The recurrence over ``channels`` channels with its state in on-chip memory.

    Parameters
    ----------
    channels : int
        d, the number of channels (state words). At least ``MIN_CHANNELS``: a channel's state is
        read and written back ``READ_TO_WRITE`` stages apart, and the next read of the same channel
        is ``channels`` elements later, so no read can see a stale word.
    output : "code" | "paper" | "state"
        The output gate (see the module docstring).
    lower_bound : bool
        Whether the input carries ``keep`` (= 1 - lower bound) to scale z.
    decay_gate : "neg" | "pos"
    candidate : "silu" | "identity"

    Attributes
    ----------
    i : In(stream.Signature(mlgru_input(lower_bound)))
        Per channel, in channel order: the bf16 projections ``i``, ``f``, ``g``, ``keep`` and
        ``use_keep`` (with a lower bound; ``use_keep = 0`` leaves z unscaled, for a layer with no
        lower bound) and ``first``: treat the previous state as 0 (the first token after a reset).
    o : Out(stream.Signature(16))
        The bf16 output per channel, in channel order.

    Latency ``LATENCY`` cycles (sigmoid, L-Mul, SiLU, L-Mul, state read, fp32 L-Mul, two fp32
    additions, narrowing, output gate, then the output queue); throughput one channel per cycle.
    The units never stall: an element is accepted only while the output queue
    (``hw.pipeline.CreditQueue``, ``QUEUE_SLACK`` places more than the chain's latency) has a
    place reserved for it, so back-pressure on ``o`` fills the queue and then drops ``i.ready``,
    which is a register. A stall never loses or reorders an element.
    """

    def __init__(self, channels: int, output: str = "code", lower_bound: bool = True,
                 decay_gate: str = "neg", candidate: str = "silu"):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if decay_gate not in ("neg", "pos"):
            raise ValueError(f"decay_gate must be 'neg' or 'pos', got {decay_gate!r}")
        if candidate not in ("silu", "identity"):
            raise ValueError(f"candidate must be 'silu' or 'identity', got {candidate!r}")
        if not isinstance(channels, int) or channels < self.MIN_CHANNELS:
            raise ValueError(f"channels must be an integer >= {self.MIN_CHANNELS}, got {channels!r}")
        self.channels, self.output, self.lower_bound = channels, output, lower_bound
        self.decay_gate, self.candidate = decay_gate, candidate
        super().__init__({"i": In(stream.Signature(mlgru_input(lower_bound))), "o": Out(stream.Signature(16))})

    # state read and its output register (2) .. write-back: fp32 L-Mul, two fp32 additions
    READ_TO_WRITE = 2 + LMul.LATENCY + 2 * FAdd.LATENCY
    MIN_CHANNELS = READ_TO_WRITE + 2
    # output queue places beyond the chain's latency (the queue's own latency, and the credits')
    QUEUE_SLACK = CreditQueue.depth_for(0)

    @property
    def CHAIN_LATENCY(self):
        """Cycles from an accepted input to the output of the last unit (the sum of the units'
        latencies: the units are linked directly)."""
        n = Sigmoid.LATENCY + (LMul.LATENCY if self.lower_bound else 0)
        n += (SiLU.LATENCY if self.candidate == "silu" else 0) + LMul.LATENCY
        n += self.READ_TO_WRITE + Narrow.LATENCY
        n += {"code": SiLU.LATENCY + LMul.LATENCY, "paper": Sigmoid.LATENCY + LMul.LATENCY,
              "state": 0}[self.output]
        return n

    @property
    def LATENCY(self):
        """Cycles from an accepted input to its output when nothing stalls."""
        return self.CHAIN_LATENCY + CreditQueue.LATENCY

    def elaborate(self, platform):
        m = Module()
        jw = max(1, (self.channels - 1).bit_length())
        x = self.i.payload

        # the output queue: an element enters only with a place reserved at the end of the chain
        m.submodules.queue = queue = CreditQueue(16, self.CHAIN_LATENCY + self.QUEUE_SLACK)
        accept = Signal()
        m.d.comb += [self.i.ready.eq(queue.room), accept.eq(self.i.valid & queue.room),
                     queue.admit.eq(accept)]
        wiring.connect(m, queue.o, wiring.flipped(self.o))

        # channel counter: the element entering the engine is channel j
        j = Signal(jw)
        with m.If(accept):
            m.d.sync += j.eq(Mux(j == self.channels - 1, 0, j + 1))

        # 1. z0 = sigmoid(+-f), carrying everything else
        t1 = data.StructLayout({"i": 16, "g": 16, "keep": 16, "use_keep": 1, "first": 1, "j": jw})
        m.submodules.gate = gate = Sigmoid(tag_width=t1.size)
        tag1 = data.View(t1, gate.i.payload.tag)
        f = x.f if self.decay_gate == "pos" else x.f ^ 0x8000  # -f: flip the sign bit
        m.d.comb += [gate.i.valid.eq(accept), gate.i.payload.x.eq(f)]
        m.d.comb += [tag1.i.eq(x.i), tag1.g.eq(x.g), tag1.first.eq(x.first), tag1.j.eq(j)]
        if self.lower_bound:
            m.d.comb += [tag1.keep.eq(x.keep), tag1.use_keep.eq(x.use_keep)]
        z_stream, z_value = gate.o, gate.o.payload.y
        rest1 = data.View(t1, gate.o.payload.tag)

        # 2. z = z0 * keep
        t2 = data.StructLayout({"i": 16, "g": 16, "first": 1, "j": jw})
        if self.lower_bound:
            t2k = data.StructLayout({"rest": t2, "z0": 16, "use_keep": 1})
            m.submodules.keep = keep = LMul("bf16", tag_width=t2k.size)
            tag2 = data.View(t2k, keep.i.payload.tag)
            flow(m, z_stream, keep.i, a=z_value, b=rest1.keep)
            m.d.comb += [tag2.rest.i.eq(rest1.i), tag2.rest.g.eq(rest1.g), tag2.rest.first.eq(rest1.first),
                         tag2.rest.j.eq(rest1.j), tag2.z0.eq(z_value), tag2.use_keep.eq(rest1.use_keep)]
            kept = data.View(t2k, keep.o.payload.tag)
            z_stream, z_value, rest2 = keep.o, Mux(kept.use_keep, keep.o.payload.product, kept.z0), kept.rest
        else:
            rest2 = rest1

        # 3. candidate = silu(i)
        t3 = data.StructLayout({"z": 16, "g": 16, "first": 1, "j": jw})
        if self.candidate == "silu":
            m.submodules.cand = cand = SiLU(tag_width=t3.size)
            tag3 = data.View(t3, cand.i.payload.tag)
            flow(m, z_stream, cand.i, x=rest2.i)
            m.d.comb += [tag3.z.eq(z_value), tag3.g.eq(rest2.g), tag3.first.eq(rest2.first), tag3.j.eq(rest2.j)]
            c_stream, c_value, rest3 = cand.o, cand.o.payload.y, data.View(t3, cand.o.payload.tag)
        else:
            c_stream, c_value = z_stream, rest2.i
            rest3 = data.View(t3, Signal(t3.size))
            m.d.comb += [rest3.z.eq(z_value), rest3.g.eq(rest2.g), rest3.first.eq(rest2.first), rest3.j.eq(rest2.j)]

        # 4. inp = candidate * z
        m.submodules.inp = inp = LMul("bf16", tag_width=t3.size)
        flow(m, c_stream, inp.i, a=c_value, b=rest3.z, tag=rest3.as_value())
        rest4 = data.View(t3, inp.o.payload.tag)

        # 5. read the state of channel j (a registered stage: the read port's data lines up with it)
        # a channel is read and written back fewer than ``channels`` elements apart: the two ports
        # never meet on one word in one cycle
        m.submodules.state = state = memory.Memory(shape=32, depth=self.channels, init=[], attrs=NO_RW_CHECK)
        read = state.read_port(domain="sync")
        s5 = stream.Signature(data.StructLayout({"z": 16, "inp": 16, "g": 16, "j": jw, "first": 1})).create()
        m.d.comb += [inp.o.ready.eq(1), read.addr.eq(rest4.j)]
        m.d.sync += [s5.valid.eq(inp.o.valid), s5.payload.z.eq(rest4.z), s5.payload.inp.eq(inp.o.payload.product),
                     s5.payload.g.eq(rest4.g), s5.payload.j.eq(rest4.j), s5.payload.first.eq(rest4.first)]

        # 5b. a register on the state memory's output: its slow clock-to-output (about 5.8 ns on
        # ECP5) gets a cycle with no logic after it; ``first`` zeroes the state after this register
        # (reset-less: the build moves it into the block RAM, host.ebr_output_register)
        s5b = stream.Signature(data.StructLayout({"z": 16, "inp": 16, "g": 16, "j": jw, "first": 1})).create()
        h_read = Signal(32, reset_less=True)
        m.d.comb += s5.ready.eq(1)
        m.d.sync += [s5b.valid.eq(s5.valid), s5b.payload.z.eq(s5.payload.z), s5b.payload.inp.eq(s5.payload.inp),
                     s5b.payload.g.eq(s5.payload.g), s5b.payload.j.eq(s5.payload.j),
                     s5b.payload.first.eq(s5.payload.first), h_read.eq(read.data)]
        h_prev = Mux(s5b.payload.first, 0, h_read)

        # 6. zh = z *fp32 h (z widened exactly)
        t6 = data.StructLayout({"h": 32, "inp": 16, "g": 16, "j": jw})
        m.submodules.decay = decay = LMul("fp32", tag_width=t6.size)
        tag6 = data.View(t6, decay.i.payload.tag)
        flow(m, s5b, decay.i, a=s5b.payload.z << 16, b=h_prev)
        m.d.comb += [tag6.h.eq(h_prev), tag6.inp.eq(s5b.payload.inp), tag6.g.eq(s5b.payload.g),
                     tag6.j.eq(s5b.payload.j)]
        rest6 = data.View(t6, decay.o.payload.tag)

        # 7. h1 = h - zh
        t7 = data.StructLayout({"inp": 16, "g": 16, "j": jw})
        m.submodules.sub = sub = FAdd("fp32", tag_width=t7.size)
        tag7 = data.View(t7, sub.i.payload.tag)
        flow(m, decay.o, sub.i, a=rest6.h, b=decay.o.payload.product, sub=1)
        m.d.comb += [tag7.inp.eq(rest6.inp), tag7.g.eq(rest6.g), tag7.j.eq(rest6.j)]
        rest7 = data.View(t7, sub.o.payload.tag)

        # 8. h = h1 + inp; write back
        t8 = data.StructLayout({"g": 16, "j": jw})
        m.submodules.add = add = FAdd("fp32", tag_width=t8.size)
        tag8 = data.View(t8, add.i.payload.tag)
        flow(m, sub.o, add.i, a=sub.o.payload.sum, b=rest7.inp << 16, sub=0)
        m.d.comb += [tag8.g.eq(rest7.g), tag8.j.eq(rest7.j)]
        write = state.write_port()
        m.d.comb += [write.addr.eq(data.View(t8, add.o.payload.tag).j), write.data.eq(add.o.payload.sum),
                     write.en.eq(add.o.valid)]
        rest8 = data.View(t8, add.o.payload.tag)

        # 9. hb = bf16(h)
        m.submodules.narrow = narrow = Narrow(tag_width=16)
        flow(m, add.o, narrow.i, x=add.o.payload.sum, tag=rest8.g)
        hb, g = narrow.o.payload.y, narrow.o.payload.tag

        # 10. the output gate, into the queue
        if self.output == "state":
            flow(m, narrow.o, queue.i)
            m.d.comb += queue.i.payload.eq(hb)
            return m
        m.submodules.out = out = LMul("bf16")
        if self.output == "code":
            m.submodules.act = act = SiLU(tag_width=16)
            flow(m, narrow.o, act.i, x=hb, tag=g)
        else:
            m.submodules.act = act = Sigmoid(tag_width=16)
            flow(m, narrow.o, act.i, x=g, tag=hb)
        flow(m, act.o, out.i, a=act.o.payload.tag, b=act.o.payload.y)
        flow(m, out.o, queue.i)
        m.d.comb += queue.i.payload.eq(out.o.payload)
        return m
