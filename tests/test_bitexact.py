"""The bit-exact model: its two forms agree bit for bit, it tracks the float reference, and the
deviations the contract makes (decay form, folded norms) do what docs/numerics.md says."""

import numpy as np
import pytest

from golden.bitexact import BitExactModel
from golden.float_model import FloatModel
from golden.numerics import Approximations, Numerics, round_to
from synthetic import make_random_params, small_config

CONFIG = small_config(vocab_size=64, hidden_size=32, num_hidden_layers=3)
PARAMS = make_random_params(CONFIG, seed=7)
TOKENS = np.random.default_rng(3).integers(0, 64, size=(3, 24))


@pytest.fixture(scope="module")
def model():
    return BitExactModel.from_params(CONFIG, PARAMS)


def test_step_form_equals_sequence_form_bit_for_bit(model):
    logits_seq, acc_seq, state_seq = model.forward(TOKENS[0])
    state = model.init_state()
    for t, token in enumerate(TOKENS[0]):
        logits, nxt, state = model.step(int(token), state)
        np.testing.assert_array_equal(logits, logits_seq[t])
        assert nxt == int(np.argmax(acc_seq[t]))
    for a, b in zip(state, state_seq):
        np.testing.assert_array_equal(a, b)


def test_batch_rows_are_independent(model):
    batch, _, _ = model.forward(TOKENS)
    for row in range(len(TOKENS)):
        np.testing.assert_array_equal(batch[row], model.forward(TOKENS[row])[0])


def test_every_value_lies_on_its_grid(model):
    logits, acc, state = model.forward(TOKENS[0])
    np.testing.assert_array_equal(logits, round_to(logits, "bf16"))
    np.testing.assert_array_equal(acc, np.round(acc))
    for h in state:
        np.testing.assert_array_equal(h, round_to(h, "fp32"))


@pytest.mark.parametrize("mixer", ["code", "paper"])
def test_exact_arithmetic_tracks_the_float_reference(mixer):
    """With every approximation switched off, only bf16 rounding and the eps folding remain."""
    exact = BitExactModel.from_params(CONFIG, PARAMS, mixer=mixer, numerics=Numerics(Approximations.exact()))
    ref = FloatModel(CONFIG, PARAMS, mixer=mixer, dtype=np.float64).forward(TOKENS)
    got = exact.forward(TOKENS)[0]
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.999
    # bf16 inputs move a few int8 codes by one step; nothing larger is allowed
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()


def test_contract_arithmetic_stays_close_to_the_float_reference(model):
    ref = FloatModel(CONFIG, PARAMS, dtype=np.float64).forward(TOKENS)
    got = model.forward(TOKENS)[0]
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.98


def test_layer_zero_has_no_lower_bound(model):
    layers = model.device.layers
    assert layers[0]["keep"] is None
    assert all(layer["keep"] is not None for layer in layers[1:])


def test_decay_form_cannot_grow_the_state_but_the_plain_form_does():
    """docs/numerics.md section 7: with f just below 1, lmul(f, h) > |h| for many h."""
    nx = Numerics()
    z = round_to(np.full(256, 1 / 128))  # f = 1 - 1/128
    h0 = round_to(np.linspace(0.5, 4.0, 256), "fp32")
    plain, decay = h0.copy(), h0.copy()
    for _ in range(200):  # no input: the state may only decay
        plain = nx.mul(nx.sub(1.0, z), plain, "fp32")
        decay = nx.sub(decay, nx.mul(z, decay, "fp32"), "fp32")
    assert np.all(np.abs(decay) <= h0)
    assert np.max(np.abs(plain) / h0) > 10  # the plain form explodes


def test_argmax_breaks_ties_on_the_lowest_index(model):
    # Two identical LM-head rows give identical accumulators; the lower index must win.
    params = dict(PARAMS)
    head = params["lm_head.weight"].copy()
    head[5] = head[9] = np.abs(head).max() * np.sign(head[0]) * 3
    params["lm_head.weight"] = head
    tied = BitExactModel.from_params(CONFIG, params)
    _, acc, _ = tied.forward(TOKENS[0])
    winners = acc.argmax(-1)
    assert np.all(acc[:, 5] == acc[:, 9])
    assert 9 not in set(winners.tolist())
