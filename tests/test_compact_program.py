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
    (lambda: Scalar(8), "out of range"),
    (lambda: Imm(0.1), "not exact"),
    (lambda: Pass("frobnicate", 4, Vec("x"), Vec("u")), "unknown function"),
    (lambda: Pass("mul", 4, Vec("x"), Vec("u"), Vec("u")), "one read port"),
    (lambda: Pass("mul", 4, Vec("x"), Mem("pg", 0, "lo"), Mem("aux", 0)), "one read port"),
    (lambda: Pass("mul", 4, Scalar(1), Vec("u"), Vec("t")), "one element only"),
    (lambda: Pass("copy", 4, None, Vec("u")), "must reduce"),
    (lambda: Pass("copy", 4, None, Vec("u"), reduce="block_sum", into=Scalar(0)), "exponent="),
    (lambda: Pass("mul", 4, Vec("x"), Vec("u")), "two operands"),
    (lambda: Pass("mul", 0, Vec("x"), Vec("u"), Vec("t")), "at least one"),
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
