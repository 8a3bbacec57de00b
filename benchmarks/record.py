"""benchmarks/recorded.json: the measured figures, machine-readable.

The benchmark commands that measure something other benchmarks or the regression test need write
it here as well as into BENCHMARKS.md:

* ``engine``: cycles per token, counters per token and lane utilisation of each regression case
  (``python -m benchmarks.regression --record``, also run by ``python -m benchmarks``);
* ``synth``: Yosys resources of the small engine the regression test re-synthesises;
* ``boards``: the last whole-device build per board (``python -m benchmarks.boards``).

Each entry carries the command that produced it and the commit it was measured at. The file is
committed: a change to it shows in review next to the change that caused it.
"""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH = ROOT / "benchmarks" / "recorded.json"
OUTPUTS = (":!benchmarks/recorded.json", ":!BENCHMARKS.md", ":!docs/img")  # git pathspecs excluded


def load(path=PATH) -> dict:
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


def commit() -> str:
    """The short commit of the work tree, with ``+dirty`` when it has uncommitted changes (other
    than to the benchmarks' own outputs, which the run itself rewrites)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no", "--", ".", *OUTPUTS) else "")


def stamp(entry: dict, command: str) -> dict:
    """``entry`` with the command, commit and date that produced it."""
    return {**entry, "command": command, "commit": commit(),
            "date": datetime.date.today().isoformat()}


def save(data: dict, path=PATH) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def update(group: str, key: str, entry: dict, path=PATH) -> None:
    """Set ``recorded[group][key] = entry`` and keep everything else."""
    data = load(path)
    data.setdefault(group, {})[key] = entry
    save(data, path)
