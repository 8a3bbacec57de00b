"""Text generation on the device: greedy on the device itself (GENERATE) or sampled on the host
from the device's logits (one STEP per token), with the text streamed as it comes.

A failure part-way raises ``GenerationError`` carrying the tokens produced so far; by then the
stream has already shown and saved them.
"""

from __future__ import annotations

import codecs

from .device import Device, DeviceError, DeviceTimeout

__all__ = ["GenerationError", "TextStream", "run_on_device"]


class GenerationError(DeviceError):
    """The device failed during a generation; ``tokens`` are those it produced before."""

    def __init__(self, message: str, tokens: list[int]):
        super().__init__(message)
        self.tokens = tokens


class TextStream:
    """Byte tokens to a terminal and/or a file as they arrive.

    The terminal gets UTF-8 through an incremental decoder (a partial character waits for its
    other bytes; invalid ones become U+FFFD). The file gets the raw bytes, flushed after each
    token, so it holds everything produced even if the run dies the next moment."""

    def __init__(self, terminal=None, path=None):
        self.terminal = terminal
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.file = None
        if path is not None:
            try:
                self.file = open(path, "wb")
            except OSError as exc:
                raise ValueError(f"cannot write --output {path}: {exc.strerror}") from None
        self.count = 0

    def __call__(self, token: int) -> None:
        self.count += 1
        if self.file is not None:
            self.file.write(bytes([token]))
            self.file.flush()
        if self.terminal is not None:
            self.terminal.write(self._decoder.decode(bytes([token])))
            self.terminal.flush()

    def close(self) -> None:
        """End the text: the decoder's held bytes and a newline on the terminal; close the file."""
        if self.terminal is not None and self.count:
            self.terminal.write(self._decoder.decode(b"", final=True) + "\n")
            self.terminal.flush()
            self.count = 0  # closing twice ends the text once
        if self.file is not None:
            self.file.close()
            self.file = None


def run_on_device(device: Device, prompt: list[int], max_tokens: int, *, sampler=None,
                  on_token=lambda token: None) -> list[int]:
    """From the zero state: the prompt, then ``max_tokens`` tokens. With no ``sampler`` the
    device generates greedily on its own; with one, each token is ``sampler(logits)`` of a STEP."""
    device.reset()
    for token in prompt[:-1]:
        device.step(token)
    tokens: list[int] = []
    try:
        if sampler is None:
            if max_tokens:
                for token, _ in device.generate(prompt[-1], max_tokens):
                    tokens.append(token)
                    on_token(token)
        else:
            token = prompt[-1]
            for _ in range(max_tokens):
                _, logits = device.step(token, logits=True)
                token = sampler(logits)
                tokens.append(token)
                on_token(token)
    except DeviceTimeout as exc:
        raise GenerationError(f"the device stopped answering after {len(tokens)} generated tokens: it "
                              f"may have been reset or lost power (a reset board has lost the model; "
                              f"the next run uploads it again) [{exc}]", tokens) from None
    except DeviceError as exc:
        raise GenerationError(f"{exc} [after {len(tokens)} generated tokens]", tokens) from None
    return tokens
