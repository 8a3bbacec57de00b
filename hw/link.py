"""The serial link's protocol engine: frames in from the UART, commands to the token engine's port,
replies out (docs/protocol.md; the host side is ``host.protocol``).

Three parts, all in this file:

* the receiver (in ``Link``): COBS decoding, the frame's CRC-16, the timeout, and a frame
  descriptor plus a two-region payload buffer, so one frame can arrive while the previous one
  executes;
* the executor (in ``Link``): one command at a time against ``hw.port.engine_port``;
* the reply path: ``CrcAppend`` (adds the CRC-16) then ``CobsEncoder`` (one 254-byte block
  buffer) to ``tx``.
"""

import struct

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from host.protocol import ADDR_SPACE, PROTOCOL_VERSION, Command, ErrorCode, Status

from .pipeline import NO_RW_CHECK
from .port import ADDR_WIDTH, TOKEN_WIDTH, engine_port
from .skid import HalfRateRegister, registered, registered_into

__all__ = ["Link", "CrcAppend", "CobsEncoder", "crc_byte", "reply_byte"]

assert ADDR_SPACE == 1 << ADDR_WIDTH

CRC16_POLY = 0x1021        # CRC-16/CCITT-FALSE, MSB first
CRC32_POLY_REV = 0xEDB88320  # CRC-32 (zlib), LSB first

#: A reply byte on its way to the framer: ``last`` marks the end of the reply's body.
reply_byte = data.StructLayout({"data": 8, "last": 1})


def crc_byte(crc, byte, width: int, poly: int, reflected: bool):
    """The CRC register after one more byte, as a network of XORs (no loop in hardware).

    The bit-serial update is run here in Python on symbols, so each output bit comes out as the
    XOR of a set of register and data bits. ``poly`` is in the shift direction: 0x1021 for the
    MSB-first CRC-16, 0xEDB88320 for the LSB-first CRC-32."""
    state = [frozenset({("c", i)}) for i in range(width)]
    for j in range(8):
        k = j if reflected else width - 8 + j
        state[k] = state[k] ^ {("d", j)}
    for _ in range(8):
        if reflected:
            out, state = state[0], state[1:] + [frozenset()]
        else:
            out, state = state[width - 1], [frozenset()] + state[:-1]
        state = [s ^ out if (poly >> k) & 1 else s for k, s in enumerate(state)]
    bits = []
    for terms in state:
        value = Const(0, 1)
        for kind, i in sorted(terms):
            value = value ^ (crc[i] if kind == "c" else byte[i])
        bits.append(value)
    return Cat(*bits)


class CrcAppend(wiring.Component):
    """Appends the CRC-16/CCITT-FALSE of each reply body, most significant byte first.

    ``i`` carries a body (``last`` on its final byte), ``o`` the body then the two CRC bytes
    (``last`` on the second). Bytes pass combinationally (``i.ready`` follows ``o.ready``); the
    two CRC bytes take a cycle each, during which ``i`` is stalled.
    """

    def __init__(self):
        super().__init__({"i": In(stream.Signature(reply_byte)), "o": Out(stream.Signature(reply_byte))})

    def elaborate(self, platform):
        m = Module()
        crc = Signal(16, init=0xFFFF)
        with m.FSM():
            with m.State("BODY"):
                m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.data.eq(self.i.payload.data),
                             self.i.ready.eq(self.o.ready)]
                with m.If(self.i.valid & self.o.ready):
                    m.d.sync += crc.eq(crc_byte(crc, self.i.payload.data, 16, CRC16_POLY, False))
                    with m.If(self.i.payload.last):
                        m.next = "HIGH"
            with m.State("HIGH"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.data.eq(crc[8:])]
                with m.If(self.o.ready):
                    m.next = "LOW"
            with m.State("LOW"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.data.eq(crc[:8]), self.o.payload.last.eq(1)]
                with m.If(self.o.ready):
                    m.d.sync += crc.eq(0xFFFF)
                    m.next = "BODY"
        return m


class CobsEncoder(wiring.Component):
    """COBS-encodes each frame (``last`` marks its final byte) and ends it with 0x00.

    Output is byte for byte ``host.protocol.cobs_encode(frame) + b"\\x00"``. Nonzero bytes wait in
    a 254-byte buffer (one block RAM) until a zero, the 254th byte or the frame's end says how
    long the group is; then the code byte and the group go out while ``i`` is stalled.
    Throughput: one input byte per cycle while filling, one output byte every two cycles while
    emitting a group (far faster than the UART); at most 1 + ceil(n/254) bytes of overhead plus
    the delimiter.
    """

    def __init__(self):
        super().__init__({"i": In(stream.Signature(reply_byte)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        # a block RAM: in LUT RAM (5e974d3) the read address's logic (idx, its compare with k)
        # ran on through the LUT RAM's read multiplexers into the data register, 12.7 ns at seed 3
        # (no read is used from a cycle with a write: FILL writes, CODE and DATA read)
        m.submodules.buf = buf = Memory(shape=8, depth=254, init=[], attrs=NO_RW_CHECK)
        wp = buf.write_port()
        rp = buf.read_port()
        # the read's data through a plain register (the block RAM's own output register, after
        # host.ebr_output_register): without it the RAM's 5.8 ns clock-to-output ran on through
        # the output multiplexer (11.7 ns, 06e575d seed 1). A byte is sent every two cycles:
        # ``settling`` is high in the cycle its read's data is on the way to ``rdata``
        rdata = Signal(8, reset_less=True)
        settling = Signal()
        m.d.sync += [rdata.eq(rp.data), settling.eq(0)]

        n = Signal(range(255))     # bytes waiting in the buffer
        k = Signal(range(255))     # bytes in the group being emitted
        idx = Signal(range(255))
        code = Signal(8)
        ending = Signal()          # the frame's last byte has been taken
        final = Signal()           # the group being emitted is the frame's last
        b, last = self.i.payload.data, self.i.payload.last

        def after_group():
            with m.If(final):
                m.next = "DELIM"
            with m.Elif(ending):  # the frame ended on a zero or a full block: an empty last group
                m.d.sync += [code.eq(1), k.eq(0), final.eq(1)]
                m.next = "CODE"
            with m.Else():
                m.next = "FILL"

        m.d.comb += [rp.addr.eq(idx), wp.addr.eq(n), wp.data.eq(b)]
        with m.FSM():
            with m.State("FILL"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    with m.If(b == 0):
                        m.d.sync += [code.eq(n + 1), k.eq(n), n.eq(0), ending.eq(last), final.eq(0)]
                        m.next = "CODE"
                    with m.Else():
                        m.d.comb += wp.en.eq(1)
                        with m.If(n == 253):
                            m.d.sync += [code.eq(0xFF), k.eq(254), n.eq(0), ending.eq(last), final.eq(0)]
                            m.next = "CODE"
                        with m.Elif(last):
                            m.d.sync += [code.eq(n + 2), k.eq(n + 1), n.eq(0), ending.eq(1), final.eq(1)]
                            m.next = "CODE"
                        with m.Else():
                            m.d.sync += n.eq(n + 1)
            with m.State("CODE"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(code)]
                with m.If(self.o.ready):
                    with m.If(k == 0):
                        after_group()
                    with m.Else():
                        m.d.sync += settling.eq(1)
                        m.next = "DATA"
            with m.State("DATA"):
                # The read port is synchronous: address the next byte in the cycle this one leaves.
                m.d.comb += [self.o.valid.eq(~settling), self.o.payload.eq(rdata)]
                with m.If(self.o.ready & ~settling):
                    m.d.comb += rp.addr.eq(idx + 1)
                    m.d.sync += [idx.eq(idx + 1), settling.eq(1)]
                    with m.If(idx == k - 1):
                        m.d.comb += rp.addr.eq(0)
                        m.d.sync += idx.eq(0)
                        after_group()
            with m.State("DELIM"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(0)]
                with m.If(self.o.ready):
                    m.d.sync += [ending.eq(0), final.eq(0)]
                    m.next = "FILL"
        return m


def _is_power_of_two(x):
    return isinstance(x, int) and x > 0 and x & (x - 1) == 0


class Link(wiring.Component):
    """The protocol engine between the UART's byte streams and the token engine's port.

    Parameters
    ----------
    info : bytes
        The engine's opaque description, returned by INFO after the link's own 5-byte header
        (protocol version, ``max_payload``, ``vocab``). Held in a ROM.
    logits_base, vocab : int
        The logits are ``vocab`` bf16 words, little-endian, at byte ``logits_base`` of the
        engine's address space, valid after each step.
    counters_base, counters_len : int
        The engine's counters region, returned by COUNTERS.
    timeout_cycles : int
        A frame with no byte for this many cycles is dropped with a TIMEOUT reply. Choose it well
        above one byte time (10 bit times) and below the host's reply timeout.
    max_payload : int
        Largest WRITE payload and READ length, a power of two from 16 to 32768 (default 1024).
        The payload buffer holds two of them (2 KiB by default: one ECP5 block RAM, four iCE40).
    registered : bool
        Registers (``hw.skid``) on the engine's streams, between the reply stages, on ``tx``
        and ``rx`` (default True): for a fast clock, where the handshakes crossing the die are
        the slow paths. On a slow clock they only cost logic cells (about 260 flip-flops);
        without them the engine's streams pass straight through, and the reply bodies go to the
        CRC and COBS stages through one ``HalfRateRegister`` (a UART's pace is far below half
        the clock), with the same behaviour.
    serial_checksum : bool
        CHECKSUM's CRC-32 a bit per cycle instead of a byte (default False): about 130 logic
        cells fewer on the UP5K (a byte-wide update is a network of XORs, 160 cells), for eight
        more cycles per byte (a megabyte in half a second at 24 MHz).

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Bytes from the UART, at most one every two cycles (a UART gives one per ten bit times).
        ``rx.ready`` is always high: a UART cannot wait.
    tx : Out(stream.Signature(8))
        Bytes to the UART, with back-pressure.
    engine : Out(engine_port.flip())
        The engine's port (``hw.port``): the link drives ``bus``, ``step`` and ``reset``.

    Behaviour. Frames are received while the previous command executes: the receiver holds one
    finished frame (the descriptor and a payload region); a frame that begins while that one is
    still waiting is dropped, and so is every frame that begins after it until a BUSY reply
    carrying the first dropped frame's ``cmd`` and ``seq`` has been sent in its place. Every other
    non-empty frame gets exactly one final reply, in order. The executor
    commits a WRITE from the buffer only after its CRC matched, one byte per cycle while
    ``bus.ready`` is high; READ, COUNTERS and logits go out one byte per bus read, paced by
    ``tx``; CHECKSUM takes two cycles per byte (ten with ``serial_checksum``).
    During GENERATE the executor checks between tokens whether another frame has arrived; if so
    it ends the generation (STOP is the command meant for that) and then serves that frame. Latency from a request's delimiter to the first
    reply byte on ``tx`` is a few cycles plus the reply's first COBS group (up to 254 bytes of
    body); no state can stall the receiver, so garbage on the line always ends in replies.
    """

    def __init__(self, *, info: bytes, logits_base: int, vocab: int, counters_base: int,
                 counters_len: int, timeout_cycles: int, max_payload: int = 1024,
                 registered: bool = True, serial_checksum: bool = False):
        if not isinstance(info, (bytes, bytearray)):
            raise ValueError(f"info must be bytes, got {type(info).__name__}")
        if not isinstance(vocab, int) or not 1 <= vocab <= 0xFFFF:
            raise ValueError(f"vocab must be 1..65535, got {vocab!r}")
        for name, base, length in (("logits", logits_base, 2 * vocab),
                                   ("counters", counters_base, counters_len)):
            if not isinstance(base, int) or not isinstance(length, int) or base < 0 or length < 0 \
                    or base + length > ADDR_SPACE:
                raise ValueError(f"the {name} region ({base!r}, {length!r} bytes) must lie in the "
                                 f"{ADDR_WIDTH}-bit address space")
        if not isinstance(timeout_cycles, int) or timeout_cycles < 1:
            raise ValueError(f"timeout_cycles must be a positive integer, got {timeout_cycles!r}")
        if not _is_power_of_two(max_payload) or not 16 <= max_payload <= 32768:
            raise ValueError(f"max_payload must be a power of two from 16 to 32768, got {max_payload!r}")
        self.info = bytes(info)
        self.logits_base, self.vocab = logits_base, vocab
        self.counters_base, self.counters_len = counters_base, counters_len
        self.timeout_cycles = timeout_cycles
        self.max_payload = max_payload
        self.registered = bool(registered)
        self.serial_checksum = bool(serial_checksum)
        self.rom = struct.pack("<BHH", PROTOCOL_VERSION, max_payload, vocab) + self.info
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "engine": Out(engine_port.flip()),
        })

    def elaborate(self, platform):
        m = Module()
        P = self.max_payload
        p_bits = P.bit_length() - 1
        max_len = 2 + 4 + P + 2  # the longest request: a full WRITE, CRC included

        m.submodules.buf = buf = Memory(shape=8, depth=2 * P, init=[])
        buf_w = buf.write_port()
        buf_r = buf.read_port()

        # ---------------- receiver ----------------
        m.d.comb += self.rx.ready.eq(1)
        if self.registered:  # the UART sits by its pins, far from the decoder's enables
            rx_valid, byte = Signal(), Signal(8, reset_less=True)
            m.d.sync += [rx_valid.eq(self.rx.valid), byte.eq(self.rx.payload)]
        else:
            rx_valid, byte = self.rx.valid, self.rx.payload

        in_frame = Signal()         # a nonzero byte has come since the last delimiter
        remain = Signal(8)          # COBS: data bytes left in the current group
        prev_ff = Signal()          # COBS: the current group is a full one (no implied zero)
        pos = Signal(range(max_len + 1))  # decoded bytes so far (saturates)
        too_long = Signal()
        crc = Signal(16, init=0xFFFF)
        capturing = Signal()        # this frame owns the descriptor (else it will be BUSY)
        idle = Signal(range(self.timeout_cycles + 1))

        # The descriptor: the one finished frame waiting for the executor.
        d_cmd, d_seq, d_status = Signal(8), Signal(8), Signal(8)
        d_args = Signal(64)         # decoded bytes 2..9
        d_len = Signal(range(max_len + 1))
        d_region = Signal()
        pending = Signal()
        region = Signal()           # payload region of the next captured frame
        # Dropped frames: the first one's command and sequence bytes; `busy_behind` says the
        # waiting descriptor arrived before it, so that one is served first (replies stay in order).
        busy, busy_behind = Signal(), Signal()
        busy_cmd, busy_seq = Signal(8), Signal(8)
        pop = Signal()

        dec_valid = Signal()
        dec_byte = Signal(8)
        with m.If(rx_valid & (byte != 0)):
            m.d.sync += [in_frame.eq(1), idle.eq(0)]
            with m.If(remain == 0):
                # A code byte: the previous group's implied zero is data now that a group follows.
                m.d.comb += [dec_valid.eq(in_frame & ~prev_ff), dec_byte.eq(0)]
                m.d.sync += [remain.eq(byte - 1), prev_ff.eq(byte == 0xFF)]
            with m.Else():
                m.d.comb += [dec_valid.eq(1), dec_byte.eq(byte)]
                m.d.sync += remain.eq(remain - 1)
            with m.If(~in_frame):
                # The descriptor is free if it is empty or being taken this cycle. While a BUSY
                # is owed, later frames are dropped too, so that one BUSY covers a contiguous run.
                claim = (~pending | pop) & ~busy
                m.d.sync += capturing.eq(claim)
                with m.If(claim):
                    m.d.sync += [d_cmd.eq(0), d_seq.eq(0)]
                # cleared whether or not the frame is claimed (a claimed frame leaves them unused):
                # ``claim`` holds the executor's pop, and its state decode into these enables was
                # a slow path (10.1 ns, bf77c40 seed 1)
                with m.If(~busy):
                    m.d.sync += [busy_cmd.eq(0), busy_seq.eq(0)]
        with m.Elif(in_frame):
            m.d.sync += idle.eq(idle + 1)

        with m.If(dec_valid):
            m.d.sync += crc.eq(crc_byte(crc, dec_byte, 16, CRC16_POLY, False))
            with m.If(pos == max_len):
                m.d.sync += too_long.eq(1)
            with m.Else():
                m.d.sync += pos.eq(pos + 1)
            with m.If(capturing):
                with m.Switch(pos):
                    with m.Case(0):
                        m.d.sync += d_cmd.eq(dec_byte)
                    with m.Case(1):
                        m.d.sync += d_seq.eq(dec_byte)
                    for j in range(8):
                        with m.Case(2 + j):
                            m.d.sync += d_args.word_select(j, 8).eq(dec_byte)
                offset = pos - 6
                m.d.comb += [buf_w.en.eq((pos >= 6) & (pos < 6 + P)),
                             buf_w.addr.eq(Cat(offset[:p_bits], region)), buf_w.data.eq(dec_byte)]
            with m.Elif(~busy):
                with m.If(pos == 0):
                    m.d.sync += busy_cmd.eq(dec_byte)
                with m.If(pos == 1):
                    m.d.sync += busy_seq.eq(dec_byte)

        timed_out = in_frame & ~rx_valid & (idle == self.timeout_cycles - 1)
        delimiter = in_frame & rx_valid & (byte == 0)
        status = Signal(8)
        with m.If(timed_out):
            m.d.comb += status.eq(ErrorCode.TIMEOUT)
        with m.Elif((remain != 0) | (pos < 4)):
            m.d.comb += status.eq(ErrorCode.FRAMING)
        with m.Elif(too_long):
            m.d.comb += status.eq(ErrorCode.BAD_LENGTH)
        with m.Elif(crc != 0):  # the CRC over body + CRC bytes leaves 0 when they match
            m.d.comb += status.eq(ErrorCode.BAD_CRC)
        with m.If(timed_out | delimiter):
            m.d.sync += [in_frame.eq(0), remain.eq(0), prev_ff.eq(0), pos.eq(0), too_long.eq(0),
                         crc.eq(0xFFFF), idle.eq(0), capturing.eq(0)]
            with m.If(capturing):
                m.d.sync += [d_status.eq(status), d_len.eq(pos), d_region.eq(region),
                             region.eq(~region), pending.eq(1)]
            with m.Elif(~busy):
                m.d.sync += [busy.eq(1), busy_behind.eq(pending & ~pop)]

        # ---------------- executor ----------------
        # The engine's streams through registers: its ready and valid signals come from logic
        # across the die, and here they steer the enables of the executor's counters (two
        # crossings in one cycle were the link's slowest paths). The engine serves a step only
        # when no bus request waits (``hw.port``), so requests keep their order through the
        # two buffers, whose latencies are equal.
        if self.registered:
            # a half-rate register: a skid buffer's data enable was the engine's bus ready, from
            # across the die (12.2 ns at 1377152 seed 1); the engine takes a request every 3
            # cycles at the most
            bus = registered_into(m, "bus_q", wiring.flipped(self.engine.bus), half_rate=True)
            # the replies take rdata and done: a half-rate register's payload enable is its own
            # valid, where a skid buffer's was the reply FSM's ready (10.2 ns, bd18f0a seed 1); a
            # byte per 2 cycles is far above the UART's pace and the 7-cycle bus read
            rdata = registered(m, "rdata_q", wiring.flipped(self.engine.rdata), half_rate=True)
            step = registered_into(m, "step_q", wiring.flipped(self.engine.step))
            done = registered(m, "done_q", wiring.flipped(self.engine.done), half_rate=True)
        else:
            bus, rdata, step, done = self.engine.bus, self.engine.rdata, self.engine.step, self.engine.done
        reset = Signal()  # a register too: a strobe the cycle after RESET's dispatch
        m.d.sync += reset.eq(0)
        m.d.comb += self.engine.reset.eq(reset)

        rb = stream.Signature(reply_byte).create()   # reply bodies to the framer
        m.submodules.crc_append = crc_append = CrcAppend()
        m.submodules.cobs = cobs = CobsEncoder()
        # registers between the stages: the reply bytes come from block RAM (slow clock-to-output)
        # and each stage is combinational from input to output
        if self.registered:
            wiring.connect(m, registered(m, "reply_q", rb), crc_append.i)
            wiring.connect(m, registered(m, "crc_q", crc_append.o), cobs.i)
        else:  # a half-rate register (the reply runs at the UART's pace): the executor's state
            # through the CRC and the COBS encoder into its enables was the UP5K's slowest path
            reply_q = m.submodules.reply_q = HalfRateRegister(reply_byte)
            wiring.connect(m, rb, reply_q.i)
            wiring.connect(m, reply_q.o, crc_append.i)
            wiring.connect(m, crc_append.o, cobs.i)
        if self.registered:  # the UART sits by its pins, far from the encoder's buffer read
            wiring.connect(m, registered(m, "tx_q", cobs.o), wiring.flipped(self.tx))
        else:
            wiring.connect(m, cobs.o, wiring.flipped(self.tx))

        m.submodules.rom = rom = Memory(shape=8, depth=len(self.rom), init=self.rom)
        rom_r = rom.read_port()

        r_cmd, r_seq, r_status = Signal(8), Signal(8), Signal(8)
        word = Signal(32)              # up to 4 fixed payload bytes, sent LSB first
        word_len = Signal(range(5))
        rom_en = Signal()
        ridx = Signal(range(len(self.rom)))
        bus_addr = Signal(ADDR_WIDTH)
        count = Signal(ADDR_WIDTH + 1)  # bytes left to read, write or checksum
        # "count is 0" and "count is 1" in registers, set with every load and decrement of count
        # (wide compares in front of the states' enables were slow paths)
        count_zero, count_one = Signal(init=1), Signal()

        def load_count(value):
            m.d.sync += [count.eq(value), count_zero.eq(value == 0), count_one.eq(value == 1)]

        def count_down():
            m.d.sync += [count.eq(count - 1), count_zero.eq(count_one), count_one.eq(count == 2)]
        idx = Signal(p_bits)           # WRITE: next byte of the payload region
        w_region = Signal()
        token = Signal(TOKEN_WIDTH)
        argmax = Signal(TOKEN_WIDTH)
        logits = Signal()
        in_gen = Signal()
        remaining = Signal(16)
        remaining_zero = Signal()  # set with remaining, as count's flags are
        index = Signal(16)
        crc32 = Signal(32)
        sum_byte = Signal(8)  # serial_checksum: the byte going into the CRC, and its next bit
        sum_bit = Signal(3)

        # Request decoding, from the descriptor in place. The receiver writes its fields again
        # only for a frame whose first byte came at or after the pop, and the first of those
        # fields it writes (an argument: the third decoded byte, the frame's fourth byte) comes
        # three bytes later: 6 cycles at the fastest ``rx`` allows (one byte per two cycles), 120
        # from a UART (10 bits of at least 4 cycles); DISPATCH is the fifth cycle after the pop.
        # The checks take four registered stages (the command's fields, the range's end, the
        # verdict, its flags): states CHECK, RANGE, VERDICT, DECIDE.
        arg_addr = d_args[:32]
        read_len = d_args[32:48]
        sum_len = d_args[32:64]
        write_len = (d_len - 8)[:ADDR_WIDTH + 1]
        arg_len = {Command.INFO: 0, Command.READ: 6, Command.CHECKSUM: 8, Command.RESET: 0,
                   Command.STEP: 3, Command.GENERATE: 5, Command.STOP: 0, Command.COUNTERS: 0}
        known = Signal()
        length_ok = Signal()
        # a range's end is computed on 25 bits of its address and of its length (the address space
        # is 2**24), with a flag for anything above: an adder of 26 bits where 33 took more cells
        near = ADDR_WIDTH + 1
        range_len = Signal(near)
        range_huge = Signal()
        checks_range = Signal()
        m.d.sync += [known.eq(0), length_ok.eq(0), range_len.eq(0), range_huge.eq(0), checks_range.eq(0)]
        with m.Switch(r_cmd):
            with m.Case(Command.WRITE):
                m.d.sync += [known.eq(1), length_ok.eq(d_len >= 9), range_len.eq(write_len),
                             checks_range.eq(1)]
            with m.Case(Command.READ):
                m.d.sync += [known.eq(1), range_len.eq(read_len), checks_range.eq(1),
                             length_ok.eq((d_len == 4 + 6) & (read_len != 0) & (read_len <= P))]
            with m.Case(Command.CHECKSUM):
                m.d.sync += [known.eq(1), length_ok.eq(d_len == 4 + 8), range_len.eq(sum_len[:near]),
                             range_huge.eq(sum_len[near:].any()), checks_range.eq(1)]
            for cmd, n in arg_len.items():
                if cmd not in (Command.READ, Command.CHECKSUM):
                    with m.Case(cmd):
                        m.d.sync += [known.eq(1), length_ok.eq(d_len == 4 + n)]
        range_end = Signal(near + 1)
        range_far = Signal()
        range_checked = Signal()
        m.d.sync += [range_end.eq(arg_addr[:near] + range_len), range_checked.eq(checks_range),
                     range_far.eq(range_huge | arg_addr[near:].any())]
        range_bad = range_checked & (range_far | (range_end > ADDR_SPACE))
        error = Signal(8)
        m.d.sync += error.eq(0)
        with m.If(d_status != 0):
            m.d.sync += error.eq(d_status)
        with m.Elif(~known):
            m.d.sync += error.eq(ErrorCode.UNKNOWN_COMMAND)
        with m.Elif(~length_ok):
            m.d.sync += error.eq(ErrorCode.BAD_LENGTH)
        with m.Elif(range_bad):
            m.d.sync += error.eq(ErrorCode.ADDRESS)
        # the verdict as one flag per outcome, registered from ``error`` in state DECIDE: the
        # dispatch's enables (an 8-bit compare of the error and one of the command, ANDed with the
        # state's decode, fanning out to the counters it loads) were a slow path
        go = {cmd: Signal(name=f"go_{cmd.name.lower()}") for cmd in Command}
        m.d.sync += [flag.eq((error == 0) & (r_cmd == cmd)) for cmd, flag in go.items()]
        # the count DISPATCH loads, picked beside the flags (0 for a failed request or one without
        # a range): DISPATCH loads it whatever the command, as it loads bus_addr, so no flag sits
        # in count's enable (10.3 ns behind the state decode, 6225d1f seed 2)
        count_load = Signal.like(count)
        m.d.sync += count_load.eq(0)
        with m.If(error == 0):
            with m.Switch(r_cmd):
                for cmd, value in ((Command.WRITE, write_len), (Command.READ, read_len),
                                   (Command.CHECKSUM, sum_len), (Command.COUNTERS, self.counters_len)):
                    with m.Case(cmd):
                        m.d.sync += count_load.eq(value)

        m.d.comb += [buf_r.addr.eq(Cat(idx, w_region)), rom_r.addr.eq(ridx)]
        commit_data, commit_settling = Signal(8, reset_less=True), Signal()
        m.d.sync += [commit_data.eq(buf_r.data), commit_settling.eq(0)]

        def reply_continues(word_left, rom_left, bus_left):
            with m.If(word_left):
                m.next = "WORD"
            with m.Elif(rom_left):
                m.next = "ROM"
            with m.Elif(bus_left):
                m.next = "BUS_REQ"
            with m.Elif(in_gen):
                m.next = "GEN_NEXT"
            with m.Else():
                m.next = "IDLE"

        def send(value, last):
            m.d.comb += [rb.valid.eq(1), rb.payload.data.eq(value), rb.payload.last.eq(last)]

        with m.FSM():
            with m.State("IDLE"):
                # word_len is 0 here already: every reply sends its word down to 0 before it ends
                # (clearing it here too put two more states into its enable, the slowest path of
                # a 100 MHz build at 735c994)
                # count is 0 here too: a reply ends only when its count is down to 0
                m.d.sync += [rom_en.eq(0), in_gen.eq(0)]
                with m.If(busy & (~busy_behind | ~pending)):
                    m.d.sync += [r_cmd.eq(busy_cmd), r_seq.eq(busy_seq), r_status.eq(ErrorCode.BUSY),
                                 busy.eq(0)]
                    m.next = "H_CMD"
                with m.Elif(pending):
                    m.d.comb += pop.eq(1)
                    m.d.sync += [pending.eq(0), busy_behind.eq(0), r_cmd.eq(d_cmd), r_seq.eq(d_seq)]
                    m.next = "CHECK"
                with m.Elif(busy):
                    m.d.sync += [r_cmd.eq(busy_cmd), r_seq.eq(busy_seq), r_status.eq(ErrorCode.BUSY),
                                 busy.eq(0)]
                    m.next = "H_CMD"
            with m.State("CHECK"):  # the command's fields are registered
                m.next = "RANGE"
            with m.State("RANGE"):  # the range's end is registered
                m.next = "VERDICT"
            with m.State("VERDICT"):  # the verdict is registered
                m.next = "DECIDE"
            with m.State("DECIDE"):  # the verdict's flags are registered
                m.next = "DISPATCH"
            with m.State("DISPATCH"):
                # bus_addr is loaded whatever the command (only WRITE, READ, CHECKSUM and COUNTERS
                # use it): the verdict's flags in its enable, behind the state decode, were the
                # slowest path (10.2 ns, bf77c40 seed 1)
                m.d.sync += [r_status.eq(error),
                             bus_addr.eq(Mux(go[Command.COUNTERS], self.counters_base, arg_addr))]
                load_count(count_load)
                m.next = "H_CMD"  # failed, INFO, READ, RESET, COUNTERS, STOP (nothing to stop)
                with m.If(go[Command.INFO]):
                    m.d.sync += rom_en.eq(1)
                with m.If(go[Command.WRITE]):
                    m.d.sync += [idx.eq(0), w_region.eq(d_region)]
                    m.next = "COMMIT_PRIME"
                with m.If(go[Command.CHECKSUM]):
                    m.d.sync += crc32.eq(0xFFFFFFFF)
                    m.next = "SUM_REQ"
                with m.If(go[Command.RESET]):
                    m.d.sync += reset.eq(1)
                with m.If(go[Command.STEP]):
                    m.d.sync += [token.eq(d_args[:16]), logits.eq(d_args[16])]
                    m.next = "STEP_REQ"
                with m.If(go[Command.GENERATE]):
                    m.d.sync += [token.eq(d_args[:16]), remaining.eq(d_args[16:32]),
                                 remaining_zero.eq(d_args[16:32] == 0), logits.eq(d_args[32]),
                                 index.eq(0), in_gen.eq(1)]
                    m.next = "GEN_CHECK"

            # WRITE: the payload region to the bus, one byte per accepted request (at most one
            # every two cycles: the engine's bus takes a write in two). The byte goes out of a
            # register, a cycle after the read: straight from the block RAM (5.8 ns clock-to-
            # output) into the bus buffer's data register was 11.2 ns (06e575d seed 1).
            # ``commit_settling``: the register is not yet the byte at ``idx``.
            with m.State("COMMIT_PRIME"):  # lets the read port fetch byte 0 of the new region
                m.d.sync += commit_settling.eq(1)
                m.next = "COMMIT"
            with m.State("COMMIT"):
                m.d.comb += [bus.valid.eq(~commit_settling), bus.payload.addr.eq(bus_addr),
                             bus.payload.write.eq(1), bus.payload.data.eq(commit_data)]
                with m.If(bus.ready & ~commit_settling):
                    m.d.comb += buf_r.addr.eq(Cat((idx + 1)[:p_bits], w_region))
                    m.d.sync += [idx.eq(idx + 1), bus_addr.eq(bus_addr + 1), commit_settling.eq(1)]
                    count_down()
                    with m.If(count_one):
                        m.next = "H_CMD"

            # CHECKSUM: CRC-32 of the range, read byte by byte.
            with m.State("SUM_REQ"):
                with m.If(count_zero):
                    m.d.sync += [word.eq(~crc32), word_len.eq(4)]
                    m.next = "H_CMD"
                with m.Else():
                    m.d.comb += [bus.valid.eq(1), bus.payload.addr.eq(bus_addr)]
                    with m.If(bus.ready):
                        m.d.sync += bus_addr.eq(bus_addr + 1)
                        m.next = "SUM_DATA"
            with m.State("SUM_DATA"):
                m.d.comb += rdata.ready.eq(1)
                with m.If(rdata.valid):
                    count_down()
                    if self.serial_checksum:
                        m.d.sync += [sum_byte.eq(rdata.payload), sum_bit.eq(0)]
                        m.next = "SUM_BITS"
                    else:
                        m.d.sync += crc32.eq(crc_byte(crc32, rdata.payload, 32, CRC32_POLY_REV, True))
                        m.next = "SUM_REQ"
            if self.serial_checksum:
                with m.State("SUM_BITS"):  # the byte into the CRC-32 a bit per cycle, LSB first
                    feedback = crc32[0] ^ sum_byte[0]
                    m.d.sync += [crc32.eq((crc32 >> 1) ^ Mux(feedback, CRC32_POLY_REV, 0)),
                                 sum_byte.eq(sum_byte >> 1), sum_bit.eq(sum_bit + 1)]
                    with m.If(sum_bit == 7):
                        m.next = "SUM_REQ"

            # STEP and GENERATE.
            with m.State("GEN_CHECK"):
                with m.If(remaining_zero | pending | busy):
                    # Done, or another frame has arrived: the final frame (produced, stopped).
                    m.d.sync += [word.eq(Cat(index, ~remaining_zero)), word_len.eq(3), in_gen.eq(0),
                                 r_status.eq(Status.OK)]
                    m.next = "H_CMD"
                with m.Else():
                    m.next = "STEP_REQ"
            with m.State("STEP_REQ"):
                m.d.comb += [step.valid.eq(1), step.payload.eq(token)]
                with m.If(step.ready):
                    m.next = "STEP_WAIT"
            with m.State("STEP_WAIT"):
                m.d.comb += done.ready.eq(1)
                # used only if the logits are asked for; count is 0 until the reply, and loaded
                # in every cycle of the state, the flag in the value, not in the enable
                m.d.sync += bus_addr.eq(self.logits_base)
                load_count(Mux(logits, 2 * self.vocab, 0))
                with m.If(done.valid):
                    m.d.sync += argmax.eq(done.payload)
                    with m.If(in_gen):
                        m.d.sync += [word.eq(Cat(index, done.payload)), word_len.eq(4),
                                     r_status.eq(Status.TOKEN)]
                    with m.Else():
                        m.d.sync += [word.eq(done.payload), word_len.eq(2)]
                    m.next = "H_CMD"
            with m.State("GEN_NEXT"):
                m.d.sync += [token.eq(argmax), remaining.eq(remaining - 1), remaining_zero.eq(remaining == 1),
                             index.eq(index + 1)]  # word_len and count are 0: the token's reply is sent
                m.next = "GEN_CHECK"

            # The reply: header, then the word, the ROM and the bus bytes, whichever are set.
            with m.State("H_CMD"):
                send(r_cmd, 0)
                with m.If(rb.ready):
                    m.next = "H_SEQ"
            with m.State("H_SEQ"):
                send(r_seq, 0)
                with m.If(rb.ready):
                    m.next = "H_STATUS"
            with m.State("H_STATUS"):
                send(r_status, (word_len == 0) & ~rom_en & count_zero)
                with m.If(rb.ready):
                    reply_continues(word_len != 0, rom_en, ~count_zero)
            with m.State("WORD"):
                send(word[:8], (word_len == 1) & ~rom_en & count_zero)
                with m.If(rb.ready):
                    m.d.sync += [word.eq(word >> 8), word_len.eq(word_len - 1)]
                    with m.If(word_len == 1):
                        reply_continues(0, rom_en, ~count_zero)
            with m.State("ROM"):
                rom_end = ridx == len(self.rom) - 1
                send(rom_r.data, rom_end & count_zero)
                with m.If(rb.ready):
                    m.d.comb += rom_r.addr.eq(ridx + 1)
                    m.d.sync += ridx.eq(ridx + 1)
                    with m.If(rom_end):
                        m.d.comb += rom_r.addr.eq(0)
                        m.d.sync += [ridx.eq(0), rom_en.eq(0)]
                        reply_continues(0, 0, ~count_zero)
            with m.State("BUS_REQ"):
                m.d.comb += [bus.valid.eq(1), bus.payload.addr.eq(bus_addr)]
                with m.If(bus.ready):
                    m.d.sync += bus_addr.eq(bus_addr + 1)
                    m.next = "BUS_DATA"
            with m.State("BUS_DATA"):
                m.d.comb += [rb.valid.eq(rdata.valid), rb.payload.data.eq(rdata.payload),
                             rb.payload.last.eq(count_one), rdata.ready.eq(rb.ready)]
                with m.If(rdata.valid & rb.ready):
                    count_down()
                    with m.If(count_one):
                        reply_continues(0, 0, 0)
                    with m.Else():
                        m.next = "BUS_REQ"
        return m
