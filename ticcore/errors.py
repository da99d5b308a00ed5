"""One base for the errors a user can fix, and the one way every CLI reports them.

A `UserError` says what is wrong with an input, a flag or an output path, in one line that names
the file. Every CLI runs its body through `report_user_errors`, which prints `TOOL: error: MESSAGE`
to stderr and returns exit code 2; an `AccountingError` (our counts do not add up; nothing was
committed) is one line and exit code 1; anything else is a bug and keeps its traceback.

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


class AccountingError(Exception):
    """A run's counts do not add up (every input row must be kept, dropped or failed with a reason).
    Raised before the output is committed, so an earlier output stays in place; exit code 1, because
    the fault is ours, not the input's."""


def require_accounting(stats: dict, out) -> dict:
    """Raise AccountingError unless `stats["accounting"]["ok"]`; call it inside the staged output block."""
    accounting = stats.get("accounting", {})
    if not accounting.get("ok", False):
        raise AccountingError(f"{out}: accounting FAILED: {'; '.join(accounting.get('errors') or ['counts do not add up'])}; "
                              "nothing was written (an earlier output is left as it was)")
    return stats


EXIT_USER_ERROR = 2
EXIT_ACCOUNTING = 1


def report_user_errors(tool: str, body: Callable[[], int | None], also: tuple[type[BaseException], ...] = ()) -> int:
    """Run `body`; a UserError (or one of `also`) becomes one line on stderr and exit code 2.
    The exit code is what `body` returns when that is an int, else 0."""
    try:
        rc = body()
    except (UserError, *also) as exc:
        print(f"{tool}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except AccountingError as exc:
        print(f"{tool}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ACCOUNTING
    return rc if isinstance(rc, int) else 0


def _one_line(exc: BaseException) -> str:
    """The message on one line: a message that quotes a library's multi-line text is folded."""
    return " ".join(str(exc).split("\n")).strip() or type(exc).__name__
