"""The gateware blocks measured and checked one by one (benchmarks.synth, tests/test_no_multipliers).

``BLOCKS`` maps a block name to a zero-argument factory returning a fresh Amaranth component.
Add a block here once and it is synthesised by ``python -m benchmarks.synth`` and checked for
multipliers by the test suite. The configurations are those of the shipped ECP5 model (d = 192,
I = 512; the accumulator of the widest contract row, 21 bits, for the converter; the quantisers
send 15 codes per beat, as in the ECP5 engine).
"""

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

__all__ = ["BLOCKS"]

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
}
