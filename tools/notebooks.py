"""Keep the book's notebooks tidy.

    python tools/notebooks.py strip book/*.ipynb       drop outputs (keep NBVAL_CHECK_OUTPUT cells')
    python tools/notebooks.py repository URL           point the book at another repository

The repository URL lives in ``_config.yml`` (``repository.url``): the Colab
buttons follow it, and so must every chapter's set-up cell, which installs
minidraw from that repository when it is missing (on Colab), and
``minidraw.pretrained.BASE_URL``, where missing weights are downloaded from.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEEP = "NBVAL_CHECK_OUTPUT"
URL_RE = re.compile(r"^  url: (\S+)$", re.M)


def configured_repository() -> str:
    return URL_RE.search((ROOT / "_config.yml").read_text()).group(1)


def strip(path: Path) -> bool:
    """Remove outputs and execution counts, except from cells marked NBVAL_CHECK_OUTPUT."""
    nb = json.loads(path.read_text())
    before = json.dumps(nb)
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        if KEEP not in "".join(cell["source"]):  # nbval needs a checked cell's count and outputs
            cell["outputs"] = []
            cell["execution_count"] = None
        cell["metadata"].pop("execution", None)
    nb["metadata"].pop("widgets", None)
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    path.write_text(text)
    return json.dumps(json.loads(text)) != before


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


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "strip":
        for p in sys.argv[2:]:
            if strip(Path(p)):
                print(f"stripped {p}")
    elif len(sys.argv) == 3 and sys.argv[1] == "repository":
        set_repository(sys.argv[2])
    else:
        raise SystemExit(__doc__)
