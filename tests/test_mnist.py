import gzip
import hashlib

import numpy as np
import pytest

from minidraw.data import download as dl
from minidraw.data import mnist
from minidraw.data.mnist import MnistError, digit_pools, load_mnist, read_idx


def write_idx(path, array, compress=True):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)
    return path


def fake_split(directory, split, n=20, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28))
    y = np.arange(n) % 10
    (img, _), (lab, _) = mnist.FILES[split]
    write_idx(directory / img, x)
    write_idx(directory / lab, y)
    return x.astype(np.uint8), y.astype(np.uint8)


def test_read_idx_round_trip_compressed_and_not(tmp_path):
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert (read_idx(write_idx(tmp_path / "a.gz", a), 3) == a).all()
    assert (read_idx(write_idx(tmp_path / "a", a, compress=False)) == a).all()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"\x01" + d[1:], "magic number; it is not an MNIST file: delete it and download it again"),
    (lambda d: d[:2] + b"\x0d" + d[3:], "type code .* download it again"),
    (lambda d: d[:-5], "truncated"),
    (lambda d: d + b"\x00", "truncated or corrupt"),
    (lambda d: d[:6], "header"),
])
def test_read_idx_rejects_bad_headers(tmp_path, mutate, message):
    write_idx(tmp_path / "good", np.zeros((2, 28, 28)), compress=False)
    good = (tmp_path / "good").read_bytes()
    (tmp_path / "bad").write_bytes(mutate(good))
    with pytest.raises(MnistError, match=message):
        read_idx(tmp_path / "bad")


def test_read_idx_wrong_rank_and_bad_gzip(tmp_path):
    with pytest.raises(MnistError, match="dimensions"):
        read_idx(write_idx(tmp_path / "l.gz", np.zeros(5)), expect_ndim=3)
    (tmp_path / "x.gz").write_bytes(b"definitely not gzip")
    with pytest.raises(MnistError, match="download it again"):
        read_idx(tmp_path / "x.gz")


def test_offline_copy_is_the_real_test_split(mnist_dir):
    x, y = load_mnist("test", mnist_dir)
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # the images file was recompressed: check its decoded bytes (DESIGN §3)
    raw = gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz").read()
    assert hashlib.md5(raw).hexdigest() == "2646ac647ad5339dbf082846283269ea"


def test_named_dir_without_train_split_carves_disjoint_pools(mnist_dir):
    pools = digit_pools(mnist_dir)
    assert "test split only" in pools.source
    assert len(pools.train_images) == 8000 and len(pools.test_images) == 2000
    # no digit image is in both pools
    train_keys = {im.tobytes() for im in pools.train_images}
    assert not any(im.tobytes() in train_keys for im in pools.test_images)
    assert set(np.unique(pools.train_labels)) == set(range(10)) == set(np.unique(pools.test_labels))
    again = digit_pools(mnist_dir)
    assert (again.train_images == pools.train_images).all()


@pytest.mark.filterwarnings("ignore:MNIST")
def test_both_splits_present_are_used_as_they_are(tmp_path):
    tx, _ = fake_split(tmp_path, "train", n=30)
    sx, _ = fake_split(tmp_path, "test", n=20, seed=1)
    pools = digit_pools(tmp_path)
    assert (pools.train_images == tx).all() and (pools.test_images == sx).all()
    assert "train split" in pools.source


def test_missing_named_dir_names_both_options(tmp_path):
    with pytest.raises(MnistError) as e:
        load_mnist("test", tmp_path / "nowhere")
    msg = str(e.value)
    assert "root=DIR" in msg and "MINIDRAW_DATA" in msg and "download" in msg


@pytest.mark.filterwarnings("ignore:MNIST")
def test_env_var_points_at_parent(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    sx, sy = fake_split(tmp_path / "mnist", "test")
    monkeypatch.setenv("MINIDRAW_DATA", str(tmp_path))
    x, y = load_mnist("test")
    assert (x == sx).all() and (y == sy).all()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local 'mirror' of fake MNIST files served over file:// URLs, and an empty cache."""
    src = tmp_path / "mirror"
    src.mkdir()
    fake_split(src, "train", n=30)
    fake_split(src, "test", n=20, seed=1)
    files = {s: tuple((name, hashlib.md5((src / name).read_bytes()).hexdigest()) for name, _ in mnist.FILES[s])
             for s in mnist.FILES}
    monkeypatch.setattr(mnist, "FILES", files)
    monkeypatch.setattr(mnist, "MIRRORS", ["file:///nonexistent/mirror/", src.as_uri() + "/"])
    monkeypatch.setattr(mnist, "SIZES", {"train": 30, "test": 20})
    monkeypatch.delenv("MINIDRAW_DATA", raising=False)
    monkeypatch.setattr(dl, "cache_dir", lambda name: tmp_path / "cache" / name)
    return src


def test_download_falls_back_across_mirrors_and_checks_md5(mirror, tmp_path):
    x, _ = load_mnist("train")
    assert x.shape == (30, 28, 28)
    cached = sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir())
    assert cached == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]  # no .part left
    pools = digit_pools()
    assert "train split" in pools.source and len(pools.test_images) == 20


def test_download_with_bad_checksum_keeps_nothing(mirror, tmp_path, monkeypatch):
    bad = {s: tuple((n, "0" * 32) for n, _ in mnist.FILES[s]) for s in mnist.FILES}
    monkeypatch.setattr(mnist, "FILES", bad)
    with pytest.raises(MnistError, match="MD5 hash of downloaded file .* does not match the known hash") as e:
        load_mnist("test")
    assert "0" * 32 in str(e.value)
    assert not any((tmp_path / "cache" / "mnist").iterdir())   # no partial or temporary file left


def test_every_mirror_failing_gives_one_clear_error(mirror, tmp_path, monkeypatch):
    dead = ["file:///nonexistent/a/", "file:///nonexistent/b/"]
    monkeypatch.setattr(mnist, "MIRRORS", dead)
    with pytest.raises(MnistError) as e:
        load_mnist("test")
    msg = str(e.value)
    assert "could not download t10k-images-idx3-ubyte.gz" in msg and all(m in msg for m in dead)
    assert "~/.cache/minidraw/mnist" in msg and "root=DIR" in msg
    assert not any((tmp_path / "cache" / "mnist").iterdir())


def test_a_named_folder_is_never_downloaded_into(mirror, tmp_path, monkeypatch):
    named = tmp_path / "mine"
    named.mkdir()
    with pytest.raises(MnistError, match="does not download into it"):
        load_mnist("test", root=named)
    monkeypatch.setenv("MINIDRAW_DATA", str(tmp_path / "parent"))
    with pytest.raises(MnistError, match="does not download into it"):
        load_mnist("test")
    assert not any(named.iterdir()) and not (tmp_path / "parent").exists()
    assert not (tmp_path / "cache").exists()


def test_download_disabled_gives_clear_error(mirror):
    with pytest.raises(MnistError, match="not found"):
        load_mnist("test", download_ok=False)
