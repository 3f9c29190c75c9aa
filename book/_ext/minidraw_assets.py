"""Each script and stylesheet once per page.

Some extensions register their inline scripts twice (once when Sphinx starts, once more while jupyter-book
builds), so every page carried sphinx-thebe's and sphinx-togglebutton's configuration twice; the second
``const THEBE_JS_URL`` was an ``Uncaught SyntaxError`` in every reader's console. The page keeps the first of
each: two assets are the same when they load the same file, or are inline with the same body and attributes
(one copy names no file as ``None``, the other as ``""``; their priorities may differ).
"""
from __future__ import annotations


def _key(asset) -> tuple:
    return (str(getattr(asset, "filename", asset) or ""),
            tuple(sorted((k, str(v)) for k, v in getattr(asset, "attributes", {}).items())))


def once_each(app, pagename, templatename, context, doctree) -> None:
    for key in ("script_files", "css_files"):
        files = context.get(key)
        if isinstance(files, list):
            seen: set = set()
            files[:] = [f for f in files if not (_key(f) in seen or seen.add(_key(f)))]   # first of each, in order


def setup(app):
    app.connect("html-page-context", once_each, priority=900)   # after the handlers that add assets to the page
    return {"parallel_read_safe": True, "parallel_write_safe": True}
