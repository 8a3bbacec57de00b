"""No block of hw.catalog multiplies two variables.

Each block's RTLIL goes through Amaranth's built-in Yosys (``hierarchy -top top; proc; flatten;
opt; wreduce; opt``); any ``$mul`` cell left whose operands both carry a non-constant bit fails
the test (``benchmarks.synth.find_multipliers``). A multiplication by a constant is allowed: it
is shifts and adds. The last tests show the check catches a real multiplier.
"""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from benchmarks.synth import find_multipliers
from hw.catalog import BLOCKS


def test_device_core_has_no_multiplier_at_all():
    """The whole device (UART, link, token engine) has no $mul cell, not even by a constant:
    synth_ecp5 put a constant product (the embedding row address) on a DSP block once."""
    from golden.image import DeviceLayout
    from hw.top import DeviceCore
    from sim.engine_model import TINY_LANES, tiny_engine_model

    config, _ = tiny_engine_model()
    found = find_multipliers(DeviceCore(DeviceLayout(config, TINY_LANES), divisor=4), allow_constant=False)
    assert not found, f"$mul cell(s) in the device core: {found}"


def test_catalog_has_the_lmul_blocks():
    assert {"lmul_bf16", "lmul_fp32", "lmul_e4m3"} <= set(BLOCKS)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_has_no_multiplier(name):
    found = find_multipliers(BLOCKS[name]())
    assert not found, f"{name}: variable x variable multiplier(s): {found}"


class _Multiplier(wiring.Component):
    """A deliberately bad block: the product of two inputs."""

    a: In(8)
    b: In(8)
    p: Out(16)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.p.eq(self.a * self.b)
        return m


class _ByConstant(wiring.Component):
    """Multiplication by a constant, behind a register and a submodule boundary."""

    a: In(8)
    p: Out(16)

    def elaborate(self, platform):
        m = Module()
        inner = Module()
        k = Signal(8, init=0)      # driven by a constant only: flatten + opt make it one
        x = Signal(8)
        inner.d.comb += k.eq(37)
        m.submodules.inner = inner
        m.d.sync += x.eq(self.a)
        m.d.comb += self.p.eq(x * k)
        return m


class _RegisteredMultiplier(wiring.Component):
    """A multiplier between registers in a submodule (the check looks through the hierarchy)."""

    a: In(8)
    b: In(8)
    p: Out(16)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = _Multiplier()
        m.d.sync += [inner.a.eq(self.a), inner.b.eq(self.b), self.p.eq(inner.p)]
        return m


def test_check_catches_a_multiplier():
    found = find_multipliers(_Multiplier())
    assert len(found) == 1
    assert found[0]["A_nonconst"] == 8 and found[0]["B_nonconst"] == 8


def test_check_catches_a_multiplier_in_a_submodule():
    assert len(find_multipliers(_RegisteredMultiplier())) == 1


def test_check_allows_a_constant_factor():
    assert find_multipliers(_ByConstant()) == []
