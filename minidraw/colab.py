"""Where the book's notebooks read and write, on Colab and off it.

* :func:`on_colab` — is this a Google Colab kernel?
* :func:`run_dir` — where a training cell keeps its run directory: on Google Drive when Drive is
  mounted on Colab, so that a disconnected session resumes the run instead of restarting it
  (``minidraw`` never mounts Drive itself: run ``from google.colab import drive;
  drive.mount("/content/drive")`` first), else ``runs/NAME`` in the working directory.
* :func:`book_file` — a file that ships with the book (``checkpoints/...``), looked up beside the
  notebooks rather than in the working directory; ``None`` where it is absent, as on Colab.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

__all__ = ["on_colab", "run_dir", "book_file", "DRIVE", "BOOK_ENV"]

#: Where Colab mounts "My Drive" with ``drive.mount("/content/drive")``.
DRIVE = Path("/content/drive/MyDrive")
#: An environment variable naming the folder that holds the book's notebooks (``book/``).
BOOK_ENV = "MINIDRAW_BOOK"


def on_colab() -> bool:
    """True inside a Google Colab kernel (which imports ``google.colab`` at start-up)."""
    return "google.colab" in sys.modules


def run_dir(name: str) -> Path:
    """The run directory for the training run ``name``.

    ``DRIVE/minidraw/runs/NAME`` on Colab when Google Drive is mounted (the run, and its
    checkpoint, outlive the session: running the cell again resumes it), else ``runs/NAME``
    relative to the working directory. Nothing is created or mounted here.
    """
    if on_colab() and DRIVE.is_dir():
        return DRIVE / "minidraw" / "runs" / name
    return Path("runs") / name


def _book_dirs() -> list[Path]:
    """Where the book's notebooks may be, most specific first: ``$MINIDRAW_BOOK``, the ``book/``
    folder of the source checkout this package was imported from, the working directory."""
    dirs = [Path(os.environ[BOOK_ENV]).expanduser()] if os.environ.get(BOOK_ENV) else []
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "_toc.yml").is_file() and (checkout / "book").is_dir():
        dirs.append(checkout / "book")
    dirs.append(Path.cwd())
    return dirs


def book_file(relative: str | os.PathLike) -> Optional[Path]:
    """The book's file or folder ``relative`` (to the notebooks' folder, e.g.
    ``"checkpoints/classifiers"``), as an absolute path; ``None`` when it is absent.

    It is looked for in the folder ``$MINIDRAW_BOOK`` names, then in the ``book/`` folder of the
    source checkout minidraw was imported from (an editable install), then in the working
    directory. On Colab, where only the notebook is opened, the book's files are absent.
    """
    for folder in _book_dirs():
        path = folder / relative
        if path.exists():
            return path.resolve()
    return None
