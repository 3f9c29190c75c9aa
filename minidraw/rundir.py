"""A run directory: ``checkpoint.pt``, ``metrics.jsonl`` and ``metrics.png``, and the lock that keeps it to one run.

A run holds ``.lock`` (``fcntl.flock``) from its start to its end. A second run given the same directory is
refused at once, naming the process that holds it; the operating system releases the lock when the process
ends, however it ends (a ``kill -9`` too), so the next run in the directory resumes without asking.
"""
from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UserError

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
LOCK = ".lock"


class RunDirectoryBusy(UserError):
    """Another process is training in this run directory."""


def read_metrics(out: str | os.PathLike) -> list[dict]:
    """The rows of ``out/metrics.jsonl``, one dict per line (``[]`` when there is none)."""
    path = Path(out) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@contextmanager
def locked(out: str | os.PathLike) -> Iterator[Path]:
    """Hold the run directory ``out`` (created when missing) for the run inside; :class:`RunDirectoryBusy` when
    another process holds it, and a :class:`~minidraw.errors.UserError` when ``out`` is a file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder: give a folder for the run (it is created when missing)")
    out.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:                                     # not POSIX (Windows): no lock
        yield out
        return
    with open(out / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise RunDirectoryBusy(f"{out} is in use by another run (process {holder}): wait for it to end or stop "
                                   "it, or give another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        try:
            yield out
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
