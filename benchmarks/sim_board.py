"""The simulated board's speed and the serial link's efficiency.

    python -m benchmarks.sim_board [--model models/mmfree-ecp5] [--board ulx3s-85f] [--tokens 16]
                                   [--runs 3] [--no-write]

Starts the simulated board (the device core under Verilator, ``sim.board``) for the model, uploads
the model through the host runtime, then runs ``--runs`` device generations of ``--tokens``
tokens. Simulated cycles come from the device's own ``cycles`` counter, so the link efficiency
(payload bytes over the bytes the line could carry in those cycles, 10 bits per byte at
``SIM_DIVISOR`` clocks per bit) is exact; simulation speed (cycles per wall-clock second, and per
CPU second of the simulator process) is wall-clock and noisy on a shared machine: the median of
the runs is reported. Writes the section "## Simulated board (issue 4)" of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

from golden.bitexact import BitExactModel
from golden.image import REGIONS, DeviceLayout
from hw.boards import get_board
from hw.top import SIM_DIVISOR, DeviceCore
from host.device import Device, open_transport
from host.protocol import crc32
from sim.board import SimBoard

from .markdown import replace_section

ROOT = Path(__file__).resolve().parent.parent
TITLE = "## Simulated board (issue 4)"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(model_dir, board: str, tokens: int, runs: int, log=print) -> dict:
    model = BitExactModel.from_pretrained(model_dir)
    layout = DeviceLayout(model.config, get_board(board).lanes)
    t0 = time.monotonic()
    with SimBoard(DeviceCore(layout, SIM_DIVISOR), SIM_DIVISOR, name=f"mmfree_{board.replace('-', '_')}") as sim:
        start_s = time.monotonic() - t0
        pid = sim._proc.pid  # noqa: SLF001 (the harness process, for its CPU time)
        transport = open_transport(sim.url, timeout=0.05)
        device = Device(transport, timeout=60)
        device.info()
        image = layout.image(model.device)
        payload = sum(len(v) for v in image.values())
        # the writes alone, then their verification (what Device.upload does, taken apart)
        c0, w0, u0 = device.counters()["cycles"], time.monotonic(), _cpu_seconds(pid)
        for region, data in image.items():
            device.write(REGIONS[region], data)
        c1, w1, u1 = device.counters()["cycles"], time.monotonic(), _cpu_seconds(pid)
        for region, data in image.items():
            if device.checksum(REGIONS[region], len(data)) != crc32(data):
                raise SystemExit(f"the {region} region failed its CRC check")
        c_verify = device.counters()["cycles"] - c1
        log(f"upload: {payload} bytes in {c1 - c0} cycles, {w1 - w0:.1f} s; verify {c_verify} cycles")
        gen = []
        for _ in range(runs):
            device.reset()
            a = device.counters()
            wa, ua = time.monotonic(), _cpu_seconds(pid)
            produced = sum(1 for _ in device.generate(ord("d"), tokens))
            b = device.counters()
            wb, ub = time.monotonic(), _cpu_seconds(pid)
            cycles = b["cycles"] - a["cycles"]
            gen.append({"cycles": cycles, "wall": wb - wa, "cpu": ub - ua, "tokens": produced,
                        "busy": b["busy_cycles"] - a["busy_cycles"]})
            log(f"generate: {produced} tokens in {cycles} cycles, {wb - wa:.1f} s")
        transport.close()
    return {
        "layout": layout, "start_s": start_s, "payload": payload, "upload_cycles": c1 - c0,
        "upload_wall": w1 - w0, "upload_cpu": u1 - u0, "verify_cycles": c_verify, "runs": gen,
    }


def render(r, command: str) -> str:
    line_bytes = r["upload_cycles"] / (10 * SIM_DIVISOR)
    eff = r["payload"] / line_bytes
    med = lambda key: statistics.median(run[key] for run in r["runs"])  # noqa: E731
    speed_wall = statistics.median(run["cycles"] / run["wall"] for run in r["runs"])
    speed_cpu = statistics.median(run["cycles"] / run["cpu"] for run in r["runs"] if run["cpu"] > 0)
    up_wall = r["upload_cycles"] / r["upload_wall"]
    return "\n".join([
        TITLE, "",
        f"Command: `{command}`", "",
        f"The device core for {r['layout'].describe()} under Verilator (`sim.board`), UART at "
        f"{SIM_DIVISOR} clocks per bit. Simulated cycles from the device's `cycles` counter "
        f"(exact); speeds are wall-clock on this shared 2-core machine, median of {len(r['runs'])} runs.", "",
        "| figure | value |",
        "|---|---|",
        f"| upload payload | {r['payload']:,} bytes |",
        f"| upload writes, simulated cycles | {r['upload_cycles']:,} |",
        f"| **link efficiency of the writes** (payload / line capacity in those cycles) | **{eff:.1%}** |",
        f"| verification (CHECKSUM of every region), simulated cycles | {r['verify_cycles']:,} "
        f"({r['verify_cycles'] / r['upload_cycles']:.1%} of the writes) |",
        f"| cycles per token (device counters) | {med('busy') / r['runs'][0]['tokens']:,.0f} |",
        f"| **simulation speed while generating** | **{speed_wall:,.0f} cycles/s** wall, {speed_cpu:,.0f} per CPU second |",
        f"| simulation speed while uploading | {up_wall:,.0f} cycles/s wall |",
        f"| issue 4 target | 1,000,000 cycles/s |",
        f"| start (build cached or not) | {r['start_s']:.0f} s |", "",
    ])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sim_board", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/mmfree-ecp5")
    ap.add_argument("--board", default="ulx3s-85f")
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args(argv)
    command = "python -m benchmarks.sim_board " + shlex.join(
        ["--model", args.model, "--board", args.board, "--tokens", str(args.tokens), "--runs", str(args.runs)])
    result = measure(args.model, args.board, args.tokens, args.runs, log=lambda s: print(s, file=sys.stderr))
    text = render(result, command)
    print(text)
    if not args.no_write:
        replace_section(args.out, TITLE, text)


if __name__ == "__main__":
    main()
