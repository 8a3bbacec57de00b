"""GLU element-wise stage: ``silu(gate) * y``, then requantisation for the down projection.

Golden model: ``golden.bitexact.glu`` followed by ``golden.bitexact.norm_quant`` without a pre
norm (the down projection's BitLinear composite, docs/numerics.md section 7).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring

from .lmul import LMul
from .nonlinear import SiLU
from .normquant import NormQuant, normquant_input, quantiser_signature
from .pipeline import CreditQueue, flow

__all__ = ["GLUStage", "glu_input"]

glu_input = data.StructLayout({"gate": 16, "y": 16, "gain": 16, "last": 1})


class GLUStage(wiring.Component):
    """``p = silu(gate) * y`` per element, quantised to int8 codes with one output scale.

    Parameters
    ----------
    max_len : int
        The intermediate size I: the longest vector (see ``NormQuant``).
    codes_per_beat : int
        Codes per output beat (see ``NormQuant``).

    Attributes
    ----------
    i : In(stream.Signature(glu_input))
        Per element j < I: the gate half ``u[j]`` and value half ``u[I + j]`` of the gate
        projection, the down projection's folded norm ``gain[j]``, and ``last``.
    eps, c : In(16)
        ``I * eps`` and the down projection's output constant: held from a vector's first element
        on ``i`` until its last (the quantiser samples them when that first element reaches it).
    q : Out(stream.Signature(normquant_code(codes_per_beat)))
    scale : Out(stream.Signature(16))

    The element-wise pipeline (SiLU, then L-Mul: ``CHAIN_LATENCY`` cycles) never stalls: an
    element is accepted only while the queue behind it (``hw.pipeline.CreditQueue``, ``QUEUE_DEPTH``
    places, ``CreditQueue.LATENCY`` cycles) has a place reserved for it, so ``i.ready`` is a
    register. The queue feeds the quantiser's load phase at one element per cycle; everything after
    is the quantiser's schedule (about ``I + I / codes_per_beat + 40`` cycles per vector). While the quantiser is not
    loading, the queue fills and then ``i.ready`` falls.
    """

    CHAIN_LATENCY = SiLU.LATENCY + LMul.LATENCY
    QUEUE_DEPTH = CreditQueue.depth_for(CHAIN_LATENCY)

    def __init__(self, max_len: int, codes_per_beat: int = 1):
        self.quantiser = NormQuant(max_len, with_pre=False, codes_per_beat=codes_per_beat)
        super().__init__(quantiser_signature(glu_input, codes_per_beat))

    def elaborate(self, platform):
        m = Module()
        side = data.StructLayout({"y": 16, "gain": 16, "last": 1})
        m.submodules.silu = silu = SiLU(tag_width=side.size)
        m.submodules.mul = mul = LMul("bf16", tag_width=17)
        m.submodules.queue = queue = CreditQueue(normquant_input(False), self.QUEUE_DEPTH)
        m.submodules.quantiser = quant = self.quantiser
        x = self.i.payload
        accept = Signal()
        silu_tag = data.View(side, silu.i.payload.tag)
        m.d.comb += [
            self.i.ready.eq(queue.room), accept.eq(self.i.valid & queue.room), queue.admit.eq(accept),
            silu.i.valid.eq(accept), silu.i.payload.x.eq(x.gate),
            silu_tag.y.eq(x.y), silu_tag.gain.eq(x.gain), silu_tag.last.eq(x.last),
        ]
        rest = data.View(side, silu.o.payload.tag)
        flow(m, silu.o, mul.i, a=silu.o.payload.y, b=rest.y, tag=rest.as_value()[16:])  # tag: gain, last
        flow(m, mul.o, queue.i, x=mul.o.payload.product, gain=mul.o.payload.tag[:16],
             last=mul.o.payload.tag[16])
        wiring.connect(m, queue.o, quant.i)
        m.d.comb += [quant.eps.eq(self.eps), quant.c.eq(self.c)]
        wiring.connect(m, quant.q, wiring.flipped(self.q))
        wiring.connect(m, quant.scale, wiring.flipped(self.scale))
        return m
