"""Where a build misses its clock: nextpnr's timing report, read as a list of late registers.

``python -m host.timing BUILD_DIR [--over NS] [--top N] [--json]`` reads ``report.json`` in a
build folder (``mmfree build`` asks nextpnr for ``--detailed-timing-report``) and prints:

- the critical path, one line per step (clock-to-out, logic, routing, setup) with its cell, net
  and tile, so a path that crosses the die shows as a long routing step between far tiles;
- the late endpoints: every flip-flop or block RAM input whose data arrive after ``--over`` ns
  (default: the period of the core clock, the one `mmfree build` reports), grouped by the register they belong to (the name
  Yosys gives the flip-flop, less the ``_TRELLIS_FF_Q...`` suffix and bit indices), worst first.

One seed's list is one placement's: with the worst paths gone, the next ones move from seed to
seed, so compare builds by the number of late endpoints as well as by fmax.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

__all__ = ["load_report", "critical_path", "late_endpoints", "register_of", "main"]

# Yosys and nextpnr append these to a flip-flop's or a RAM's name; what is left names the register.
_CELL_SUFFIX = re.compile(r"(_TRELLIS_FF_Q|_SB_DFF\w*_Q|_DP16KD|_SB_RAM40_4K|\$)\S*$")
_BIT_INDEX = re.compile(r"[._]?\[?\d+\]?$")


def load_report(path: Path) -> dict:
    """nextpnr's ``--report`` JSON from a build folder or the file itself; ValueError if absent
    or without the detailed timing this module reads."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"no nextpnr report at {path}: run mmfree build first") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not a complete JSON report ({exc}); did nextpnr finish?") from None
    if "critical_paths" not in report:
        raise ValueError(f"{path} has no critical paths: not a nextpnr --report file")
    return report


def register_of(cell: str) -> str:
    """The register a flip-flop or RAM cell belongs to: ``engine.tmv.acc_TRELLIS_FF_Q_12`` ->
    ``engine.tmv.acc``."""
    name = _CELL_SUFFIX.sub("", cell)
    while True:
        shorter = _BIT_INDEX.sub("", name)
        if shorter == name or not shorter:
            return name
        name = shorter


def critical_path(report: dict, clock: str | None = None) -> list[dict]:
    """The steps of the worst path of ``clock`` (default: the one with the most delay)."""
    paths = [p for p in report["critical_paths"]
             if clock is None or clock in (p.get("from", ""), p.get("to", ""))]
    if not paths:
        return []
    worst = max(paths, key=lambda p: sum(step["delay"] for step in p["path"]))
    return worst["path"]


def late_endpoints(report: dict, over_ns: float) -> list[tuple[str, float, int]]:
    """``(register, worst arrival ns, endpoints)`` of every register with an input arriving after
    ``over_ns``, worst first. Needs nextpnr's ``--detailed-timing-report``."""
    nets = report.get("detailed_net_timings")
    if nets is None:
        raise ValueError("the report has no detailed_net_timings: nextpnr ran without "
                         "--detailed-timing-report (mmfree build adds it)")
    worst: dict[str, float] = {}
    count: collections.Counter = collections.Counter()
    for net in nets:
        for end in net.get("endpoints", ()):
            delay = end.get("delay")
            arrival = max(delay) if isinstance(delay, list) else delay
            if arrival is None or arrival <= over_ns:
                continue
            reg = register_of(end["cell"])
            count[reg] += 1
            worst[reg] = max(worst.get(reg, 0.0), arrival)
    return sorted(((r, worst[r], count[r]) for r in worst), key=lambda t: -t[1])


def _period_ns(report: dict) -> float | None:
    """The core clock's period, the clock ``mmfree build`` reports fmax for (its rule)."""
    from host.build import _pick_core_clock

    fmax = report.get("fmax") or {}
    clock = _pick_core_clock(fmax)
    constraint = fmax[clock].get("constraint") if clock is not None else None
    return 1000.0 / constraint if constraint else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m host.timing", description=__doc__.splitlines()[0])
    p.add_argument("build", type=Path, help="build folder (or its report.json)")
    p.add_argument("--over", type=float, default=None,
                   help="list endpoints arriving after this many ns (default: the core clock's period)")
    p.add_argument("--top", type=int, default=40, help="registers to list (default 40)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    args = p.parse_args(argv)
    try:
        report = load_report(args.build)
        over = args.over if args.over is not None else _period_ns(report)
        if over is None:
            raise ValueError("the report has no constrained core clock (clk): give --over NS")
        late = late_endpoints(report, over)
    except ValueError as exc:
        print(f"host.timing: error: {exc}", file=sys.stderr)
        return 1
    path = critical_path(report)
    fmax = {k: round(v["achieved"], 2) for k, v in (report.get("fmax") or {}).items()}
    if args.json:
        print(json.dumps(dict(fmax_mhz=fmax, over_ns=over, late_endpoints=sum(n for _, _, n in late),
                              late_registers=[dict(register=r, arrival_ns=round(a, 3), endpoints=n)
                                              for r, a, n in late[:args.top]],
                              critical_path=path)))
        return 0
    print("fmax: " + ", ".join(f"{k} {v} MHz" for k, v in fmax.items()))
    total = 0.0
    print("critical path:")
    for step in path:
        total += step["delay"]
        where = step["to"]
        net = f" net {step['net']}" if step.get("net") else ""
        print(f"  {total:7.3f} ns  +{step['delay']:.3f} {step['type']:9s} -> {where['cell']}.{where['port']} "
              f"at {tuple(where['loc'])}{net}")
    print(f"{sum(n for _, _, n in late):,} endpoints in {len(late):,} registers arrive after {over:.2f} ns:")
    for reg, arrival, n in late[:args.top]:
        print(f"  {arrival:7.3f} ns  {n:5d}  {reg}")
    if len(late) > args.top:
        print(f"  ... {len(late) - args.top} more registers (--top)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
