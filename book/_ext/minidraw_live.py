"""The book's live pages: the shipped models drawing in the reader's browser, and a filterbank explorer.

At the end of an HTML build this extension writes ``_static/live/`` into the built book:

* ``models/NAME.onnx`` and ``NAME.json``: each shipped caption-to-image model's drawing path
  (:func:`minidraw.export.export_onnx`, 8 captions at a time) and what the page needs to feed it: the
  vocabulary, the sizes, the grammar's templates for the menus;
* ``digit.json``: one MNIST test digit, for the filterbanks chapter's explorer;
* ``ort/``: the three files of onnxruntime-web's WebAssembly backend, from ``node_modules`` (``npm ci``,
  pinned by ``package-lock.json``; ``make book`` runs it where Node.js is installed). Without them the build
  still succeeds: the pages show their static figures and say why;
* ``minidraw-live.js`` and ``.css`` (from ``book/_ext/live/``), which only the pages holding a ``minidraw-live``
  or ``minidraw-filterbank`` element load. The script tag names the page's models (``data-models``), so the
  script starts fetching the runtime and the models from the page's head, while the rest of the page loads.

Nothing is fetched from anywhere else at build or read time: the pages work offline and from any static host.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs")
LIVE_MODELS = ("aligndraw-mnist-paper", "aligndraw-mnist", "aligndraw-shapes")
M = 8                                     # captions per run: one caption, eight samples


def templates(data: str) -> list[list]:
    """The grammar as menus: each template a list of literal text and ``{"slot": name, "options": [...]}``."""
    def slot(name, options):
        return {"slot": name, "options": list(options)}
    if data == "shapes":
        from minidraw.data.shapes_grammar import _POSITION_PHRASE
        from minidraw.data.shapes_scene import BACKGROUNDS, COLOURS, RELATIONS, SHAPES, SIZES
        obj = lambda k: ["a", slot(f"size{k}", SIZES), slot(f"colour{k}", COLOURS), slot(f"shape{k}", SHAPES)]  # noqa: E731
        tail = ["on a", slot("background", BACKGROUNDS), "background ."]
        return [obj(1) + ["is", slot("position", _POSITION_PHRASE)] + tail,
                obj(1) + ["is", slot("relation", RELATIONS)] + obj(2) + tail]
    from minidraw.data.mnist_captions import TEMPLATES
    digits = [str(d) for d in range(10)]
    out = []
    for t in TEMPLATES:
        parts = []
        for word in t.split():
            if word in ("{d}", "{e}"):
                parts.append(slot(word.strip("{}"), digits))
            elif parts and isinstance(parts[-1], str):
                parts[-1] += " " + word
            else:
                parts.append(word)
        out.append(parts)
    return out


def write_models(out: Path) -> list[str]:
    from minidraw import pretrained
    from minidraw.export import export_onnx
    from minidraw.sample import vocabulary_for
    written = []
    for name in LIVE_MODELS:
        if name not in pretrained.list():
            continue
        model, vocab = pretrained.load(name)
        data = pretrained.info(name)["data"]
        L = 18 if data == "shapes" else 12
        export_onnx(model, out / "models" / f"{name}.onnx", M=M, L=L, simplify=True)
        cfg = model.cfg
        vocab = vocab or vocabulary_for(model)
        meta = {"name": name, "description": pretrained.info(name)["description"], "data": data,
                "words": list(vocab.words), "T": cfg.T, "A": cfg.A, "B": cfg.B, "C": cfg.C, "N": cfg.write_N,
                "Z": cfg.z_size, "L": L, "M": M, "templates": templates(data)}
        (out / "models" / f"{name}.json").write_text(json.dumps(meta))
        written.append(name)
    return written


def write_digit(out: Path) -> None:
    from minidraw.data.mnist import digit_pools
    pools = digit_pools()
    image = pools.test_images[0].astype(float) / 255.0                  # (28, 28): the test split's first digit
    (out / "digit.json").write_text(json.dumps({"label": int(pools.test_labels[0]),
                                                "pixels": [[round(v, 4) for v in row] for row in image.tolist()]}))


def build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir) / "_static" / "live"
    (out / "models").mkdir(parents=True, exist_ok=True)
    for f in ("minidraw-live.js", "minidraw-live.css"):
        shutil.copy2(HERE / "live" / f, out / f)
    dist = ort_dist()
    if dist is not None:
        (out / "ort").mkdir(exist_ok=True)
        for f in ORT_FILES:
            shutil.copy2(dist / f, out / "ort" / f)
        names = write_models(out)
        logger.info(f"live pages: onnxruntime-web and {', '.join(names)} in {out}")
    else:
        shutil.rmtree(out / "ort", ignore_errors=True)
        logger.info("live pages: onnxruntime-web is not installed (`npm ci` needs Node.js), so the pages show "
                    "their static figures")
    write_digit(out)


def live_models(body: str) -> list[str] | None:
    """The models a page's editors draw with, in page order; None for a page with nothing live."""
    names = re.findall(r'class="minidraw-live"[^>]*data-model="([^"]+)"', body)
    if not names and 'class="minidraw-filterbank"' not in body:
        return None
    return list(dict.fromkeys(names))


def ort_dist() -> Path | None:
    """onnxruntime-web's files, where ``npm ci`` installed them."""
    dist = REPO / "node_modules" / "onnxruntime-web" / "dist"
    return dist if all((dist / f).is_file() for f in ORT_FILES) else None


def page_context(app, pagename, templatename, context, doctree) -> None:
    models = live_models(context.get("body", ""))
    if models is None:
        return                                                   # a page with nothing live loads nothing of this
    if models and ort_dist() is not None:                        # the runtime first, in the head: ready at once
        app.add_js_file("live/ort/ort.wasm.min.js", priority=200)
    app.add_js_file("live/minidraw-live.js", **({"data-models": " ".join(models)} if models else {}))
    app.add_css_file("live/minidraw-live.css")


def setup(app):
    app.connect("html-page-context", page_context)
    app.connect("build-finished", build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
