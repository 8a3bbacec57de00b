"""The device interface: the protocol client over any byte transport (docs/protocol.md).

``Device`` wraps an object with pyserial's ``read(n)``/``write(data)`` and a read timeout: a real
port (``/dev/ttyUSB0``), the simulated board (``socket://127.0.0.1:PORT``), ``loop://`` or a
fault-injecting wrapper in the tests. Every failure is a ``DeviceError`` subclass with a message
that says what happened and what to do.
"""

from __future__ import annotations

import json
import math
import struct
import time
from dataclasses import dataclass

import numpy as np

from golden.formats import decode
from golden.image import COUNTERS, REGIONS, SCRATCH_BYTES, DeviceLayout

from . import protocol as proto

__all__ = ["Device", "DeviceError", "DeviceTimeout", "DeviceReplyError", "DeviceMismatch", "DeviceInfo",
           "open_transport"]

#: Requests the host may leave unanswered (the device holds two frames, docs/protocol.md 6).
MAX_OUTSTANDING = 2
HASH_TAG = b"mmfree-image-sha256:"
#: Restarts of a ``Device.write`` after a damaged block; the errors that cause one.
WRITE_RETRIES = 3
WRITE_RETRYABLE = (proto.ErrorCode.BAD_CRC, proto.ErrorCode.FRAMING, proto.ErrorCode.TIMEOUT)


class DeviceError(Exception):
    """Any failure talking to the device."""


class DeviceTimeout(DeviceError):
    """The device did not answer in time."""


class DeviceReplyError(DeviceError):
    """The device answered with an error code."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


class DeviceMismatch(DeviceError):
    """The device is not the one the model needs (dimensions, lanes, numerics)."""


class _BlockFailed(Exception):
    """Internal to ``Device.write``: the block at ``offset`` (``length`` bytes) needs a resend."""

    def __init__(self, offset, length, reason):
        super().__init__(reason)
        self.offset, self.length, self.reason = offset, length, reason


@dataclass(frozen=True)
class DeviceInfo:
    protocol: int
    max_payload: int
    vocab: int
    build: dict

    @property
    def model(self) -> dict:
        return self.build.get("model", {})


def open_transport(url: str, baudrate: int = 3_000_000, timeout: float = 2.0):
    """A pyserial port for ``url`` (a device path, ``socket://host:port``, ``loop://``)."""
    import serial

    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise DeviceError(f"cannot open {url}: {exc}") from None


class Device:
    """The protocol client. ``timeout`` bounds the wait for each reply (seconds)."""

    def __init__(self, transport, timeout: float = 5.0):
        self.transport = transport
        self.timeout = timeout
        self._decoder = proto.FrameDecoder()
        self._pending: list = []  # decoded bodies not yet consumed
        self._seq = 0
        self.info_cache: DeviceInfo | None = None

    # -- framing ----------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _send(self, frame: bytes) -> None:
        try:
            self.transport.write(frame)
        except Exception as exc:  # pyserial raises several types for a dead link
            raise DeviceError(f"the link failed while sending ({exc}); check the cable or restart "
                              "the board") from None

    def _receive(self, timeout: float | None = None) -> proto.Reply:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        noise = 0  # bytes received in this wait: if no frame comes of them, they were not frames
        while not self._pending:
            if time.monotonic() > deadline:
                if noise:  # something answers, but not in frames: another device or baud rate
                    raise DeviceTimeout(f"no reply from the device, only {noise} bytes that are not "
                                        "mmfree frames: is this the mmfree board, at this baud rate?")
                raise DeviceTimeout("no reply from the device: is it powered, programmed with the "
                                    "mmfree bitstream, and at this port and baud rate?")
            try:
                data = self.transport.read(4096) or self.transport.read(1)
            except Exception as exc:
                raise DeviceError(f"the link failed while receiving ({exc}); check the cable or "
                                  "restart the board") from None
            noise += len(data)
            for item in self._decoder.feed(data):
                if isinstance(item, proto.FrameError):
                    continue  # line noise: the device repeats nothing, the caller sees a timeout
                self._pending.append(item)
        body = self._pending.pop(0)
        try:
            return proto.parse_reply(body)
        except proto.FrameError as exc:
            raise DeviceError(f"malformed reply from the device: {exc}") from None

    def _expect(self, cmd: int, seq: int, timeout: float | None = None) -> proto.Reply:
        while True:
            reply = self._receive(timeout)
            if reply.seq == seq and reply.cmd == cmd:
                break
            # a stale reply (an earlier request that timed out): skip it
        if reply.is_error:
            name = reply.error.name if reply.error else f"0x{reply.status:02x}"
            raise DeviceReplyError(f"the device refused {proto.Command(cmd).name}: {name}", reply.error)
        return reply

    def _call(self, cmd, args: bytes = b"", timeout: float | None = None) -> proto.Reply:
        seq = self._next_seq()
        self._send(proto.request(cmd, seq, args))
        return self._expect(cmd, seq, timeout)

    # -- commands ---------------------------------------------------------------------------------

    def info(self) -> DeviceInfo:
        payload = self._call(proto.Command.INFO).payload
        try:
            head = proto.parse_info(payload)
            build = json.loads(head.blob.decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise DeviceMismatch(f"the device at this port does not speak the mmfree protocol ({exc})") from None
        if head.version != proto.PROTOCOL_VERSION:
            raise DeviceMismatch(f"the device speaks protocol version {head.version}, this host "
                                 f"{proto.PROTOCOL_VERSION}: rebuild the bitstream or update mmfree")
        self.info_cache = DeviceInfo(head.version, head.max_payload, head.vocab, build)
        return self.info_cache

    def write(self, addr: int, data: bytes, progress=None) -> None:
        """Write ``data`` at ``addr`` (the start of a memory word, as every region is), in frames
        of ``max_payload`` bytes, two in flight.

        A block the device received damaged (BAD_CRC, FRAMING or TIMEOUT reply) or whose reply
        was lost is sent again, with the blocks after it, up to ``WRITE_RETRIES`` times. The
        device assembles a memory word from its bytes in address order, so the resend starts at
        the word boundary at or before the damaged block: a multiple of lcm(4, lanes / 5) bytes
        (the pg word and the weight word) from ``addr``, or ``addr`` itself when the device does
        not say its lane count."""
        info = self.info_cache or self.info()
        lanes = info.model.get("lanes") if isinstance(info.model, dict) else None
        align = math.lcm(4, lanes // 5) if isinstance(lanes, int) and lanes >= 5 else None
        reported = [0]  # bytes already passed to ``progress``: a resend does not count them twice
        failures: dict = {}
        start = 0
        while True:
            try:
                return self._write_blocks(addr, data, start, info.max_payload, progress, reported)
            except _BlockFailed as exc:
                failures[exc.offset] = failures.get(exc.offset, 0) + 1
                if failures[exc.offset] > WRITE_RETRIES:
                    raise DeviceError(f"WRITE of the block at 0x{addr + exc.offset:06x}..0x"
                                      f"{addr + exc.offset + exc.length - 1:06x} failed "
                                      f"{WRITE_RETRIES + 1} times, last: {exc.reason}; check the "
                                      "cable and the baud rate") from None
                self._send(b"\x00")  # ends any partial frame the device still holds
                start = exc.offset - exc.offset % align if align else 0

    def _write_blocks(self, addr, data, start, size, progress, reported) -> None:
        outstanding = []

        def settle():
            seq0, off, n = outstanding.pop(0)
            try:
                self._expect(proto.Command.WRITE, seq0)
            except DeviceTimeout:
                raise _BlockFailed(off, n, "no reply") from None
            except DeviceReplyError as exc:
                if exc.code not in WRITE_RETRYABLE:
                    raise
                raise _BlockFailed(off, n, exc.code.name) from None
            if progress and off + n > reported[0]:
                progress(off + n - reported[0])
                reported[0] = off + n

        for off in range(start, len(data), size):
            chunk = data[off:off + size]
            seq = self._next_seq()
            self._send(proto.write(seq, addr + off, chunk, size))
            outstanding.append((seq, off, len(chunk)))
            if len(outstanding) >= MAX_OUTSTANDING:
                settle()
        while outstanding:
            settle()

    def read(self, addr: int, length: int) -> bytes:
        info = self.info_cache or self.info()
        out = bytearray()
        for off in range(0, length, info.max_payload):
            n = min(info.max_payload, length - off)
            out += self._call(proto.Command.READ, struct.pack("<IH", addr + off, n)).payload
        return bytes(out)

    def checksum(self, addr: int, length: int) -> int:
        reply = self._call(proto.Command.CHECKSUM, struct.pack("<II", addr, length),
                           timeout=self.timeout + length * 1e-5)
        return struct.unpack("<I", reply.payload)[0]

    def reset(self) -> None:
        self._call(proto.Command.RESET)

    def step(self, token: int, logits: bool = False):
        """One token step: the argmax, and the logits (float64 array of bf16 values) if asked."""
        reply = self._call(proto.Command.STEP, struct.pack("<HB", token, proto.FLAG_LOGITS if logits else 0))
        top = struct.unpack_from("<H", reply.payload)[0]
        return (top, self._logits(reply.payload[2:])) if logits else top

    def generate(self, token: int, count: int, logits: bool = False):
        """Yield ``(token, logits or None)`` as the device produces them (the device feeds each
        argmax back as the next input)."""
        seq = self._next_seq()
        self._send(proto.generate(seq, token, count, logits))
        while True:
            reply = self._receive()
            if reply.seq != seq or reply.cmd != proto.Command.GENERATE:
                continue
            if reply.is_error:
                name = reply.error.name if reply.error else f"0x{reply.status:02x}"
                raise DeviceReplyError(f"the device refused GENERATE: {name}", reply.error)
            if reply.status == proto.Status.OK:
                return
            _, tok = struct.unpack_from("<HH", reply.payload)
            yield tok, (self._logits(reply.payload[4:]) if logits else None)

    def counters(self) -> dict:
        """The activity counters (``golden.image.COUNTERS``). A counter the device leaves to the
        host is its work per step (INFO's ``per_step``) times the steps counted, modulo 2**32
        as a counter wraps: exact, since that engine's step is a fixed program."""
        raw = self._call(proto.Command.COUNTERS).payload
        values = dict(zip(COUNTERS, np.frombuffer(raw[:4 * len(COUNTERS)], "<u4").tolist()))
        return proto.with_per_step(values, (self.info_cache or self.info()).build.get("per_step"))

    @staticmethod
    def _logits(raw: bytes) -> np.ndarray:
        return decode(np.frombuffer(raw, "<u2").astype(np.int64), "bf16")

    # -- the model image ----------------------------------------------------------------------------

    def check_layout(self, layout: DeviceLayout) -> None:
        """Refuse a model whose dimensions or numerics differ from the bitstream's."""
        from golden.numerics import NUMERICS_VERSION

        info = self.info_cache or self.info()
        want, have = layout.describe(), info.model
        if isinstance(have, dict) and want != have:
            # a bigger model than the bitstream was built for: say so plainly, it is the usual case
            need = {k: (want[k], have.get(k)) for k in ("weight_words", "vocab", "d", "layers", "intermediate")
                    if isinstance(have.get(k), int) and want[k] > have[k]}
            if need:
                what = ", ".join(f"{k} {a} > {b}" for k, (a, b) in need.items())
                raise DeviceMismatch(f"the model is too large for this bitstream ({what}, at "
                                     f"{layout.lanes} lanes); build a bitstream for this model with "
                                     "`mmfree build --model DIR` (a larger FPGA may be needed)")
        if want != have:
            diff = ", ".join(f"{k}: model {want.get(k)} vs device {have.get(k)}"
                             for k in sorted(set(want) | set(have)) if want.get(k) != have.get(k))
            raise DeviceMismatch(f"the model does not match the bitstream ({diff}); build a bitstream "
                                 "for this model with `mmfree build --model DIR`")
        if info.build.get("numerics") != NUMERICS_VERSION:
            raise DeviceMismatch(f"the bitstream implements numerics v{info.build.get('numerics')}, "
                                 f"this host v{NUMERICS_VERSION}")

    def loaded_hash(self) -> str | None:
        raw = self.read(REGIONS["scratch"], SCRATCH_BYTES)
        if raw.startswith(HASH_TAG):
            return raw[len(HASH_TAG):len(HASH_TAG) + 32].hex()
        return None

    def upload(self, layout: DeviceLayout, device_model, force: bool = False, progress=None) -> bool:
        """Put the model's image on the device, verified region by region with CRC-32. Skips the
        upload (returns False) when the device already holds this image."""
        self.check_layout(layout)
        digest = layout.image_hash(device_model)
        if not force and self.loaded_hash() == digest:
            return False
        self.write(REGIONS["scratch"], bytes(SCRATCH_BYTES))  # no valid image while uploading
        image = layout.image(device_model)
        for region, data in image.items():
            self.write(REGIONS[region], data, progress)
            crc = self.checksum(REGIONS[region], len(data))
            if crc != proto.crc32(data):
                raise DeviceError(f"the {region} region failed its CRC check after upload "
                                  f"(device 0x{crc:08x}, host 0x{proto.crc32(data):08x}); retry the upload")
        self.write(REGIONS["scratch"], HASH_TAG + bytes.fromhex(digest))
        return True
