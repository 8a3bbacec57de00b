"""GLU element-wise stage: ``silu(gate) * y``, then requantisation for the down projection.

Golden model: ``golden.bitexact.glu`` followed by ``golden.bitexact.norm_quant`` without a pre
norm (the down projection's BitLinear composite, docs/numerics.md section 7).
"""

from amaranth.hdl import Module
from amaranth.lib import data, wiring

from .lmul import LMul
from .nonlinear import SiLU
from .normquant import NormQuant, quantiser_signature
from .skid import registered

__all__ = ["GLUStage", "glu_input"]

glu_input = data.StructLayout({"gate": 16, "y": 16, "gain": 16, "last": 1})


class GLUStage(wiring.Component):
    """``p = silu(gate) * y`` per element, quantised to int8 codes with one output scale.

    Parameters
    ----------
    max_len : int
        The intermediate size I: the longest vector (see ``NormQuant``).

    Attributes
    ----------
    i : In(stream.Signature(glu_input))
        Per element j < I: the gate half ``u[j]`` and value half ``u[I + j]`` of the gate
        projection, the down projection's folded norm ``gain[j]``, and ``last``.
    eps, c : In(16)
        ``I * eps`` and the down projection's output constant (see ``NormQuant``).
    q : Out(stream.Signature(normquant_code))
    scale : Out(stream.Signature(16))

    The element-wise pipeline (SiLU, L-Mul, a skid buffer after each: ``SiLU.LATENCY +
    LMul.LATENCY + 2`` cycles) streams
    into the quantiser's load phase at one element per cycle; everything after is the quantiser's
    schedule (about ``2I + 50`` cycles per vector). Back-pressure as in ``NormQuant``: its input
    stalls the element-wise pipeline.
    """

    def __init__(self, max_len: int):
        self.quantiser = NormQuant(max_len, with_pre=False)
        super().__init__(quantiser_signature(glu_input))

    def elaborate(self, platform):
        m = Module()
        side = data.StructLayout({"y": 16, "gain": 16, "last": 1})
        m.submodules.silu = silu = SiLU(tag_width=side.size)
        m.submodules.mul = mul = LMul("bf16", tag_width=17)
        m.submodules.quantiser = quant = self.quantiser
        x = self.i.payload
        silu_tag = data.View(side, silu.i.payload.tag)
        m.d.comb += [
            silu.i.valid.eq(self.i.valid), self.i.ready.eq(silu.i.ready), silu.i.payload.x.eq(x.gate),
            silu_tag.y.eq(x.y), silu_tag.gain.eq(x.gain), silu_tag.last.eq(x.last),
        ]
        silu_o = registered(m, "silu_skid", silu.o)
        rest = data.View(side, silu_o.payload.tag)
        m.d.comb += [
            mul.i.valid.eq(silu_o.valid), silu_o.ready.eq(mul.i.ready),
            mul.i.payload.a.eq(silu_o.payload.y), mul.i.payload.b.eq(rest.y),
            mul.i.payload.tag.eq(rest.as_value()[16:]),  # gain, last
        ]
        mul_o = registered(m, "mul_skid", mul.o)
        m.d.comb += [
            quant.i.valid.eq(mul_o.valid), mul_o.ready.eq(quant.i.ready),
            quant.i.payload.x.eq(mul_o.payload.product),
            quant.i.payload.gain.eq(mul_o.payload.tag[:16]), quant.i.payload.last.eq(mul_o.payload.tag[16]),
            quant.eps.eq(self.eps), quant.c.eq(self.c),
        ]
        wiring.connect(m, quant.q, wiring.flipped(self.q))
        wiring.connect(m, quant.scale, wiring.flipped(self.scale))
        return m
