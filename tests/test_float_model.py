"""golden.float_model and golden.ternary against hand computations and an independent torch model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from golden.checkpoint import save_checkpoint
from golden.float_model import FloatModel, bits_per_token, bitlinear, lower_bounds
from golden.ternary import absmax_int8, absmean_ternary, round_half_away

try:
    from synthetic import make_random_params, small_config
except ImportError:  # tests/ is a package in this run
    from tests.synthetic import make_random_params, small_config


# ---- an independent torch implementation, written from mmfreelm.md ---------------------------
# float64, one token at a time, one layer at a time; shares no code with golden/.

def _t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def ref_rmsnorm(x, w, eps):
    return x / torch.sqrt(torch.mean(x * x) + eps) * w


def ref_bitlinear(x, weight, norm_w, eps):
    y = ref_rmsnorm(x, norm_w, eps)
    amax = torch.clamp(y.abs().max(), min=1e-5)
    z = y * 127.0 / amax
    # round half away from zero, then clamp to int8
    y_q = torch.clamp(torch.sign(z) * torch.floor(z.abs() + 0.5), -128, 127)
    mean_abs = torch.clamp(weight.abs().mean(), min=1e-5)
    w_t = torch.clamp(torch.round(weight / mean_abs), -1, 1)
    return (w_t @ y_q) * amax * mean_abs / 127.0


def ref_logits(params, config, tokens, mixer):
    P = {k: _t(v) for k, v in params.items()}
    eps, L, d = config.rms_norm_eps, config.num_hidden_layers, config.hidden_size
    I = config.intermediate_size
    sm = torch.softmax(P["model.lower_bounds"], dim=0)
    lb = torch.cumsum(sm, dim=0) - sm[0]
    h = [torch.zeros(d, dtype=torch.float64) for _ in range(L)]
    outs = []
    for tok in tokens:
        x = P["model.embeddings.weight"][int(tok)]
        for l in range(L):
            p = f"model.layers.{l}."

            def BL(v, name):
                return ref_bitlinear(v, P[p + name + ".weight"], P[p + name + ".norm.weight"], eps)

            a = ref_rmsnorm(x, P[p + "attn_norm.weight"], eps)
            i, f, g = BL(a, "attn.i_proj"), BL(a, "attn.f_proj"), BL(a, "attn.g_proj")
            f = torch.sigmoid(f)
            if l > 0:
                f = lb[l] + (1 - lb[l]) * f
            if mixer == "code":
                i = F.silu(i) * (1 - f)
                h[l] = f * h[l] + i
                o = ref_rmsnorm(g, P[p + "attn.g_norm.weight"], eps) * F.silu(h[l])
            else:  # paper MLGRU
                c = F.silu(i)
                h[l] = f * h[l] + (1 - f) * c
                o = torch.sigmoid(g) * h[l]
            x = x + BL(o, "attn.o_proj")
            m = ref_rmsnorm(x, P[p + "mlp_norm.weight"], eps)
            u = BL(m, "mlp.gate_proj")
            gate, y = u[:I], u[I:]
            x = x + BL(F.silu(gate) * y, "mlp.down_proj")
        x = ref_rmsnorm(x, P["model.norm.weight"], eps)
        outs.append(ref_bitlinear(x, P["lm_head.weight"], P["lm_head.norm.weight"], eps))
    return torch.stack(outs).numpy()


# ---- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cfg():
    return small_config()


@pytest.fixture(scope="module")
def params(cfg):
    return make_random_params(cfg, seed=11)


TOKENS = np.array([1, 5, 63, 0, 17, 17, 42, 8, 33, 2, 60, 9], dtype=np.int64)


# ---- ternary.py -------------------------------------------------------------------------------

def test_round_half_away_from_zero():
    x = np.array([0.5, -0.5, 1.5, 2.5, -2.5, 0.49999997, -0.49999997, 1.4, -1.6, 3.0, 0.0],
                 dtype=np.float32)
    np.testing.assert_array_equal(round_half_away(x), [1, -1, 2, 3, -3, 0, 0, 1, -2, 3, 0])
    assert round_half_away(np.float64(2.5 - 2 ** -51)) == 2.0


def test_absmean_ternary_hand_example():
    w = np.array([[0.3, -0.05, 0.2], [-0.6, 0.1, 0.0]], dtype=np.float32)
    # mean|w| = 1.25 / 6 = 0.208333...; w / beta = [1.44, -0.24, 0.96], [-2.88, 0.48, 0]
    w_t, beta = absmean_ternary(w)
    assert w_t.dtype == np.int8
    np.testing.assert_array_equal(w_t, [[1, 0, 1], [-1, 0, 0]])
    assert beta == pytest.approx(1.25 / 6, rel=1e-7)
    w_t, beta = absmean_ternary(np.zeros((2, 2), np.float32))
    assert beta == 1e-5 and not w_t.any()


def test_absmax_int8_hand_example():
    y = np.array([[0.5, -1.0, 0.25, 0.0], [2.0, 1.0, -0.5, 0.00787]], dtype=np.float64)
    q, amax = absmax_int8(y)
    np.testing.assert_array_equal(amax, [[1.0], [2.0]])
    # row 0: 63.5 -> 64 (half away), -127, 31.75 -> 32, 0
    # row 1: 127, 63.5 -> 64, -31.75 -> -32, 0.4997... -> 0
    np.testing.assert_array_equal(q, [[64, -127, 32, 0], [127, 64, -32, 0]])
    q, amax = absmax_int8(np.zeros((1, 3)))
    assert amax[0, 0] == 1e-5 and not q.any()


def test_bitlinear_is_an_exact_integer_dot_product():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 40))
    g = 1 + 0.1 * rng.standard_normal(40)
    w = 0.05 * rng.standard_normal((24, 40))
    w_t, beta = absmean_ternary(w)
    assert set(np.unique(w_t)) == {-1, 0, 1}
    out = bitlinear(x, g, w_t.astype(np.float64), beta, 1e-6)
    # the same in integers: int8 codes from the normalised row, int64 accumulation
    y = x / np.sqrt(np.mean(x ** 2, -1, keepdims=True) + 1e-6) * g
    amax = np.abs(y).max(-1, keepdims=True)
    q = np.clip(np.sign(y) * np.floor(np.abs(y) * 127 / amax + 0.5), -128, 127).astype(np.int64)
    acc = q @ w_t.astype(np.int64).T
    np.testing.assert_allclose(out, acc * amax * beta / 127, rtol=1e-12, atol=1e-12)


# ---- lower bounds -----------------------------------------------------------------------------

def test_lower_bounds_hand_example_3x2():
    raw = np.array([[0.0, math.log(1)], [0.0, math.log(2)], [0.0, math.log(3)]])
    # column 0: softmax = 1/3 each -> cumsum 1/3, 2/3, 1 -> minus 1/3 -> 0, 1/3, 2/3
    # column 1: softmax = 1/6, 2/6, 3/6 -> cumsum 1/6, 3/6, 1 -> minus 1/6 -> 0, 2/6, 5/6
    np.testing.assert_allclose(lower_bounds(raw), [[0, 0], [1 / 3, 2 / 6], [2 / 3, 5 / 6]], atol=1e-15)


def test_lower_bound_is_zero_for_layer_0_and_rises(cfg, params):
    model = FloatModel(cfg, params)
    assert np.all(model.lower_bounds[0] == 0)
    assert np.all(model.lower_bounds[1] > 0) and np.all(model.lower_bounds[1] < 1)


def test_lower_bound_changes_the_output(cfg, params):
    base = FloatModel(cfg, params).forward(TOKENS)
    shifted = dict(params)
    shifted["model.lower_bounds"] = params["model.lower_bounds"] + np.array([[0.0], [3.0]], np.float32)
    assert np.abs(FloatModel(cfg, shifted).forward(TOKENS) - base).max() > 1e-3
    # Adding a constant per column leaves the softmax over layers, hence the model, unchanged.
    same = dict(params)
    same["model.lower_bounds"] = params["model.lower_bounds"] + np.float32(2.0)
    np.testing.assert_allclose(FloatModel(cfg, same).forward(TOKENS), base, rtol=1e-5, atol=1e-5)


# ---- the model --------------------------------------------------------------------------------

@pytest.mark.parametrize("mixer", ["code", "paper"])
def test_step_equals_forward(cfg, params, mixer):
    model = FloatModel(cfg, params, mixer=mixer)
    full = model.forward(TOKENS)
    assert full.shape == (len(TOKENS), cfg.vocab_size) and full.dtype == np.float32
    state = model.init_state()
    assert len(state) == cfg.num_hidden_layers and state[0].dtype == np.float32 and not state[0].any()
    for t, tok in enumerate(TOKENS):
        logits, state = model.step(int(tok), state)
        np.testing.assert_allclose(logits, full[t], rtol=1e-5, atol=1e-5 * np.abs(full[t]).max())
    assert all(s.any() for s in state)


def test_step_does_not_mutate_state(cfg, params):
    model = FloatModel(cfg, params)
    _, s1 = model.step(3, model.init_state())
    copy = [s.copy() for s in s1]
    model.step(4, s1)
    assert all(np.array_equal(a, b) for a, b in zip(s1, copy))


def test_batched_forward_equals_rows(cfg, params):
    model = FloatModel(cfg, params)
    batch = np.stack([TOKENS, TOKENS[::-1], (TOKENS * 7) % cfg.vocab_size])
    out = model.forward(batch)
    assert out.shape == (3, len(TOKENS), cfg.vocab_size)
    for b in range(3):
        np.testing.assert_allclose(out[b], model.forward(batch[b]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mixer", ["code", "paper"])
@pytest.mark.parametrize("inter", [None, 48])
def test_matches_independent_torch_float64(mixer, inter):
    config = small_config(intermediate_size=inter, num_hidden_layers=3)
    params = make_random_params(config, seed=21)
    ours = FloatModel(config, params, mixer=mixer, dtype=np.float64).forward(TOKENS)
    ref = ref_logits(params, config, TOKENS, mixer)
    assert ours.dtype == np.float64
    assert np.abs(ref).max() > 0.1  # the comparison is not between near-zero vectors
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("mixer", ["code", "paper"])
def test_float32_close_to_float64_reference(cfg, params, mixer):
    ours = FloatModel(cfg, params, mixer=mixer).forward(TOKENS)
    ref = ref_logits(params, cfg, TOKENS, mixer)
    # float32 rounding may flip a few int8 codes by one step; the logits stay close.
    np.testing.assert_allclose(ours, ref, atol=1e-3 * np.abs(ref).max())


def test_mixers_differ(cfg, params):
    code = FloatModel(cfg, params, mixer="code").forward(TOKENS)
    paper = FloatModel(cfg, params, mixer="paper").forward(TOKENS)
    assert np.abs(code - paper).max() > 1e-2


def test_bits_per_token_matches_cross_entropy(cfg, params):
    model = FloatModel(cfg, params)
    logits = model.forward(TOKENS)
    ce = F.cross_entropy(torch.tensor(logits[:-1], dtype=torch.float64), torch.tensor(TOKENS[1:]))
    assert model.bits_per_token(TOKENS) == pytest.approx(ce.item() / math.log(2), rel=1e-12)
    assert bits_per_token(logits, TOKENS) == pytest.approx(ce.item() / math.log(2), rel=1e-12)
    # stable for huge logits
    big = np.zeros((2, 4)); big[0, 1] = 1e4
    assert bits_per_token(big, np.array([0, 1])) == pytest.approx(0.0, abs=1e-12)
    assert bits_per_token(big, np.array([0, 2])) == pytest.approx(1e4 / math.log(2), rel=1e-12)
    lp = model.logprobs(TOKENS)
    np.testing.assert_allclose(np.exp(lp).sum(-1), 1.0, rtol=1e-12)


def test_from_pretrained_bf16(tmp_path, cfg, params):
    save_checkpoint(tmp_path, cfg, params, dtype="bfloat16")
    loaded = FloatModel.from_pretrained(tmp_path, mixer="paper")
    rounded = {k: torch.from_numpy(v).to(torch.bfloat16).to(torch.float32).numpy() for k, v in params.items()}
    direct = FloatModel(cfg, rounded, mixer="paper")
    assert loaded.mixer == "paper"
    np.testing.assert_array_equal(loaded.forward(TOKENS), direct.forward(TOKENS))


def test_without_lower_bound(cfg):
    config = small_config(use_lower_bound=False)
    params = make_random_params(config, seed=3)
    assert "model.lower_bounds" not in params
    model = FloatModel(config, params, mixer="code", dtype=np.float64)
    # Reference with the lower bound forced to zero: lower_bounds all -inf except layer 0.
    raw = np.full((config.num_hidden_layers, config.hidden_size), -1e9)
    raw[0] = 0
    ref = ref_logits({**params, "model.lower_bounds": raw}, config, TOKENS[:6], "code")
    np.testing.assert_allclose(model.forward(TOKENS[:6]), ref, rtol=1e-9, atol=1e-9)


def test_bad_inputs(cfg, params):
    with pytest.raises(ValueError, match="mixer"):
        FloatModel(cfg, params, mixer="transformer")
    model = FloatModel(cfg, params)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 64\)"):
        model.forward(np.array([1, 64]))
    with pytest.raises(ValueError, match="token ids"):
        model.step(-1, model.init_state())
    broken = dict(params)
    del broken["model.layers.0.attn.o_proj.weight"]
    with pytest.raises(ValueError, match="missing key 'model.layers.0.attn.o_proj.weight'"):
        FloatModel(cfg, broken)
