"""Where data lives, and fetching it safely.

Every data set resolves its directory the same way:

1. the ``root`` argument, when given;
2. ``$MINIDRAW_DATA/<name>`` when the environment variable ``MINIDRAW_DATA`` is set;
3. ``~/.cache/minidraw/<name>`` otherwise (the only place minidraw downloads into).

Downloads go to a temporary file beside the target, are checked against an MD5
checksum, and only then renamed into place: a killed download never leaves a
half-written file that looks complete.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

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


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class DownloadError(RuntimeError):
    """Every mirror failed, or what came back had the wrong checksum."""


def download(urls: list[str], dest: str | os.PathLike, md5: str | None = None,
             timeout: float = 30.0, progress: bool = True) -> Path:
    """Fetch the first of ``urls`` that works into ``dest`` (atomically), checking ``md5``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                          disable=not progress, leave=False) as bar:
                    while block := resp.read(1 << 16):
                        out.write(block)
                        bar.update(len(block))
            if md5 is not None and (got := md5sum(tmp)) != md5:
                raise DownloadError(f"checksum mismatch for {url}: md5 {got}, expected {md5}")
            os.replace(tmp, dest)
            return dest
        except Exception as e:  # try the next mirror, remember why this one failed
            errors.append(f"  {url}: {e}")
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DownloadError(f"could not download {dest.name}:\n" + "\n".join(errors))

