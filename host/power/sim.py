"""Simulated instruments that speak the real protocols, for tests and dry runs.

* ``SimINA`` models an INA219 or INA226 at register level (the data sheets' arithmetic, integer
  truncation included); ``FakeI2CBus`` stands in for the ``/dev/i2c-N`` file object
  (``ioctl(I2C_SLAVE, addr)``, ``write``, ``read``) with any number of chips on it.
* ``SimUM`` is a UM24C/UM25C/UM34C behind a pseudo-terminal: it answers each 0xF0 byte with a
  130-byte record. Open ``sim.path`` with pyserial like the meter's ``/dev/rfcommN``.

Both take a ``waveform(t) -> (volts, amps)`` and a ``clock`` (``time.monotonic`` by default, the
meters' clock), so a test knows exactly what was measured when.
"""

from __future__ import annotations

import errno
import os
import select
import struct
import threading
import time

from .ina import I2C_SLAVE
from .um import MODEL_IDS, UM_MODELS

__all__ = ["SimINA", "FakeI2CBus", "SimUM"]

_CHIPS = {  # shunt LSB, bus LSB, current divisor, power divisor, config reset, calibration mask
    "INA219": (10e-6, 4e-3, 4096, 5000, 0x399F, 0xFFFE),
    "INA226": (2.5e-6, 1.25e-3, 2048, 20000, 0x4127, 0x7FFF),
}


def _clamp16(value: int) -> int:
    return max(-0x8000, min(0x7FFF, value))


class SimINA:
    """One INA219/INA226: registers computed from ``waveform(clock())`` when read."""

    def __init__(self, kind: str, shunt_ohms: float, waveform, clock=time.monotonic):
        if kind not in _CHIPS:
            raise ValueError(f"kind must be one of {', '.join(_CHIPS)}, got {kind!r}")
        self.kind, self.shunt_ohms, self.waveform, self.clock = kind, shunt_ohms, waveform, clock
        (self.shunt_lsb, self.bus_lsb, self.current_div, self.power_div, self.config_reset,
         self.cal_mask) = _CHIPS[kind]
        self.pointer = 0
        self.regs = {}
        self.reset()

    def reset(self) -> None:
        self.regs = {0: self.config_reset, 5: 0}

    def _measure(self) -> dict:
        volts, amps = self.waveform(self.clock())
        shunt = _clamp16(round(amps * self.shunt_ohms / self.shunt_lsb))
        if self.kind == "INA219":
            shunt = max(-32000, min(32000, shunt))  # PGA /8: +-320 mV full scale
        bus = max(0, round(volts / self.bus_lsb))
        cal = self.regs[5]
        current_full = int(shunt * cal / self.current_div)  # the chip truncates
        current = _clamp16(current_full)
        power_full = int(abs(current) * bus / self.power_div)
        power = min(0xFFFF, power_full)
        overflow = current != current_full or power != power_full
        if self.kind == "INA219":
            bus_reg = (min(bus, 0x1FFF) << 3) | 0b10 | int(overflow)  # CNVR set, OVF on overflow
        else:
            bus_reg = min(bus, 0x7FFF)
        return {1: shunt & 0xFFFF, 2: bus_reg, 3: power, 4: current & 0xFFFF}

    def register(self, reg: int) -> int:
        if reg in (1, 2, 3, 4):
            return self._measure()[reg]
        if self.kind == "INA226" and reg == 0xFE:
            return 0x5449
        if self.kind == "INA226" and reg == 0xFF:
            return 0x2260
        return self.regs.get(reg, 0)

    # the chip's side of an I2C transfer
    def i2c_write(self, data: bytes) -> None:
        self.pointer = data[0]
        if len(data) == 3:
            value = data[1] << 8 | data[2]
            if self.pointer == 0 and value & 0x8000:
                self.reset()
            elif self.pointer == 5:
                self.regs[5] = value & self.cal_mask
            elif self.pointer == 0:
                self.regs[0] = value & 0x7FFF
            else:
                self.regs[self.pointer] = value
        elif len(data) != 1:
            raise OSError(errno.EIO, "unexpected write length")

    def i2c_read(self, n: int) -> bytes:
        value = self.register(self.pointer)
        return bytes([value >> 8, value & 0xFF])[:n]


class FakeI2CBus:
    """The ``/dev/i2c-N`` file object with ``chips`` (address -> SimINA) on the bus. A transfer
    to an address with no chip fails like a NAK (EREMOTEIO); ``unplug()`` makes every transfer
    fail."""

    def __init__(self, chips: dict):
        self.chips = dict(chips)
        self.address = None
        self.unplugged = False
        self.closed = False
        self.log = []  # ("ioctl", addr) / ("write", addr, bytes) / ("read", addr, bytes)

    def ioctl(self, request: int, arg: int) -> None:
        if request != I2C_SLAVE:
            raise OSError(errno.ENOTTY, "unsupported ioctl")
        self.address = arg
        self.log.append(("ioctl", arg))

    def _chip(self) -> SimINA:
        chip = self.chips.get(self.address)
        if chip is None or self.unplugged or self.closed:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        return chip

    def write(self, data: bytes) -> int:
        self._chip().i2c_write(bytes(data))
        self.log.append(("write", self.address, bytes(data)))
        return len(data)

    def read(self, n: int) -> bytes:
        data = self._chip().i2c_read(n)
        self.log.append(("read", self.address, data))
        return data

    def unplug(self) -> None:
        self.unplugged = True

    def close(self) -> None:
        self.closed = True


class SimUM:
    """A UM-series meter on a pseudo-terminal; use as a context manager (or ``start``/``stop``)."""

    def __init__(self, model: str, waveform, clock=time.monotonic):
        if model not in MODEL_IDS:
            raise ValueError(f"model must be one of {', '.join(MODEL_IDS)}, got {model!r}")
        self.model, self.waveform, self.clock = model, waveform, clock
        _, self.v_lsb, self.a_lsb = UM_MODELS[MODEL_IDS[model]]
        self.requests = 0
        self._master = self._slave = None
        self._thread = None
        self._stop = threading.Event()

    def record(self, t: float) -> bytes:
        volts, amps = self.waveform(t)
        v_raw, a_raw = round(volts / self.v_lsb), round(amps / self.a_lsb)
        watts_mw = round(v_raw * self.v_lsb * a_raw * self.a_lsb * 1000)
        out = bytearray(130)
        struct.pack_into(">HHHIHHH", out, 0, MODEL_IDS[self.model], v_raw, a_raw, watts_mw, 25, 77, 0)
        return bytes(out)

    def start(self) -> "SimUM":
        import pty
        import tty

        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="sim-um")
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 64)
            except OSError:
                return
            for byte in data:
                if byte == 0xF0:  # other commands (screen, groups) change nothing measured
                    self.requests += 1
                    os.write(self._master, self.record(self.clock()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
