"""Small random MMfreeLM checkpoints in the official layout, for tests.

Import as ``from synthetic import ...`` (pytest puts ``tests/`` on sys.path) or
``from tests.synthetic import ...``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from golden.checkpoint import expected_shapes, save_checkpoint
from golden.config import ModelConfig


def small_config(vocab_size=64, hidden_size=32, num_hidden_layers=2, intermediate_size=None,
                 **kwargs) -> ModelConfig:
    """A tiny config; ``intermediate_size=None`` applies the MMfreeLM formula (256 for d=32)."""
    raw = dict(vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
               intermediate_size=intermediate_size, **kwargs)
    return ModelConfig.from_dict(raw)


def make_random_params(config: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 tensors for every key of ``expected_shapes(config)``.

    Norm weights near 1, lower bounds ~N(0, 1), projections ~N(0, 0.05), embeddings ~N(0, 1).
    """
    rng = np.random.default_rng(seed)
    params = {}
    for key, shape in expected_shapes(config).items():
        if key.endswith("norm.weight"):  # every RMSNorm weight, the BitLinears' own included
            value = 1 + 0.1 * rng.standard_normal(shape)
        elif key == "model.lower_bounds":
            value = rng.standard_normal(shape)
        elif key == "model.embeddings.weight":
            value = rng.standard_normal(shape)
        else:
            value = 0.05 * rng.standard_normal(shape)
        params[key] = value.astype(np.float32)
    return params


def write_random_checkpoint(model_dir: str | Path, config: ModelConfig | None = None, seed: int = 0,
                            dtype: str = "float32") -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """Write a random checkpoint folder; returns ``(config, params)`` as written (before any bf16 rounding)."""
    config = config or small_config()
    params = make_random_params(config, seed)
    save_checkpoint(model_dir, config, params, dtype=dtype)
    return config, params
