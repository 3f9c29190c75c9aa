"""Shared fixtures. Tests never download: MNIST comes from a directory on disk.

The directory is ``$MINIDRAW_DATA/mnist`` when that is set (CI points it at
``../shared/data``), else ``../shared/data/mnist`` beside the repository.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _mnist_dir() -> Path | None:
    candidates = []
    if os.environ.get("MINIDRAW_DATA"):
        candidates.append(Path(os.environ["MINIDRAW_DATA"]) / "mnist")
    candidates.append(REPO.parent / "shared" / "data" / "mnist")
    for c in candidates:
        if (c / "t10k-images-idx3-ubyte.gz").exists() or (c / "t10k-images-idx3-ubyte").exists():
            return c
    return None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    d = _mnist_dir()
    if d is None:
        pytest.skip("no offline MNIST: set MINIDRAW_DATA to a folder holding mnist/t10k-*-ubyte.gz")
    return d


@pytest.fixture(scope="session")
def pools(mnist_dir):
    from minidraw.data.mnist import digit_pools
    return digit_pools(mnist_dir)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open a URL other than file://, or a socket to anything but this machine's
    loopback (a test's own server, chromedriver), fails the test loudly."""
    import socket

    def guarded(real):
        def connect(*args, **kwargs):
            on_socket = bool(args) and isinstance(args[0], socket.socket)      # socket.connect(self, address)
            address = (args[1] if len(args) > 1 else kwargs.get("address")) if on_socket else \
                (args[0] if args else kwargs.get("address"))                    # create_connection(address)
            host = address[0] if isinstance(address, tuple) else None          # AF_UNIX paths are local
            if host is not None and host not in LOOPBACK:
                raise AssertionError(f"a test tried to reach the network: {address}")
            return real(*args, **kwargs)
        return connect
    monkeypatch.setattr(socket, "create_connection", guarded(socket.create_connection))
    monkeypatch.setattr(socket.socket, "connect", guarded(socket.socket.connect))
    import urllib.request
    real = urllib.request.urlopen

    def guard(url, *a, **k):
        target = url if isinstance(url, str) else url.full_url
        if not target.startswith("file:"):
            raise AssertionError(f"a test tried to reach the network: {target}")
        return real(url, *a, **k)
    monkeypatch.setattr(urllib.request, "urlopen", guard)


@pytest.fixture(scope="module")
def batch():
    """Twelve captioned-shapes scenes shrunk to 12 high and 16 wide (A ≠ B), captions of 13 to 18 words:
    ``(images (M, C, B, A), captions (M, L), lengths (M,))`` for the caption models' tests."""
    import numpy as np
    import torch

    from minidraw.data.shapes import ShapesCaptions
    b = ShapesCaptions("train").batch(np.arange(12))
    images = torch.nn.functional.interpolate(b.images, size=(12, 16))  # (M, C, B, A) = 12 high, 16 wide
    return images, b.captions, b.lengths
