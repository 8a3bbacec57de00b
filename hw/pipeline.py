"""The stall discipline every arithmetic unit shares, in one place.

A unit's pipeline stages all advance together whenever its output register is empty or being
read; ``i.ready`` is that same condition. (Composites break the resulting ready chains with
``hw.skid`` buffers between units.)
"""

from amaranth.hdl import Module, Signal

__all__ = ["stall_advance", "register"]


def stall_advance(m: Module, unit) -> Signal:
    """Drive ``unit.i.ready`` and return the unit's ``advance``: ``~o.valid | o.ready``."""
    advance = Signal()
    m.d.comb += [advance.eq(~unit.o.valid | unit.o.ready), unit.i.ready.eq(advance)]
    return advance


def register(m: Module, enable, value, name: str, shape=None) -> Signal:
    """A pipeline register: ``value`` captured when ``enable`` is high."""
    reg = Signal(value.shape() if shape is None else shape, name=name)
    with m.If(enable):
        m.d.sync += reg.eq(value)
    return reg
