"""The live pages' speed in headless Chromium: time to the first drawing after a page is asked for, cold (a
new browser profile each time, so nothing compiled or cached), and time per further drawing.

    make book && python benchmarks/live_pages.py [--runs 5]

Targets on this project's 2-core CPU, otherwise idle: first drawing < 2 s, each further drawing < 200 ms. It
prints, per page, the median over runs of the wall-clock time from the request to the first canvases on the page
(what ``tests/test_live_pages.py`` measures once), of the same moment on the page's own clock (from the
navigation's start, without WebDriver's latency), and of five further drawings; exit status 1 when a median
misses its target.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_live_pages as live  # noqa: E402  (the tests' server and browser set-up)

TARGET_FIRST_S, TARGET_EACH_MS = 2.0, 200.0


def one_run(site: str, page: str, name: str) -> tuple[float, float, float]:
    driver, profile = live._driver()
    try:
        t0 = time.perf_counter()
        driver.get(f"{site}/book/{page}.html")
        live._wait(driver, ".minidraw-live", ("animating", "drawn"))
        first = time.perf_counter() - t0
        in_page = live._marks(driver)[f"drawn:{name}"]
        draw = ("const done = arguments[arguments.length - 1];"
                f"window.minidrawLive.draw('{name}', 'the digit 3 is on the left of the digit 7 .', arguments[0], 0.8)"
                ".then(r => done(r.ms), e => done(-1))")
        each = statistics.median(driver.execute_async_script(draw, seed) for seed in range(5))
        return first, in_page, each
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    server = live.site.__wrapped__()
    site = next(server)
    missed = False
    for page, name in live.EDITOR_PAGES.items():
        runs = [one_run(site, page, name) for _ in range(args.runs)]
        first, in_page, each = (statistics.median(r[i] for r in runs) for i in range(3))
        ok = first < TARGET_FIRST_S and each < TARGET_EACH_MS
        missed |= not ok
        print(f"{page:12s} first drawing {first:.2f} s (page clock {in_page:.2f} s; target {TARGET_FIRST_S} s), "
              f"each further {each:.0f} ms (target {TARGET_EACH_MS:.0f} ms), median of {args.runs} cold loads"
              f"{'' if ok else '  MISSED'}")
    next(server, None)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
