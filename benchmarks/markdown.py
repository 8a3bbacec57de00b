"""BENCHMARKS.md is written by several benchmarks, each owning one ``## `` section."""

from __future__ import annotations

import re
from pathlib import Path

HEADER = """# Benchmarks

Every figure below names the command that produced it; rerun the command to reproduce it.
One command regenerates this file, the chart `docs/img/scaling.png` and the record
`benchmarks/recorded.json`:

```sh
python -m benchmarks            # everything: about an hour on a free 2-core machine
python -m benchmarks --fast     # without the simulated board, synthesis, board builds (~20 min)
python -m benchmarks --only summary   # one step; the steps and their times: --help
```

Each `## ` section belongs to one generator (`benchmarks/<name>.py`, written through
`benchmarks.markdown.replace_section`); text under a `### ... (written by hand)` heading is kept
only until its section is regenerated. Cycle counts are exact (Amaranth simulation), fmax and
utilisation come from nextpnr with a fixed seed, wall-clock figures are medians of several runs.
`tests/test_benchmark_regression.py` re-measures cycles per token and lane utilisation and fails
on a worsening beyond 5% against `benchmarks/recorded.json`; after an intended change, re-record
with `python -m benchmarks.regression --record` and commit the file.

"""


def replace_section(path, title: str, section: str) -> None:
    """Put ``section`` (starting with the line ``title``) in place of the section of that title,
    or append it; the rest of the file is kept."""
    path = Path(path)
    if not section.startswith(title + "\n"):
        raise ValueError(f"the section must start with its title line {title!r}")
    if not path.exists():
        path.write_text(HEADER + section)
        return
    text = path.read_text()
    start = text.find(title + "\n")
    if start < 0:
        path.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    nxt = re.search(r"^## ", text[start + len(title):], flags=re.M)
    end = len(text) if nxt is None else start + len(title) + nxt.start()
    rest = text[end:]
    path.write_text(text[:start] + section + ("\n" + rest if rest else ""))
