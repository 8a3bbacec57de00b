"""The host-side codec (host.protocol): CRCs against published check values and a bitwise
reference, COBS against published examples, frame round trips, error classification, the
incremental decoder's resynchronisation, request layouts, and docs/protocol.md's worked examples."""

import random
import re
import struct
from pathlib import Path

import pytest

from host import protocol as p
from host.protocol import Command, ErrorCode, FrameError


def crc16_bitwise(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE one bit at a time, straight from the definition."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def crc32_bitwise(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def test_crc_check_values():
    # The catalogue check values (CRC RevEng): CRC-16/IBM-3740 a.k.a. CCITT-FALSE, CRC-32/ISO-HDLC.
    assert p.crc16(b"123456789") == 0x29B1
    assert p.crc32(b"123456789") == 0xCBF43926
    assert p.crc16(b"") == 0xFFFF and p.crc32(b"") == 0


def test_crc_against_bitwise_reference():
    rng = random.Random(5)
    for n in list(range(12)) + [100, 1024]:
        data = rng.randbytes(n)
        assert p.crc16(data) == crc16_bitwise(data)
        assert p.crc32(data) == crc32_bitwise(data)


def test_crc16_residue_is_zero_with_crc_appended_msb_first():
    rng = random.Random(6)
    for n in range(0, 40):
        data = rng.randbytes(n)
        assert crc16_bitwise(data + struct.pack(">H", crc16_bitwise(data))) == 0


# Examples of the COBS paper / Wikipedia article, delimiter included in the encoded form.
RUN_254 = bytes(range(1, 255))
COBS_EXAMPLES = [
    (b"\x00", b"\x01\x01\x00"),
    (b"\x00\x00", b"\x01\x01\x01\x00"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01\x00"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33\x00"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44\x00"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01\x00"),
]
# The article encodes a final 254-byte run without an empty trailing group; both forms decode.
COBS_DECODE_ONLY = [
    (RUN_254, b"\xff" + RUN_254 + b"\x00"),
    (b"\x00" + RUN_254, b"\x01\xff" + RUN_254 + b"\x00"),
    (bytes(range(1, 256)), b"\xff" + RUN_254 + b"\x02\xff\x00"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01\x00"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01\x00"),
]


@pytest.mark.parametrize("raw,enc", COBS_EXAMPLES)
def test_cobs_published_examples(raw, enc):
    assert p.cobs_encode(raw) + b"\x00" == enc
    assert p.cobs_decode(enc[:-1]) == raw


@pytest.mark.parametrize("raw,enc", COBS_DECODE_ONLY)
def test_cobs_decodes_published_long_runs(raw, enc):
    assert p.cobs_decode(enc[:-1]) == raw
    assert p.cobs_decode(p.cobs_encode(raw)) == raw


def test_cobs_round_trip_and_overhead_bound():
    rng = random.Random(7)
    for _ in range(300):
        n = rng.choice([0, 1, 2, 253, 254, 255, 508, 1024, rng.randrange(2000)])
        raw = bytes(rng.choice([0, 0xFF, rng.randrange(256)]) for _ in range(n))
        enc = p.cobs_encode(raw)
        assert 0 not in enc
        assert len(enc) <= n + n // 254 + 1
        assert p.cobs_decode(enc) == raw


def test_frame_round_trip_and_errors():
    body = bytes([Command.READ, 7]) + struct.pack("<IH", 0x1234, 16)
    wire = p.encode_frame(body)
    assert wire[-1] == 0 and 0 not in wire[:-1]
    assert p.decode_frame(wire[:-1]) == body
    raw = p.cobs_decode(wire[:-1])
    assert raw[-2:] == struct.pack(">H", crc16_bitwise(body))

    corrupt = bytearray(raw)
    corrupt[3] ^= 0x10
    with pytest.raises(FrameError) as e:
        p.decode_frame(p.cobs_encode(bytes(corrupt)))
    assert e.value.code == ErrorCode.BAD_CRC and e.value.partial[:2] == body[:2]

    with pytest.raises(FrameError) as e:
        p.decode_frame(wire[:-3])  # cut inside the last group
    assert e.value.code == ErrorCode.FRAMING

    with pytest.raises(FrameError) as e:
        p.decode_frame(p.cobs_encode(b"\x01\x02\x03"))
    assert e.value.code == ErrorCode.FRAMING

    with pytest.raises(FrameError) as e:
        p.decode_frame(wire[:-1], max_len=len(body) + 1)
    assert e.value.code == ErrorCode.BAD_LENGTH
    assert p.decode_frame(wire[:-1], max_len=len(body) + 2) == body


def test_streaming_prefix_of_a_cut_frame():
    # Groups "03 11 22" (zero implied) then "05 33 44 ..." cut after 33: the zero is out, and 33.
    assert p.cobs_decode_prefix(b"\x03\x11\x22\x05\x33") == b"\x11\x22\x00\x33"
    # A complete group at the cut: its implied zero is not produced yet.
    assert p.cobs_decode_prefix(b"\x03\x11\x22") == b"\x11\x22"


def test_incremental_decoder_resynchronises():
    rng = random.Random(8)
    bodies = [bytes([rng.randrange(1, 10), k]) + rng.randbytes(rng.randrange(0, 40)) for k in range(50)]
    stream = bytearray()
    expected = []
    for body in bodies:
        if rng.random() < 0.3:  # garbage that ends in a delimiter: exactly one error
            stream += bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 20))) + b"\x00"
            expected.append("error")
        if rng.random() < 0.2:
            stream += b"\x00\x00"  # empty frames: nothing
        stream += p.encode_frame(body)
        expected.append(body)
    dec = p.FrameDecoder()
    got = []
    k = 0
    while k < len(stream):
        n = rng.randrange(1, 30)
        got += dec.feed(stream[k:k + n])
        k += n
    assert [g if isinstance(g, bytes) else "error" for g in got] == expected


def test_incremental_decoder_bounds_long_frames():
    dec = p.FrameDecoder(max_encoded=64)
    out = dec.feed(b"\x05\x01\x07" + b"\x09" * 1000 + b"\x00" + p.info(3))
    assert isinstance(out[0], FrameError) and out[0].code == ErrorCode.BAD_LENGTH
    assert out[1] == bytes([Command.INFO, 3])


def test_request_layouts():
    assert p.decode_frame(p.info(5)[:-1]) == b"\x01\x05"
    assert p.decode_frame(p.write(6, 0x10203, b"\xaa\x00")[:-1]) == b"\x02\x06\x03\x02\x01\x00\xaa\x00"
    assert p.decode_frame(p.read(7, 0x40, 300)[:-1]) == b"\x03\x07\x40\x00\x00\x00\x2c\x01"
    assert p.decode_frame(p.checksum(8, 1, 0x10000)[:-1]) == b"\x04\x08\x01\x00\x00\x00\x00\x00\x01\x00"
    assert p.decode_frame(p.reset(9)[:-1]) == b"\x05\x09"
    assert p.decode_frame(p.step(10, 0x1FF, logits=True)[:-1]) == b"\x06\x0a\xff\x01\x01"
    assert p.decode_frame(p.generate(11, 65, 3)[:-1]) == b"\x07\x0b\x41\x00\x03\x00\x00"
    assert p.decode_frame(p.stop(12)[:-1]) == b"\x08\x0c"
    assert p.decode_frame(p.counters(13)[:-1]) == b"\x09\x0d"
    with pytest.raises(ValueError):
        p.write(0, 0, b"")
    with pytest.raises(ValueError):
        p.write(0, 0, bytes(17), max_payload=16)
    with pytest.raises(ValueError):
        p.info(256)


def test_request_errors():
    body = lambda wire: p.decode_frame(wire[:-1])  # noqa: E731
    assert p.request_error(body(p.info(1))) is None
    assert p.request_error(b"\x00\x01") == ErrorCode.UNKNOWN_COMMAND
    assert p.request_error(b"\x0a\x01") == ErrorCode.UNKNOWN_COMMAND
    assert p.request_error(b"\x01\x01\x00") == ErrorCode.BAD_LENGTH
    assert p.request_error(b"\x02\x01\x00\x00\x00\x00") == ErrorCode.BAD_LENGTH  # WRITE without data
    assert p.request_error(body(p.write(1, 0, bytes(16), 16)), max_payload=16) is None
    assert p.request_error(b"\x02\x01" + bytes(4 + 17), max_payload=16) == ErrorCode.BAD_LENGTH
    assert p.request_error(body(p.write(1, p.ADDR_SPACE - 2, b"ab"))) is None
    assert p.request_error(body(p.write(1, p.ADDR_SPACE - 1, b"ab"))) == ErrorCode.ADDRESS
    assert p.request_error(body(p.read(1, 0, 0))) == ErrorCode.BAD_LENGTH
    assert p.request_error(body(p.read(1, 0, 17)), max_payload=16) == ErrorCode.BAD_LENGTH
    assert p.request_error(body(p.read(1, 0xFFFFFFFF, 1))) == ErrorCode.ADDRESS
    assert p.request_error(body(p.checksum(1, 0, p.ADDR_SPACE))) is None
    assert p.request_error(body(p.checksum(1, 1, p.ADDR_SPACE))) == ErrorCode.ADDRESS
    assert p.request_error(body(p.checksum(1, 5, 0))) is None
    assert p.request_error(body(p.step(1, 3))[:-1]) == ErrorCode.BAD_LENGTH


def test_reply_parse_and_info():
    r = p.parse_reply(b"\x06\x02\x00\x41\x00")
    assert (r.cmd, r.seq, r.status, r.payload, r.is_error) == (6, 2, 0, b"\x41\x00", False)
    e = p.parse_reply(b"\x00\x00\x81")
    assert e.is_error and e.error == ErrorCode.BAD_CRC
    wire = p.encode_reply(p.Reply(Command.INFO, 1, 0, b"\x01\x00\x04\x00\x01xyz"))
    info = p.parse_info(p.parse_reply(p.decode_frame(wire[:-1])).payload)
    assert info == p.Info(1, 1024, 256, b"xyz")


def _doc_examples():
    text = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    return re.findall(r"<!-- example: (.*?) -->\s*```\s*\n(.*?)```", text, re.S)


def test_docs_worked_examples_match_the_codec():
    """Each example in docs/protocol.md lists the body and the wire bytes; both must agree with
    the codec (so the document cannot drift from the code)."""
    examples = _doc_examples()
    assert len(examples) >= 2
    for name, block in examples:
        fields = dict(re.findall(r"^(\w+):\s*([0-9a-f ]+)$", block, re.M))
        body, crc, wire = (bytes.fromhex(fields[k]) for k in ("body", "crc", "wire"))
        assert struct.pack(">H", crc16_bitwise(body)) == crc, name
        assert p.encode_frame(body) == wire, name
        assert p.decode_frame(wire[:-1]) == body, name


def test_docs_tables_match_the_enums():
    """The command and error tables of docs/protocol.md list exactly the codec's codes."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    rows = dict((name, int(code, 16)) for code, name in re.findall(r"^\| (0x[0-9A-F]{2}) \| (\w+) \|", text, re.M))
    assert {n: c for n, c in rows.items() if n in Command.__members__} == {c.name: c.value for c in Command}
    assert {n: c for n, c in rows.items() if n in ErrorCode.__members__} == {e.name: e.value for e in ErrorCode}
    assert len(rows) == len(Command) + len(ErrorCode)
