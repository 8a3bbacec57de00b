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

__all__ = ["Session", "open_session", "ProgressBar"]


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


@contextlib.contextmanager
def open_session(model: BitExactModel, *, port: str | None = None, board: str = "ulx3s-85f",
                 progress: bool = True, force_upload: bool = False, log=None):
    """Open a device for ``model`` (a loaded ``BitExactModel``) and make sure it holds its image.

    With no ``port`` a simulated board is built (cached) and started for the session, with the
    core the chosen board would carry, and stopped afterwards."""
    from hw.boards import get_board

    log = log or (lambda message: print(message, file=sys.stderr))
    spec = get_board(board)
    layout = DeviceLayout(model.config, spec.lanes)
    with contextlib.ExitStack() as stack:
        if port is None:
            from hw.top import SIM_DIVISOR, DeviceCore
            from sim.board import SimBoard, SimBoardError

            log(f"starting a simulated {board} board (no --port given)")
            try:
                sim = stack.enter_context(SimBoard(DeviceCore(layout, SIM_DIVISOR), SIM_DIVISOR,
                                                   name=f"mmfree_{board.replace('-', '_')}", quiet=not progress))
            except SimBoardError as exc:
                raise DeviceError(f"the simulated board did not start: {exc}") from None
            url, simulated, baud = sim.url, True, 3_000_000
        else:
            url, simulated, baud = port, False, spec.baud
        transport = open_transport(url, baudrate=baud, timeout=0.05)
        stack.callback(transport.close)
        device = Device(transport, timeout=30.0 if simulated else 5.0)
        device.info()
        device.check_layout(layout)
        image_bytes = sum(len(v) for v in layout.image(model.device).values())
        bar = ProgressBar(image_bytes, "upload", enabled=progress)
        uploaded = device.upload(layout, model.device, force=force_upload, progress=bar)
        if not uploaded:
            log("the device already holds this model (same image hash): upload skipped")
        yield Session(device, model, layout, board, url, simulated, uploaded,
                      bar.bytes_per_second if uploaded else None)
