"""A fault-injecting transport for tests: wraps any pyserial-like object (``read``, ``write``,
``close``, ``timeout``) and corrupts the bytes passing through it, reproducibly from ``seed``.

Per byte, in the directions chosen by ``where`` ("read", "write" or "both"):

* ``garbage``: probability that a random byte is inserted before it;
* ``drop``: probability that it is lost;
* ``flip``: probability that one random bit of it is inverted.

``cut_after`` (bytes, both directions counted) or ``pull()`` pulls the cable: from then on every
call raises ``serial.SerialException`` as pyserial does when a USB serial device disappears.
``counts`` tallies what was injected.
"""

from __future__ import annotations

import random

import serial

__all__ = ["FaultyTransport"]


class FaultyTransport:
    def __init__(self, inner, *, seed: int = 0, garbage: float = 0.0, drop: float = 0.0, flip: float = 0.0,
                 cut_after: int | None = None, where: str = "both"):
        if where not in ("read", "write", "both"):
            raise ValueError(f"where must be read, write or both, got {where!r}")
        for name, p in (("garbage", garbage), ("drop", drop), ("flip", flip)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} is a probability, got {p!r}")
        self.inner = inner
        self.rng = random.Random(seed)
        self.garbage, self.drop, self.flip = garbage, drop, flip
        self.cut_after, self.where = cut_after, where
        self.passed = 0
        self.pulled = False
        self.counts = {"garbage": 0, "drop": 0, "flip": 0}

    # pyserial's read timeout, passed through
    @property
    def timeout(self):
        return self.inner.timeout

    @timeout.setter
    def timeout(self, value):
        self.inner.timeout = value

    def pull(self) -> None:
        """Pull the cable now."""
        self.pulled = True

    def _check(self) -> None:
        if self.pulled:
            raise serial.SerialException("device reports readiness to read but returned no data "
                                         "(device disconnected or multiple access on port?)")

    def _corrupt(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if self.rng.random() < self.garbage:
                out.append(self.rng.randrange(256))
                self.counts["garbage"] += 1
            if self.rng.random() < self.drop:
                self.counts["drop"] += 1
                continue
            if self.rng.random() < self.flip:
                byte ^= 1 << self.rng.randrange(8)
                self.counts["flip"] += 1
            out.append(byte)
        return bytes(out)

    def _advance(self, data: bytes) -> bytes:
        """Count bytes toward ``cut_after``; the cable goes at the byte that reaches it."""
        if self.cut_after is None:
            return data
        room = self.cut_after - self.passed
        self.passed += len(data)
        if room <= len(data):
            self.pulled = True
            return data[:max(room, 0)]
        return data

    def write(self, data) -> int:
        self._check()
        data = self._advance(bytes(data))
        if self.where in ("write", "both"):
            data = self._corrupt(data)
        if data:
            self.inner.write(data)
        self._check()
        return len(data)

    def read(self, size: int = 1) -> bytes:
        self._check()
        data = self._advance(self.inner.read(size))
        if self.where in ("read", "both"):
            data = self._corrupt(data)
        return data

    def reset_input_buffer(self) -> None:
        self._check()
        self.inner.reset_input_buffer()

    def close(self) -> None:
        self.inner.close()
