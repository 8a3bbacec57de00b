"""The power-meter interface: a meter reads one or more rails; ``start`` samples them in a
background thread until ``stop``, each sample stamped with ``time.monotonic``."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

__all__ = ["MeterError", "Reading", "Sample", "PowerMeter", "RAILS"]

#: The rails a report distinguishes: the FPGA core supply, and the whole board's input.
RAILS = ("core", "board")


class MeterError(Exception):
    """Any failure talking to a power meter."""


@dataclass(frozen=True)
class Reading:
    volts: float
    amps: float
    watts: float


@dataclass(frozen=True)
class Sample:
    t: float      # seconds, the meter's clock (time.monotonic unless injected)
    rail: str
    volts: float
    amps: float
    watts: float


class PowerMeter:
    """Base class. A driver sets ``rails`` and implements ``read() -> {rail: Reading}``."""

    rails: tuple = ()
    name = "meter"

    def __init__(self, *, clock=time.monotonic):
        self.clock = clock
        self.samples: list[Sample] = []
        self._thread = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def read(self) -> dict:
        raise NotImplementedError

    def sample(self) -> list:
        """Read every rail once, stamp it with the time at the middle of the read, keep it."""
        t0 = self.clock()
        readings = self.read()
        t = (t0 + self.clock()) / 2
        new = [Sample(t, rail, r.volts, r.amps, r.watts) for rail, r in readings.items()]
        with self._lock:
            self.samples.extend(new)
        return new

    def start(self, interval: float = 0.01) -> None:
        """Sample every ``interval`` seconds (as fast as the instrument allows when it is slower)."""
        if self._thread is not None:
            raise MeterError(f"{self.name} is already sampling")
        self._stop.clear()
        self._error = None
        self._thread = threading.Thread(target=self._loop, args=(interval,), daemon=True,
                                        name=f"{self.name}-sampler")
        self._thread.start()

    def _loop(self, interval: float) -> None:
        try:
            while not self._stop.is_set():
                self.sample()
                self._stop.wait(interval)
        except Exception as exc:  # kept for stop(): a sampler thread has nobody to raise to
            self._error = exc

    def stop(self) -> list:
        """Stop sampling; return all samples. Raises the sampler's error, if it had one."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            if isinstance(error, MeterError):
                raise error
            raise MeterError(f"{self.name} failed while sampling: {error}") from None
        with self._lock:
            return list(self.samples)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.close()
