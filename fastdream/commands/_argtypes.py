"""argparse value types and checks shared by the subcommands; each error names the bad text and the allowed range."""
from __future__ import annotations

import argparse
import math
from pathlib import Path


def positive_int(text: str) -> int:
    """An integer > 0, or an argparse error naming the bad text."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def int_in(lo: int, hi: int):
    """An argparse type: an integer in [lo, hi]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer in [{lo}, {hi}], got {text!r}")
        return value
    return parse


def finite_float(text: str) -> float:
    """A finite number (not nan or inf)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def device(name: str | None):
    """--device: None/"auto" picks cuda when available, else cpu; UserError for a device that is not there."""
    from fastdream._backend import resolve_device

    return resolve_device(name or "auto")


def output_file(path: str, flag: str, suffixes: tuple[str, ...]) -> Path:
    """An output file path: not an existing folder, a suffix among `suffixes` (or none); UserError otherwise."""
    from fastdream.errors import UserError

    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file path such as {p / ('turntable' + suffixes[0])}")
    if p.suffix and p.suffix.lower() not in suffixes:
        raise UserError(f"{flag} {path}: the file type must be one of {', '.join(suffixes)}, got {p.suffix!r}")
    return p
