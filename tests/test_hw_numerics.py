"""Training with the hardware numerics in the loop: the differentiable Numerics computes exactly
the golden bits in its forward pass, and gradients reach every trainable tensor."""

import numpy as np
import torch

from golden.bitexact import BitExactModel
from synthetic import make_random_params, small_config
from train.finetune_hw import hw_loss
from train.hw_numerics import TorchNumerics

CONFIG = small_config(vocab_size=64, hidden_size=32, num_hidden_layers=2)
PARAMS = make_random_params(CONFIG, seed=5)
TOKENS = np.random.default_rng(1).integers(0, 64, size=(2, 12))


def test_forward_bits_equal_the_golden_model():
    golden = BitExactModel.from_params(CONFIG, PARAMS)
    want, _, _ = golden.forward(TOKENS)
    nx = TorchNumerics()
    params = {k: torch.tensor(v, dtype=torch.float64) for k, v in PARAMS.items()}
    model = BitExactModel.from_params(CONFIG, params, numerics=nx)
    state = [torch.zeros(2, CONFIG.hidden_size, dtype=torch.float64) for _ in range(CONFIG.num_hidden_layers)]
    got, _, _ = model.forward(torch.from_numpy(TOKENS), state)
    np.testing.assert_array_equal(got.detach().numpy(), want)


def test_gradients_reach_every_tensor():
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in PARAMS.items()}
    loss = hw_loss(CONFIG, params, torch.from_numpy(TOKENS), TorchNumerics())
    loss.backward()
    # the paper mixer's o_proj copy is unused in the code mixer; everything else must learn
    missing = [k for k, p in params.items() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []
