"""argparse value types shared by the subcommands."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer > 0, or an argparse error naming the bad text."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value
