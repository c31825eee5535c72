"""The one error hierarchy of peakscale.

Every error a user or the outside world can cause is a ``PeakscaleError`` carrying its exit code;
the CLI turns it into one line on stderr in one place (``autoscaler.cli.app``), never a traceback.

- ``InputError`` (exit 2): bad input, naming the field (or row) at fault and the fix. Stack config
  errors (``ConfigError``) are input errors too.
- ``Unavailable`` (exit 1): something outside the input failed: Prometheus gave no history, a
  Kubernetes call failed, a store could not be read or written.

Internal bugs are none of these and surface normally.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any


def printable(text: object) -> str:
    """``text`` with every control or format character written as its escape (``\\n``, ``\\x1b``):
    what a user typed can never start a new log line or move a terminal's cursor."""
    out = []
    for ch in str(text):
        if unicodedata.category(ch)[0] == "C" and ch != " ":
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def did_you_mean(word: object, known: Sequence[str], cutoff: float = 0.5) -> str:
    """``"did you mean 'x'? "`` for the known name closest to a mistyped one, else ``""``."""
    import difflib

    close = difflib.get_close_matches(str(word), list(known), n=1, cutoff=cutoff)
    return f"did you mean {close[0]!r}? " if close else ""


class PeakscaleError(Exception):
    """An error peakscale reports on one line; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class InputError(PeakscaleError, ValueError):
    """Bad input from the user: a file row, an option, a calendar field, a resource spec."""

    exit_code = 2

    def __init__(self, where: str, problem: str, fix: str | None = None) -> None:
        where, problem = printable(where), printable(problem)
        fix = printable(fix) if fix is not None else None
        self.where = where
        self.problem = problem
        self.fix = fix
        message = f"{where}: {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class ConfigError(InputError):
    """A stack config value (``Pulumi.<stack>.yaml``) is wrong: names its config path and the fix."""


class Unavailable(PeakscaleError):
    """Something outside the input failed (exit 1): the message says what and why."""

    exit_code = 1


class MetricsUnavailable(Unavailable):
    """No fresh data for a Prometheus query; the message says why."""


class HistoryUnavailable(Unavailable):
    """Prometheus did not give a policy's history."""


class KubeError(Unavailable):
    """A Kubernetes call failed, or its answer cannot be used."""


class KubeApiError(KubeError):
    """kube-apiserver answered an error (the adapter's translation of the client's exception: no
    module outside ``autoscaler/adapters`` sees the client's own). ``status`` is the HTTP status
    (None: the request got no answer), ``reason`` its phrase, ``body`` the Status the server sent."""

    def __init__(self, status: int | None, reason: str = "", body: str = "") -> None:
        self.status, self.reason, self.body = status, reason, body
        super().__init__(f"HTTP {status} {reason}".strip() if status is not None else reason or "no answer from kube-apiserver")


class KubeNotFound(KubeApiError):
    """404: the object (or its kind) is not there."""


class KubeConflict(KubeApiError):
    """409: the object changed since it was read, or exists already."""


class KubeForbidden(KubeApiError):
    """401 or 403: the credentials, or their RBAC, do not allow the request."""


class KubeInvalid(KubeApiError):
    """400 or 422: the server refused the object itself (its schema, its fields)."""


class KubeUnavailable(KubeApiError):
    """5xx, 429, or no answer at all (a timeout, a refused connection): worth another try."""


class KubeUnreachable(KubeUnavailable):
    """No answer at all: a timeout, a refused or reset connection (``status`` is None)."""


class CommandFailed(Unavailable):
    """A command's operation failed for a reason outside its input (a store unreadable, say)."""


class StoreConflict(Unavailable):
    """A promotion changed in the store between this command's read and its write: nothing was
    written over it (the command reads again and reapplies its change)."""


def validation_problem(errors: Sequence[Mapping[str, Any]], model: type | None = None) -> tuple[tuple[Any, ...], str]:
    """The first problem of a pydantic ``ValidationError.errors()``: (location, message).

    The one reader of pydantic's errors: the calendar, the resources and the stack config all
    name the field from the location and say the message without pydantic's "Value error, ". A
    key the ``model`` does not know is "unknown key", with the closest one it does know, and is
    said before the other problems (a misspelled required field is also reported missing)."""
    unknown = [e for e in errors if e.get("type") == "extra_forbidden"]
    # a typo'd key first: the required field it misspells is "missing" only because of it
    first = (unknown or errors or [{}])[0] if model is not None else (errors[0] if errors else {})
    loc = tuple(first.get("loc", ()))
    if first.get("type") == "extra_forbidden" and model is not None and loc:
        known = known_keys(model, loc[:-1])
        hint = did_you_mean(loc[-1], known).rstrip()
        return loc, "unknown key" + (f" ({hint})" if hint else (f" (known: {', '.join(known)})" if known else ""))
    return loc, str(first.get("msg", "invalid")).removeprefix("Value error, ")


def known_keys(model: type, path: Sequence[Any]) -> list[str]:
    """The keys (as written: aliases) a pydantic model accepts at ``path`` inside it."""
    from typing import get_args

    from pydantic import BaseModel

    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        field = next((f for name, f in current.model_fields.items() if part in (name, f.alias)), None)
        if field is None:
            return []
        inner = [a for a in (field.annotation, *get_args(field.annotation)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not inner:
            return []
        current = inner[0]
    return [f.alias or name for name, f in current.model_fields.items()]


def dotted(loc: Sequence[Any]) -> str:
    """A pydantic location as ``a.b.c`` (list indexes as ``[i]``)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def clip(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters, cut at a word boundary with an ellipsis (an error is
    never cut mid-word)."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    cut = head.rfind(" ")
    return (head[:cut] if cut > limit // 2 else head).rstrip(" ,;:") + "…"
