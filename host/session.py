"""A device session: the model loaded, the device opened (a real port or a simulated board started
for the purpose), the bitstream checked against the model, the image uploaded if needed.

The CLI's device commands share this; the tests use it against the simulated board.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass

from golden.bitexact import BitExactModel
from golden.image import DeviceLayout

from .device import Device, DeviceError, open_transport

__all__ = ["Session", "Link", "open_session", "open_device", "device_lanes", "ProgressBar"]


class ProgressBar:
    """A one-line progress bar on stderr with bytes per second (silent when ``enabled`` is false)."""

    def __init__(self, total: int, label: str, enabled: bool = True, stream=None):
        self.total, self.label, self.enabled = total, label, enabled
        self.stream = stream or sys.stderr
        # on a terminal the bar redraws in place; in a log, a line per quarter
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self._next_quarter = 0.25
        self.done = 0
        self.start = time.monotonic()
        self._last = 0.0

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        frac = self.done / self.total if self.total else 1.0
        if not self.enabled:
            return
        if self.tty and not (now - self._last > 0.2 or frac >= 1):
            return
        if not self.tty:
            if frac < self._next_quarter:
                return
            while self._next_quarter <= frac:
                self._next_quarter += 0.25
        self._last = now
        rate = self.done / max(now - self.start, 1e-9)
        bar = "#" * int(30 * frac)
        lead = "\r" if self.tty else ""
        self.stream.write(f"{lead}{self.label} [{bar:<30}] {self.done / 1024:,.0f}/"
                          f"{self.total / 1024:,.0f} KiB {rate / 1024:,.1f} KiB/s")
        if frac >= 1 or not self.tty:
            self.stream.write("\n")
        self.stream.flush()

    @property
    def bytes_per_second(self) -> float:
        return self.done / max(time.monotonic() - self.start, 1e-9)


@dataclass
class Session:
    device: Device
    model: BitExactModel
    layout: DeviceLayout
    board: str
    url: str
    simulated: bool
    uploaded: bool
    upload_rate: float | None  # bytes per second of the upload, when there was one
    baud: int = 0
    image_bytes: int = 0


@dataclass
class Link:
    """An open device: the client, where it is, and the line rate the host set."""
    device: Device
    url: str
    simulated: bool
    baud: int


#: Reply timeouts (s): a real board answers in milliseconds; the simulated one runs ~1000x slower.
TIMEOUT_PORT, TIMEOUT_SIM = 5.0, 30.0
SIM_BAUD = 3_000_000  # nominal: the simulated UART runs at SIM_DIVISOR cycles per bit


@contextlib.contextmanager
def open_device(*, port: str | None = None, board: str = "ulx3s-85f", config=None, lanes: int | None = None,
                progress: bool = True, timeout: float | None = None, log=None):
    """Open the device at ``port``, or with no port start a simulated ``board`` whose core has the
    dimensions of ``config`` (a ``ModelConfig``) and ``lanes`` (default: the board's). Asks INFO,
    so a port with no mmfree device behind it fails here."""
    from hw.boards import get_board

    log = log or (lambda message: print(message, file=sys.stderr))
    spec = get_board(board)
    with contextlib.ExitStack() as stack:
        if port is None:
            from hw.top import SIM_DIVISOR, core_for_board
            from sim.board import SimBoard, SimBoardError

            if config is None:
                raise ValueError("a simulated board needs a model for its dimensions: give --model, or --port")
            log(f"starting a simulated {board} board (no --port given)")
            layout = DeviceLayout(config, lanes or spec.lanes)
            try:
                sim = stack.enter_context(SimBoard(core_for_board(board, layout, SIM_DIVISOR), SIM_DIVISOR,
                                                   name=f"mmfree_{board.replace('-', '_')}", quiet=not progress))
            except SimBoardError as exc:
                raise DeviceError(f"the simulated board did not start: {exc}") from None
            url, simulated, baud = sim.url, True, SIM_BAUD
        else:
            url, simulated, baud = port, False, spec.baud
        transport = open_transport(url, baudrate=baud, timeout=0.05)
        stack.callback(transport.close)
        device = Device(transport, timeout=timeout or (TIMEOUT_SIM if simulated else TIMEOUT_PORT))
        device.info()
        yield Link(device, url, simulated, baud)


def device_lanes(device: Device) -> int | None:
    """The lane count the device reports in INFO, if it is a usable one."""
    lanes = device.info_cache.model.get("lanes") if device.info_cache else None
    return lanes if isinstance(lanes, int) and not isinstance(lanes, bool) and lanes >= 5 and lanes % 5 == 0 else None


@contextlib.contextmanager
def open_session(model: BitExactModel, *, port: str | None = None, board: str = "ulx3s-85f",
                 progress: bool = True, force_upload: bool = False, log=None, lanes: int | None = None,
                 timeout: float | None = None):
    """Open a device for ``model`` (a loaded ``BitExactModel``) and make sure it holds its image.

    With no ``port`` a simulated board is built (cached) and started for the session, with the
    core the chosen board would carry (``lanes`` overrides the board's lane count), and stopped
    afterwards. With a port, the image is laid out for the lanes the device reports (``lanes``,
    if given, must match them), so one host works with bitstreams of any width."""
    from hw.boards import get_board

    log = log or (lambda message: print(message, file=sys.stderr))
    with open_device(port=port, board=board, config=model.config, lanes=lanes, progress=progress,
                     timeout=timeout, log=log) as link:
        device = link.device
        chosen = lanes or (device_lanes(device) if port is not None else None) or get_board(board).lanes
        layout = DeviceLayout(model.config, chosen)
        device.check_layout(layout)
        image_bytes = sum(len(v) for v in layout.image(model.device).values())
        bar = ProgressBar(image_bytes, "upload", enabled=progress)
        uploaded = device.upload(layout, model.device, force=force_upload, progress=bar)
        if not uploaded:
            log("the device already holds this model (same image hash): upload skipped")
        yield Session(device, model, layout, board, link.url, link.simulated, uploaded,
                      bar.bytes_per_second if uploaded else None, link.baud, image_bytes)
