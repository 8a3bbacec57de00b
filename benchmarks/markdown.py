"""BENCHMARKS.md is written by several benchmarks, each owning one ``## `` section."""

from __future__ import annotations

import re
from pathlib import Path

HEADER = """# Benchmarks

Every figure below names the command that produced it; rerun the command to reproduce it.

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
