"""Fetch MNIST (four IDX files, MD5-checked), or check a copy you have: `minidraw prepare mnist`.

    python data_scripts/prepare_mnist.py                      # download into ~/.cache/minidraw/mnist
    python data_scripts/prepare_mnist.py --root /data/mnist   # check the files already in /data/mnist
"""
import sys
from pathlib import Path

try:
    import minidraw  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minidraw.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["prepare", "mnist", *sys.argv[1:]]))
