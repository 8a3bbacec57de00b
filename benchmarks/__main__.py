"""Regenerate BENCHMARKS.md, docs/img/scaling.png and benchmarks/recorded.json in one command.

    python -m benchmarks [--fast] [--skip STEP ...] [--only STEP ...]

Steps, in order (each is the named module's own command; ``--skip`` leaves its section as it is):

  engine      cycles per token of each board's engine, recorded (python -m benchmarks.regression
              --record) and the "Token engine cycles" section (python -m benchmarks.engine)  ~2 min
  scaling     cycles per token against lanes and model size, bounds, chart, ternary unit LUTs
              (python -m benchmarks.scaling)                                               ~15 min
  golden      golden-model tokens/s on one core (python -m benchmarks.golden_speed)          ~1 min
  sim-board   simulated board speed, link efficiency (python -m benchmarks.sim_board)        ~5 min
  synth       every block through Yosys and nextpnr (python -m benchmarks.synth)            ~10 min
  boards      whole-device builds (python -m benchmarks.boards)                 ~20 min per board
  summary     per-board table and the anchors (python -m benchmarks.summary, from the record)

``--fast`` skips the slow ones (sim-board, synth, boards) and the Yosys runs of the engine and
scaling steps. Times are for a free 2-core machine. ``engine`` re-records benchmarks/recorded.json,
the baseline of tests/test_benchmark_regression.py: check its diff before committing it.
"""

from __future__ import annotations

import argparse
import sys
import time

STEPS = ("engine", "scaling", "golden", "sim-board", "synth", "boards", "summary")
SLOW = ("sim-board", "synth", "boards")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--fast", action="store_true", help=f"skip {', '.join(SLOW)} and the Yosys runs")
    ap.add_argument("--skip", nargs="+", choices=STEPS, default=[])
    ap.add_argument("--only", nargs="+", choices=STEPS, default=None)
    args = ap.parse_args(argv)
    skip = set(args.skip) | (set(SLOW) if args.fast else set())
    steps = [s for s in STEPS if s not in skip and (args.only is None or s in args.only)]
    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    known = {}
    for name in steps:
        t0 = time.monotonic()
        log(f"== {name}")
        if name == "engine":
            from . import engine, regression, scaling
            from .markdown import replace_section

            results = regression.record_all(list(regression.MODELS), synth=not args.fast, log=log)
            ecp5 = results["ulx3s-85f"]
            lay = ecp5["layout"]
            command = f"python -m benchmarks.engine --model {scaling.MODEL} --lanes {lay.lanes} --tokens 1"
            replace_section(engine.ROOT / "BENCHMARKS.md", engine.TITLE, engine.render(ecp5, command))
            known[(scaling.MODEL, lay.lanes)] = scaling.as_point(ecp5, scaling.MODEL)
        elif name == "scaling":
            from . import scaling
            scaling.main(["--no-synth"] if args.fast else [], known=known)
        elif name == "golden":
            from . import golden_speed
            golden_speed.main([])
        elif name == "sim-board":
            from . import sim_board
            sim_board.main([])
        elif name == "synth":
            from . import synth
            synth.main([])
        elif name == "boards":
            from . import boards
            boards.main([])
        elif name == "summary":
            from . import summary
            summary.main([])
        log(f"== {name}: {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
