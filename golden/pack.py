"""Packed ternary weight format of the device image: 5 trits per byte (see docs/device_image.md).

A byte holds five trits ``t_0..t_4`` in {-1, 0, +1} as base-3 digits ``t_i + 1``::

    byte = sum((t_i + 1) * 3**i for i in range(5))      # 0..242; 243..255 are invalid

Trit 0 of the group is the least significant base-3 digit. A matrix ``W[N, K]`` (N output rows,
K inputs) is stored row-major; each row takes ``ceil(K / 5)`` bytes, trit ``j`` of row ``n`` is
digit ``j % 5`` of byte ``n * ceil(K / 5) + j // 5``, and the padding trits of a row's last byte
are 0 (encoded digit 1). Rows therefore start on byte boundaries.

Decoding goes through ``decode_table()``, the 256 x 5 ROM the gateware uses (rows 243..255 zero),
so the golden model and the hardware share one definition.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = [
    "TRITS_PER_BYTE",
    "NUM_CODES",
    "row_bytes",
    "packed_size",
    "decode_table",
    "pack_ternary",
    "unpack_ternary",
]

TRITS_PER_BYTE = 5
NUM_CODES = 3**TRITS_PER_BYTE  # 243 valid byte values, 0..242


def _build_decode_table() -> np.ndarray:
    """Enumerate every trit group and store it under its code (rows 243..255 stay zero)."""
    table = np.zeros((256, TRITS_PER_BYTE), dtype=np.int8)
    # itertools.product varies the last element fastest; reversed() makes trit 0 the fastest digit,
    # so the enumeration index is the code. The assert checks that against the defining sum.
    for code, digits_high_first in enumerate(itertools.product((-1, 0, 1), repeat=TRITS_PER_BYTE)):
        trits = tuple(reversed(digits_high_first))
        assert code == sum((t + 1) * 3**i for i, t in enumerate(trits))
        table[code] = trits
    table.flags.writeable = False
    return table


_DECODE = _build_decode_table()


def decode_table() -> np.ndarray:
    """The decode ROM: ``[256, 5]`` int8, row ``b`` = trits ``t_0..t_4`` of byte ``b``; rows 243..255 zero."""
    return _DECODE.copy()


def _check_dims(n, k) -> tuple[int, int]:
    for name, value in (("n", n), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"matrix dimension {name} must be a non-negative integer, got {value!r}")
    return int(n), int(k)


def row_bytes(k: int) -> int:
    """Bytes per packed row of K trits: ``ceil(K / 5)``."""
    _, k = _check_dims(0, k)
    return -(-k // TRITS_PER_BYTE)


def packed_size(n: int, k: int) -> int:
    """Bytes of a packed ``[N, K]`` matrix."""
    n, k = _check_dims(n, k)
    return n * row_bytes(k)


def pack_ternary(w_t) -> bytes:
    """Pack a ``[N, K]`` array with values in {-1, 0, 1} (any numeric dtype) into bytes."""
    w = np.asarray(w_t)
    if w.ndim != 2:
        raise ValueError(f"pack_ternary needs a 2-D [N, K] array, got shape {w.shape}")
    if w.dtype == np.bool_ or not (np.issubdtype(w.dtype, np.integer) or np.issubdtype(w.dtype, np.floating)):
        raise ValueError(f"pack_ternary needs an integer or float array with values in {{-1, 0, 1}}, got dtype {w.dtype}")
    bad = ~((w == -1) | (w == 0) | (w == 1))
    if bad.any():
        n_bad, k_bad = np.argwhere(bad)[0]
        raise ValueError(
            f"ternary weights must be in {{-1, 0, 1}}: w_t[{n_bad}, {k_bad}] = {w[n_bad, k_bad].item()!r} "
            f"({int(bad.sum())} value(s) out of range)"
        )
    n, k = w.shape
    nb = row_bytes(k)
    digits = np.ones((n, nb * TRITS_PER_BYTE), dtype=np.uint8)  # digit 1 = trit 0 (padding)
    digits[:, :k] = (w + 1).astype(np.uint8)
    digits = digits.reshape(n, nb, TRITS_PER_BYTE)
    codes = digits[..., 4]
    for i in range(3, -1, -1):  # Horner over the 5 digits; the largest value, 242, fits in uint8
        codes = codes * np.uint8(3) + digits[..., i]
    return codes.astype(np.uint8).tobytes()


def unpack_ternary(data, n: int, k: int) -> np.ndarray:
    """Unpack ``packed_size(n, k)`` bytes into an int8 ``[N, K]`` array with values in {-1, 0, 1}."""
    n, k = _check_dims(n, k)
    try:
        buf = np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        raise ValueError(f"packed ternary data must be bytes-like, got {type(data).__name__}") from None
    nb = row_bytes(k)
    expected = n * nb
    if buf.size != expected:
        raise ValueError(
            f"packed ternary data for a {n}x{k} matrix must be {expected} bytes "
            f"({nb} per row), got {buf.size}"
        )
    invalid = buf >= NUM_CODES
    if invalid.any():
        offset = int(np.argmax(invalid))
        raise ValueError(
            f"invalid packed ternary byte {int(buf[offset])} (0x{int(buf[offset]):02x}) at offset {offset} "
            f"(row {offset // nb}); valid bytes are 0..{NUM_CODES - 1}"
        )
    trits = _DECODE[buf].reshape(n, nb * TRITS_PER_BYTE)
    padding = trits[:, k:]
    if padding.any():
        row = int(np.argmax(padding.any(axis=1)))
        raise ValueError(
            f"row {row}: padding trits {k}..{nb * TRITS_PER_BYTE - 1} of the last byte must be 0 "
            f"(digit 1), got {padding[row].tolist()}"
        )
    return np.ascontiguousarray(trits[:, :k])
