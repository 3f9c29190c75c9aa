"""The book's own invariants: every chapter is in the table of contents, committed
without bulky outputs, and installs minidraw from the one configured repository."""
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import notebooks  # noqa: E402

CHAPTERS = sorted((REPO / "book").glob("*.ipynb"))


def test_every_chapter_is_in_the_toc():
    toc = (REPO / "_toc.yml").read_text()
    listed = set(re.findall(r"file: (\S+)", toc)) | set(re.findall(r"root: (\S+)", toc))
    for nb in CHAPTERS:
        assert f"book/{nb.stem}" in listed, f"{nb.name} is not in _toc.yml"
    for entry in listed:
        assert any((REPO / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), entry


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_committed_stripped(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "NBVAL_CHECK_OUTPUT" not in "".join(cell["source"]):
            assert cell["outputs"] == [], f"{path.name}: run `make strip` before committing"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_setup_cell_installs_from_the_configured_repository(path):
    first_code = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    source = "".join(first_code["source"])
    assert "find_spec(\"minidraw\")" in source, f"{path.name}: the first code cell must be the set-up cell"
    assert f"git+{notebooks.configured_repository()}" in source


def test_strip_keeps_only_checked_outputs(tmp_path):
    nb = {"cells": [
        {"cell_type": "code", "source": ["# NBVAL_CHECK_OUTPUT\nprint(1)"], "outputs": [{"x": 1}],
         "execution_count": 3, "metadata": {}},
        {"cell_type": "code", "source": ["print(2)"], "outputs": [{"y": 2}], "execution_count": 4,
         "metadata": {"execution": {}}},
        {"cell_type": "markdown", "source": ["hi"], "metadata": {}},
    ], "metadata": {"widgets": {}}, "nbformat": 4, "nbformat_minor": 5}
    p = tmp_path / "n.ipynb"
    p.write_text(json.dumps(nb))
    assert notebooks.strip(p)
    out = json.loads(p.read_text())
    assert out["cells"][0]["outputs"] == [{"x": 1}] and out["cells"][0]["execution_count"] == 3
    assert out["cells"][1]["outputs"] == [] and out["cells"][1]["execution_count"] is None
    assert out["cells"][1]["metadata"] == {} and "widgets" not in out["metadata"]
    assert not notebooks.strip(p)  # idempotent
