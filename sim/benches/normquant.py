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


def expected_and_inputs(lengths, with_pre, seed, *, per_vector_constants=False):
    """Random vectors (residual-like magnitudes, some zeros), gains near 1; eps and c fixed, or
    with ``per_vector_constants`` random for each vector (then eps and c come back as lists of
    bf16 bits, one per vector)."""
    rng = np.random.default_rng(seed)
    nx = Numerics()
    eps, c = round_to(1e-6 * 192), round_to(0.0123)
    codes, scales, vectors, constants = [], [], [], []
    for n in lengths:
        if per_vector_constants:
            eps, c = round_to(10.0 ** rng.uniform(-7, -3) * n), round_to(rng.uniform(0.001, 0.1))
            constants.append((int(encode(eps, "bf16")), int(encode(c, "bf16"))))
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
    if per_vector_constants:
        return codes, scales, vectors, [e for e, _ in constants], [c for _, c in constants]
    return codes, scales, vectors, int(encode(eps, "bf16")), int(encode(c, "bf16"))


def code_beats(element_codes, width):
    """The beats a quantiser of ``width`` codes per beat must send for per-element expectations
    [(code, last)]: each vector cut into groups of ``width``, its last group padded with zeros
    (the contract of ``hw.normquant.NormQuant.q``); [(tuple of codes, last)]."""
    beats, group = [], []
    for code, last in element_codes:
        group.append(code)
        if last or len(group) == width:
            beats.append((tuple(group + [0] * (width - len(group))), int(last)))
            group = []
    if group:
        raise ValueError("the expected codes do not end with a vector's last element")
    return beats


def simulate_quantiser(dut, inputs, element_codes, n_scales, eps, c, busy, seed=1):
    """Run a quantiser-like component (``i`` in; ``q`` and ``scale`` out; ``eps``/``c``) in the
    Amaranth simulator with random stalls, until it has sent the beats of ``element_codes``
    (expected [(code, last)] per element, see ``code_beats``); returns ([(tuple of codes, last)]
    per beat, [scale bits])."""
    from amaranth.sim import Simulator

    from sim.streams import collect, feed

    codes, scales = [], []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def constants(ctx):
        ctx.set(dut.eps, eps)
        ctx.set(dut.c, c)

    sim.add_testbench(constants)
    sim.add_testbench(feed(dut.i, inputs, busy=busy, seed=seed))
    n_beats = len(code_beats(element_codes, len(dut.q.payload.codes)))
    sim.add_testbench(collect(dut.q, n_beats, codes, busy=busy, seed=seed + 1))
    sim.add_testbench(collect(dut.scale, n_scales, scales, busy=busy, seed=seed + 2))
    sim.run()
    return [(tuple(int(v) for v in q.codes), int(q.last)) for q in codes], [int(s) for s in scales]


async def check_quantiser(dut, inputs, exp_codes, exp_scales, eps, c, seed):
    """Drive packed ``inputs`` into ``i`` and compare the ``q`` codes and ``scale`` outputs with
    the expected ones (shared by the norm/quantiser and GLU benches)."""
    import random

    from cocotb import start_soon

    from sim.benches.streams import receive, send

    width = (len(dut.q__payload) - 1) // 8  # the beat: width int8 codes and ``last``
    layout = normquant_code(width)
    exp_beats = code_beats(exp_codes, width)
    dut.eps.value, dut.c.value = eps, c
    await start_clock(dut)
    codes, scales = [], []
    start_soon(send(dut, "i", inputs, 0.2, random.Random(seed)))
    scale_task = start_soon(receive(dut, "scale", len(exp_scales), 0.3, random.Random(seed + 1), scales))
    await receive(dut, "q", len(exp_beats), 0.3, random.Random(seed + 2), codes)
    await scale_task
    got = [layout.from_bits(v) for v in codes]
    got_beats = [(tuple(int(q) for q in b.codes), int(b.last)) for b in got]
    bad = [f"beat {k}: expected {e}, got {g}" for k, (e, g) in enumerate(zip(exp_beats, got_beats)) if e != g]
    bad += [f"vector {k} scale: expected 0x{e:04x}, got 0x{g:04x}" for k, (e, g) in enumerate(zip(exp_scales, scales))
            if e != g]
    dut._log.info(f"{len(exp_scales)} vectors, {len(exp_codes)} codes in {len(exp_beats)} beats of {width}")
    assert not bad, "quantiser mismatches (first 10):\n" + "\n".join(bad[:10])


@cocotb.test()
async def normquant_matches_golden(dut):
    lengths = [int(n) for n in os.environ.get("NQ_LENGTHS", "192,1,64,191,192").split(",")]
    seed = int(os.environ.get("NQ_SEED", "1"))
    exp_codes, exp_scales, vectors, eps, c = expected_and_inputs(lengths, True, seed)
    layout_in = normquant_input(True)
    inputs = [layout_in.const(p).as_value().value for vec in vectors for p in vec]
    await check_quantiser(dut, inputs, exp_codes, exp_scales, eps, c, seed)
