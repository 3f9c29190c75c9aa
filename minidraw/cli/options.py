"""Argument types the subcommands share: each refuses a value out of range with a line that says the range."""
from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """A whole number, at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number, 0 or more."""
    value = float(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, got {text}")
    return value
