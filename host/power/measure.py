"""Measured energy per token: idle baseline, generation window, trapezoid integral per rail,
a CSV of the samples and a PNG of power over time (docs/energy.md, "The measurement")."""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass, field

from .meter import MeterError, PowerMeter

__all__ = ["integrate", "RailReport", "EnergyReport", "measure_energy", "write_csv", "write_plot",
           "parse_meter_spec", "run_power"]


def _at(ts, ws, t):
    """Power at ``t`` by linear interpolation between the samples around it."""
    for k in range(1, len(ts)):
        if ts[k] >= t:
            t0, t1 = ts[k - 1], ts[k]
            return ws[k] if t1 == t0 else ws[k - 1] + (ws[k] - ws[k - 1]) * (t - t0) / (t1 - t0)
    raise ValueError("t beyond the samples")


def integrate(ts, ws, t0: float, t1: float) -> float:
    """Energy (J) of the piecewise-linear power through the samples ``(ts, ws)`` (time order)
    over ``[t0, t1]``: trapezoids, with the edges linearly interpolated. The samples must cover
    the window."""
    if t1 < t0:
        raise ValueError(f"the window ends ({t1}) before it starts ({t0})")
    if not ts or ts[0] > t0 or ts[-1] < t1:
        span = f"{ts[0]:.3f}..{ts[-1]:.3f} s" if ts else "no samples"
        raise MeterError(f"the samples ({span}) do not cover the window {t0:.3f}..{t1:.3f} s")
    points = [(t0, _at(ts, ws, t0))] + [(t, w) for t, w in zip(ts, ws) if t0 < t < t1] + \
             [(t1, _at(ts, ws, t1))]
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(points, points[1:]))


@dataclass(frozen=True)
class RailReport:
    rail: str
    baseline_w: float    # mean power over the idle window
    gross_j: float       # energy over the generation window
    net_j: float         # gross minus baseline x duration: what generating cost
    joules_per_token: float
    average_w: float     # gross / duration
    net_average_w: float


@dataclass
class EnergyReport:
    """A MEASURED result (compare ``host.energy.EnergyEstimate``, an estimate)."""

    tokens: int
    idle_window: tuple
    window: tuple
    token_ends: list
    rails: dict                     # rail -> RailReport
    samples: list = field(repr=False)
    csv_path: str | None = None
    png_path: str | None = None
    notes: list = field(default_factory=list)
    label: str = "measured"

    @property
    def seconds(self) -> float:
        return self.window[1] - self.window[0]

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds

    def summary(self) -> str:
        lines = [f"measured: {self.tokens} tokens in {self.seconds:.3f} s ({self.tokens_per_second:.2f} "
                 f"tokens/s), idle baseline over {self.idle_window[1] - self.idle_window[0]:.2f} s"]
        for r in self.rails.values():
            lines.append(f"  {r.rail:<5} {r.joules_per_token * 1e3:10.4f} mJ/token above baseline, "
                         f"{r.average_w:.4f} W average ({r.net_average_w:+.4f} W over the "
                         f"{r.baseline_w:.4f} W baseline)")
        lines += [f"  samples: {self.csv_path}"] if self.csv_path else []
        lines += [f"  plot: {self.png_path}"] if self.png_path else []
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _rail_series(samples, rail):
    pts = sorted((s.t, s.watts) for s in samples if s.rail == rail)
    return [p[0] for p in pts], [p[1] for p in pts]


def _wait_for_sample(meters, after: float, clock, limit: float = 10.0) -> None:
    """Block until every meter has a sample stamped after ``after``."""
    deadline = time.monotonic() + limit
    for m in meters:
        while not any(s.t > after for s in m.samples[-4:]):
            if m._thread is None or not m._thread.is_alive() or time.monotonic() > deadline:
                m.stop()  # raises the sampler's error if it had one
                raise MeterError(f"{m.name} produced no sample in {limit:g} s")
            time.sleep(0.002)


def measure_energy(meters, run, idle_seconds: float, *, interval: float = 0.01, clock=time.monotonic,
                   sleep=time.sleep, out_dir: str | None = None, stem: str = "power") -> EnergyReport:
    """Measure the energy of ``run(on_token)``: it generates, calling ``on_token()`` after each
    token. ``meters`` is a PowerMeter or a list of them (their rails must differ). For
    ``idle_seconds`` just before the run nothing happens: that window's mean power is each
    rail's baseline. With ``out_dir`` the samples go to ``<stem>.csv`` and, with matplotlib,
    ``<stem>.png``."""
    meters = [meters] if isinstance(meters, PowerMeter) else list(meters)
    rails = [r for m in meters for r in m.rails]
    if not meters or len(set(rails)) != len(rails):
        raise MeterError(f"need at least one meter and distinct rails, got {rails}")
    if idle_seconds <= 0:
        raise MeterError("idle_seconds must be positive: the baseline needs a window")
    started = []
    try:
        for m in meters:
            m.start(interval)
            started.append(m)
        _wait_for_sample(meters, float("-inf"), clock)
        idle0 = clock()
        sleep(idle_seconds)
        idle1 = clock()
        ends = []
        run(lambda: ends.append(clock()))
        gen1 = clock()
        _wait_for_sample(meters, gen1, clock)
    finally:
        samples = []
        errors = []
        for m in started:
            try:
                samples += m.stop()
            except MeterError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
    if not ends:
        raise MeterError("the run produced no tokens")
    duration = gen1 - idle1
    reports = {}
    for rail in rails:
        ts, ws = _rail_series(samples, rail)
        baseline = integrate(ts, ws, idle0, idle1) / (idle1 - idle0)
        gross = integrate(ts, ws, idle1, gen1)
        net = gross - baseline * duration
        reports[rail] = RailReport(rail, baseline, gross, net, net / len(ends), gross / duration,
                                   net / duration)
    report = EnergyReport(len(ends), (idle0, idle1), (idle1, gen1), ends, reports,
                          sorted(samples, key=lambda s: (s.t, s.rail)))
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        report.csv_path = write_csv(report, os.path.join(out_dir, f"{stem}.csv"))
        report.png_path = write_plot(report, os.path.join(out_dir, f"{stem}.png"), report.notes)
    return report


def _phase(report: EnergyReport, t: float):
    """(phase, token index) of a sample time: idle, token k (1-based), or outside."""
    if report.idle_window[0] <= t < report.idle_window[1]:
        return "idle", ""
    start = report.window[0]
    for k, end in enumerate(report.token_ends, 1):
        if start <= t < end:
            return "token", k
        start = end
    return ("generate", "") if report.window[0] <= t <= report.window[1] else ("outside", "")


def write_csv(report: EnergyReport, path: str) -> str:
    """Every sample: time (s from the idle window's start), rail, V, A, W, phase, token."""
    t0 = report.idle_window[0]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time_s", "rail", "volts", "amps", "watts", "phase", "token"])
        for s in report.samples:
            phase, token = _phase(report, s.t)
            w.writerow([f"{s.t - t0:.6f}", s.rail, f"{s.volts:.6f}", f"{s.amps:.6f}", f"{s.watts:.6f}",
                        phase, token])
    return path


def write_plot(report: EnergyReport, path: str, notes: list | None = None) -> str | None:
    """Power over time per rail, the idle window and alternate token windows shaded. Returns
    None (and adds a note) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if notes is not None:
            notes.append("no PNG: matplotlib is not installed (pip install 'mmfree-fpga[power]'); "
                         "the CSV has every sample")
        return None
    t0 = report.idle_window[0]
    fig, ax = plt.subplots(figsize=(10, 4))
    for rail in report.rails:
        ts, ws = _rail_series(report.samples, rail)
        ax.plot([t - t0 for t in ts], ws, label=f"{rail} rail", lw=1)
    ax.axvspan(0, report.idle_window[1] - t0, color="0.85", label="idle baseline")
    start = report.window[0]
    for k, end in enumerate(report.token_ends):
        ax.axvspan(start - t0, end - t0, color="C2" if k % 2 else "C3", alpha=0.12,
                   label="token windows" if k == 0 else None)
        start = end
    ax.set_xlabel("time (s)")
    ax.set_ylabel("power (W)")
    ax.set_title(f"measured power: {report.tokens} tokens, {report.tokens_per_second:.2f} tokens/s")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def parse_meter_spec(spec: str) -> PowerMeter:
    """A meter from a command-line spec:

    * ``ina226:/dev/i2c-1:0x40:SHUNT_OHMS:MAX_AMPS[:RAIL]`` (likewise ``ina219:...``), rail
      ``core`` by default;
    * ``um24c:PORT`` / ``um25c:PORT`` / ``um34c:PORT`` (PORT a device path such as
      ``/dev/rfcomm0``, or a pyserial URL), rail ``board``."""
    kind, _, rest = spec.partition(":")
    kind = kind.lower()
    if kind in ("ina219", "ina226"):
        from .ina import INA219, INA226

        parts = rest.split(":")
        if len(parts) not in (4, 5):
            raise MeterError(f"{spec!r}: expected {kind}:DEVICE:ADDRESS:SHUNT_OHMS:MAX_AMPS[:RAIL]")
        try:
            address, shunt, amps = int(parts[1], 0), float(parts[2]), float(parts[3])
        except ValueError:
            raise MeterError(f"{spec!r}: address, shunt ohms and max amps must be numbers") from None
        cls = INA219 if kind == "ina219" else INA226
        return cls(parts[0], address=address, shunt_ohms=shunt, max_amps=amps,
                   rail=parts[4] if len(parts) == 5 else "core")
    if kind in ("um24c", "um25c", "um34c"):
        from .um import UMMeter

        if not rest:
            raise MeterError(f"{spec!r}: expected {kind}:PORT")
        return UMMeter(rest, model=kind.upper())
    raise MeterError(f"unknown meter {kind!r} in {spec!r}; use ina219, ina226, um24c, um25c or um34c")


def run_power(device, meters, *, tokens: int, start_token: int = 0, idle_seconds: float = 2.0,
              out_dir: str = "power", board: str | None = None, clock_mhz: float | None = None,
              interval: float = 0.01, log=print) -> dict:
    """What ``mmfree power`` does, once the device holds the model (``host.session``).

    Intended command line (the subcommand is added to ``host/cli.py`` separately)::

        mmfree power --model DIR [--port PORT] [--board icebreaker|ulx3s-85f]
                     --meter SPEC [--meter SPEC ...]   # parse_meter_spec: ina219/ina226/um2xc
                     [--tokens 64] [--start-token 0] [--idle 2.0] [--interval 0.01]
                     [--out power/]

    ``device`` is a ``host.device.Device``; ``meters`` are PowerMeters or spec strings. The
    device generates ``tokens`` tokens from ``start_token`` (GENERATE, streamed) while the
    meters sample; before that, ``idle_seconds`` of idle baseline. Writes ``out_dir/power.csv``
    and (with matplotlib) ``out_dir/power.png``; logs the measured figures and, when ``board``
    is given, the counter-based estimate next to them, each labelled. Returns
    ``{"measured": EnergyReport, "estimated": EnergyEstimate or None}``."""
    from host.energy import estimate

    meters = [parse_meter_spec(m) if isinstance(m, str) else m for m in meters]
    if tokens < 1:
        raise ValueError(f"tokens must be at least 1, got {tokens}")
    before = device.counters()

    def run(on_token):
        for _ in device.generate(start_token, tokens):
            on_token()

    try:
        report = measure_energy(meters, run, idle_seconds, interval=interval, out_dir=out_dir)
    finally:
        for m in meters:
            m.close()
    after = device.counters()
    estimated = None
    if board is not None:
        from hw.boards import get_board

        spec = get_board(board)
        mhz = clock_mhz or spec.clock_mhz
        estimated = estimate(before, after, spec.family, mhz * 1e6, lanes=spec.lanes)
    log(report.summary())
    if estimated is not None:
        log(estimated.summary())
    return {"measured": report, "estimated": estimated}
