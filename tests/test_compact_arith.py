"""The compact engine's arithmetic pipeline (hw.compact.arith) against the instruction set's
meaning (hw.compact.isa.evaluate, on golden.numerics): every function on random operands, zeros
and subnormals included, one element per cycle, each result exactly its path's latency after its
operands."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.formats import decode, encode
from hw.compact.arith import Arithmetic, Function
from hw.compact.isa import evaluate


def _patterns(rng, count, width):
    """Random finite patterns of a format: all signs and exponents, a few zero exponent fields."""
    x = rng.integers(0, 1 << width, count)
    man = 7 if width == 16 else 23
    exp = (x >> man) & 0xFF
    x = np.where(exp == 0xFF, x & ~(1 << (man + 7)), x)  # Inf/NaN -> a large finite value
    zero = rng.random(count) < 0.03
    return np.where(zero, x & ((1 << (width - 1)) | ((1 << man) - 1)), x)


def _near(rng, x, width, spread):
    """Patterns whose exponents lie within ``spread`` of ``x``'s: where additions round."""
    man = 7 if width == 16 else 23
    y = _patterns(rng, len(x), width)
    exp = np.clip(((x >> man) & 0xFF) + rng.integers(-spread, spread + 1, len(x)), 1, 254)
    return (y & ~(0xFF << man)) | (exp << man)


def run(fn, a, b, one_at_a_time=False):
    """Drive (a, b) one per cycle with fn held (or each when the previous result is out);
    returns (results, each latency less the unit's declared latency for fn: all 0 when every
    result comes exactly when declared)."""
    dut = Arithmetic()
    spacing = dut.latency[fn] if one_at_a_time else 1
    got, issued, seen = [], [], []

    async def bench(ctx):
        ctx.set(dut.fn, fn)
        cycle = 0
        pending = list(zip(a.tolist(), b.tolist()))
        while len(got) < len(a):
            if pending and cycle % spacing == 0:
                x, y = pending.pop(0)
                ctx.set(dut.i_valid, 1)
                ctx.set(dut.i, {"a": x, "b": y, "x": x >> 16})
                issued.append(cycle)
            else:
                ctx.set(dut.i_valid, 0)
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.o_valid):
                got.append(ctx.get(dut.o))
                seen.append(cycle)
            assert cycle < len(a) * spacing + 64, "results stopped coming"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got, np.int64), np.array(seen) - np.array(issued) - dut.latency[fn]


BF16_IN = {"mul", "add", "sigmoid", "sigmoid_neg", "quant", "rsqrt", "recip"}
BF16_OUT = {"add", "round16", "sigmoid", "sigmoid_neg", "rsqrt", "recip"}


FLOAT_FUNCTIONS = [f for f in Function if f not in (Function.INT_MUL, Function.INT_POW2)]


@pytest.mark.parametrize("fn", FLOAT_FUNCTIONS)
def test_function_against_the_instruction_set(fn):
    name = fn.name.lower()
    rng = np.random.default_rng(list(Function).index(fn))
    n = 600
    width = 16 if name in BF16_IN else 32
    a = _patterns(rng, n, width)
    b = _near(rng, a, width, 12) if name in ("add", "add32", "sub32") else _patterns(rng, n, width)
    if name in ("rsqrt", "recip"):
        a = a & ((1 << 15) - 1)  # the model takes them of positive values only
    if name == "quant":  # the codes' operands: values by 127 / max|value|, mostly in range
        b = encode(127.0 / np.abs(decode(_patterns(rng, n, 16), "bf16")).clip(2.0 ** -20, 2.0 ** 20), "bf16")
    shift = 16 if width == 16 else 0
    a_bits, b_bits = a << shift, b << shift
    got, lateness = run(fn, a_bits, b_bits)
    assert np.all(lateness == 0), f"off by {sorted(set(lateness))} cycles"

    fmt = "bf16" if width == 16 else "fp32"
    want = evaluate(name, decode(a, fmt), decode(b, fmt))
    if name == "quant":
        got = np.where(got >= 128, got - 256, got)
        np.testing.assert_array_equal(got, want)
    elif name in BF16_OUT:
        assert np.all(got & 0xFFFF == 0)
        np.testing.assert_array_equal(got >> 16, encode(want, "bf16"))
    elif name == "mul":  # bf16 operands: the upper half is the bf16 L-Mul
        np.testing.assert_array_equal(got >> 16, encode(want, "bf16"))
    elif name == "copy":
        np.testing.assert_array_equal(got, a_bits)
    else:  # add32, sub32, zero
        np.testing.assert_array_equal(got, encode(want, "fp32"))


def test_fp32_products_of_the_state():
    """``mul`` of an fp32 state value by a bf16 gate: the fp32 L-Mul, all 32 bits."""
    rng = np.random.default_rng(99)
    h = _patterns(rng, 400, 32)
    z = _patterns(rng, 400, 16) << 16
    got, lateness = run(Function.MUL, h, z)
    assert np.all(lateness == 0)
    want = evaluate("mul", decode(h, "fp32"), decode(z, "fp32"))
    np.testing.assert_array_equal(got, encode(want, "fp32"))


@pytest.mark.parametrize("scale", [0x3C23, 0xBF80, 0x0080, 0x7F00])
def test_int_mul_converts_accumulators_and_scales_them(scale):
    """A MatVec's rows: accumulators of every width up to the widest row's, times a held scale."""
    rng = np.random.default_rng(scale)
    # to both ends of the conversion's exact range, [-2**22, 2**22) (the engine's rows stay within
    # 127 x 1,023), with values that round on the way to bf16 and ties (257: halfway between 256
    # and 258)
    big = (1 << 22) - 1
    acc = np.concatenate([[0, 1, -1, 127 * 256, -127 * 256, 255, 257, -32767, big, -big, -big - 1,
                           (1 << 21) + 1, -((1 << 21) + (1 << 13)), 127 * 1023, -127 * 1023],
                          rng.integers(-127 * 256, 127 * 256 + 1, 400), rng.integers(-big - 1, big + 1, 100)])
    got, lateness = run(Function.INT_MUL, acc & 0xFFFFFFFF, np.full(len(acc), scale << 16))
    assert np.all(lateness == 0)
    want = evaluate("int_mul", acc.astype(np.float64), decode(np.array([scale]), "bf16"))
    np.testing.assert_array_equal(got >> 16, encode(want, "bf16"))


def test_latencies_are_the_documented_ones():
    """Arithmetic's docstring and docs/compact_engine.md's pass costs rest on these figures."""
    assert {f.name.lower(): n for f, n in Arithmetic().latency.items()} == {
        "zero": 1, "copy": 1, "mul": 4, "quant": 7, "add": 10, "sigmoid": 10, "sigmoid_neg": 10,
        "add32": 8, "sub32": 8, "round16": 3, "rsqrt": 3, "recip": 3, "int_mul": 13, "int_pow2": 34}


@pytest.mark.parametrize("top", [1, 20, 127, 140, 200, 254])
def test_int_pow2_rounds_aligned_sums(top):
    """The sum of squares from its aligned total and top exponent field: totals of every size,
    ties and the flush and saturation edges."""
    rng = np.random.default_rng(top)
    bits = rng.integers(0, 33, 600)
    total = rng.integers(0, 1 << 32, 600, dtype=np.int64) >> (32 - bits)
    ties = (rng.integers(1 << 8, 1 << 9, 40) * 2 + 1) << rng.integers(0, 20, 40)  # odd at bit 9
    total = np.concatenate([[0, 1, (1 << 32) - 1, 1 << 23, (1 << 24) - 1], total, ties])
    # one at a time: the program runs int_pow2 on passes of one element (hw.compact.arith)
    got, lateness = run(Function.INT_POW2, total, np.full(len(total), top), one_at_a_time=True)
    assert np.all(lateness == 0)
    want = evaluate("int_pow2", total, np.array([top]))
    np.testing.assert_array_equal(got >> 16, encode(want, "bf16"))
