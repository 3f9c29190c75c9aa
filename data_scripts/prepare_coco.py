"""Prepare MS-COCO 2014 captions for minidraw: the same as `minidraw prepare coco` (see --help).

    python data_scripts/prepare_coco.py --download --coco-root ~/coco --out ~/.cache/minidraw/coco
    python data_scripts/prepare_coco.py --coco-root /data/coco2014 --out data/coco   # COCO already on disk
"""
import sys
from pathlib import Path

try:
    import minidraw  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minidraw.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["prepare", "coco", *sys.argv[1:]]))
