"""Keep the book's notebooks tidy.

    python tools/notebooks.py strip book/*.ipynb       strip outputs with nbstripout (keep NBVAL_CHECK_OUTPUT cells')
    python tools/notebooks.py strip < IN > OUT         the same as a git clean filter (README: Contributing)
    python tools/notebooks.py setup-cells book/*.ipynb write every chapter's set-up cell for this release
    python tools/notebooks.py repository URL           point the book at another repository

The repository URL lives in ``_config.yml`` (``repository.url``) and the release in
``pyproject.toml`` (``project.version``): the Colab buttons follow the URL, and every chapter's
set-up cell installs minidraw from that repository at the release's tag, ``v<version>``, when it is
missing (on Colab). ``minidraw.pretrained.BASE_URL``, where missing weights are downloaded from,
follows the URL too.

Stripping is nbstripout's (``nbstripout.strip_output``), with the options below; a cell
whose source has ``# NBVAL_CHECK_OUTPUT`` gets ``"keep_output": true`` in its metadata, the mark
nbstripout keeps a cell's outputs by. The one thing nbstripout cannot do is keep the execution
count of those cells only (``--keep-count`` keeps every cell's or none): nbval refuses a cell with
outputs and no count ("Unrun reference cell has outputs"), so the counts of the other cells are
dropped here. Strip also writes Colab's GPU request into the notebook's metadata.
"""
from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEEP = "NBVAL_CHECK_OUTPUT"
URL_RE = re.compile(r"^  url: (\S+)$", re.M)

# nbstripout's own default extra keys, plus Colab's per-cell output bookkeeping.
EXTRA_KEYS = ["metadata.signature", "metadata.widgets", "cell.metadata.collapsed", "cell.metadata.ExecuteTime",
              "cell.metadata.execution", "cell.metadata.heading_collapsed", "cell.metadata.hidden",
              "cell.metadata.scrolled", "cell.metadata.colab", "cell.metadata.outputId"]
# What Colab writes when a notebook asks for a GPU (Runtime > Change runtime type > T4 GPU, then save).
COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}

SETUP_CELL = '''\
# Set-up (Colab-safe): install the minidraw release this book was written for when it is missing (e.g. on
# Colab). No -U: pip keeps the torch and ipywidgets already installed (pyproject's ranges admit Colab's).
import importlib.util, subprocess, sys
if importlib.util.find_spec("minidraw") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--upgrade-strategy", "only-if-needed",
                           "{spec}"])
if "google.colab" in sys.modules:
    import torch
    if not torch.cuda.is_available():
        print("No GPU: Runtime > Change runtime type > T4 GPU, or training runs slowly on the CPU.")'''


# --- The one repository and the one release ------------------------------------------------------

def configured_repository() -> str:
    return URL_RE.search((ROOT / "_config.yml").read_text()).group(1)


def release_version() -> str:
    """``project.version`` of pyproject.toml: the release the book is written for."""
    try:
        import tomllib
    except ModuleNotFoundError:              # Python < 3.11
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def release_tag() -> str:
    return f"v{release_version()}"


def install_spec() -> str:
    """What the set-up cells pip-install: the repository at the release's tag, not main."""
    return f"git+{configured_repository()}@{release_tag()}"


def setup_cell_source() -> str:
    return SETUP_CELL.replace("{spec}", install_spec())


# --- Reading and writing notebooks (nbformat, as nbstripout and Jupyter do) ----------------------

def _read(text: str):
    import nbformat
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        return nbformat.reads(text, as_version=nbformat.NO_CONVERT)


def _write(nb) -> str:
    import nbformat
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        text = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    return text if text.endswith("\n") else text + "\n"


def _rewrite(path: Path, change) -> bool:
    """Apply ``change`` (text -> text) to a file; True when its text changed."""
    before = path.read_text(encoding="utf-8")
    after = change(before)
    if after != before:
        path.write_text(after, encoding="utf-8")
    return after != before


# --- Strip -------------------------------------------------------------------------------------

def strip_text(text: str) -> str:
    """A notebook's text, stripped: nbstripout with cell ids and tags kept, outputs and execution
    counts kept only in cells marked NBVAL_CHECK_OUTPUT, widget state dropped; Colab asks for a GPU."""
    from nbstripout import strip_output

    nb = _read(text)
    for cell in nb.cells:
        if cell.cell_type == "code":
            if KEEP in "".join(cell.source):
                cell.metadata["keep_output"] = True          # nbstripout's mark: keep this cell's outputs
            else:
                cell.metadata.pop("keep_output", None)
    strip_output(nb, keep_output=False, keep_count=True, keep_id=True, extra_keys=EXTRA_KEYS)
    for cell in nb.cells:                                    # nbval needs a checked cell's count: keep only those
        if cell.cell_type == "code" and not cell.metadata.get("keep_output"):
            cell.execution_count = None
    nb.metadata["accelerator"] = COLAB_METADATA["accelerator"]
    nb.metadata.setdefault("colab", {}).update(COLAB_METADATA["colab"])
    return _write(nb)


def strip(path: Path) -> bool:
    """Strip one notebook in place (see :func:`strip_text`); True when it changed."""
    return _rewrite(Path(path), strip_text)


# --- Set-up cells ------------------------------------------------------------------------------

def setup_cell(text: str) -> str:
    """A notebook's text with its set-up cell (its first code cell) written for this release."""
    nb = _read(text)
    first = next((c for c in nb.cells if c.cell_type == "code"), None)
    if first is None or 'find_spec("minidraw")' not in "".join(first.source):
        raise SystemExit("the first code cell of a chapter must be its set-up cell (find_spec(\"minidraw\"))")
    first.source = setup_cell_source()
    return _write(nb)


def set_setup_cells(paths) -> list[Path]:
    return [Path(p) for p in paths if _rewrite(Path(p), setup_cell)]


def set_repository(url: str) -> None:
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise SystemExit(f"give the repository as https://github.com/OWNER/NAME, not {url!r}")
    old = configured_repository()
    files = [ROOT / "_config.yml", ROOT / "README.md", ROOT / "pyproject.toml",
             ROOT / "minidraw" / "pretrained.py",                   # BASE_URL: where the weights download from
             *sorted((ROOT / "book").glob("*.md")), *sorted((ROOT / "book").glob("*.ipynb"))]
    for f in files:
        text = f.read_text()
        if old in text:
            f.write_text(text.replace(old, url))
            print(f"{f.relative_to(ROOT)}: {old} -> {url}")
    for f in set_setup_cells(sorted((ROOT / "book").glob("*.ipynb"))):   # and each set-up cell, whole
        print(f"{f.relative_to(ROOT)}: set-up cell rewritten")


if __name__ == "__main__":
    if sys.argv[1:] == ["strip"]:                            # a git clean filter: stdin -> stdout
        sys.stdout.buffer.write(strip_text(sys.stdin.buffer.read().decode("utf-8")).encode("utf-8"))
    elif len(sys.argv) >= 3 and sys.argv[1] == "strip":
        for p in sys.argv[2:]:
            if strip(Path(p)):
                print(f"stripped {p}")
    elif len(sys.argv) >= 3 and sys.argv[1] == "setup-cells":
        for p in set_setup_cells(sys.argv[2:]):
            print(f"{p}: set-up cell installs {install_spec()}")
    elif len(sys.argv) == 3 and sys.argv[1] == "repository":
        set_repository(sys.argv[2])
    else:
        raise SystemExit(__doc__)
