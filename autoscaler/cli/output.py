"""What the commands share for output: the stderr console, a console sized for tables, the
progress display of long runs, the ``--output`` check, and comma-or-repeat list options."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Annotated, Any, Optional

import typer

from autoscaler.errors import InputError

class _ErrConsole:
    """rich's Console on stderr, made at its first use (importing rich's console costs a tenth of
    a second that ``peakscale --version`` and ``--help`` need not pay)."""

    _console: Any = None

    @property
    def real(self) -> Any:
        if self._console is None:
            from rich.console import Console

            type(self)._console = Console(stderr=True)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


err_console: Any = _ErrConsole()

OUTPUTS = ("table", "json", "yaml")

# how a --trace is read (``trace_files.TraceFormat``): exports as they come
TimeColumnOpt = Annotated[Optional[str], typer.Option("--time-column", help="The trace's time column. Default: timestamp, time, ts, date or datetime.")]
ValueColumnOpt = Annotated[Optional[str], typer.Option("--value-column", help="The trace's demand column. Default: value, or the only other column (Grafana's export).")]
EpochOpt = Annotated[str, typer.Option("--epoch", help="Unit of epoch timestamps in the trace: auto (told by their size), s or ms.")]


def table_console(width: int = 150) -> Any:
    """The terminal's console, or a fixed width without colour when the output is piped."""
    from rich.console import Console

    return Console() if Console().is_terminal else Console(width=width, no_color=True)


def as_options(exc: InputError, options: dict[str, str]) -> InputError:
    """The error of a field the command took from an option, naming the option (``options``: the
    field as the core names it -> the option): the core knows fields, not flags."""
    problem = exc.problem
    for field, option in options.items():
        problem = problem.replace(field, option)
    return InputError(options.get(exc.where, exc.where), problem, exc.fix)


def echo_doc(doc: Any, output: str) -> None:
    """A command's result for scripts: ``doc`` as JSON (``-o json``) or YAML (``-o yaml``)."""
    if output == "json":
        import json

        typer.echo(json.dumps(doc, indent=2))
    else:
        import yaml

        typer.echo(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).rstrip())


def check_output(output: str, allowed: tuple[str, ...] = OUTPUTS) -> None:
    if output not in allowed:
        raise InputError("--output", f"unknown format {output!r}", f"use {', '.join(allowed)}")


#: the environment variable every command reads Prometheus' URL from when --prometheus-url is not given
PROMETHEUS_ENV = "PEAKSCALE_PROMETHEUS_URL"

_UI_PATHS = ("/graph", "/query", "/alerts", "/targets", "/api/v1", "/classic", "/new")


def prometheus_base(url: str, field: str = "--prometheus-url") -> str:
    """Prometheus' base URL, checked: a scheme (``127.0.0.1:9090`` is told to add ``http://``), a
    host, and no UI or API path (``.../graph`` is the web page, not the base)."""
    from urllib.parse import urlsplit

    text = url.strip()
    if not text:
        raise InputError(field, "is empty", f"e.g. http://127.0.0.1:9090 (or set {PROMETHEUS_ENV})")
    if "://" not in text:
        raise InputError(field, f"{text!r} has no scheme", f"add http://, e.g. http://{text}")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise InputError(field, f"{text!r} is not an http(s) URL", "e.g. http://127.0.0.1:9090")
    if not parts.hostname:
        raise InputError(field, f"{text!r} names no host", "e.g. http://127.0.0.1:9090")
    path = parts.path.rstrip("/")
    for ui in _UI_PATHS:
        if ui in path:
            base = f"{parts.scheme}://{parts.netloc}{path[: path.index(ui)]}"
            raise InputError(field, f"{text!r} is a page of Prometheus, not its base URL", f"give {base}")
    return f"{parts.scheme}://{parts.netloc}{path}"


def history_url(url: str | None, trace: object | None) -> str | None:
    """The checked base URL of the Prometheus a history comes from (``prometheus_base``); None
    when none is given, or when it came from the environment and a --trace is given (offline wins)."""
    import os

    if url is None or (trace is not None and url == os.environ.get(PROMETHEUS_ENV)):
        return None
    return prometheus_base(url)


def host_port(text: str, field: str, example: str) -> tuple[str, int]:
    """``host:port`` as (host, port), else the error naming ``field`` with ``example``."""
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit():
        raise InputError(field, f"cannot read {text!r} as host:port", example)
    return host, int(port)


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

        bars = Bars(TextColumn("{task.description:>10}"), BarColumn(), TimeElapsedColumn(), console=err_console.real, transient=True)
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
