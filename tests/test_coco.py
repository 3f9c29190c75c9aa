"""MS-COCO preparation and loading, on a tiny COCO-format fixture (never the network)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from minidraw.data.coco import KEYS, CocoCaptions, CocoDataError, split_file
from minidraw.data.coco_fixture import make_tiny_coco
from minidraw.data.coco_prepare import prepare_coco
from minidraw.data.common import CaptionBatch
from minidraw.text import UNK, tokenize


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return make_tiny_coco(tmp_path_factory.mktemp("coco") / "raw")


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("coco_out")
    return out, prepare_coco(raw, out, min_count=1, progress=False)


def load(out: Path, split: str) -> dict[str, np.ndarray]:
    with np.load(out / split_file(32, split)) as z:
        return {k: z[k] for k in z.files}


def annotations(raw: Path, source: str) -> dict:
    return json.loads((raw / "annotations" / f"captions_{source}2014.json").read_text())


def copy_raw(raw: Path, dest: Path) -> Path:
    shutil.copytree(raw, dest)
    return dest


# ---- reading apart from preparing ------------------------------------------------
def test_reading_imports_neither_the_preparation_nor_the_download_nor_the_fixture():
    code = """if True:
        import sys
        import minidraw.data.coco
        loaded = sorted(m for m in ("pycocotools", "PIL", "minidraw.data.coco_prepare",
                                    "minidraw.data.coco_download", "minidraw.data.coco_fixture") if m in sys.modules)
        assert not loaded, loaded
        import minidraw.data.coco_download, minidraw.data.coco_fixture
        assert "minidraw.data.coco_prepare" not in sys.modules and "pycocotools" not in sys.modules
    """
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


# ---- the fixture itself ----------------------------------------------------------
def test_fixture_is_coco_format(raw):
    d = annotations(raw, "train")
    assert {"info", "licenses", "images", "annotations"} <= set(d)
    assert len(d["images"]) == 12 and len(d["annotations"]) == 60
    img = d["images"][0]
    assert {"id", "file_name", "width", "height", "license", "coco_url"} <= set(img)
    assert img["file_name"] == f"COCO_train2014_{img['id']:012d}.jpg"
    sizes = {(i["width"], i["height"]) for i in d["images"]}
    assert all(w != h for w, h in sizes) and len(sizes) > 1
    with Image.open(raw / "train2014" / img["file_name"]) as im:
        assert im.size == (img["width"], img["height"])
    assert Counter(a["image_id"] for a in d["annotations"]) == {i["id"]: 5 for i in d["images"]}
    captions = [a["caption"] for a in d["annotations"]]
    assert any(c != c.lower() for c in captions) and any("," in c for c in captions)


def test_fixture_is_deterministic(tmp_path):
    a, b = make_tiny_coco(tmp_path / "a", 2, 2, seed=3), make_tiny_coco(tmp_path / "b", 2, 2, seed=3)
    for rel in ["annotations/captions_train2014.json", "annotations/captions_val2014.json"]:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    assert [p.read_bytes() for p in sorted((a / "val2014").iterdir())] == \
           [p.read_bytes() for p in sorted((b / "val2014").iterdir())]


# ---- preparation -----------------------------------------------------------------
def test_prepare_shapes_and_dtypes(prepared):
    out, meta = prepared
    assert {p.name for p in out.iterdir()} == {"coco32_train.npz", "coco32_dev.npz", "coco32_test.npz",
                                               "vocab.json", "meta.json"}
    assert json.loads((out / "meta.json").read_text()) == meta
    for split, n in [("train", 12), ("dev", 4), ("test", 4)]:
        z = load(out, split)
        assert set(z) == set(KEYS)
        m = 5 * n
        assert z["images"].shape == (n, 32, 32, 3) and z["images"].dtype == np.uint8
        assert z["captions"].dtype == np.int32 and z["captions"].shape[0] == m
        assert z["captions"].shape[1] == z["lengths"].max() == meta["counts"][split]["max_len"]
        assert z["lengths"].shape == (m,) and z["lengths"].dtype == np.int32
        assert z["caption_image"].shape == (m,) and z["caption_image"].dtype == np.int32
        assert z["image_ids"].shape == (n,) and z["image_ids"].dtype == np.int64
        assert np.all(np.diff(z["image_ids"]) > 0)  # image-id order
        cols = np.arange(z["captions"].shape[1])
        real = cols[None, :] < z["lengths"][:, None]  # (K, L)
        assert np.all(z["captions"][real] > 0) and np.all(z["captions"][~real] == 0)
        assert meta["counts"][split] == {"images": n, "captions": m, "max_len": z["captions"].shape[1]}


def test_center_crop_resize_matches_pil(raw, prepared):
    out, _ = prepared
    z = load(out, "train")
    info = {i["id"]: i for i in annotations(raw, "train")["images"]}
    for k in (0, 5):
        img = info[int(z["image_ids"][k])]
        with Image.open(raw / "train2014" / img["file_name"]) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = min(w, h)
            box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
            want = np.asarray(im.crop(box).resize((32, 32), Image.BICUBIC))
        np.testing.assert_array_equal(z["images"][k], want)


def test_five_captions_per_image(prepared):
    out, _ = prepared
    for split in ("train", "dev", "test"):
        z = load(out, split)
        assert np.bincount(z["caption_image"], minlength=len(z["image_ids"])).tolist() == \
               [5] * len(z["image_ids"])


def expected_text(caption: str, train_counts: Counter, min_count: int) -> str:
    return " ".join(t if train_counts[t] >= min_count else UNK for t in tokenize(caption))


@pytest.mark.parametrize("min_count", [1, 4])
def test_round_trip(raw, prepared, tmp_path, min_count):
    out = prepared[0] if min_count == 1 else tmp_path
    if min_count != 1:
        prepare_coco(raw, out, min_count=min_count, progress=False)
    train = annotations(raw, "train")["annotations"]
    counts = Counter(t for a in train for t in tokenize(a["caption"]))
    text = {a["id"]: a["caption"] for s in ("train", "val") for a in annotations(raw, s)["annotations"]}
    n_unk = 0
    for split in ("train", "dev", "test"):
        ds = CocoCaptions(split, out)
        want = [expected_text(text[int(a)], counts, min_count) for a in ds.annotation_ids]
        assert ds.texts(range(len(ds))) == want
        n_unk += sum(w.split().count(UNK) for w in want)
        # captions belong to the image they were written for
        image_of = {a["id"]: a["image_id"] for s in ("train", "val") for a in annotations(raw, s)["annotations"]}
        assert [image_of[int(a)] for a in ds.annotation_ids] == ds.image_ids[ds.caption_image].tolist()
    if min_count > 1:
        assert n_unk > 0  # rare words really became <unk>
        assert all(counts[w] >= min_count for w in ds.vocab.content_words)


def test_vocabulary_from_train_only(raw, tmp_path):
    src = copy_raw(raw, tmp_path / "raw")
    path = src / "annotations" / "captions_val2014.json"
    d = json.loads(path.read_text())
    first = d["images"][0]["id"]
    for a in d["annotations"]:
        if a["image_id"] == first:
            a["caption"] = "A xylophone, a XYLOPHONE on a xylophone."
    path.write_text(json.dumps(d))
    prepare_coco(src, tmp_path / "out", min_count=1, progress=False)
    vocab = json.loads((tmp_path / "out" / "vocab.json").read_text())["words"]
    assert "xylophone" not in vocab
    for split in ("dev", "test"):
        ds = CocoCaptions(split, tmp_path / "out")
        for i in np.flatnonzero(ds.image_ids[ds.caption_image] == first):
            assert ds.texts([i]) == ["a <unk> , a <unk> on a <unk> ."]


def test_dev_test_disjoint_and_cover_val(raw, prepared):
    out, _ = prepared
    dev, test = (set(load(out, s)["image_ids"].tolist()) for s in ("dev", "test"))
    val = {i["id"] for i in annotations(raw, "val")["images"]}
    train = {i["id"] for i in annotations(raw, "train")["images"]}
    assert not dev & test and dev | test == val and len(dev) == len(test) == 4
    assert set(load(out, "train")["image_ids"].tolist()) == train


def test_seed_changes_split_only(raw, prepared, tmp_path):
    out, _ = prepared
    prepare_coco(raw, tmp_path, min_count=1, seed=1, dev_fraction=0.25, progress=False)
    assert len(load(tmp_path, "dev")["image_ids"]) == 2
    np.testing.assert_array_equal(load(tmp_path, "train")["captions"], load(out, "train")["captions"])


def test_deterministic_and_workers(raw, prepared, tmp_path):
    out, meta = prepared
    meta2 = prepare_coco(raw, tmp_path, min_count=1, workers=2, progress=False)
    assert meta2 == meta
    assert (tmp_path / "vocab.json").read_text() == (out / "vocab.json").read_text()
    for split in ("train", "dev", "test"):
        a, b = load(out, split), load(tmp_path, split)
        for k in KEYS:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{split}/{k}")


def test_max_words(raw, tmp_path):
    meta = prepare_coco(raw, tmp_path, min_count=1, max_words=6, progress=False)
    z = load(tmp_path, "train")
    assert z["captions"].shape[1] == z["lengths"].max() == 6
    assert meta["truncated_captions"] > 0 and meta["max_words"] == 6


# ---- the data set ----------------------------------------------------------------
def test_dataset_items_and_batches(prepared):
    out, meta = prepared
    ds = CocoCaptions("train", out)
    assert len(ds) == 60 and ds.image_shape == (3, 32, 32) and len(ds.vocab) == meta["vocab_size"]
    image, ids, n = ds[7]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert ids.dtype == torch.int64 and ids.shape == (n,) and torch.all(ids > 0)
    z = load(out, "train")
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), z["images"][z["caption_image"][7]] / 255, atol=1e-6)

    short = np.argsort(z["lengths"], kind="stable")[:3]  # the three shortest captions
    b = ds.batch(short)
    assert isinstance(b, CaptionBatch) and len(b) == 3
    assert b.images.shape == (3, 3, 32, 32) and b.images.dtype == torch.float32
    assert 0 <= b.images.min() and b.images.max() <= 1
    assert b.captions.dtype == torch.int64 and b.captions.shape == (3, int(z["lengths"][short].max()))
    assert b.captions.shape[1] < z["captions"].shape[1]  # trimmed to the batch
    assert b.lengths.tolist() == z["lengths"][short].tolist()
    for row, length in zip(b.captions, b.lengths):
        assert torch.all(row[:length] > 0) and torch.all(row[length:] == 0)
    assert b.meta["image_index"].tolist() == z["caption_image"][short].tolist()
    assert b.texts(ds.vocab) == ds.texts(short)

    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=ds.collate)
    c = next(iter(loader))
    ref = ds.batch(range(4))
    assert torch.equal(c.images, ref.images) and torch.equal(c.captions, ref.captions)
    assert torch.equal(c.lengths, ref.lengths)


def test_retrieval_candidates_of_coco_are_other_images(prepared):
    from minidraw.measures import retrieval_candidates
    out, _ = prepared
    ds = CocoCaptions("train", root=out)                         # 12 images, 5 captions each
    queries, cand = retrieval_candidates(ds, n_queries=20, n_candidates=6, seed=0)
    images = ds.image_of(cand)
    assert images.shape == (20, 6) and (cand[:, 0] == queries).all()
    for q, others, row in zip(queries, cand[:, 1:], images):
        assert row[0] == ds.caption_image[q] and row[0] not in row[1:] and len(set(row.tolist())) == 6
        assert not set(others.tolist()) & set(ds.captions_of(row[0]).tolist())   # no caption of its own image


def test_dataset_resolves_root_from_env(prepared, tmp_path, monkeypatch):
    out, _ = prepared
    (tmp_path / "coco").symlink_to(out, target_is_directory=True)
    monkeypatch.setenv("MINIDRAW_DATA", str(tmp_path))
    assert len(CocoCaptions("dev")) == 20


# ---- errors that say what to do ----------------------------------------------------
def test_missing_annotation_file(raw, tmp_path):
    src = copy_raw(raw, tmp_path / "raw")
    (src / "annotations" / "captions_val2014.json").unlink()
    with pytest.raises(CocoDataError) as e:
        prepare_coco(src, tmp_path / "out", progress=False)
    msg = str(e.value)
    assert str(src / "annotations" / "captions_val2014.json") in msg
    assert "--download" in msg and "annotations_trainval2014.zip" in msg and "--coco-root" in msg
    with pytest.raises(CocoDataError, match="coco_root"):
        prepare_coco(None, tmp_path / "out", progress=False)


def test_corrupt_json(raw, tmp_path):
    src = copy_raw(raw, tmp_path / "raw")
    path = src / "annotations" / "captions_train2014.json"
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with pytest.raises(CocoDataError, match="not valid JSON") as e:
        prepare_coco(src, tmp_path / "out", progress=False)
    assert str(path) in str(e.value) and "corrupt" in str(e.value)
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(CocoDataError, match="does not look like a COCO captions file"):
        prepare_coco(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_missing_and_unreadable_image(raw, tmp_path):
    src = copy_raw(raw, tmp_path / "raw")
    gone = sorted((src / "train2014").iterdir())[3]
    gone.unlink()
    with pytest.raises(CocoDataError) as e:
        prepare_coco(src, tmp_path / "out", progress=False)
    assert gone.name in str(e.value) and "does not exist" in str(e.value) and "skip_missing" in str(e.value)

    broken = sorted((src / "val2014").iterdir())[0]
    broken.write_bytes(b"not a jpeg")
    meta = prepare_coco(src, tmp_path / "out", min_count=1, skip_missing=True, progress=False)
    assert meta["skipped_images"] == sorted([gone.name, broken.name])
    assert meta["counts"]["train"] == {**meta["counts"]["train"], "images": 11, "captions": 55}
    assert meta["counts"]["dev"]["images"] + meta["counts"]["test"]["images"] == 7

    gone.write_bytes((raw / "train2014" / gone.name).read_bytes())
    with pytest.raises(CocoDataError) as e:
        prepare_coco(src, tmp_path / "out2", progress=False)
    assert broken.name in str(e.value) and "cannot read image" in str(e.value)


def test_empty_result(raw, tmp_path):
    src = copy_raw(raw, tmp_path / "raw")
    path = src / "annotations" / "captions_train2014.json"
    d = json.loads(path.read_text())
    d["annotations"] = []
    path.write_text(json.dumps(d))
    with pytest.raises(CocoDataError, match="train split came out empty"):
        prepare_coco(src, tmp_path / "out", progress=False)
    with pytest.raises(CocoDataError, match="dev_fraction"):
        prepare_coco(raw, tmp_path / "out", dev_fraction=0.01, progress=False)


def test_missing_prepared_files(prepared, tmp_path):
    with pytest.raises(CocoDataError) as e:
        CocoCaptions("train", tmp_path)
    assert str(tmp_path / "coco32_train.npz") in str(e.value)
    assert "python data_scripts/prepare_coco.py" in str(e.value) and str(tmp_path) in str(e.value)
    out, _ = prepared
    with pytest.raises(CocoDataError, match="coco64_dev.npz"):
        CocoCaptions("dev", out, size=64)
    with pytest.raises(ValueError, match="split"):
        CocoCaptions("val", out)


def test_npz_missing_key_or_inconsistent(prepared, tmp_path):
    out, _ = prepared
    (tmp_path / "vocab.json").write_text((out / "vocab.json").read_text())
    z = load(out, "dev")
    np.savez(tmp_path / "coco32_dev.npz", **{k: v for k, v in z.items() if k != "lengths"})
    with pytest.raises(CocoDataError) as e:
        CocoCaptions("dev", tmp_path)
    assert "lengths" in str(e.value) and "prepare_coco.py" in str(e.value)

    np.savez(tmp_path / "coco32_dev.npz", **{**z, "caption_image": z["caption_image"][:-1]})
    with pytest.raises(CocoDataError, match="inconsistent"):
        CocoCaptions("dev", tmp_path)
    (tmp_path / "coco32_dev.npz").write_bytes(b"garbage")
    with pytest.raises(CocoDataError, match="cannot read"):
        CocoCaptions("dev", tmp_path)


# ---- downloading (pooch, with the URL mapped onto a local zip) --------------------------------------
def test_download_coco_unzips_in_place_and_reports_failures(raw, tmp_path, monkeypatch):
    import zipfile

    from minidraw.data import coco_download as coco
    from minidraw.data import download as dl
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "annotations_trainval2014.zip", "w") as z:
        for source in ("train", "val"):
            z.write(raw / "annotations" / f"captions_{source}2014.json", f"annotations/captions_{source}2014.json")
    asked = []

    def local(url, progress=True, timeout=30.0):   # http(s)://images.cocodataset.org/... -> served/<name>
        asked.append(url)
        return lambda u, out, p=None: shutil.copyfile(served / u.rsplit("/", 1)[1], out)
    monkeypatch.setattr(dl, "downloader", local)
    dest = coco.download_coco(tmp_path / "coco", which=["annotations"], progress=False)
    assert sorted(p.name for p in (dest / "annotations").iterdir()) == ["captions_train2014.json",
                                                                       "captions_val2014.json"]
    assert annotations(dest, "val") == annotations(raw, "val")
    assert sorted(p.name for p in dest.iterdir()) == ["annotations"]            # zip and temporary folder gone
    assert asked == ["http://" + coco.URLS["annotations"]]
    assert coco.download_coco(dest, which=["annotations"]) == dest and len(asked) == 1   # already there

    (served / "annotations_trainval2014.zip").unlink()
    with pytest.raises(dl.DownloadError, match="could not download annotations_trainval2014.zip") as e:
        coco.download_coco(tmp_path / "again", which=["annotations"], progress=False)
    assert all(f"{s}://{coco.URLS['annotations']}" in str(e.value) for s in ("http", "https"))
    assert not any((tmp_path / "again").iterdir())
