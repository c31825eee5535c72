"""Errors a user can cause, each naming the field (or row) at fault and the fix.

The CLI prints ``str(error)`` on one line and exits 2; nothing here ever carries a traceback to
the user. Internal bugs are not ``InputError`` and surface normally.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user: a file row, an option, a calendar field."""

    def __init__(self, where: str, problem: str, fix: str | None = None) -> None:
        self.where = where
        self.problem = problem
        self.fix = fix
        message = f"{where}: {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)
