"""The token engine: one complete token step of the model from on-chip memories.

Golden model: ``golden.bitexact.BitExactModel.step`` (mixer "code"). Memory map and schedule:
``golden.image.DeviceLayout``. Architecture and the schedule of a step: docs/architecture.md.

The step is a list of ops, one per BitLinear (i, f, g, o, gate, down per layer, then the head).
Four processes walk that list independently, each at its own pace, coupled only by the streams
between them, so that they overlap wherever the data allow:

* the **feeder** streams each op's input vector (the residual stream x, or the MLGRU engine's
  output) with its norm weights into the RMSNorm + quantiser (``NormQuant``);
* the **code router** sends each op's command and int8 codes (from the quantiser or from the GLU
  stage's quantiser) into the ternary matrix-vector unit;
* the **weight reader** streams every weight word of the step, in image order, into the lanes;
* the **post stage** rescales each accumulator (``IntToFloat``, L-Mul by the op's scale) and
  routes it: to the i/f buffers, into the MLGRU engine (with i, f and keep looked up), into the
  residual add (bf16 ``FAdd``, written back to x), into the GLU stage (rows come in gate/value
  pairs), or into the logits with a running argmax on the integer accumulators.

x is read only after the op that last wrote it has finished (a version count), which is the only
synchronisation the streams do not already give.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory

from golden.image import COUNTERS, DESTS, REGION_SHIFT, REGIONS, SCRATCH_BYTES, SOURCES, DeviceLayout

from .convert import IntToFloat
from .fadd import FAdd
from .glu import GLUStage
from .lmul import LMul
from .mlgru import MLGRUEngine
from .normquant import NormQuant
from .pipeline import NO_RW_CHECK, CreditQueue, CreditRing, replicas
from .port import ADDR_WIDTH, TOKEN_WIDTH, engine_port
from .skid import SkidBuffer, registered, registered_into
from .ternary_matvec import LANES_PER_SLICE, TernaryMatVec, TritDecoder

__all__ = ["TokenEngine", "INVALID_TOKEN"]

#: ``done`` answers a step whose token id is not below the vocabulary size with this id.
INVALID_TOKEN = (1 << TOKEN_WIDTH) - 1
#: log2 of the words per bank of the weights, the embedding, the pg and the aux words: one ECP5
#: block RAM deep (2048 x 9, 16384 x 1, 512 x 36, 1024 x 18), so every block RAM output goes straight into a register
#: (``_banked_read``).
WEIGHT_BANK_BITS = 11
EMBEDDING_BANK_BITS = 14
PG_BANK_BITS = 9
AUX_BANK_BITS = 10
#: bits of a word per column of block RAMs with their own registers (``_banks``): one RAM of
#: 2048 x 9 for the weights, two of 16384 x 1 for the embedding (with 8 RAMs a column, the bus
#: write address still routed 13 ns to the RAMs of a column, spread along the die's RAM rows)
WEIGHT_COLUMN_BITS = 9
EMBEDDING_COLUMN_BITS = 2
#: cycles from an address to its word out of ``_banked_read``, and to the block RAMs' address pins
BANKED_READ_LATENCY = 5
BANK_ADDRESS_LATENCY = 2
#: the weights' address reaches their 140 block RAMs' copies through two levels of group
#: copies, not one: a group's copy to a RAM's was 10.96 ns of routing (145380d seed 1)
WEIGHT_ADDRESS_LATENCY = BANK_ADDRESS_LATENCY + 1
#: cycles from the bus's ACCESS to a banked memory's write port (``TokenEngine``): the read
#: ports' address registers hold the bus's address then (``WEIGHT_ADDRESS_LATENCY`` and
#: ``BANK_ADDRESS_LATENCY`` cycles after it, for the three cycles the bus holds it)
BUS_WRITE_LATENCY = WEIGHT_ADDRESS_LATENCY + 1
#: of the bus write data's registers, those shared by a column's banks (the first two); each
#: block RAM has its own after them (one shared register to a column's four RAMs, in EBR rows
#: across the die, routed 11.5 ns at 145380d seed 1)
SHARED_WRITE_STAGES = 2
#: the weights' banks are picked in two stages (a bank within each pair, then the pair): their
#: block RAMs lie in EBR rows across the die, and one 4-way pick register took 12 ns of routing
WEIGHT_PICK_STAGES = 2
WEIGHT_READ_LATENCY = BANKED_READ_LATENCY + WEIGHT_PICK_STAGES - 1 + WEIGHT_ADDRESS_LATENCY - BANK_ADDRESS_LATENCY
#: the pg words' banks too: a one-stage pick of the pg banks routed 9.6-10.8 ns in four of seven
#: ULX3S builds (818956c to ebc03ed)
PG_PICK_STAGES = 2
PG_READ_LATENCY = BANKED_READ_LATENCY + PG_PICK_STAGES - 1
#: log2 of the rows of x per LUT RAM bank: each bank is read through a 4:1 multiplexer of
#: 16-word RAMs into its own register (``_row_banks``)
X_BANK_BITS = 6
#: the weight words' ring in front of the lanes: deep enough for the read and the decoder at one
#: word per cycle, and 16 deep costs no more distributed RAM than 9
WEIGHT_RING_DEPTH = 16


def codes_per_beat(lanes: int) -> int:
    """Codes per beat from the quantisers into the matrix-vector unit: 15 where it divides the
    lane count P, else 5 (P = 5 x the bytes of a weight word, so 5 always does). The codes of an
    op of K inputs stream out in ceil(K / C) cycles, and the lanes wait for the last of them."""
    return 15 if lanes % 15 == 0 else 5


def _table(m, name, values, index, shape=None):
    """A signal equal to ``values[index]`` (a small ROM of constants, as logic)."""
    width = max(1, max(int(v) for v in values).bit_length()) if shape is None else shape
    sig = Signal(width, name=name)
    m.d.comb += sig.eq(Array([Const(int(v), width) for v in values])[index])
    return sig


def _banks(mem, name, width, depth, init, bank_bits, attrs, *, whole_last=False, column_bits=None):
    """A memory of ``depth`` words of ``width`` bits as banks of ``2**bank_bits`` words (the last
    one shorter), each bank a list of memories holding ``column_bits`` of the word each (the
    last one narrower; one holding the whole word without ``column_bits``).

    The columns give each group of block RAMs its own address, data and enable registers: a
    weight word is 35 block RAMs wide, and one register driving all their address pins spans
    too much of the die for a cycle. Choose ``column_bits`` a multiple of the block RAM's width
    in the bank's mode, so the columns need no more block RAMs than the whole word.

    ``whole_last``: the last bank's depth rounded up to a power of two. A depth in between lets
    Yosys cascade block RAMs of a shallower, wider mode (1,216 words: three 512 x 36 RAMs deep),
    whose outputs it then muxes, and a muxed output cannot be the RAM's own output register
    (``host.ebr_output_register``); a power of two maps one RAM deep, as the full banks do."""
    size = 1 << bank_bits
    column_bits = column_bits or width
    spans = [(lo, min(column_bits, width - lo)) for lo in range(0, width, column_bits)]
    banks = []
    for b in range(-(-depth // size)):
        words = min(size, depth - b * size)
        if whole_last:
            words = 1 << (words - 1).bit_length()
        chunk = init[b * size:(b + 1) * size]
        banks.append([mem(f"{name}{b}" if len(spans) == 1 else f"{name}{b}_{c}", bits, words,
                          [(int(v) >> lo) & ((1 << bits) - 1) for v in chunk], attrs)
                      for c, (lo, bits) in enumerate(spans)])
    return banks


def _banked_read(m, name, banks, addr, bank_bits, pick_stages=1, address_latency=BANK_ADDRESS_LATENCY):
    """The word at ``addr``, ``BANKED_READ_LATENCY + pick_stages - 1`` (5 or 6) cycles later, plus
    a cycle per address level above ``BANK_ADDRESS_LATENCY``, in a register; and the address
    registers of the block RAMs (``[bank][column]``), which hold ``addr`` of ``address_latency``
    (2 or 3) cycles before.

    The banks spread over the die, so each cycle spans one hop: the address into a copy per group
    of block RAMs (with ``address_latency`` 3, through a copy per group of groups first), then
    into a copy beside each bank's column (``_banks``), the block RAM's output into its own
    register, the bank of ``addr`` picked into a register per column beside the banks (with
    ``pick_stages`` 2: a bank within each pair, then the pair); the consumer is the next hop. The
    read ports are always enabled (a held address rereads its word). The bus writes at the same
    address registers (``TokenEngine``)."""
    if pick_stages not in (1, 2):
        raise ValueError(f"pick_stages must be 1 or 2, got {pick_stages!r}")
    if address_latency not in (2, 3):
        raise ValueError(f"address_latency must be 2 or 3, got {address_latency!r}")
    latency = BANKED_READ_LATENCY + pick_stages - 1 + address_latency - BANK_ADDRESS_LATENCY
    n_banks, n_columns = len(banks), len(banks[0])
    # the copies beside the RAMs, in groups of about the address levels' root of their count,
    # each group fed by its own copy. A group is a run of whole columns (every bank's RAM of a
    # column), whose RAMs meet in the columns' pick registers, rather than a run of one bank's
    # columns (one hop of 10.9 ns from a group's copy to a column's at db8e891). The builds so
    # far disagree on which is better (BENCHMARKS.md, "ULX3S fmax history": 141fd09 and d707453)
    count = n_banks * n_columns
    per_group = max(1, round(count ** (1 / address_latency)))
    addrs = [replicas(f"{name}_addr_b{b}_c", addr.shape(), n_columns) for b in range(n_banks)]
    below = [addrs[b][c] for c in range(n_columns) for b in range(n_banks)]
    for level in range(address_latency - 1):
        groups = replicas(f"{name}_addr_g" if level == 0 else f"{name}_addr_t", addr.shape(), -(-len(below) // per_group))
        m.d.sync += [copy.eq(groups[k // per_group]) for k, copy in enumerate(below)]
        below = groups
    m.d.sync += [group.eq(addr) for group in below]
    parts = []
    for c in range(n_columns):
        column = [bank[c] for bank in banks]
        ports = [memory.read_port() for memory in column]
        m.d.comb += [port.addr.eq(addrs[b][c]) for b, port in enumerate(ports)]  # truncated to the bank's depth
        # reset-less, so the build makes each one its block RAM's own output register
        # (host.ebr_output_register: ~1 ns instead of ~5.8 ns from the clock)
        q = [Signal(memory.shape, name=f"{name}_q{b}_c{c}", reset_less=True) for b, memory in enumerate(column)]
        # the bank's number in step with the read, beside the column's pick (replicas: all
        # columns' are alike, and Yosys merged them into one register on every column's mux)
        sel = replicas(f"{name}_sel_c{c}_", range(n_banks), latency - 1)
        part = Signal(column[0].shape, name=f"{name}_word_c{c}", reset_less=True)
        m.d.sync += [qb.eq(port.data) for qb, port in zip(q, ports)]
        m.d.sync += [sel[0].eq(addr >> bank_bits)] + [later.eq(sooner) for sooner, later in zip(sel, sel[1:])]
        if pick_stages == 2:
            pairs = [Signal(column[0].shape, name=f"{name}_pair{k}_c{c}", reset_less=True)
                     for k in range(-(-n_banks // 2))]
            m.d.sync += [pair.eq(Array(q[2 * k:2 * k + 2])[sel[-2][0]] if len(q[2 * k:]) > 1 else q[2 * k])
                         for k, pair in enumerate(pairs)]
            q, sel = pairs, sel[:-1] + [sel[-1] >> 1]
        m.d.sync += part.eq(Array(q)[sel[-1]] if len(q) > 1 else q[0])
        parts.append(part)
    word = Signal(len(Cat(*parts)), name=f"{name}_word")
    m.d.comb += word.eq(Cat(*parts))
    return word, addrs


def _row_banks(m, mem, name, d, attrs):
    """``d`` words of 16 bits (the residual stream x, the MLGRU's i and f buffers) as LUT RAM
    banks of ``2**X_BANK_BITS`` consecutive rows. Returns ``(banks, write, read_async, bank_of)``: the banks' memories;
    ``write`` a view with ``addr``, ``data`` and ``en`` to drive (one write a cycle, landing two
    clock edges after it is driven); ``read_async(addrs, name)`` the word at an address
    through a multiplexer of the banks' asynchronous reads, given a copy of the address per bank
    (the last one also picks the bank); ``bank_of(addr)`` the bank's index.

    One 192-row RAM read through a 12:1 multiplexer from a single address register was the
    slowest path of aa18f17's build (12.2 ns into the feeder's x read), and ``buf_i``'s read
    through it into the MLGRU's input 11.1 ns (e2545d6 seed 1); a bank's read is 4:1, and each
    reader (``TokenEngine``) reads each bank from its own address copy."""
    rows = 1 << X_BANK_BITS
    n = -(-d // rows)
    banks = [mem(f"{name}{b}", 16, min(rows, d - b * rows), attrs=attrs) for b in range(n)]
    write = Signal(data.StructLayout({"addr": range(d), "data": 16, "en": 1}), name=f"{name}_write")
    # the write reaches each bank through its own registers (the word picked between the
    # embedding copy and the residual sum, from one LUT to every bank's write data, was 7.3 ns
    # of routing, ce79bee seed 2), so it lands a cycle later than a direct write. No reader sees
    # the difference: the feeder reads x a cycle after its issue, which the x version allows
    # at the earliest in the cycle after the version's last write is driven, so the read comes
    # the cycle after that write lands; the post stage reads a row an op after its last write.
    # (In practice the reads come later still: the engine's tests pass with the write 7 cycles
    # later, so they do not pin this margin down.)
    addrs = replicas(f"{name}_wr_addr", X_BANK_BITS, n)
    words = replicas(f"{name}_wr_data", 16, n)
    enables = replicas(f"{name}_wr_en", 1, n, reset_less=False)
    for b, bank in enumerate(banks):
        port = bank.write_port()
        m.d.sync += [addrs[b].eq(write.addr[:X_BANK_BITS]), words[b].eq(write.data),
                     enables[b].eq(write.en & (write.addr >> X_BANK_BITS == b))]
        m.d.comb += [port.addr.eq(addrs[b]), port.data.eq(words[b]), port.en.eq(enables[b])]

    def bank_of(addr):
        return addr >> X_BANK_BITS

    def read_async(addrs, name):
        reads = [bank.read_port(domain="comb") for bank in banks]
        m.d.comb += [port.addr.eq(addr[:X_BANK_BITS]) for port, addr in zip(reads, addrs)]
        word = Signal(16, name=name)
        m.d.comb += word.eq(Array(port.data for port in reads)[bank_of(addrs[-1])] if n > 1 else reads[0].data)
        return word

    return banks, write, read_async, bank_of


def _read_ahead(m, name, word, want, tag=None, *, stage=None, queue=None, latency=None):
    """Reads of a banked memory (``word``, out of ``_banked_read``) issued ahead of their use.

    The caller drives the read address, ``want`` (a read is wanted at that address) and ``tag``
    (carried with the word). Returns ``(issue, landed, out)``: ``issue`` is high when the read is
    made, so the caller moves its address on; ``landed`` is high ``latency`` cycles
    later, when ``word`` is that read's word; ``out`` is a stream of the words (with their tags
    when ``tag`` is given: ``out.payload.word``, ``out.payload.tag``) in the order they were read.

    The read and the queue behind it never stall: a read is issued only with a credit of the
    queue (``hw.pipeline.CreditQueue``), whose ``room`` is a register, so no consumer's ready
    reaches the address or the block RAMs' enables. One read per cycle; ``out`` delivers a word
    ``latency + CreditQueue.LATENCY`` cycles after its read, at one per cycle.

    ``stage``: a unit the words pass through on their way into the queue (a ``TritDecoder``),
    run without a stall (its ``o.ready`` is 1), and a register after it. ``queue``: the queue (a ``CreditQueue`` or a
    ``CreditRing`` deep enough for the read and the stage, which the caller adds as a
    submodule; a ring's ``out`` then carries each word in the cycle after its transfer); by
    default a ``CreditQueue`` that lets one read a cycle through. ``latency``:
    the cycles from the address to ``word``, when the caller registers the banks' word further
    (default ``BANKED_READ_LATENCY``)."""
    latency = BANKED_READ_LATENCY if latency is None else latency
    shape = word.shape() if tag is None else data.StructLayout({"word": word.shape(), "tag": tag.shape()})
    if queue is None:
        m.submodules[f"{name}_queue"] = queue = CreditQueue(shape, CreditQueue.depth_for(latency))
    issue = Signal(name=f"{name}_issue")
    inflight = Signal(latency, name=f"{name}_inflight")  # reads made 1, 2, ... cycles ago
    m.d.comb += [issue.eq(want & queue.room), queue.admit.eq(issue)]
    m.d.sync += inflight.eq(Cat(issue, inflight))
    if stage is not None:
        if tag is not None:
            raise ValueError("a stage carries no tags")
        # the stage's output through a register on its way into the queue: the trit decoder's
        # ROMs (as logic) were placed by the ring's slices, 5.9 ns of routing from their address
        # register (11.0 ns at 236ed0a, seed 3). The read runs ahead, so the cycle is hidden
        staged_valid = Signal(name=f"{name}_staged_valid")
        staged = Signal(stage.o.payload.shape(), name=f"{name}_staged", reset_less=True)
        m.d.sync += [staged_valid.eq(stage.o.valid), staged.eq(stage.o.payload)]
        m.d.comb += [stage.i.valid.eq(inflight[-1]), stage.i.payload.eq(word), stage.o.ready.eq(1),
                     queue.i.valid.eq(staged_valid), queue.i.payload.eq(staged)]
    elif tag is None:
        m.d.comb += [queue.i.valid.eq(inflight[-1]), queue.i.payload.eq(word)]
    else:
        m.d.comb += queue.i.valid.eq(inflight[-1])
        tags = [Signal(tag.shape(), name=f"{name}_tag{k + 1}", reset_less=True) for k in range(latency)]
        m.d.sync += [later.eq(sooner) for sooner, later in zip([tag] + tags, tags)]
        m.d.comb += [queue.i.payload.word.eq(word), queue.i.payload.tag.eq(tags[-1])]
    return issue, inflight[-1], queue.o


class TokenEngine(wiring.Component):
    """One token step from on-chip memories, served through ``hw.port.engine_port``.

    Parameters
    ----------
    layout : golden.image.DeviceLayout
        The model's dimensions, the lane count P and the memory map (build parameters).
    image : dict of region name to bytes, optional
        Initial contents of the writable regions (``DeviceLayout.image``): a model built into
        the bitstream or the simulation, so nothing needs uploading. Default: empty memories.

    Latency: a step takes about ``weight_words + element-wise fill and drain`` cycles; the
    weight reader streams one P-trit word per cycle whenever the matrix-vector unit has the
    op's codes (BENCHMARKS.md has the measured cycles per token and their breakdown).
    Throughput: one step at a time; ``step.ready`` is low while a step runs and until ``done``
    is taken. The bus is served between steps only (``bus.ready`` is low during a step), one
    request at a time: a write takes 2 cycles, a read 7 cycles plus ``rdata`` back-pressure, and
    the first weights access at a non-sequential address 23 more (the division by the word size).
    A memory word (a weight word, a bf16 or a pg word) is written when its last byte is written:
    the host writes whole words, in order.
    """

    def __init__(self, layout: DeviceLayout, image: dict | None = None):
        if not isinstance(layout, DeviceLayout):
            raise ValueError(f"layout must be a golden.image.DeviceLayout, got {layout!r}")
        c = layout.config
        if c.hidden_size * c.num_hidden_layers < MLGRUEngine.MIN_CHANNELS:
            raise ValueError(f"d * layers must be at least {MLGRUEngine.MIN_CHANNELS} (the MLGRU "
                             f"engine's state pipeline), got {c.hidden_size * c.num_hidden_layers}")
        if c.vocab_size >= INVALID_TOKEN:
            raise ValueError(f"vocab_size must be below {INVALID_TOKEN}, got {c.vocab_size}")
        if layout.weight_words * layout.word_bytes > REGIONS["embedding"] - REGIONS["weights"]:
            raise ValueError("the weights do not fit their 8 MiB region")
        self.layout = layout
        self.activity = {}  # filled by elaborate(): per-cycle activity signals, for simulation tools
        self.image = {} if image is None else dict(image)
        unknown = set(self.image) - {"weights", "embedding", "pg", "aux"}
        if unknown:
            raise ValueError(f"image regions {sorted(unknown)} are not preloadable")
        super().__init__(engine_port)

    def _init(self, region: str, word_bytes: int) -> list[int]:
        data = self.image.get(region, b"")
        return [int.from_bytes(data[k:k + word_bytes], "little") for k in range(0, len(data), word_bytes)]

    def elaborate(self, platform):
        m = Module()
        lay = self.layout
        cfg = lay.config
        d, inter, vocab = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
        ops, n_ops = lay.ops, len(lay.ops)
        P, L = lay.lanes, lay.word_bytes

        # ---- units ------------------------------------------------------------------------------
        m.submodules.tmv = tmv = TernaryMatVec(P, max(op.rows for op in ops), max(op.cols for op in ops),
                                               codes_per_beat=codes_per_beat(P), late_weights=True)
        m.submodules.decoder = decoder = TritDecoder(L)
        m.submodules.quant = quant = NormQuant(d, with_pre=True, codes_per_beat=codes_per_beat(P))
        m.submodules.glu = glu = GLUStage(inter, codes_per_beat=codes_per_beat(P))
        m.submodules.mlgru = mlgru = MLGRUEngine(d * cfg.num_hidden_layers, output="code",
                                                 lower_bound=cfg.use_lower_bound)
        m.submodules.to_float = to_float = IntToFloat(tmv.acc_width, "bf16")
        row_w = max(1, max(op.rows for op in ops).bit_length())
        # a row's destination, one-hot, and whether it takes a keep word: the post stage routes on
        # them straight from its register (a table of the op there was in front of its enables)
        post_tag = data.StructLayout({"dest": len(DESTS), "use_keep": 1, "row": row_w, "last": 1})
        m.submodules.rescale = rescale = LMul("bf16", tag_width=post_tag.size)
        resid_tag = data.StructLayout({"row": row_w, "last": 1})
        m.submodules.resid = resid = FAdd("bf16", tag_width=resid_tag.size)
        # the sums leave through a register: the quantiser feed's ready otherwise ran through the
        # adder's stall logic into its input registers' enables (11.3 ns, the slowest path once
        # the reset was on a global network)
        resid_o = registered(m, "resid_out", resid.o)

        # ---- memories ---------------------------------------------------------------------------
        def mem(name, shape, depth, init=(), attrs=None):
            m.submodules[name] = memory = Memory(shape=shape, depth=depth, init=init, attrs=attrs)
            return memory

        # the small vectors live in LUT RAM: the block RAMs are for the model
        small = {"ram_style": "distributed"}

        # The model's block RAMs are written by the bus between steps only, and a bus read never
        # shares its cycle with a write: no collision logic after their outputs (NO_RW_CHECK).
        weights = _banks(mem, "weights", 8 * L, lay.weight_words, self._init("weights", L), WEIGHT_BANK_BITS,
                         NO_RW_CHECK, whole_last=True, column_bits=WEIGHT_COLUMN_BITS)
        embedding = _banks(mem, "embedding", 16, lay.embedding_words, self._init("embedding", 2),
                           EMBEDDING_BANK_BITS, NO_RW_CHECK, column_bits=EMBEDDING_COLUMN_BITS)
        pg = _banks(mem, "pg", 32, lay.pg_words, self._init("pg", 4), PG_BANK_BITS, NO_RW_CHECK, whole_last=True)
        aux = _banks(mem, "aux", 16, lay.aux_words, self._init("aux", 2), AUX_BANK_BITS, NO_RW_CHECK, whole_last=True)
        logits = mem("logits", 16, vocab, attrs=small)
        scratch = mem("scratch", 8, SCRATCH_BYTES, attrs=small)
        x_banks, x_wr, x_read_async, x_bank_of = _row_banks(m, mem, "x", d, small)
        # the MLGRU's i and f, written by the post stage and read by it an op later
        _, bi_wr, bi_read_async, _ = _row_banks(m, mem, "buf_i", d, small)
        _, bf_wr, bf_read_async, _ = _row_banks(m, mem, "buf_f", d, small)

        # ---- step control -----------------------------------------------------------------------
        # "a step runs", in copies, each beside the logic it steers: one register reached the read
        # issuers, the read address multiplexers and the code router across the die (6.8 ns of
        # routing into the lanes' command handshake at 2ec8166)
        busy, busy_emb, busy_pg, busy_w, busy_aux, busy_addr, busy_post = replicas(
            "busy", 1, 7, reset_less=False)
        busy_copies = [busy, busy_emb, busy_pg, busy_w, busy_aux, busy_addr, busy_post]
        token = Signal(TOKEN_WIDTH)
        fresh = Signal(init=1)  # the state restarts at the next step (power-up, reset)
        first = Signal()  # this step starts from the zero state
        step_taken = Signal()  # a step request is taken
        # the step's units start a cycle after the request is taken, from a register: the
        # handshake (the bus's state, the link's queue) in front of every unit's start was the
        # slowest path (11.2 ns at db8e891)
        start = Signal()
        bus_idle = Signal()
        # versions of x complete in this step, and the rows of the next one written so far
        x_version = Signal(range(lay.x_commits + 1))
        x_rows = Signal(range(d + 1))
        x_commit = Signal()  # the write of a version's last row
        argmax = Signal(TOKEN_WIDTH)
        # a waiting bus request goes first: the link's requests reach the engine in their order
        m.d.comb += [self.step.ready.eq(~busy & bus_idle & ~self.done.valid & ~self.bus.valid),
                     step_taken.eq(self.step.valid & self.step.ready)]
        m.d.sync += start.eq(step_taken & (self.step.payload < vocab))
        with m.If(self.reset):
            m.d.sync += fresh.eq(1)
        with m.If(step_taken):
            with m.If(self.step.payload < vocab):
                m.d.sync += [token.eq(self.step.payload), first.eq(fresh | self.reset),
                             fresh.eq(0), x_version.eq(0), x_rows.eq(0)] + [b.eq(1) for b in busy_copies]
            with m.Else():
                m.d.sync += [self.done.valid.eq(1), self.done.payload.eq(INVALID_TOKEN)]
        with m.If(self.done.valid & self.done.ready):
            m.d.sync += [self.done.valid.eq(0)] + [b.eq(0) for b in busy_copies]

        # ---- the residual stream x: the token's embedding row, copied at the step's start ----------
        # Each word goes into x as it lands and, through the read's queue, to the first op's
        # quantiser (its source "embedding"), so that op loads while the row is copied.
        emb_addr = Signal(range(lay.embedding_words))
        emb_word, emb_addrs = _banked_read(m, "emb", embedding, emb_addr, EMBEDDING_BANK_BITS)
        copy_k = Signal(range(d + 1), init=d)  # the next row to read; d: idle
        copy_row = Signal(range(d))  # the next row to land (they land in order)
        # Each "index < its end" in front of a read's issue is a register kept in step with the
        # index (``copy_more``, ``f_more``, ``w_more``, ``a_more``; ``cmd_due`` below): a
        # compare's carry chain sat in front of the issue and the enables it drives
        copy_more = Signal()
        copying, copy_landed, emb_words = _read_ahead(m, "emb", emb_word, busy_emb & copy_more)
        token_base = Signal(range(lay.embedding_words))
        with m.If(start):
            # token * d as shifts and adds: a product by a constant would still claim a DSP block
            m.d.sync += [copy_k.eq(0), copy_row.eq(0), copy_more.eq(1),
                         token_base.eq(sum(token << k for k in range(d.bit_length()) if d >> k & 1))]
        with m.If(copying):
            m.d.sync += [copy_k.eq(copy_k + 1), copy_more.eq(copy_k != d - 1)]
        with m.If(copy_landed):
            m.d.sync += copy_row.eq(copy_row + 1)

        # ---- the feeder: op inputs into the quantiser ------------------------------------------
        # The feeder is armed for the first op between steps (after the last op it goes back to
        # the first), so it starts with the step's handshake, a cycle before the other units'
        # ``start``, and the step's first pg words land a cycle sooner
        f_op = Signal(range(n_ops))
        f_hdr = Signal(init=1)  # the op's header (c, eps) goes first
        f_k = Signal(range(max(op.cols for op in ops)))
        f_cols = _table(m, "f_cols", [op.cols for op in ops], f_op)
        f_pg = _table(m, "f_pg", [op.pg_base for op in ops], f_op)
        after = ops[1:] + ops[:1]  # the op after each: the first after the last
        f_op_next = _table(m, "f_op_next", [*range(1, n_ops), 0], f_op, f_op.shape())
        # the op's source and the x commits an element read from x waits for, in registers kept
        # in step with f_op (loaded from tables of the next op as it moves on): the tables of
        # f_op in front of the x version's compare and the issue's enables were the slowest
        # path of two 100 MHz builds at 236ed0a (11.0 ns)
        src_w = (len(SOURCES) - 1).bit_length()
        f_src = Signal(src_w, init=SOURCES.index(ops[0].source))
        f_xver = Signal(range(lay.x_commits + 1), init=ops[0].x_version)
        f_src_next = _table(m, "f_src_next", [SOURCES.index(op.source) for op in after], f_op, src_w)
        f_xver_next = _table(m, "f_xver_next", [op.x_version for op in after], f_op, f_xver.shape())
        src_x, src_mlgru, src_glu, src_resid, src_emb = (SOURCES.index(s) for s in SOURCES)
        # f_k == f_cols - 1 as a register kept in step with f_k and f_op, and f_k's copy for the
        # x read: the compare and the LUT RAM's address pins behind one register were the
        # feeder's slow paths (12.4 ns into feed_pg_addr, 11.8 into the x read, with the reset on
        # a global network)
        f_last = Signal(init=ops[0].cols == 1)
        f_k_x, = replicas("f_k_x", f_k.shape(), 1)
        f_one_next = _table(m, "f_one_next", [op.cols == 1 for op in after], f_op)
        f_more = Signal()
        with m.If(step_taken & (self.step.payload < vocab)):
            m.d.sync += f_more.eq(1)

        # The feeder generates each op's header and elements, reading their pg words (and x, for
        # an op that reads x from memory, once the write of its row has landed) ahead into a
        # queue (``_read_ahead``); the consumer at the queue's output joins each element with
        # its x from a stream where the op takes one. The generator runs ahead of the consumer by
        # the queue's depth, so the read's latency shows only at the step's start and where an
        # element waits for its row of x.
        pg_addr = Signal(range(lay.pg_words))
        pg_word, pg_addrs = _banked_read(m, "pg", pg, pg_addr, PG_BANK_BITS, PG_PICK_STAGES)
        # x read at the element's issue, then delayed to land with its pg word: the address into
        # a copy beside each bank (_row_banks), each bank's word into its own register, the bank's
        # word picked into a register; the read happens a cycle after the issue, after the
        # writes it waits for have landed (``_row_banks``: a write lands a cycle after the version
        # or the row count counts it), and no write to the same row follows within a cycle: the
        # next write of a row needs this op's codes
        x_feed_addrs = replicas("x_feed_addr", range(1 << X_BANK_BITS), len(x_banks))
        x_feed_sel = [Signal.like(x_bank_of(f_k_x), name=f"x_feed_sel{k}") for k in range(2)]
        m.d.sync += [a.eq(f_k_x[:X_BANK_BITS]) for a in x_feed_addrs]
        m.d.sync += [x_feed_sel[0].eq(x_bank_of(f_k_x)), x_feed_sel[1].eq(x_feed_sel[0])]
        x_bank_words = []
        for b, bank in enumerate(x_banks):
            port = bank.read_port(domain="comb")
            word = Signal(16, name=f"x_feed_word{b}", reset_less=True)
            m.d.comb += port.addr.eq(x_feed_addrs[b])
            m.d.sync += word.eq(port.data)
            x_bank_words.append(word)
        x_landing = Signal(16, name="x_feed_picked", reset_less=True)
        m.d.sync += x_landing.eq(Array(x_bank_words)[x_feed_sel[1]] if len(x_banks) > 1 else x_bank_words[0])
        for k in range(PG_READ_LATENCY - 3):
            later = Signal(16, name=f"feed_x{k + 1}", reset_less=True)
            m.d.sync += later.eq(x_landing)
            x_landing = later
        lk_tag = Signal(data.StructLayout({"hdr": 1, "glu": 1, "mlgru": 1, "resid": 1, "emb": 1, "last": 1}))
        # an element of x is read once its version is complete, or its row of the version being
        # written is: an op reading x right after the residual add that writes it (f after i)
        # reads each row behind the add's write rather than waiting for the whole vector
        # (that row's landing known a cycle late, in a register: true of the next element too, as
        # f_k moves on by one at most; false from the cycle the version completes)
        x_row_landed = Signal()
        m.d.sync += x_row_landed.eq((f_k + 1 < x_rows) & ~x_commit)
        x_ready = f_hdr | (f_src != src_x) | (x_version >= f_xver) | ((x_version + 1 == f_xver) & x_row_landed)
        gen_fire, _, lk = _read_ahead(m, "pg", Cat(pg_word, x_landing), busy_pg & f_more & x_ready, lk_tag,
                                      latency=PG_READ_LATENCY)
        m.d.comb += [lk_tag.hdr.eq(f_hdr), lk_tag.glu.eq(f_src == src_glu), lk_tag.mlgru.eq(f_src == src_mlgru),
                     lk_tag.resid.eq(f_src == src_resid), lk_tag.emb.eq(f_src == src_emb),
                     lk_tag.last.eq(f_last)]
        # the pg address of the element generated next, in a register kept in step with the
        # feeder's state (the op tables and an adder in front of the block RAMs' address copies
        # were one of the device's slowest paths)
        feed_pg_addr = Signal.like(pg_addr, init=ops[0].pg_header)
        f_hdr_addr_next = _table(m, "f_hdr_addr_next", [op.pg_header for op in after], f_op, pg_addr.shape())
        with m.If(gen_fire):
            with m.If(f_hdr & (f_src == src_glu)):
                m.d.sync += [f_op.eq(f_op_next), f_more.eq(f_op != n_ops - 1), feed_pg_addr.eq(f_hdr_addr_next),
                             f_last.eq(f_one_next), f_src.eq(f_src_next), f_xver.eq(f_xver_next)]
            with m.Elif(f_hdr):
                m.d.sync += [f_hdr.eq(0), feed_pg_addr.eq(f_pg)]
            with m.Elif(f_last):
                m.d.sync += [f_op.eq(f_op_next), f_more.eq(f_op != n_ops - 1), f_hdr.eq(1), f_k.eq(0), f_k_x.eq(0),
                             feed_pg_addr.eq(f_hdr_addr_next), f_last.eq(f_one_next), f_src.eq(f_src_next),
                             f_xver.eq(f_xver_next)]
            with m.Else():
                m.d.sync += [f_k.eq(f_k + 1), f_k_x.eq(f_k + 1), feed_pg_addr.eq(feed_pg_addr + 1),
                             f_last.eq(f_k + 2 == f_cols)]

        # headers: (c, eps) of an op, held from before its first element to after its last (the
        # units sample them with the first element; the next header of the same unit is sent
        # only after this op's last element, and for the GLU stage only after its whole vector)
        word, x_read, head = lk.payload.word[:32], lk.payload.word[32:], lk.payload.tag
        nq_head, glu_head = Signal(32), Signal(32)
        with m.If(lk.valid & head.hdr):
            with m.If(head.glu):
                m.d.sync += glu_head.eq(word)
            with m.Else():
                m.d.sync += nq_head.eq(word)
        m.d.comb += [quant.c.eq(nq_head[:16]), quant.eps.eq(nq_head[16:]),
                     glu.c.eq(glu_head[:16]), glu.eps.eq(glu_head[16:])]

        # elements: x from a stream (the MLGRU engine's output, the residual add's, the embedding
        # row's) or as read from memory, joined with (gain, pre)
        element = lk.valid & ~head.hdr
        have_x = Mux(head.mlgru, mlgru.o.valid, Mux(head.resid, resid_o.valid, Mux(head.emb, emb_words.valid, 1)))
        # through a skid buffer: the sources' mux would otherwise run into the quantiser's first
        # L-Mul, and its ready back into the sources
        feed = registered_into(m, "quant_feed", quant.i)
        m.d.comb += [
            feed.valid.eq(element & have_x),
            feed.payload.x.eq(Mux(head.mlgru, mlgru.o.payload,
                                  Mux(head.resid, resid_o.payload.sum,
                                      Mux(head.emb, emb_words.payload, x_read)))),
            feed.payload.gain.eq(word[:16]),
            feed.payload.pre.eq(word[16:]),
            feed.payload.last.eq(head.last),
            mlgru.o.ready.eq(element & head.mlgru & feed.ready),
            # every residual op is followed by an op that quantises its output: the sums are
            # written to x as the quantiser's feed takes them
            resid_o.ready.eq(element & head.resid & feed.ready),
            emb_words.ready.eq(element & head.emb & feed.ready),
            lk.ready.eq(head.hdr | (feed.ready & have_x)),
        ]

        # ---- the code router: commands and codes into the matrix-vector unit --------------------
        r_op = Signal(range(n_ops + 1), init=n_ops)
        r_codes = Signal()  # the command is sent, the codes follow
        # the op's code source, in a register a cycle behind r_op: the codes of the op after r_op
        # moves on come at least two cycles later (its command first), and the table and the
        # source mux in one cycle before the lanes' code copies were the device's critical path
        r_glu = Signal()
        m.d.sync += r_glu.eq(_table(m, "r_glu_next", [op.source == "glu" for op in ops] + [0], r_op, 1))
        # "an op's command is due" as a register (busy, r_op < n_ops and not r_codes, kept in step
        # with them): r_op's compare behind the lanes' loader enables, across the die and back
        # through the code skid buffer, was the slowest path at the 100 MHz clock (12.0 ns at 393bc92)
        cmd_due = Signal()
        with m.If(start):
            m.d.sync += [r_op.eq(0), r_codes.eq(0), cmd_due.eq(1)]
        m.d.comb += [
            tmv.cmd.valid.eq(cmd_due),
            tmv.cmd.payload.rows.eq(_table(m, "r_rows", [op.rows for op in ops] + [1], r_op)),
            tmv.cmd.payload.cols.eq(_table(m, "r_cols", [op.cols for op in ops] + [1], r_op)),
        ]
        with m.If(tmv.cmd.valid & tmv.cmd.ready):
            m.d.sync += [r_codes.eq(1), cmd_due.eq(0)]
        codes = Mux(r_glu, glu.q.valid, quant.q.valid)
        code = Mux(r_glu, glu.q.payload.codes, quant.q.payload.codes)
        code_last = Mux(r_glu, glu.q.payload.last, quant.q.payload.last)
        # the codes reach the lanes' loader through a register: the quantisers' code queues and
        # the loader's enables sit far apart (the GLU queue's head enable behind its output
        # register, 6.5 + 5.0 ns of routing, was the recorded build's slowest path)
        # (each quarter of the 120 code bits loads under its own flags: one skid flag's net to
        # all of them routed for 9.3 ns at 4ec7033)
        tmv_a = registered_into(m, "codes_skid", tmv.a, enable_groups=4)
        m.d.comb += [
            tmv_a.valid.eq(r_codes & codes),
            tmv_a.payload.eq(code),
            quant.q.ready.eq(r_codes & ~r_glu & tmv_a.ready),
            glu.q.ready.eq(r_codes & r_glu & tmv_a.ready),
        ]
        with m.If(tmv_a.valid & tmv_a.ready & code_last):
            m.d.sync += [r_codes.eq(0), r_op.eq(r_op + 1), cmd_due.eq(r_op != n_ops - 1)]

        # ---- the weight reader: every word of the step, in order --------------------------------
        # a word comes out WEIGHT_READ_LATENCY cycles after its address (the engine's or the bus's)
        w_rd_addr = Signal(range(lay.weight_words + 1))
        w_word_out, w_addrs = _banked_read(m, "w", weights, w_rd_addr, WEIGHT_BANK_BITS, WEIGHT_PICK_STAGES,
                                           WEIGHT_ADDRESS_LATENCY)
        w_addr = Signal(range(lay.weight_words + 1), init=lay.weight_words)
        # The words are decoded on their way into a ring that the lanes read directly: no stall
        # enable reaches the 2 P trit bits (a skid buffer's enable across them was one of the
        # device's slowest nets). The lanes' ready moves only the ring's head; the slices' read
        # addresses follow it a cycle later, and the lanes take each word in the cycle after its
        # transfer (``late_weights``), so no ready crosses the die and back in one cycle.
        m.submodules.w_ring = w_ring = CreditRing(tmv.w.payload.shape(), WEIGHT_RING_DEPTH,
                                                  slices=-(-P // LANES_PER_SLICE))
        # and through one more register on their way to the decoder: the banks' pick registers
        # sit beside their block RAMs, across the die (13 ns of routing to the decoder in one hop)
        w_word_mid = Signal.like(w_word_out, name="w_word_mid", reset_less=True)
        m.d.sync += w_word_mid.eq(w_word_out)
        w_more = Signal()
        w_issue, _, w_words = _read_ahead(m, "w", w_word_mid, busy_w & w_more,
                                          stage=decoder, queue=w_ring, latency=WEIGHT_READ_LATENCY + 1)
        with m.If(start):
            m.d.sync += [w_addr.eq(0), w_more.eq(1)]
        with m.Elif(w_issue):
            m.d.sync += [w_addr.eq(w_addr + 1), w_more.eq(w_addr != lay.weight_words - 1)]
        wiring.connect(m, w_words, tmv.w)

        # ---- the post stage: rescale each accumulator and route it ------------------------------
        p_op = Signal(range(n_ops + 1), init=n_ops)
        p_row = Signal(row_w)
        p_run = Signal()  # the op's scale is taken, rows follow
        p_scale = Signal(16)
        p_glu = _table(m, "p_glu", [op.source == "glu" for op in ops] + [0], p_op, 1)
        p_head = p_op == n_ops - 1
        scale_in = Mux(p_glu, glu.scale.valid, quant.scale.valid)
        m.d.comb += [quant.scale.ready.eq(busy_post & (p_op < n_ops) & ~p_run & ~p_glu),
                     glu.scale.ready.eq(busy_post & (p_op < n_ops) & ~p_run & p_glu)]
        # "p_row is the op's last row" in a register, set with p_row (its compare against the op's
        # row count, a table of p_op, sat in front of the side FIFO's data and the post stage's
        # enables: a slow path)
        last_row = Signal()
        one_row = [op.rows == 1 for op in ops]
        rows_m2 = _table(m, "p_rows_m2", [max(op.rows - 2, 0) for op in ops] + [0], p_op)
        next_one_row = _table(m, "p_next_one_row", one_row[1:] + [0, 0], p_op, 1)
        with m.If(start):
            m.d.sync += [p_op.eq(0), p_run.eq(0), p_row.eq(0), last_row.eq(one_row[0])]
        p_dest, p_keep = Signal(len(DESTS)), Signal()
        dest_of_op = _table(m, "p_dest_of_op", [1 << DESTS.index(op.dest) for op in ops] + [0], p_op, len(DESTS))
        keep_of_op = _table(m, "p_keep_of_op", [op.use_keep for op in ops] + [0], p_op, 1)
        with m.If(busy_post & (p_op < n_ops) & ~p_run & scale_in):
            m.d.sync += [p_run.eq(1), p_scale.eq(Mux(p_glu, glu.scale.payload, quant.scale.payload)),
                         p_dest.eq(dest_of_op), p_keep.eq(keep_of_op)]

        # side FIFO: each accumulator's (scale, op, row, last) waits for its conversion
        side = data.StructLayout({"scale": 16, "tag": post_tag})
        m.submodules.side = side_fifo = SyncFIFOBuffered(width=side.size, depth=8)
        # the accumulators through a skid buffer: the post stage's stall (the value skid buffer
        # back through the rescale, the conversion and the side FIFO) reached the lanes' ``w.ready``
        # through their output FIFO's count (11.2 ns, the slowest path at ac76b46)
        acc = registered(m, "acc_q", tmv.o)
        acc_fire = acc.valid & acc.ready
        m.d.comb += [
            to_float.i.valid.eq(acc.valid & p_run & side_fifo.w_rdy),
            acc.ready.eq(to_float.i.ready & p_run & side_fifo.w_rdy),
            to_float.i.payload.eq(acc.payload),
            side_fifo.w_en.eq(acc_fire),
        ]
        side_in = data.View(side, side_fifo.w_data)
        m.d.comb += [side_in.scale.eq(p_scale), side_in.tag.dest.eq(p_dest),
                     side_in.tag.use_keep.eq(p_keep), side_in.tag.row.eq(p_row),
                     side_in.tag.last.eq(last_row)]
        with m.If(acc_fire):
            m.d.sync += [p_row.eq(p_row + 1), last_row.eq(p_row == rows_m2)]
            with m.If(last_row):
                m.d.sync += [p_row.eq(0), p_run.eq(0), p_op.eq(p_op + 1), last_row.eq(next_one_row)]
        # argmax on the head's integer accumulators; strict ">" keeps the lowest index on ties. A
        # row is taken two cycles after the lanes give it (head, then cmp), and its comparisons
        # are made a cycle ahead, in registers: against ``best`` and against the row in front of
        # it (``cmp``), which becomes ``best`` in that same cycle when it is taken. Which of the
        # two applies is known from a register (``took``), so the enable of ``best`` is a LUT
        # behind registers; a compare's carry chain in front of it was a slow path.
        head_acc, head_row, head_valid = Signal.like(acc.payload), Signal.like(p_row), Signal()
        m.d.sync += [head_acc.eq(acc.payload), head_row.eq(p_row), head_valid.eq(acc_fire & p_head)]
        cmp_acc, cmp_row = Signal.like(head_acc, name="cmp_acc"), Signal.like(head_row, name="cmp_row")
        cmp_valid, cmp_first = Signal(name="cmp_valid"), Signal(name="cmp_first")
        best = Signal.like(tmv.o.payload)
        over_best, over_prev, took = Signal(), Signal(), Signal()
        m.d.sync += [cmp_acc.eq(head_acc), cmp_row.eq(head_row), cmp_valid.eq(head_valid),
                     cmp_first.eq(head_row == 0), over_best.eq(head_acc > best), over_prev.eq(head_acc > cmp_acc)]
        take = cmp_valid & (cmp_first | Mux(took, over_prev, over_best))
        m.d.sync += took.eq(take)
        with m.If(take):
            m.d.sync += [best.eq(cmp_acc), argmax.eq(cmp_row)]

        # the conversion's output through a skid buffer: the post stage's stall (the values' skid
        # buffer back through the rescale and the conversion into ``acc_q``, ``p_run`` and
        # ``p_op``) was the slowest chain of 402e4fd, ebc03ed and 1377152 (11.1-13.2 ns); a cycle
        # more on the way of each accumulator: 13 cycles per token (9,139 -> 9,152)
        floats = registered(m, "float_q", to_float.o)
        side_out = data.View(side, side_fifo.r_data)
        m.d.comb += [
            rescale.i.valid.eq(floats.valid),
            floats.ready.eq(rescale.i.ready),
            rescale.i.payload.a.eq(floats.payload),
            rescale.i.payload.b.eq(side_out.scale),
            rescale.i.payload.tag.eq(side_out.tag),
            side_fifo.r_en.eq(floats.valid & rescale.i.ready),
        ]
        # not a ring (``SkidBuffer(ring=True)``): the row it gives addresses the LUT RAM reads of
        # the lookup stage, and a multiplexer in front of those addresses was the slowest path
        # (13.2 ns at 972dd28). Each bank of x, i and f read there has its own copy of
        # the output register (one register's row across all their LUT RAMs was 11-12 ns; one
        # across x's banks, 10.6 ns at 818956c seed 1). The copies hold the row's low bits only,
        # those that address the memories of d rows.
        row_bits = max(1, (d - 1).bit_length())
        row_at = rescale.o.payload.shape()["tag"].offset + post_tag["row"].offset
        # Three slices with their own flags, each enabling one memory's row copies (one valid's
        # net to all 85 enables routed for 10.3 ns at 4ec7033).
        m.submodules.value_skid = value_skid = SkidBuffer(
            rescale.o.payload.shape(), copies=3 * len(x_banks), copy_bits=slice(row_at, row_at + row_bits),
            enable_groups=3)
        wiring.connect(m, rescale.o, value_skid.i)
        value_s = value_skid.o
        v_tag = data.View(post_tag, value_s.payload.tag)
        row_copies = value_skid.payload_copies

        # lookup stage: everything a destination needs about row r, read with the value
        pl = stream.Signature(data.StructLayout({"value": 16, "tag": post_tag})).create()
        pl_advance = ~pl.valid | pl.ready
        # x, i and f: each one's banks' asynchronous reads picked into a register, as a registered
        # read would be
        n_row_banks = len(x_banks)
        x_post, bi_post, bf_post = (Signal(16, name=f"{name}_post", reset_less=True) for name in ("x", "buf_i", "buf_f"))
        for k, (read_async, post) in enumerate(((x_read_async, x_post), (bi_read_async, bi_post), (bf_read_async, bf_post))):
            word = read_async(row_copies[k * n_row_banks:(k + 1) * n_row_banks], f"{post.name}_word")
            with m.If(pl_advance):
                m.d.sync += post.eq(word)
        m.d.comb += value_s.ready.eq(pl_advance)
        with m.If(pl_advance):
            m.d.sync += [pl.valid.eq(value_s.valid), pl.payload.value.eq(value_s.payload.product),
                         pl.payload.tag.eq(v_tag)]

        # The aux words (the MLGRU's keep per row, the GLU's gain per row pair) are read ahead,
        # op by op in the order the post stage takes them, into a queue (``_read_ahead``).
        aux_ops = [op for op in ops if op.dest == "glu" or op.use_keep]
        aux_counts = [op.rows // 2 if op.dest == "glu" else op.rows for op in aux_ops]
        aux_addr = Signal(range(lay.aux_words))
        aux_word, aux_addrs = _banked_read(m, "aux", aux, aux_addr, AUX_BANK_BITS)
        a_op = Signal(range(len(aux_ops) + 1), init=len(aux_ops))
        a_k = Signal(range(max(aux_counts)))
        feed_aux_addr = Signal.like(aux_addr)
        a_more = Signal()
        aux_issue, _, aux_words = _read_ahead(m, "aux", aux_word, busy_aux & a_more)
        a_count = _table(m, "a_count", aux_counts + [1], a_op)
        a_next_base = _table(m, "a_next_base", [op.aux_base for op in aux_ops[1:]] + [0, 0], a_op)
        with m.If(start):
            m.d.sync += [a_op.eq(0), a_more.eq(1), a_k.eq(0), feed_aux_addr.eq(aux_ops[0].aux_base)]
        with m.Elif(aux_issue):
            with m.If(a_k == a_count - 1):
                m.d.sync += [a_op.eq(a_op + 1), a_more.eq(a_op != len(aux_ops) - 1), a_k.eq(0),
                             feed_aux_addr.eq(a_next_base)]
            with m.Else():
                m.d.sync += [a_k.eq(a_k + 1), feed_aux_addr.eq(feed_aux_addr + 1)]

        tag = pl.payload.tag
        use_keep = tag.use_keep
        value = pl.payload.value
        is_dest = {name: pl.valid & tag.dest[k] for k, name in enumerate(DESTS)}
        # the destination units take their rows through skid buffers: the post stage's reads and
        # tables would otherwise run into their first stages, and their readies back into it. The
        # MLGRU's 66 bits load in four slices, each under its own enable (one enable net to all of
        # them routed for 6.3-11.6 ns in three builds: ``SkidBuffer``'s ``enable_groups``)
        mlgru_in = registered_into(m, "mlgru_feed", mlgru.i, enable_groups=4)
        resid_in, glu_in = (registered_into(m, f"{unit}_feed", port) for unit, port in (("resid", resid.i), ("glu", glu.i)))
        lg_wr = logits.write_port()
        m.d.comb += [
            bi_wr.addr.eq(tag.row), bi_wr.data.eq(value), bi_wr.en.eq(is_dest["buf_i"]),
            bf_wr.addr.eq(tag.row), bf_wr.data.eq(value), bf_wr.en.eq(is_dest["buf_f"]),
            lg_wr.addr.eq(tag.row), lg_wr.data.eq(value), lg_wr.en.eq(is_dest["logits"]),
        ]
        # MLGRU: i and f from their buffers, keep from aux
        has_keep = ~use_keep | aux_words.valid
        m.d.comb += [
            mlgru_in.valid.eq(is_dest["mlgru"] & has_keep),
            mlgru_in.payload.i.eq(bi_post), mlgru_in.payload.f.eq(bf_post), mlgru_in.payload.g.eq(value),
            mlgru_in.payload.first.eq(first),
        ]
        if cfg.use_lower_bound:
            m.d.comb += [mlgru_in.payload.keep.eq(aux_words.payload), mlgru_in.payload.use_keep.eq(use_keep)]
        # residual: x[r] + value, written back to x
        rt = data.View(resid_tag, resid_in.payload.tag)
        m.d.comb += [
            resid_in.valid.eq(is_dest["resid"]),
            resid_in.payload.a.eq(x_post), resid_in.payload.b.eq(value), resid_in.payload.sub.eq(0),
            rt.row.eq(tag.row), rt.last.eq(tag.last),
        ]
        # GLU: rows come as (gate j, value j) pairs; the down projection's gain j from aux
        held = Signal(16)
        odd = tag.row[0]
        with m.If(is_dest["glu"] & ~odd):
            m.d.sync += held.eq(value)
        m.d.comb += [
            glu_in.valid.eq(is_dest["glu"] & odd & aux_words.valid),
            glu_in.payload.gate.eq(held), glu_in.payload.y.eq(value), glu_in.payload.gain.eq(aux_words.payload),
            glu_in.payload.last.eq(tag.last),
            aux_words.ready.eq((is_dest["mlgru"] & use_keep & mlgru_in.ready) | (is_dest["glu"] & odd & glu_in.ready)),
        ]
        # the memories and the logits take a row in any cycle
        takes = {"mlgru": mlgru_in.ready & has_keep, "resid": resid_in.ready,
                 "glu": ~odd | (glu_in.ready & aux_words.valid)}
        m.d.comb += pl.ready.eq(Cat(tag.dest[k] & takes.get(name, 1) for k, name in enumerate(DESTS)).any())
        with m.If(is_dest["logits"] & tag.last):
            m.d.sync += [self.done.valid.eq(1), self.done.payload.eq(argmax)]

        # x writes: the embedding copy at the step's start, the residual adds later
        rt_out = data.View(resid_tag, resid_o.payload.tag)
        with m.If(copy_landed):
            m.d.comb += [x_wr.addr.eq(copy_row), x_wr.data.eq(emb_word), x_wr.en.eq(1)]
        with m.Else():
            m.d.comb += [x_wr.addr.eq(rt_out.row), x_wr.data.eq(resid_o.payload.sum),
                         x_wr.en.eq(resid_o.valid & resid_o.ready)]
        # a version of x is complete with the write of its last row (the rows come in order)
        m.d.comb += x_commit.eq(Mux(copy_landed, copy_row == d - 1, rt_out.last) & x_wr.en)
        with m.If(x_wr.en):
            m.d.sync += x_rows.eq(Mux(x_commit, 0, x_rows + 1))
        with m.If(x_commit):
            m.d.sync += x_version.eq(x_version + 1)

        # ---- counters -------------------------------------------------------------------------
        counters = {name: Signal(32, name=f"count_{name}") for name in COUNTERS}
        fire = lambda s: s.valid & s.ready  # noqa: E731
        events = {
            "cycles": 1, "busy_cycles": busy, "steps": fire(self.done) & busy, "weight_words": fire(tmv.w),
            "quant_elements": fire(quant.i) + fire(glu.i), "mlgru_elements": fire(mlgru.i),
            "glu_elements": fire(glu.i), "post_rows": fire(rescale.i),
        }
        keep_ops = fire(mlgru.i) & (mlgru.i.payload.use_keep if cfg.use_lower_bound else 0)
        events["lmul_ops"] = (Mux(fire(quant.i), 3, 0) + Mux(fire(mlgru.i), 4, 0) + keep_ops
                              + Mux(fire(glu.i), 3, 0) + fire(rescale.i))
        # vectors a quantiser holds, from the first element in to the scale out: up to two (one
        # loading while the scale of the one before is computed)
        quant_held, glu_held = Signal(2), Signal(2)
        for held, unit in ((quant_held, quant), (glu_held, glu)):
            first = Signal(init=1)  # the next element is a vector's first
            with m.If(fire(unit.i)):
                m.d.sync += first.eq(unit.i.payload.last)
            m.d.sync += held.eq(held + (fire(unit.i) & first) - fire(unit.scale))
        quant_busy, glu_busy = quant_held != 0, glu_held != 0
        mlgru_inside = Signal(16)  # elements between its input and output (far fewer than 2**16)
        m.d.sync += mlgru_inside.eq(mlgru_inside + fire(mlgru.i) - fire(mlgru.o))
        events.update(quant_busy=quant_busy, glu_busy=glu_busy, mlgru_busy=mlgru_inside != 0,
                      lanes_starved=busy & tmv.w.valid & ~tmv.w.ready, post_starved=acc.valid & ~p_run)
        for name, inc in events.items():
            # the increment through a register: the counters are far from the units they watch,
            # and a statistic may lag a cycle
            inc_q = Signal(Value.cast(inc).shape(), name=f"inc_{name}")
            m.d.sync += [inc_q.eq(inc), counters[name].eq(counters[name] + inc_q)]
        # what each unit does this cycle, for simulation tools (benchmarks.engine's timeline)
        for name, value in (("lanes", fire(tmv.w)), ("codes", fire(tmv.a)), ("quantiser", quant_busy),
                            ("glu", glu_busy), ("mlgru", mlgru_inside != 0), ("post", fire(rescale.i)),
                            ("resid", fire(resid.i)), ("op_feed", f_op), ("op_codes", r_op), ("op_post", p_op)):
            probe = Signal(value.shape(), name=f"activity_{name}")
            m.d.comb += probe.eq(value)
            self.activity[name] = probe
        snapshot = Array(Signal(32, name=f"snap_{name}") for name in COUNTERS)

        # ---- the bus: byte access between steps --------------------------------------------------
        req = self.bus.payload
        b_addr, b_write, b_data = Signal(ADDR_WIDTH), Signal(), Signal(8)
        offset = b_addr[:REGION_SHIFT]

        def decoded(name, condition):
            """``condition`` of the request's address, in a register refreshed every cycle from
            ``b_addr`` (valid from the state after DECODE on: a wide compare of the address in
            front of the enables it steers was a slow path)."""
            flag = Signal(name=f"bus_is_{name}")
            m.d.sync += flag.eq(condition(b_addr))
            return flag

        in_weights = decoded("weights", lambda addr: addr < lay.weight_words * L)
        regions = {}

        def in_region(name, size_bytes):
            if name not in regions:
                regions[name] = decoded(name, lambda addr: (addr[REGION_SHIFT:] == REGIONS[name] >> REGION_SHIFT)
                                        & (addr[:REGION_SHIFT] < size_bytes))
            return regions[name]

        at_counters = decoded("counters_base", lambda addr: addr == REGIONS["counters"])
        # weights: the word and lane of a byte address, tracked for sequential access and found
        # by a restoring division by L otherwise
        exp_addr = Signal(ADDR_WIDTH)
        w_word, w_lane, b_lane = Signal(range(lay.weight_words + 1)), Signal(range(L)), Signal(range(L))
        # restoring division, a quotient bit per two cycles: the divisor L * 2**k and the quotient
        # bit 2**k shift right a place each (registers, so no barrel shifter sits in the
        # compare-subtract path), and the comparison lands in a register before the subtraction
        # (a compare's carry chain and the enable of every register it steers, in one cycle, were
        # among the device's slowest paths; a bus access that is not sequential is rare)
        div_rem, div_bit = Signal(ADDR_WIDTH), Signal(range(ADDR_WIDTH))
        trial, q_bit = Signal(2 * ADDR_WIDTH), Signal(ADDR_WIDTH)
        div_ge = Signal()
        # the quotient builds up in its own register and moves into w_word (which addresses the
        # weight banks) when the division ends: the division's enables stay local
        quotient = Signal.like(w_word)
        # SUBTRACT's work is steered by registers set in DIVIDE and high for one cycle, not by
        # the state's decode (which, ANDed with the comparison, fanned out to the quotient and
        # the remainder: a slow path)
        div_shift = Signal()
        # "a weight-space address that does not follow the last one", compared as the request is
        # taken (exp_addr holds in IDLE): in DECODE the compare fanned out to the division's registers
        b_divide = Signal()
        # the word moves on two cycles after ACCESS, so that the weights' read address holds the
        # written word for three cycles, as the bus's other addresses do (a write is followed by
        # SETTLE): the bus writes at the read ports' address registers, which take it
        # WEIGHT_ADDRESS_LATENCY cycles later, as the write lands (below)
        w_carry = Signal(2)
        m.d.sync += [div_ge.eq(0), div_shift.eq(0), w_carry.eq(w_carry << 1)]
        with m.If(w_carry[1]):
            m.d.sync += w_word.eq(w_word + 1)
        with m.If(div_shift):
            m.d.sync += [trial.eq(trial >> 1), q_bit.eq(q_bit >> 1)]
        with m.If(div_ge):
            m.d.sync += [div_rem.eq(div_rem - trial), quotient.eq(quotient | q_bit[:len(quotient)])]
        access, selecting, reading = Signal(), Signal(), Signal()
        with m.FSM(name="bus") as bus_fsm:
            with m.State("IDLE"):
                m.d.comb += self.bus.ready.eq(~busy & ~self.done.valid)
                with m.If(self.bus.valid & self.bus.ready):
                    m.d.sync += [b_addr.eq(req.addr), b_write.eq(req.write), b_data.eq(req.data),
                                 b_divide.eq(~req.addr[ADDR_WIDTH - 1] & (req.addr != exp_addr))]
                    m.next = "DECODE"
            with m.State("DECODE"):  # the address's regions land in registers (``decoded``)
                with m.If(b_divide):
                    m.d.sync += [div_rem.eq(b_addr), div_bit.eq(ADDR_WIDTH - 2), quotient.eq(0),
                                 trial.eq(L << (ADDR_WIDTH - 2)), q_bit.eq(1 << (ADDR_WIDTH - 2))]
                    m.next = "DIVIDE"
                with m.Else():
                    m.next = "ACCESS"
            with m.State("DIVIDE"):
                m.d.sync += [div_ge.eq(div_rem >= trial), div_shift.eq(1)]
                m.next = "SUBTRACT"
            with m.State("SUBTRACT"):  # the step's registers move on flags, below
                m.next = "DIVIDE"
                with m.If(div_bit == 0):
                    m.next = "LANE"
                with m.Else():
                    m.d.sync += div_bit.eq(div_bit - 1)
            with m.State("LANE"):
                m.d.sync += [w_word.eq(quotient), w_lane.eq(div_rem), exp_addr.eq(b_addr)]
                m.next = "ACCESS"
            with m.State("ACCESS"):  # writes go to the registers in front of the write ports; reads are issued
                m.d.comb += access.eq(1)
                m.d.sync += b_lane.eq(w_lane)
                with m.If(~b_addr[ADDR_WIDTH - 1]):
                    m.d.sync += [exp_addr.eq(b_addr + 1), w_lane.eq(Mux(w_lane == L - 1, 0, w_lane + 1)),
                                 w_carry[0].eq(w_lane == L - 1)]
                with m.If(~b_write & at_counters):
                    m.d.sync += [snapshot[k].eq(counters[name]) for k, name in enumerate(COUNTERS)]
                m.next = "SETTLE"
                with m.If(~b_write):
                    m.next = "READ1"
            with m.State("SETTLE"):  # a write's address holds a cycle more (``BUS_WRITE_LATENCY``)
                m.next = "IDLE"
            # the memories' words land in registers: a cycle for the small memories, one per hop
            # for the banked ones, and two more for the weights word's copy and its groups of
            # bytes (its address moves on after ACCESS, so its copy is taken exactly
            # WEIGHT_READ_LATENCY cycles after it, and SELECT comes two cycles later; the other
            # memories' addresses hold, so they wait as long)
            for k in range(1, WEIGHT_READ_LATENCY + 2):
                with m.State(f"READ{k}"):
                    m.next = f"READ{k + 1}" if k < WEIGHT_READ_LATENCY + 1 else "SELECT"
            with m.State("SELECT"):  # each memory's byte is picked from its registered word
                m.d.comb += selecting.eq(1)
                m.next = "MERGE"
            with m.State("MERGE"):  # the addressed memory's byte becomes rdata
                m.d.comb += reading.eq(1)
                m.next = "REPLY"
            with m.State("REPLY"):
                m.d.comb += self.rdata.valid.eq(1)
                with m.If(self.rdata.ready):
                    m.next = "IDLE"
        m.d.comb += bus_idle.eq(bus_fsm.ongoing("IDLE"))

        def byte_of(value, index, count):
            return Array(value[8 * k:8 * (k + 1)] for k in range(count))[index]

        # Wide memories are written whole words at a time: the bytes below a word's last one wait in
        # ``pending`` and the word is written with its last byte. No byte enables, so a block RAM
        # keeps its full width (an ECP5 EBR holds 36 data bits per word, not 4 bytes of 9).
        store = access & b_write
        pending = Signal(8 * max(L - 1, 3))
        writes = [  # (width in bytes, region, word address, byte within the word, region size)
            (2, "embedding", offset >> 1, offset[0], lay.embedding_words * 2),
            (4, "pg", offset >> 2, offset[:2], lay.pg_words * 4),
            (2, "aux", offset >> 1, offset[0], lay.aux_words * 2),
            (1, "scratch", offset, Const(0, 1), SCRATCH_BYTES),
        ]
        # (region, columns of the bank, their address registers or None, selected, word address, byte
        # within the word, word bytes) per memory or bank
        targets = [("weights", bank, w_addrs[b], in_weights & (w_word >> WEIGHT_BANK_BITS == b), w_word, w_lane, L)
                   for b, bank in enumerate(weights)]
        banked = {"embedding": (embedding, emb_addrs, EMBEDDING_BANK_BITS), "pg": (pg, pg_addrs, PG_BANK_BITS),
                  "aux": (aux, aux_addrs, AUX_BANK_BITS), "scratch": ([[scratch]], [None], 0)}
        for width, name, addr, byte, size in writes:
            banks, addrs, bank_bits = banked[name]
            targets += [(name, bank, bank_addrs, in_region(name, size) & ((addr >> bank_bits == b) if len(banks) > 1 else 1),
                         addr, byte, width) for b, (bank, bank_addrs) in enumerate(zip(banks, addrs))]
        # Each column of block RAMs is written from its own registers (one enable driving all the
        # banks' write ports would span the die). A banked memory is written BUS_WRITE_LATENCY
        # cycles after ACCESS at its read port's address register, which holds the bus's address
        # then (the bus holds it three cycles, through SETTLE; the word moves on after them:
        # ``w_carry``), so one address net reaches both ports of a block RAM (a write address
        # copy per column was 8% of the placed design's wire length, a94de7d seed 2). The data
        # follows in as many registers, four hops from the bus across the die, the first
        # SHARED_WRITE_STAGES shared by the column's banks (the same bits of the word): a chain
        # per block RAM was another 12%. Before any later request can read it.
        shared = {}  # (region, column): the data's registers in front of the banks' own
        k = 0
        for region, bank, bank_addrs, selected, addr, byte, width in targets:
            word, lo = Cat(pending[:8 * (width - 1)], b_data), 0
            stages = 1 if bank_addrs is None else BUS_WRITE_LATENCY
            for c, memory in enumerate(bank):
                port = memory.write_port()
                bits = len(port.data)
                # replicas, not plain registers: every column of a bank has the same enable, and
                # Yosys merged them into one register on all of a bank's block RAMs (35 for a
                # weight bank), across the die
                en_q = replicas(f"bus_wr{k}_en", 1, stages, reset_less=False)
                m.d.sync += [en_q[0].eq(store & selected & (byte == width - 1))]
                m.d.sync += [en_q[n].eq(en_q[n - 1]) for n in range(1, stages)]
                if bank_addrs is None:  # a memory beside the bus: its own address register
                    (addr_q,), data_q = replicas(f"bus_wr{k}_addr", port.addr.shape(), 1), replicas(f"bus_wr{k}_data", bits, 1)
                    m.d.sync += [addr_q.eq(addr), data_q[0].eq(word[lo:lo + bits])]
                    m.d.comb += port.addr.eq(addr_q)
                else:
                    if (region, c) not in shared:
                        chain = shared[region, c] = replicas(f"bus_wr_{region}_c{c}_data", bits, SHARED_WRITE_STAGES)
                        m.d.sync += [chain[0].eq(word[lo:lo + bits])]
                        m.d.sync += [chain[n].eq(chain[n - 1]) for n in range(1, SHARED_WRITE_STAGES)]
                    data_q = replicas(f"bus_wr{k}_data", bits, stages - SHARED_WRITE_STAGES)
                    m.d.sync += [data_q[0].eq(shared[region, c][-1])]
                    m.d.sync += [data_q[n].eq(data_q[n - 1]) for n in range(1, len(data_q))]
                    m.d.comb += port.addr.eq(bank_addrs[c])
                m.d.comb += [port.data.eq(data_q[-1]), port.en.eq(en_q[-1])]
                k, lo = k + 1, lo + bits
        # the bytes below a word's last one wait in pending, written a cycle after ACCESS from
        # registers: a write enable per byte, decoded in ACCESS (the decode of the byte's index
        # and the state, in front of the enables of the bytes, was a slow path). The next request
        # reaches ACCESS three cycles later at the earliest.
        pending_we = Signal(max(L - 1, 3))
        pending_data = Signal(8, reset_less=True)
        m.d.sync += [pending_we.eq(0), pending_data.eq(b_data)]
        for selected, byte, width in [(in_weights, w_lane, L)] + [
                (in_region(name, size), byte, width) for width, name, _, byte, size in writes]:
            if width > 1:
                with m.If(store & selected):
                    m.d.sync += [pending_we[k].eq(byte == k) for k in range(width - 1)]
        for k in range(len(pending_we)):
            with m.If(pending_we[k]):
                m.d.sync += pending[8 * k:8 * (k + 1)].eq(pending_data)

        # read ports: the engine's addresses during a step, the bus's between steps
        lg_rd, sc_rd = logits.read_port(), scratch.read_port()
        # the bus's address into a register beside each small memory (the offset register to the
        # logits' LUT RAM routed 8.2 ns at 1377152 seed 1); the word is in ``held`` 3 cycles after
        # ACCESS, long before SELECT
        (lg_addr,), (sc_addr,) = replicas("bus_logits_addr", lg_rd.addr.shape(), 1), replicas(
            "bus_scratch_addr", sc_rd.addr.shape(), 1)
        m.d.sync += [lg_addr.eq(offset >> 1), sc_addr.eq(offset)]
        m.d.comb += [
            w_rd_addr.eq(Mux(busy_addr, w_addr, w_word)),
            emb_addr.eq(Mux(busy_addr, token_base + copy_k, offset >> 1)),
            pg_addr.eq(Mux(busy_addr, feed_pg_addr, offset >> 2)),
            aux_addr.eq(Mux(busy_addr, feed_aux_addr, offset >> 1)),
            lg_rd.addr.eq(lg_addr), sc_rd.addr.eq(sc_addr),
        ]
        rdata = Signal(8)
        ports = {"scratch": sc_rd, "logits": lg_rd}
        held = {name: Signal.like(port.data, name=f"bus_{name}_q") for name, port in ports.items()}
        m.d.sync += [held[name].eq(port.data) for name, port in ports.items()]
        # the banked memories' words come from their own registers, BANKED_READ_LATENCY cycles on
        held.update(weights=w_word_out, embedding=emb_word, pg=pg_word, aux=aux_word)

        def pick(name, width):
            return byte_of(held[name], offset[:max(1, (width - 1).bit_length())], width) if width > 1 else held[name]

        # two stages: each memory's byte, then the addressed one (one wide mux would span the die);
        # the weights word's byte in three more, registered every cycle: a copy of the word (its
        # registers lie by their block RAMs across the die: a group's byte picked straight from
        # them was 10.9 ns at 1377152 seed 1), a byte within each group of eight, then the group
        w_copy = Signal.like(held["weights"], name="bus_weights_word", reset_less=True)
        m.d.sync += w_copy.eq(held["weights"])
        groups = [Signal(8, name=f"bus_weights_group{g}") for g in range(-(-L // 8))]
        m.d.sync += [group.eq(byte_of(w_copy[64 * g:], b_lane[:3], min(8, L - 8 * g)))
                     for g, group in enumerate(groups)]
        sources = {"weights": (in_weights, Array(groups)[b_lane[3:]] if len(groups) > 1 else groups[0])}
        sources.update({name: (in_region(name, size), pick(name, width)) for width, name, _, _, size in writes})
        sources["logits"] = (in_region("logits", vocab * 2), pick("logits", 2))
        # the counter's word first, in two registered steps refreshed every cycle (a word within
        # each group of four, then the group; the address and the snapshot are stable from ACCESS
        # on, SELECT comes BANKED_READ_LATENCY >= 3 cycles later), then its byte
        words = list(snapshot)
        group_words = [Signal(32, name=f"counter_group{g}") for g in range(-(-len(words) // 4))]
        m.d.sync += [gw.eq(Array(words[4 * g:4 * g + 4])[offset[2:4]]) for g, gw in enumerate(group_words)]
        counter_word = Signal(32)
        # the group's index is the offset's bits that tell the groups apart, not all of [4:]: a
        # compare of 16 address bits (beyond the region's end) in front of the word was a slow path
        m.d.sync += counter_word.eq(Array(group_words)[offset[4:4 + max(1, (len(group_words) - 1).bit_length())]])
        sources["counters"] = (in_region("counters", 4 * len(COUNTERS)), byte_of(counter_word, offset[:2], 4))
        picked = {name: Signal(8, name=f"bus_{name}_byte") for name in sources}
        with m.If(selecting):
            m.d.sync += [picked[name].eq(byte) for name, (_, byte) in sources.items()]
        with m.If(reading):
            m.d.sync += rdata.eq(0)  # unmapped bytes read as 0
            for name, (selected, _) in sources.items():
                with m.If(selected):
                    m.d.sync += rdata.eq(picked[name])
        m.d.comb += self.rdata.payload.eq(rdata)
        return m
