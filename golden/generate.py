"""Greedy generation and bits-per-token evaluation over either golden backend.

The float reference and the bit-exact model expose the same two operations here, so the CLI and
the tests drive both the same way. Greedy choice follows each model's own rule: the float model
takes the argmax of its logits; the bit-exact model takes the argmax of the LM head's integer
accumulators (lowest index on ties), which is what the device returns.
"""

from __future__ import annotations

import sys
from typing import Callable, Iterable

import numpy as np

from .bitexact import BitExactModel
from .float_model import FloatModel, bits_per_token

BACKENDS = ("float", "bitexact")


class Backend:
    """One golden model behind a common face: ``step`` and ``forward`` (logits only)."""

    def __init__(self, name: str, model):
        self.name, self.model = name, model
        self.config = model.config

    @classmethod
    def load(cls, name: str, model_dir, mixer: str = "code") -> "Backend":
        if name == "float":
            return cls(name, FloatModel.from_pretrained(model_dir, mixer=mixer))
        if name == "bitexact":
            return cls(name, BitExactModel.from_pretrained(model_dir, mixer=mixer))
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")

    def init_state(self):
        return self.model.init_state()

    def step(self, token: int, state):
        """-> (logits [vocab], greedy next token, new state)."""
        if self.name == "bitexact":
            return self.model.step(token, state)
        logits, state = self.model.step(token, state)
        return logits, int(np.argmax(logits)), state

    def forward(self, tokens) -> np.ndarray:
        """Logits [B, T, vocab] from the zero state."""
        if self.name == "bitexact":
            return self.model.forward(tokens)[0]
        return self.model.forward(tokens)


def generate(backend: Backend, prompt: Iterable[int], max_tokens: int,
             on_token: Callable[[int], None] | None = None) -> list[int]:
    """Greedy continuation of ``prompt`` (at least one token) by ``max_tokens`` tokens."""
    prompt = list(prompt)
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    state = backend.init_state()
    for token in prompt:
        _, nxt, state = backend.step(token, state)
    out = []
    for _ in range(max_tokens):
        out.append(nxt)
        if on_token is not None:
            on_token(nxt)
        _, nxt, state = backend.step(nxt, state)
    return out


def windows(tokens: np.ndarray, context: int) -> np.ndarray:
    """Non-overlapping windows [n, context] of a token stream (a short tail is dropped)."""
    if context < 2:
        raise ValueError(f"context must be at least 2 tokens, got {context}")
    n = len(tokens) // context
    if n == 0:
        raise ValueError(f"the text holds {len(tokens)} tokens, fewer than one window of {context}")
    return np.asarray(tokens[: n * context]).reshape(n, context)


def evaluate(backend: Backend, tokens: np.ndarray, context: int = 256, batch: int = 64,
             progress: bool = False) -> dict:
    """Bits per token: every window starts from the zero state and predicts its tokens 1..T-1."""
    win = windows(tokens, context)
    total_bits, count = 0.0, 0
    for start in range(0, len(win), batch):
        chunk = win[start:start + batch]
        predicted = chunk[:, 1:].size
        total_bits += bits_per_token(backend.forward(chunk), chunk) * predicted
        count += predicted
        if progress:
            print(f"\r[eval] {min(start + batch, len(win))}/{len(win)} windows, "
                  f"{total_bits / count:.4f} bits/token", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return {"bits_per_token": total_bits / count, "predicted_tokens": count, "windows": len(win),
            "context": context}
