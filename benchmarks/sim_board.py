"""The simulated board's speed and the serial link's efficiency.

    python -m benchmarks.sim_board [--model models/mmfree-ecp5] [--board ulx3s-85f] [--divisor N]
                                   [--tokens 16] [--runs 3] [--no-write]

Starts the simulated board (the device core under Verilator, ``sim.board``) for the model, uploads
the model through the host runtime, then runs ``--runs`` device generations of ``--tokens``
tokens. The UART runs at ``--divisor`` clock cycles per bit, by default the board's own: its core
clock over its baud rate from ``hw.boards.BOARDS`` (25 on the ULX3S: 75 MHz, 3 Mbaud), so the link
is measured at the board's line rate in clock cycles; the core is built for that divisor.

Simulated cycles come from the device's own ``cycles`` counter, so the link efficiency (payload
bytes over the bytes the line could carry in those cycles, 10 bits per byte at the divisor's
clocks per bit) is exact, and so are the generation figures: busy cycles per token (the engine),
and the device-generate rate, (cycles of an n-token GENERATE - cycles of a 1-token GENERATE) /
(n - 1), which leaves out the fixed cost of the command and counter frames; both are converted to
tokens per second at the board's clock, next to the rate at which the line can carry the token
replies. Simulation speed (cycles per wall-clock second, and per CPU second of the simulator
process) is wall-clock and noisy on a shared machine: the median of the runs is reported. Writes
the section "## Simulated board (issue 4)" of BENCHMARKS.md.
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
from hw.boards import get_board, uart_divisor
from hw.top import core_for_board
from host import protocol as proto
from host.device import Device, open_transport
from host.protocol import crc32
from sim.board import SimBoard

from .markdown import replace_section

ROOT = Path(__file__).resolve().parent.parent
TITLE = "## Simulated board (issue 4)"
#: The fewest clock cycles per bit the UART takes (``hw.uart``).
MIN_DIVISOR = 4
#: The harness clocks the device in slices of this many cycles and services the socket between
#: them, so a command's start and end in cycles are known to within about one slice.
POLL_CYCLES = 1024


def board_divisor(board) -> int:
    """Clock cycles per UART bit on ``board`` (a name or a ``hw.boards.Board``): its core clock
    over its baud rate, rounded, as the board build computes it (``hw.boards.uart_divisor``)."""
    spec = get_board(board) if isinstance(board, str) else board
    return uart_divisor(spec.clock_mhz * 1e6, spec.baud)


def check_divisor(divisor) -> int:
    """``divisor`` if the UART takes it, else ValueError saying why."""
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < MIN_DIVISOR:
        raise ValueError(f"the UART divisor (clock cycles per bit) must be an integer >= {MIN_DIVISOR}, "
                         f"got {divisor!r}")
    return divisor


def token_reply_bytes() -> int:
    """Bytes on the wire of one streamed GENERATE token (no logits): a reply frame with its
    position and token."""
    return len(proto.encode_reply(proto.Reply(proto.Command.GENERATE, 1, proto.Status.TOKEN,
                                              bytes([1, 0, 1, 0]))))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(model_dir, board: str, tokens: int, runs: int, divisor: int, log=print) -> dict:
    if tokens < 2:
        raise ValueError(f"--tokens must be at least 2 (the device-generate rate is a difference "
                         f"of an n-token and a 1-token generation), got {tokens}")
    check_divisor(divisor)
    spec = get_board(board)
    model = BitExactModel.from_pretrained(model_dir)
    layout = DeviceLayout(model.config, spec.lanes)
    t0 = time.monotonic()
    with SimBoard(core_for_board(board, layout, divisor), divisor, name=f"mmfree_{board.replace('-', '_')}",
                  poll_cycles=POLL_CYCLES) as sim:
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
            # one token: the fixed cost of a GENERATE (its request, the final reply, the counter
            # frames around it) plus one step; then `tokens` tokens, timed
            device.reset()
            a = device.counters()
            one = sum(1 for _ in device.generate(ord("d"), 1))
            one_cycles = device.counters()["cycles"] - a["cycles"]
            device.reset()
            a = device.counters()
            wa, ua = time.monotonic(), _cpu_seconds(pid)
            produced = sum(1 for _ in device.generate(ord("d"), tokens))
            b = device.counters()
            wb, ub = time.monotonic(), _cpu_seconds(pid)
            if one != 1 or produced != tokens:
                raise SystemExit(f"GENERATE gave {one} and {produced} tokens for 1 and {tokens}")
            cycles = b["cycles"] - a["cycles"]
            gen.append({"cycles": cycles, "wall": wb - wa, "cpu": ub - ua, "tokens": produced,
                        "busy": b["busy_cycles"] - a["busy_cycles"], "one_cycles": one_cycles})
            log(f"generate: {produced} tokens in {cycles} cycles ({one_cycles} for 1 token), {wb - wa:.1f} s")
        transport.close()
    return {
        "layout": layout, "board": spec, "divisor": divisor, "start_s": start_s, "payload": payload,
        "upload_cycles": c1 - c0, "upload_wall": w1 - w0, "upload_cpu": u1 - u0,
        "verify_cycles": c_verify, "runs": gen,
    }


def figures(r) -> dict:
    """The section's derived figures from ``measure``'s result (exact ones from the device's
    counters; wall-clock ones as medians of the runs)."""
    divisor, clock_hz = r["divisor"], r["board"].clock_mhz * 1e6
    med = lambda key: statistics.median(run[key] for run in r["runs"])  # noqa: E731
    tokens = r["runs"][0]["tokens"]
    busy = med("busy") / tokens
    # (n-token GENERATE - 1-token GENERATE) / (n - 1): the fixed cost of the command cancels
    steady = statistics.median((run["cycles"] - run["one_cycles"]) / (run["tokens"] - 1) for run in r["runs"])
    reply_cycles = token_reply_bytes() * 10 * divisor
    return {
        "divisor": divisor, "clock_hz": clock_hz, "baud": clock_hz / divisor,
        "line_bytes_per_s": clock_hz / (10 * divisor),
        "efficiency": r["payload"] / (r["upload_cycles"] / (10 * divisor)),
        "upload_s_at_clock": r["upload_cycles"] / clock_hz,
        "busy_per_token": busy, "busy_tokens_per_s": clock_hz / busy,
        "whole_per_token": med("cycles") / tokens,
        "steady_per_token": steady, "steady_tokens_per_s": clock_hz / steady,
        "reply_cycles": reply_cycles, "link_tokens_per_s": clock_hz / reply_cycles,
        "speed_wall": statistics.median(run["cycles"] / run["wall"] for run in r["runs"]),
        "speed_cpu": statistics.median(run["cycles"] / run["cpu"] for run in r["runs"] if run["cpu"] > 0),
        "upload_speed_wall": r["upload_cycles"] / r["upload_wall"],
    }


def render(r, command: str) -> str:
    f = figures(r)
    board, tokens, mhz = r["board"], r["runs"][0]["tokens"], r["board"].clock_mhz
    own = board_divisor(board)
    which = (f"the {board.name}'s own: {mhz:g} MHz / {board.baud:,} baud" if f["divisor"] == own else
             f"not the {board.name}'s {own}")
    return "\n".join([
        TITLE, "",
        f"Command: `{command}`", "",
        f"The device core for {r['layout'].describe()} under Verilator (`sim.board`), UART at "
        f"{f['divisor']} clocks per bit ({which}; {f['baud'] / 1e6:.3f} Mbaud, "
        f"{f['line_bytes_per_s']:,.0f} bytes/s of 8N1 at the board's {mhz:g} MHz). "
        f"Simulated cycles from the device's `cycles` counter (exact; per second at {mhz:g} MHz); "
        f"speeds of the simulation are wall-clock on this shared 2-core machine, median of "
        f"{len(r['runs'])} runs. The harness services the socket every {POLL_CYCLES:,} cycles, so a "
        f"command's cycle count is known to about {POLL_CYCLES:,} cycles "
        f"({POLL_CYCLES / (tokens - 1):,.0f} per token in the device-generate rate).", "",
        "| figure | value |",
        "|---|---|",
        f"| upload payload (the whole model image) | {r['payload']:,} bytes |",
        f"| upload writes, simulated cycles | {r['upload_cycles']:,} ({f['upload_s_at_clock']:.2f} s at {mhz:g} MHz) |",
        f"| **link efficiency of the writes** (payload / line capacity in those cycles) | **{f['efficiency']:.1%}** |",
        f"| verification (CHECKSUM of every region), simulated cycles | {r['verify_cycles']:,} "
        f"({r['verify_cycles'] / r['upload_cycles']:.1%} of the writes) |",
        f"| busy cycles per token (device counters: the engine) | {f['busy_per_token']:,.0f}: "
        f"{f['busy_tokens_per_s']:,.0f} tokens/s at {mhz:g} MHz |",
        f"| **device-generate, cycles per token** ({tokens}-token GENERATE minus a 1-token one, "
        f"over {tokens - 1}) | **{f['steady_per_token']:,.0f}: {f['steady_tokens_per_s']:,.0f} tokens/s "
        f"at {mhz:g} MHz** |",
        f"| device-generate, whole command (counters read to counters read, over {tokens} tokens) | "
        f"{f['whole_per_token']:,.0f} cycles per token |",
        f"| link limit of device-generate ({token_reply_bytes()}-byte token reply frame) | "
        f"{f['reply_cycles']:,} cycles: {f['link_tokens_per_s']:,.0f} tokens/s |",
        f"| **simulation speed while generating** | **{f['speed_wall']:,.0f} cycles/s** wall, "
        f"{f['speed_cpu']:,.0f} per CPU second |",
        f"| simulation speed while uploading | {f['upload_speed_wall']:,.0f} cycles/s wall |",
        f"| issue 4 target | 1,000,000 cycles/s |",
        f"| start (build cached or not) | {r['start_s']:.0f} s |", "",
    ])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sim_board", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/mmfree-ecp5")
    ap.add_argument("--board", default="ulx3s-85f", help="board whose lanes, clock and baud rate to use")
    ap.add_argument("--divisor", type=int, default=None,
                    help=f"UART clock cycles per bit (>= {MIN_DIVISOR}; default: the board's, "
                         "round(clock / baud), 25 on ulx3s-85f)")
    ap.add_argument("--tokens", type=int, default=16, help="tokens per timed generation (>= 2)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args(argv)
    try:
        divisor = check_divisor(board_divisor(args.board) if args.divisor is None else args.divisor)
    except ValueError as e:
        ap.error(str(e))
    if args.tokens < 2:
        ap.error(f"--tokens must be at least 2, got {args.tokens}")
    if args.runs < 1:
        ap.error(f"--runs must be at least 1, got {args.runs}")
    print(f"UART divisor: {divisor} clock cycles per bit"
          + (" (the board's)" if args.divisor is None else ""), file=sys.stderr)
    command = "python -m benchmarks.sim_board " + shlex.join(
        ["--model", args.model, "--board", args.board]
        + ([] if args.divisor is None else ["--divisor", str(args.divisor)])
        + ["--tokens", str(args.tokens), "--runs", str(args.runs)])
    result = measure(args.model, args.board, args.tokens, args.runs, divisor,
                     log=lambda s: print(s, file=sys.stderr))
    text = render(result, command)
    print(text)
    if not args.no_write:
        replace_section(args.out, TITLE, text)


if __name__ == "__main__":
    main()
