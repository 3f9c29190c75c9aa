"""The built book as a reader sees it: every page of ``_build/html`` opened in headless Chromium.

Per page (the root page and every chapter of ``_toc.yml``) it checks that

* the maths rendered: every ``.math`` element holds MathJax output and no raw ``\\[``, ``\\(`` or
  ``$$`` is left in the text outside code;
* a cell's printed output is one block, however many times it printed;
* markdown tables became HTML tables: no ``| --- |`` row survives as text outside code, and the
  page has at least as many ``<table>`` elements as its source has markdown tables;
* every ``<img>`` loaded (``naturalWidth > 0``);
* no output cell shows a traceback, an error output or an ``...Error:`` line on stderr (a caught
  exception printed on purpose to stdout is fine);
* the Colab launch button opens this page's own notebook in the configured repository;
* every JavaScript animation (matplotlib's ``to_jshtml``) has frames, all decoded;
* no script on the page throws (an ``Uncaught`` error in the console, e.g. an inline script emitted twice;
  the theme's own console messages and the browser's favicon request are not script errors).

A full-page screenshot of each page goes to ``_build/screens/<page>.png``.

Run it with ``make book-check`` (build, then this test) or ``pytest -m browser`` after a build;
``MINIDRAW_BOOK_HTML=DIR`` points it at a book built elsewhere. It is skipped when there is no
built book or no Chromium (Debian: ``apt-get install chromium chromium-driver``).
"""
from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("MINIDRAW_BOOK_HTML", REPO / "_build" / "html")).resolve()
SCREENS = HTML.parent / "screens"

pytestmark = pytest.mark.browser


def _toc_entries() -> list[str]:
    """The book's pages in reading order: the root, then the chapters (``book/NAME``)."""
    toc = (REPO / "_toc.yml").read_text()
    return re.findall(r"root:\s*(\S+)", toc) + re.findall(r"file:\s*(\S+)", toc)


PAGES = [entry.split("/")[-1] for entry in _toc_entries()]
NOTEBOOK_PAGES = [p for p in PAGES if (REPO / "book" / f"{p}.ipynb").exists()]

# A table's delimiter row, e.g. `| --- | :---: |`, in markdown source or left over as page text.
TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)+\|?\s*$", re.M)
TABLE_TEXT = re.compile(r"\|\s*:?-{3,}:?\s*\|")
RAW_MATH = re.compile(r"\\\[|\\\(|\$\$")
ERROR_LINE = re.compile(r"^(\w+\.)*\w*(Error|Exception)\b:", re.M)


def _markdown_sources(page: str) -> list[str]:
    """The page's markdown as it was built (the build's copy in ``_sources``, else ``book/``)."""
    for folder in (HTML / "_sources" / "book", REPO / "book"):
        path = folder / f"{page}.ipynb"
        if path.exists():
            cells = json.loads(path.read_text())["cells"]
            return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
        md = folder / f"{page}.md"
        if md.exists():
            return [md.read_text()]
    return []


def _source_tables(page: str) -> int:
    """How many markdown tables the page's source has (fenced code blocks left out)."""
    n = 0
    for text in _markdown_sources(page):
        text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.M | re.S)
        n += len(TABLE_RULE.findall(text))
    return n


def _chromium() -> tuple[str, str] | None:
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def site():
    """The built book, served from 127.0.0.1 on a free port."""
    if not (HTML / "index.html").exists():
        pytest.skip(f"no built book at {HTML}: run `make book` (or `make book-check`) first")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(HTML)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(site):
    found = _chromium()
    if found is None:
        pytest.skip("no Chromium: install Debian's chromium and chromium-driver to run the browser test")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    os.environ.setdefault("SE_OFFLINE", "true")          # Selenium Manager must not try to download
    profile = tempfile.mkdtemp(prefix="minidraw-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,1000",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})       # the console, for script errors
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=found[1]))
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(120)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


# Runs in the page once MathJax is done: everything the checks need, as one JSON-able object.
INSPECT = r"""
const done = arguments[arguments.length - 1];
const SKIP = "code, pre, script, style, textarea, noscript, mjx-container, .highlight, .MathJax";
const texts = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  const el = n.parentElement;
  if (el && !el.closest(SKIP) && n.nodeValue.trim()) texts.push(n.nodeValue);
}
// A paragraph's text whole, so a table run together over several text nodes is still seen.
const blocks = [...document.querySelectorAll("p, li, td, dd, div.cell_output div:not(.highlight)")]
  .filter(el => !el.closest(SKIP)).map(el => el.innerText);
const maths = [...document.querySelectorAll(".math")];
const waitImg = img => (img.complete ? Promise.resolve() : new Promise(r => {
  img.addEventListener("load", r); img.addEventListener("error", r); setTimeout(r, 15000); }));
const imgs = [...document.querySelectorAll("img")];
imgs.forEach(img => { img.loading = "eager"; });
const animations = [...document.querySelectorAll("div.animation")].map(div => {
  const img = div.querySelector("img[id^='_anim_img']");
  const id = img ? img.id.replace("_anim_img", "") : null;
  const anim = id === null ? undefined : window["anim" + id];
  return {id, img, frames: anim && anim.frames ? anim.frames : []};
});
const frameImgs = animations.flatMap(a => a.frames);
Promise.all(imgs.concat(frameImgs).map(waitImg)).then(() => done({
  texts, blocks,
  maths: maths.length,
  unrendered_maths: maths.filter(m => !m.querySelector("mjx-container")).map(m => m.textContent.slice(0, 80)),
  mathjax: !!(window.MathJax && window.MathJax.startup),
  tables: document.querySelectorAll("table").length,
  broken_images: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.currentSrc || i.src || i.outerHTML.slice(0, 120)),
  error_outputs: [...document.querySelectorAll(".cell_output .traceback, .cell_output .error, .output.traceback, .output.error")]
    .map(e => e.innerText.slice(0, 300)),
  outputs: [...document.querySelectorAll(".cell_output")].map(e => e.innerText),
  stderr: [...document.querySelectorAll(".cell_output .stderr")].map(e => e.innerText),
  split_outputs: [...document.querySelectorAll(".cell_output")]
    .filter(e => e.querySelectorAll(":scope > .output.stream").length > 1).map(e => e.innerText.slice(0, 120)),
  colab: [...document.querySelectorAll("a[href*='colab.research.google.com']")].map(a => a.href),
  animations: animations.map(a => ({
    id: a.id,
    frames: a.frames.length,
    decoded: a.frames.filter(f => f.complete && f.naturalWidth > 0).length,
    shown: !!(a.img && a.img.complete && a.img.naturalWidth > 0),
  })),
}));
"""

WAIT_FOR_MATHJAX = r"""
const done = arguments[arguments.length - 1];
if (!document.querySelector(".math")) { done("no maths"); return; }
const t0 = Date.now();
(function poll() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    mj.startup.promise.then(() => done("typeset"), e => done("MathJax failed: " + e));
  } else if (Date.now() - t0 > 30000) {
    done("MathJax did not load");
  } else {
    setTimeout(poll, 100);
  }
})();
"""


def _screenshot(driver, path: Path) -> None:
    """The whole page, not just the window, as a PNG: the viewport is made as tall as the page."""
    width, height = driver.execute_script(
        "window.scrollTo(0, 0); return [window.innerWidth, document.documentElement.scrollHeight]")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": min(height, 30000), "deviceScaleFactor": 1, "mobile": False})
    try:
        driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture(scope="module")
def rendered(site, browser):
    """Open a page once (cached): wait for MathJax, screenshot it, return what the checks need."""
    cache: dict[str, dict] = {}

    def open_page(page: str) -> dict:
        if page not in cache:
            url = f"{site}/book/{page}.html"
            browser.get_log("browser")                                  # what earlier pages left: not this one's
            browser.get(url)
            browser.execute_script("return document.readyState")
            mathjax_state = browser.execute_async_script(WAIT_FOR_MATHJAX)
            info = browser.execute_async_script(INSPECT)
            info["mathjax_state"] = mathjax_state
            info["console_errors"] = [e["message"][:300] for e in browser.get_log("browser")     # a script that threw
                                      if e["level"] == "SEVERE" and "Uncaught" in e["message"]]
            info["title"] = browser.title
            _screenshot(browser, SCREENS / f"{page}.png")
            cache[page] = info
        return cache[page]
    return open_page


def _page_exists(page: str) -> None:
    if not (HTML / "book" / f"{page}.html").exists():
        pytest.fail(f"{page}: book/{page}.html is missing from the build")


@pytest.mark.parametrize("page", PAGES)
def test_maths_is_rendered(rendered, page):
    _page_exists(page)
    info = rendered(page)
    assert info["mathjax_state"] in ("no maths", "typeset"), f"{page}: {info['mathjax_state']}"
    assert not info["unrendered_maths"], f"{page}: maths MathJax did not render: {info['unrendered_maths'][:5]}"
    raw = [t.strip()[:100] for t in info["texts"] if RAW_MATH.search(t)]
    assert not raw, f"{page}: raw LaTeX in the page text: {raw[:5]}"


@pytest.mark.parametrize("page", PAGES)
def test_tables_are_html_tables(rendered, page):
    _page_exists(page)
    info = rendered(page)
    raw = [t.strip()[:160] for t in info["texts"] + info["blocks"] if TABLE_TEXT.search(t)]
    assert not raw, f"{page}: markdown table syntax shown as text: {raw[:3]}"
    expected = _source_tables(page)
    assert info["tables"] >= expected, (
        f"{page}: its source has {expected} markdown tables, the page only {info['tables']} <table>s")


@pytest.mark.parametrize("page", PAGES)
def test_every_image_loaded(rendered, page):
    _page_exists(page)
    info = rendered(page)
    assert not info["broken_images"], f"{page}: images that did not load: {info['broken_images'][:5]}"


@pytest.mark.parametrize("page", PAGES)
def test_no_error_output(rendered, page):
    _page_exists(page)
    info = rendered(page)
    assert not info["error_outputs"], f"{page}: error outputs: {info['error_outputs'][:3]}"
    tracebacks = [o[:300] for o in info["outputs"] if "Traceback (most recent call last)" in o]
    assert not tracebacks, f"{page}: a cell shows a traceback: {tracebacks[:2]}"
    # A chapter may print a caught exception on purpose (stdout); one on stderr is not meant.
    errors = [m.group(0) for o in info["stderr"] for m in ERROR_LINE.finditer(o)]
    assert not errors, f"{page}: a cell reports an error on stderr: {errors[:3]}"


@pytest.mark.parametrize("page", PAGES)
def test_printed_output_is_one_block(rendered, page):
    """A cell that prints, computes and prints again shows one block of text (nb_merge_streams), not a grey box
    per print."""
    _page_exists(page)
    split = rendered(page)["split_outputs"]
    assert not split, f"{page}: a cell's printed output is split into several blocks: {split[:2]}"


def _colab_link(page: str) -> str:
    import yaml
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    repo = config["repository"]
    owner_name = re.sub(r"^https?://github\.com/", "", repo["url"]).strip("/")
    prefix = (repo.get("path_to_book") or "").strip("/")
    path = "/".join(p for p in (prefix, "book", f"{page}.ipynb") if p)
    colab = config["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{owner_name}/blob/{repo.get('branch', 'main')}/{path}"


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_colab_button_opens_this_notebook(rendered, page):
    _page_exists(page)
    links = rendered(page)["colab"]
    assert links, f"{page}: no Colab launch button"
    for href in links:
        assert href.endswith(f"book/{page}.ipynb"), f"{page}: the Colab button opens {href}"
        assert href == _colab_link(page), f"{page}: the Colab button opens {href}, not {_colab_link(page)}"


@pytest.mark.parametrize("page", PAGES)
def test_animations_have_frames(rendered, page):
    _page_exists(page)
    for anim in rendered(page)["animations"]:
        assert anim["frames"] > 0, f"{page}: animation {anim['id']} has no frames (did its script run?)"
        assert anim["decoded"] == anim["frames"], (
            f"{page}: animation {anim['id']}: {anim['frames'] - anim['decoded']} of {anim['frames']} frames did not decode")
        assert anim["shown"], f"{page}: animation {anim['id']} shows no frame"


@pytest.mark.parametrize("page", PAGES)
def test_no_script_throws(rendered, page):
    _page_exists(page)
    errors = rendered(page)["console_errors"]
    assert not errors, f"{page}: uncaught errors in the console: {errors}"
