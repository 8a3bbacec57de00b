"""Skid buffer: a stream register slice that breaks combinational valid/ready paths."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer", "registered", "registered_into"]


class SkidBuffer(wiring.Component):
    """A two-entry stream slice: ``i.ready``, ``o.valid`` and ``o.payload`` all come from registers.

    Between the units of a composite it stops ``o.ready`` from rippling back through every unit's
    stall logic in one cycle. Latency 1 cycle, throughput one transfer per cycle, never drops or
    reorders: when the output stalls, the one element already accepted waits in the skid register.
    """

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        # data registers without reset (only the valid bits need one)
        skid_data = Signal(self.o.payload.shape(), reset_less=True)
        out = Signal(self.o.payload.shape(), reset_less=True)
        m.d.comb += self.o.payload.eq(out)
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(~self.o.valid | self.o.ready):
            with m.If(skid_valid):
                m.d.sync += [out.eq(skid_data), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [out.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += skid_valid.eq(1)
        # the skid register follows the input while it is empty, so its enable is a register's
        # output, not the downstream ready (which comes from logic across the die: these enables
        # were among the device's slowest paths); it is read only once skid_valid is set
        with m.If(~skid_valid):
            m.d.sync += skid_data.eq(self.i.payload)
        return m


def registered(m: Module, name: str, source):
    """``source`` (a stream a submodule drives) through a new ``SkidBuffer``; returns its output."""
    skid = SkidBuffer(source.payload.shape())
    m.submodules[name] = skid
    wiring.connect(m, source, skid.i)
    return skid.o


def registered_into(m: Module, name: str, sink):
    """A new stream to drive in place of ``sink`` (a submodule's input), which it reaches through
    a new ``SkidBuffer``: the sink's ready and the logic in front of its payload no longer meet
    in one cycle."""
    feed = stream.Signature(sink.payload.shape()).create()
    wiring.connect(m, registered(m, name, feed), sink)
    return feed
