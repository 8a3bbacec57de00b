"""The small random model the engine's simulation tests share (one definition for the Amaranth
test and the cocotb bench)."""

from golden.bitexact import DeviceModel
from tests.synthetic import make_random_params, small_config

__all__ = ["tiny_engine_model", "TINY_LANES"]

TINY_LANES = 10


def tiny_engine_model(seed: int = 3, lower_bound: bool = True):
    """(config, DeviceModel) of a 2-layer d = 16 model with random weights (tests.synthetic)."""
    config = small_config(vocab_size=32, hidden_size=16, num_hidden_layers=2, intermediate_size=32,
                          use_lower_bound=lower_bound)
    return config, DeviceModel.from_params(config, make_random_params(config, seed))
