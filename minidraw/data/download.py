"""Where data lives, and fetching it safely (with pooch).

Every data set resolves its directory the same way:

1. the ``root`` argument, when given;
2. ``$MINIDRAW_DATA/<name>`` when the environment variable ``MINIDRAW_DATA`` is set;
3. ``~/.cache/minidraw/<name>`` otherwise (the only place minidraw downloads into).

:func:`fetch` hands each download to `pooch <https://www.fatiando.org/pooch>`_,
which streams it to a temporary file beside the target, checks its hash, and
only then renames it into place: a failed or corrupt download never leaves a
half-written file that looks complete. ``file://`` URLs (a mirror on a shared
disk) are copied the same way. Files minidraw writes itself get the same
guarantee from :func:`atomic_write`.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

import pooch

from ..errors import UserError

ENV_DATA = "MINIDRAW_DATA"


def cache_dir(name: str) -> Path:
    return Path(os.path.expanduser("~/.cache/minidraw")) / name


def resolve_dir(name: str, root: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """The directory for data set ``name`` and whether the user named it.

    A directory the user named (argument or ``$MINIDRAW_DATA``) is used as it is:
    minidraw never downloads into it.
    """
    if root is not None:
        return Path(root).expanduser(), True
    if os.environ.get(ENV_DATA):
        return Path(os.environ[ENV_DATA]).expanduser() / name, True
    return cache_dir(name), False


def atomic_write(path: Path, write: Callable) -> None:
    """Call ``write(f)`` on a temporary binary file beside ``path``, fsync it, then rename it into place: a kill
    leaves the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path: Path, obj) -> None:
    """``obj`` as indented JSON at ``path``, written atomically."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=1).encode()))


class DownloadError(UserError, RuntimeError):
    """Every mirror failed, or what came back had the wrong checksum."""


def _copy_file_url(url: str, output_file, pooch_obj=None) -> None:
    """A pooch downloader for ``file://`` URLs: copy the file (pooch checks the hash afterwards)."""
    source = urllib.request.url2pathname(urllib.parse.urlparse(url).path)
    if hasattr(output_file, "write"):
        with open(source, "rb") as f:
            shutil.copyfileobj(f, output_file)
    else:
        shutil.copyfile(source, output_file)


def downloader(url: str, progress: bool = True, timeout: float = 30.0) -> Callable:
    """The pooch downloader for ``url``: a copy for ``file://``, else pooch's own (HTTP(S), FTP, ...)."""
    if url.startswith("file:"):
        return _copy_file_url
    if url.startswith(("http://", "https://")):
        return pooch.HTTPDownloader(progressbar=progress, timeout=timeout)
    return pooch.downloaders.choose_downloader(url, progressbar=progress)


def one_line(e: BaseException) -> str:
    """``Type: first line of the message``, at most 300 characters."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}"


def fetch(urls: Sequence[str], dest: str | os.PathLike, known_hash: str | None,
          progress: bool = True, timeout: float = 30.0) -> Path:
    """The file ``dest``, fetched from the first of ``urls`` that works, checked against ``known_hash``.

    ``known_hash`` is pooch's ``"md5:…"`` / ``"sha256:…"`` (bare hex: sha256), or
    ``None`` for a source that publishes none. A ``dest`` already there with the
    right hash is kept. Raises :class:`DownloadError` naming every URL and why it failed.
    """
    dest = Path(dest)
    errors = []
    for url in urls:
        try:
            return Path(pooch.retrieve(url, known_hash, fname=dest.name, path=dest.parent,
                                       downloader=downloader(url, progress, timeout)))
        except Exception as e:  # noqa: BLE001 -- try the next mirror, remember why this one failed
            errors.append(f"  {url}: {one_line(e)}")
    raise DownloadError(f"could not download {dest.name}:\n" + "\n".join(errors))
