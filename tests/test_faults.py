"""The protocol client under a damaged link: garbage, dropped bytes, bit flips, a CRC error in the
middle of an upload, a device reset mid-generation, the cable pulled. The client must retry a
damaged WRITE and otherwise report a ``DeviceError`` with a clear message, never a traceback
from somewhere else."""

import json
import struct
import time

import pytest
import serial

from golden.image import COUNTERS
from host import protocol as proto
from host.device import WRITE_RETRIES, Device, DeviceError, DeviceTimeout
from host.faults import FaultyTransport

MAX_PAYLOAD = 64
WORD = 3  # bytes per memory word: block boundaries (64 bytes) cut words in two


class StandIn:
    """A Python device that speaks the protocol (docs/protocol.md) as a pyserial-like object.

    Memory words of ``WORD`` bytes are assembled as the engine does: bytes below a word's last
    wait in a positional register, the word is stored when its last byte arrives. ``bad_writes``
    lists the WRITE frames (0-based, in arrival order) it treats as arrived with a CRC error;
    ``reset_after`` makes it lose power after that many GENERATE tokens."""

    def __init__(self, bad_writes=(), reset_after=None):
        self.timeout = 0.001
        self.out = bytearray()
        self.decoder = proto.FrameDecoder()
        self.memory = {}
        self.pending = bytearray(WORD)
        self.bad_writes, self.writes_seen = set(bad_writes), 0
        self.reset_after = reset_after
        self.dead = False
        self.counters = {name: 0 for name in COUNTERS}

    # pyserial side
    def write(self, data):
        if not self.dead:
            for item in self.decoder.feed(bytes(data)):
                self.handle(item)
        return len(data)

    def read(self, size=1):
        if not self.out:
            time.sleep(self.timeout)
            return b""
        data = bytes(self.out[:size])
        del self.out[:size]
        return data

    def reset_input_buffer(self):
        pass

    def close(self):
        pass

    # device side
    def reply(self, cmd, seq, status, payload=b""):
        self.out += proto.encode_reply(proto.Reply(cmd, seq, status, payload))

    def handle(self, item):
        if isinstance(item, proto.FrameError):
            head = item.partial + b"\0\0"
            return self.reply(head[0], head[1], item.code)
        cmd, seq, args = item[0], item[1], item[2:]
        if cmd == proto.Command.WRITE:
            k = self.writes_seen
            self.writes_seen += 1
            if k in self.bad_writes:
                return self.reply(cmd, seq, proto.ErrorCode.BAD_CRC)
        error = proto.request_error(item, MAX_PAYLOAD)
        if error is not None:
            return self.reply(cmd, seq, error)
        if cmd == proto.Command.INFO:
            blob = json.dumps({"model": {"lanes": 5 * WORD}, "numerics": 1}).encode()
            return self.reply(cmd, seq, 0, struct.pack("<BHH", proto.PROTOCOL_VERSION, MAX_PAYLOAD, 100) + blob)
        if cmd == proto.Command.WRITE:
            addr, = struct.unpack_from("<I", args)
            for i, byte in enumerate(args[4:]):
                a = addr + i
                if a % WORD < WORD - 1:
                    self.pending[a % WORD] = byte
                else:
                    for j in range(WORD - 1):
                        self.memory[a - WORD + 1 + j] = self.pending[j]
                    self.memory[a] = byte
            return self.reply(cmd, seq, 0)
        if cmd == proto.Command.READ:
            addr, n = struct.unpack("<IH", args)
            return self.reply(cmd, seq, 0, bytes(self.memory.get(addr + i, 0) for i in range(n)))
        if cmd == proto.Command.COUNTERS:
            return self.reply(cmd, seq, 0, struct.pack(f"<{len(COUNTERS)}I", *self.counters.values()))
        if cmd == proto.Command.GENERATE:
            token, count, _ = struct.unpack("<HHB", args)
            for i in range(count):
                if self.reset_after is not None and i == self.reset_after:
                    self.dead = True  # power glitch: no more replies, state gone
                    self.memory.clear()
                    return
                token = (token * 7 + 1) % 100
                self.counters["steps"] += 1
                self.reply(cmd, seq, proto.Status.TOKEN, struct.pack("<HH", i, token))
            return self.reply(cmd, seq, 0, struct.pack("<HB", count, 0))
        return self.reply(cmd, seq, 0)


DATA = bytes((i * 37 + 11) % 251 for i in range(WORD * 200))  # 600 bytes: 10 blocks


def test_clean_link():
    dev = StandIn()
    client = Device(dev, timeout=0.2)
    client.write(0x300, DATA)
    assert client.read(0x300, len(DATA)) == DATA
    assert list(client.generate(5, 3)) == [(36, None), (53, None), (72, None)]
    assert client.counters()["steps"] == 3


def test_crc_error_mid_upload_is_retried():
    dev = StandIn(bad_writes={4})  # the 5th WRITE frame arrives damaged once
    done = []
    Device(dev, timeout=0.2).write(0x300, DATA, progress=done.append)
    # the resend started at a word boundary (lcm(4, 3) = 12 bytes), so the word straddling
    # the damaged block is whole
    assert bytes(dev.memory[0x300 + i] for i in range(len(DATA))) == DATA
    assert sum(done) == len(DATA)  # progress counts each byte once across the restart
    assert dev.writes_seen > 10


def test_persistent_crc_errors_are_reported_with_the_block():
    # every WRITE after the first: block 1 (0x340) fails, then the resend from the word boundary
    # before it (0x33c, a multiple of 12 bytes from 0x300) fails each time
    dev = StandIn(bad_writes=set(range(1, 1000)))
    with pytest.raises(DeviceError, match=rf"WRITE of the block at 0x00033c\.\.0x00037b failed "
                                          rf"{WRITE_RETRIES + 1} times, last: BAD_CRC"):
        Device(dev, timeout=0.2).write(0x300, DATA)


@pytest.mark.parametrize("faults", [
    dict(garbage=0.004, where="write"),   # line noise into the device
    dict(drop=0.004, where="write"),      # bytes lost on the way in
    dict(flip=0.004, where="write"),      # bit errors on the way in
    dict(drop=0.004, where="read"),       # a reply lost on the way back
])
def test_upload_survives_light_faults(faults):
    dev = StandIn()
    link = FaultyTransport(dev, seed=7)
    client = Device(link, timeout=0.2)
    client.info()  # INFO is not retried: it runs before the faults begin
    for name, value in faults.items():
        setattr(link, name, value)
    client.write(0x300, DATA)
    assert sum(link.counts.values()) > 0, "the fault rate injected nothing: the test tests nothing"
    assert bytes(dev.memory[0x300 + i] for i in range(len(DATA))) == DATA


def test_heavy_faults_give_a_device_error():
    link = FaultyTransport(StandIn(), seed=3, garbage=0.05, drop=0.05, flip=0.05)
    with pytest.raises(DeviceError):
        client = Device(link, timeout=0.1)
        client.info()
        client.write(0x300, DATA)


def test_bit_flips_in_replies_time_out_clearly():
    dev = StandIn()
    client = Device(FaultyTransport(dev, seed=1, flip=1.0, where="read"), timeout=0.1)
    with pytest.raises(DeviceTimeout, match="no reply from the device"):
        client.counters()


def test_device_reset_mid_generation():
    client = Device(StandIn(reset_after=2), timeout=0.2)
    tokens = []
    with pytest.raises(DeviceTimeout, match="no reply from the device"):
        for token, _ in client.generate(5, 10):
            tokens.append(token)
    assert tokens == [36, 53]


def test_cable_pulled_mid_upload():
    link = FaultyTransport(StandIn(), seed=0, cut_after=400)
    client = Device(link, timeout=0.2)
    with pytest.raises(DeviceError, match="check the cable"):
        client.info()
        client.write(0x300, DATA)
    with pytest.raises(serial.SerialException):  # what pyserial does after a disconnect
        link.read(1)


def test_cable_pulled_between_commands():
    link = FaultyTransport(StandIn(), seed=0)
    client = Device(link, timeout=0.2)
    client.info()
    link.pull()
    with pytest.raises(DeviceError, match="the link failed while sending"):
        client.counters()


@pytest.mark.parametrize("seed", range(6))
def test_random_faults_never_escape_as_other_errors(seed):
    link = FaultyTransport(StandIn(), seed=seed, garbage=0.01, drop=0.01, flip=0.01,
                           cut_after=2000 if seed % 2 else None)
    client = Device(link, timeout=0.1)
    try:
        client.info()
        client.write(0x300, DATA)
        client.counters()
        list(client.generate(1, 4))
    except DeviceError:
        pass


def test_faulty_transport_is_reproducible():
    a = FaultyTransport(StandIn(), seed=5, garbage=0.2, drop=0.2, flip=0.2)
    b = FaultyTransport(StandIn(), seed=5, garbage=0.2, drop=0.2, flip=0.2)
    assert a._corrupt(bytes(range(200))) == b._corrupt(bytes(range(200)))
    with pytest.raises(ValueError, match="probability"):
        FaultyTransport(StandIn(), drop=1.5)
