"""The torch training model (train/model.py): layout, STE gradients, save/reload, and agreement
with the NumPy golden float model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from golden.checkpoint import expected_shapes  # noqa: E402
from golden.config import ModelConfig  # noqa: E402
from train.model import BitLinear, HGRNBitForCausalLM, linear_scan, linear_scan_loop  # noqa: E402

TINY = ModelConfig(vocab_size=256, hidden_size=32, num_hidden_layers=2, intermediate_size=48)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny_model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    model = HGRNBitForCausalLM(TINY).to(dtype)
    with torch.no_grad():  # non-trivial norms and lower bounds, so every path is exercised
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.normal_(1.0, 0.2)
        model.model.lower_bounds.normal_(0.0, 0.5)
    return model


def test_state_dict_is_the_official_layout():
    sd = tiny_model().state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected_shapes(TINY)


def test_forward_and_ste_gradients_reach_every_parameter():
    model = tiny_model()
    ids = torch.randint(0, 256, (3, 17), generator=torch.Generator().manual_seed(1))
    logits = model(ids[:, :-1])
    assert logits.shape == (3, 16, 256) and torch.isfinite(logits).all()
    F.cross_entropy(logits.reshape(-1, 256), ids[:, 1:].reshape(-1)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_fused_bitlinear_matches_textbook_ste():
    torch.manual_seed(2)
    layer = BitLinear(24, 20).double()
    with torch.no_grad():
        layer.weight.normal_(0, 0.02)
        layer.norm.weight.normal_(1, 0.2)
    x = torch.randn(2, 5, 24, dtype=torch.float64, requires_grad=True)
    grads = []
    for fn in (layer, layer.forward_reference):
        x.grad = None
        layer.zero_grad()
        out = fn(x)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=torch.float64).reshape(out.shape))
        grads.append((out.detach(), x.grad.clone(), layer.weight.grad.clone(), layer.norm.weight.grad.clone()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_parallel_scan_equals_time_loop():
    g = torch.Generator().manual_seed(3)
    f = torch.rand(2, 37, 5, generator=g, dtype=torch.float64)
    i = torch.randn(2, 37, 5, generator=g, dtype=torch.float64)
    h0 = torch.randn(2, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(linear_scan(f, i), linear_scan_loop(f, i))
    torch.testing.assert_close(linear_scan(f, i, h0), linear_scan_loop(f, i, h0))


def test_recurrent_steps_equal_whole_sequence():
    model = tiny_model(dtype=torch.float64).eval()
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        full = model(ids)
        states, outs = None, []
        for t in range(ids.shape[1]):
            out, states = model(ids[:, t:t + 1], states, return_states=True)
            outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-9, atol=1e-9)


def test_safetensors_roundtrip_keeps_every_key(tmp_path):
    from safetensors.numpy import load_file
    from train.train import save_model

    model = tiny_model()
    save_model(model, TINY, tmp_path)
    loaded = load_file(str(tmp_path / "model.safetensors"))
    sd = model.state_dict()
    assert set(loaded) == set(sd)
    for k, v in sd.items():
        assert loaded[k].dtype == np.float32
        np.testing.assert_array_equal(loaded[k], v.numpy(), err_msg=k)
    assert ModelConfig.load(tmp_path) == TINY


def test_agrees_with_golden_float_model(tmp_path):
    """The torch model and golden.float_model implement the same spec independently."""
    from golden.float_model import FloatModel
    from train.train import save_model

    model = tiny_model(dtype=torch.float64).eval()
    save_model(model, TINY, tmp_path)
    ref = FloatModel.from_pretrained(tmp_path, dtype=np.float64)
    tokens = np.random.default_rng(5).integers(0, 256, 20)
    ref_logits = ref.forward(tokens)
    # float64 both sides: the saved float32 weights are what both models see
    model32 = tiny_model(dtype=torch.float64)
    model32.load_state_dict({k: v.float().double() for k, v in model.state_dict().items()})
    with torch.no_grad():
        ours = model32.eval()(torch.from_numpy(tokens)[None])[0].numpy()
    np.testing.assert_allclose(ours, ref_logits, rtol=1e-6, atol=1e-6)
