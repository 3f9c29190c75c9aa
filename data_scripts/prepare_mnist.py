"""Fetch MNIST (the four IDX files, checked against their MD5 sums), or check a copy you have.

Examples:
    python data_scripts/prepare_mnist.py                      # download into ~/.cache/minidraw/mnist
    python data_scripts/prepare_mnist.py --root /data/mnist   # check the files already in /data/mnist
    MINIDRAW_DATA=/data python data_scripts/prepare_mnist.py  # the same, through the environment

After it, minidraw finds the digits by itself (same --root or MINIDRAW_DATA).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from minidraw.data.mnist import MnistError, digit_pools, load_mnist


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="folder holding the IDX files (default: $MINIDRAW_DATA/mnist, "
                                       "else download into ~/.cache/minidraw/mnist)")
    args = parser.parse_args(argv)
    try:
        for split in ("train", "test"):
            try:
                x, y = load_mnist(split, args.root)
                print(f"{split}: {len(x)} digits, label counts {np.bincount(y, minlength=10).tolist()}")
            except MnistError as e:
                if split == "test":
                    raise
                print(f"train: not available ({str(e).splitlines()[0]})")
        print(digit_pools(args.root).source)
    except MnistError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
