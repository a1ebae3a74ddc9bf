"""Exceptions shared across fastdream."""


class UserError(Exception):
    """An error caused by the user's input; the CLI prints its message without a traceback."""


class WriteError(UserError):
    """An output could not be written (disk full, read-only, no permission); what was there before is kept.

    `reason` says why without the path ("No space left on device on the filesystem of DIR")."""

    reason: str = ""
