"""The two BitLinear quantisers of MMfreeLM (see docs: mmfreelm.md, "BitLinear").

* ``absmean_ternary``: per-tensor weight quantisation to {-1, 0, +1} with one float scale.
* ``absmax_int8``: per-token-row activation quantisation to int8 codes with one float scale.

Shared by the float reference model, the integer models and the hardware test benches, so the
rounding rules live in exactly one place.
"""

from __future__ import annotations

import numpy as np

# Lower clamp of both scales in the reference code (``clamp_(min=1e-5)``).
SCALE_FLOOR = 1e-5
# Activation codes use the symmetric int8 range; -128 is reachable only through the clamp.
ACT_QMAX = 127


def round_half_away(x):
    """Round to nearest integer, ties away from zero (the Triton kernel's ``round``).

    ``floor(x + 0.5)`` is wrong for the largest float below 0.5 (the addition rounds up to 1.0),
    so ties are detected exactly: ``x - trunc(x)`` is exact in binary floating point.
    """
    x = np.asarray(x)
    t = np.trunc(x)
    frac = x - t
    return np.where(np.abs(frac) == 0.5, t + np.sign(x), np.rint(x))


def absmean_ternary(w):
    """Ternary weights and their scale: ``beta = max(mean|W|, 1e-5)``, ``W_t = clip(round(W/beta), -1, 1)``.

    Returns ``(W_t as int8 in {-1, 0, 1}, beta as a Python float)``. The mean is accumulated in
    float64 (order-independent to ~1e-16, unlike a float32 sum), and ``W / beta`` is evaluated in
    ``W``'s dtype. Ties (``|W| / beta`` exactly 0.5) have measure zero for real weights, so ``np.rint``
    (ties to even, like ``torch.round`` in the reference ``weight_quant``) is used as is.
    """
    w = np.asarray(w)
    beta = max(float(np.mean(np.abs(w), dtype=np.float64)), SCALE_FLOOR)
    w_t = np.clip(np.rint(w / np.asarray(beta, dtype=w.dtype)), -1, 1).astype(np.int8)
    return w_t, beta


def absmax_int8(y, axis=-1):
    """Per-row int8 codes: ``amax = max(max|y|, 1e-5)``, ``q = clip(round_half_away(y * 127/amax), -128, 127)``.

    Returns ``(q, amax)``: ``q`` has ``y``'s float dtype but holds integers (so it can feed a
    float matmul that stays exact), ``amax`` keeps the reduced axis (``keepdims``) so that
    ``q * amax / 127`` broadcasts back. The scale is formed first as ``127 / amax`` and then
    multiplied, as in the reference code (``scale = 127 / amax; round(y * scale)``).
    """
    y = np.asarray(y)
    amax = np.maximum(np.max(np.abs(y), axis=axis, keepdims=True), np.asarray(SCALE_FLOOR, y.dtype))
    scale = np.asarray(ACT_QMAX, y.dtype) / amax
    q = np.clip(round_half_away(y * scale), -128, ACT_QMAX)
    return q, amax
