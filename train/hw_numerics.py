"""The numerics contract with gradients: fine-tuning with the hardware arithmetic in the loop.

``TorchNumerics`` is a drop-in ``golden.numerics.Numerics`` for torch tensors. Each operation
returns the contract's bits in the forward pass (computed by the NumPy golden primitives
themselves, so there is one definition of every bit) and the gradient of the exact operation in the
backward pass (a straight-through estimator per primitive):

    out = exact(x) + (contract(x) - exact(x)).detach()

Passed to ``golden.bitexact.DeviceModel.from_params`` and ``BitExactModel``, it runs the golden
dataflow unchanged on trainable tensors.
"""

from __future__ import annotations

import numpy as np
import torch

from golden.numerics import Approximations, Numerics


def _to_numpy(x):
    return x.detach().to(torch.float64).cpu().numpy() if torch.is_tensor(x) else x


class TorchNumerics(Numerics):
    def __init__(self, approx: Approximations = Approximations()):
        super().__init__(approx)
        self.golden = Numerics(approx)

    def _ste(self, exact: torch.Tensor, contract, *args) -> torch.Tensor:
        """Forward: ``contract(*args)`` evaluated by the golden NumPy code. Backward: ``exact``."""
        value = np.asarray(contract(*[_to_numpy(a) for a in args]), np.float64)
        hw = torch.from_numpy(value).to(exact.dtype)
        return exact + (hw - exact).detach()

    # arithmetic
    def mul(self, a, b, fmt="bf16"):
        return self._ste(a * b, lambda x, y: self.golden.mul(x, y, fmt), a, b)

    def add(self, a, b, fmt="bf16"):
        return self._ste(a + b, lambda x, y: self.golden.add(x, y, fmt), a, b)

    def sub(self, a, b, fmt="bf16"):
        return self._ste(a - b, lambda x, y: self.golden.sub(x, y, fmt), a, b)

    # nonlinear functions (silu is inherited: mul(x, sigmoid(x)))
    def sigmoid(self, x):
        return self._ste(torch.sigmoid(x), self.golden.sigmoid, x)

    def rsqrt(self, x):
        return self._ste(torch.rsqrt(x), self.golden.rsqrt, x)

    def recip(self, x):
        return self._ste(1.0 / x, self.golden.recip, x)

    # reductions and conversions
    def sum_squares(self, v):
        return self._ste((v * v).sum(-1, keepdim=True), self.golden.sum_squares, v)

    @staticmethod
    def absmax(x):
        return x.abs().amax(-1, keepdim=True)

    def to_int8(self, x):
        return self._ste(x, self.golden.to_int8, x)

    def from_int(self, acc, fmt="bf16"):
        return self._ste(acc, lambda a: self.golden.from_int(a, fmt), acc)

    @staticmethod
    def ternary_matvec(q, w_t):
        return q @ w_t.t()

    # plumbing and constants
    def round(self, x, fmt="bf16"):
        return self._ste(x, lambda a: self.golden.round(a, fmt), x)

    @staticmethod
    def stack(xs, axis):
        return torch.stack(xs, dim=axis)

    def constant(self, x, fmt="bf16"):
        if not torch.is_tensor(x):  # a host-side number (eps, a scale): no gradient to keep
            return torch.as_tensor(self.golden.constant(x, fmt))
        return self.round(x, fmt)

    @staticmethod
    def ternarize(w):
        """Ternary weights with the usual STE; beta is not differentiated (as in BitNet)."""
        beta = w.detach().abs().mean().clamp(min=1e-5)
        scaled = w / beta
        return scaled + (scaled.round().clamp(-1, 1) - scaled).detach(), float(beta)

    @staticmethod
    def lower_bounds(raw):
        lb = torch.softmax(raw, dim=0)
        return torch.cumsum(lb, dim=0) - lb[0]
