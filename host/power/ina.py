"""TI INA219 and INA226 current/power monitors on Linux I2C.

The chips are reached through ``/dev/i2c-N`` (the kernel's i2c-dev interface): the ``I2C_SLAVE``
ioctl selects the chip, a plain ``write`` of ``[register]`` sets the register pointer, a plain
``read`` of 2 bytes returns that register most significant byte first, and a ``write`` of
``[register, msb, lsb]`` writes it (both data sheets, "Serial interface"). SMBus word transfers
are little-endian, so they are not used and no smbus library is needed.

Register maps and LSBs (TI data sheets SBOS448 for INA219, SBOS547 for INA226):

=============  ==================================  =========================================
register       INA219                              INA226
=============  ==================================  =========================================
0x00 config    reset value 0x399F                  reset value 0x4127
0x01 shunt     signed, 10 uV                       signed, 2.5 uV
0x02 bus       bits 15..3, 4 mV (bit 1 CNVR,       bits 14..0, 1.25 mV
               bit 0 OVF: math overflow)
0x03 power     20 x current_lsb                    25 x current_lsb
0x04 current   signed, current_lsb                 signed, current_lsb
0x05 calib.    CAL = 0.04096 / (lsb x R), bit 0 0  CAL = 0.00512 / (lsb x R), bit 15 0
0xFE, 0xFF     (none)                              manufacturer 0x5449 ("TI"), die 0x2260
=============  ==================================  =========================================

The chip computes current = shunt x CAL / 4096 (INA219) or / 2048 (INA226), and power =
current x bus / 5000 (INA219, bus in 4 mV units) or / 20000 (INA226). ``current_lsb`` is
``max_amps / 2**15`` rounded onto the calibration register's integer grid (the LSB reported is
the one the programmed CAL gives exactly).
"""

from __future__ import annotations

import os
import time

from .meter import MeterError, PowerMeter, Reading

__all__ = ["I2C_SLAVE", "I2CDevFile", "INA219", "INA226"]

I2C_SLAVE = 0x0703  # linux/i2c-dev.h

REG_CONFIG, REG_SHUNT, REG_BUS, REG_POWER, REG_CURRENT, REG_CALIBRATION = range(6)
REG_MANUFACTURER, REG_DIE = 0xFE, 0xFF


class I2CDevFile:
    """``/dev/i2c-N`` as the drivers use it: ``ioctl``, ``write``, ``read``, ``close``. The
    simulated bus in ``host.power.sim`` offers the same four methods."""

    def __init__(self, path: str):
        try:
            self.fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise MeterError(f"cannot open {path}: {exc.strerror} (is i2c-dev loaded, and may this "
                             "user open the bus?)") from None
        self.path = path

    def ioctl(self, request: int, arg: int) -> None:
        import fcntl

        fcntl.ioctl(self.fd, request, arg)

    def write(self, data: bytes) -> int:
        return os.write(self.fd, bytes(data))

    def read(self, n: int) -> bytes:
        return os.read(self.fd, n)

    def close(self) -> None:
        os.close(self.fd)


def _signed16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


class _INA(PowerMeter):
    # per-chip constants, set by the subclasses
    SHUNT_LSB = BUS_LSB = CAL_SCALE = POWER_LSB_RATIO = 0.0
    CAL_MASK = 0xFFFF
    CONFIG = 0

    def __init__(self, dev, *, address: int = 0x40, shunt_ohms: float, max_amps: float,
                 rail: str = "core", config: int | None = None, clock=time.monotonic):
        super().__init__(clock=clock)
        if not shunt_ohms > 0 or not max_amps > 0:
            raise MeterError(f"shunt_ohms and max_amps must be positive, got {shunt_ohms!r}, {max_amps!r}")
        self.dev = I2CDevFile(dev) if isinstance(dev, str) else dev
        self.address, self.shunt_ohms, self.rail = address, shunt_ohms, rail
        self.rails = (rail,)
        self.name = f"{type(self).__name__}@0x{address:02x}"
        # the 1e-9 keeps an exact quotient (0.00512 / 1e-5 = 512) from truncating to 511
        cal = int(self.CAL_SCALE / (max_amps / 32768 * shunt_ohms) * (1 + 1e-9))
        if not self.CAL_MASK & 1:
            cal &= ~1  # INA219: the register's bit 0 does not exist
        if not 0 < cal <= self.CAL_MASK:
            raise MeterError(f"{self.name}: {max_amps} A over {shunt_ohms} ohm needs calibration value "
                             f"{cal}, outside 1..{self.CAL_MASK}; choose max_amps nearer the real maximum")
        self.calibration = cal
        self.current_lsb = self.CAL_SCALE / (cal * shunt_ohms)
        self.power_lsb = self.POWER_LSB_RATIO * self.current_lsb
        self.config = self.CONFIG if config is None else config
        self._select()
        self._identify()
        self.write_register(REG_CONFIG, self.config)
        self.write_register(REG_CALIBRATION, cal)
        if self.read_register(REG_CALIBRATION) != cal:
            raise MeterError(f"{self.name}: the calibration register did not take 0x{cal:04x}")

    # -- register access ---------------------------------------------------------------------

    def _select(self) -> None:
        try:
            self.dev.ioctl(I2C_SLAVE, self.address)
        except OSError as exc:
            raise MeterError(f"{self.name}: cannot select the I2C address ({exc})") from None

    def read_register(self, reg: int) -> int:
        try:
            self.dev.write(bytes([reg]))
            data = self.dev.read(2)
        except OSError as exc:
            raise MeterError(f"{self.name}: no answer on the I2C bus ({exc}); check wiring and "
                             "address") from None
        if len(data) != 2:
            raise MeterError(f"{self.name}: register 0x{reg:02x} read returned {len(data)} bytes")
        return data[0] << 8 | data[1]

    def write_register(self, reg: int, value: int) -> None:
        try:
            self.dev.write(bytes([reg, value >> 8 & 0xFF, value & 0xFF]))
        except OSError as exc:
            raise MeterError(f"{self.name}: no answer on the I2C bus ({exc}); check wiring and "
                             "address") from None

    def _identify(self) -> None:
        pass

    # -- measurement -------------------------------------------------------------------------

    def _bus_volts(self) -> float:
        raise NotImplementedError

    def shunt_volts(self) -> float:
        return _signed16(self.read_register(REG_SHUNT)) * self.SHUNT_LSB

    def read(self) -> dict:
        volts = self._bus_volts()
        amps = _signed16(self.read_register(REG_CURRENT)) * self.current_lsb
        watts = self.read_register(REG_POWER) * self.power_lsb
        return {self.rail: Reading(volts, amps, watts)}

    def close(self) -> None:
        close = getattr(self.dev, "close", None)
        if close:
            close()


class INA219(_INA):
    """INA219 (SBOS448). Default config 0x399F: 32 V bus range, shunt PGA /8 (+-320 mV), 12-bit
    conversions of bus and shunt, continuous."""

    SHUNT_LSB, BUS_LSB, CAL_SCALE, POWER_LSB_RATIO = 10e-6, 4e-3, 0.04096, 20
    CAL_MASK = 0xFFFE  # bit 0 of the calibration register is not used
    CONFIG = 0x399F

    def _identify(self) -> None:
        # no ID register: a reset must bring the documented reset value back
        self.write_register(REG_CONFIG, 0x8000)
        if self.read_register(REG_CONFIG) != 0x399F:
            raise MeterError(f"{self.name}: not an INA219 (config does not reset to 0x399F)")

    def _bus_volts(self) -> float:
        raw = self.read_register(REG_BUS)
        if raw & 1:
            raise MeterError(f"{self.name}: math overflow (OVF): the current exceeds the "
                             "calibrated range; raise max_amps")
        return (raw >> 3) * self.BUS_LSB


class INA226(_INA):
    """INA226 (SBOS547). Default config 0x4127: 1 sample averaged, 1.1 ms bus and shunt
    conversions, continuous."""

    SHUNT_LSB, BUS_LSB, CAL_SCALE, POWER_LSB_RATIO = 2.5e-6, 1.25e-3, 0.00512, 25
    CAL_MASK = 0x7FFF  # bit 15 is reserved
    CONFIG = 0x4127

    def _identify(self) -> None:
        maker, die = self.read_register(REG_MANUFACTURER), self.read_register(REG_DIE)
        if maker != 0x5449 or die >> 4 != 0x226:
            raise MeterError(f"{self.name}: not an INA226 (manufacturer 0x{maker:04x}, die 0x{die:04x})")

    def _bus_volts(self) -> float:
        return (self.read_register(REG_BUS) & 0x7FFF) * self.BUS_LSB
