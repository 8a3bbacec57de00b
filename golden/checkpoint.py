"""Read and write MMfreeLM checkpoints in the Hugging Face layout, without torch.

A model folder holds ``config.json`` (see :mod:`golden.config`) and ``model.safetensors`` with the
official key names (``model.layers.{l}.attn.i_proj.weight`` ...). The released checkpoints store
latent bf16 weights; every tensor is returned as float32 NumPy.

safetensors format: an 8-byte little-endian header length N, N bytes of JSON
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``), then the raw
little-endian tensor bytes; offsets are relative to the start of that data section.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
from pathlib import Path

import numpy as np

from golden.config import ModelConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

# safetensors dtype name -> (little-endian storage dtype, bytes per element)
_DTYPES = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # bf16 bit patterns; widened to float32 by a 16-bit shift
}
# Refuse headers larger than this: real ones are a few hundred kB; protects against garbage.
_MAX_HEADER_BYTES = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """A model folder or ``model.safetensors`` that is missing, corrupt or does not fit the config."""


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor key of the official layout with its shape: the single source of truth."""
    d, inter, vocab, n_layers = (config.hidden_size, config.intermediate_size,
                                 config.vocab_size, config.num_hidden_layers)
    shapes: dict[str, tuple[int, ...]] = {"model.embeddings.weight": (vocab, d)}
    if config.use_lower_bound:
        shapes["model.lower_bounds"] = (n_layers, d)
    for layer in range(n_layers):
        p = f"model.layers.{layer}."
        shapes[p + "attn_norm.weight"] = (d,)
        for proj in ("i_proj", "f_proj", "g_proj", "o_proj"):
            shapes[p + f"attn.{proj}.weight"] = (d, d)
            shapes[p + f"attn.{proj}.norm.weight"] = (d,)
        shapes[p + "attn.g_norm.weight"] = (d,)
        shapes[p + "mlp_norm.weight"] = (d,)
        shapes[p + "mlp.gate_proj.weight"] = (2 * inter, d)
        shapes[p + "mlp.gate_proj.norm.weight"] = (d,)
        shapes[p + "mlp.down_proj.weight"] = (d, inter)
        shapes[p + "mlp.down_proj.norm.weight"] = (inter,)
    shapes["model.norm.weight"] = (d,)
    shapes["lm_head.weight"] = (vocab, d)
    shapes["lm_head.norm.weight"] = (d,)
    return shapes


# --------------------------------------------------------------------------------------------
# bf16 <-> float32

def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """bf16 is the top half of a float32: shift the 16 bits up and reinterpret."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def float32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round float32 to bf16 (round to nearest, ties to even) and return the uint16 bit patterns.

    Adding ``0x7FFF + lsb`` to the bit pattern and truncating is RNE on the magnitude (it cannot
    overflow 32 bits for finite values or infinities); NaN is kept a quiet NaN (the add could
    otherwise carry it into infinity or wrap around).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32)
    rounded = ((u + (np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1)))) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        rounded[nan] = ((u[nan] >> 16) | 0x0040).astype(np.uint16)
    return rounded


# --------------------------------------------------------------------------------------------
# safetensors

def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a safetensors file as float32 arrays (F32, F16 and BF16 supported)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = path.stat().st_size
            if size < 8:
                raise CheckpointError(f"{path}: truncated file ({size} bytes, no header length)")
            (header_len,) = struct.unpack("<Q", fh.read(8))
            if header_len == 0 or header_len > min(size - 8, _MAX_HEADER_BYTES):
                raise CheckpointError(
                    f"{path}: corrupt safetensors header length {header_len} (file is {size} bytes)")
            try:
                header = json.loads(fh.read(header_len).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CheckpointError(f"{path}: corrupt safetensors header, not valid JSON ({exc})") from None
            if not isinstance(header, dict):
                raise CheckpointError(f"{path}: corrupt safetensors header, not a JSON object")
            data_start = 8 + header_len
            data_len = size - data_start
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file (a model folder needs {WEIGHTS_FILE})") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, expected a safetensors file") from None

    tensors: dict[str, np.ndarray] = {}
    try:
        for key, info in header.items():
            if key == "__metadata__":
                continue
            tensors[key] = _decode_tensor(path, key, info, buf, data_start, data_len)
    finally:
        # Every tensor was copied out of the map, so no view into it survives.
        buf.close()
    return tensors


def _decode_tensor(path, key, info, buf, data_start, data_len) -> np.ndarray:
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
        raise CheckpointError(f"{path}: corrupt safetensors header entry for key {key!r}")
    dtype_name, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype_name not in _DTYPES:
        raise CheckpointError(
            f"{path}: key {key!r} has unsupported dtype {dtype_name!r} (supported: F32, F16, BF16)")
    if (not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape)
            or not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)):
        raise CheckpointError(f"{path}: corrupt safetensors header entry for key {key!r}")
    begin, end = offsets
    if not 0 <= begin <= end or end > data_len:
        raise CheckpointError(
            f"{path}: key {key!r} data offsets [{begin}, {end}] lie past the end of the data "
            f"({data_len} bytes): file truncated or corrupt")
    storage = _DTYPES[dtype_name]
    need = math.prod(shape) * storage.itemsize
    if end - begin != need:
        raise CheckpointError(
            f"{path}: key {key!r} holds {end - begin} bytes but shape {tuple(shape)} x {dtype_name} "
            f"needs {need}")
    raw = np.frombuffer(buf, dtype=storage, count=need // storage.itemsize,
                        offset=data_start + begin).reshape(shape)
    if dtype_name == "BF16":
        return bf16_bits_to_float32(raw)
    return raw.astype(np.float32)  # always a copy, detached from the mapped file


def write_safetensors(path: str | Path, tensors: dict[str, np.ndarray], dtype: str = "float32") -> None:
    """Write float tensors as F32 or BF16 (RNE-rounded) in the standard safetensors layout."""
    if dtype not in ("float32", "bfloat16"):
        raise CheckpointError(f"{path}: unsupported save dtype {dtype!r} (use 'float32' or 'bfloat16')")
    header: dict = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for key in sorted(tensors):
        arr = np.asarray(tensors[key], dtype=np.float32)
        if dtype == "bfloat16":
            bits = float32_to_bf16_bits(arr)
            if np.any(np.isinf(bf16_bits_to_float32(bits)) & np.isfinite(arr)):
                raise CheckpointError(f"{path}: key {key!r} overflows bfloat16 (|value| > 3.39e38)")
            data, name = bits.astype("<u2").tobytes(), "BF16"
        else:
            data, name = arr.astype("<f4").tobytes(), "F32"
        header[key] = {"dtype": name, "shape": list(arr.shape),
                       "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # pad to 8 bytes, as the reference library does
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(header_bytes)))
        fh.write(header_bytes)
        for data in blobs:
            fh.write(data)


# --------------------------------------------------------------------------------------------
# model folders

def check_tensors(config: ModelConfig, tensors: dict[str, np.ndarray], source: str) -> None:
    """Raise CheckpointError unless ``tensors`` has exactly the expected keys and shapes, all finite."""
    shapes = expected_shapes(config)
    for key in shapes:
        if key not in tensors:
            raise CheckpointError(f"{source}: missing key {key!r}")
    for key in tensors:
        if key not in shapes:
            raise CheckpointError(f"{source}: unexpected key {key!r} (not part of the model)")
    for key, shape in shapes.items():
        actual = tuple(np.shape(tensors[key]))
        if actual != shape:
            raise CheckpointError(f"{source}: key {key!r} has shape {actual}, expected {shape}")
    for key in shapes:
        if not np.all(np.isfinite(tensors[key])):
            raise CheckpointError(f"{source}: key {key!r} holds non-finite values (NaN or inf)")


def load_checkpoint(model_dir: str | Path) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """Read ``config.json`` and ``model.safetensors``; every tensor as float32, checked against the config.

    ConfigError (a ValueError) from a bad config.json propagates unchanged.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise CheckpointError(f"{model_dir}: model folder does not exist")
    config_path = model_dir / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{config_path}: no such file (a model folder needs {CONFIG_FILE})")
    weights_path = model_dir / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: no such file (a model folder needs {WEIGHTS_FILE})")
    config = ModelConfig.load(config_path)
    tensors = read_safetensors(weights_path)
    check_tensors(config, tensors, str(weights_path))
    return config, tensors


def save_checkpoint(model_dir: str | Path, config: ModelConfig, tensors: dict[str, np.ndarray],
                    dtype: str = "float32") -> None:
    """Write ``config.json`` and ``model.safetensors`` (``dtype`` "float32" or "bfloat16")."""
    model_dir = Path(model_dir)
    check_tensors(config, tensors, f"save_checkpoint({model_dir})")
    if dtype not in ("float32", "bfloat16"):
        raise CheckpointError(f"{model_dir}: unsupported save dtype {dtype!r} (use 'float32' or 'bfloat16')")
    model_dir.mkdir(parents=True, exist_ok=True)
    config.save(model_dir / CONFIG_FILE)
    write_safetensors(model_dir / WEIGHTS_FILE, tensors, dtype)
