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


def clip(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters, cut at a word boundary with an ellipsis (an error is
    never cut mid-word)."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    cut = head.rfind(" ")
    return (head[:cut] if cut > limit // 2 else head).rstrip(" ,;:") + "…"
