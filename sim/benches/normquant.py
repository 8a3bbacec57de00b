"""cocotb bench and shared stimulus: the RMSNorm + int8 quantiser against golden norm_quant.

Environment: NQ_LENGTHS (comma-separated vector lengths), NQ_SEED.
"""

import os

import cocotb
import numpy as np

from golden.bitexact import norm_quant
from golden.formats import encode
from golden.numerics import Numerics, round_to
from hw.normquant import normquant_code, normquant_input
from sim.benches.streams import start_clock


def expected_and_inputs(lengths, with_pre, seed):
    """Random vectors (residual-like magnitudes, some zeros), gains near 1; eps and c fixed."""
    rng = np.random.default_rng(seed)
    nx = Numerics()
    eps, c = round_to(1e-6 * 192), round_to(0.0123)
    codes, scales, vectors = [], [], []
    for n in lengths:
        x = round_to(rng.standard_normal(n) * rng.choice([0.01, 1.0, 30.0]))
        x[rng.random(n) < 0.05] = 0
        gain = round_to(1 + 0.2 * rng.standard_normal(n))
        pre = round_to(1 + 0.2 * rng.standard_normal(n)) if with_pre else None
        q, scale = norm_quant(nx, x, pre, gain, eps, c)
        codes += [(int(v), int(k == n - 1)) for k, v in enumerate(q)]
        scales.append(int(encode(scale, "bf16")[0]))
        xb, gb = encode(x, "bf16"), encode(gain, "bf16")
        pb = encode(pre, "bf16") if with_pre else None
        vec = []
        for k in range(n):
            p = {"x": int(xb[k]), "gain": int(gb[k]), "last": int(k == n - 1)}
            if with_pre:
                p["pre"] = int(pb[k])
            vec.append(p)
        vectors.append(vec)
    return codes, scales, vectors, int(encode(eps, "bf16")), int(encode(c, "bf16"))


@cocotb.test()
async def normquant_matches_golden(dut):
    import random

    from cocotb import start_soon

    from sim.benches.streams import receive, send

    lengths = [int(n) for n in os.environ.get("NQ_LENGTHS", "192,1,64,191,192").split(",")]
    seed = int(os.environ.get("NQ_SEED", "1"))
    exp_codes, exp_scales, vectors, eps, c = expected_and_inputs(lengths, True, seed)
    layout_in = normquant_input(True)
    inputs = [layout_in.const(p).as_value().value for vec in vectors for p in vec]
    dut.eps.value, dut.c.value = eps, c
    await start_clock(dut)
    rng = random.Random(seed)
    codes, scales = [], []
    start_soon(send(dut, "i", inputs, 0.2, rng))
    scale_task = start_soon(receive(dut, "scale", len(vectors), 0.3, random.Random(seed + 1), scales))
    await receive(dut, "q", len(inputs), 0.3, random.Random(seed + 2), codes)
    await scale_task
    got_codes = [(normquant_code.from_bits(v).code, normquant_code.from_bits(v).last) for v in codes]
    got_codes = [(int(a), int(b)) for a, b in got_codes]
    bad = [f"element {k}: expected {e}, got {g}" for k, (e, g) in enumerate(zip(exp_codes, got_codes)) if e != g]
    bad += [f"vector {k} scale: expected 0x{e:04x}, got 0x{g:04x}" for k, (e, g) in enumerate(zip(exp_scales, scales))
            if e != g]
    dut._log.info(f"{len(vectors)} vectors, {len(inputs)} codes")
    assert not bad, "norm/quantiser mismatches (first 10):\n" + "\n".join(bad[:10])
