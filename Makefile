# The two set-up commands of the README:
#   make book   install into .venv, then build the book, executing every chapter
#   make test   install into .venv; run the tests and execute every chapter under nbval while the book
#               builds beside them (make -j2, one thread each), then open every page in headless
#               Chromium (make browser; skipped where Chromium is missing)
#   make book-check   build the book, then open every page in headless Chromium (tests/test_rendered_book.py;
#               screenshots in _build/screens)
#   make bench  a few minutes: minidraw's training step against a plain PyTorch DRAW, side by side
#               (benchmarks/step_vs_plain.py; results in _build/bench.json; BENCH_ARGS="--threads 1" etc.)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The dev environment pins torch (a CPU build where one is at hand); the package itself
# asks only torch>=2.1, so `pip install minidraw` keeps whatever torch you have (e.g. Colab's).
TORCH_SPEC ?= torch==2.13.0
# Data already on disk: MINIDRAW_DATA/mnist, MINIDRAW_DATA/coco. Defaults to ../shared/data
# when it exists (this project's offline machines); otherwise data download on first use.
MINIDRAW_DATA ?= $(if $(wildcard ../shared/data/mnist),$(abspath ../shared/data),)
export MINIDRAW_DATA

.PHONY: install web book book-check browser test pytest-nbval bench strip git-filter setup-cells repository clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

# The live pages' JavaScript: onnxruntime-web from the npm registry, pinned by package-lock.json. Without Node.js
# the book still builds; its live pages show their static figures and say why.
web:
	@if [ -f node_modules/onnxruntime-web/dist/ort.wasm.min.js ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then \
	  :; \
	elif command -v npm >/dev/null 2>&1; then \
	  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error; \
	else \
	  echo "make web: Node.js (npm) is missing, so the live pages will show their static figures only"; \
	fi

book: install web
	env -u MPLBACKEND $(BIN)/jupyter-book build --warningiserror --keep-going .   # figures inline, whatever MPLBACKEND the caller set
	@echo "book: $(CURDIR)/_build/html/index.html"

# The built book as a reader sees it: maths, tables, images, outputs, Colab buttons, animations.
book-check: book
	$(MAKE) browser

browser: install
	$(BIN)/python -m pytest tests/test_rendered_book.py tests/test_live_pages.py -m browser -q -rs

# Every chapter executes twice, once under nbval and once in the book build. The two are independent, so
# they run side by side, one process per core with one thread each: the chapters' small models are
# overhead-bound, and one thread runs them as fast as two (a chapter measured alone: 133 s with one
# thread, 128 s with two). Then the browser opens the finished build.
test: install
	OMP_NUM_THREADS=1 $(MAKE) -j2 --output-sync=target pytest-nbval book
	$(MAKE) browser

pytest-nbval: install
	$(BIN)/python -m pytest tests book -m "not browser" --nbval-lax --nbval-current-env --nbval-cell-timeout=1800 -q --durations=15   # the 15 slowest, for CI time

# Strip notebook outputs before committing, with nbstripout (keeps cells marked NBVAL_CHECK_OUTPUT),
# and ask Colab for a GPU in every notebook's metadata.
strip: install
	$(BIN)/python tools/notebooks.py strip book/*.ipynb

# Let git strip notebooks on every `git add`, as `make strip` does (.gitattributes names the filter).
git-filter: install
	git config filter.minidraw-strip.clean "$(BIN)/python tools/notebooks.py strip"
	git config filter.minidraw-strip.smudge cat
	git config filter.minidraw-strip.required true

# After changing pyproject's version: every set-up cell installs that release (tag v<version>).
setup-cells: install
	$(BIN)/python tools/notebooks.py setup-cells book/*.ipynb

# Point the Colab buttons and every chapter's set-up cell at another repository.
repository: install
	$(BIN)/python tools/notebooks.py repository "$(URL)"

bench: install
	mkdir -p _build
	$(BIN)/python benchmarks/step_vs_plain.py --json _build/bench.json $(BENCH_ARGS)

clean:
	rm -rf _build
