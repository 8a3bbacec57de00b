"""The performance regression check: re-measure, compare with benchmarks/recorded.json.

    python -m benchmarks.regression              # re-measure and compare; exit 1 on a worsening
    python -m benchmarks.regression --record     # re-measure and record (after an intended change)
        [--boards ulx3s-85f icebreaker] [--no-synth]

What is measured (and what tests/test_benchmark_regression.py re-measures in CI):

* per board, the board's token engine (``hw.boards.BOARDS[...].engine``: ``hw.engine.TokenEngine``
  on the ULX3S, ``hw.compact.engine.CompactEngine`` on the iCEBreaker) for the board's shipped
  model (``benchmarks.boards.MODELS``) at the board's lane count, in the Amaranth simulator, one token
  from the zero state (``benchmarks.engine.measure``; cycle counts are exact): cycles per token
  and lane utilisation (weight words / cycles of the step);
* the Yosys resources (``synth_ecp5``, no place and route) of the token engine for the small test
  model (``sim.engine_model.tiny_engine_model``, d = 16, 10 lanes): LUT4 (a CCU2C counted as two,
  as ``host.build`` does), flip-flops, block RAMs. The whole device is not re-synthesised here (a
  place and route of the ECP5 build takes about 20 minutes); its recorded build
  (``python -m benchmarks.boards``) is only checked for consistency by the test.

A figure is worse when it moves the wrong way by more than ``TOLERANCE`` (5%, relative): cycles
and resources up, utilisation down. Improvements never fail; an improvement beyond the tolerance
is reported so that the record can be refreshed with ``--record``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from hw.boards import BOARDS

from . import record
from .boards import MODELS

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 0.05
RECORD_COMMAND = "python -m benchmarks.regression --record"
#: figure -> +1 when a larger value is worse, -1 when a smaller value is worse
DIRECTION = {"cycles_per_token": +1, "lane_utilisation": -1, "lut": +1, "ff": +1, "ebr": +1}
SYNTH_KEY = "engine_tiny_ecp5"


def measure_engine(board: str, model: str | None = None, lanes: int | None = None, progress=None):
    """(figures, raw ``benchmarks.engine.measure`` result) of one token of the board's engine."""
    from .engine import figures, measure

    model = model or MODELS[board]
    lanes = lanes or BOARDS[board].lanes
    engine = BOARDS[board].engine
    result = measure(ROOT / model, lanes, 1, progress=progress or (lambda s: None), engine=engine)
    fig = figures(result)
    return {"board": board, "model": model, "engine": engine, "lanes": lanes, "tokens": 1,
            "layout": result["layout"].describe(),
            "ternary_weights": result["layout"].ternary_weights, **fig}, result


def measure_synth(workdir=None, progress=None) -> dict:
    """Yosys ``synth_ecp5`` resources of the token engine for the small test model."""
    from golden.image import DeviceLayout
    from hw.engine import TokenEngine
    from sim.engine_model import TINY_LANES, tiny_engine_model

    from .synth import synth_resources

    config, _device = tiny_engine_model()
    layout = DeviceLayout(config, TINY_LANES)
    with tempfile.TemporaryDirectory() as tmp:
        res = synth_resources(SYNTH_KEY, lambda: TokenEngine(layout), "ecp5", workdir or tmp,
                              progress=progress)
    return {"design": f"hw.engine.TokenEngine, sim.engine_model.tiny_engine_model(), {TINY_LANES} lanes",
            "layout": layout.describe(), "lut": res.lut_with_carry, "lut4": res.lut,
            "ccu2c": res.carry, "ff": res.ff, "ebr": res.ebr, "dsp": res.dsp,
            "cells": {k: v for k, v in sorted(res.cells.items()) if not k.startswith("$")},
            "yosys_s": round(res.yosys_s, 1), "notes": res.notes}


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.4g}"


def compare(recorded: dict, measured: dict, tolerance: float = TOLERANCE):
    """(worse, better): one message per figure of ``DIRECTION`` present in both that moved the
    wrong way (worse) or the right way (better) by more than ``tolerance`` of the recorded value."""
    worse, better = [], []
    for name, sign in DIRECTION.items():
        if name not in recorded or name not in measured:
            continue
        old, new = float(recorded[name]), float(measured[name])
        change = (new - old) / old if old else (0.0 if new == old else float("inf"))
        text = f"{name}: {_fmt(new)} against {_fmt(old)} recorded ({change:+.1%})"
        if sign * change > tolerance:
            worse.append(text)
        elif -sign * change > tolerance:
            better.append(text)
    return worse, better


def record_all(boards, synth: bool = True, log=print) -> dict:
    """Measure every case afresh (each board's model and lanes) and record it; returns
    ``{board: benchmarks.engine.measure result}`` for the engine cases."""
    results = {}
    for board in boards:
        measured, results[board] = measure_engine(board, progress=log)
        record.update("engine", board, record.stamp(measured, RECORD_COMMAND))
        log(f"engine/{board}: recorded " + ", ".join(f"{n} {_fmt(measured[n])}" for n in DIRECTION if n in measured))
    if synth:
        measured = measure_synth(progress=log)
        record.update("synth", SYNTH_KEY, record.stamp(measured, RECORD_COMMAND))
        log(f"synth/{SYNTH_KEY}: recorded " + ", ".join(f"{n} {_fmt(measured[n])}" for n in DIRECTION if n in measured))
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.regression", description=__doc__.split("\n\n")[0])
    ap.add_argument("--record", action="store_true", help="write the measured figures into benchmarks/recorded.json")
    ap.add_argument("--boards", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--no-synth", action="store_true", help="skip the Yosys run (about a minute)")
    args = ap.parse_args(argv)
    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    if args.record:
        record_all(args.boards, not args.no_synth, log)
        return 0
    recorded = record.load()
    failed = False
    jobs = [("engine", b) for b in args.boards] + ([] if args.no_synth else [("synth", SYNTH_KEY)])
    for group, key in jobs:
        old = recorded.get(group, {}).get(key)
        if not old:
            print(f"{group}/{key}: nothing recorded; run {RECORD_COMMAND}")
            failed = True
            continue
        if group == "engine":  # the check re-measures what was recorded: same model, same lanes
            measured, _ = measure_engine(key, old["model"], old["lanes"], progress=log)
        else:
            measured = measure_synth(progress=log)
        worse, better = compare(old, measured)
        for text in worse:
            print(f"{group}/{key}: WORSE {text}")
        for text in better:
            print(f"{group}/{key}: better {text}; if intended, re-record: {RECORD_COMMAND}")
        if not worse and not better:
            print(f"{group}/{key}: within {TOLERANCE:.0%} of the record")
        failed |= bool(worse)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
