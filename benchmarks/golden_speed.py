"""Golden-model tokens/s on one CPU core.

    python -m benchmarks.golden_speed [--model models/mmfree-ecp5] [--tokens 32] [--runs 5] [--no-write]

Steps the float reference (``golden.float_model.FloatModel.step``) and the bit-exact model
(``golden.bitexact.BitExactModel.step``) token by token from the zero state over the bytes of a
fixed text, timed with ``time.perf_counter``; each run is ``--tokens`` steps, the figure is the
median of ``--runs`` runs (min and max beside it). One core: the measurement runs in a child
process pinned to one CPU (``os.sched_setaffinity``) with ``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` set to 1 before NumPy loads. Wall-clock: it depends
on the machine and on what else runs on it. Writes "## Golden model on one CPU core (issue 6)".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .markdown import replace_section

ROOT = Path(__file__).resolve().parent.parent
TITLE = "## Golden model on one CPU core (issue 6)"
TEXT = b"def main(argv=None):\n    return 0\n"
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _child(model_dir, tokens, runs):
    """Runs in the pinned child: seconds of each run, per model kind."""
    from golden.bitexact import BitExactModel
    from golden.float_model import FloatModel

    ids = [TEXT[k % len(TEXT)] for k in range(tokens)]
    out = {}
    for kind, model in (("float", FloatModel.from_pretrained(model_dir)),
                        ("bitexact", BitExactModel.from_pretrained(model_dir))):
        times = []
        for _ in range(runs + 1):   # the first run warms up and is dropped
            state = model.init_state()
            t0 = time.perf_counter()
            for tok in ids:
                result = model.step(tok, state)
                state = result[-1]
            times.append(time.perf_counter() - t0)
        out[kind] = times[1:]
    return out


def measure(model_dir, tokens: int, runs: int) -> dict:
    env = {**os.environ, **{v: "1" for v in THREAD_VARS}}
    code = ("import json, os, sys; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]}); "
            "from benchmarks.golden_speed import _child; "
            f"print(json.dumps(_child({str(model_dir)!r}, {tokens}, {runs})))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def render(times: dict, model: str, tokens: int, command: str) -> str:
    import numpy as np

    lines = [TITLE, "", f"Command: `{command}`", "",
             f"{model}: token steps from the zero state, {tokens} per run, one process pinned to one CPU, "
             f"{', '.join(THREAD_VARS)} = 1; median of {len(next(iter(times.values())))} runs after a warm-up "
             f"run (wall clock; {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
             f"NumPy {np.__version__}; a shared 2-core machine: other jobs slow it down).", "",
             "| model | tokens/s (median) | min .. max | ms per token |", "|---|--:|--:|--:|"]
    names = {"float": "float reference (`FloatModel.step`, float32)",
             "bitexact": "bit-exact model (`BitExactModel.step`)"}
    for kind, ts in times.items():
        rates = [tokens / t for t in ts]
        med = statistics.median(rates)
        lines.append(f"| {names[kind]} | **{med:,.0f}** | {min(rates):,.0f} .. {max(rates):,.0f} | {1e3 / med:.2f} |")
    return "\n".join(lines + [""])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.golden_speed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/mmfree-ecp5")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args(argv)
    command = "python -m benchmarks.golden_speed " + shlex.join(
        ["--model", args.model, "--tokens", str(args.tokens), "--runs", str(args.runs)])
    times = measure(ROOT / args.model, args.tokens, args.runs)
    text = render(times, args.model, args.tokens, command)
    print(text)
    if not args.no_write:
        replace_section(args.out, TITLE, text)


if __name__ == "__main__":
    main()
