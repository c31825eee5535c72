"""The ``peakscale`` application: the Typer app, its version flag, and the one place where an
error becomes a message.

Every command module registers itself on ``app`` (``autoscaler.cli`` imports them all), and
commands of other distributions join through the entry-point group ``peakscale.commands`` (the
stacks' ``render``), so this package never imports ``stacks``. Errors a user or the outside world
can cause are ``PeakscaleError``s: ``OneLineErrors`` prints each on one line to stderr and exits
with its code (2 for bad input, 1 for what failed outside it); usage errors the same way; never a
traceback.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import entry_points
from typing import Annotated, Any

import typer
import typer.core

from autoscaler.cli.output import err_console
from autoscaler.errors import PeakscaleError

from typer._click import exceptions as click_exceptions  # typer vendors click (pyproject pins typer>=0.29)

#: entry-point group through which other distributions add commands: ``name = "module:function"``
PLUGIN_GROUP = "peakscale.commands"


def say_error(message: str) -> None:
    err_console.print(f"error: {message}", highlight=False, soft_wrap=True, markup=False)


#: the parser's words for a value of the wrong type, and what a person reads instead
_NOT_A = {
    "Input should be a valid number, unable to parse string as a number": "is not a number",
    "Input should be a valid integer, unable to parse string as an integer": "is not a whole number",
}


def plain_usage(message: str, args: Any) -> str:
    """A usage error in plain words: "Invalid value for '--multiplier': '6x' is not a number",
    the value quoted from the command line, instead of the parser's generic sentence."""
    for words, plain in _NOT_A.items():
        if words in message:
            found = re.search(r"'(-[-\w]+)'", message)
            tokens = [str(a) for a in (args or [])]
            value = None
            if found:
                option = found.group(1)
                value = next((t.split("=", 1)[1] for t in tokens if t.startswith(option + "=")), None)
                if value is None and option in tokens and tokens.index(option) + 1 < len(tokens):
                    value = tokens[tokens.index(option) + 1]
            return message.replace(words, f"{value!r} {plain}" if value is not None else plain.removeprefix("is "))
    return message


class OneLineErrors(typer.core.TyperGroup):
    """Every error on one line: a ``PeakscaleError`` with its exit code; usage errors (a missing
    option, a value of the wrong type, an unknown option) naming the option, with exit 2."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None, standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, windows_expand_args=windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, windows_expand_args=windows_expand_args, **extra)
        except PeakscaleError as exc:
            say_error(str(exc))
            sys.exit(exc.exit_code)
        except click_exceptions.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
                typer.echo(exc.ctx.get_help())  # a bare command shows its help
                sys.exit(0)
            where = exc.ctx.command_path if exc.ctx is not None else "peakscale"
            say_error(f"{plain_usage(exc.format_message(), args if args is not None else sys.argv[1:]).rstrip('.')} (see `{where} --help`)")
            sys.exit(2)
        except click_exceptions.ClickException as exc:
            say_error(exc.format_message())
            sys.exit(exc.exit_code)
        except typer.Abort:
            say_error("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    name="peakscale",
    help=(
        "Pre-scale capacity tiers before their peaks: promotion calendar + forecast + lead time.\n\n"
        "Start with `peakscale backtest` (no arguments: the bundled World Cup 1998 trace)."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from autoscaler import __version__

        typer.echo(f"peakscale {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """peakscale: get live-commerce platforms through their peaks."""


def load_plugins(typer_app: typer.Typer) -> None:
    """Register the commands other installed distributions declare in ``peakscale.commands``."""
    for point in entry_points(group=PLUGIN_GROUP):
        typer_app.command(point.name)(point.load())


def verbatim_examples(typer_app: typer.Typer) -> None:
    """Help is plain text rewrapped to the terminal (80 columns too, never cutting an option name);
    the example command lines after "Examples:" are kept whole (click's ``\\b`` marker)."""
    for info in typer_app.registered_commands:
        doc = info.callback.__doc__ if info.callback is not None else None
        if info.callback is None or not doc or "Examples:" not in doc or "\b" in doc:
            continue
        head, _, tail = doc.partition("Examples:")
        paragraphs = tail.split("\n\n")
        for k, para in enumerate(paragraphs):
            lines = [line for line in para.split("\n") if line.strip()]
            if lines:
                indent = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
                paragraphs[k] = f"{indent}\b\n" + para.lstrip("\n")
        info.callback.__doc__ = head + "Examples:" + "\n\n".join(paragraphs)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            verbatim_examples(group.typer_instance)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except PeakscaleError as error:  # raised outside a command body (e.g. while parsing)
        say_error(str(error))
        sys.exit(error.exit_code)
