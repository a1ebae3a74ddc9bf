"""Subcommands of the `fastdream` CLI, one module each (see fastdream.cli)."""
