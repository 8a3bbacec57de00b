"""The FTDI latency timer: a USB serial bridge holds a short read for up to this many ms.

FTDI chips (the ULX3S's FT231X, the iCEBreaker's FT2232H) send a partly filled buffer to the host
only when the timer expires; Linux's default is 16 ms. A reply of a few bytes then costs up to
16 ms: nothing for an upload or a device-side GENERATE, but for one STEP per token (sampling) it
caps the rate near 60 tokens/s. Linux shows the timer in sysfs, writable by root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["SYSFS_ENV", "latency_timer_ms", "latency_warning"]

#: Environment variable that moves the sysfs root (for tests; default /sys).
SYSFS_ENV = "MMFREE_SYSFS_ROOT"
SLOW_MS = 16


def _sysfs_root(sysfs_root) -> Path:
    return Path(sysfs_root if sysfs_root is not None else os.environ.get(SYSFS_ENV, "/sys"))


def _tty_name(port: str) -> str | None:
    """``ttyUSBn`` for a port path (also through /dev/serial/by-id links), else None."""
    if "://" in port:
        return None
    name = os.path.basename(os.path.realpath(port))
    return name if re.fullmatch(r"ttyUSB\d+", name) else None


def latency_timer_ms(port: str, sysfs_root=None) -> int | None:
    """The port's latency timer in ms, or None where the OS does not show it (not Linux, not a
    USB serial port, a socket:// URL, unreadable)."""
    name = _tty_name(port)
    if name is None:
        return None
    try:
        text = (_sysfs_root(sysfs_root) / "bus" / "usb-serial" / "devices" / name / "latency_timer").read_text()
        return int(text.strip())
    except (OSError, ValueError):
        return None


def latency_warning(port: str | None, per_token_round_trips: bool, sysfs_root=None) -> str | None:
    """A warning with the fix, when per-token round trips will be held back by a 16 ms timer."""
    if port is None or not per_token_round_trips:
        return None
    ms = latency_timer_ms(port, sysfs_root)
    if ms is None or ms < SLOW_MS:
        return None
    name = _tty_name(port)
    return (f"warning: the latency timer of {name} is {ms} ms, so each token's round trip (sampling "
            f"uses one STEP per token) can wait {ms} ms: at most ~{1000 // ms} tokens/s. Set it to 1 ms: "
            f"`echo 1 | sudo tee /sys/bus/usb-serial/devices/{name}/latency_timer`, or for good with a "
            'udev rule: ACTION=="add", SUBSYSTEM=="usb-serial", DRIVER=="ftdi_sio", '
            'ATTR{latency_timer}="1" (e.g. in /etc/udev/rules.d/99-ftdi-latency.rules)')
