"""Float reference of the MatMul-free LM (HGRNBit), in NumPy.

This is the model of ``docs: mmfreelm.md`` written out equation by equation, with the code's
semantics by default (``mixer="code"``) and the paper's MLGRU token mixer as an option
(``mixer="paper"``). Every projection is a BitLinear: its own RMSNorm, int8 absmax activations,
absmean ternary weights, one float rescale per row. Everything else stays in float
(float32 by default, float64 on request).

Two equivalent ways to run it:

* ``step(token, state)``: one token, recurrent form (what the hardware does);
* ``forward(tokens)``: a whole sequence from the zero state; the BitLinears run over all positions
  at once, only the elementwise recurrence loops over time.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from golden.checkpoint import check_tensors, load_checkpoint
from golden.config import ModelConfig
from golden.ternary import absmax_int8, absmean_ternary, ACT_QMAX

MIXERS = ("code", "paper")


# --------------------------------------------------------------------------------------------
# elementwise pieces

def sigmoid(x):
    """Logistic function, computed from exp(-|x|) so that it never overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def silu(x):
    """SiLU / swish: ``x * sigmoid(x)``."""
    return x * sigmoid(x)


def rms_norm(x, weight, eps):
    """``x * rsqrt(mean(x^2) + eps) * weight`` over the last axis (no bias, no mean subtraction)."""
    rstd = 1 / np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + np.asarray(eps, x.dtype))
    return x * rstd * weight


def softmax(x, axis):
    z = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return z / np.sum(z, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """Stable log-softmax: shift by the max, then subtract log-sum-exp."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def lower_bounds(raw):
    """Per-layer forget-gate floors: ``lb = softmax(raw, 0); lb = cumsum(lb, 0) - lb[0]``.

    Row 0 is exactly 0 and the rows rise with depth towards ``1 - lb[0]``.
    """
    lb = softmax(raw, axis=0)
    return np.cumsum(lb, axis=0) - lb[0]


# --------------------------------------------------------------------------------------------
# BitLinear

def bitlinear(x, norm_weight, w_t, beta, eps):
    """One BitLinear on rows of ``x`` with pre-quantised weights ``w_t`` (ternary, [N, K]) and scale ``beta``.

    ``out = (y_q @ W_t^T) * max|y| * beta / 127`` with ``y = RMSNorm(x)`` and ``y_q`` its int8 codes.
    The integer dot product is exact in float32 as long as 127 * K < 2^24 (K < 132k).
    """
    y = rms_norm(x, norm_weight, eps)
    y_q, amax = absmax_int8(y)
    acc = y_q @ w_t.T
    return acc * (amax * np.asarray(beta, x.dtype) / ACT_QMAX)


class BitLinear:
    """A BitLinear whose ternary weights and scale are computed once (the weights never change)."""

    def __init__(self, weight, norm_weight, eps, dtype):
        self.w_ternary, self.beta = absmean_ternary(np.asarray(weight, dtype=dtype))
        # Ternary values held in the float compute dtype so the matmul uses BLAS; still exact.
        self.w_t = self.w_ternary.astype(dtype)
        self.norm_weight = np.asarray(norm_weight, dtype=dtype)
        self.eps = eps

    @property
    def out_features(self) -> int:
        return self.w_t.shape[0]

    def __call__(self, x):
        return bitlinear(x, self.norm_weight, self.w_t, self.beta, self.eps)


# --------------------------------------------------------------------------------------------
# the model

class FloatModel:
    """MMfreeLM forward pass in NumPy floats. ``params`` uses the official key names (float arrays)."""

    def __init__(self, config: ModelConfig, params: dict, mixer: str = "code", dtype=np.float32):
        if mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {MIXERS}, got {mixer!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        check_tensors(config, params, "FloatModel params")
        self.config, self.mixer, self.dtype = config, mixer, dtype
        eps = config.rms_norm_eps

        def vec(key):
            return np.asarray(params[key], dtype=dtype)

        def bl(prefix):
            return BitLinear(params[prefix + ".weight"], params[prefix + ".norm.weight"], eps, dtype)

        self.embeddings = vec("model.embeddings.weight")
        self.lower_bounds = (lower_bounds(np.asarray(params["model.lower_bounds"], dtype=np.float64))
                             .astype(dtype) if config.use_lower_bound else None)
        self.layers = []
        for layer in range(config.num_hidden_layers):
            p = f"model.layers.{layer}."
            self.layers.append({
                "attn_norm": vec(p + "attn_norm.weight"),
                "i_proj": bl(p + "attn.i_proj"),
                "f_proj": bl(p + "attn.f_proj"),
                "g_proj": bl(p + "attn.g_proj"),
                "g_norm": vec(p + "attn.g_norm.weight"),
                "o_proj": bl(p + "attn.o_proj"),
                "mlp_norm": vec(p + "mlp_norm.weight"),
                "gate_proj": bl(p + "mlp.gate_proj"),
                "down_proj": bl(p + "mlp.down_proj"),
            })
        self.norm = vec("model.norm.weight")
        self.lm_head = bl("lm_head")

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, mixer: str = "code", dtype=np.float32) -> "FloatModel":
        config, params = load_checkpoint(model_dir)
        return cls(config, params, mixer=mixer, dtype=dtype)

    # ---- the block, one function per equation group ----------------------------------------

    def _layer_lower_bound(self, layer: int):
        """The forget-gate floor of this layer, or None (layer 0, or lower bounds disabled)."""
        if self.lower_bounds is None or layer == 0:
            return None
        return self.lower_bounds[layer]

    def _gates(self, layer: int, a):
        """Forget gate ``f`` and gated input ``i`` of the recurrence ``h = f*h + i``.

        ``f = sigmoid(BL_f(a))``, raised to ``lb + (1-lb) f`` for layers > 0;
        ``i = silu(BL_i(a)) * (1 - f)``. The paper's ``(1-f) * silu(x W_c)`` is the same product,
        so both mixers share this function.
        """
        w = self.layers[layer]
        f = sigmoid(w["f_proj"](a))
        lb = self._layer_lower_bound(layer)
        if lb is not None:
            f = lb + (1 - lb) * f
        i = silu(w["i_proj"](a)) * (1 - f)
        return f, i

    def _mixer_output(self, layer: int, a, h):
        """Output gate, then the output projection.

        code:  ``o = RMSNorm(g) * w_gnorm * silu(h)`` (norm on g, SiLU on h);
        paper: ``o = sigmoid(g) * h``.
        """
        w = self.layers[layer]
        g = w["g_proj"](a)
        if self.mixer == "code":
            o = rms_norm(g, w["g_norm"], self.config.rms_norm_eps) * silu(h)
        else:
            o = sigmoid(g) * h
        return w["o_proj"](o)

    def _mlp(self, layer: int, x1):
        """GLU: one BitLinear d -> 2I (one ternary scale), split into gate and value, then down."""
        w = self.layers[layer]
        u = w["gate_proj"](rms_norm(x1, w["mlp_norm"], self.config.rms_norm_eps))
        inter = self.config.intermediate_size
        gate, y = u[..., :inter], u[..., inter:]
        return w["down_proj"](silu(gate) * y)

    def _logits(self, x):
        return self.lm_head(rms_norm(x, self.norm, self.config.rms_norm_eps))

    # ---- public API -------------------------------------------------------------------------

    def init_state(self) -> list[np.ndarray]:
        """Per-layer recurrent state ``h`` ([d] each), all zeros."""
        return [np.zeros(self.config.hidden_size, dtype=self.dtype) for _ in self.layers]

    def _check_tokens(self, tokens):
        tokens = np.asarray(tokens)
        if not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"tokens must be integers, got dtype {tokens.dtype}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.config.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.config.vocab_size}), "
                             f"got range [{tokens.min()}, {tokens.max()}]")
        return tokens

    def step(self, token: int, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """One token through all layers: ``(logits [vocab], new_state)``; ``state`` is not modified."""
        token = int(self._check_tokens(token))
        if len(state) != len(self.layers):
            raise ValueError(f"state has {len(state)} layers, model has {len(self.layers)}")
        x = self.embeddings[token]
        new_state = []
        for layer, w in enumerate(self.layers):
            a = rms_norm(x, w["attn_norm"], self.config.rms_norm_eps)
            f, i = self._gates(layer, a)
            h = f * state[layer] + i
            x1 = x + self._mixer_output(layer, a, h)
            x = x1 + self._mlp(layer, x1)
            new_state.append(h)
        return self._logits(x), new_state

    def forward(self, tokens) -> np.ndarray:
        """Logits ``[..., T, vocab]`` for ``tokens`` of shape [T] or [B, T], from the zero state."""
        tokens = self._check_tokens(tokens)
        if tokens.ndim not in (1, 2):
            raise ValueError(f"tokens must have shape [T] or [B, T], got {tokens.shape}")
        x = self.embeddings[tokens]  # [..., T, d]
        for layer, w in enumerate(self.layers):
            a = rms_norm(x, w["attn_norm"], self.config.rms_norm_eps)
            f, i = self._gates(layer, a)
            h = self._scan(f, i)
            x1 = x + self._mixer_output(layer, a, h)
            x = x1 + self._mlp(layer, x1)
        return self._logits(x)

    def _scan(self, f, i):
        """``h_t = f_t * h_{t-1} + i_t`` from ``h_0 = 0`` along the time axis (-2)."""
        h = np.empty_like(i)
        prev = np.zeros_like(i[..., 0, :])
        for t in range(i.shape[-2]):
            prev = f[..., t, :] * prev + i[..., t, :]
            h[..., t, :] = prev
        return h

    def logprobs(self, tokens) -> np.ndarray:
        """Natural-log next-token distributions ``[..., T, vocab]`` (log-softmax of ``forward``)."""
        return log_softmax(self.forward(tokens).astype(np.float64), axis=-1)

    def bits_per_token(self, tokens) -> float:
        """Mean of ``-log2 p(tokens[t] | tokens[:t])`` over positions 1..T-1 (and the batch)."""
        return bits_per_token(self.forward(tokens), tokens)


def bits_per_token(logits, tokens) -> float:
    """Mean over t = 1..T-1 of ``-log2 softmax(logits[t-1])[tokens[t]]``; ``logits`` is [..., T, vocab]."""
    tokens = np.asarray(tokens)
    if tokens.shape[-1] < 2:
        raise ValueError("bits_per_token needs at least 2 tokens")
    lp = log_softmax(np.asarray(logits, dtype=np.float64)[..., :-1, :], axis=-1)
    picked = np.take_along_axis(lp, tokens[..., 1:, None], axis=-1)[..., 0]
    return float(-picked.mean() / math.log(2))
