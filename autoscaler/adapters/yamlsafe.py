"""YAML from users, read without letting a hostile file take the process down.

Every YAML peakscale reads (calendars, the promotion store, policy files, stack configs) goes
through ``load``/``load_all``: the text is capped in size, must be UTF-8, may not use aliases (an
alias bomb of a megabyte expands to gigabytes; no calendar needs one) and may not nest deeper than
``MAX_DEPTH``. Each refusal is an ``InputError`` naming the file (and line) and the fix, raised
before any expansion happens, so it takes milliseconds whatever the file holds.
"""

from __future__ import annotations

from typing import Any

import yaml

from autoscaler.errors import InputError

MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 32


class _Guarded(yaml.SafeLoader):
    """The safe loader, refusing aliases and deep nesting while it composes the node tree."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} is not accepted", event.start_mark)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """A key given twice is refused (the round-trip writer refuses it too, so every command
        reads a file the same way), never "the last one wins"."""
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key: the constructor's own error names it
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _text(data: str | bytes, where: str) -> str:
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise InputError(where, f"is {len(data):,} bytes, over the {MAX_BYTES:,} a calendar or policy file may hold", "split it")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(where, f"is not UTF-8 text (byte {exc.start})", "save it as UTF-8 YAML") from None
    if len(data) > MAX_BYTES:
        raise InputError(where, f"is {len(data):,} characters, over the {MAX_BYTES:,} a calendar or policy file may hold", "split it")
    return data


def _fail(exc: yaml.YAMLError, where: str) -> InputError:
    mark = getattr(exc, "problem_mark", None)
    at = f"{where} line {mark.line + 1}" if mark is not None else where
    problem = getattr(exc, "problem", None) or "malformed YAML"
    fix = "write the values out instead of using anchors and aliases" if "alias" in str(problem) else "fix the YAML syntax"
    if "given twice" in str(problem):
        fix = "keep one of them"
    if "nesting" in str(problem):
        fix = "flatten the document"
    return InputError(at, str(problem), fix)


def load(data: str | bytes, where: str) -> Any:
    """One YAML document."""
    text = _text(data, where)
    try:
        return yaml.load(text, Loader=_Guarded)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise _fail(exc, where) from None
    except RecursionError:
        raise InputError(where, f"nests deeper than {MAX_DEPTH} levels", "flatten the document") from None


def load_all(data: str | bytes, where: str) -> list[Any]:
    """Every document of a multi-document YAML stream (empty documents left out)."""
    text = _text(data, where)
    try:
        return [d for d in yaml.load_all(text, Loader=_Guarded) if d is not None]  # noqa: S506
    except yaml.YAMLError as exc:
        raise _fail(exc, where) from None
    except RecursionError:
        raise InputError(where, f"nests deeper than {MAX_DEPTH} levels", "flatten the document") from None


def read_bytes(path, where: str | None = None) -> bytes:
    """A file's bytes, bounded: a regular file (never a device or a FIFO, which would never end or
    never answer) of at most ``MAX_BYTES``, checked before and while it is read."""
    import os
    import stat

    label = where or str(path)
    try:
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NONBLOCK)) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise InputError(label, "is not a regular file", "give a YAML file")
            if info.st_size > MAX_BYTES:
                raise InputError(label, f"is {info.st_size:,} bytes, over the {MAX_BYTES:,} a calendar or policy file may hold", "split it")
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(label, f"cannot read ({exc.strerror or exc})", "check the path and permissions") from None
    if len(data) > MAX_BYTES:
        raise InputError(label, f"is over the {MAX_BYTES:,} bytes a calendar or policy file may hold", "split it")
    return data


def read(path, where: str | None = None) -> Any:
    """``load`` of a file (``read_bytes``: bounded, a regular file)."""
    label = where or str(path)
    return load(read_bytes(path, label), label)
