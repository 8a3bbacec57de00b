"""cocotb bench and shared stimulus: the GLU stage against golden glu + norm_quant.

Environment: GLU_LENGTHS (comma-separated vector lengths), GLU_SEED.
"""

import os

import cocotb
import numpy as np

from golden.bitexact import glu, norm_quant
from golden.formats import encode
from golden.numerics import Numerics, round_to
from hw.glu import glu_input
from sim.benches.normquant import check_quantiser


def expected_and_inputs(lengths, seed):
    rng = np.random.default_rng(seed)
    nx = Numerics()
    eps, c = round_to(1e-6 * 512), round_to(0.0087)
    codes, scales, inputs = [], [], []
    for n in lengths:
        gate = round_to(rng.standard_normal(n) * 3)
        y = round_to(rng.standard_normal(n) * rng.choice([0.05, 1.0, 20.0]))
        gain = round_to(1 + 0.2 * rng.standard_normal(n))
        q, scale = norm_quant(nx, glu(nx, gate, y), None, gain, eps, c)
        codes += [(int(v), int(k == n - 1)) for k, v in enumerate(q)]
        scales.append(int(encode(scale, "bf16")[0]))
        bits = [encode(a, "bf16") for a in (gate, y, gain)]
        inputs += [{"gate": int(bits[0][k]), "y": int(bits[1][k]), "gain": int(bits[2][k]), "last": int(k == n - 1)}
                   for k in range(n)]
    return codes, scales, inputs, int(encode(eps, "bf16")), int(encode(c, "bf16"))


@cocotb.test()
async def glu_matches_golden(dut):
    lengths = [int(n) for n in os.environ.get("GLU_LENGTHS", "512,3,256").split(",")]
    seed = int(os.environ.get("GLU_SEED", "1"))
    exp_codes, exp_scales, inputs, eps, c = expected_and_inputs(lengths, seed)
    packed = [glu_input.const(p).as_value().value for p in inputs]
    await check_quantiser(dut, packed, exp_codes, exp_scales, eps, c, seed)
