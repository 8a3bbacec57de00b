"""HGRNBit (MatMul-free LM) in torch, for training our own small models.

Follows /work/shared/reference/mmfreelm.md (the ``mmfreelm`` reference code's semantics). The
module tree mirrors the official checkpoint, so ``state_dict()`` has exactly the official keys:

    model.embeddings.weight, model.lower_bounds,
    model.layers.{l}.attn_norm.weight,
    model.layers.{l}.attn.{i,f,g,o}_proj.weight (+ .norm.weight), model.layers.{l}.attn.g_norm.weight,
    model.layers.{l}.mlp_norm.weight,
    model.layers.{l}.mlp.gate_proj.weight [2I, d] (+ .norm.weight),
    model.layers.{l}.mlp.down_proj.weight [d, I] (+ .norm.weight),
    model.norm.weight, lm_head.weight, lm_head.norm.weight

Quantisers use straight-through estimators (``x + (q(x) - x).detach()``); the latent weights are
float32. Activation rounding is half away from zero (the fused kernel's behaviour).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from golden.config import ModelConfig


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def activation_quant(y: torch.Tensor) -> torch.Tensor:
    """Per-row absmax int8 fake quantisation: ``clamp(round(y * s), -128, 127) / s``, s = 127/max|y|."""
    amax = y.detach().abs().amax(-1, keepdim=True).clamp(min=1e-5)
    scale = 127.0 / amax
    return round_half_away(y * scale).clamp(-128, 127) / scale


def weight_quant(w: torch.Tensor) -> torch.Tensor:
    """Per-tensor absmean ternary fake quantisation: ``clamp(round(W / beta), -1, 1) * beta``."""
    beta = w.detach().abs().mean().clamp(min=1e-5)
    return (w * (1.0 / beta)).round().clamp(-1, 1) * beta


def ternary_weight(w: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(W_t in {-1,0,1}, beta) as the hardware stores them."""
    beta = w.detach().abs().mean().clamp(min=1e-5)
    return torch.round(w.detach() / beta).clamp(-1, 1), float(beta)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


class _BitLinearFn(torch.autograd.Function):
    """Fused BitLinear with the STE gradients of ``BitLinear.forward_reference``.

    Forward: ``(y_int @ W_t.T) * (max|y| / 127 * mean|W|)`` with the integer dot products done
    exactly (``torch._int_mm``, int8 x int8 -> int32; float64 inputs use a float64 matmul), as the
    hardware does them. Backward: the STE makes both quantisers the identity, so only the RMSNorm
    and the matmul need gradients; the two backward matmuls run in ``mm_dtype`` (bfloat16 by
    default: several times faster than fp32 on CPUs with AVX512-BF16; ordinary mixed precision).
    """

    @staticmethod
    def forward(ctx, x, g, w, eps, mm_dtype):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        r = torch.rsqrt(x2.pow(2).mean(-1, keepdim=True) + eps)
        y = x2 * r * g
        amax = y.abs().amax(-1, keepdim=True).clamp_(min=1e-5)
        yq = y.mul_(127.0 / amax)
        half = yq.sign().mul_(0.5)
        yq = yq.add_(half).trunc_().clamp_(-128, 127)           # round half away from zero
        beta = w.detach().abs().mean().clamp(min=1e-5)
        wt = (w * (1.0 / beta)).round().clamp(-1, 1)
        row_scale = amax / 127.0                                # dequantised y = yq * row_scale
        if x.dtype == torch.float32:
            acc = torch._int_mm(yq.to(torch.int8), wt.to(torch.int8).t()).to(torch.float32)
        else:
            acc = yq @ wt.t()
        out = acc.mul_(row_scale * beta)
        y_mm, w_mm = yq.to(mm_dtype), wt.to(mm_dtype)
        ctx.save_for_backward(x2, r, g, y_mm, w_mm, row_scale, beta)
        ctx.shape = shape
        return out.reshape(*shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx, grad_out):
        x2, r, g, y_mm, w_mm, row_scale, beta = ctx.saved_tensors
        go = grad_out.reshape(-1, w_mm.shape[0])
        grad_w = ((go * row_scale).to(y_mm.dtype).t() @ y_mm).to(x2.dtype)
        grad_y = (go.to(w_mm.dtype) @ w_mm).to(x2.dtype).mul_(beta)
        xr = x2 * r
        grad_g = (grad_y * xr).sum(0)
        gy = grad_y.mul_(g)
        grad_x = (gy - xr * (gy * xr).mean(-1, keepdim=True)).mul_(r)
        return grad_x.reshape(ctx.shape), grad_g, grad_w, None, None


class BitLinear(nn.Module):
    """RMSNorm -> int8 absmax activations (STE) -> ternary absmean weights (STE) -> linear, no bias.

    Equals ``(y_q @ W_t.T) * max|y| * mean|W| / 127`` in the forward pass.
    """

    #: dtype of the matmuls (see ``_BitLinearFn``); float32 for exact-gradient checks.
    mm_dtype = torch.bfloat16

    def __init__(self, in_features: int, out_features: int, eps: float = 1e-6):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.norm = RMSNorm(in_features, eps)

    def forward(self, x):
        mm_dtype = self.mm_dtype if x.dtype == torch.float32 else x.dtype
        return _BitLinearFn.apply(x, self.norm.weight, self.weight, self.norm.eps, mm_dtype)

    def forward_reference(self, x):
        """The textbook STE formulation (``x + (q(x) - x).detach()``); same values and gradients."""
        y = self.norm(x)
        y = y + (activation_quant(y) - y).detach()
        w = self.weight
        w = w + (weight_quant(w) - w).detach()
        return F.linear(y, w)


def linear_scan(f: torch.Tensor, i: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """``h_t = f_t * h_{t-1} + i_t`` along dim 1 (time), h_{-1} = h0 or 0. Returns all h_t.

    Hillis-Steele scan over the associative pairs (f, i): log2(T) full-tensor steps, only products
    (no division or logs), so it is stable for any f in [0, 1].
    """
    T = f.shape[1]
    if h0 is not None:
        i = torch.cat([(f[:, :1] * h0.unsqueeze(1) + i[:, :1]), i[:, 1:]], dim=1)
    a, b = f, i
    k = 1
    while k < T:
        a_prev = F.pad(a[:, :-k], (0, 0, k, 0), value=1.0)
        b_prev = F.pad(b[:, :-k], (0, 0, k, 0), value=0.0)
        b = a * b_prev + b
        a = a * a_prev
        k *= 2
    return b


def linear_scan_loop(f, i, h0=None):
    """Reference: the plain time loop."""
    h = torch.zeros_like(f[:, 0]) if h0 is None else h0
    out = []
    for t in range(f.shape[1]):
        h = f[:, t] * h + i[:, t]
        out.append(h)
    return torch.stack(out, 1)


class HGRNBitAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        d, eps = cfg.hidden_size, cfg.rms_norm_eps
        self.layer_idx = layer_idx
        self.i_proj = BitLinear(d, d, eps)
        self.f_proj = BitLinear(d, d, eps)
        self.g_proj = BitLinear(d, d, eps)
        self.g_norm = RMSNorm(d, eps)
        self.o_proj = BitLinear(d, d, eps)

    def forward(self, x, lower_bound=None, h0=None):
        i = self.i_proj(x)
        f = torch.sigmoid(self.f_proj(x))
        g = self.g_proj(x)
        if lower_bound is not None and self.layer_idx > 0:
            f = lower_bound + (1 - lower_bound) * f
        i = F.silu(i) * (1 - f)
        h = linear_scan(f, i, h0)
        o = self.g_norm(g) * F.silu(h)
        return self.o_proj(o), h[:, -1]


class HGRNBitMLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, inter, eps = cfg.hidden_size, cfg.intermediate_size, cfg.rms_norm_eps
        self.intermediate_size = inter
        self.gate_proj = BitLinear(d, 2 * inter, eps)
        self.down_proj = BitLinear(inter, d, eps)

    def forward(self, x):
        gate, y = self.gate_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * y)


class HGRNBitBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.attn = HGRNBitAttention(cfg, layer_idx)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = HGRNBitMLP(cfg)

    def forward(self, x, lower_bound=None, h0=None):
        a, h_last = self.attn(self.attn_norm(x), lower_bound, h0)
        x = x + a
        x = x + self.mlp(self.mlp_norm(x))
        return x, h_last


class HGRNBitBackbone(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        if cfg.use_lower_bound:
            self.lower_bounds = nn.Parameter(torch.zeros(cfg.num_hidden_layers, cfg.hidden_size))
        else:
            self.lower_bounds = None
        self.layers = nn.ModuleList(HGRNBitBlock(cfg, l) for l in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, ids, states=None):
        x = self.embeddings(ids)
        if self.lower_bounds is not None:
            lb = self.lower_bounds.softmax(0)
            lb = lb.cumsum(0) - lb[0]
        new_states = []
        for l, layer in enumerate(self.layers):
            x, h_last = layer(x, lb[l] if self.lower_bounds is not None else None,
                              None if states is None else states[l])
            new_states.append(h_last)
        return self.norm(x), new_states


class HGRNBitForCausalLM(nn.Module):
    """``forward(ids [B, T]) -> logits [B, T, vocab]``; ``states`` carries h per layer across calls."""

    def __init__(self, cfg: ModelConfig, initializer_range: float = 0.02):
        super().__init__()
        self.config = cfg
        self.model = HGRNBitBackbone(cfg)
        self.lm_head = BitLinear(cfg.hidden_size, cfg.vocab_size, cfg.rms_norm_eps)
        self.reset_parameters(initializer_range)

    @torch.no_grad()
    def reset_parameters(self, std: float = 0.02):
        """The reference init: N(0, std) for embeddings and projections, norms at one, lower bounds
        at zero; the residual-output projections (o_proj, down_proj) scaled by 1/sqrt(2L)."""
        n_res = 2 * self.config.num_hidden_layers
        for name, mod in self.named_modules():
            if isinstance(mod, (BitLinear, nn.Embedding)):
                nn.init.normal_(mod.weight, 0.0, std)
                if name.endswith("o_proj") or name.endswith("down_proj"):
                    mod.weight /= math.sqrt(n_res)
            elif isinstance(mod, RMSNorm):
                nn.init.ones_(mod.weight)
        if self.model.lower_bounds is not None:
            self.model.lower_bounds.zero_()

    def forward(self, ids, states=None, return_states=False):
        x, new_states = self.model(ids, states)
        logits = self.lm_head(x)
        return (logits, new_states) if return_states else logits
