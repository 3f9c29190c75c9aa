"""``minidraw prepare mnist|coco|shapes``: fetch, check or snapshot a data set."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError

COCO_EXAMPLES = """examples:
  # data already on disk (DIR/annotations/captions_train2014.json, DIR/train2014/, DIR/val2014/)
  minidraw prepare coco --coco-root /data/coco2014 --out data/coco
  # download MS-COCO 2014 (~19 GB) into DIR first, then prepare
  minidraw prepare coco --download --coco-root /data/coco2014 --out data/coco
  # the whole pipeline offline, on a tiny generated COCO-format fixture
  minidraw prepare coco --tiny --coco-root /tmp/tiny_coco --out /tmp/tiny_coco/out --min-count 1
  # 64x64 images, 4 processes decoding JPEGs
  minidraw prepare coco --coco-root /data/coco2014 --out data/coco --size 64 --workers 4
"""


def coco_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Prepare MS-COCO 2014 captions: (download,) crop, resize, tokenise, split. Writes "
                     "coco{size}_{train,dev,test}.npz, vocab.json and meta.json into --out.")
    p.epilog, p.formatter_class = COCO_EXAMPLES, argparse.RawDescriptionHelpFormatter
    p.add_argument("--coco-root", type=Path, default=None,
                   help="folder with annotations/, train2014/, val2014/ (default with --download: "
                        "<coco data dir>/raw)")
    p.add_argument("--download", action="store_true", help="download and unzip the 2014 images and captions first")
    p.add_argument("--tiny", action="store_true", help="write a tiny generated COCO-format fixture and use it")
    p.add_argument("--out", type=Path, default=None,
                   help="where the prepared files go (default: $MINIDRAW_DATA/coco or ~/.cache/minidraw/coco)")
    p.add_argument("--size", type=int, default=32, help="image side in pixels (default 32, the paper's)")
    p.add_argument("--min-count", type=int, default=5,
                   help="words seen fewer times in training captions become <unk> (default 5)")
    p.add_argument("--dev-fraction", type=float, default=0.5,
                   help="share of val2014 images that go to dev, the rest to test (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the dev/test split (default 0)")
    p.add_argument("--max-words", type=int, default=None, help="cut captions after this many words")
    p.add_argument("--skip-missing", action="store_true",
                   help="leave out images that are missing or unreadable instead of stopping")
    p.add_argument("--workers", type=int, default=0, help="processes decoding images (default 0: this one)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def prepare_coco(args: argparse.Namespace) -> int:
    from ..data.coco_download import download_coco
    from ..data.coco_fixture import make_tiny_coco
    from ..data.coco_prepare import prepare_coco
    from ..data.download import resolve_dir
    if args.download and args.tiny:
        raise UserError("--download and --tiny exclude each other")
    root = args.coco_root
    if root is None and (args.download or args.tiny):
        root = resolve_dir("coco", None)[0] / ("raw" if args.download else "tiny_raw")
    if root is None:
        raise UserError("say where the COCO 2014 data is (--coco-root DIR), or add --download")
    if args.download:                  # errors (CocoDataError, DownloadError) are UserErrors: one line
        download_coco(root, progress=not args.quiet)
    if args.tiny:
        make_tiny_coco(root)
    meta = prepare_coco(root, args.out, size=args.size, min_count=args.min_count,
                        dev_fraction=args.dev_fraction, seed=args.seed, max_words=args.max_words,
                        skip_missing=args.skip_missing, workers=args.workers, progress=not args.quiet)
    print(f"wrote {', '.join(meta['files'].values())}, vocab.json, meta.json to {resolve_dir('coco', args.out)[0]}")
    for split, c in meta["counts"].items():
        print(f"  {split:5s}: {c['images']:6d} images, {c['captions']:7d} captions, up to {c['max_len']} words")
    print(f"  vocabulary: {meta['vocab_size']} words (min count {meta['min_count']})")
    return 0


def mnist_arguments(p: argparse.ArgumentParser) -> None:
    p.description = "Fetch MNIST (four IDX files, MD5-checked) into ~/.cache/minidraw/mnist, or check a copy."
    p.epilog = ("examples:\n  minidraw prepare mnist                      # download\n"
                "  minidraw prepare mnist --root /data/mnist   # check the files already there")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--root", help="folder holding the IDX files (default: $MINIDRAW_DATA/mnist or the cache)")


def prepare_mnist(args: argparse.Namespace) -> int:
    import numpy as np

    from ..data.mnist import MnistError, digit_pools, load_mnist
    for split in ("test", "train"):
        try:
            x, y = load_mnist(split, args.root)
            print(f"{split}: {len(x)} digits, label counts {np.bincount(y, minlength=10).tolist()}")
        except MnistError as e:        # a UserError: without the test split there is nothing to check
            if split == "test":
                raise
            print(f"train: not available ({str(e).splitlines()[0]})")
    print(digit_pools(args.root).source)
    return 0


def shapes_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Captioned shapes are generated on the fly and need no preparation; this writes a "
                     "fixed snapshot (uint8 images, padded captions, lengths) to an .npz for use elsewhere.")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--split", default="train", choices=["train", "test", "heldout"])
    p.add_argument("--n", type=int, default=10_000, help="number of examples (default 10000)")
    p.add_argument("--seed", type=int, default=0)


def prepare_shapes(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from ..data.shapes import ShapesCaptions
    ds = ShapesCaptions(args.split, seed=args.seed)
    b = ds.batch(np.arange(args.n))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, images=(b.images.permute(0, 2, 3, 1) * 255).round().byte().numpy(),
                        captions=b.captions.int().numpy(), lengths=b.lengths.int().numpy(),
                        vocab=json.dumps(ds.vocab.to_dict()), heldout=json.dumps(ds.heldout))
    print(f"wrote {args.n} {args.split} examples to {out}")
    return 0


COMMANDS = {"mnist": (mnist_arguments, prepare_mnist), "coco": (coco_arguments, prepare_coco),
            "shapes": (shapes_arguments, prepare_shapes)}
