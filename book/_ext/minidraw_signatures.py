"""Readable dataclass signatures on the API reference page (book/api.md).

A dataclass field with a ``default_factory`` appears in the generated ``__init__`` as
``field: type = <factory>``. Sphinx cannot parse that, so it prints the whole signature as raw
text (``'str'``, ``~torch.Tensor``). Here ``<factory>`` becomes the factory's call
(``dict()``), and a quoted annotation (``'str'``, left by ``from __future__ import annotations``)
loses its quotes, so the signature parses and renders like every other one.
"""
from __future__ import annotations

import dataclasses
import re

_QUOTED_ANNOTATION = re.compile(r"(:\s*)'([^'=,()]*)'")


def _factory_call(factory) -> str:
    name = getattr(factory, "__name__", "")
    return f"{name}()" if name.isidentifier() else "..."


def tidy_signature(app, what, name, obj, options, signature, return_annotation):
    if not signature:
        return None
    new = signature
    if what == "class" and dataclasses.is_dataclass(obj) and "<factory>" in new:
        calls = iter([_factory_call(f.default_factory) for f in dataclasses.fields(obj)
                      if f.init and f.default_factory is not dataclasses.MISSING])
        new = re.sub(r"<factory>", lambda m: next(calls, "..."), new)
    new = _QUOTED_ANNOTATION.sub(r"\1\2", new)
    ret = _QUOTED_ANNOTATION.sub(r"\1\2", ": " + return_annotation)[2:] if return_annotation else return_annotation
    if (new, ret) == (signature, return_annotation):
        return None
    return new, ret


def setup(app):
    app.connect("autodoc-process-signature", tidy_signature)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
