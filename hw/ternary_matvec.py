"""Ternary matrix-vector unit, the BitLinear core: ``acc[n] = sum_k q[k] * W[n, k]`` exactly
(docs/numerics.md, sections 1, 2 and 7), and the 5-trits-per-byte weight decoder
(docs/device_image.md).

The golden model is ``golden.numerics.Numerics.ternary_matvec`` (and ``golden.pack`` for the
decoder); these units compute the same integers. There is no multiplier: each lane adds ``+q``,
``-q`` or nothing.

Trits inside the gateware are 2-bit two's complement codes (``TRIT_ZERO``, ``TRIT_POS``,
``TRIT_NEG``): bit 0 says "nonzero", bit 1 says "negative". The unused code ``0b10`` reads as 0.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.pack import TRITS_PER_BYTE, decode_table

from .pipeline import replicas

__all__ = [
    "CODE_MAX",
    "TRIT_NEG",
    "TRIT_POS",
    "TRIT_ZERO",
    "TernaryMatVec",
    "TritDecoder",
    "acc_width",
    "command_layout",
    "trit_word",
]

#: Largest code magnitude (int8 codes are in [-127, 127]; -128 is never produced).
CODE_MAX = 127

#: Lanes per slice of the activation memory, each slice with its own copy of the addresses.
LANES_PER_SLICE = 16
#: the most slices one register of a code beat drives (``TernaryMatVec.beat_copies``)
SLICES_PER_BEAT_COPY = 4

#: Synthesis attribute that keeps a small ROM out of block RAM (Yosys ``memory_libmap``).
ROM_AS_LOGIC = {"ram_style": "logic"}

#: 2-bit trit encodings on every trit bus of the gateware.
TRIT_ZERO = 0b00
TRIT_POS = 0b01
TRIT_NEG = 0b11


def acc_width(k: int) -> int:
    """The contract's accumulator width for K inputs: ``W_acc = 1 + ceil(log2(127 K + 1))``.

    ``|sum of K terms q t| <= 127 K``, and a signed integer of that many bits holds
    ``[-127 K, 127 K]`` (docs/numerics.md, section 2). ``ceil(log2(x + 1))`` is ``x.bit_length()``.
    The same bound sizes every partial sum of the adder tree (a node over m lanes: ``acc_width(m)``).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"accumulator width needs K >= 1, got {k!r}")
    return 1 + (CODE_MAX * int(k)).bit_length()


def trit_word(trits) -> int:
    """Pack trits in {-1, 0, 1} into the integer value of a trit bus: trit i in bits [2i, 2i+2)."""
    word = 0
    for i, t in enumerate(np.asarray(trits).ravel().tolist()):
        if t not in (-1, 0, 1):
            raise ValueError(f"trit {i} must be in {{-1, 0, 1}}, got {t!r}")
        word |= (int(t) & 0b11) << (2 * i)
    return word


def command_layout(max_rows: int, max_cols: int) -> data.StructLayout:
    """The ``cmd`` payload of ``TernaryMatVec``: rows N in bits [0, b_r), cols K above them."""
    return data.StructLayout({"rows": range(max_rows + 1), "cols": range(max_cols + 1)})


def _check_int(name, value, lo):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


class TritDecoder(wiring.Component):
    """Packed-weight decoder: bytes of 5 trits (docs/device_image.md) into 2-bit trits.

    Each byte lane looks its byte up in its own 256 x 10-bit ROM (as logic) built from
    ``golden.pack.decode_table()`` (trit j of the byte in bits [2j, 2j+2) of the entry, so trit 0,
    the least significant base-3 digit, comes first). Invalid bytes 243..255 decode to five zeros,
    as the ROM's rows do (the loader rejects such bytes before they reach the device). The ROM is
    two halves of 128 entries, each read into its own register, and the byte's top bit picks
    between them after the registers: a 7-input function fits one ECP5 logic cell group, where
    the whole 8-input one ran through general routing (10.4-10.5 ns at bd18f0a).

    Parameters
    ----------
    lanes : int
        Bytes per beat, L >= 1 (one ROM per byte lane).

    Attributes
    ----------
    i : In(stream.Signature(ArrayLayout(unsigned(8), L)))
        Packed bytes; byte l of a beat holds trits 5l..5l+4 of the output beat.
    o : Out(stream.Signature(ArrayLayout(unsigned(2), 5 L)))
        Trits, ``TRIT_ZERO``/``TRIT_POS``/``TRIT_NEG``. With ``TernaryMatVec(lanes=5 L)`` this
        stream connects straight to its ``w`` input when the image pads each row to whole
        P-trit words (``ceil(K / P) * L`` bytes per row).

    Latency 1 cycle (the ROMs' registered reads), throughput one beat (5 L trits) per cycle.
    Back-pressure stalls the single stage: ``i.ready`` is high whenever the output register is
    empty or being read (a combinational path from ``o.ready`` to ``i.ready``).
    """

    def __init__(self, lanes: int = 1):
        self.lanes = _check_int("lanes", lanes, 1)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(8), self.lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(unsigned(2), TRITS_PER_BYTE * self.lanes))),
        })

    @staticmethod
    def rom_init() -> list[int]:
        """The ROM contents: entry b = the 5 trits of byte b, 2 bits each, trit 0 lowest."""
        return [trit_word(row) for row in decode_table()]

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
        ]
        init = self.rom_init()
        width = 2 * TRITS_PER_BYTE
        out_bits = self.o.payload.as_value()
        for lane in range(self.lanes):
            # as logic, not a block RAM: one RAM per byte lane would take 39 of an ECP5-85F's 208
            halves = []
            for half in range(2):
                rom = Memory(shape=unsigned(width), depth=128, init=init[128 * half:128 * (half + 1)],
                             attrs=ROM_AS_LOGIC)
                m.submodules[f"rom{lane}_{half}"] = rom
                rd = rom.read_port()
                m.d.comb += [rd.addr.eq(self.i.payload[lane][:7]), rd.en.eq(advance)]
                halves.append(rd.data)
            top = Signal(name=f"top{lane}")
            with m.If(advance):
                m.d.sync += top.eq(self.i.payload[lane][7])
            m.d.comb += out_bits[width * lane:width * (lane + 1)].eq(Mux(top, halves[1], halves[0]))
        with m.If(advance):
            m.d.sync += self.o.valid.eq(self.i.valid)
        return m


class TernaryMatVec(wiring.Component):
    """Ternary matrix-vector unit: ``acc[n] = sum_k q[k] W[n, k]`` for one N x K matrix per command.

    One instance serves every BitLinear shape up to ``max_rows`` x ``max_cols``. Per command:
    the K int8 codes q arrive on ``a``, C per beat, into an activation buffer, then the weights
    arrive on ``w``, P trits per word, and one accumulator per row leaves on ``o``, rows in order.

    Parameters
    ----------
    lanes : int
        P, the number of weights consumed per cycle (any P >= 1; 8..256 in practice).
    max_rows, max_cols : int
        Largest N and K a command may ask for. ``max_cols`` sets the accumulator width
        ``W_acc = acc_width(max_cols) = 1 + ceil(log2(127 max_cols + 1))`` (docs/numerics.md,
        section 2) and the buffer depth.
    levels_per_stage : int
        Adder-tree levels between pipeline registers: 1 (default, every level registered) or 2.
    codes_per_beat : int
        C, the codes per beat on ``a`` (default 1); P must be a multiple of C, so that a beat
        never straddles two words of the activation buffer.

    Attributes
    ----------
    cmd : In(stream.Signature(StructLayout({"rows": range(max_rows + 1), "cols": range(max_cols + 1)})))
        One command per matrix: N = ``rows`` in [1, max_rows], K = ``cols`` in [1, max_cols]
        (other values are a protocol error). Commands are served in order.
    a : In(stream.Signature(ArrayLayout(signed(8), C)))
        The command's K codes q[0..K-1], in [-127, 127], in ``ceil(K / C)`` beats, one per
        cycle: code ``jC + i`` in element i of beat j. Elements of the last beat after the K-th
        are ignored (written as 0), whatever their value. Codes of command j+1 may be sent while
        command j's weights are still streaming (the buffer has two banks).
    w : In(stream.Signature(ArrayLayout(unsigned(2), P)))
        Weight words, 2-bit trits (``TRIT_ZERO`` = 0b00, ``TRIT_POS`` = 0b01, ``TRIT_NEG`` = 0b11;
        0b10 reads as 0). A command takes ``N * ceil(K / P)`` words: row-major, row n is words
        ``n*ceil(K/P) .. (n+1)*ceil(K/P) - 1``, word j of a row holds columns ``jP .. jP+P-1``
        with column ``jP + i`` in trit i. Columns >= K of a row's last word are padding and are
        ignored (their codes read as 0), whatever their value. With ``late_weights`` the
        payload of a transfer is read in the cycle after it (the stream of a
        ``hw.pipeline.CreditRing``), with the same latency.
    o : Out(stream.Signature(signed(W_acc)))
        ``acc[n]`` for n = 0..N-1 of each command, in order.

    Structure: a two-bank activation memory (``lib.memory.Memory`` in slices of about
    ``LANES_PER_SLICE`` lanes, each with its own copy of the read and write addresses; a write
    through a copy of each beat per slice, then per-code enables; one read port); per lane a mux
    selects ``+q``, ``-q`` or 0 (registered); a binary adder tree over the P lanes, registered
    every ``levels_per_stage`` levels, each node sized by ``acc_width`` of the lanes below it; a
    row accumulator; an output FIFO.

    Latency: the accumulator of a row is valid on ``o`` ``latency`` cycles after the row's last
    weight word was accepted (``ceil(K/P) - 1 + latency`` cycles after its first word, with the
    words back to back), when the output FIFO is empty: ``latency = 5 + tree_stages``, with
    ``tree_stages = ceil(ceil(log2 P) / levels_per_stage)`` (the word cycle, the read address's
    copy beside each slice, the activation read and lane select, the tree, the accumulator
    writing the FIFO, the FIFO's output register). P = 8: 8 cycles; P = 32: 10; P = 256: 13.

    Throughput: P weights (one word) per cycle. Write W = N ceil(K/P) for a matrix's word count
    and B = ceil(K/C) for its code beats. With no stalls, a lone matrix's last accumulator is
    valid ``B + W + load_latency - 1 + latency`` cycles after the cycle its command is accepted
    (B cycles of codes; ``load_latency``, 3, or 4 with more than ``SLICES_PER_BEAT_COPY`` slices,
    until the last beat has landed and the bank is marked full; W words; the
    pipeline). The codes of the next matrix load into the other bank (one cycle for its command,
    B for its codes) while the previous one computes, so back-to-back matrices run at one word per
    cycle with no gap whenever ``W_{m-1} >= B_m + 1``, and a run of matrices then costs
    ``sum W + B_0 + load_latency - 1 + latency`` cycles: the fixed overhead is the first load and
    the pipeline.
    A bank is taken for the next load but one only after its last word, so load-bound runs take
    longer (``tests/test_hw_ternary_matvec.predicted_cycles`` has the exact recurrence).

    Ordering: a matrix's weights are taken only after its last code, so the command and codes of
    matrix m must not wait for its weights to be accepted (separate sources, or codes first).

    Back-pressure: every ``ready`` is a function of registers only (no combinational path from
    any ``valid`` or ``ready`` to another stream's ``ready``); ``w.ready`` is a register itself. The datapath never stalls: a row
    reserves its FIFO entry when its first word is accepted, and ``w.ready`` drops at a row
    boundary while all ``fifo_depth`` entries are reserved, so a stalled ``o`` stops the weights
    at the next row start (after at most ``fifo_depth`` rows); the code loader then stops once
    both banks are full, and ``cmd`` while the loader waits for a bank. ``fifo_depth`` =
    ``latency + 2`` is enough that an ``o`` that never stalls never throttles one-word rows.
    """

    def __init__(self, lanes: int, max_rows: int, max_cols: int, *, levels_per_stage: int = 1,
                 codes_per_beat: int = 1, late_weights: bool = False):
        self.lanes = _check_int("lanes", lanes, 1)
        if not isinstance(late_weights, bool):
            raise ValueError(f"late_weights must be a bool, got {late_weights!r}")
        self.late_weights = late_weights
        self.codes_per_beat = _check_int("codes_per_beat", codes_per_beat, 1)
        if self.lanes % self.codes_per_beat:
            raise ValueError(f"lanes ({lanes}) must be a multiple of codes_per_beat ({codes_per_beat})")
        self.max_rows = _check_int("max_rows", max_rows, 1)
        self.max_cols = _check_int("max_cols", max_cols, 1)
        if isinstance(levels_per_stage, bool) or levels_per_stage not in (1, 2):
            raise ValueError(f"levels_per_stage must be 1 or 2, got {levels_per_stage!r}")
        self.levels_per_stage = levels_per_stage
        self.acc_width = acc_width(self.max_cols)
        self.words_per_row = -(-self.max_cols // self.lanes)  # words of the widest row (per bank)
        self.tree_levels = (self.lanes - 1).bit_length()  # ceil(log2 P)
        self.tree_stages = -(-self.tree_levels // levels_per_stage)
        self.latency = 5 + self.tree_stages
        # the lanes of each slice of the activation memory (whole beats, about LANES_PER_SLICE),
        # and the code beats' copies between the loader and the slices (see ``elaborate``)
        per_slice = self.codes_per_beat * max(1, LANES_PER_SLICE // self.codes_per_beat)
        self.slices = [range(lo, min(lo + per_slice, self.lanes)) for lo in range(0, self.lanes, per_slice)]
        n_slices = len(self.slices)
        self.beat_copies = -(-n_slices // SLICES_PER_BEAT_COPY) if n_slices > SLICES_PER_BEAT_COPY else 1
        # cycles from a vector's last code beat accepted to its bank marked full
        self.load_latency = 3 if self.beat_copies == 1 else 4
        # rows in flight from a first word's acceptance to its accumulator leaving the FIFO, plus
        # the cycle the freed credit takes to reach w.ready: one-word rows never wait for credit
        self.fifo_depth = self.latency + 2
        self.cmd_layout = command_layout(self.max_rows, self.max_cols)
        super().__init__({
            "cmd": In(stream.Signature(self.cmd_layout)),
            "a": In(stream.Signature(data.ArrayLayout(signed(8), self.codes_per_beat))),
            "w": In(stream.Signature(data.ArrayLayout(unsigned(2), self.lanes))),
            "o": Out(stream.Signature(signed(self.acc_width))),
        })

    def elaborate(self, platform):
        m = Module()
        P = self.lanes
        bank_words = self.words_per_row

        # The activation memory in slices of about LANES_PER_SLICE lanes (whole beats), each with its
        # own copy of the write and read addresses: one address register would drive the LUT RAM
        # of every lane, across the die.
        C = self.codes_per_beat
        slices, per_slice = self.slices, len(self.slices[0])
        act_wr, act_rd = [], []
        for k, lanes in enumerate(slices):
            mem = Memory(shape=data.ArrayLayout(signed(8), len(lanes)), depth=2 * bank_words, init=[])
            m.submodules[f"act{k}"] = mem
            act_wr.append(mem.write_port(granularity=1))
            act_rd.append(mem.read_port())
        # lane i's code as read (one cycle after the address)
        rd_data = [act_rd[i // per_slice].data[i % per_slice] for i in range(P)]

        # Bank bookkeeping: the loader fills a free bank and marks it full with its job (rows - 1,
        # words per row - 1); the compute side reads the full bank and frees it after its last word.
        full = [Signal(name=f"full{b}") for b in range(2)]
        job_rows_m1 = [Signal(range(self.max_rows), name=f"job{b}_rows_m1") for b in range(2)]
        job_words_m1 = [Signal(range(bank_words), name=f"job{b}_words_m1") for b in range(2)]
        # the job's rows and row words are 1: registered beside them, for the compute's flags
        job_one_row = [Signal(name=f"job{b}_one_row") for b in range(2)]
        job_one_word = [Signal(name=f"job{b}_one_word") for b in range(2)]

        # ---- code loader: beat j of C codes goes to lanes jC .. jC + C - 1 (modulo P) ---------
        G = P // C  # beats per word
        ld_bank = Signal()
        ld_busy = Signal()
        ld_left = Signal(range(self.max_cols + 1))  # codes left, the current beat's included
        after_first = ((1 << G) - 1) & ~1
        ld_lane = Signal(G, init=1)  # one-hot: the lane group of the current beat
        ld_above = Signal(G, init=after_first)  # thermometer: the groups after it
        ld_word = Signal(range(bank_words))
        ld_addr = Signal(range(2 * bank_words))
        ld_rows_m1 = Signal(range(self.max_rows))
        ld_last = Signal()  # the current beat is the vector's last (ld_left <= C, registered)
        ld_free = Mux(ld_bank, ~full[1], ~full[0])
        m.d.comb += [
            self.cmd.ready.eq(~ld_busy & ld_free),
            self.a.ready.eq(ld_busy),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                ld_busy.eq(1),
                ld_left.eq(self.cmd.payload.cols),
                ld_last.eq(self.cmd.payload.cols <= C),
                ld_rows_m1.eq(self.cmd.payload.rows - 1),
                ld_lane.eq(1),
                ld_above.eq(after_first),
                ld_word.eq(0),
                ld_addr.eq(Mux(ld_bank, bank_words, 0)),
            ]

        # The write goes through registers: a copy of the beat and of the loader's state per
        # slice, then each lane's enable and code (the stream's valid and codes reach one copy per
        # slice, not every lane's write enable across the die). With more than
        # SLICES_PER_BEAT_COPY slices the beat first goes into a copy per group of slices, so no
        # register drives more than that many copies. A beat lands in the memory
        # ``load_latency - 1`` cycles after it is accepted.
        a_fire = self.a.valid & self.a.ready
        n_slices = len(slices)
        beat = {  # field: (value, shape); ``short`` is (ld_left <= j) for the beat's codes j >= 1
            "fire": (a_fire, 1), "addr": (ld_addr, range(2 * bank_words)), "codes": (self.a.payload, self.a.payload.shape()),
            "lane": (ld_lane, G), "above": (ld_above, G), "last": (ld_last, 1),
            "short": (Cat(*(ld_left <= j for j in range(C))), C),
        }
        source = {name: [value] * n_slices for name, (value, _) in beat.items()}
        if self.beat_copies > 1:
            for name, (value, shape) in beat.items():
                mid = replicas(f"act_m_{name}", shape, self.beat_copies, reset_less=name != "fire")
                m.d.sync += [copy.eq(value) for copy in mid]
                source[name] = [mid[k * self.beat_copies // n_slices] for k in range(n_slices)]
        b = {name: replicas(f"act_b_{name}", shape, n_slices, reset_less=name != "fire")
             for name, (_, shape) in beat.items()}
        b_fire, b_addr, b_codes, b_lane, b_above, b_last, b_short = (b[name] for name in beat)
        wr_addr = replicas("act_wr_addr", range(2 * bank_words), n_slices)
        for k, lanes in enumerate(slices):
            m.d.sync += [b[name][k].eq(source[name][k]) for name in beat]
            m.d.sync += wr_addr[k].eq(b_addr[k])
            m.d.comb += act_wr[k].addr.eq(wr_addr[k])
            for n, i in enumerate(lanes):
                # lanes after the vector's last code are written with 0 (so padding trits read as 0)
                g, j = divmod(i, C)
                past_end = b_above[k][g] | (b_last[k] & b_short[k][j]) if j else b_above[k][g]
                en = Signal(name=f"act_wr_en{i}")
                code = Signal(signed(8), name=f"act_wr_code{i}", reset_less=True)
                m.d.sync += [en.eq(b_fire[k] & (b_lane[k][g] | (b_last[k] & b_above[k][g]))),
                             code.eq(Mux(past_end, 0, b_codes[k][j]))]
                m.d.comb += [act_wr[k].en[n].eq(en), act_wr[k].data[n].eq(code)]
        # the bank is marked full when its last beat has landed
        commit = Signal(self.load_latency - 1)  # a last beat accepted 1, 2, ... cycles ago
        commit_bank = Signal(self.load_latency - 1)  # its bank
        m.d.sync += [commit.eq(Cat(a_fire & ld_last, commit)), commit_bank.eq(Cat(ld_bank, commit_bank))]
        with m.If(commit[-1]):
            for bank in range(2):
                with m.If(commit_bank[-1] == bank):
                    m.d.sync += full[bank].eq(1)
        with m.If(a_fire):
            m.d.sync += [ld_left.eq(ld_left - C), ld_last.eq(ld_left <= 2 * C)]
            with m.If(ld_lane[G - 1]):
                m.d.sync += [ld_lane.eq(1), ld_above.eq(after_first),
                             ld_word.eq(ld_word + 1), ld_addr.eq(ld_addr + 1)]
            with m.Else():
                m.d.sync += [ld_lane.eq(ld_lane << 1), ld_above.eq(ld_above << 1)]
            with m.If(ld_last):
                m.d.sync += [ld_busy.eq(0), ld_bank.eq(~ld_bank)]
                for b in range(2):
                    with m.If(ld_bank == b):
                        m.d.sync += [job_rows_m1[b].eq(ld_rows_m1), job_words_m1[b].eq(ld_word),
                                     job_one_row[b].eq(ld_rows_m1 == 0), job_one_word[b].eq(ld_word == 0)]

        # ---- compute: word sequencing ------------------------------------------------------------
        cp_bank = Signal()
        word_idx = Signal(range(bank_words))
        row_idx = Signal(range(self.max_rows))
        rd_addr = Signal(range(2 * bank_words))
        # the read address reaches each slice through its own copy, a cycle later
        rd_addr_q = replicas("act_rd_addr", range(2 * bank_words), len(slices))
        m.d.sync += [a.eq(rd_addr) for a in rd_addr_q]
        # FIFO entries reserved by rows started, as a thermometer code (``pending[k]``: more than
        # k), so that "an entry is free" after this cycle's reserve and release is one LUT
        pending = Signal(self.fifo_depth)
        # The word and row flags are registers, kept in step with ``word_idx`` and ``row_idx``:
        # ``w.ready`` depends on them, and equality compares against the job's sizes there were the
        # slowest path of the device. A flag for "at the first word" (row) picks the job's
        # one-word (one-row) flag, else the registered compare made when the index last moved.
        row_start, row_first = Signal(init=1), Signal(init=1)
        word_at_end, row_at_end = Signal(), Signal()  # index == the job's last, given not the first
        last_word = Mux(row_start, Mux(cp_bank, job_one_word[1], job_one_word[0]), word_at_end)
        last_row = Mux(row_first, Mux(cp_bank, job_one_row[1], job_one_row[0]), row_at_end)
        m.d.comb += [port.addr.eq(addr) for port, addr in zip(act_rd, rd_addr_q)]
        # ``w.ready`` is a register: "the bank in use is full, and a row goes on or a FIFO entry is
        # free" of the next cycle's state, computed from this cycle's (the word source's read
        # addresses across the die follow it, so it must leave a register, not the bank and row logic)
        # Two copies: the port's, beside the word source's read address copies, and one beside
        # this logic, so that the word and row state does not wait for a net across the die (their
        # shared ``w_fire`` LUT sat by the source: two crossings in one cycle, 12 ns of routing)
        ready, ready_here = replicas("w_ready", 1, 2, reset_less=False)
        m.d.comb += self.w.ready.eq(ready)
        w_fire = self.w.valid & ready_here
        o_fire = self.o.valid & self.o.ready
        reserve = w_fire & row_start
        done_bank = w_fire & last_word & last_row  # the bank's last word: it is freed
        next_bank = cp_bank ^ done_bank
        next_full = [(full[b] & ~(done_bank & (cp_bank == b))) | (commit[-1] & (commit_bank[-1] == b)) for b in range(2)]
        next_row_start = Mux(w_fire, last_word, row_start)
        all_reserved = pending[-1]  # as it will be: one more, one less, or as it is
        next_all_reserved = Mux(reserve & ~o_fire, pending[-2] if self.fifo_depth > 1 else 1,
                                Mux(o_fire & ~reserve, 0, all_reserved))
        next_ready = Mux(next_bank, next_full[1], next_full[0]) & (~next_row_start | ~next_all_reserved)
        m.d.sync += [ready.eq(next_ready), ready_here.eq(next_ready)]
        words_m1 = Mux(cp_bank, job_words_m1[1], job_words_m1[0])
        rows_m1 = Mux(cp_bank, job_rows_m1[1], job_rows_m1[0])
        with m.If(w_fire):
            m.d.sync += row_start.eq(last_word)
            with m.If(last_word):
                m.d.sync += word_idx.eq(0)
                with m.If(last_row):
                    m.d.sync += [row_idx.eq(0), row_first.eq(1),
                                 cp_bank.eq(~cp_bank), rd_addr.eq(Mux(cp_bank, 0, bank_words))]
                    for b in range(2):
                        with m.If(cp_bank == b):
                            m.d.sync += full[b].eq(0)
                with m.Else():
                    m.d.sync += [row_idx.eq(row_idx + 1), row_first.eq(0), row_at_end.eq(row_idx + 1 == rows_m1),
                                 rd_addr.eq(Mux(cp_bank, bank_words, 0))]
            with m.Else():
                m.d.sync += [word_idx.eq(word_idx + 1), word_at_end.eq(word_idx + 1 == words_m1),
                             rd_addr.eq(rd_addr + 1)]

        # stage 0: the word waits while its activations' address travels to the slices (a late
        # word arrives only now, so it skips the wait)
        s0_valid, s0_first, s0_last = Signal(), Signal(), Signal()
        m.d.sync += [s0_valid.eq(w_fire), s0_first.eq(row_start), s0_last.eq(last_word)]
        if self.late_weights:
            s0_w = self.w.payload
        else:
            s0_w = Signal(self.w.payload.shape(), reset_less=True)  # data: no reset (valid bits have one)
            m.d.sync += s0_w.eq(self.w.payload)
        # stage 1: the weight word meets its activation word
        s1_valid, s1_first, s1_last = Signal(), Signal(), Signal()
        s1_w = Signal(self.w.payload.shape(), reset_less=True)
        m.d.sync += [s1_valid.eq(s0_valid), s1_first.eq(s0_first), s1_last.eq(s0_last), s1_w.eq(s0_w)]

        # stage 2: per-lane select of +q, -q or 0 (registered)
        lanes = []
        for i in range(P):
            trit, q = s1_w[i], rd_data[i]
            lane = Signal(signed(acc_width(1)), name=f"lane{i}", reset_less=True)
            m.d.sync += lane.eq(Mux(trit[0], Mux(trit[1], -q, q), 0))
            lanes.append((lane, 1))
        valid, first, last = Signal(), Signal(), Signal()
        m.d.sync += [valid.eq(s1_valid), first.eq(s1_first), last.eq(s1_last)]

        # adder tree: pairs summed level by level, registered every levels_per_stage levels
        nodes = lanes
        level = 0
        while len(nodes) > 1:
            level += 1
            register = level % self.levels_per_stage == 0 or len(nodes) <= 2
            paired = []
            for j in range(0, len(nodes), 2):
                if j + 1 < len(nodes):
                    (x, cx), (y, cy) = nodes[j], nodes[j + 1]
                    expr, count = x + y, cx + cy
                else:
                    (expr, count) = nodes[j]
                shape = signed(acc_width(min(count, self.max_cols)))
                if register:
                    node = Signal(shape, name=f"t{level}_{j // 2}", reset_less=True)
                    m.d.sync += node.eq(expr)
                else:
                    node = Signal(shape, name=f"t{level}_{j // 2}_c")
                    m.d.comb += node.eq(expr)
                paired.append((node, count))
            nodes = paired
            if register:
                v, f, l = Signal(name=f"t{level}_valid"), Signal(name=f"t{level}_first"), Signal(name=f"t{level}_last")
                m.d.sync += [v.eq(valid), f.eq(first), l.eq(last)]
                valid, first, last = v, f, l
        root = nodes[0][0]

        # row accumulator; the row's total goes into the output FIFO with its last word
        fifo = SyncFIFOBuffered(width=self.acc_width, depth=self.fifo_depth)
        m.submodules.fifo = fifo
        acc = Signal(signed(self.acc_width), reset_less=True)
        total = Signal(signed(self.acc_width))
        m.d.comb += total.eq(Mux(first, root, acc + root))
        with m.If(valid):
            m.d.sync += acc.eq(total)
        m.d.comb += [
            fifo.w_en.eq(valid & last),
            fifo.w_data.eq(total),
            self.o.valid.eq(fifo.r_rdy),
            self.o.payload.eq(fifo.r_data.as_signed()),
            fifo.r_en.eq(self.o.ready),
        ]

        with m.If(reserve & ~o_fire):
            m.d.sync += pending.eq(Cat(1, pending[:-1]))
        with m.Elif(o_fire & ~reserve):
            m.d.sync += pending.eq(pending[1:])
        return m
