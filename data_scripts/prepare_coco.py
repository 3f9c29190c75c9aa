"""Prepare MS-COCO 2014 captions for minidraw: (download,) crop, resize, tokenise, split.

Writes coco{size}_{train,dev,test}.npz, vocab.json and meta.json into --out,
where minidraw.data.coco.CocoCaptions(root=OUT) reads them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import minidraw  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EXAMPLES = """\
examples:
  # data already on disk (DIR/annotations/captions_train2014.json, DIR/train2014/, DIR/val2014/)
  python data_scripts/prepare_coco.py --coco-root /data/coco2014 --out data/coco

  # download MS-COCO 2014 (~19 GB) into DIR first, then prepare
  python data_scripts/prepare_coco.py --download --coco-root /data/coco2014 --out data/coco

  # try the whole pipeline offline on a tiny generated COCO-format fixture
  python data_scripts/prepare_coco.py --tiny --coco-root /tmp/tiny_coco --out /tmp/tiny_coco/out --min-count 1

  # 64x64 images, 4 processes decoding JPEGs
  python data_scripts/prepare_coco.py --coco-root /data/coco2014 --out data/coco --size 64 --workers 4
"""


def main(argv: list[str] | None = None) -> int:
    from minidraw.data.coco import CocoDataError, download_coco, make_tiny_coco, prepare_coco
    from minidraw.data.download import DownloadError, resolve_dir

    p = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--coco-root", type=Path, default=None,
                   help="folder with annotations/, train2014/, val2014/ "
                        "(default with --download: <coco data dir>/raw)")
    p.add_argument("--download", action="store_true",
                   help="download and unzip the 2014 images and captions into --coco-root first")
    p.add_argument("--tiny", action="store_true",
                   help="write a tiny generated COCO-format fixture into --coco-root and use it")
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
    args = p.parse_args(argv)

    if args.download and args.tiny:
        p.error("--download and --tiny exclude each other")
    root = args.coco_root
    if root is None and (args.download or args.tiny):
        root = resolve_dir("coco", None)[0] / ("raw" if args.download else "tiny_raw")
    if root is None:
        p.error("say where the COCO 2014 data is (--coco-root DIR), or add --download to fetch it")
    try:
        if args.download:
            download_coco(root, progress=not args.quiet)
        if args.tiny:
            make_tiny_coco(root)
        meta = prepare_coco(root, args.out, size=args.size, min_count=args.min_count,
                            dev_fraction=args.dev_fraction, seed=args.seed, max_words=args.max_words,
                            skip_missing=args.skip_missing, workers=args.workers,
                            progress=not args.quiet)
    except (CocoDataError, DownloadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = resolve_dir("coco", args.out)[0]
    print(f"wrote {', '.join(meta['files'].values())}, vocab.json, meta.json to {out}")
    for split, c in meta["counts"].items():
        print(f"  {split:5s}: {c['images']:6d} images, {c['captions']:7d} captions, "
              f"up to {c['max_len']} words")
    print(f"  vocabulary: {meta['vocab_size']} words (min count {meta['min_count']})"
          + (f"; {meta['truncated_captions']} captions cut to {meta['max_words']} words"
             if meta["max_words"] else "")
          + (f"; skipped {len(meta['skipped_images'])} unreadable images" if meta["skipped_images"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
