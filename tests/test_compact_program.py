"""The compact engine's program (hw.compact) against the bit-exact model.

The reference machine runs ``step_program(layout)`` on the device image's bytes; the logits and
the argmax of every step must equal ``golden.bitexact.BitExactModel.step`` exactly, across steps
(the recurrent state) and across a reset.
"""

import numpy as np
import pytest

from golden.bitexact import BitExactModel, DeviceModel
from golden.checkpoint import load_checkpoint
from golden.image import DeviceLayout
from hw.compact.isa import Imm, Machine, MatVec, Mem, Pass, Scalar, Vec
from hw.compact.program import step_program
from tests.synthetic import make_random_params, small_config

from pathlib import Path

MODELS = Path(__file__).resolve().parent.parent / "models"


def run_both(config, device, lanes, tokens, reset_at=()):
    layout = DeviceLayout(config, lanes)
    machine = Machine(layout, layout.image(device))
    program = step_program(layout)
    model = BitExactModel(device)
    state = model.init_state()
    for t, token in enumerate(tokens):
        if t in reset_at:
            machine.reset()
            state = model.init_state()
        logits, argmax = machine.run(program, token)
        want_logits, want_argmax, state = model.step(token, state)
        np.testing.assert_array_equal(logits, want_logits, err_msg=f"logits of step {t}")
        assert argmax == want_argmax, f"argmax of step {t}"
    return program


@pytest.mark.parametrize("lower_bound", [True, False])
@pytest.mark.parametrize("lanes", [5, 10, 20])
def test_program_equals_bitexact_model(lanes, lower_bound):
    config = small_config(vocab_size=40, hidden_size=16, num_hidden_layers=3, intermediate_size=24,
                          use_lower_bound=lower_bound)
    device = DeviceModel.from_params(config, make_random_params(config, seed=lanes))
    rng = np.random.default_rng(lanes)
    run_both(config, device, lanes, rng.integers(0, config.vocab_size, 12), reset_at=(7,))


def test_program_on_the_shipped_up5k_model():
    config, params = load_checkpoint(MODELS / "mmfree-up5k")
    device = DeviceModel.from_params(config, params)
    program = run_both(config, device, 20, [72, 101, 108, 108, 111, 32], reset_at=(4,))
    matvecs = [i for i in program if isinstance(i, MatVec)]
    assert len(matvecs) == 6 * config.num_hidden_layers + 1


def test_state_persists_and_reset_clears_it():
    """Same token twice: the second step differs (state carried); after a reset it repeats."""
    config = small_config(vocab_size=32, hidden_size=16, num_hidden_layers=2, intermediate_size=32)
    device = DeviceModel.from_params(config, make_random_params(config, seed=5))
    layout = DeviceLayout(config, 10)
    machine, program = Machine(layout, layout.image(device)), step_program(layout)
    first, _ = machine.run(program, 3)
    second, _ = machine.run(program, 3)
    assert not np.array_equal(first, second)
    machine.reset()
    again, _ = machine.run(program, 3)
    np.testing.assert_array_equal(again, first)


@pytest.mark.parametrize("make, message", [
    (lambda: Vec("nope"), "unknown bank"),
    (lambda: Mem("weights", 0), "pg, aux or embedding"),
    (lambda: Mem("pg", 0), "half="),
    (lambda: Scalar(6), "out of range"),
    (lambda: Imm(0.1), "not exact"),
    (lambda: Pass("frobnicate", 4, Vec("x"), Vec("u")), "unknown function"),
    (lambda: Pass("mul", 4, Vec("x"), Vec("u"), Vec("u", 1)), "one read port"),
    (lambda: Pass("mul", 4, Vec("x"), Mem("pg", 0, "lo"), Mem("aux", 0)), "one read port"),
    (lambda: Pass("mul", 4, Scalar(1), Vec("u"), Vec("t")), "one element only"),
    (lambda: Pass("copy", 4, None, Vec("u")), "must reduce"),
    (lambda: Pass("copy", 4, None, Vec("u"), reduce="aligned_sum", into=Scalar(0)), "exponent="),
    (lambda: Pass("mul", 4, Vec("x"), Vec("u")), "two operands"),
    (lambda: Pass("mul", 0, Vec("x"), Vec("u"), Vec("t")), "at least one"),
    (lambda: Pass("int_pow2", 1, Scalar(2), Scalar(2), Imm(1.0)), "scalar register"),
])
def test_instructions_refuse_what_the_machine_cannot_do(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_machine_refuses_a_write_off_the_banks_grid():
    """fp32 state copied into a bf16 bank (instead of rounded) is a program error, not a silent
    rounding: the gateware would keep only the word's bits."""
    config = small_config(vocab_size=32, hidden_size=16, num_hidden_layers=2, intermediate_size=32)
    layout = DeviceLayout(config, 10)
    device = DeviceModel.from_params(config, make_random_params(config, seed=1))
    machine = Machine(layout, layout.image(device))
    machine.banks["h"][:4] = 1 + 2.0 ** -20
    with pytest.raises(ValueError, match="not bf16 into bank 'u'"):
        machine.run([Pass("copy", 4, Vec("u"), Vec("h"))], 0)
    machine.run([Pass("round16", 4, Vec("u"), Vec("h"))], 0)
    np.testing.assert_array_equal(machine.banks["u"][:4], 1.0)
    # the scalar registers keep only their format's bits too (SCALAR_FORMATS: 0 is bf16, 1 an
    # exponent field, 2 a whole word): a pass's result is kept as its bit pattern, so an
    # exponent register takes fields from the top_exponent reduction only, not a value 1.0
    with pytest.raises(ValueError, match="into scalar 0, which keeps only bf16 values"):
        machine.run([Pass("copy", 1, Scalar(0), Vec("h"))], 0)
    with pytest.raises(ValueError, match="into scalar 1, which keeps only exponent values from reductions"):
        machine.run([Pass("round16", 1, Scalar(1), Vec("h"))], 0)
    machine.run([Pass("round16", 1, Scalar(2), Vec("h")), Pass("round16", 1, Scalar(0), Vec("h"))], 0)
    assert machine.scalars[0] == machine.scalars[2] == 1.0


def _bf16_pairs(count, seed):
    """Random bf16 bit patterns, all signs and exponents, finite, with b's exponent near a's half
    the time (where the additions' rounding is decided)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 16, count)
    b = rng.integers(0, 1 << 16, count)
    near = rng.random(count) < 0.5
    exp_a = (a >> 7) & 0xFF
    exp_b = np.clip(exp_a + rng.integers(-10, 11, count), 0, 254)
    b = np.where(near, (b & 0x807F) | (exp_b << 7), b)
    finite = (((a >> 7) & 0xFF) != 0xFF) & (((b >> 7) & 0xFF) != 0xFF)
    return a[finite], b[finite]


def test_fp32_lmul_of_bf16_operands_is_the_bf16_lmul():
    """Why the pipeline has one L-Mul, in fp32: on bf16 operands (low 16 bits zero) the upper half
    of its product, which a bf16 bank keeps, is the bf16 L-Mul's (every bf16 pattern x every
    256th, Inf and NaN included; the low half is zero except at saturation, 0x7F7FFFFF)."""
    from golden.lmul import lmul
    a = np.repeat(np.arange(1 << 16), 256)
    b = np.tile(np.arange(0, 1 << 16, 256) + 37, 1 << 16) & 0xFFFF
    product = lmul(a << 16, b << 16, "fp32")
    np.testing.assert_array_equal(product >> 16, lmul(a, b, "bf16"))
    assert np.all((product & 0xFFFF)[(product & 0x7FFFFFFF) != 0x7F7FFFFF] == 0)


def test_bf16_addition_is_the_fp32_adder_then_rounding():
    """Why the pipeline has one adder, in fp32: a bf16 sum is the fp32 sum rounded to bf16
    (double rounding is innocuous: 24 >= 2 * 8 + 2)."""
    from golden.formats import decode
    from golden.numerics import Numerics
    nx = Numerics()
    a, b = _bf16_pairs(1 << 20, seed=7)
    x, y = decode(a, "bf16"), decode(b, "bf16")
    for op in ("add", "sub"):
        single = getattr(nx, op)(x, y)
        double = nx.round(getattr(nx, op)(x, y, "fp32"))
        np.testing.assert_array_equal(double, single, err_msg=op)
