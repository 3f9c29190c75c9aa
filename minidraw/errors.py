"""One error path for every ``minidraw`` command.

A problem the user can fix — a missing or damaged file, a bad setting, a caption
outside the vocabulary — is reported as one line, ``minidraw COMMAND: error: …``,
that names the problem and the fix, and the command exits with status 2: no
traceback. Such problems are :class:`UserError` (the data sets' and checkpoints'
own errors derive from it), ``ValueError`` (bad settings and inputs) and
``OSError`` (files). Anything else is a bug and keeps its traceback; so does
everything when ``MINIDRAW_DEBUG=1`` is set.
"""
from __future__ import annotations

import os
import sys
from typing import Callable


class UserError(Exception):
    """A problem the user can fix; the message says what went wrong and what to do."""


class CheckpointError(UserError, RuntimeError):
    """A file that is not a loadable minidraw checkpoint (empty, truncated, foreign, or unsafe)."""


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, OSError)


def one_line(error: BaseException | str) -> str:
    """The message of ``error`` on one line (its type's name when it has none)."""
    text = " ".join(str(error).split())
    return text or (type(error).__name__ if isinstance(error, BaseException) else "unknown error")


def report(command: str, error: BaseException | str) -> int:
    """Print ``minidraw COMMAND: error: MESSAGE`` to stderr; return the exit status 2."""
    print(f"minidraw {command}: error: {one_line(error)}", file=sys.stderr)
    return 2


def guarded(command: str, func: Callable[..., int], *args) -> int:
    """``func(*args)``, with every user error turned into one line on stderr and exit status 2."""
    try:
        return func(*args)
    except USER_ERRORS as e:
        if os.environ.get("MINIDRAW_DEBUG"):
            raise
        return report(command, e)
