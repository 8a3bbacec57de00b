"""benchmarks/lmul_error.py against an independently published figure.

The L-Mul reference notes quote, for the integer form over all mantissa pairs (uniform), a mean
relative error of 5.2% at m = 3 (worst 12.5%) and about 2.65% for m >= 5 (worst 7.3%).
"""

import pytest

from benchmarks.lmul_error import format_error, uniform_mantissa_error


def test_uniform_mantissa_m3_matches_published():
    r = uniform_mantissa_error("e4m3")
    assert r["m"] == 3 and r["exhaustive"] and r["pairs"] == 64
    assert abs(100 * r["mean"] - 5.2) <= 0.2
    assert abs(100 * r["worst"] - 12.5) <= 0.2


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_uniform_mantissa_wide_matches_published(fmt):
    r = uniform_mantissa_error(fmt)
    assert abs(100 * r["mean"] - 2.65) <= 0.2
    assert abs(100 * r["worst"] - 7.3) <= 0.2


def test_e4m3_exhaustive_counts_and_rounding_reference():
    r = format_error("e4m3")
    assert r["pairs"] == 65536
    assert 0 < r["counted"] < r["pairs"]
    # correctly rounded e4m3 is never off by more than half an ulp: 2^-4 relative
    assert r["rn_worst"] <= 2.0**-4
    assert r["flushed"] == 0
