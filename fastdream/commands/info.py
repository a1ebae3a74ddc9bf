"""`fastdream info`: versions, compiled kernels, GPU and optional backends, as JSON."""
from __future__ import annotations

import argparse
import json

HELP = "print versions, compiled kernels, GPU and optional backends as JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    from fastdream import _backend

    print(json.dumps(_backend.capabilities(), indent=2))
    return 0
