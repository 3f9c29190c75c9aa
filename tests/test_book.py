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


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")   # every control character but newline and tab


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_text_has_no_control_characters(path):
    """A cell written from a Python string that was not raw turns ``\\big`` into a backspace and ``\\text``
    into a tab; MathJax then shows "ig(" and "ext{...}". No cell has control characters, and no markdown
    cell a tab."""
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        source = "".join(cell["source"])
        bad = sorted({hex(ord(ch)) for ch in CONTROL.findall(source)})
        assert not bad, f"{path.name}, cell {i}: control characters {bad}"
        if cell["cell_type"] == "markdown":
            assert "\t" not in source, f"{path.name}, cell {i}: a tab in markdown (a \\t that lost its backslash?)"


# --- The set-up cell: this release, from the configured repository; Colab's GPU ------------------

def setup_cell_problems(source: str) -> list[str]:
    """What is wrong with a set-up cell: it must install the release the book is written for (the
    configured repository at tag v<pyproject version>, never main or another tag), keep the torch and
    ipywidgets already installed (no -U), and say in one line when Colab has no GPU."""
    if 'find_spec("minidraw")' not in source:
        return ['the first code cell must be the set-up cell (find_spec("minidraw"))']
    problems = []
    want = notebooks.install_spec()
    specs = re.findall(r"git\+[^\s\"']+", source)
    if specs != [want]:
        problems.append(f"installs {specs or 'nothing'}, not the release {want} "
                        f"(python tools/notebooks.py setup-cells book/*.ipynb)")
    for flag in ("-U", "--upgrade", "--force-reinstall", "--ignore-installed"):
        if re.search(rf"[\"']{flag}[\"']", source):
            problems.append(f"pip {flag} would replace Colab's torch and ipywidgets")
    if '"google.colab" in sys.modules' not in source or "torch.cuda.is_available()" not in source:
        problems.append("no warning when Colab has no GPU")
    elif len(re.findall(r"\bprint\(", source)) != 1:
        problems.append("the no-GPU warning is one print")
    return problems


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_setup_cell_installs_this_release_from_the_configured_repository(path):
    first_code = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    problems = setup_cell_problems("".join(first_code["source"]))
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


def test_the_release_is_the_configured_repository_at_pyprojects_version():
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert notebooks.release_tag() == f"v{version}"
    assert notebooks.install_spec() == f"git+{notebooks.configured_repository()}@v{version}"
    assert setup_cell_problems(notebooks.setup_cell_source()) == []


def test_the_setup_cell_check_catches_main_a_stale_tag_and_upgrades():
    good = notebooks.setup_cell_source()
    repo, spec, tag = notebooks.configured_repository(), notebooks.install_spec(), notebooks.release_tag()
    for wrong in (f"git+{repo}", f"git+{repo}@main", f"git+{repo}@v0.0.1", f"git+{repo}@{tag}.1",
                  f"git+https://github.com/someone/fork@{tag}"):
        assert any("not the release" in p for p in setup_cell_problems(good.replace(spec, wrong))), wrong
    assert any("-U" in p for p in setup_cell_problems(good.replace('"-q",', '"-q", "-U",')))
    assert any("no GPU" in p for p in setup_cell_problems(good.replace("google.colab", "google.colabx")))
    assert setup_cell_problems("import minidraw")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_asks_colab_for_a_gpu(path):
    meta = json.loads(path.read_text())["metadata"]
    assert meta.get("accelerator") == "GPU", f"{path.name}: run `make strip` (it writes Colab's GPU metadata)"
    assert {k: meta.get("colab", {}).get(k) for k in ("gpuType", "provenance")} == {"gpuType": "T4", "provenance": []}


# --- Strip: nbstripout, keeping the outputs nbval checks --------------------------------------------

def test_strip_keeps_only_checked_outputs(tmp_path):
    printed = {"name": "stdout", "output_type": "stream", "text": ["1\n"]}
    result = {"data": {"text/plain": ["2"]}, "execution_count": 4, "metadata": {}, "output_type": "execute_result"}
    widgets = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2, "version_minor": 0}}
    cells = [
        {"cell_type": "code", "source": ["# NBVAL_CHECK_OUTPUT\nprint(1)"], "outputs": [printed],
         "execution_count": 3, "metadata": {"tags": ["hide-input"]}},
        {"cell_type": "code", "source": ["1 + 1"], "outputs": [result], "execution_count": 4,   # once checked
         "metadata": {"execution": {"iopub.status.idle": "2026-01-01"}, "tags": ["hide-output"], "keep_output": True,
                      "colab": {"base_uri": "https://localhost:8080/"}}},
        {"cell_type": "markdown", "source": ["hi"], "metadata": {}},
    ]
    nb = {"cells": [{"id": f"c{i}", **c} for i, c in enumerate(cells)], "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"widgets": widgets, "kernelspec": {"display_name": "Python 3", "language": "python",
                                                          "name": "python3"}}}
    p = tmp_path / "n.ipynb"
    p.write_text(json.dumps(nb))
    assert notebooks.strip(p)
    checked, other, text = json.loads(p.read_text())["cells"]
    assert checked["outputs"] == [printed] and checked["execution_count"] == 3      # nbval compares these
    assert checked["metadata"] == {"tags": ["hide-input"], "keep_output": True}    # nbstripout's mark
    assert other["outputs"] == [] and other["execution_count"] is None             # a stale mark is removed
    assert other["metadata"] == {"tags": ["hide-output"]}                          # tags kept, the rest gone
    assert [c["id"] for c in (checked, other, text)] == ["c0", "c1", "c2"] and "".join(text["source"]) == "hi"
    meta = json.loads(p.read_text())["metadata"]
    assert "widgets" not in meta and meta["kernelspec"]["name"] == "python3"
    assert meta["accelerator"] == "GPU" and meta["colab"] == {"gpuType": "T4", "provenance": []}
    assert not notebooks.strip(p)  # idempotent


def test_strip_is_a_git_clean_filter():
    """`tools/notebooks.py strip` with no file reads stdin and writes stdout what `make strip` writes."""
    import subprocess
    path = next(p for p in CHAPTERS if "NBVAL_CHECK_OUTPUT" in p.read_text())
    text = path.read_text(encoding="utf-8")
    done = subprocess.run([sys.executable, str(REPO / "tools" / "notebooks.py"), "strip"], input=text.encode("utf-8"),
                          capture_output=True, check=True, cwd=REPO)
    assert done.stdout.decode("utf-8") == notebooks.strip_text(text)
    assert notebooks.strip_text(done.stdout.decode("utf-8")) == done.stdout.decode("utf-8")


# --- Cross-references: links between chapters, and "next / previous chapter" -------------------

def _toc_order() -> list[str]:
    """The book's files in reading order, as _toc.yml lists them (``intro``, ``data``, ...)."""
    toc = (REPO / "_toc.yml").read_text()
    entries = re.findall(r"root:\s*(\S+)", toc) + re.findall(r"file:\s*(\S+)", toc)
    return [e.split("/")[-1] for e in entries]


TOC = _toc_order()
CHAPTER_ORDER = TOC[1:]                       # the root page (intro) is not a chapter
LINK = re.compile(r"\[([^\]]+)\]\(\s*([^)\s]+)[^)]*\)")
# Singular: one neighbouring chapter. "last chapter" reads as "the previous chapter" here.
NEIGHBOUR = re.compile(r"\b(next|previous|last|preceding|following)\s+chapter\b(?!s)", re.I)
PLURAL = re.compile(r"\b(previous|earlier|preceding|later|following|next)\s+chapters\b", re.I)
BEFORE = {"previous", "last", "preceding", "earlier"}


def _markdown(name: str) -> str:
    nb = REPO / "book" / f"{name}.ipynb"
    if nb.exists():
        return "\n\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"]
                           if c["cell_type"] == "markdown")
    return (REPO / "book" / f"{name}.md").read_text()


def _local_links(text: str) -> list[tuple[str, str]]:
    """(link text, target file) for every link to a .ipynb or .md file of the book."""
    links = []
    for label, target in LINK.findall(text):
        path = target.split("#")[0]
        if re.match(r"^[a-z][a-z0-9+.-]*:", path) or not path.endswith((".ipynb", ".md")):
            continue
        links.append((" ".join(label.split()), path))
    return links


def _neighbour(name: str, word: str) -> str | None:
    k = CHAPTER_ORDER.index(name)
    j = k - 1 if word.lower() in BEFORE else k + 1
    return CHAPTER_ORDER[j] if 0 <= j < len(CHAPTER_ORDER) else None


def _target_name(target: str) -> str:
    return Path(target).stem


def _cross_reference_problems(name: str) -> list[str]:
    """What is wrong with the chapter's links and its 'next / previous chapter' phrases."""
    problems = []
    text = _markdown(name)
    for label, target in _local_links(text):
        resolved = (REPO / "book" / target).resolve()
        if not resolved.exists():
            problems.append(f"[{label}]({target}): no such file in book/")
        elif resolved.parent != (REPO / "book").resolve() or resolved.stem not in TOC:
            problems.append(f"[{label}]({target}): not a page of _toc.yml")
    if name not in CHAPTER_ORDER:
        return problems
    k = CHAPTER_ORDER.index(name)
    for label, target in _local_links(text):
        got = _target_name(target)
        if (m := NEIGHBOUR.search(label)) or re.search(r"\bnext\b", label, re.I) and not PLURAL.search(label):
            word = m.group(1) if m else "next"
            want = _neighbour(name, word)
            if got != want:
                problems.append(f"[{label}]({target}): the {word.lower()} chapter is {want}")
        elif m := PLURAL.search(label):
            before = m.group(1).lower() in BEFORE
            if got not in CHAPTER_ORDER or (CHAPTER_ORDER.index(got) < k) != before:
                problems.append(f"[{label}]({target}): {got} is not one of the {m.group(1).lower()} chapters")
    # Each 'next/previous chapter' phrase must link, in its own sentence, to that chapter.
    for paragraph in re.split(r"\n\s*\n", text):
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(paragraph.split())):
            for m in NEIGHBOUR.finditer(sentence):
                want = _neighbour(name, m.group(1))
                targets = [_target_name(t) for _, t in _local_links(sentence)]
                if want not in targets and not any(NEIGHBOUR.search(lab) for lab, _ in _local_links(sentence)):
                    problems.append(f'"{sentence[:110]}": the {m.group(1).lower()} chapter ({want}) is not linked')
    return problems


@pytest.mark.parametrize("name", TOC)
def test_cross_references_point_to_the_right_chapter(name):
    problems = _cross_reference_problems(name)
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


def test_cross_reference_check_catches_wrong_chapters(monkeypatch):
    """The check itself: a 'next chapter' link to the wrong chapter, an unlinked phrase, a missing file."""
    texts = {
        CHAPTER_ORDER[1]: f"The [next chapter]({CHAPTER_ORDER[3]}.ipynb) and [gone](nowhere.ipynb).",
        CHAPTER_ORDER[2]: "As the previous chapter showed, it works.",
        CHAPTER_ORDER[3]: f"As the [previous chapter]({CHAPTER_ORDER[2]}.ipynb) showed; "
                          f"the [next one]({CHAPTER_ORDER[4]}.ipynb) too.",
    }
    monkeypatch.setattr(sys.modules[__name__], "_markdown", lambda name: texts[name])
    wrong = _cross_reference_problems(CHAPTER_ORDER[1])
    assert any("the next chapter is" in p for p in wrong) and any("no such file" in p for p in wrong)
    assert any("is not linked" in p for p in _cross_reference_problems(CHAPTER_ORDER[2]))
    assert _cross_reference_problems(CHAPTER_ORDER[3]) == []


# --- Every chapter: an opener, and exercises with hidden, checked solutions -----------------------

def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _src(cell: dict) -> str:
    return "".join(cell["source"])


def opener_problems(cells: list[dict], name: str) -> list[str]:
    """The chapter opens with its title, then "About this chapter": what you learn, what you need
    first (earlier chapters only), how long it runs."""
    if len(cells) < 2 or cells[1]["cell_type"] != "markdown" or not _src(cells[0]).startswith("# "):
        return ["the title cell must be followed by the 'About this chapter' markdown cell"]
    text = _src(cells[1])
    problems = [f"the opener lacks {part}" for part in
                (":::{admonition} About this chapter", "**You will learn**", "**You need first**", "**Run time**")
                if part not in text]
    if re.search(r"\*\*Run time\*\*[^\n]*\d", text) is None:
        problems.append("the run time gives no measured figure")
    if name in CHAPTER_ORDER:
        for label, target in _local_links(text.split("**You need first**")[-1].split("**Run time**")[0]):
            if _target_name(target) not in TOC[: TOC.index(name)]:
                problems.append(f"'You need first' links to {target}, which is not an earlier chapter")
    return problems


def exercise_problems(cells: list[dict]) -> list[str]:
    """After '## Exercises': 3–5 '**Exercise k.**' cells, each followed by one code cell tagged
    hide-input that starts '# Solution to exercise k' and checks its result with assert."""
    starts = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and _src(c).startswith("## Exercises")]
    if len(starts) != 1:
        return ["one markdown cell must start with '## Exercises'"]
    problems, k = [], 0
    rest = cells[starts[0] + 1:]
    for i, cell in enumerate(rest):
        if cell["cell_type"] == "markdown" and _src(cell).startswith("**Exercise"):
            k += 1
            if not _src(cell).startswith(f"**Exercise {k}.**"):
                problems.append(f"exercise {k} is numbered wrong: {_src(cell)[:30]!r}")
            solution = rest[i + 1] if i + 1 < len(rest) else {"cell_type": None}
            if solution["cell_type"] != "code":
                problems.append(f"exercise {k} has no solution cell after it")
                continue
            code = _src(solution)
            if "hide-cell" not in solution.get("metadata", {}).get("tags", []):
                problems.append(f"exercise {k}: the solution cell is not tagged hide-cell (code and output hidden "
                                "behind one toggle: an answer printed under its question gives it away)")
            if not code.startswith(f"# Solution to exercise {k}"):
                problems.append(f"exercise {k}: the solution must start '# Solution to exercise {k}'")
            if not re.search(r"^\s*assert\b", code, re.M):
                problems.append(f"exercise {k}: the solution checks nothing (no assert)")
    if not 3 <= k <= 5:
        problems.append(f"{k} exercises; a chapter has 3–5")
    return problems


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_has_an_opener_and_checked_exercises(path):
    cells = _cells(path)
    problems = opener_problems(cells, path.stem) + exercise_problems(cells)
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


def test_the_structure_check_catches_a_bad_chapter():
    md = lambda s: {"cell_type": "markdown", "source": [s], "metadata": {}}  # noqa: E731
    code = lambda s, tags=(): {"cell_type": "code", "source": [s], "metadata": {"tags": list(tags)}}  # noqa: E731
    good = [md("# T"), md(":::{admonition} About this chapter\n**You will learn**\n**You need first**: nothing\n"
                          "**Run time**: about 2 minutes\n:::"), code("import x"), md("## Exercises")]
    for k in (1, 2, 3):
        good += [md(f"**Exercise {k}.** do it"), code(f"# Solution to exercise {k}\nassert 1 + 1 == 2", ["hide-cell"])]
    assert opener_problems(good, "x") == [] and exercise_problems(good) == []
    shown = good[:-1] + [code("# Solution to exercise 3\nassert True")]
    assert any("hide-cell" in p for p in exercise_problems(shown))
    input_only = good[:-1] + [code("# Solution to exercise 3\nassert True", ["hide-input"])]   # its output would show
    assert any("hide-cell" in p for p in exercise_problems(input_only))
    unchecked = good[:-1] + [code("# Solution to exercise 3\nprint(1)", ["hide-cell"])]
    assert any("checks nothing" in p for p in exercise_problems(unchecked))
    assert any("3–5" in p for p in exercise_problems(good[:-4]))
    assert opener_problems([good[0], md("no opener")], "x")
    later = [good[0], md(good[1]["source"][0].replace("nothing", f"[later]({CHAPTER_ORDER[-1]}.ipynb)"))]
    assert any("not an earlier chapter" in p for p in opener_problems(later, CHAPTER_ORDER[0]))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapters_pick_their_device_with_the_one_helper(path):
    """No per-notebook device rule: a chapter that needs a device asks minidraw.runtime.device()."""
    code = "\n".join(_src(c) for c in _cells(path) if c["cell_type"] == "code")
    assert "torch.cuda.is_available() else" not in code, f"{path.name}: use minidraw.runtime.device()"
    if "DEVICE =" in code:
        assert "DEVICE = device()" in code and "from minidraw.runtime import" in code


def test_one_figure_style_for_the_whole_book():
    """book/matplotlibrc is the book's style (matplotlib reads it from the chapters' working
    directory); it parses, and no chapter sets a global style of its own."""
    import matplotlib
    style = REPO / "book" / "matplotlibrc"
    params = matplotlib.rc_params_from_file(str(style), use_default_template=False)
    assert params["axes.spines.top"] is False and params["image.interpolation"] == "nearest"
    for path in CHAPTERS:
        code = "\n".join(_src(c) for c in _cells(path) if c["cell_type"] == "code")
        assert "plt.style.use" not in code and "rcParams[" not in code and "mpl.rc(" not in code, path.name


def test_diagrams_are_drawn_by_tools_diagrams_py(tmp_path):
    """book/figures/*.svg are what tools/diagrams.py draws, byte for byte (a diagram edited without
    running `python tools/diagrams.py` is caught), and each committed one is an SVG document."""
    import xml.etree.ElementTree as ET
    import diagrams
    written = diagrams.write_all(tmp_path)
    assert sorted(p.name for p in written) == ["aligndraw.svg", "captioner.svg", "draw.svg", "lapgan_level.svg",
                                               "whatwhere.svg"]
    for path in written:
        committed = REPO / "book" / "figures" / path.name
        assert committed.exists() and committed.read_bytes() == path.read_bytes(), \
            f"book/figures/{path.name} is stale: run `python tools/diagrams.py`"
        assert ET.parse(committed).getroot().tag == "{http://www.w3.org/2000/svg}svg", path.name
