"""Argument types the benchmarks share: bad input is refused before any work starts."""

from __future__ import annotations

import argparse
from pathlib import Path

# The dev server's SQLite journal: SQLite's default as `shiprail dev` runs it (a rollback
# journal synced in full at every commit), or write-ahead logging synced at checkpoints
# (fewer fsyncs; a power cut may lose the last commits, https://www.sqlite.org/wal.html),
# to measure what that is worth before `shiprail dev` takes it.
JOURNALS: dict[str, tuple[str, ...]] = {"rollback": (), "wal": ("journal_mode=wal", "synchronous=normal")}


def positive(text: str) -> int:
    """A whole number of at least 1 (runs, rollouts, processes)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def output_file(text: str) -> Path:
    """Where results go: its folder must exist now, not after a run of many minutes."""
    path = Path(text)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"no folder {str(path.parent)!r} to write {path.name!r} in")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; name a file")
    return path
