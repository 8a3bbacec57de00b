"""Model configuration, read from and written to a Hugging Face ``config.json``.

One class serves the official MMfreeLM checkpoints (``model_type: hgrn_bit``) and our own small
models, which are stored in the same format.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path


class ConfigError(ValueError):
    """A ``config.json`` that is missing, unreadable or describes a model we cannot run."""


def default_intermediate_size(hidden_size: int, hidden_ratio: int = 4) -> int:
    """The MMfreeLM rule: ``256 * ceil(int(d * hidden_ratio * 2/3) / 256)``."""
    return 256 * math.ceil(int(hidden_size * hidden_ratio * 2 / 3) / 256)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    rms_norm_eps: float = 1e-6
    use_lower_bound: bool = True
    hidden_ratio: int = 4
    # Extra config.json fields we keep verbatim so that a round trip loses nothing.
    extra: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"config field {name!r} must be a positive integer, got {value!r}")
        if not (0 < self.rms_norm_eps < 1):
            raise ConfigError(f"config field 'rms_norm_eps' must be in (0, 1), got {self.rms_norm_eps!r}")

    @property
    def d(self) -> int:
        return self.hidden_size

    @property
    def n_layers(self) -> int:
        return self.num_hidden_layers

    @property
    def ternary_weights_per_token(self) -> int:
        """Ternary weights read once per token step: every BitLinear including the LM head."""
        d, inter = self.hidden_size, self.intermediate_size
        per_layer = 4 * d * d + d * 2 * inter + inter * d
        return self.num_hidden_layers * per_layer + self.vocab_size * d

    @classmethod
    def from_dict(cls, raw: dict) -> "ModelConfig":
        if not isinstance(raw, dict):
            raise ConfigError("config.json must hold a JSON object")
        model_type = raw.get("model_type", "hgrn_bit")
        if model_type != "hgrn_bit":
            raise ConfigError(f"config.json: model_type is {model_type!r}, expected 'hgrn_bit'")
        missing = [k for k in ("vocab_size", "hidden_size", "num_hidden_layers") if k not in raw]
        if missing:
            raise ConfigError(f"config.json: missing field(s) {', '.join(missing)}")
        for key, allowed in (("num_heads", 1), ("expand_ratio", 1), ("use_short_conv", False),
                             ("tie_word_embeddings", False)):
            if key in raw and raw[key] not in (allowed, None):
                raise ConfigError(f"config.json: {key}={raw[key]!r} is not supported (need {allowed!r})")
        if raw.get("hidden_act", "swish") not in ("swish", "silu"):
            raise ConfigError(f"config.json: hidden_act={raw['hidden_act']!r} is not supported")
        hidden_ratio = raw.get("hidden_ratio") or 4
        inter = raw.get("intermediate_size")
        if inter is None:
            inter = default_intermediate_size(raw["hidden_size"], hidden_ratio)
        known = {"vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size",
                 "rms_norm_eps", "use_lower_bound", "hidden_ratio"}
        return cls(
            vocab_size=raw["vocab_size"],
            hidden_size=raw["hidden_size"],
            num_hidden_layers=raw["num_hidden_layers"],
            intermediate_size=inter,
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            use_lower_bound=bool(raw.get("use_lower_bound", True)),
            hidden_ratio=hidden_ratio,
            extra={k: v for k, v in raw.items() if k not in known},
        )

    def to_dict(self) -> dict:
        raw = {
            "model_type": "hgrn_bit",
            "architectures": ["HGRNBitForCausalLM"],
            "attn_mode": "fused_recurrent",
            "num_heads": 1,
            "expand_ratio": 1,
            "hidden_act": "swish",
            "use_short_conv": False,
            "tie_word_embeddings": False,
        }
        raw.update(self.extra)
        raw.update(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            intermediate_size=self.intermediate_size,
            rms_norm_eps=self.rms_norm_eps,
            use_lower_bound=self.use_lower_bound,
            hidden_ratio=self.hidden_ratio,
        )
        return raw

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file (a model folder needs config.json)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(raw)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
