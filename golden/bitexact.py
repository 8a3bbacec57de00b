"""Bit-exact model of the token step the gateware computes (docs/numerics.md, "Dataflow").

Where the float reference follows the published graph, this model follows the contract: every
product is an L-Mul, sigmoid is piecewise linear, reciprocals are table lookups, the norms that
only set a scale are folded into one scale per BitLinear, and the recurrence runs in decay form
``h <- h - z*h + i`` in fp32. The gateware must produce these bits exactly.

The dataflow is written once against a ``Numerics`` object, so the ablation study (and, with a
differentiable ``Numerics``, training with the hardware numerics in the loop) reuses it unchanged.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .config import ModelConfig
from .float_model import bits_per_token
from .numerics import Numerics

__all__ = ["Projection", "DeviceModel", "BitExactModel"]


@dataclasses.dataclass
class Projection:
    """One BitLinear as the device holds it: ternary rows, folded norm gain, output constant."""

    weight: np.ndarray  # int8 [N, K] in {-1, 0, 1}
    gain: np.ndarray  # bf16 [K]: the preceding norm's weight times the BitLinear's own norm weight
    scale: float  # bf16: sqrt(K) * mean|W| / 127

    @classmethod
    def build(cls, nx, w, norm_weight, pre_norm_weight=None):
        w_t, beta = nx.ternarize(w)
        gain = norm_weight if pre_norm_weight is None else pre_norm_weight * norm_weight
        return cls(w_t, nx.constant(gain), nx.constant(math.sqrt(w.shape[1]) * beta / 127))


@dataclasses.dataclass
class DeviceModel:
    """Everything the device stores: the device image before packing, all values on their grid."""

    config: ModelConfig
    embedding: np.ndarray  # bf16 [vocab, d]
    layers: list  # of dicts, see from_params
    norm: np.ndarray  # bf16 [d], the final norm's weight (sets the LM head's scale only)
    head: Projection
    eps_d: float  # bf16 of d * eps: the eps term of a sum of squares over d elements
    eps_i: float  # bf16 of I * eps

    @classmethod
    def from_params(cls, config: ModelConfig, params: dict, nx: Numerics | None = None) -> "DeviceModel":
        """Fold a checkpoint's float tensors into device constants. ``nx`` does the folding
        (NumPy by default; a differentiable one keeps gradients to the latent weights)."""
        nx = nx if nx is not None else Numerics()
        lb = nx.lower_bounds(params["model.lower_bounds"]) if config.use_lower_bound else None
        layers = []
        for n in range(config.num_hidden_layers):
            p = lambda key: params[f"model.layers.{n}.{key}"]  # noqa: E731
            attn_norm, mlp_norm, g_norm = p("attn_norm.weight"), p("mlp_norm.weight"), p("attn.g_norm.weight")

            def proj(name, pre=None):
                return Projection.build(nx, p(f"{name}.weight"), p(f"{name}.norm.weight"), pre)

            layers.append(dict(
                attn_norm=nx.constant(attn_norm),
                i=proj("attn.i_proj", attn_norm),
                f=proj("attn.f_proj", attn_norm),
                g=proj("attn.g_proj", attn_norm),
                g_norm=nx.constant(g_norm),
                o_code=proj("attn.o_proj", g_norm),
                o_paper=proj("attn.o_proj"),
                # 1 - lower bound: scales the decay z = 1 - f. Layer 0 has none (lb = 0 exactly).
                keep=nx.constant(1.0 - lb[n]) if (lb is not None and n > 0) else None,
                mlp_norm=nx.constant(mlp_norm),
                gate=proj("mlp.gate_proj", mlp_norm),
                down=proj("mlp.down_proj"),
            ))
        norm = params["model.norm.weight"]
        eps = config.rms_norm_eps
        return cls(
            config=config,
            embedding=nx.constant(params["model.embeddings.weight"]),
            layers=layers,
            norm=nx.constant(norm),
            head=Projection.build(nx, params["lm_head.weight"], params["lm_head.norm.weight"], norm),
            eps_d=float(nx.constant(config.hidden_size * eps)),
            eps_i=float(nx.constant(config.intermediate_size * eps)),
        )


class BitExactModel:
    """The contract's token step. ``mixer`` selects the code's output gate or the paper's."""

    def __init__(self, device: DeviceModel, mixer: str = "code", numerics: Numerics | None = None):
        if mixer not in ("code", "paper"):
            raise ValueError(f"mixer must be 'code' or 'paper', got {mixer!r}")
        self.device = device
        self.config = device.config
        self.mixer = mixer
        self.nx = numerics if numerics is not None else Numerics()

    @classmethod
    def from_params(cls, config, params, numerics: Numerics | None = None, **kwargs):
        return cls(DeviceModel.from_params(config, params, numerics), numerics=numerics, **kwargs)

    @classmethod
    def from_pretrained(cls, model_dir, **kwargs):
        from .checkpoint import load_checkpoint

        config, params = load_checkpoint(model_dir)
        return cls.from_params(config, params, **kwargs)

    # -- the BitLinear composite ----------------------------------------------------------------

    def bitlinear(self, x, pre_norm, projections, eps_k):
        """RMSNorm (optional ``pre_norm`` weight) then BitLinear(s) with their own norms.

        Both norms only scale the int8 codes' common factor, so the codes come from
        ``u = x * gain`` and the norms survive in one scalar per projection:
        ``out = acc * max|u| * rsqrt(sum(v^2) + K*eps) * sqrt(K)*beta/127``, v = x * pre_norm.
        Returns [(out, acc), ...] in the order of ``projections``.
        """
        nx = self.nx
        results = []
        for proj in projections:  # projections sharing x recompute the same norm factor
            q, scale = norm_quant(nx, x, pre_norm, proj.gain, eps_k, proj.scale)
            acc = nx.ternary_matvec(q, proj.weight)
            results.append((nx.mul(nx.from_int(acc), scale), acc))
        return results

    # -- one block --------------------------------------------------------------------------------

    def init_state(self, batch_shape=()):
        return [np.zeros(tuple(batch_shape) + (self.config.hidden_size,)) for _ in self.device.layers]

    def _check_tokens(self, tokens):
        tokens = np.asarray(tokens)
        if not np.issubdtype(tokens.dtype, np.integer) or tokens.ndim < 1:
            raise ValueError(f"tokens must be an integer array [..., T], got {tokens.dtype} {tokens.shape}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.config.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.config.vocab_size})")
        return tokens

    def token_mixer(self, x, layer, h):
        """MLGRU over a sequence x[..., T, d] from state h[..., d]; returns (out, h)."""
        nx, eps_d = self.nx, self.device.eps_d
        (i_raw, _), (f_raw, _), (g_raw, _) = self.bitlinear(
            x, layer["attn_norm"], [layer["i"], layer["f"], layer["g"]], eps_d)
        p, h = recurrence(nx, i_raw, f_raw, g_raw, layer["keep"], h, output=self.mixer)
        if self.mixer == "code":
            (o, _), = self.bitlinear(p, layer["g_norm"], [layer["o_code"]], eps_d)
        else:
            (o, _), = self.bitlinear(p, None, [layer["o_paper"]], eps_d)
        return o, h

    def channel_mixer(self, x, layer):
        nx = self.nx
        (u, _), = self.bitlinear(x, layer["mlp_norm"], [layer["gate"]], self.device.eps_d)
        inter = self.config.intermediate_size
        p = glu(nx, u[..., :inter], u[..., inter:])
        (down, _), = self.bitlinear(p, None, [layer["down"]], self.device.eps_i)
        return down

    # -- the token step and the sequence form --------------------------------------------------

    def forward(self, tokens, state=None):
        """tokens [..., T] -> (logits [..., T, vocab] bf16 values, head accumulators, new state).

        Same arithmetic for any T: one step is ``forward`` with T = 1."""
        if state is None:
            state = self.init_state(tokens.shape[:-1])
        nx = self.nx
        x = self.device.embedding[tokens]
        new_state = []
        for layer, h in zip(self.device.layers, state):
            o, h = self.token_mixer(x, layer, h)
            x = nx.add(x, o)
            x = nx.add(x, self.channel_mixer(x, layer))
            new_state.append(h)
        (logits, acc), = self.bitlinear(x, self.device.norm, [self.device.head], self.device.eps_d)
        return logits, acc, new_state

    def step(self, token: int, state):
        """One token step: (logits [vocab], argmax, new state). Argmax is taken on the integer
        accumulators, lowest index on ties (the logits share one positive scale)."""
        logits, acc, state = self.forward(self._check_tokens([token]), state)
        return logits[0], int(np.argmax(acc[0])), state

    def bits_per_token(self, tokens) -> float:
        """Mean -log2 p(token[t] | tokens[:t]) over t >= 1 (and the batch), from zero state."""
        logits, _, _ = self.forward(self._check_tokens(tokens))
        return bits_per_token(logits, tokens)


# -- the element-wise engines, shared with the gateware's tests ----------------------------------


def norm_factor(nx, x, pre, eps_k):
    """``rsqrt(sum(v^2) + K*eps)`` with ``v = x * pre`` (or x): what survives of the norms."""
    v = x if pre is None else nx.mul(x, pre)
    return nx.rsqrt(nx.add(nx.sum_squares(v), eps_k))


def quantize(nx, x, gain):
    """int8 codes of ``u = x * gain`` scaled by ``127 / max|u|``; returns (codes, max|u|)."""
    u = nx.mul(x, gain)
    amax = nx.absmax(u)
    return nx.to_int8(nx.mul(u, nx.mul(nx.recip(amax), 127.0))), amax


def norm_quant(nx, x, pre, gain, eps_k, c):
    """The RMSNorm + int8 quantiser block: (codes, output scale ``(max|u| * r) * c``)."""
    q, amax = quantize(nx, x, gain)
    return q, nx.mul(nx.mul(amax, norm_factor(nx, x, pre, eps_k)), c)


def recurrence(nx, i_raw, f_raw, g_raw, keep, h, output="code", decay_gate="neg", candidate="silu"):
    """The MLGRU state-update engine over a sequence [..., T, d] from state h [..., d] (fp32).

    ``h <- h - z*h + z*cand(i_raw)`` per channel: the decay form of ``h = f*h + (1-f)*c``
    (docs/numerics.md section 7). ``z = sigmoid(-f_raw)`` (``decay_gate="neg"``: MLGRU/HGRN,
    z = 1 - f) or ``sigmoid(f_raw)`` (``"pos"``: minGRU's update gate), times ``keep`` = 1 - lower
    bound when given. ``cand`` is SiLU (MLGRU) or the identity (minGRU). The output gate is the
    code's ``g * silu(h)``, the paper's ``sigmoid(g) * h``, or the state itself (``"state"``).
    Returns (output [..., T, d] bf16, final state)."""
    z = nx.sigmoid(-f_raw if decay_gate == "neg" else f_raw)
    if keep is not None:
        z = nx.mul(z, keep)
    i = nx.mul(nx.silu(i_raw) if candidate == "silu" else i_raw, z)
    hs = []
    for t in range(i.shape[-2]):
        z_t, i_t = z[..., t, :], i[..., t, :]
        if nx.approx.decay_form:
            h = nx.add(nx.sub(h, nx.mul(z_t, h, "fp32"), "fp32"), i_t, "fp32")
        else:
            h = nx.add(nx.mul(nx.sub(1.0, z_t), h, "fp32"), i_t, "fp32")
        hs.append(h)
    h_seq = nx.round(nx.stack(hs, axis=-2))  # the state leaves the engine as bf16
    if output == "code":
        return nx.mul(g_raw, nx.silu(h_seq)), h
    if output == "paper":
        return nx.mul(nx.sigmoid(g_raw), h_seq), h
    return h_seq, h


def glu(nx, gate, y):
    """The GLU's element-wise stage: ``silu(gate) * y`` (its requantisation is the down
    projection's BitLinear composite)."""
    return nx.mul(nx.silu(gate), y)
