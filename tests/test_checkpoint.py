"""golden.checkpoint: safetensors reading/writing, bf16 rounding, and every error path."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from golden.checkpoint import (CheckpointError, expected_shapes, load_checkpoint, read_safetensors,
                               save_checkpoint, write_safetensors)
from golden.config import ConfigError, ModelConfig

try:
    from synthetic import make_random_params, small_config, write_random_checkpoint
except ImportError:  # tests/ is a package in this run
    from tests.synthetic import make_random_params, small_config, write_random_checkpoint


def _torch_bf16_as_f32(arr: np.ndarray) -> np.ndarray:
    """Independent float32 -> bf16 -> float32 conversion (torch rounds to nearest even)."""
    return torch.from_numpy(np.ascontiguousarray(arr)).to(torch.bfloat16).to(torch.float32).numpy()


def _write_raw(path, header: dict, data: bytes):
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)


@pytest.fixture
def cfg():
    return small_config()


# ---- shapes -----------------------------------------------------------------------------------

def test_expected_shapes_match_official_370m_layout():
    config = ModelConfig.from_dict({"vocab_size": 32000, "hidden_size": 1024, "num_hidden_layers": 24})
    shapes = expected_shapes(config)
    assert config.intermediate_size == 2816
    assert shapes["model.embeddings.weight"] == (32000, 1024)
    assert shapes["model.lower_bounds"] == (24, 1024)
    assert shapes["model.layers.0.mlp.gate_proj.weight"] == (5632, 1024)
    assert shapes["model.layers.0.mlp.down_proj.weight"] == (1024, 2816)
    assert shapes["model.layers.0.mlp.down_proj.norm.weight"] == (2816,)
    assert shapes["model.layers.23.attn.g_norm.weight"] == (1024,)
    assert shapes["lm_head.weight"] == (32000, 1024)
    assert shapes["lm_head.norm.weight"] == (1024,)
    # 3 + 24 * 15 + 3 tensors: embeddings, lower bounds, 15 per layer, final norm, lm_head + norm.
    assert len(shapes) == 2 + 24 * 15 + 3
    # Ternary-linear parameter count quoted in mmfreelm.md: 341.0M.
    ternary = sum(int(np.prod(s)) for k, s in shapes.items()
                  if k.endswith("proj.weight") or k == "lm_head.weight")
    assert round(ternary / 1e6, 1) == 341.0


def test_no_lower_bounds_key_when_disabled():
    config = small_config(use_lower_bound=False)
    assert "model.lower_bounds" not in expected_shapes(config)


# ---- round trips ------------------------------------------------------------------------------

def test_round_trip_float32(tmp_path, cfg):
    params = make_random_params(cfg, seed=1)
    save_checkpoint(tmp_path, cfg, params)
    config2, loaded = load_checkpoint(tmp_path)
    assert config2 == cfg
    assert loaded.keys() == params.keys()
    for key in params:
        assert loaded[key].dtype == np.float32
        np.testing.assert_array_equal(loaded[key], params[key], err_msg=key)


def test_round_trip_bfloat16_is_round_to_nearest_even(tmp_path, cfg):
    params = make_random_params(cfg, seed=2)
    save_checkpoint(tmp_path, cfg, params, dtype="bfloat16")
    header_len = struct.unpack("<Q", (tmp_path / "model.safetensors").read_bytes()[:8])[0]
    header = json.loads((tmp_path / "model.safetensors").read_bytes()[8:8 + header_len])
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"BF16"}
    _, loaded = load_checkpoint(tmp_path)
    changed = 0
    for key in params:
        expected = _torch_bf16_as_f32(params[key])
        np.testing.assert_array_equal(loaded[key], expected, err_msg=key)
        changed += int(np.sum(loaded[key] != params[key]))
    assert changed > 0  # bf16 really dropped bits


def test_bf16_rounding_ties_and_edges(tmp_path):
    # Exact ties between two bf16 values round to the even mantissa; just above a tie rounds up.
    bits = np.array([0x3F808000, 0x3F818000, 0x3F808001, 0xBF808000, 0x3F80FFFF, 0x00000001],
                    dtype=np.uint32)
    values = bits.view(np.float32)
    write_safetensors(tmp_path / "t.safetensors", {"x": values}, dtype="bfloat16")
    got = read_safetensors(tmp_path / "t.safetensors")["x"]
    np.testing.assert_array_equal(got, _torch_bf16_as_f32(values))
    np.testing.assert_array_equal(got.view(np.uint32) >> 16,
                                  [0x3F80, 0x3F82, 0x3F81, 0xBF80, 0x3F81, 0x0000])


def test_bf16_rounding_matches_torch_on_random_bit_patterns():
    from golden.checkpoint import bf16_bits_to_float32, float32_to_bf16_bits
    bits = np.random.default_rng(7).integers(0, 2 ** 32, size=200_000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)  # every exponent: denormals, huge values, infinities, NaNs
    ours = float32_to_bf16_bits(values)
    theirs = torch.from_numpy(values.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    finite = np.isfinite(values)
    assert finite.sum() > 190_000
    np.testing.assert_array_equal(ours[finite], theirs[finite])
    assert np.all(np.isnan(bf16_bits_to_float32(ours[np.isnan(values)])))


def test_bf16_save_refuses_overflow(tmp_path):
    with pytest.raises(CheckpointError, match="'x' overflows bfloat16"):
        write_safetensors(tmp_path / "t.safetensors", {"x": np.array([1.0, 3.4e38], np.float32)},
                          dtype="bfloat16")


def test_reads_file_written_by_safetensors_library(tmp_path, cfg):
    params = make_random_params(cfg, seed=3)
    torch_tensors = {}
    for i, (key, value) in enumerate(params.items()):
        t = torch.from_numpy(value)
        # Mix the dtypes the loader supports: bf16 (the released checkpoints), f16 and f32.
        torch_tensors[key] = t.to([torch.bfloat16, torch.float16, torch.float32][i % 3])
    save_file(torch_tensors, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    cfg.save(tmp_path / "config.json")
    _, loaded = load_checkpoint(tmp_path)
    for key, t in torch_tensors.items():
        assert loaded[key].dtype == np.float32
        np.testing.assert_array_equal(loaded[key], t.to(torch.float32).numpy(), err_msg=key)


def test_library_reads_our_bf16_file(tmp_path, cfg):
    from safetensors.torch import load_file
    params = make_random_params(cfg, seed=4)
    save_checkpoint(tmp_path, cfg, params, dtype="bfloat16")
    theirs = load_file(str(tmp_path / "model.safetensors"))
    for key in params:
        assert theirs[key].dtype == torch.bfloat16
        np.testing.assert_array_equal(theirs[key].to(torch.float32).numpy(),
                                      _torch_bf16_as_f32(params[key]), err_msg=key)


# ---- error paths ------------------------------------------------------------------------------

def _rewrite_weights(tmp_path, cfg, mutate):
    params = make_random_params(cfg, seed=5)
    mutate(params)
    cfg.save(tmp_path / "config.json")
    write_safetensors(tmp_path / "model.safetensors", params)


def test_missing_key_is_named(tmp_path, cfg):
    _rewrite_weights(tmp_path, cfg, lambda p: p.pop("model.layers.1.attn.g_norm.weight"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*missing key 'model\.layers\.1\.attn\.g_norm\.weight'"):
        load_checkpoint(tmp_path)


def test_wrong_shape_names_key_and_shapes(tmp_path, cfg):
    def mutate(p):
        p["model.layers.0.mlp.down_proj.weight"] = np.zeros((32, 128), np.float32)
    _rewrite_weights(tmp_path, cfg, mutate)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path)
    msg = str(err.value)
    assert "model.layers.0.mlp.down_proj.weight" in msg
    assert "(32, 128)" in msg and "(32, 256)" in msg


def test_extra_key_is_named(tmp_path, cfg):
    def mutate(p):
        p["model.layers.0.attn.i_proj.bias"] = np.zeros(32, np.float32)
    _rewrite_weights(tmp_path, cfg, mutate)
    with pytest.raises(CheckpointError, match=r"unexpected key 'model\.layers\.0\.attn\.i_proj\.bias'"):
        load_checkpoint(tmp_path)


def test_non_finite_values_rejected(tmp_path, cfg):
    def mutate(p):
        p["model.norm.weight"][3] = np.nan
    _rewrite_weights(tmp_path, cfg, mutate)
    with pytest.raises(CheckpointError, match=r"'model\.norm\.weight'.*non-finite"):
        load_checkpoint(tmp_path)


def test_save_refuses_bad_tensors(tmp_path, cfg):
    params = make_random_params(cfg)
    del params["lm_head.weight"]
    with pytest.raises(CheckpointError, match="missing key 'lm_head.weight'"):
        save_checkpoint(tmp_path, cfg, params)
    assert not (tmp_path / "model.safetensors").exists()


def test_truncated_file(tmp_path, cfg):
    write_random_checkpoint(tmp_path, cfg)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: key '.*' data offsets .* past the end"):
        load_checkpoint(tmp_path)


def test_truncated_inside_header(tmp_path, cfg):
    write_random_checkpoint(tmp_path, cfg)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: corrupt safetensors header length"):
        load_checkpoint(tmp_path)


def test_tiny_file(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="truncated"):
        read_safetensors(tmp_path / "x.safetensors")


def test_garbage_header(tmp_path, cfg):
    cfg.save(tmp_path / "config.json")
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 16) + b"{not json at all" + b"\0" * 64)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: corrupt safetensors header, not valid JSON"):
        load_checkpoint(tmp_path)


def test_random_bytes(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="corrupt safetensors header length"):
        read_safetensors(tmp_path / "x.safetensors")


def test_size_not_matching_shape(tmp_path):
    _write_raw(tmp_path / "x.safetensors",
               {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}, b"\0" * 24)
    with pytest.raises(CheckpointError, match=r"key 'w' holds 20 bytes but shape \(2, 3\) x F32 needs 24"):
        read_safetensors(tmp_path / "x.safetensors")


def test_unsupported_dtype(tmp_path):
    _write_raw(tmp_path / "x.safetensors",
               {"w": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 4)
    with pytest.raises(CheckpointError, match=r"key 'w' has unsupported dtype 'I8'"):
        read_safetensors(tmp_path / "x.safetensors")


def test_f16_decoding(tmp_path):
    values = np.array([1.5, -2.25, 65504.0, 2.0 ** -24], dtype=np.float16)
    _write_raw(tmp_path / "x.safetensors",
               {"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}, values.tobytes())
    got = read_safetensors(tmp_path / "x.safetensors")["w"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [1.5, -2.25, 65504.0, 2.0 ** -24])


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope: model folder does not exist"):
        load_checkpoint(tmp_path / "nope")


def test_missing_config(tmp_path, cfg):
    write_random_checkpoint(tmp_path, cfg)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json: no such file"):
        load_checkpoint(tmp_path)


def test_missing_weights(tmp_path, cfg):
    cfg.save(tmp_path / "config.json")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: no such file"):
        load_checkpoint(tmp_path)


def test_bad_config_json_propagates_config_error(tmp_path, cfg):
    write_random_checkpoint(tmp_path, cfg)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_checkpoint(tmp_path)


def test_unsupported_model_type(tmp_path, cfg):
    write_random_checkpoint(tmp_path, cfg)
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["model_type"] = "llama"
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="model_type is 'llama'"):
        load_checkpoint(tmp_path)


def test_config_disagreeing_with_weights(tmp_path, cfg):
    write_random_checkpoint(tmp_path, cfg)
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["hidden_size"] = 48
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=r"model\.embeddings\.weight' has shape \(64, 32\), expected \(64, 48\)"):
        load_checkpoint(tmp_path)
