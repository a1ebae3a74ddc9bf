"""The `fastdream` command line: each subcommand lives in fastdream.commands.<name>.

A command module provides HELP (one line), add_arguments(parser) and run(args) -> int, and keeps heavy
imports inside run() so that `fastdream --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from fastdream.errors import UserError, WriteError
from fastdream.files import WRITE_ERRNOS

COMMANDS = ("generate", "export", "render", "bench", "eval", "batch", "info")


def _available_commands():
    for name in COMMANDS:
        try:
            yield name, importlib.import_module(f"fastdream.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"fastdream.commands.{name}":
                raise


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr (the usage is one --help away), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastdream", description="Fast text-to-3D with Score Distillation Sampling.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _available_commands():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="fastdream: %(message)s")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("fastdream: interrupted", file=sys.stderr)
        return 130
    except WriteError as exc:  # a full or read-only disk: what could not be written and what was kept
        print(f"fastdream: error: {exc}", file=sys.stderr)
        return 1
    except UserError as exc:  # a mistake in the input: say what and what to do, no traceback
        print(f"fastdream: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full/read-only disk where no write site caught it: still one line, no traceback
        if exc.errno not in WRITE_ERRNOS:
            raise
        print(f"fastdream: error: {exc.filename or 'a file'}: {os.strerror(exc.errno)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
