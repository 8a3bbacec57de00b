"""Skid buffer: a stream register slice that breaks combinational valid/ready paths."""

from amaranth.hdl import Module, Mux, Shape, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer", "HalfRateRegister", "registered", "registered_into"]


class SkidBuffer(wiring.Component):
    """A two-entry stream slice: ``i.ready`` and ``o.valid`` come from registers.

    Between the units of a composite it stops ``o.ready`` from rippling back through every unit's
    stall logic in one cycle. Latency 1 cycle, throughput one transfer per cycle, never drops or
    reorders: when the output stalls, the one element already accepted waits in the skid register.

    ``ring=False`` (the default): ``o.payload`` is a register too; ``o.ready`` reaches the enables
    of the output register, one per payload bit. ``ring=True``: the two entries are a ring and
    ``o.payload`` is a multiplexer after them, picked by a read pointer; ``o.ready`` reaches only
    that pointer and the fill flags, and the entries' enables come from the input side alone. For
    a wide payload whose consumer sits far away: the consumer's ready no longer has to reach
    every bit of the payload in the cycle it is computed.

    ``copies`` (``ring=False`` only): ``payload_copies``, that many more registers equal to
    ``o.payload`` at every cycle, for loads spread over the die (each copy can sit by its share).
    ``copy_bits``: a ``slice`` of the payload's bits, for copies of those bits only (the build
    keeps every bit of a copy, used or not: ``hw.pipeline.KEEP_REPLICAS``).

    ``enable_groups`` (``ring=False`` only): the payload's bits in that many slices, each loaded
    under its own copy of the valid and skid flags. The enable of a wide payload is one net to
    every bit; its slices' loads spread over the die, and that net routed for 6-11 ns on ECP5
    (the MLGRU's input, 66 bits). A copy per slice gives each slice its own enable LUT. With
    more than one group, ``i.ready`` comes from a flag copy of its own too, and the payload copies
    are shared out over the groups in order (copy ``j`` of ``c`` under group ``j * n // c``), so no
    flag drives both the upstream's ready logic and a slice, nor every copy's enable.
    """

    def __init__(self, shape, *, ring: bool = False, copies: int = 0, copy_bits: slice = None,
                 enable_groups: int = 1):
        if not isinstance(ring, bool):
            raise ValueError(f"ring must be a bool, got {ring!r}")
        if isinstance(copies, bool) or not isinstance(copies, int) or copies < 0 or (ring and copies):
            raise ValueError(f"copies must be an integer >= 0, and 0 with ring=True; got {copies!r}")
        if (isinstance(enable_groups, bool) or not isinstance(enable_groups, int) or enable_groups < 1
                or (ring and enable_groups != 1)):
            raise ValueError(f"enable_groups must be an integer >= 1, and 1 with ring=True; got {enable_groups!r}")
        self.ring, self.enable_groups = ring, enable_groups
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})
        width = Shape.cast(shape).width
        if enable_groups > max(width, 1):
            raise ValueError(f"enable_groups must be at most the payload's {width} bits, got {enable_groups}")
        if copy_bits is not None and (not isinstance(copy_bits, slice) or len(range(width)[copy_bits]) == 0
                                      or copy_bits.step not in (None, 1)):
            raise ValueError(f"copy_bits must be a non-empty slice of the payload's {width} bits, "
                             f"got {copy_bits!r}")
        self.copy_bits = slice(None) if copy_bits is None else copy_bits
        from .pipeline import replicas  # hw.pipeline builds on this module
        copy_shape = shape if copy_bits is None else len(range(width)[copy_bits])
        self.payload_copies = replicas("payload", copy_shape, copies) if copies else []

    def elaborate(self, platform):
        m = Module()
        if self.ring:
            return self._elaborate_ring(m)
        from .pipeline import replicas
        n = self.enable_groups
        # a (valid, skid) pair of flags per slice, driven alike; each pair computes its next state
        # from its own flags, so no one flag reaches every slice's logic
        valids = [self.o.valid] + (replicas("o_valid", 1, n - 1, reset_less=False) if n > 1 else [])
        skids = [Signal(name="skid_valid")] + (replicas("skid_valid", 1, n - 1, reset_less=False) if n > 1 else [])
        pairs = list(zip(valids, skids))
        if n > 1:  # the input's ready from a pair of its own once the slices have theirs
            pairs.append(tuple(replicas(f"ready_{name}", 1, 1, reset_less=False)[0] for name in ("valid", "skid")))
        # data registers without reset (only the valid bits need one)
        skid_data = Signal(self.o.payload.shape(), reset_less=True)
        out = Signal(self.o.payload.shape(), reset_less=True)
        m.d.comb += self.o.payload.eq(out)
        m.d.comb += self.i.ready.eq(~pairs[-1][1])
        bits_out, bits_skid, bits_in = (Value.cast(v) for v in (out, skid_data, self.i.payload))
        copied = self.copy_bits
        for valid, skid in pairs:
            with m.If(~valid | self.o.ready):
                with m.If(skid):
                    m.d.sync += [valid.eq(1), skid.eq(0)]
                with m.Else():
                    m.d.sync += valid.eq(self.i.valid)
            with m.Elif(self.i.valid & ~skid):
                m.d.sync += skid.eq(1)
        width, n_copies = len(bits_out), len(self.payload_copies)
        for g, (valid, skid) in enumerate(zip(valids, skids)):
            lo, hi = g * width // n, (g + 1) * width // n
            copies = [c for j, c in enumerate(self.payload_copies) if j * n // n_copies == g]
            with m.If(~valid | self.o.ready):
                m.d.sync += bits_out[lo:hi].eq(Mux(skid, bits_skid[lo:hi], bits_in[lo:hi]))
                m.d.sync += [copy.eq(Mux(skid, bits_skid[copied], bits_in[copied])) for copy in copies]
            # the skid register follows the input while it is empty, so its enable is a register's
            # output, not the downstream ready (which comes from logic across the die: these
            # enables were among the device's slowest paths); it is read only once its flag is set
            with m.If(~skid):
                m.d.sync += bits_skid[lo:hi].eq(bits_in[lo:hi])
        return m

    def _elaborate_ring(self, m):
        shape = self.o.payload.shape()
        entries = [Signal(shape, name=f"entry{k}", reset_less=True) for k in range(2)]
        w_ptr, r_ptr = Signal(), Signal()
        full = Signal()  # both entries hold an element; o.valid: at least one does
        push = self.i.valid & self.i.ready
        pop = self.o.valid & self.o.ready
        m.d.comb += [self.i.ready.eq(~full), self.o.payload.eq(Mux(r_ptr, entries[1], entries[0]))]
        for k, entry in enumerate(entries):
            with m.If(push & (w_ptr == k)):
                m.d.sync += entry.eq(self.i.payload)
        with m.If(push):
            m.d.sync += w_ptr.eq(~w_ptr)
        with m.If(pop):
            m.d.sync += r_ptr.eq(~r_ptr)
        with m.If(push & ~pop):
            m.d.sync += [self.o.valid.eq(1), full.eq(self.o.valid)]
        with m.Elif(pop & ~push):
            m.d.sync += [self.o.valid.eq(full), full.eq(0)]
        return m


class HalfRateRegister(wiring.Component):
    """A one-entry stream slice: ``o.valid``, ``o.payload`` and ``i.ready`` all come from
    registers (``i.ready`` is ``~o.valid``), so no path crosses it in either direction.

    Latency 1 cycle; throughput one transfer every two cycles, since the entry is taken before the
    next is accepted. Half the area of a ``SkidBuffer``, for a stream that runs at half the clock
    or slower (a UART's bytes). Never drops or reorders.
    """

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        out = Signal(self.o.payload.shape(), reset_less=True)
        m.d.comb += [self.o.payload.eq(out), self.i.ready.eq(~self.o.valid)]
        with m.If(self.o.valid):
            with m.If(self.o.ready):
                m.d.sync += self.o.valid.eq(0)
        with m.Else():
            m.d.sync += [out.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        return m


def registered(m: Module, name: str, source, *, ring: bool = False, half_rate: bool = False,
               enable_groups: int = 1):
    """``source`` (a stream a submodule drives) through a new ``SkidBuffer`` (a
    ``HalfRateRegister`` with ``half_rate``); returns its output."""
    if half_rate and (ring or enable_groups != 1):
        raise ValueError("a half-rate register has no ring and no enable groups")
    skid = (HalfRateRegister(source.payload.shape()) if half_rate
            else SkidBuffer(source.payload.shape(), ring=ring, enable_groups=enable_groups))
    m.submodules[name] = skid
    wiring.connect(m, source, skid.i)
    return skid.o


def registered_into(m: Module, name: str, sink, *, ring: bool = False, half_rate: bool = False,
                    enable_groups: int = 1):
    """A new stream to drive in place of ``sink`` (a submodule's input), which it reaches through
    a new ``SkidBuffer`` (a ``HalfRateRegister`` with ``half_rate``): the sink's ready and the
    logic in front of its payload no longer meet in one cycle."""
    feed = stream.Signature(sink.payload.shape()).create()
    wiring.connect(m, registered(m, name, feed, ring=ring, half_rate=half_rate, enable_groups=enable_groups), sink)
    return feed
