"""The gateware blocks measured and checked one by one (benchmarks.synth, tests/test_no_multipliers).

``BLOCKS`` maps a block name to a zero-argument factory returning a fresh Amaranth component.
Add a block here once and it is synthesised by ``python -m benchmarks.synth`` and checked for
multipliers by the test suite.

A block whose module is not in ``hw/`` yet is simply absent from ``BLOCKS``; why it is absent is
in ``UNAVAILABLE`` (name -> the ImportError), so a module that exists but fails to import does
not go unnoticed: the benchmark prints ``UNAVAILABLE`` and the tests list it.
"""

__all__ = ["BLOCKS", "UNAVAILABLE"]

BLOCKS = {}
UNAVAILABLE = {}


def _guarded(names, register):
    """Run ``register()`` (which imports a module and adds entries); on ImportError record why
    each of ``names`` is absent instead."""
    try:
        register()
    except ImportError as e:
        for name in names:
            UNAVAILABLE[name] = f"{type(e).__name__}: {e}"


def _lmul():
    from hw.lmul import LMul
    BLOCKS["lmul_bf16"] = lambda: LMul("bf16")
    BLOCKS["lmul_fp32"] = lambda: LMul("fp32")
    BLOCKS["lmul_e4m3"] = lambda: LMul("e4m3")


def _fadd():
    from hw.fadd import FAdd
    BLOCKS["fadd_bf16"] = lambda: FAdd("bf16")
    BLOCKS["fadd_fp32"] = lambda: FAdd("fp32")


def _nonlinear():
    from hw.nonlinear import Sigmoid, SiLU
    BLOCKS["sigmoid_bf16"] = lambda: Sigmoid()
    BLOCKS["silu_bf16"] = lambda: SiLU()


def _convert():
    from hw.convert import FloatToInt8, IntToFloat
    # The contract's accumulator widths are 16..21 bits (docs/numerics.md, section 2): the widest.
    BLOCKS["int21_to_bf16"] = lambda: IntToFloat(21, "bf16")
    BLOCKS["bf16_to_int8"] = lambda: FloatToInt8()


def _tables():
    from hw.tables import Reciprocal, ReciprocalSqrt
    BLOCKS["recip_bf16"] = lambda: Reciprocal()
    BLOCKS["rsqrt_bf16"] = lambda: ReciprocalSqrt()


def _narrow():
    from hw.narrow import Narrow
    BLOCKS["narrow_fp32_bf16"] = lambda: Narrow()


def _ternary_matvec():
    from hw.ternary_matvec import TritDecoder
    BLOCKS["trit_decoder"] = lambda: TritDecoder(lanes=1)
    # Placeholder until the configurations worth measuring are settled (P lanes, the largest
    # BitLinear shape), e.g.:
    # BLOCKS["ternary_matvec_p8"] = lambda: hw.ternary_matvec.TernaryMatVec(
    #     lanes=8, max_rows=..., max_cols=...)


_guarded(["lmul_bf16", "lmul_fp32", "lmul_e4m3"], _lmul)
_guarded(["fadd_bf16", "fadd_fp32"], _fadd)
_guarded(["sigmoid_bf16", "silu_bf16"], _nonlinear)
_guarded(["int21_to_bf16", "bf16_to_int8"], _convert)
_guarded(["recip_bf16", "rsqrt_bf16"], _tables)
_guarded(["narrow_fp32_bf16"], _narrow)
_guarded(["trit_decoder"], _ternary_matvec)
