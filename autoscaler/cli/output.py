"""What the commands share for output: the stderr console, a console sized for tables, the
progress display of long runs, the ``--output`` check, and comma-or-repeat list options."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from rich.console import Console

from autoscaler.errors import InputError

err_console = Console(stderr=True)

OUTPUTS = ("table", "json", "yaml")


def table_console(width: int = 150) -> Console:
    """The terminal's console, or a fixed width without colour when the output is piped."""
    return Console() if Console().is_terminal else Console(width=width, no_color=True)


def check_output(output: str, allowed: tuple[str, ...] = OUTPUTS) -> None:
    if output not in allowed:
        raise InputError("--output", f"unknown format {output!r}", f"use {', '.join(allowed)}")


def split_list(values: list[str] | None) -> list[str]:
    """Values of a repeatable option, each possibly comma-separated."""
    out: list[str] = []
    for value in values or []:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


class Progress:
    """A progress display on stderr, one bar per stage (terminal only); use as a context manager
    that yields ``report(stage, fraction)``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and err_console.is_terminal
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> Callable[[str, float], None]:
        if not self.enabled:
            return lambda stage, fraction: None
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bars

        bars = Bars(TextColumn("{task.description:>10}"), BarColumn(), TimeElapsedColumn(), console=err_console, transient=True)
        self._progress = bars
        bars.__enter__()

        def report(stage: str, fraction: float) -> None:
            if stage not in self._tasks:
                self._tasks[stage] = bars.add_task(stage, total=1.0)
            bars.update(self._tasks[stage], completed=fraction)

        return report

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(kind, exc, tb)
