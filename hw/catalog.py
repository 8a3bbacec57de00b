"""The gateware blocks measured and checked one by one (benchmarks.synth, tests/test_no_multipliers).

``BLOCKS`` maps a block name to a zero-argument factory returning a fresh Amaranth component.
Add a block here once and it is synthesised by ``python -m benchmarks.synth`` and checked for
multipliers by the test suite. The units are measured on both parts, in the configurations of
the shipped ECP5 model (the accumulator of the widest contract row, 21 bits, for the converter).
The composites are measured on the part whose engine they size (``PARTS_OF``): the ECP5 model's
(d = 192, I = 512, 15 codes per beat for its 195 lanes) and the UP5K model's (d = 128, I = 256,
5 codes per beat for its 20 lanes); an ECP5-sized quantiser alone is larger than the UP5K. The
compact engine's arithmetic pipeline (docs/compact_engine.md) and its adder with four stages wired
through (``hw.pipeline.Stages``) are measured on the UP5K.
"""

from hw.compact.arith import FADD_WIRED, Arithmetic
from hw.convert import FloatToInt8, IntToFloat
from hw.fadd import FAdd
from hw.glu import GLUStage
from hw.lmul import LMul
from hw.mlgru import MLGRUEngine
from hw.narrow import Narrow
from hw.nonlinear import Sigmoid, SiLU
from hw.normquant import NormQuant
from hw.tables import Reciprocal, ReciprocalSqrt
from hw.ternary_matvec import TernaryMatVec, TritDecoder

__all__ = ["BLOCKS", "PARTS_OF", "parts_of"]

BLOCKS = {
    "lmul_bf16": lambda: LMul("bf16"),
    "lmul_fp32": lambda: LMul("fp32"),
    "lmul_e4m3": lambda: LMul("e4m3"),
    "fadd_bf16": lambda: FAdd("bf16"),
    "fadd_fp32": lambda: FAdd("fp32"),
    "sigmoid_bf16": lambda: Sigmoid(),
    "silu_bf16": lambda: SiLU(),
    "int21_to_bf16": lambda: IntToFloat(21, "bf16"),
    "bf16_to_int8": lambda: FloatToInt8(),
    "recip_bf16": lambda: Reciprocal(),
    "rsqrt_bf16": lambda: ReciprocalSqrt(),
    "narrow_fp32_bf16": lambda: Narrow(),
    "trit_decoder": lambda: TritDecoder(lanes=1),
    "ternary_matvec_p32": lambda: TernaryMatVec(lanes=32, max_rows=1024, max_cols=512),
    "normquant_k512": lambda: NormQuant(512, with_pre=True, codes_per_beat=15),
    "mlgru_d192": lambda: MLGRUEngine(192, output="code", lower_bound=True),
    "glu_i512": lambda: GLUStage(512, codes_per_beat=15),
    "normquant_k256": lambda: NormQuant(256, with_pre=True, codes_per_beat=5),
    "mlgru_d128": lambda: MLGRUEngine(128, output="code", lower_bound=True),
    "glu_i256": lambda: GLUStage(256, codes_per_beat=5),
    "compact_arith": lambda: Arithmetic(),
    "fadd_fp32_compact": lambda: FAdd("fp32", wired=FADD_WIRED),
}

ALL_PARTS = ("up5k", "ecp5")
#: the parts a block is measured on, where not all of them
PARTS_OF = {
    **dict.fromkeys(("normquant_k512", "mlgru_d192", "glu_i512"), ("ecp5",)),
    **dict.fromkeys(("normquant_k256", "mlgru_d128", "glu_i256", "compact_arith", "fadd_fp32_compact"),
                    ("up5k",)),
}


def parts_of(name: str) -> tuple:
    """The parts block ``name`` is measured on."""
    if name not in BLOCKS:
        raise ValueError(f"unknown block {name!r}; available: {', '.join(BLOCKS)}")
    return PARTS_OF.get(name, ALL_PARTS)
