"""Comparisons with a constant written as logic.

Yosys maps a ``>=`` or ``<=`` to a carry chain. After an adder that is a second chain in series,
and after a register it is slower than the two LUT levels a comparison with a constant needs.
"""

from amaranth.hdl import Cat, Const

__all__ = ["at_least"]


def at_least(value, bound: int):
    """``value >= bound`` for an unsigned ``value`` and a constant ``bound``, as a sum of products of
    the bits (Yosys maps a ``>=`` to a carry chain, which then sits in series with the logic after it):
    value is at least bound when it has every 1 bit of bound, or a 1 where bound has a 0 with every
    1 bit of bound above it."""
    width = len(value)
    if bound <= 0:
        return Const(1)
    if bound >= 1 << width:
        return Const(0)
    ones_above = [[k for k in range(i + 1, width) if bound >> k & 1] for i in range(width)]
    products = [Cat(*(value[k] for k in range(width) if bound >> k & 1)).all()]
    products += [Cat(value[i], *(value[k] for k in ones_above[i])).all()
                 for i in range(width) if not bound >> i & 1]
    return Cat(*products).any()
