"""The live pages in a real browser: the caption editor draws what the exported model draws, the filterbank
explorer computes minidraw.attention's glimpse, nothing is fetched from beyond 127.0.0.1, and without
WebAssembly the static figures stay.

It serves the built book (``_build/html``, or ``MINIDRAW_BOOK_HTML``) on 127.0.0.1 with ``python -m http.server``'s
handler and drives headless Chromium (Debian's chromium and chromium-driver). Skipped without a built book, without
Chromium, or for a book built without onnxruntime-web (no Node.js). Time to the first drawing after the page loads,
and per drawing, are measured and printed (``-s``).
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_rendered_book import _chromium   # the one lookup of Chromium and its driver

REPO = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("MINIDRAW_BOOK_HTML", REPO / "_build" / "html")).resolve()
LIVE = HTML / "_static" / "live"

pytestmark = pytest.mark.browser

# the pages that hold a live element, and which
EDITOR_PAGES = {"experiments": "aligndraw-mnist", "aligndraw": "aligndraw-mnist-paper"}
EXPLORER_PAGE = "filterbanks"


@pytest.fixture(scope="module")
def site():
    if not (HTML / "index.html").exists():
        pytest.skip(f"no built book at {HTML}: run `make book` first")
    if not (LIVE / "ort" / "ort.wasm.min.js").exists():
        pytest.skip("the book was built without onnxruntime-web (no Node.js): the live pages show static figures")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(HTML)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _driver(*extra: str):
    found = _chromium()
    if found is None:
        pytest.skip("no Chromium: install Debian's chromium and chromium-driver to run the browser test")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    os.environ.setdefault("SE_OFFLINE", "true")
    profile = tempfile.mkdtemp(prefix="minidraw-live-")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000", f"--user-data-dir={profile}", *extra):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=found[1]))
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(120)
    return driver, profile


@pytest.fixture(scope="module")
def browser(site):
    driver, profile = _driver()
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def no_wasm_browser(site):
    """A browser whose pages have no WebAssembly (removed before any script of the page runs)."""
    driver, profile = _driver()
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": "delete window.WebAssembly;"})
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, selector: str, states: tuple[str, ...], timeout: float = 60) -> str:
    t0 = time.time()
    while time.time() - t0 < timeout:
        state = driver.execute_script(f"const e = document.querySelector({json.dumps(selector)}); "
                                      "return e ? e.dataset.state || '' : null")
        if state in states:
            return state
        time.sleep(0.05)
    raise AssertionError(f"{selector} never reached {states} (last: {state!r})")


def _marks(driver) -> dict[str, float]:
    """The page's own timeline (minidraw-live.js's performance marks, the first of each name), in seconds from
    the navigation's start."""
    return driver.execute_script("const t = {}; for (const m of performance.getEntriesByType('mark'))"
                                 "  if (m.name.startsWith('minidraw:') && !(m.name.slice(9) in t))"
                                 "    t[m.name.slice(9)] = m.startTime / 1000;"
                                 "return t;")


def _requests(driver) -> list[str]:
    """Every URL the page asked for, from Chromium's network log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


@pytest.mark.parametrize("page", list(EDITOR_PAGES))
def test_the_editor_draws_what_the_exported_model_draws(site, browser, page):
    ort = pytest.importorskip("onnxruntime")
    name = EDITOR_PAGES[page]
    if not (LIVE / "models" / f"{name}.onnx").exists():
        pytest.skip(f"{name} is not shipped in this build")
    t0 = time.perf_counter()
    browser.get(f"{site}/book/{page}.html")
    _wait(browser, ".minidraw-live", ("animating", "drawn"))                   # the first canvases are shown
    first = time.perf_counter() - t0
    caption = "the digit 3 is on the left of the digit 7 ."
    draw = ("const done = arguments[arguments.length - 1];"
            f"window.minidrawLive.draw({json.dumps(name)}, {json.dumps(caption)}, arguments[0], 0.8)")
    times = [browser.execute_async_script(draw + ".then(r => done(r.ms), e => done(-1))", seed) for seed in range(5)]
    assert min(times) > 0                                                       # each drawing, timed in the page
    run = browser.execute_async_script(draw + ".then(r => done({words: r.words, eps: r.eps, "
                                       "canvases: Array.from(r.canvases)}), e => done({error: e.message}))", 7)
    assert "error" not in run, run
    meta = json.loads((LIVE / "models" / f"{name}.json").read_text())
    ids = np.zeros((meta["M"], meta["L"]), dtype=np.int64)
    ids[:, : len(run["words"])] = run["words"]
    eps = np.asarray(run["eps"], dtype=np.float32).reshape(meta["T"], meta["M"], meta["Z"])
    session = ort.InferenceSession(str(LIVE / "models" / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    want = session.run(["canvases"], {"ids": ids, "eps": eps})[0]
    got = np.asarray(run["canvases"], dtype=np.float32).reshape(want.shape)
    assert np.abs(got - want).max() < 1e-3                                      # every step of every sample
    marks = _marks(browser)
    print(f"\n{page}: first drawing {first:.2f} s after the page was asked for ({marks[f'drawn:{name}']:.2f} s on "
          f"the page's clock: runtime {marks['runtime']:.2f} s, session {marks[f'session:{name}']:.2f} s); each "
          f"further drawing {np.median(times):.0f} ms in the page (median of 5: 8 samples of {meta['T']} steps)")
    # an unknown word is named, as the command line names it
    box = browser.find_element("css selector", ".minidraw-live .mdl-caption")
    box.clear()
    box.send_keys("the digit 3 is on the left of the digit seven .\n")
    _wait(browser, ".minidraw-live", ("error",))
    message = browser.find_element("css selector", ".minidraw-live .mdl-message").text
    assert "unknown word(s) 'seven'" in message and "known words are" in message
    # nothing left 127.0.0.1
    outside = [u for u in _requests(browser)                                    # the browser's own pages aside
               if u.startswith(("http:", "https:", "ws:", "wss:")) and not u.startswith(site + "/")]
    assert not outside, outside


def test_the_explorer_computes_the_packages_glimpse(site, browser):
    from minidraw.attention import Window, filterbanks, glimpse
    browser.get(f"{site}/book/{EXPLORER_PAGE}.html")
    _wait(browser, ".minidraw-filterbank", ("ready",))
    digit = json.loads((LIVE / "digit.json").read_text())
    x = torch.tensor(digit["pixels"], dtype=torch.float64)[None, None]           # (1, 1, 28, 28)
    for params in ({"gx": 14.5, "gy": 14.5, "sigma2": 1.0, "delta": 3.0, "gamma": 1.0},
                   {"gx": 6.0, "gy": 20.5, "sigma2": 0.3, "delta": 1.5, "gamma": 2.0}):
        got = browser.execute_script("return window.minidrawLive.glimpse(JSON.parse(arguments[0]).x, "
                                     "JSON.parse(arguments[0]).p, 8).glimpse",
                                     json.dumps({"x": digit["pixels"], "p": params}))
        w = Window(**{k: torch.tensor([v], dtype=torch.float64) for k, v in
                      (("g_x", params["gx"]), ("g_y", params["gy"]), ("sigma2", params["sigma2"]),
                       ("delta", params["delta"]), ("gamma", params["gamma"]))})
        F_X, F_Y = filterbanks(w, 8, 28, 28)
        want = params["gamma"] * glimpse(x, F_X, F_Y)[0, 0]                      # γ F_Y x F_Xᵀ, (N, N)
        assert np.abs(np.asarray(got) - want.numpy()).max() < 1e-9
    # the sliders drive it
    slider = browser.find_element("css selector", ".minidraw-filterbank .mdl-delta")
    before = browser.execute_script("return window.minidrawLive.lastGlimpse.params.delta")
    browser.execute_script("arguments[0].value = 1.2; arguments[0].dispatchEvent(new Event('input'))", slider)
    assert before != browser.execute_script("return window.minidrawLive.lastGlimpse.params.delta") == 1.2


def test_without_webassembly_the_static_figures_stay(site, no_wasm_browser):
    no_wasm_browser.get(f"{site}/book/{next(iter(EDITOR_PAGES))}.html")
    _wait(no_wasm_browser, ".minidraw-live", ("unavailable",))
    text = no_wasm_browser.find_element("css selector", ".minidraw-live").text
    assert "WebAssembly" in text and "figures below" in text
    assert no_wasm_browser.execute_script("return document.querySelectorAll('.cell_output img').length") > 0


def test_no_page_asks_for_anything_beyond_the_book(site, browser):
    """Every page of the book, served on 127.0.0.1: no request leaves it (no CDN for fonts, scripts or widgets)."""
    toc = (REPO / "_toc.yml").read_text()
    pages = ["index"] + [f"book/{p.split('/')[-1]}" for p in __import__("re").findall(r"file:\s*(\S+)", toc)]
    browser.get_log("performance")                                              # forget the earlier pages' requests
    outside = {}
    for page in pages:
        browser.get(f"{site}/{page}.html")
        time.sleep(0.5)                                                         # late requests: fonts, lazy scripts
        urls = [u for u in _requests(browser) if u.startswith(("http:", "https:", "ws:", "wss:"))]
        far = [u for u in urls if not u.startswith(site + "/")]
        if far:
            outside[page] = far
    assert not outside, outside
