"""A byte-level text corpus available offline on every machine: the Python standard library.

The corpus is the source of every ``*.py`` file under ``sysconfig.get_paths()["stdlib"]`` of the
running interpreter, excluding test suites and third-party packages: a file is dropped when any
directory component of its path (relative to the stdlib root) is ``site-packages``, ``test``,
``tests`` or ``idle_test`` (this covers ``test/``, ``idlelib/idle_test/``, ``lib2to3/tests/``,
``unittest/test/``, ``ctypes/test/`` ...).

Files are ordered by their relative POSIX path. A file is *held out* when
``zlib.crc32(relpath.encode()) % 20 == 0`` (about 5 % of files), otherwise it is *train*. A split
is the plain concatenation of its files' raw bytes in that order, with nothing between files (a
file normally ends with a newline, so a boundary looks like the start of a new module).

The contents depend on the Python version (and patch level), so results should quote
``corpus_fingerprint()``.

numpy only: this module is used at evaluation time, where torch may be absent.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import sysconfig
import zlib
from pathlib import Path

import numpy as np

EXCLUDED_DIRS = frozenset({"site-packages", "test", "tests", "idle_test"})
HELDOUT_MODULUS = 20
SPLITS = ("train", "heldout")


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@functools.lru_cache(maxsize=1)
def _stdlib_files() -> tuple[tuple[str, Path], ...]:
    root = stdlib_root()
    found = []
    for path in root.rglob("*.py"):
        if not path.is_file():
            continue
        rel = path.relative_to(root)
        if any(part in EXCLUDED_DIRS for part in rel.parts[:-1]):
            continue
        found.append((rel.as_posix(), path))
    found.sort(key=lambda item: item[0])
    return tuple(found)


def stdlib_files() -> list[tuple[str, Path]]:
    """Sorted ``(relative POSIX path, absolute Path)`` of every corpus file."""
    return list(_stdlib_files())


def is_heldout(relpath: str) -> bool:
    return zlib.crc32(relpath.encode()) % HELDOUT_MODULUS == 0


def split_files(name: str) -> list[tuple[str, Path]]:
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
    want_heldout = name == "heldout"
    return [(rel, p) for rel, p in _stdlib_files() if is_heldout(rel) == want_heldout]


def load_split(name: str, max_bytes: int | None = None) -> np.ndarray:
    """The split as one ``uint8`` array: its files' bytes concatenated in sorted order.

    ``max_bytes`` truncates the result (files past the limit are not read).
    """
    chunks = []
    total = 0
    for _, path in split_files(name):
        if max_bytes is not None and total >= max_bytes:
            break
        data = path.read_bytes()
        chunks.append(data)
        total += len(data)
    blob = b"".join(chunks)
    if max_bytes is not None:
        blob = blob[:max_bytes]
    return np.frombuffer(blob, dtype=np.uint8).copy()


@functools.lru_cache(maxsize=1)
def corpus_fingerprint() -> str:
    """Short sha256 (16 hex digits) over the Python version, file list and file sizes."""
    h = hashlib.sha256()
    h.update(f"python {sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}\n".encode())
    for rel, path in _stdlib_files():
        h.update(f"{rel}\t{path.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def describe() -> dict:
    """Summary for logs: fingerprint, Python version, file and byte counts per split."""
    out = {"fingerprint": corpus_fingerprint(), "python": sys.version.split()[0], "root": str(stdlib_root())}
    for name in SPLITS:
        files = split_files(name)
        out[f"{name}_files"] = len(files)
        out[f"{name}_bytes"] = sum(p.stat().st_size for _, p in files)
    return out
