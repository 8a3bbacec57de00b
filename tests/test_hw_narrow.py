"""fp32 -> bf16 narrowing against golden round_to: random patterns, every rounding boundary class,
zeros, subnormals, the saturation edge, Inf and NaN, with back-pressure."""

import numpy as np

from golden.formats import decode, encode
from golden.numerics import daz, round_to
from hw.narrow import Narrow
from sim.streams import simulate_stream


def test_matches_golden():
    rng = np.random.default_rng(0)
    random = rng.integers(0, 1 << 32, 6000)
    # low halves that sit exactly on, just below and just above the rounding tie, odd and even lsb
    highs = rng.integers(0, 1 << 16, 400)
    lows = np.array([0x0000, 0x7FFF, 0x8000, 0x8001, 0xFFFF])
    ties = (highs[:, None] << 16 | lows[None, :]).ravel()
    corners = np.array([0, 0x80000000, 0x00000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0x7F7F8000,
                        0x7F7F7FFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0x3F808000,
                        0x3F818000])
    x = np.concatenate([corners, ties, random])
    # an fp32 input with exponent field 0 is zero (the contract's rule for every input)
    expected = encode(round_to(daz(decode(x, "fp32"), "fp32"), "bf16"), "bf16")
    dut = Narrow()
    got = simulate_stream(dut, x.tolist(), busy_in=0.2, busy_out=0.2, seed=1)
    bad = [(hex(a), hex(e), hex(g)) for a, e, g in zip(x, expected, got) if e != g]
    assert not bad, f"(input, expected, got): {bad[:8]}"
