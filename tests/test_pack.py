"""Packed ternary weight format (golden/pack.py): 5 trits per byte, row-major, rows byte-aligned."""

import time

import numpy as np
import pytest

from golden.pack import (
    NUM_CODES,
    decode_table,
    pack_ternary,
    packed_size,
    row_bytes,
    unpack_ternary,
)


def reference_pack(w):
    """Independent scalar reference: digit by digit, straight from the format's definition."""
    n_rows, k = len(w), len(w[0]) if len(w) else 0
    out = bytearray()
    for n in range(n_rows):
        nb = (k + 4) // 5
        for b in range(nb):
            value = 0
            for i in range(5):
                j = 5 * b + i
                t = int(w[n][j]) if j < k else 0
                value += (t + 1) * 3**i
            out.append(value)
    return bytes(out)


def reference_unpack(data, n_rows, k):
    nb = (k + 4) // 5
    rows = []
    for n in range(n_rows):
        row = []
        for j in range(k):
            byte = data[n * nb + j // 5]
            row.append((byte // 3 ** (j % 5)) % 3 - 1)
        rows.append(row)
    return rows


def random_ternary(rng, n, k):
    return rng.integers(-1, 2, size=(n, k)).astype(np.int8)


@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (1, 5), (7, 4), (4, 6), (5, 10), (16, 192), (9, 512), (2, 13), (0, 7), (3, 0)])
def test_round_trip(shape):
    rng = np.random.default_rng(sum(shape) + 1)
    w = random_ternary(rng, *shape)
    data = pack_ternary(w)
    assert isinstance(data, bytes)
    assert len(data) == packed_size(*shape) == shape[0] * ((shape[1] + 4) // 5)
    back = unpack_ternary(data, *shape)
    assert back.dtype == np.int8 and back.shape == shape
    np.testing.assert_array_equal(back, w)


def test_round_trip_accepts_other_dtypes():
    rng = np.random.default_rng(5)
    w = random_ternary(rng, 6, 11)
    for dtype in (np.int64, np.int32, np.float32, np.float64):
        assert pack_ternary(w.astype(dtype)) == pack_ternary(w)
    assert unpack_ternary(bytearray(pack_ternary(w)), 6, 11).tolist() == w.tolist()
    assert unpack_ternary(memoryview(pack_ternary(w)), 6, 11).tolist() == w.tolist()


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (5, 10), (4, 23)])
def test_matches_scalar_reference(shape):
    rng = np.random.default_rng(11 * shape[1] + shape[0])
    w = random_ternary(rng, *shape)
    expected = reference_pack(w.tolist())
    assert pack_ternary(w) == expected
    assert unpack_ternary(expected, *shape).tolist() == reference_unpack(expected, *shape)


def test_known_bytes():
    # trit 0 is the least significant base-3 digit; padding trits are digit 1
    assert pack_ternary(np.array([[-1, -1, -1, -1, -1]])) == bytes([0])
    assert pack_ternary(np.array([[0, 0, 0, 0, 0]])) == bytes([121])
    assert pack_ternary(np.array([[1, 1, 1, 1, 1]])) == bytes([242])
    assert pack_ternary(np.array([[1, -1, -1, -1, -1]])) == bytes([2])
    assert pack_ternary(np.array([[-1, -1, -1, -1, 1]])) == bytes([2 * 81])
    assert pack_ternary(np.array([[-1]])) == bytes([0 + 1 * 3 + 1 * 9 + 1 * 27 + 1 * 81])
    assert pack_ternary(np.array([[1, 0, -1, 1, 0, -1]])) == bytes([2 + 3 + 0 + 2 * 27 + 81, 0 + 120])


def test_trit_position_of_row_and_column():
    n, k = 3, 12
    nb = row_bytes(k)
    for row in range(n):
        for j in range(k):
            w = np.zeros((n, k), dtype=np.int8)
            w[row, j] = 1
            data = pack_ternary(w)
            expected = [121] * (n * nb)  # 121: five zero trits (padding included)
            expected[row * nb + j // 5] += 3 ** (j % 5)
            assert list(data) == expected


def test_decode_table_matches_enumeration():
    table = decode_table()
    assert table.shape == (256, 5) and table.dtype == np.int8
    seen = set()
    for code in range(NUM_CODES):
        trits = [(code // 3**i) % 3 - 1 for i in range(5)]
        assert table[code].tolist() == trits
        seen.add(tuple(trits))
    assert len(seen) == 3**5  # every trit group has exactly one code
    assert not table[NUM_CODES:].any()
    table[0, 0] = 99  # a copy: the ROM used by unpack is not affected
    assert decode_table()[0, 0] == -1


def test_decode_table_inverts_pack():
    table = decode_table()
    # the 243 table rows, laid out as one 243x5 matrix, pack to the bytes 0..242 in order
    assert pack_ternary(table[:NUM_CODES]) == bytes(range(NUM_CODES))


def test_density():
    for n, k in [(1, 5), (8, 20), (192, 195), (64, 515)]:
        w = np.zeros((n, k), dtype=np.int8)
        assert len(pack_ternary(w)) * 8 / w.size == 8 / 5
    # with padding it is above 1.6 bits/weight
    assert len(pack_ternary(np.zeros((192, 192), dtype=np.int8))) * 8 / (192 * 192) > 1.6


def test_pack_is_fast():
    rng = np.random.default_rng(0)
    w = random_ternary(rng, 1024, 1344)  # ~1.4M weights, the size of the ECP5 model
    start = time.perf_counter()
    data = pack_ternary(w)
    back = unpack_ternary(data, *w.shape)
    elapsed = time.perf_counter() - start
    np.testing.assert_array_equal(back, w)
    assert elapsed < 1.0, f"pack+unpack of {w.size} weights took {elapsed:.2f} s"


# --- error paths -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [2, -2, 0.5, np.nan, 127])
def test_pack_rejects_values_outside_ternary(bad):
    w = np.zeros((3, 4), dtype=np.float64)
    w[1, 2] = bad
    with pytest.raises(ValueError, match=r"\{-1, 0, 1\}.*w_t\[1, 2\]"):
        pack_ternary(w)


def test_pack_rejects_int_out_of_range():
    w = np.zeros((2, 3), dtype=np.int8)
    w[0, 1] = -128
    with pytest.raises(ValueError, match=r"w_t\[0, 1\] = -128"):
        pack_ternary(w)


@pytest.mark.parametrize("bad", [np.zeros(5, dtype=np.int8), np.zeros((2, 2, 2), dtype=np.int8)])
def test_pack_rejects_wrong_rank(bad):
    with pytest.raises(ValueError, match="2-D"):
        pack_ternary(bad)


def test_pack_rejects_bool_and_object():
    with pytest.raises(ValueError, match="dtype"):
        pack_ternary(np.zeros((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="dtype"):
        pack_ternary(np.array([["a", "b"]]))


@pytest.mark.parametrize("delta", [-1, 1, 5])
def test_unpack_rejects_wrong_length(delta):
    data = pack_ternary(np.zeros((4, 7), dtype=np.int8))  # 4 rows x 2 bytes
    data = data[:delta] if delta < 0 else data + bytes([121] * delta)
    with pytest.raises(ValueError, match=rf"4x7 matrix must be 8 bytes \(2 per row\), got {8 + delta}"):
        unpack_ternary(data, 4, 7)


@pytest.mark.parametrize("value", [243, 250, 255])
def test_unpack_rejects_invalid_byte(value):
    data = bytearray(pack_ternary(np.zeros((3, 10), dtype=np.int8)))
    data[3] = value
    data[5] = 255  # only the first offending offset is named
    with pytest.raises(ValueError, match=rf"invalid packed ternary byte {value} .* at offset 3 \(row 1\)"):
        unpack_ternary(bytes(data), 3, 10)


def test_unpack_rejects_nonzero_padding():
    w = np.zeros((4, 7), dtype=np.int8)
    data = bytearray(pack_ternary(w))
    # row 2, byte 1 holds trits 5, 6 and padding trits 7, 8, 9; set trit 8 (digit 3) to +1
    data[2 * 2 + 1] = 121 + 27
    with pytest.raises(ValueError, match=r"row 2: padding trits"):
        unpack_ternary(bytes(data), 4, 7)
    # the same byte is valid for a 4x10 matrix, where that digit is a real trit
    assert unpack_ternary(bytes(data), 4, 10)[2, 8] == 1


def test_unpack_rejects_bad_dims_and_data():
    with pytest.raises(ValueError, match="non-negative integer"):
        unpack_ternary(b"", -1, 5)
    with pytest.raises(ValueError, match="non-negative integer"):
        unpack_ternary(b"", 2, 2.5)
    with pytest.raises(ValueError, match="bytes-like"):
        unpack_ternary([1, 2, 3], 1, 15)
