"""The stall discipline every arithmetic unit shares, and the credit queue that lets a composite's
units run without it.

A unit's pipeline stages all advance together whenever its output register is empty or being
read; ``i.ready`` is that same condition. A unit whose ``o.ready`` is a constant 1 therefore
advances every cycle and its stage registers need no enable. Composites use that: they admit an
element into a chain of units only when a ``CreditQueue`` at the chain's end has a place reserved
for it, tie every ``ready`` inside the chain to 1, and so have no stall enable fanning out across
hundreds of flip-flops.
"""

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .skid import registered

__all__ = ["stall_advance", "register", "Stages", "payload_register", "replicas", "flow", "CreditQueue", "CreditRing", "NO_RW_CHECK",
           "KEEP_REPLICAS", "DROP_LUT_RAM_HINTS", "HONOUR_NO_RW_CHECK", "after_read_script"]

#: Attributes of a memory whose read and write ports never access the same word in the same
#: cycle: Yosys then adds no collision logic after the block RAM's output (on ECP5 that logic
#: sits behind the RAM's ~5.8 ns clock-to-output and costs the whole cycle).
NO_RW_CHECK = {"no_rw_check": 1}

#: Marks a register's name as one of several copies (``replicas``).
REPLICA_TAG = "_replica"
#: Yosys commands for after the design is read (before ``synth_*``): keep every copy. ``opt_merge``
#: merges flip-flops with the same inputs and initial value, so the copies would fold back into
#: one register driving all the loads; it leaves a flip-flop with the ``keep`` attribute alone.
#: ``proc`` first, so that a design read as Verilog has its flip-flops as cells too. ``%a`` adds
#: the copies' aliases: where a copy drives a memory port's address, Amaranth's RTLIL gives the
#: flip-flop's output the port's wire and connects the copy's name to it, and without the
#: aliases that flip-flop was not marked (the lanes' 13 address copies became one).
KEEP_REPLICAS = f"proc; setattr -set keep 1 w:*{REPLICA_TAG}* %a %ci1:+$dff,$adff[Q] w:* %d"
#: iCE40 has no LUT RAM, and Yosys stops at a memory that asks for it (``ram_style =
#: "distributed"``, the hint that keeps ECP5's small buffers out of its block RAMs): the iCE40
#: flows drop the hint, and such a memory goes to block RAM or flip-flops.
DROP_LUT_RAM_HINTS = "setattr -unset ram_style a:ram_style=distributed"


#: ``NO_RW_CHECK`` for the read ports Amaranth writes as synchronous ones (its RTLIL, which the
#: board build reads). Yosys honours ``no_rw_check`` only where ``memory_dff`` merges a register
#: into an asynchronous read port (a design read as Verilog); a port that is synchronous from the
#: start keeps "old data on a collision", and ``memory_libmap`` then builds that behaviour
#: around every block RAM: a compare of the two addresses, a copy of the written word and a mux
#: after the RAM's output, which also keeps the output register out of the RAM
#: (``host.ebr_output_register``). Collected into ``$mem_v2`` cells, such a memory's collision
#: mask (one bit per read and write port pair) is set to "don't care" when all its read ports are
#: synchronous (memories of up to 4 read and 2 write ports; the engine's have 1 or 2 and 1).
#: Only for a design read as RTLIL: read as Verilog, the ports are asynchronous here and
#: ``memory_dff`` honours the attribute itself.
HONOUR_NO_RW_CHECK = "; ".join(["memory_collect"] + [
    f"setparam -set RD_COLLISION_X_MASK {r * w}'b{'1' * (r * w)} t:$mem_v2 a:no_rw_check %i "
    f"r:RD_PORTS={r} %i r:WR_PORTS={w} %i r:RD_CLK_ENABLE={r}'b{'1' * r} %i"
    for r in range(1, 5) for w in range(1, 3)])


def after_read_script(family: str, source: str = "verilog") -> str:
    """The Yosys commands a flow runs right after reading the design, for an FPGA family
    (``"ecp5"`` or ``"ice40"``) and the form the design was read in (``"verilog"``, as the
    per-block benchmark reads it, or ``"rtlil"``, as the board build does)."""
    if family not in ("ecp5", "ice40"):
        raise ValueError(f"unknown FPGA family {family!r}; expected 'ecp5' or 'ice40'")
    if source not in ("verilog", "rtlil"):
        raise ValueError(f"unknown design source {source!r}; expected 'verilog' or 'rtlil'")
    commands = [KEEP_REPLICAS]
    if source == "rtlil":
        commands.append(HONOUR_NO_RW_CHECK)
    if family == "ice40":
        commands.append(DROP_LUT_RAM_HINTS)
    return "; ".join(commands)


def stall_advance(m: Module, unit) -> Signal:
    """Drive ``unit.i.ready`` and return the unit's ``advance``: ``~o.valid | o.ready``."""
    advance = Signal()
    m.d.comb += [advance.eq(~unit.o.valid | unit.o.ready), unit.i.ready.eq(advance)]
    return advance


def register(m: Module, enable, value, name: str, shape=None, *, reset_less=True) -> Signal:
    """A pipeline register: ``value`` captured when ``enable`` is high.

    Data registers have no reset (``reset_less``): only valid bits and control state need one,
    and a reset reaching every data flip-flop of the device is a net of ~20,000 loads, the
    slowest in the design. Pass ``reset_less=False`` for a valid bit."""
    reg = Signal(value.shape() if shape is None else shape, name=name, reset_less=reset_less)
    with m.If(enable):
        m.d.sync += reg.eq(value)
    return reg


class Stages:
    """Which of a unit's pipeline registers exist.

    A unit names each register after the stage it ends (``"s3_sum"`` ends stage ``"s3"``) and
    makes it with ``register``. The stages in ``wired`` get no registers: their values go straight
    on, and the next stage computes both in one cycle. Each wired stage takes one cycle off the
    unit's latency (``count`` registered stages remain). Built for a fast clock, a unit has a
    register wherever the ECP5 needs one; on a slow clock (the UP5K at 24 MHz) most of them only
    cost logic cells, since on iCE40 a flip-flop whose input no LUT drives takes a cell of its own.

    Parameters
    ----------
    names : sequence of str
        The unit's stages, in order.
    wired : collection of str
        The stages without registers (default none).
    """

    def __init__(self, names, wired=()):
        self.names = tuple(names)
        wired = frozenset(wired)
        unknown = sorted(wired - set(self.names))
        if unknown:
            raise ValueError(f"unknown stages {unknown}; the unit's stages are {list(self.names)}")
        self.wired = wired

    @property
    def count(self) -> int:
        """Stages that end in a register."""
        return len(self.names) - len(self.wired)

    def register(self, m: Module, enable, value, name: str, shape=None, *, reset_less=True) -> Signal:
        """``register(m, enable, value, name, ...)``, or a wire carrying ``value`` when the stage
        ``name`` ends (its prefix up to the first ``_``) is wired."""
        stage = name.split("_", 1)[0]
        if stage not in self.names:
            raise ValueError(f"register {name!r} ends no stage of {list(self.names)}")
        if stage not in self.wired:
            return register(m, enable, value, name, shape, reset_less=reset_less)
        wire = Signal(value.shape() if shape is None else shape, name=name)
        m.d.comb += wire.eq(value)
        return wire


def replicas(name: str, shape, copies: int, *, reset_less=True, init=None) -> list:
    """``copies`` registers that the caller drives alike, so that each can sit next to its own
    share of the loads instead of one register's net spanning them all (a register feeding a few
    hundred block RAM or LUT RAM address pins across the die routes for 8-15 ns on ECP5). The
    synthesis flows run ``KEEP_REPLICAS``, which stops Yosys from merging them."""
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies must be an integer >= 1, got {copies!r}")
    return [Signal(shape, name=f"{name}{REPLICA_TAG}{k}", reset_less=reset_less, init=init)
            for k in range(copies)]


def payload_register(m: Module, port, name: str = "o_payload"):
    """A reset-less register driving a stream port's ``payload``; the caller assigns it in
    ``m.d.sync`` (a unit's output register: its valid bit keeps the reset)."""
    reg = Signal(port.payload.shape(), name=name, reset_less=True)
    m.d.comb += port.payload.eq(reg)
    return reg


def flow(m: Module, src, dst, **payload):
    """Link two units of a chain that never stalls: ``dst.valid`` follows ``src.valid`` and
    ``src.ready`` is a constant 1 (``dst`` never stalls either, its output is always taken), so
    neither unit has a stall enable. ``payload`` assigns fields of ``dst.payload``."""
    m.d.comb += [dst.valid.eq(src.valid), src.ready.eq(1)]
    for name, value in payload.items():
        m.d.comb += getattr(dst.payload, name).eq(value)


class CreditQueue(wiring.Component):
    """The output queue of a chain of units that never stalls.

    The owner admits an element into the chain (``admit`` high) only while ``room`` is high. Every
    element admitted and not yet delivered on ``o`` holds one of ``depth`` credits, so the queue
    always has a place for what the chain delivers on ``i``: ``i.ready`` is a constant 1 and the
    chain's output is always taken.

    ``room`` is a register. Latency ``i`` to ``o`` ``LATENCY`` cycles (a ring in distributed RAM
    written whenever ``i.valid``, a register after its read, then a skid buffer). A chain of
    latency ``L`` runs at one element per cycle with ``depth >= L + LATENCY + 2``
    (``depth_for``); a smaller depth only slows it. Back-pressure on ``o`` fills
    the queue, then ``room`` falls: nothing is lost or reordered. ``ring=True`` makes the skid
    buffer a ring of two entries (``hw.skid.SkidBuffer``): for a wide element whose consumer is
    far away, ``o.ready`` then reaches a read pointer instead of every bit's output register.
    """

    LATENCY = 3

    @classmethod
    def depth_for(cls, latency: int) -> int:
        """The depth that lets a chain of ``latency`` cycles run at one element per cycle (a
        place is free again two cycles after its element is taken: ``_credits``)."""
        return latency + cls.LATENCY + 2

    def __init__(self, shape, depth: int, *, ring: bool = False):
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an integer >= 2, got {depth!r}")
        self.shape, self.depth, self.ring = shape, depth, ring
        super().__init__({
            "admit": In(1),
            "room": Out(1, init=1),
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        # A ring in distributed RAM. The credits guarantee a free place for every element the
        # chain delivers, so it is written whenever ``i.valid``: the storage's write enables see
        # nothing but that register (a FIFO would gate them with its level comparison).
        m.submodules.ring = ring = memory.Memory(shape=self.shape, depth=self.depth, init=[])
        write, read = ring.write_port(), ring.read_port(domain="comb")
        w_addr, r_addr = Signal(range(self.depth)), Signal(range(self.depth))
        m.d.comb += [write.addr.eq(w_addr), write.data.eq(self.i.payload), write.en.eq(self.i.valid),
                     read.addr.eq(r_addr), self.i.ready.eq(1)]
        with m.If(self.i.valid):
            m.d.sync += w_addr.eq(Mux(w_addr == self.depth - 1, 0, w_addr + 1))

        # the head: a register after the ring's asynchronous read, then a skid buffer
        head = stream.Signature(self.shape).create()
        stored = Signal(range(self.depth + 1))  # in the ring, not yet in the head
        pop = Signal()
        m.d.comb += pop.eq((stored != 0) & (~head.valid | head.ready))
        with m.If(~head.valid | head.ready):
            m.d.sync += [head.valid.eq(stored != 0), head.payload.eq(read.data)]
        with m.If(pop):
            m.d.sync += r_addr.eq(Mux(r_addr == self.depth - 1, 0, r_addr + 1))
        m.d.sync += stored.eq(stored + self.i.valid - pop)
        out = registered(m, "out_skid", head, ring=self.ring)
        m.d.comb += [self.o.valid.eq(out.valid), self.o.payload.eq(out.payload),
                     out.ready.eq(self.o.ready)]

        _credits(m, self.depth, self.admit, self.o.valid & self.o.ready, self.room)
        return m


def _credits(m: Module, depth: int, admit, taken, room):
    """Drive ``room`` (a register, initially 1): high while fewer than ``depth`` elements are
    admitted and not yet counted as taken from the queue's output. A take is counted a cycle
    late, from a register: the consumer's ready, often from across the die, then reaches that
    one flip-flop and not the count (10.7 ns into the quantiser's code queue's count at 1377152
    seed 1). The queue only frees places later for it (``depth_for``)."""
    # ``room`` for the next cycle from two comparisons of the current count, so no comparison
    # waits for the count's adder
    taken_q = Signal()
    m.d.sync += taken_q.eq(taken)
    taken = taken_q
    used = Signal(range(depth + 1))
    m.d.sync += used.eq(used + admit - taken)
    with m.If(admit & ~taken):
        m.d.sync += room.eq(used < depth - 1)
    with m.Elif(taken & ~admit):
        m.d.sync += room.eq(1)


class CreditRing(wiring.Component):
    """A credit queue (as ``CreditQueue``) whose output comes straight from its storage, for a
    wide word that a consumer across the die takes into its own register.

    ``o.valid`` and ``o.ready`` are a stream's handshake, but ``o.payload`` is **late**: it is
    the word of a transfer in the cycle *after* that transfer (the consumer registers it then).
    The word is the asynchronous read of a ring in distributed RAM. The ring is cut into
    ``slices`` groups of bits, each with its own registered copy of the written word, the write
    address and enable, and of the read address. Each slice's read address is a copy of the
    central head address, one cycle behind it: so the consumer's ``ready`` reaches only the
    ring's central count and head (a few registers that can sit beside the consumer), and
    the slices across the die are reached by register-to-register nets only. A ``ready``
    moving the slices' addresses itself had to cross the die and come back within one cycle.

    Latency ``i`` to ``o.valid`` ``LATENCY`` (2) cycles: the slices' write registers, then the
    write; the payload one cycle after the transfer. Throughput one element per cycle; a chain
    of latency ``L`` in front runs at one element per cycle with ``depth >= depth_for(L)``.
    ``o.payload`` is combinational (a LUT RAM read after a register). ``o.valid`` and ``room``
    are registers; back-pressure on ``o`` fills the ring, then ``room`` falls: nothing is lost
    or reordered. A taken word's place is written again no earlier than three cycles after the
    take (its credit returns through two registers), so the late read is never overwritten.
    """

    LATENCY = 2

    @classmethod
    def depth_for(cls, latency: int) -> int:
        """The depth that lets a chain of ``latency`` cycles run at one element per cycle (a
        place is free again two cycles after its element is taken: ``_credits``)."""
        return latency + cls.LATENCY + 2

    def __init__(self, shape, depth: int, slices: int = 1):
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 2:
            raise ValueError(f"depth must be an integer >= 2, got {depth!r}")
        width = Shape.cast(shape).width
        if not isinstance(slices, int) or isinstance(slices, bool) or not 1 <= slices <= width:
            raise ValueError(f"slices must be an integer from 1 to the word's {width} bits, got {slices!r}")
        self.shape, self.depth, self.slices = shape, depth, slices
        super().__init__({
            "admit": In(1),
            "room": Out(1, init=1),
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self.shape).width
        per = -(-width // self.slices)
        spans = [(lo, min(per, width - lo)) for lo in range(0, width, per)]
        wrap = lambda addr: Mux(addr == self.depth - 1, 0, addr + 1)  # noqa: E731
        w_addr = Signal(range(self.depth))
        with m.If(self.i.valid):
            m.d.sync += w_addr.eq(wrap(w_addr))
        # ``o.valid`` a register of its own, beside the consumer, and a copy for the ring's own
        # read addresses: the consumer's state then starts from registers near it
        valid_out, valid_here = replicas("o_valid", 1, 2, reset_less=False)
        m.d.comb += self.o.valid.eq(valid_out)
        taken = valid_here & self.o.ready
        # the place of the next word to be taken; the slices follow it a cycle later
        head = Signal(range(self.depth))
        with m.If(taken):
            m.d.sync += head.eq(wrap(head))
        in_bits, out_bits = self.i.payload.as_value(), self.o.payload.as_value()
        for k, (lo, bits) in enumerate(spans):
            m.submodules[f"ring{k}"] = ring = memory.Memory(shape=bits, depth=self.depth, init=[])
            write, read = ring.write_port(), ring.read_port(domain="comb")
            (wa,), (ra,) = (replicas(f"{what}{k}", w_addr.shape(), 1, reset_less=False) for what in ("w_addr", "r_addr"))
            (wd,) = replicas(f"w_data{k}", bits, 1)
            (we,) = replicas(f"w_en{k}", 1, 1, reset_less=False)  # alike in every slice: kept apart
            m.d.sync += [wa.eq(w_addr), wd.eq(in_bits[lo:lo + bits]), we.eq(self.i.valid), ra.eq(head)]
            m.d.comb += [write.addr.eq(wa), write.data.eq(wd), write.en.eq(we),
                         read.addr.eq(ra), out_bits[lo:lo + bits].eq(read.data)]
        landed = Signal()  # a word is written this cycle
        stored = Signal(range(self.depth + 1))  # written, not yet taken
        m.d.sync += [landed.eq(self.i.valid), stored.eq(stored + landed - taken)]
        # "stored + landed - taken != 0" without the adder: nothing is taken from an empty ring
        next_valid = landed | (stored > 1) | ((stored == 1) & ~taken)
        m.d.sync += [valid_out.eq(next_valid), valid_here.eq(next_valid)]
        m.d.comb += self.i.ready.eq(1)
        _credits(m, self.depth, self.admit, taken, self.room)
        return m
