"""The serial link's frame format and commands: the host-side codec (docs/protocol.md).

Pure Python (standard library only). This module is the reference for the link: the host client
uses it to talk to a board, and the gateware tests use it as the independent model of what the
device (``hw.link.Link``) must send and accept.

A frame on the wire is ``COBS(body + CRC-16) + 0x00``:

* ``body`` of a request: ``cmd, seq, args...``; of a reply: ``cmd, seq, status, payload...``;
* the CRC-16/CCITT-FALSE of ``body`` is appended most significant byte first, so the CRC of
  ``body + crc`` is 0 (the check the device makes);
* COBS removes every 0x00 from the frame, so 0x00 marks frame ends and nothing else.

Multi-byte fields inside the body are little-endian.
"""

from __future__ import annotations

import binascii
import enum
import struct
import zlib
from dataclasses import dataclass

__all__ = [
    "ADDR_SPACE", "DELIMITER", "PROTOCOL_VERSION", "DEFAULT_MAX_PAYLOAD", "INFO_HEADER_LEN",
    "Command", "Status", "ErrorCode", "FrameError", "Reply",
    "crc16", "crc32", "cobs_encode", "cobs_decode", "cobs_decode_prefix",
    "encode_frame", "decode_frame", "FrameDecoder", "max_request_len",
    "request", "info", "write", "read", "checksum", "reset", "step", "generate", "stop", "counters",
    "parse_reply", "encode_reply", "request_error", "parse_info", "Info", "with_per_step",
]

DELIMITER = 0x00
PROTOCOL_VERSION = 1
DEFAULT_MAX_PAYLOAD = 1024
ADDR_SPACE = 1 << 24  # the engine port's byte addresses (hw.port.ADDR_WIDTH)
INFO_HEADER_LEN = 5   # version u8, max_payload u16, vocab u16; the engine's blob follows
CRC_LEN = 2


class Command(enum.IntEnum):
    INFO = 0x01
    WRITE = 0x02
    READ = 0x03
    CHECKSUM = 0x04
    RESET = 0x05
    STEP = 0x06
    GENERATE = 0x07
    STOP = 0x08
    COUNTERS = 0x09


class Status(enum.IntEnum):
    """Reply status byte: OK ends a command's replies, TOKEN is one streamed GENERATE token."""
    OK = 0x00
    TOKEN = 0x01


class ErrorCode(enum.IntEnum):
    """Reply status byte of an error reply (bit 7 set)."""
    BAD_CRC = 0x81          # the frame's CRC-16 does not match
    FRAMING = 0x82          # malformed COBS, or fewer than 4 decoded bytes
    UNKNOWN_COMMAND = 0x83
    BAD_LENGTH = 0x84       # arguments of the wrong length, a length argument out of range, frame too long
    TIMEOUT = 0x85          # the line went idle in the middle of a frame
    ADDRESS = 0x86          # the address range leaves the 24-bit address space
    BUSY = 0x87             # the frame arrived while both frame buffers were full; it was dropped


#: Argument bytes of each fixed-size request (WRITE: 4 + 1..max_payload).
ARG_LEN = {
    Command.INFO: 0, Command.READ: 6, Command.CHECKSUM: 8, Command.RESET: 0, Command.STEP: 3,
    Command.GENERATE: 5, Command.STOP: 0, Command.COUNTERS: 0,
}

FLAG_LOGITS = 0x01


class FrameError(Exception):
    """A frame that cannot be accepted; ``code`` is the error the device replies with, ``partial``
    the bytes a streaming decoder had produced (the device echoes the first two)."""

    def __init__(self, code: ErrorCode, message: str, partial: bytes = b""):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.partial = partial


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, no final XOR."""
    return binascii.crc_hqx(data, crc)


def crc32(data: bytes) -> int:
    """CRC-32 (ISO-HDLC, as zlib): poly 0x04C11DB7 reflected, init and final XOR 0xFFFFFFFF."""
    return zlib.crc32(data) & 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytes:
    """COBS without the delimiter. Canonical form: a run of 254 nonzero bytes is one 0xFF group,
    and the last group is always written (``b"\\x01"`` when it is empty)."""
    out = bytearray()
    for part in bytes(data).split(b"\x00"):
        while len(part) >= 254:
            out.append(0xFF)
            out += part[:254]
            part = part[254:]
        out.append(len(part) + 1)
        out += part
    return bytes(out)


def _cobs_walk(enc: bytes) -> tuple[bytes, bool]:
    """Decode as the device does, byte by byte: the implied zero after a group (code < 0xFF) is
    only produced when another group follows. Returns (decoded bytes, well formed)."""
    out = bytearray()
    i, n = 0, len(enc)
    while i < n:
        code = enc[i]
        if code == 0:
            raise ValueError("a COBS frame contains no 0x00 (it is the delimiter)")
        end = i + code
        out += enc[i + 1:min(end, n)]
        if end > n:
            return bytes(out), False
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out), True


def cobs_decode(enc: bytes) -> bytes:
    """Inverse of ``cobs_encode`` (accepts any valid COBS, canonical or not); raises
    ``FrameError(FRAMING)`` on a truncated group."""
    out, ok = _cobs_walk(enc)
    if not ok:
        raise FrameError(ErrorCode.FRAMING, "truncated COBS group", out)
    return out


def cobs_decode_prefix(enc: bytes) -> bytes:
    """The bytes a streaming decoder has produced after ``enc`` (possibly a cut-off frame)."""
    return _cobs_walk(enc)[0]


def encode_frame(body: bytes) -> bytes:
    """``body`` -> wire bytes, delimiter included."""
    return cobs_encode(bytes(body) + struct.pack(">H", crc16(body))) + b"\x00"


def decode_frame(enc: bytes, max_len: int | None = None) -> bytes:
    """Wire bytes of one frame (without the delimiter, not empty) -> body. Raises ``FrameError``
    with the code the device gives, checked in the device's order: COBS, at least 4 bytes,
    at most ``max_len`` decoded bytes (CRC included), CRC."""
    data = cobs_decode(enc)
    if len(data) < 4:
        raise FrameError(ErrorCode.FRAMING, f"{len(data)} decoded bytes, the minimum is 4", data)
    if max_len is not None and len(data) > max_len:
        raise FrameError(ErrorCode.BAD_LENGTH, f"{len(data)} decoded bytes, the maximum is {max_len}",
                         data)
    if crc16(data) != 0:
        raise FrameError(ErrorCode.BAD_CRC, "CRC-16 mismatch", data)
    return data[:-CRC_LEN]


def max_request_len(max_payload: int = DEFAULT_MAX_PAYLOAD) -> int:
    """The longest request the device takes, in decoded bytes: a full WRITE with its CRC."""
    return 2 + 4 + max_payload + CRC_LEN


class FrameDecoder:
    """Incremental decoder: ``feed`` bytes in any pieces, get back a list of bodies (``bytes``)
    and ``FrameError``s in arrival order. Resynchronises at every 0x00; empty frames are skipped;
    a frame longer than ``max_encoded`` wire bytes is discarded (``BAD_LENGTH``) without being
    buffered."""

    def __init__(self, max_encoded: int = 1 << 20):
        self.max_encoded = max_encoded
        self._buf = bytearray()
        self._overlong = False

    def feed(self, data: bytes) -> list:
        results = []
        for piece in _split_keep(bytes(data)):
            if piece == b"\x00":
                if self._overlong:
                    results.append(FrameError(ErrorCode.BAD_LENGTH, "frame too long",
                                              cobs_decode_prefix(bytes(self._buf))))
                elif self._buf:
                    try:
                        results.append(decode_frame(bytes(self._buf)))
                    except FrameError as exc:
                        results.append(exc)
                self._buf.clear()
                self._overlong = False
            elif not self._overlong:
                self._buf += piece
                if len(self._buf) > self.max_encoded:
                    self._overlong = True
                    del self._buf[3:]  # enough wire bytes for the command and sequence bytes
        return results


def _split_keep(data: bytes):
    """Split ``data`` into runs of nonzero bytes and single 0x00s, in order."""
    start = 0
    while True:
        k = data.find(b"\x00", start)
        if k < 0:
            if start < len(data):
                yield data[start:]
            return
        if k > start:
            yield data[start:k]
        yield b"\x00"
        start = k + 1


# --- requests --------------------------------------------------------------------------------

def _check_seq(seq: int) -> int:
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"seq must be 0..255, got {seq}")
    return seq


def request(cmd: int, seq: int, args: bytes = b"") -> bytes:
    """Wire bytes of a request. (Sending a leading 0x00 too is harmless and ends any garbage.)"""
    return encode_frame(bytes([cmd, _check_seq(seq)]) + bytes(args))


def info(seq: int) -> bytes:
    return request(Command.INFO, seq)


def write(seq: int, addr: int, data: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    if not 1 <= len(data) <= max_payload:
        raise ValueError(f"WRITE carries 1..{max_payload} bytes, got {len(data)}")
    return request(Command.WRITE, seq, struct.pack("<I", addr) + bytes(data))


def read(seq: int, addr: int, length: int) -> bytes:
    return request(Command.READ, seq, struct.pack("<IH", addr, length))


def checksum(seq: int, addr: int, length: int) -> bytes:
    return request(Command.CHECKSUM, seq, struct.pack("<II", addr, length))


def reset(seq: int) -> bytes:
    return request(Command.RESET, seq)


def step(seq: int, token: int, logits: bool = False) -> bytes:
    return request(Command.STEP, seq, struct.pack("<HB", token, FLAG_LOGITS if logits else 0))


def generate(seq: int, token: int, count: int, logits: bool = False) -> bytes:
    return request(Command.GENERATE, seq, struct.pack("<HHB", token, count, FLAG_LOGITS if logits else 0))


def stop(seq: int) -> bytes:
    return request(Command.STOP, seq)


def counters(seq: int) -> bytes:
    return request(Command.COUNTERS, seq)


def request_error(body: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> ErrorCode | None:
    """The error a device gives a request ``body`` that passed the frame checks, or None. Checked
    in the device's order: command, argument length, length argument, address range."""
    cmd, args = body[0], body[2:]
    try:
        cmd = Command(cmd)
    except ValueError:
        return ErrorCode.UNKNOWN_COMMAND
    if cmd == Command.WRITE:
        if not 5 <= len(args) <= 4 + max_payload:
            return ErrorCode.BAD_LENGTH
        addr, = struct.unpack_from("<I", args)
        length = len(args) - 4
    else:
        if len(args) != ARG_LEN[cmd]:
            return ErrorCode.BAD_LENGTH
        if cmd == Command.READ:
            addr, length = struct.unpack("<IH", args)
            if not 1 <= length <= max_payload:
                return ErrorCode.BAD_LENGTH
        elif cmd == Command.CHECKSUM:
            addr, length = struct.unpack("<II", args)
        else:
            return None
    if addr + length > ADDR_SPACE:
        return ErrorCode.ADDRESS
    return None


# --- replies ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    cmd: int
    seq: int
    status: int
    payload: bytes = b""

    @property
    def is_error(self) -> bool:
        return bool(self.status & 0x80)

    @property
    def error(self) -> ErrorCode | None:
        return ErrorCode(self.status) if self.is_error and self.status in ErrorCode._value2member_map_ else None


def parse_reply(body: bytes) -> Reply:
    if len(body) < 3:
        raise FrameError(ErrorCode.FRAMING, f"a reply has at least 3 bytes, got {len(body)}", body)
    return Reply(body[0], body[1], body[2], bytes(body[3:]))


def encode_reply(reply: Reply) -> bytes:
    """Wire bytes of a reply (what a device sends; used by tests and simulated devices)."""
    return encode_frame(bytes([reply.cmd, reply.seq, reply.status]) + reply.payload)


@dataclass(frozen=True)
class Info:
    version: int
    max_payload: int
    vocab: int
    blob: bytes


def parse_info(payload: bytes) -> Info:
    if len(payload) < INFO_HEADER_LEN:
        raise ValueError(f"INFO payload has {len(payload)} bytes, the header alone is {INFO_HEADER_LEN}")
    version, max_payload, vocab = struct.unpack_from("<BHH", payload)
    return Info(version, max_payload, vocab, bytes(payload[INFO_HEADER_LEN:]))


def with_per_step(counters: dict, per_step: dict | None) -> dict:
    """``counters`` (name to value) with those an engine leaves uncounted filled in: a step's
    fixed work (``per_step``, from the engine's INFO) times the steps counted, modulo 2**32 as a
    counter wraps (docs/protocol.md, section 4.8)."""
    per_step = per_step or {}
    if not isinstance(per_step, dict) or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in per_step.values()):
        raise ValueError(f"the device's INFO has a malformed per_step ({per_step!r}): it should map "
                         "counter names to non-negative integers; is this an mmfree bitstream?")
    out = dict(counters)
    for name, work in per_step.items():
        if name in out:
            out[name] = out["steps"] * work % (1 << 32)
    return out
