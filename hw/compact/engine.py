"""The compact token engine: ``hw.compact.program`` run from a ROM on one arithmetic pipeline.

docs/compact_engine.md has the design. The engine serves ``hw.port.engine_port`` with the same
memory map as ``hw.engine.TokenEngine`` (``golden.image.REGIONS``), so the link, the protocol and
the host runtime do not change.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory

from golden.image import COUNTERS, REGIONS, REGION_SHIFT, SCRATCH_BYTES, DeviceLayout
from hw.pipeline import NO_RW_CHECK
from hw.port import TOKEN_WIDTH, engine_port
from hw.ternary_matvec import TritDecoder, acc_width

from .arith import INT_MUL_BITS, Arithmetic, Function
from .isa import BANK_FORMATS, BANKS, SCALAR_FORMATS, SCALARS, Imm, MatVec, Mem, Pass, Scalar, Vec
from .program import step_program, step_work

__all__ = ["CompactEngine", "COUNTED", "LANES", "encode_program", "instruction", "INVALID_TOKEN"]

#: Ternary lanes: a weight word is 2 bytes, one 16-bit word of the image memory per cycle.
LANES = 10
#: The activity counters the engine counts (``golden.image.COUNTERS``; the others read 0).
COUNTED = ("cycles", "busy_cycles", "steps")
#: ``done`` carries this for a token id out of range (as ``hw.engine``).
INVALID_TOKEN = (1 << TOKEN_WIDTH) - 1

SPACE_BANK, SPACE_MEM, SPACE_SCALAR, SPACE_IMM = range(4)
DST_NONE, DST_BANK, DST_SCALAR = range(3)
REDUCE = {None: 0, "absmax": 1, "top_exponent": 2, "aligned_sum": 3}

#: Image words the engine addresses: 256 KiB, twice the UP5K's SPRAM (a build checks that the
#: model fits the part, ``host.build.check_fits``; a simulation takes any model up to this).
IMAGE_ADDR_BITS = 17

operand = data.StructLayout({"space": 2, "id": 4, "base": IMAGE_ADDR_BITS, "stride2": 1, "per_token": 1})
#: One ROM word: a Pass, or a MatVec (``matvec``; rows in ``n``, the scale register in ``a.id``,
#: the first weight word in ``a.base``, words per row in ``b.base``, the odd rows' bank in
#: ``odd``).
instruction = data.StructLayout({
    "matvec": 1, "fn": Function, "n": 11, "first_only": 1,
    "dst_space": 2, "dst_id": 4, "dst_base": 11,
    "a": operand, "b": operand,
    "reduce": 2, "into": 3, "exponent": 3,
    "odd": 4, "split": 1, "argmax": 1,
})


class ImageMap:
    """Where each region of the device image lies in the engine's 16-bit image memory."""

    def __init__(self, layout: DeviceLayout):
        c = layout.config
        self.words = {"weights": layout.weight_words * layout.word_bytes // 2,
                      "embedding": layout.embedding_words, "pg": 2 * layout.pg_words,
                      "aux": layout.aux_words, "scratch": SCRATCH_BYTES // 2}
        self.base, at = {}, 0
        for region, words in self.words.items():
            self.base[region] = at
            at += words
        self.depth = at
        self.d = c.hidden_size

    def operand_address(self, mem: Mem) -> int:
        if mem.region == "pg":
            return self.base["pg"] + 2 * mem.base + (mem.half == "hi")
        return self.base[mem.region] + mem.base


def _operand(operand, image_map: ImageMap) -> dict:
    if operand is None:
        return {"space": SPACE_IMM, "id": 0, "base": 0, "stride2": 0, "per_token": 0}
    if isinstance(operand, Vec):
        return {"space": SPACE_BANK, "id": BANKS.index(operand.bank), "base": operand.base,
                "stride2": 0, "per_token": 0}
    if isinstance(operand, Mem):
        return {"space": SPACE_MEM, "id": 0, "base": image_map.operand_address(operand),
                "stride2": int(operand.region == "pg"), "per_token": int(operand.per_token)}
    if isinstance(operand, Scalar):
        return {"space": SPACE_SCALAR, "id": operand.index, "base": 0, "stride2": 0, "per_token": 0}
    from golden.formats import encode
    return {"space": SPACE_IMM, "id": 0, "base": int(encode(operand.value, "bf16")), "stride2": 0,
            "per_token": 0}


def encode_program(program, layout: DeviceLayout) -> list[dict]:
    """The ROM words of ``program`` (``instruction`` fields as dicts)."""
    image_map = ImageMap(layout)
    words = []
    for ins in program:
        if isinstance(ins, MatVec):
            words.append({
                "matvec": 1, "fn": Function.INT_MUL, "n": ins.rows, "first_only": 0,
                "dst_space": DST_BANK, "dst_id": BANKS.index(ins.dst.bank), "dst_base": ins.dst.base,
                "a": {"space": SPACE_SCALAR, "id": ins.scale.index, "base": ins.word_base,
                      "stride2": 0, "per_token": 0},
                "b": {"space": SPACE_IMM, "id": 0, "base": ins.words_per_row, "stride2": 0, "per_token": 0},
                "reduce": 0, "into": 0, "exponent": 0,
                "odd": BANKS.index(ins.odd.bank) if ins.odd else 0, "split": int(ins.odd is not None),
                "argmax": int(ins.argmax),
            })
            continue
        dst = ins.dst
        words.append({
            "matvec": 0, "fn": Function[ins.fn.upper()], "n": ins.n, "first_only": int(ins.first_only),
            "dst_space": DST_NONE if dst is None else DST_SCALAR if isinstance(dst, Scalar) else DST_BANK,
            "dst_id": 0 if dst is None else dst.index if isinstance(dst, Scalar) else BANKS.index(dst.bank),
            "dst_base": dst.base if isinstance(dst, Vec) else 0,
            "a": _operand(ins.a, image_map), "b": _operand(ins.b, image_map),
            "reduce": REDUCE[ins.reduce], "into": ins.into.index if ins.into else 0,
            "exponent": ins.exponent.index if ins.exponent else 0,
            "odd": 0, "split": 0, "argmax": 0,
        })
    return words


def operand_sources(program) -> dict:
    """What ``program`` reads through each operand (``a``, ``b``): the banks, the scalar
    registers, whether the image and whether immediates; under ``exponent``, the scalar registers
    an aligned sum takes its exponent from, under ``absmax`` those an absmax goes into, and under
    ``sigmoid`` the banks the sigmoid passes read (through ``a``). The
    engine wires only these: the ROM is fixed at build time, and the synthesis tools cannot see
    through it."""
    used = {op: {"banks": [], "scalars": set(), "mem": False, "imm": False} for op in "ab"}
    used["exponent"], used["absmax"], used["sigmoid"] = set(), set(), []
    for ins in program:
        if isinstance(ins, MatVec):
            used["a"]["scalars"].add(ins.scale.index)  # the row's scale comes through a
            continue
        if ins.exponent is not None:
            used["exponent"].add(ins.exponent.index)
        if ins.reduce == "absmax":
            used["absmax"].add(ins.into.index)
        if ins.fn in ("sigmoid", "sigmoid_neg"):
            if not isinstance(ins.a, Vec):
                raise ValueError("a sigmoid pass reads a bank")
            if ins.a.bank not in used["sigmoid"]:
                used["sigmoid"].append(ins.a.bank)
        for op, operand in (("a", ins.a), ("b", ins.b)):
            if isinstance(operand, Vec) and operand.bank not in used[op]["banks"]:
                used[op]["banks"].append(operand.bank)
            elif isinstance(operand, Scalar):
                used[op]["scalars"].add(operand.index)
            used[op]["mem"] |= isinstance(operand, Mem)
            used[op]["imm"] |= isinstance(operand, Imm)
    return used


class CompactEngine(wiring.Component):
    """One token step of ``hw.compact.program.step_program(layout)``, served through
    ``hw.port.engine_port``.

    Parameters
    ----------
    layout : golden.image.DeviceLayout
        The model's dimensions and the memory map; its lane count must be ``LANES``.
    image : dict of region name to bytes, optional
        Initial contents of the writable regions (``DeviceLayout.image``), for simulation.

    Latency: a step takes one cycle per element of every pass and per weight word of every
    MatVec, plus the pipeline's latency per pass and a few cycles per instruction (no overlap).
    Throughput: one step at a time; ``step.ready`` is low while a step runs and until ``done`` is
    taken. The bus is served between steps only, one request at a time: a write takes 2 cycles, a
    read 4 plus ``rdata`` back-pressure. Every byte is written as it comes (the image memory has
    byte enables).
    """

    #: the activity counters it counts (``build_info`` reports them)
    COUNTED = COUNTED

    def __init__(self, layout: DeviceLayout, image: dict | None = None):
        if not isinstance(layout, DeviceLayout):
            raise ValueError(f"layout must be a golden.image.DeviceLayout, got {layout!r}")
        if layout.lanes != LANES:
            raise ValueError(f"the compact engine has {LANES} lanes, the layout {layout.lanes}")
        c = layout.config
        if c.vocab_size >= INVALID_TOKEN:
            raise ValueError(f"vocab_size must be below {INVALID_TOKEN}, got {c.vocab_size}")
        # (which also keeps a row's accumulator, at most 127 x 1,023 in magnitude, in int_mul's range)
        longest = max(c.hidden_size, 2 * c.intermediate_size, c.vocab_size)
        if longest >= 1 << 10 or c.num_hidden_layers * c.hidden_size >= 1 << 10:
            raise ValueError("vectors are limited to 1,023 elements")
        assert 127 * 1023 < 1 << INT_MUL_BITS  # [-2**22, 2**22)
        self.layout = layout
        self.image_map = ImageMap(layout)
        if self.image_map.depth > 1 << IMAGE_ADDR_BITS:
            raise ValueError(f"the image takes {2 * self.image_map.depth:,} bytes, more than the "
                             f"{2 << IMAGE_ADDR_BITS:,} the image memory addresses")
        self.image = {} if image is None else dict(image)
        self.program = step_program(layout)
        # the arithmetic pipeline's int_pow2 takes one element at a time (hw.compact.arith)
        if any(isinstance(ins, Pass) and ins.fn == "int_pow2" and ins.n != 1 for ins in self.program):
            raise ValueError("int_pow2 runs on passes of one element")
        self.rom = encode_program(self.program, layout)
        self.arith = Arithmetic()  # (an attribute: benches watch its output)
        self.memories = {}  # filled by elaborate(): the banks by name, for simulation tools
        super().__init__(engine_port)

    @staticmethod
    def per_step(layout: DeviceLayout) -> dict:
        """The counters' increments per step that the engine leaves to the host (``step_work``)."""
        return step_work(step_program(layout))

    def _image_init(self) -> list[int]:
        words = [0] * self.image_map.depth
        for region, data_bytes in self.image.items():
            base = self.image_map.base[region]
            for k in range(0, len(data_bytes), 2):
                words[base + k // 2] = int.from_bytes(data_bytes[k:k + 2], "little")
        return words

    def elaborate(self, platform):
        m = Module()
        lay, imap = self.layout, self.image_map
        cfg = lay.config
        d, vocab = cfg.hidden_size, cfg.vocab_size
        maxk = max(op.cols for op in lay.ops)
        depth = {bank: max(d, cfg.intermediate_size, 2) for bank in BANKS}
        depth.update(h=cfg.num_hidden_layers * d, w=cfg.num_hidden_layers * d, logits=vocab)

        m.submodules.arith = arith = self.arith

        # ---- memories ---------------------------------------------------------------------------
        # (no init without a preloaded image: a zero init is a line of Verilog per word). The bus
        # writes between steps and never reads the word it writes in the same cycle: no
        # read-during-write behaviour is asked of it (NO_RW_CHECK), so the SPRAM can hold it;
        # ``ram_style = "huge"`` asks for SPRAM (by Yosys's costs 241 block RAMs are cheaper).
        m.submodules.image = image = Memory(shape=16, depth=imap.depth,
                                            init=self._image_init() if self.image else [],
                                            attrs={**NO_RW_CHECK, "ram_style": "huge"})
        img_rd, img_wr = image.read_port(), image.write_port(granularity=8)
        # A single-port RAM, as the UP5K's SPRAM is: one address for both ports (with two, Yosys
        # takes block RAMs) and no read in a write's cycle (with a read in every cycle it took
        # eight SPRAMs for four SPRAMs' worth of words).
        img_addr = Signal(IMAGE_ADDR_BITS)
        m.d.comb += [img_rd.addr.eq(img_addr), img_wr.addr.eq(img_addr), img_rd.en.eq(~img_wr.en.any())]
        m.submodules.rom = rom = Memory(shape=instruction, depth=len(self.rom), init=self.rom)
        rom_rd = rom.read_port()
        # the ROM's output holds the instruction: pc changes only between instructions
        ins = rom_rd.data
        # A bank is never read and written at one address in one cycle: a pass reads element j
        # while it writes an element issued a pipeline's latency earlier, and the next
        # instruction reads only after FETCH and DECODE. So no read-during-write logic
        # (NO_RW_CHECK: about 480 LUT4 on the UP5K).
        banks, rd, wr = {}, {}, {}
        for bank in BANKS:
            if bank == "q":
                continue
            width = 32 if BANK_FORMATS[bank] == "fp32" else 16
            m.submodules[f"bank_{bank}"] = banks[bank] = Memory(shape=width, depth=depth[bank], init=[],
                                                                attrs=NO_RW_CHECK)
            rd[bank], wr[bank] = banks[bank].read_port(), banks[bank].write_port()
        self.memories.update(banks)
        q_words = -(-maxk // LANES)
        m.submodules.bank_q = q_mem = Memory(shape=8 * LANES, depth=q_words, init=[], attrs=NO_RW_CHECK)
        q_rd, q_wr = q_mem.read_port(), q_mem.write_port(granularity=8)
        trit_roms = []
        for lane in range(2):
            m.submodules[f"trits{lane}"] = trom = Memory(shape=10, depth=256, init=TritDecoder.rom_init())
            trit_roms.append(trom.read_port())
        # Each scalar register keeps only the bits its format has (SCALAR_FORMATS): a bf16
        # value's upper half, an exponent field's low byte, a word's 32 bits.
        scalar_bits = {"bf16": (16, 32), "exponent": (0, 8), "word": (0, 32)}
        scalars = [Signal(hi - lo, name=f"scalar{k}") for k, (lo, hi) in
                   enumerate(scalar_bits[fmt] for fmt in SCALAR_FORMATS)]

        def scalar_word(k):
            """Scalar register ``k`` as the pipeline's 32-bit word."""
            lo, _hi = scalar_bits[SCALAR_FORMATS[k]]
            return Cat(Const(0, lo), scalars[k]) if lo else scalars[k]

        def scalar(index, among):
            """Scalar register ``index``, one of ``among`` (the ones read there)."""
            value = Signal(32)
            with m.Switch(index):
                for k in sorted(among):
                    with m.Case(k):
                        m.d.comb += value.eq(scalar_word(k))
            return value

        # ---- step control -----------------------------------------------------------------------
        busy = Signal()
        token = Signal(TOKEN_WIDTH)
        emb_row = Signal(IMAGE_ADDR_BITS)  # token * d, as shifts and adds (no multiplier)
        fresh = Signal(init=1)
        first = Signal()
        argmax = Signal(TOKEN_WIDTH)
        pc = Signal(range(len(self.rom) + 1))
        with m.If(self.reset):
            m.d.sync += fresh.eq(1)
        go = Signal()
        with m.If(self.step.valid & self.step.ready):
            with m.If(self.step.payload < vocab):
                m.d.sync += [token.eq(self.step.payload), first.eq(fresh | self.reset), fresh.eq(0),
                             busy.eq(1), pc.eq(0)]
                m.d.comb += go.eq(1)
            with m.Else():
                m.d.sync += [self.done.valid.eq(1), self.done.payload.eq(INVALID_TOKEN)]
        with m.If(self.done.valid & self.done.ready):
            m.d.sync += self.done.valid.eq(0)
        terms = [token << k for k in range(d.bit_length()) if d >> k & 1]
        m.d.comb += emb_row.eq(sum(terms[1:], terms[0]))

        # ---- passes: issue, operands, write-back, reductions ------------------------------------
        j = Signal(11)  # elements issued
        out = Signal(11)  # results written
        issuing = Signal()
        issued = Signal()  # an element's reads were issued last cycle: its operands are on the ports
        a_addr, b_addr = Signal(11), Signal(11)  # each operand's bank element
        # the image word of the one operand that reads the image (or the MatVec's weight word):
        # one pointer and one adder, where two operands' image-wide addresses took two of each
        mem_ptr = Signal(IMAGE_ADDR_BITS)
        m.d.sync += issued.eq(issuing)
        a, b = ins.a, ins.b

        # Each operand's source, decoded at DECODE (the instruction holds for the pass): a one-hot
        # select of the bank it reads, whether it reads the image, and a register holding its
        # scalar or immediate value. The operand is then an AND-OR of the sources, not a
        # multiplexer on the instruction's fields (1,600 LUT4 on the UP5K).
        # Only the sources the program reads through an operand are wired to it (operand_sources).
        sources = operand_sources(self.program)
        sel = {op: {bank: Signal(name=f"{op}_bank_{bank}") for bank in sources[op]["banks"]} for op in "ab"}
        from_mem = {op: Signal(name=f"{op}_mem") for op in "ab"}
        const = {op: Signal(32, name=f"{op}_const") for op in "ab"}

        def decode_operand(op, field):
            """Statements loading operand ``op``'s decoded source from ROM word field ``field``."""
            used = sources[op]
            imm = Cat(Const(0, 16), field.base[:16]) if used["imm"] else 0
            return [
                *[flag.eq((field.space == SPACE_BANK) & (field.id == BANKS.index(bank)))
                  for bank, flag in sel[op].items()],
                from_mem[op].eq((field.space == SPACE_MEM) if used["mem"] else 0),
                const[op].eq(Mux(field.space == SPACE_SCALAR, scalar(field.id, used["scalars"]),
                                 Mux(field.space == SPACE_IMM, imm, 0))),
            ]

        # bank read addresses: each bank is read by the operand that names it
        for bank in rd:
            if bank in sel["a"] and bank in sel["b"]:
                m.d.comb += rd[bank].addr.eq(Mux(sel["a"][bank], a_addr, b_addr))
            elif bank in sel["a"] or bank in sel["b"]:
                m.d.comb += rd[bank].addr.eq(a_addr if bank in sel["a"] else b_addr)

        def gated(op, bank):
            data_ = rd[bank].data
            return Mux(sel[op][bank], data_ if len(data_) == 32 else Cat(Const(0, 16), data_), 0)

        # the sigmoids' operand: the OR of the banks they read, which a's OR then extends
        sigmoid_x = Signal(32)
        m.d.comb += sigmoid_x.eq(reduce(operator.or_, [gated("a", bank) for bank in sources["sigmoid"]], 0))

        def value(op):
            terms = [const[op], Mux(from_mem[op], Cat(Const(0, 16), img_rd.data), 0)]
            terms += [gated(op, bank) for bank in sel[op] if op == "b" or bank not in sources["sigmoid"]]
            if op == "a":
                terms.append(sigmoid_x)
            v = Signal(32, name=f"{op}_value")
            m.d.comb += v.eq(reduce(operator.or_, terms))
            return v

        a_val, b_val = value("a"), value("b")
        m.d.comb += [arith.fn.eq(ins.fn), arith.i.a.eq(a_val), arith.i.b.eq(b_val),
                     arith.i.x.eq(sigmoid_x[16:])]

        # write-back
        dst_bank = Signal(4)
        dst_addr = Signal(11)
        result = arith.o
        for bank in wr:
            k = BANKS.index(bank)
            m.d.comb += [
                wr[bank].addr.eq(dst_addr),
                wr[bank].data.eq(result if len(wr[bank].data) == 32 else result[16:]),
                wr[bank].en.eq(arith.o_valid & (ins.dst_space == DST_BANK) & (dst_bank == k)),
            ]
        # ...the codes, ten to a q word (lane l of word w: element 10 w + l), each written into
        # its lane's byte (a pass's last word may stop short: its other lanes keep older codes,
        # which meet zero trits)
        code_lane = Signal(range(LANES))
        q_addr = Signal(range(q_words + 1))
        code_in = arith.o_valid & (ins.dst_space == DST_BANK) & (dst_bank == BANKS.index("q")) & ~ins.matvec
        last_out = out + 1 == ins.n
        m.d.comb += [q_wr.addr.eq(q_addr), q_wr.data.eq(Cat(*[result[:8]] * LANES)),
                     q_wr.en.eq(Mux(code_in, 1 << code_lane, 0))]
        with m.If(code_in):
            m.d.sync += code_lane.eq(code_lane + 1)
            with m.If(code_lane == LANES - 1):
                m.d.sync += [code_lane.eq(0), q_addr.eq(q_addr + 1)]

        # the pass's reduction: one accumulator (cleared at DECODE), its register written the
        # cycle after the pass's last result; a scalar destination (a pass of one element) written
        # directly. An aligned sum's term is registered before it is added: the subtraction, the
        # shifter and the 32-bit adder in one cycle were the UP5K's slowest path.
        reduced = Signal(32)
        reduced_next = Signal(32)
        top = Signal(8)
        m.d.comb += top.eq(scalar(ins.exponent, sources["exponent"])[:8])
        exp = result[23:31]
        sig = Cat(result[16:23], exp != 0)
        dist = top - exp
        aligned = Signal(24)  # the previous result's term (0 after any other cycle), to add now
        term_pending = Signal()
        reducing = arith.o_valid & ~ins.matvec
        summing = reducing & (ins.reduce == REDUCE["aligned_sum"])
        m.d.sync += [aligned.eq(Mux(summing & ~dist[6:].any(), Cat(Const(0, 16), sig) >> dist[:6], 0)),
                     term_pending.eq(summing)]
        reduce_done = Signal()  # the cycle after a reducing pass's last result
        m.d.sync += reduce_done.eq(reducing & (ins.reduce != 0) & last_out)
        m.d.comb += reduced_next.eq(reduced)
        with m.Switch(ins.reduce):
            with m.Case(REDUCE["absmax"]):
                # into bf16 registers only, the results are bf16 (the reference machine refuses
                # others), so their upper halves decide
                low = 16 if all(SCALAR_FORMATS[k] == "bf16" for k in sources["absmax"]) else 0
                with m.If(reducing & (result[low:31] > reduced[low:31])):
                    m.d.comb += reduced_next.eq(result[:31])
            with m.Case(REDUCE["top_exponent"]):
                with m.If(reducing & (exp > reduced[:8])):
                    m.d.comb += reduced_next.eq(exp)
            with m.Case(REDUCE["aligned_sum"]):
                m.d.comb += reduced_next.eq(reduced + aligned)
        with m.If(reducing | term_pending):
            m.d.sync += reduced.eq(reduced_next)
        to_scalar = Signal(range(SCALARS))
        m.d.comb += to_scalar.eq(Mux(reduce_done, ins.into, ins.dst_id))
        with m.If((reducing & (ins.dst_space == DST_SCALAR)) | reduce_done):
            scalar_in = Mux(reduce_done, reduced_next, result)
            with m.Switch(to_scalar):
                for k in range(SCALARS):
                    lo, hi = scalar_bits[SCALAR_FORMATS[k]]
                    with m.Case(k):
                        m.d.sync += scalars[k].eq(scalar_in[lo:hi])

        # ---- MatVec: weight words and codes into the lanes, rows into the pipeline ---------------
        row = Signal(11)
        word = Signal(6)  # word within the row
        mv_issue = Signal()
        mv_last = Signal()  # the row's last word
        # stage 1: the image word lands, and the trit ROMs take its bytes; the q word is read a
        # cycle later than the image word, so that it lands with the trits (no register for it)
        word_late = Signal.like(word)
        m.d.sync += word_late.eq(word)
        m.d.comb += [q_rd.addr.eq(word_late)]
        p1_valid, p1_last, p2_valid, p2_last, s2_valid, s2_last = (Signal() for _ in range(6))
        m.d.sync += [p1_valid.eq(mv_issue), p1_last.eq(mv_last), p2_valid.eq(p1_valid), p2_last.eq(p1_last)]
        for lane, trom in enumerate(trit_roms):
            m.d.comb += trom.addr.eq(img_rd.data[8 * lane:8 * lane + 8])
        # stage 2: the trits and the codes: the word's dot product, registered. A negated code is
        # its complement plus one: the complements go into the sum and the ones are counted, so no
        # lane has an adder of its own; the sum is a tree of two-input adders, kept apart: Yosys
        # would otherwise merge the long sum into a carry-save network of full adders, which the
        # iCE40 builds from LUTs instead of its carry chains.
        trits = Cat(trit_roms[0].data, trit_roms[1].data)
        width = acc_width(LANES)
        terms, negated = [], []
        for lane in range(LANES):
            code = q_rd.data[8 * lane:8 * lane + 8]
            nonzero, negative = trits[2 * lane], trits[2 * lane + 1]
            term = Signal(signed(8), name=f"lane{lane}")
            m.d.comb += term.eq((code ^ negative.replicate(8)) & nonzero.replicate(8))
            terms.append(term)
            negated.append(nonzero & negative)
        terms.append(sum(negated[1:], negated[0]))
        level = 0
        while len(terms) > 1:
            pairs = []
            for k in range(0, len(terms) - 1, 2):
                partial = Signal(signed(width), name=f"dot{level}_{k // 2}", attrs={"keep": 1})
                m.d.comb += partial.eq(terms[k] + terms[k + 1])
                pairs.append(partial)
            terms = pairs + terms[len(terms) - len(terms) % 2:]
            level += 1
        dot = Signal(signed(width))
        m.d.sync += [s2_valid.eq(p2_valid), s2_last.eq(p2_last), dot.eq(terms[0])]
        # stage 3: the row's accumulator; its last word sends the row to the pipeline
        acc = Signal(signed(acc_width(maxk)))
        row_acc = acc + dot
        best = Signal(signed(acc_width(maxk)))
        rows_done = Signal(11)
        with m.If(s2_valid):
            m.d.sync += acc.eq(Mux(s2_last, 0, row_acc))
            with m.If(s2_last):
                m.d.sync += rows_done.eq(rows_done + 1)
                with m.If(ins.argmax & ((rows_done == 0) | (row_acc > best))):
                    m.d.sync += [best.eq(row_acc), argmax.eq(rows_done)]

        # ---- the sequencer ----------------------------------------------------------------------
        m.d.comb += [rom_rd.addr.eq(pc), img_addr.eq(mem_ptr)]
        stride = Mux(ins.a.stride2 | ins.b.stride2, 2, 1)
        last = len(self.rom) - 1
        finish = Signal()  # the step's last instruction is done
        with m.FSM(name="seq"):
            with m.State("IDLE"):
                with m.If(go):
                    m.next = "FETCH"
            with m.State("FETCH"):  # the ROM word of pc is read
                m.next = "DECODE"
            with m.State("DECODE"):
                word_ = rom_rd.data
                m.d.sync += [j.eq(0), out.eq(0), row.eq(0), word.eq(0),
                             rows_done.eq(0), acc.eq(0), code_lane.eq(0), q_addr.eq(0),
                             dst_bank.eq(word_.dst_id), dst_addr.eq(word_.dst_base)]
                # the image operand's first word (a MatVec's first weight word is in a.base)
                mem_op = Mux((word_.a.space == SPACE_MEM) | word_.matvec, word_.a.as_value(), word_.b.as_value())
                mem_op = operand(mem_op)
                m.d.sync += [a_addr.eq(word_.a.base[:11]), b_addr.eq(word_.b.base[:11]),
                             mem_ptr.eq(mem_op.base + Mux(mem_op.per_token & ~word_.matvec, emb_row, 0)),
                             *decode_operand("a", word_.a), *decode_operand("b", word_.b)]
                with m.If(word_.matvec):
                    m.next = "MATVEC"
                with m.Elif(word_.first_only & ~first):
                    m.d.sync += pc.eq(pc + 1)
                    m.next = "FETCH"
                with m.Else():
                    m.d.sync += reduced.eq(0)
                    m.next = "PASS"
            with m.State("PASS"):
                m.d.comb += issuing.eq(j < ins.n)
                with m.If(issuing):
                    m.d.sync += [j.eq(j + 1), a_addr.eq(a_addr + 1), b_addr.eq(b_addr + 1),
                                 mem_ptr.eq(mem_ptr + stride)]
                with m.If(arith.o_valid):
                    m.d.sync += [out.eq(out + 1), dst_addr.eq(dst_addr + 1)]
                    with m.If(last_out):
                        m.next = "NEXT"
            with m.State("MATVEC"):
                rows = ins.n
                wpr = ins.b.base[:6]
                m.d.comb += [issuing.eq(0), mv_issue.eq(row < rows), mv_last.eq(word == wpr - 1)]
                with m.If(mv_issue):
                    m.d.sync += [mem_ptr.eq(mem_ptr + 1), word.eq(Mux(mv_last, 0, word + 1))]
                    with m.If(mv_last):
                        m.d.sync += row.eq(row + 1)
                with m.If(arith.o_valid):
                    m.d.sync += out.eq(out + 1)
                    with m.If(ins.split):
                        m.d.sync += [dst_addr.eq(Mux(out[0], dst_addr + 1, dst_addr)),
                                     dst_bank.eq(Mux(out[0], ins.dst_id, ins.odd))]
                    with m.Else():
                        m.d.sync += dst_addr.eq(dst_addr + 1)
                    with m.If(last_out):
                        m.next = "NEXT"
            with m.State("NEXT"):
                m.d.comb += finish.eq(pc == last)
                with m.If(pc == last):
                    m.d.sync += [busy.eq(0), self.done.valid.eq(1), self.done.payload.eq(argmax)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += pc.eq(pc + 1)
                    m.next = "FETCH"

        # ---- activity counters: the ones that vary (COUNTED). The others of golden.image.COUNTERS
        # read 0: the MLGRU and GLU units', as the engine has none (their work is in the passes),
        # and those that count a step's work, the same in every step of a straight-line program
        # (``step_work``; INFO's ``per_step``), which cost 260 logic cells on the UP5K ------------
        counters = {name: Signal(32, name=f"count_{name}") for name in COUNTED}
        m.d.sync += counters["cycles"].eq(counters["cycles"] + 1)
        with m.If(busy):
            m.d.sync += counters["busy_cycles"].eq(counters["busy_cycles"] + 1)
        with m.If(finish):
            m.d.sync += counters["steps"].eq(counters["steps"] + 1)

        bus_idle = self._bus(m, imap, img_addr, img_rd, img_wr, rd["logits"], counters, busy)
        # a waiting bus request goes first (hw.port): the link's requests keep their order
        m.d.comb += self.step.ready.eq(~busy & ~self.done.valid & ~self.bus.valid & bus_idle)

        # the pipeline's input: a pass's element one cycle after its reads, a MatVec's rows
        m.d.comb += arith.i_valid.eq(Mux(ins.matvec, s2_valid & s2_last, issued))
        with m.If(ins.matvec):
            m.d.comb += [arith.i.a.eq(row_acc), arith.i.b.eq(a_val)]  # a: the scale register
        return m

    def _bus(self, m, imap, img_addr, img_rd, img_wr, logits_rd, counters, busy):
        """The byte bus between steps: the image regions (byte writes into the 16-bit words), the
        logits, the counters (a read of ``cycles``' byte 0 latches its other three; the others
        hold still between steps) and the scratch bytes (in the image memory)."""
        regions = {REGIONS[name] >> REGION_SHIFT: name for name in ("weights", "embedding", "pg", "aux", "scratch")}
        req = Signal.like(self.bus.payload)
        region = req.addr[REGION_SHIFT:]
        offset = req.addr[:REGION_SHIFT]
        in_image = Signal()
        image_byte = Signal(IMAGE_ADDR_BITS + 1)
        # the region's base and size as a choice of constants, then one adder and one compare
        region_base, region_bytes = Signal(IMAGE_ADDR_BITS + 1), Signal(IMAGE_ADDR_BITS + 2)
        with m.Switch(region):
            for number, name in regions.items():
                with m.Case(number):
                    m.d.comb += [region_base.eq(2 * imap.base[name]), region_bytes.eq(2 * imap.words[name])]
        m.d.comb += [image_byte.eq(region_base + offset), in_image.eq(offset < region_bytes)]
        latched = Signal(32)  # ``cycles`` as its byte 0 was read (bits 8-31 are kept)
        rdata = Signal(8)
        bus_idle = Signal()
        with m.FSM(name="bus"):
            with m.State("IDLE"):
                m.d.comb += bus_idle.eq(1)
                m.d.comb += self.bus.ready.eq(~busy)
                with m.If(self.bus.valid & ~busy):
                    m.d.sync += req.eq(self.bus.payload)
                    m.next = "ACCESS"
            with m.State("ACCESS"):  # the write, or the read's address
                with m.If(req.write):
                    m.d.comb += [img_addr.eq(image_byte[1:]), img_wr.data.eq(Cat(req.data, req.data)),
                                 img_wr.en.eq(Mux(in_image, Mux(image_byte[0], 0b10, 0b01), 0))]
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += [img_addr.eq(image_byte[1:]), logits_rd.addr.eq(offset[1:])]
                    m.next = "READ"
            with m.State("READ"):  # the memories' words are out: pick the byte
                # a counter's byte: the counters hold still between steps, but for ``cycles``,
                # whose byte 0 latches its upper bytes (a byte multiplexer and 24 flip-flops,
                # where a latch of the whole counter read took a word multiplexer and 32)
                counter_byte = Signal(8)
                with m.Switch(offset[:6]):
                    for k, name in enumerate(COUNTERS):
                        for byte in range(4) if name in counters else ():
                            with m.Case(4 * k + byte):
                                source = latched if name == "cycles" and byte else counters[name]
                                m.d.comb += counter_byte.eq(source.word_select(byte, 8))
                with m.If(region == REGIONS["counters"] >> REGION_SHIFT):
                    with m.If(offset[:6] == 4 * COUNTERS.index("cycles")):
                        m.d.sync += latched.eq(counters["cycles"])
                    m.d.sync += rdata.eq(counter_byte)
                with m.Elif(region == REGIONS["logits"] >> REGION_SHIFT):
                    m.d.sync += rdata.eq(Mux(offset[0], logits_rd.data[8:], logits_rd.data[:8]))
                with m.Elif(in_image):
                    m.d.sync += rdata.eq(Mux(image_byte[0], img_rd.data[8:], img_rd.data[:8]))
                with m.Else():
                    m.d.sync += rdata.eq(0)
                m.next = "REPLY"
            with m.State("REPLY"):
                m.d.comb += [self.rdata.valid.eq(1), self.rdata.payload.eq(rdata)]
                with m.If(self.rdata.ready):
                    m.next = "IDLE"
        return bus_idle
