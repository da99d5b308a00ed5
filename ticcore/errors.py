"""One base for the errors a user can fix, and the one way every CLI reports them.

A `UserError` says what is wrong with an input, a flag or an output path, in one line that names
the file. Every CLI runs its body through `report_user_errors`, which prints `TOOL: error: MESSAGE`
to stderr and returns exit code 2; anything else is a bug and keeps its traceback.

`UserError` is a `ValueError` so that code written against the standard library's convention
(`int()`, `json.loads`, config parsing raise ValueError) is caught by the same handlers.
"""
from __future__ import annotations

import sys
from typing import Callable


class UserError(ValueError):
    """A problem with the user's input that the user can fix: one line, exit code 2."""


class InputError(UserError):
    """Bad input found before any work started."""


EXIT_USER_ERROR = 2


def report_user_errors(tool: str, body: Callable[[], int | None], also: tuple[type[BaseException], ...] = ()) -> int:
    """Run `body`; a UserError (or one of `also`) becomes one line on stderr and exit code 2.
    The exit code is what `body` returns when that is an int, else 0."""
    try:
        rc = body()
    except (UserError, *also) as exc:
        print(f"{tool}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    return rc if isinstance(rc, int) else 0
