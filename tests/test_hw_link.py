"""The link (hw.link.Link) in the Amaranth simulator, byte level, against a stand-in engine written
here (a dict-backed byte memory with random stalls and read latency, a step whose argmax and
logits are a fixed function of the token and the steps since reset). Requests are built and
replies decoded with host.protocol, the independent reference; the expected replies come from a
Python model of the device written from docs/protocol.md. Covered: every command, every error
code, GENERATE streaming and STOP, BUSY under a flood, a seeded fuzz of thousands of random,
corrupted, truncated and overlong frames followed by normal traffic, and one end-to-end run of
UART + link at bit level."""

import gc
import random
import struct
import warnings

import pytest
from amaranth.hdl import Module, UnusedElaboratable
from amaranth.sim import Simulator

from hw.link import CobsEncoder, Link
from hw.top import LINK_OPTIONS
from hw.uart import UARTRx, UARTTx
from host import protocol as p
from host.protocol import Command, ErrorCode, FrameError, Reply, Status

P = 64            # max_payload
VOCAB = 8
LOGITS = 0x1000
COUNTERS = 0x2000
COUNTERS_LEN = 8
TIMEOUT = 48
INFO_BLOB = b"stand-in engine v0"
MAX_LEN = p.max_request_len(P)


def default_byte(addr):
    return (addr * 37 + 11) & 0xFF


def engine_argmax(token, nsteps):
    return (token * 5 + nsteps * 3 + 1) % VOCAB


def engine_logits(token, nsteps):
    return b"".join(struct.pack("<H", ((token << 4) ^ (i * 0x111) ^ nsteps) & 0xFFFF) for i in range(VOCAB))


class Engine:
    """The stand-in engine's state, shared by the simulated engine and the reference model."""

    def __init__(self):
        self.mem = {}
        self.nsteps = 0       # since reset: feeds the argmax, so RESET is observable
        self.total = 0        # counter at COUNTERS: steps ever

    def read(self, addr):
        return self.mem.get(addr, default_byte(addr))

    def step(self, token):
        result = engine_argmax(token, self.nsteps)
        for k, b in enumerate(engine_logits(token, self.nsteps)):
            self.mem[LOGITS + k] = b
        self.nsteps += 1
        self.total += 1
        for k, b in enumerate(struct.pack("<I", self.total)):
            self.mem[COUNTERS + k] = b
        return result


class Model:
    """What the device must answer, from docs/protocol.md, on its own copy of the engine."""

    def __init__(self):
        self.engine = Engine()

    def frame(self, enc):
        """Replies to one frame's wire bytes (without the delimiter; not empty)."""
        try:
            body = p.decode_frame(enc, MAX_LEN)
        except FrameError as e:
            part = e.partial
            return [Reply(part[0] if part else 0, part[1] if len(part) > 1 else 0, e.code)]
        return self.request(body)

    def timeout(self, enc):
        part = p.cobs_decode_prefix(enc)
        return [Reply(part[0] if part else 0, part[1] if len(part) > 1 else 0, ErrorCode.TIMEOUT)]

    def cost(self, body):
        """Rough cycles a valid request costs (the fuzz avoids expensive ones)."""
        if p.request_error(body, P):
            return 0
        if body[0] == Command.GENERATE:
            return struct.unpack_from("<H", body, 4)[0]
        if body[0] == Command.CHECKSUM:
            return struct.unpack_from("<I", body, 6)[0] // 64
        return 0

    def request(self, body):
        cmd, seq = body[0], body[1]
        err = p.request_error(body, P)
        if err is not None:
            return [Reply(cmd, seq, err)]
        e, args = self.engine, body[2:]
        ok = lambda payload=b"": Reply(cmd, seq, Status.OK, payload)  # noqa: E731
        if cmd == Command.INFO:
            return [ok(bytes([p.PROTOCOL_VERSION]) + P.to_bytes(2, "little") + VOCAB.to_bytes(2, "little")
                       + INFO_BLOB)]
        if cmd == Command.WRITE:
            addr = int.from_bytes(args[:4], "little")
            for k, b in enumerate(args[4:]):
                e.mem[addr + k] = b
            return [ok()]
        if cmd in (Command.READ, Command.CHECKSUM):
            addr = int.from_bytes(args[:4], "little")
            n = int.from_bytes(args[4:], "little")
            data = bytes(e.read(addr + k) for k in range(n))
            return [ok(data if cmd == Command.READ else p.crc32(data).to_bytes(4, "little"))]
        if cmd == Command.RESET:
            e.nsteps = 0
            return [ok()]
        if cmd == Command.STEP:
            token, flags = int.from_bytes(args[:2], "little"), args[2]
            out = e.step(token)
            return [ok(out.to_bytes(2, "little") + (self.logits() if flags & 1 else b""))]
        if cmd == Command.GENERATE:
            token, n, flags = int.from_bytes(args[:2], "little"), int.from_bytes(args[2:4], "little"), args[4]
            replies = []
            for i in range(n):
                token = e.step(token)
                payload = i.to_bytes(2, "little") + token.to_bytes(2, "little")
                replies.append(Reply(cmd, seq, Status.TOKEN, payload + (self.logits() if flags & 1 else b"")))
            return replies + [ok(n.to_bytes(2, "little") + b"\x00")]
        if cmd == Command.STOP:
            return [ok()]
        if cmd == Command.COUNTERS:
            return [ok(bytes(e.read(COUNTERS + k) for k in range(COUNTERS_LEN)))]
        raise AssertionError(cmd)

    def logits(self):
        return bytes(self.engine.read(LOGITS + k) for k in range(2 * VOCAB))


def make_link(**overrides):
    kw = dict(info=INFO_BLOB, logits_base=LOGITS, vocab=VOCAB, counters_base=COUNTERS,
              counters_len=COUNTERS_LEN, timeout_cycles=TIMEOUT, max_payload=P)
    kw.update(overrides)
    return Link(**kw)


class Bench:
    """The link between a byte-level host (sends rx bytes, decodes tx with the codec) and the
    stand-in engine. ``run(script)`` runs ``await script(ctx, bench)``."""

    def __init__(self, seed=1, tx_busy=0.1, bus_busy=0.2, dut=None, top=None):
        self.dut = dut or make_link()
        self.top = top or self.dut
        self.rx, self.tx = self.dut.rx, self.dut.tx
        self.rng = random.Random(seed)
        self.tx_busy, self.bus_busy = tx_busy, bus_busy
        self.engine = Engine()
        self.decoder = p.FrameDecoder()
        self.replies = []
        self.resets = 0
        self.cycle = 0

    # -- background: the engine --
    async def engine_bench(self, ctx):
        eng, port, rng = self.engine, self.dut.engine, random.Random(self.rng.random())
        reads = []            # (cycle ready, byte)
        stepping = None       # (cycle done, argmax)
        done_valid = False
        while True:
            bus_ready = stepping is None and not done_valid and rng.random() >= self.bus_busy
            ctx.set(port.bus.ready, bus_ready)
            rvalid = bool(reads) and reads[0][0] <= self.cycle
            ctx.set(port.rdata.valid, rvalid)
            if rvalid:
                ctx.set(port.rdata.payload, reads[0][1])
            # the port's rule: a waiting bus request goes before a step
            step_ready = stepping is None and not done_valid and not ctx.get(port.bus.valid)
            ctx.set(port.step.ready, step_ready)
            if stepping is not None and stepping[0] <= self.cycle:
                done_valid = True
                ctx.set(port.done.payload, stepping[1])
            ctx.set(port.done.valid, done_valid)
            (_, _, bvalid, addr, write, data, rready, svalid, token, dready, reset) = await ctx.tick().sample(
                port.bus.valid, port.bus.payload.addr, port.bus.payload.write, port.bus.payload.data,
                port.rdata.ready, port.step.valid, port.step.payload, port.done.ready, port.reset)
            self.cycle += 1
            if bvalid and bus_ready:
                if write:
                    eng.mem[addr] = data
                else:
                    reads.append((self.cycle + rng.randrange(3), eng.read(addr)))
            if rvalid and rready:
                reads.pop(0)
            if done_valid and dready:
                done_valid, stepping = False, None
            if svalid and step_ready:
                assert not reads, "a step began while a read was outstanding"
                stepping = (self.cycle + rng.randrange(1, 12), eng.step(token))
            if reset:
                eng.nsteps = 0
                self.resets += 1

    # -- background: the host's receiver --
    async def tx_bench(self, ctx):
        rng = random.Random(self.rng.random())
        while True:
            ready = rng.random() >= self.tx_busy
            ctx.set(self.tx.ready, ready)
            _, _, valid, byte = await ctx.tick().sample(self.tx.valid, self.tx.payload)
            if valid and ready:
                self.take(bytes([byte]))

    def take(self, data):
        for item in self.decoder.feed(data):
            assert not isinstance(item, FrameError), f"device sent a bad frame: {item}"
            self.replies.append(p.parse_reply(item))

    # -- script helpers --
    async def send(self, ctx, data, gap=0.1):
        """``data`` into ``rx`` as fast as the link takes bytes (one every two cycles: hw.link's
        contract, a UART's one per ten bit times is far slower), with random extra gaps."""
        for byte in data:
            while self.rng.random() < gap:
                await ctx.tick()
            ctx.set(self.rx.valid, 1)
            ctx.set(self.rx.payload, byte)
            await ctx.tick().until(self.rx.ready)
            ctx.set(self.rx.valid, 0)
            await ctx.tick()

    async def wait_replies(self, ctx, n, limit=20000):
        for _ in range(limit):
            if len(self.replies) >= n:
                return
            await ctx.tick()
        raise AssertionError(f"waited {limit} cycles for {n} replies, have {len(self.replies)}: "
                             f"{self.replies[-3:]}")

    async def exchange(self, ctx, wire, expect_n):
        """Send one frame, wait for ``expect_n`` replies, return them."""
        start = len(self.replies)
        await self.send(ctx, wire)
        await self.wait_replies(ctx, start + expect_n)
        return self.replies[start:]

    def run(self, script):
        sim = Simulator(self.top)
        sim.add_clock(1e-8)
        sim.add_testbench(self.engine_bench, background=True)
        sim.add_testbench(self.tx_bench, background=True)

        async def main(ctx):
            await script(ctx, self)
            await ctx.tick().repeat(20)
            assert len(self.replies) == self._checked, f"unexpected replies: {self.replies[self._checked:]}"

        self._checked = 0
        sim.add_testbench(main)
        sim.run()

    async def check(self, ctx, model, wire):
        """Send ``wire`` (any bytes), frame by frame, each time waiting for the model's replies;
        compare. A trailing piece without a delimiter is left to time out."""
        pieces = wire.split(b"\x00")
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            if last and not piece:
                break
            if not piece:
                await self.send(ctx, b"\x00")
                continue
            expected = model.timeout(piece) if last else model.frame(piece)
            sent = piece if last else piece + b"\x00"
            got = await self.exchange(ctx, sent, len(expected))
            await ctx.tick().repeat(3)
            assert got == expected, f"sent {sent.hex()}"
            self._checked += len(got)


def run_script(script, **kw):
    bench = Bench(**kw)
    bench.run(script)
    return bench


# ---------------------------------------------------------------------------------------------

# Both builds of the link (hw.top.LINK_OPTIONS): the token engine's (registered streams, byte-wide
# checksum) and the compact engine's (neither).
BUILDS = [pytest.param(options, id=engine) for engine, options in LINK_OPTIONS.items()]


@pytest.mark.parametrize("build", BUILDS)
def test_every_command(build):
    model = Model()

    async def script(ctx, b):
        rng = random.Random(2)
        data = rng.randbytes(P)
        wires = [
            p.info(1),
            p.write(2, 0x300, data, P),
            p.read(3, 0x300, P),
            p.read(4, 0x2FE, 5),                     # straddles written and unwritten bytes
            p.write(5, 0x310, b"\x00\x00\x01", P),   # zeros: COBS groups
            p.checksum(6, 0x300, P),
            p.checksum(7, 0x2F0, 40),
            p.checksum(8, 0x123, 0),
            p.step(9, 3),
            p.step(10, 5, logits=True),
            p.counters(11),
            p.reset(12),
            p.step(13, 3),                           # same token after RESET: same as seq 9
            p.generate(14, 2, 4),
            p.generate(15, 1, 2, logits=True),
            p.generate(16, 7, 0),
            p.stop(17),
            p.read(18, LOGITS, 2 * VOCAB),
            p.read(19, p.ADDR_SPACE - 1, 1),
            p.write(20, p.ADDR_SPACE - P, data, P),
            p.checksum(21, 0, 300),
        ]
        for wire in wires:
            await b.check(ctx, model, wire)
        # The model's memory is the device's: spot-check both went the same way.
        assert all(b.engine.mem.get(a) == v for a, v in model.engine.mem.items())
        assert b.resets == 1

    bench = run_script(script, dut=make_link(**build))
    seqs = {r.seq: r for r in bench.replies if r.status == Status.OK}
    assert p.parse_info(seqs[1].payload) == p.Info(p.PROTOCOL_VERSION, P, VOCAB, INFO_BLOB)
    assert seqs[9].payload == seqs[13].payload
    assert [r.status for r in bench.replies if r.seq == 14] == [Status.TOKEN] * 4 + [Status.OK]


@pytest.mark.parametrize("build", BUILDS)
def test_every_error_code(build):
    model = Model()

    async def script(ctx, b):
        good = p.info(1)
        raw = p.cobs_decode(good[:-1])
        bad_crc = p.cobs_encode(raw[:-1] + bytes([raw[-1] ^ 1])) + b"\x00"
        cases = [
            bad_crc,                                             # BAD_CRC
            b"\x05\x01\x02\x00",                                 # FRAMING: group cut by the delimiter
            p.cobs_encode(b"\x01\x02\x03") + b"\x00",            # FRAMING: 3 decoded bytes
            b"\x07\x00",                                         # FRAMING: the code byte alone
            p.request(0x00, 2), p.request(0x0A, 3), p.request(0xFF, 4),  # UNKNOWN_COMMAND
            p.request(Command.INFO, 5, b"\x00"),                 # BAD_LENGTH: extra argument
            p.request(Command.STEP, 6, b"\x01\x00"),             # BAD_LENGTH: short
            p.request(Command.WRITE, 7, b"\x00\x00\x00\x00"),    # BAD_LENGTH: WRITE without data
            p.read(8, 0, 0), p.read(9, 0, P + 1),                # BAD_LENGTH: READ length
            p.request(Command.WRITE, 10, bytes(4 + P + 1)),      # BAD_LENGTH: frame too long
            p.encode_frame(bytes(3 * P)),                        # BAD_LENGTH: far too long
            p.write(11, p.ADDR_SPACE - 1, b"ab", P),             # ADDRESS
            p.read(12, 0xFFFFFFFF, 1), p.checksum(13, 1, p.ADDR_SPACE),
            # ADDRESS past the 25 bits the range's end is computed on: an address or a length of
            # 2**25 and more (the check's "far" flag); the end exactly at 2**24 is fine
            p.read(20, 1 << 25, 1), p.checksum(21, 0, 1 << 25), p.checksum(22, (1 << 25) + 1, 1),
            p.checksum(23, 1 << 31, 0), p.checksum(24, p.ADDR_SPACE, 0),
            p.info(14)[:5],                                      # TIMEOUT (no delimiter)
            p.info(15)[:1],                                      # TIMEOUT after the code byte alone
            p.info(16),                                          # and then all is well
        ]
        for wire in cases:
            await b.check(ctx, model, wire)

    bench = run_script(script, dut=make_link(**build))
    codes = {r.status for r in bench.replies if r.is_error}
    assert codes == set(ErrorCode) - {ErrorCode.BUSY}   # BUSY: test_busy_when_flooded
    assert bench.replies[-1].status == Status.OK


def test_write_is_not_committed_when_the_crc_fails():
    model = Model()

    async def script(ctx, b):
        wire = p.write(1, 0x40, b"\xAA" * 20, P)
        raw = bytearray(p.cobs_decode(wire[:-1]))
        raw[10] ^= 0x80
        await b.check(ctx, model, p.cobs_encode(bytes(raw)) + b"\x00")
        await b.check(ctx, model, wire[:-6] + b"\x00")     # cut short and closed: CRC or FRAMING
        await b.check(ctx, model, wire[:-6])               # cut short and left: TIMEOUT
        await b.check(ctx, model, p.read(2, 0x40, 20))

    bench = run_script(script)
    assert bench.replies[-1].payload == bytes(default_byte(0x40 + k) for k in range(20))
    assert not any(0x40 <= a < 0x54 for a in bench.engine.mem)


def test_generate_stops_on_stop():
    model = Model()

    async def script(ctx, b):
        await b.send(ctx, p.generate(1, 4, 500))
        await b.wait_replies(ctx, 3)
        await b.send(ctx, p.stop(2))
        for _ in range(5000):
            if any(r.seq == 2 for r in b.replies):
                break
            await ctx.tick()
        b._checked = len(b.replies)

    bench = run_script(script)
    tokens = [r for r in bench.replies if r.status == Status.TOKEN]
    final, stopped = bench.replies[-2], bench.replies[-1]
    n = len(tokens)
    assert 3 <= n < 500
    # The tokens are the model's generation, cut after n.
    expected = model.request(p.decode_frame(p.generate(1, 4, n)[:-1]))
    assert tokens == expected[:-1]
    assert (final.cmd, final.seq, final.status, final.payload) == (Command.GENERATE, 1, Status.OK,
                                                                    struct.pack("<HB", n, 1))
    assert (stopped.cmd, stopped.seq, stopped.status) == (Command.STOP, 2, Status.OK)


def test_any_frame_stops_generate_and_is_then_served():
    async def script(ctx, b):
        await b.send(ctx, p.generate(1, 4, 500))
        await b.wait_replies(ctx, 2)
        await b.send(ctx, b"\x03\x01\x02\x00")  # a corrupt frame
        for _ in range(5000):
            if b.replies[-1].is_error:
                break
            await ctx.tick()
        b._checked = len(b.replies)

    bench = run_script(script)
    assert bench.replies[-2].status == Status.OK and bench.replies[-2].payload[2] == 1
    assert bench.replies[-1] == Reply(1, 2, ErrorCode.FRAMING)


def test_busy_when_flooded():
    async def script(ctx, b):
        await b.send(ctx, b"".join(p.read(s, 0, 40) for s in range(8)), gap=0)
        await ctx.tick().repeat(3000)
        start = len(b.replies)
        assert (await b.exchange(ctx, p.info(100), 1))[0].status == Status.OK
        b._checked = start + 1

    bench = run_script(script, tx_busy=0.5)
    replies = bench.replies[:-1]
    seqs = [r.seq for r in replies]
    assert seqs == sorted(seqs) and seqs[0] == 0           # in order, the first one served
    busy = [r.seq for r in replies if r.status == ErrorCode.BUSY]
    served = [r.seq for r in replies if r.status == Status.OK]
    assert busy and len(served) >= 2
    assert all(r.payload == bytes(default_byte(k) for k in range(40)) for r in replies if r.status == Status.OK)
    # Every frame is served or covered by the BUSY reply that precedes the next served one.
    for s in range(8):
        if s not in served:
            assert any(b <= s and not any(b < o <= s for o in served) for b in busy), s


def _random_body(rng):
    """A request body with a random command and arguments, often well formed."""
    cmd = rng.choice(list(Command) + [0, 0x0A, 0x80, rng.randrange(256)])
    if cmd in set(Command) and rng.random() < 0.7:
        if cmd == Command.WRITE:
            args = struct.pack("<I", rng.choice([rng.randrange(0x400), p.ADDR_SPACE - rng.randrange(1, 80)]))
            args += rng.randbytes(rng.choice([1, 2, rng.randrange(1, P + 1), P, P + 1]))
        elif cmd == Command.READ:
            args = struct.pack("<IH", rng.randrange(0x400), rng.choice([0, 1, rng.randrange(1, P + 1), P + 1]))
        elif cmd == Command.CHECKSUM:
            args = struct.pack("<II", rng.randrange(0x400), rng.randrange(200))
        elif cmd == Command.STEP:
            args = struct.pack("<HB", rng.randrange(VOCAB), rng.randrange(2))
        elif cmd == Command.GENERATE:
            args = struct.pack("<HHB", rng.randrange(VOCAB), rng.randrange(3), rng.randrange(2))
        else:
            args = b""
    else:
        args = rng.randbytes(rng.choice([0, 1, 3, 5, 6, 8, rng.randrange(12)]))
    return bytes([cmd, rng.randrange(256)]) + args


def _fuzz_case(rng, model):
    kind = rng.random()
    if kind < 0.25:                                   # well-framed, random command and arguments
        body = _random_body(rng)
        if model.cost(body) > 4:
            body = body[:1] + body[1:2]
        return p.encode_frame(body)
    if kind < 0.45:                                   # a frame with a flipped bit
        wire = bytearray(p.encode_frame(_random_body(rng)))
        wire[rng.randrange(len(wire) - 1)] ^= 1 << rng.randrange(8)
        return bytes(wire)
    if kind < 0.55:                                   # a frame cut short, closed or left open
        wire = p.encode_frame(_random_body(rng))
        cut = wire[:rng.randrange(1, len(wire) - 1)]
        return cut + b"\x00" if rng.random() < 0.7 else cut
    if kind < 0.70:                                   # garbage, zeros included
        return bytes(rng.choice([0, rng.randrange(256)]) for _ in range(rng.randrange(1, 20))) + b"\x00"
    if kind < 0.80:                                   # garbage without zeros
        return bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 12))) + b"\x00"
    if kind < 0.85:                                   # too long
        return p.encode_frame(rng.randbytes(rng.randrange(MAX_LEN - 2, MAX_LEN + 40)))
    if kind < 0.90:                                   # empty frames, and a byte or two
        return b"\x00" * rng.randrange(1, 3) + bytes([rng.randrange(1, 256)]) * rng.randrange(3) + b"\x00"
    if kind < 0.95:                                   # dropped or swapped bytes
        wire = bytearray(p.encode_frame(_random_body(rng)))
        k = rng.randrange(len(wire) - 1)
        if rng.random() < 0.5:
            del wire[k]
        else:
            wire[k], wire[k + 1] = wire[k + 1], wire[k]
        return bytes(wire)
    return p.encode_frame(_random_body(rng)) + p.encode_frame(_random_body(rng))[:-1]


@pytest.mark.parametrize("seed, build", [pytest.param(1, LINK_OPTIONS["token"], id="1-token"),
                                         pytest.param(2, LINK_OPTIONS["compact"], id="2-compact")])
def test_fuzz_then_normal_traffic(seed, build):
    model = Model()
    rng = random.Random(seed)
    cases = []
    while len(cases) < 1000:
        wire = _fuzz_case(rng, model)
        # Keep cases whose valid frames are cheap (a corrupted frame can still be valid).
        frames = [f for f in wire.split(b"\x00")[:-1] if f]
        try:
            bodies = [p.decode_frame(f, MAX_LEN) for f in frames]
        except FrameError:
            bodies = []
        if all(model.cost(bd) <= 4 for bd in bodies):
            cases.append(wire)
    check_model = Model()

    async def script(ctx, b):
        for wire in cases:
            await b.check(ctx, check_model, wire)
        await b.check(ctx, check_model, p.info(1))
        await b.check(ctx, check_model, p.write(2, 0x500, b"after the storm", P))
        await b.check(ctx, check_model, p.read(3, 0x500, 15))
        await b.check(ctx, check_model, p.step(4, 1, logits=True))

    bench = run_script(script, seed=seed, dut=make_link(**build))
    assert bench.replies[-2].payload == b"after the storm"
    assert len(bench.replies) > 1000
    errors = {r.status for r in bench.replies if r.is_error}
    assert errors >= {ErrorCode.BAD_CRC, ErrorCode.FRAMING, ErrorCode.BAD_LENGTH, ErrorCode.TIMEOUT,
                      ErrorCode.UNKNOWN_COMMAND, ErrorCode.ADDRESS}


def test_cobs_encoder_is_canonical():
    """Reply bodies with long runs and zeros come out as host.protocol.cobs_encode's bytes."""
    dut = CobsEncoder()
    rng = random.Random(9)
    frames = [b"\x00", b"\x11", bytes(range(1, 255)), bytes(range(1, 256)), b"\x00" * 3,
              bytes([1]) * 254 + b"\x00", bytes([7]) * 600, b"\x00" + bytes([9]) * 253]
    frames += [bytes(rng.choice([0, rng.randrange(1, 256)]) for _ in range(rng.randrange(1, 300)))
               for _ in range(10)]
    expected = b"".join(p.cobs_encode(f) + b"\x00" for f in frames)
    got = bytearray()
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def source(ctx):
        for f in frames:
            for k, byte in enumerate(f):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, {"data": byte, "last": k == len(f) - 1})
                await ctx.tick().until(dut.i.ready)
                ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        r = random.Random(10)
        while len(got) < len(expected):
            ready = r.random() < 0.7
            ctx.set(dut.o.ready, ready)
            _, _, valid, byte = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                got.append(byte)

    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert bytes(got) == expected


# --- bit level: UART + link ----------------------------------------------------------------------

DIVISOR = 4


def test_uart_and_link_end_to_end():
    """The link behind the UART, driven and read on the serial lines, with bit timing written here."""
    link = make_link(timeout_cycles=40 * DIVISOR)
    m = Module()
    m.submodules.link = link
    m.submodules.urx = urx = UARTRx(DIVISOR)
    m.submodules.utx = utx = UARTTx(DIVISOR)
    m.d.comb += [link.rx.valid.eq(urx.o.valid), link.rx.payload.eq(urx.o.payload), urx.o.ready.eq(link.rx.ready)]
    m.d.comb += [utx.i.valid.eq(link.tx.valid), utx.i.payload.eq(link.tx.payload), link.tx.ready.eq(utx.i.ready)]

    bench = Bench(dut=link, top=m)
    model = Model()

    async def line_out(ctx):  # the host's receiver: sample the tx line mid-bit
        while True:
            while ctx.get(utx.tx):
                await ctx.tick()
            await ctx.tick().repeat(DIVISOR // 2)
            byte = 0
            for k in range(8):
                await ctx.tick().repeat(DIVISOR)
                byte |= ctx.get(utx.tx) << k
            await ctx.tick().repeat(DIVISOR)
            assert ctx.get(utx.tx) == 1, "stop bit"
            bench.take(bytes([byte]))

    async def send_line(ctx, data):
        for byte in data:
            for bit in [0] + [(byte >> k) & 1 for k in range(8)] + [1]:
                ctx.set(urx.rx, bit)
                await ctx.tick().repeat(DIVISOR)

    async def main(ctx):
        blob = bytes(range(1, 33)) + b"\x00\x00"
        for wire, n in [(p.info(1), 1), (p.write(2, 0x80, blob, P), 1), (p.read(3, 0x80, len(blob)), 1),
                        (p.checksum(4, 0x80, len(blob)), 1), (b"\x05\x01\x02\x00", 1), (p.generate(5, 1, 2), 3)]:
            start = len(bench.replies)
            await send_line(ctx, wire)
            for _ in range(4000):
                if len(bench.replies) >= start + n:
                    break
                await ctx.tick()
            raw = wire.split(b"\x00")[0]
            assert bench.replies[start:] == model.frame(raw), wire.hex()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench.engine_bench, background=True)
    sim.add_testbench(line_out, background=True)
    sim.add_testbench(main)
    sim.run()
    assert bench.replies[2].payload == bytes(range(1, 33)) + b"\x00\x00"
    assert bench.replies[3].payload == p.crc32(bytes(range(1, 33)) + b"\x00\x00").to_bytes(4, "little")


@pytest.mark.parametrize("bad,match", [
    (dict(max_payload=1000), "max_payload"), (dict(max_payload=8), "max_payload"),
    (dict(timeout_cycles=0), "timeout"), (dict(vocab=0), "vocab"),
    (dict(logits_base=p.ADDR_SPACE - 1), "logits"), (dict(counters_len=-1), "counters"),
    (dict(info="text"), "info"),
])
def test_rejects_bad_parameters(bad, match):
    with warnings.catch_warnings():
        # The half-built component is collected inside this block, so its warning is ignored.
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match=match):
            make_link(**bad)
        gc.collect()
