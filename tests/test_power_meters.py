"""Power-meter drivers against simulated instruments that speak the real protocols; the
expected register values and conversions are worked out by hand from the data sheets."""

import csv
import time

import pytest

from host.power import INA219, INA226, MeterError, UMMeter, integrate, measure_energy, parse_um
from host.power.ina import I2C_SLAVE
from host.power.sim import FakeI2CBus, SimINA, SimUM


def const(volts, amps):
    return lambda t: (volts, amps)


# --- INA226 -----------------------------------------------------------------------------------

def test_ina226_calibration_and_wire_bytes():
    bus = FakeI2CBus({0x40: SimINA("INA226", 0.1, const(5.0, 0.05))})
    ina = INA226(bus, address=0x40, shunt_ohms=0.1, max_amps=3.2768)
    # current_lsb = 3.2768 / 2^15 = 100 uA; CAL = 0.00512 / (100e-6 * 0.1) = 512 = 0x0200
    assert ina.calibration == 512
    assert ina.current_lsb == pytest.approx(1e-4, rel=1e-12)
    assert bus.log[0] == ("ioctl", 0x40) and I2C_SLAVE == 0x0703
    assert ("write", 0x40, bytes([0x05, 0x02, 0x00])) in bus.log
    assert ("write", 0x40, bytes([0x00, 0x41, 0x27])) in bus.log


def test_ina226_register_math():
    bus = FakeI2CBus({0x40: SimINA("INA226", 0.1, const(5.0, 0.05))})
    ina = INA226(bus, shunt_ohms=0.1, max_amps=3.2768)
    # shunt 5 mV / 2.5 uV = 2000; current 2000 * 512 / 2048 = 500; bus 5 V / 1.25 mV = 4000;
    # power 500 * 4000 / 20000 = 100 LSBs of 25 * 100 uA
    assert ina.read_register(0x01) == 2000
    assert ina.read_register(0x02) == 4000
    assert ina.read_register(0x04) == 500
    assert ina.read_register(0x03) == 100
    r = ina.read()["core"]
    assert (r.volts, r.amps, r.watts) == pytest.approx((5.0, 0.05, 0.25), abs=1e-12)


def test_ina226_truncation():
    bus = FakeI2CBus({0x41: SimINA("INA226", 0.1, const(3.3, 0.01234))})
    ina = INA226(bus, address=0x41, shunt_ohms=0.1, max_amps=3.2768, rail="board")
    # shunt round(1.234 mV / 2.5 uV) = 494; current int(494 * 512 / 2048) = 123;
    # bus 3.3 / 1.25 mV = 2640; power int(123 * 2640 / 20000) = 16 -> 16 * 2.5 mW
    r = ina.read()["board"]
    assert r.amps == pytest.approx(0.0123, abs=1e-12)
    assert r.watts == pytest.approx(0.04, abs=1e-12)
    assert ina.shunt_volts() == pytest.approx(494 * 2.5e-6)


def test_ina226_negative_current():
    bus = FakeI2CBus({0x40: SimINA("INA226", 0.1, const(5.0, -0.05))})
    r = INA226(bus, shunt_ohms=0.1, max_amps=3.2768).read()["core"]
    assert r.amps == pytest.approx(-0.05)  # 0xFE0C two's complement
    assert r.watts == pytest.approx(0.25)  # the power register holds |I| x V


def test_ina226_identity_and_absent_chip():
    bus = FakeI2CBus({0x40: SimINA("INA219", 0.1, const(5.0, 0.05))})
    with pytest.raises(MeterError, match="not an INA226"):
        INA226(bus, shunt_ohms=0.1, max_amps=3.2)
    with pytest.raises(MeterError, match="no answer on the I2C bus"):
        INA226(bus, address=0x45, shunt_ohms=0.1, max_amps=3.2)


# --- INA219 -----------------------------------------------------------------------------------

def test_ina219_register_math():
    bus = FakeI2CBus({0x40: SimINA("INA219", 0.1, const(5.0, 0.5))})
    ina = INA219(bus, shunt_ohms=0.1, max_amps=3.2)
    # lsb = 3.2 / 2^15 = 97.65625 uA; CAL = int(0.04096 / (97.65625e-6 * 0.1)) = int(4194.304) = 4194
    assert ina.calibration == 4194
    lsb = 0.04096 / (4194 * 0.1)
    # shunt 50 mV / 10 uV = 5000; current int(5000 * 4194 / 4096) = 5119;
    # bus 5 V / 4 mV = 1250 in bits 15..3, CNVR (bit 1) set; power int(5119 * 1250 / 5000) = 1279
    assert ina.read_register(0x01) == 5000
    assert ina.read_register(0x02) == 1250 << 3 | 0b10
    assert ina.read_register(0x04) == 5119
    assert ina.read_register(0x03) == 1279
    r = ina.read()["core"]
    assert r.volts == pytest.approx(5.0)
    assert r.amps == pytest.approx(5119 * lsb, rel=1e-12)
    assert r.watts == pytest.approx(1279 * 20 * lsb, rel=1e-12)
    assert ("write", 0x40, bytes([0x05, 4194 >> 8, 4194 & 0xFF])) in bus.log


def test_ina219_calibration_bit0_and_range():
    bus = FakeI2CBus({0x40: SimINA("INA219", 0.1, const(5.0, 0.5))})
    # 1 A: lsb 30.52 uA, CAL = int(13421.77) = 13421, bit 0 cleared -> 13420
    assert INA219(bus, shunt_ohms=0.1, max_amps=1.0).calibration == 13420
    with pytest.raises(MeterError, match="calibration value"):
        INA219(bus, shunt_ohms=0.1, max_amps=0.1)  # CAL 134217 does not fit 16 bits


def test_ina219_overflow_is_an_error():
    # CAL 13420: a 2 A current gives 20000 * 13420 / 4096 = 65527 > 32767: the OVF flag
    bus = FakeI2CBus({0x40: SimINA("INA219", 0.1, const(5.0, 2.0))})
    ina = INA219(bus, shunt_ohms=0.1, max_amps=1.0)
    with pytest.raises(MeterError, match="overflow"):
        ina.read()


# --- UM series --------------------------------------------------------------------------------

def um_record(model_id, v_raw, a_raw, mw):
    rec = bytearray(130)
    rec[0:2] = model_id.to_bytes(2, "big")
    rec[2:4] = v_raw.to_bytes(2, "big")
    rec[4:6] = a_raw.to_bytes(2, "big")
    rec[6:10] = mw.to_bytes(4, "big")
    rec[10:12] = (31).to_bytes(2, "big")
    return bytes(rec)


def test_um_parse_scales_per_model():
    r = parse_um(um_record(0x09C9, 5123, 1234, 632))  # UM25C: 1 mV, 0.1 mA
    assert (r.model, r.volts, r.amps, r.power_field_watts, r.temp_c) == \
        ("UM25C", pytest.approx(5.123), pytest.approx(0.1234), pytest.approx(0.632), 31)
    r = parse_um(um_record(0x0963, 512, 123, 629))  # UM24C: 10 mV, 1 mA
    assert (r.model, r.volts, r.amps) == ("UM24C", pytest.approx(5.12), pytest.approx(0.123))
    assert parse_um(um_record(0x0D4C, 500, 100, 500)).model == "UM34C"


def test_um_parse_errors():
    with pytest.raises(MeterError, match="130 bytes"):
        parse_um(bytes(129))
    with pytest.raises(MeterError, match="unknown model id 0x1234"):
        parse_um(um_record(0x1234, 0, 0, 0))
    with pytest.raises(MeterError, match="expected a UM24C"):
        parse_um(um_record(0x09C9, 0, 0, 0), model="UM24C")


def test_um_meter_over_a_pty():
    with SimUM("UM25C", const(5.08, 0.2345)) as sim:
        meter = UMMeter(sim.path, model="UM25C", timeout=1.0)
        try:
            r = meter.read()["board"]
            rec = meter.record()
        finally:
            meter.close()
        assert sim.requests == 2
    assert r.volts == pytest.approx(5.08) and r.amps == pytest.approx(0.2345)
    assert r.watts == pytest.approx(5.08 * 0.2345, rel=1e-12)
    assert rec.power_field_watts == pytest.approx(1.191)  # round(1191.26 mW)


def test_um_meter_wrong_model_and_silence():
    with SimUM("UM34C", const(5.0, 0.1)) as sim:
        meter = UMMeter(sim.path, model="UM25C", timeout=1.0)
        with pytest.raises(MeterError, match="the meter says it is a UM34C"):
            meter.read()
        meter.close()
    import serial

    port = serial.serial_for_url("loop://", timeout=0.05)  # echoes the request: 1 byte, no record
    with pytest.raises(MeterError, match="1 of 130 bytes"):
        UMMeter(port, timeout=0.2).read()


# --- integration --------------------------------------------------------------------------------

def test_integrate_is_exact_for_piecewise_linear_power():
    ts = [0.0, 0.1, 0.35, 0.9, 1.2, 2.0]
    ws = [2 + 3 * t for t in ts]
    # integral of 2 + 3t over [0.25, 1.7] = 2 * 1.45 + 1.5 * (1.7^2 - 0.25^2)
    assert integrate(ts, ws, 0.25, 1.7) == pytest.approx(2 * 1.45 + 1.5 * (1.7 ** 2 - 0.25 ** 2), abs=1e-12)
    # a kink at a sample: |t - 1| from 0 to 2 -> 1
    assert integrate([0, 1, 2], [1, 0, 1], 0, 2) == pytest.approx(1.0)
    with pytest.raises(MeterError, match="do not cover"):
        integrate(ts, ws, -0.1, 1.0)


def test_measure_energy_against_simulated_meters(tmp_path):
    t0 = time.monotonic()
    core_amps = lambda t: 0.1 + 0.05 * (t - t0)  # noqa: E731 -- a ramp, integrated exactly
    board_amps = lambda t: 0.3 + 0.02 * (t - t0)  # noqa: E731
    bus = FakeI2CBus({0x40: SimINA("INA226", 0.1, lambda t: (1.2, core_amps(t)))})
    core = INA226(bus, shunt_ohms=0.1, max_amps=3.2768)
    with SimUM("UM25C", lambda t: (5.0, board_amps(t))) as sim:
        board = UMMeter(sim.path, model="UM25C", timeout=1.0)

        def run(on_token):
            for _ in range(4):
                time.sleep(0.05)
                on_token()

        report = measure_energy([core, board], run, idle_seconds=0.2, interval=0.005, out_dir=str(tmp_path))
        board.close()
    (i0, i1), (g0, g1) = report.idle_window, report.window
    assert report.tokens == 4 and report.label == "measured"
    assert report.tokens_per_second == pytest.approx(4 / (g1 - g0))

    def energy(volts, a, b, lo, hi):  # integral of volts * (a + b (t - t0)) dt
        return volts * (a * (hi - lo) + b / 2 * ((hi - t0) ** 2 - (lo - t0) ** 2))

    for rail, volts, a, b, lsb in (("core", 1.2, 0.1, 0.05, 25e-4), ("board", 5.0, 0.3, 0.02, 5e-4)):
        base = energy(volts, a, b, i0, i1) / (i1 - i0)
        gross = energy(volts, a, b, g0, g1)
        r = report.rails[rail]
        # the instruments quantise power to ``lsb`` W (INA226 power register 2.5 mW; UM25C
        # 5 V x 0.1 mA): the trapezoid of a ramp is otherwise exact
        assert r.baseline_w == pytest.approx(base, abs=lsb)
        assert r.gross_j == pytest.approx(gross, abs=lsb * (g1 - g0))
        assert r.net_j == pytest.approx(gross - base * (g1 - g0), abs=2 * lsb * (g1 - g0))
        assert r.joules_per_token == pytest.approx(r.net_j / 4)
    rows = list(csv.DictReader(open(report.csv_path)))
    assert {row["rail"] for row in rows} == {"core", "board"}
    assert {row["phase"] for row in rows} >= {"idle", "token"}
    assert {row["token"] for row in rows if row["phase"] == "token"} <= {"1", "2", "3", "4"}
    try:
        import matplotlib  # noqa: F401
        assert report.png_path and (tmp_path / "power.png").exists()
    except ImportError:
        assert report.png_path is None
        assert any("matplotlib is not installed" in n for n in report.notes)
    assert "measured" in report.summary()


def test_measure_energy_reports_a_dead_meter():
    bus = FakeI2CBus({0x40: SimINA("INA226", 0.1, const(1.2, 0.1))})
    core = INA226(bus, shunt_ohms=0.1, max_amps=3.2768)

    def run(on_token):
        on_token()
        bus.unplug()
        time.sleep(0.05)

    with pytest.raises(MeterError, match="no answer on the I2C bus"):
        measure_energy(core, run, idle_seconds=0.05, interval=0.005)
