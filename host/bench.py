"""``mmfree bench``: how fast the device generates and how fast the serial link carries data.

Two measurements on a session (the model on the device):

* generation: a greedy GENERATE of ``tokens`` tokens, timed on the host (tokens/s through the
  link) next to the device's own counters (busy cycles per token: the rate the board's clock
  allows, what a host could never slow down);
* the link: the weights region written again with its own bytes (the image does not change, so
  the model stays loaded), timed; against the line rate of 8N1 (baud / 10 bytes/s; on a
  simulated board, the simulated clock during the write / the UART divisor / 10).
"""

from __future__ import annotations

import math
import time

from golden.image import REGIONS

__all__ = ["bench"]


def bench(session, *, tokens: int, link_bytes: int, clock_mhz: float, first_token: int = 0) -> dict:
    if tokens < 1:
        raise ValueError(f"--tokens must be >= 1, got {tokens}")
    if link_bytes < 1:
        raise ValueError(f"--link-bytes must be >= 1, got {link_bytes}")
    device, layout = session.device, session.layout
    weights = layout.image(session.model.device)["weights"]
    # whole memory words, so the rewrite leaves no partial word waiting in the device
    word = math.lcm(4, layout.word_bytes)
    size = min(len(weights), max(word, link_bytes - link_bytes % word))
    cycles0 = device.counters()["cycles"]
    start = time.perf_counter()
    device.write(REGIONS["weights"], weights[:size])
    link_seconds = time.perf_counter() - start
    link_cycles = (device.counters()["cycles"] - cycles0) % 2**32
    divisor = (device.info_cache.build.get("uart_divisor") if device.info_cache else None)
    if session.simulated and isinstance(divisor, int) and link_seconds > 0:
        # a simulation's UART runs at its simulated clock / divisor: the nominal baud rate means
        # nothing in wall time, the cycles it simulated while the bytes went through do
        line_rate = link_cycles / link_seconds / divisor / 10
    else:
        line_rate = session.baud / 10

    device.reset()
    before = device.counters()
    start = time.perf_counter()
    produced = sum(1 for _ in device.generate(first_token, tokens))
    wall = time.perf_counter() - start
    after = device.counters()
    delta = {k: (after[k] - before[k]) % 2**32 for k in ("cycles", "busy_cycles", "steps")}  # 32-bit counters wrap
    cycles_per_token = delta["busy_cycles"] / delta["steps"] if delta["steps"] else None
    return {
        "tokens": produced,
        "device_steps": delta["steps"],
        "wall_seconds": wall,
        "tokens_per_second_wall": produced / wall if wall > 0 else None,
        "cycles_per_token": cycles_per_token,
        "clock_mhz": clock_mhz,
        "tokens_per_second_at_clock": clock_mhz * 1e6 / cycles_per_token if cycles_per_token else None,
        # device cycles per wall second in the window: the clock on a board, the speed of a simulation
        "device_cycles_per_second": delta["cycles"] / wall if wall > 0 else None,
        "link_bytes": size,
        "link_seconds": link_seconds,
        "link_bytes_per_second": size / link_seconds if link_seconds > 0 else None,
        "line_rate_bytes_per_second": line_rate,
        "link_efficiency": size / link_seconds / line_rate if link_seconds > 0 and line_rate else None,
        "upload_bytes_per_second": session.upload_rate,
    }
