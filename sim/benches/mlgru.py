"""cocotb bench and shared stimulus: the MLGRU engine against golden.bitexact.recurrence.

Environment: MLGRU_VARIANT (a key of VARIANTS), MLGRU_CHANNELS, MLGRU_TOKENS, MLGRU_SEED.
"""

import os

import cocotb
import numpy as np

from golden.bitexact import recurrence
from golden.formats import encode
from golden.numerics import Numerics, round_to
from hw.mlgru import mlgru_input
from sim.benches.streams import check_stream

VARIANTS = {
    "mlgru-code": dict(output="code", lower_bound=True),
    "mlgru-paper": dict(output="paper", lower_bound=True),
    "layer0-code": dict(output="code", lower_bound=False),
    # a lower-bound engine serving a layer without one on alternate tokens (use_keep = 0)
    "mixed-keep": dict(output="code", lower_bound=True),
    "mingru": dict(output="state", lower_bound=False, decay_gate="pos", candidate="identity"),
}


def stimulus(channels, tokens, seed):
    """Random projections (with a few exact zeros and large values), keep in (0, 1]."""
    rng = np.random.default_rng(seed)
    i, f, g = (round_to(rng.standard_normal((tokens, channels)) * rng.choice([0.1, 1, 4], (tokens, channels)))
               for _ in range(3))
    i[0, :3] = 0
    f[1, :2] = 9.0  # saturated gates
    keep = round_to(rng.uniform(0.2, 1.0, channels))
    return i, f, g, keep


def expected_and_inputs(variant, channels, tokens, seed, reset_at=()):
    params = VARIANTS[variant]
    i, f, g, keep = stimulus(channels, tokens, seed)
    nx, h = Numerics(), np.zeros(channels)
    outs = []
    use_keep = [params["lower_bound"] and not (variant == "mixed-keep" and t % 2) for t in range(tokens)]
    for t in range(tokens):
        if t in reset_at or t == 0:
            h = np.zeros(channels)
        p, h = recurrence(nx, i[t:t + 1], f[t:t + 1], g[t:t + 1], keep if use_keep[t] else None, h,
                          output=params["output"], decay_gate=params.get("decay_gate", "neg"),
                          candidate=params.get("candidate", "silu"))
        outs.append(p[0])
    expected = encode(np.stack(outs), "bf16").ravel()
    bits = [encode(a, "bf16") for a in (i, f, g)]
    kb = encode(keep, "bf16")
    inputs = []
    for t in range(tokens):
        for c in range(channels):
            payload = {"i": int(bits[0][t, c]), "f": int(bits[1][t, c]), "g": int(bits[2][t, c]),
                       "first": int(t == 0 or t in reset_at)}
            if params["lower_bound"]:
                payload.update(keep=int(kb[c]), use_keep=int(use_keep[t]))
            inputs.append(payload)
    return expected, inputs



@cocotb.test()
async def mlgru_matches_golden(dut):
    variant = os.environ.get("MLGRU_VARIANT", "mlgru-code")
    channels, tokens = int(os.environ.get("MLGRU_CHANNELS", "64")), int(os.environ.get("MLGRU_TOKENS", "8"))
    seed = int(os.environ.get("MLGRU_SEED", "1"))
    expected, inputs = expected_and_inputs(variant, channels, tokens, seed, reset_at=(tokens - 2,))
    layout = mlgru_input(VARIANTS[variant]["lower_bound"])
    packed = [layout.const(p).as_value().value for p in inputs]
    def show(index, value):
        return (f"token {index // channels} channel {index % channels} inputs {inputs[index]}: "
                f"expected 0x{int(expected[index]):04x}, got 0x{value:04x}")

    await check_stream(dut, packed, expected, show, f"{variant} channel updates", seed, busy_in=0.2, busy_out=0.2)
