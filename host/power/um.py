"""RDTech UM24C / UM25C / UM34C USB meters over their serial protocol.

The meters' Bluetooth SPP link (bound to ``/dev/rfcommN``, 9600 baud) takes one-byte commands;
0xF0 asks for a measurement and the meter answers with a 130-byte record, fields big-endian
(layout as documented by sigrok's "RDTech UM series" wiki page and rfinnie/rdserialtool's
``rdserial/um``, which agree):

======  ====  ===========================================================
offset  size  field
======  ====  ===========================================================
0       2     model: 0x0963 UM24C, 0x09C9 UM25C, 0x0D4C UM34C
2       2     voltage: 10 mV (UM24C, UM34C), 1 mV (UM25C)
4       2     current: 1 mA (UM24C, UM34C), 0.1 mA (UM25C)
6       4     power, 1 mW
10, 12  2, 2  temperature C, F
14      2     selected data group
16      80    10 x (mAh u32, mWh u32) data groups
96, 98  2, 2  USB D+, D- voltage, 10 mV
100     2     charging mode
102     8     recorded mAh, mWh (u32 each)
110     2     recording threshold, 10 mA
112     4     recorded seconds
116-127       recording flag, screen timeout, brightness, load resistance (u32, 0.1 ohm),
              screen
128     2     end of record
======  ====  ===========================================================

The meter sits in the USB cable, so it measures the whole board ("board" rail). Power is
reported as voltage x current, which carries more digits than the 1 mW power field.
"""

from __future__ import annotations

import struct
import time
from typing import NamedTuple

from .meter import MeterError, PowerMeter, Reading

__all__ = ["UM_MODELS", "UMRecord", "parse_um", "UMMeter", "REQUEST", "RECORD_LEN"]

REQUEST = b"\xf0"
RECORD_LEN = 130
#: model id -> (name, volts per count, amps per count)
UM_MODELS = {0x0963: ("UM24C", 0.01, 0.001), 0x09C9: ("UM25C", 0.001, 0.0001),
             0x0D4C: ("UM34C", 0.01, 0.001)}
MODEL_IDS = {name: mid for mid, (name, _, _) in UM_MODELS.items()}


class UMRecord(NamedTuple):
    model: str
    volts: float
    amps: float
    power_field_watts: float  # the record's own 1 mW power field
    temp_c: int
    group: int


def parse_um(record: bytes, model: str | None = None) -> UMRecord:
    """Decode a 130-byte record; ``model`` (if given) must match the record's model id."""
    if len(record) != RECORD_LEN:
        raise MeterError(f"UM meter: a record is {RECORD_LEN} bytes, got {len(record)}")
    mid, v_raw, a_raw, p_raw, temp_c = struct.unpack_from(">HHHIH", record)
    if mid not in UM_MODELS:
        raise MeterError(f"UM meter: unknown model id 0x{mid:04x} (not a UM24C/UM25C/UM34C, or the "
                         "stream is out of step)")
    name, v_lsb, a_lsb = UM_MODELS[mid]
    if model is not None and model != name:
        raise MeterError(f"UM meter: expected a {model}, the meter says it is a {name}")
    group, = struct.unpack_from(">H", record, 14)
    return UMRecord(name, v_raw * v_lsb, a_raw * a_lsb, p_raw * 1e-3, temp_c, group)


class UMMeter(PowerMeter):
    """A UM-series meter on ``port``: a pyserial-like object or a device path / URL (opened at
    9600 baud). ``model`` checks the meter's identity when given."""

    def __init__(self, port, *, model: str | None = None, rail: str = "board", timeout: float = 2.0,
                 clock=time.monotonic):
        super().__init__(clock=clock)
        if model is not None and model not in MODEL_IDS:
            raise MeterError(f"unknown UM model {model!r}; choose one of {', '.join(MODEL_IDS)}")
        if isinstance(port, str):
            import serial

            try:
                port = serial.serial_for_url(port, baudrate=9600, timeout=timeout)
            except (serial.SerialException, OSError, ValueError) as exc:
                raise MeterError(f"cannot open UM meter at {port}: {exc}") from None
        self.port, self.model, self.rail, self.timeout = port, model, rail, timeout
        self.rails = (rail,)
        self.name = model or "UM meter"

    def record(self) -> UMRecord:
        try:
            self.port.reset_input_buffer()  # drop a late answer to an earlier request
            self.port.write(REQUEST)
            data = bytearray()
            deadline = time.monotonic() + self.timeout
            while len(data) < RECORD_LEN and time.monotonic() < deadline:
                data += self.port.read(RECORD_LEN - len(data))
        except Exception as exc:  # pyserial raises several types for a dead link
            raise MeterError(f"{self.name}: the serial link failed ({exc})") from None
        if len(data) < RECORD_LEN:
            raise MeterError(f"{self.name}: {len(data)} of {RECORD_LEN} bytes before the timeout; "
                             "is the meter on, paired and bound to this port?")
        return parse_um(bytes(data), self.model)

    def read(self) -> dict:
        r = self.record()
        return {self.rail: Reading(r.volts, r.amps, r.volts * r.amps)}

    def close(self) -> None:
        self.port.close()
