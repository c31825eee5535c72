"""Label selectors written as kubectl's ``-l`` takes them, and back.

``peakscale.io/tier in (cache,database),env!=staging,!canary,team`` is read into the CRD's
``{matchLabels, matchExpressions}`` (In, NotIn, Exists, DoesNotExist) and a selector is shown the
same way, so ``promo add --targets``, the CSV calendar's ``targets`` column and every listing speak
one syntax. ``a=b`` and ``a==b`` are matchLabels; ``a!=b`` is ``NotIn [b]`` (as in Kubernetes, it
also matches objects without the label).
"""

from __future__ import annotations

import re
from typing import Any

from autoscaler.errors import InputError

_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SET = re.compile(r"(?P<key>[^\s()!=,]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)", re.IGNORECASE)
_EQUALITY = re.compile(r"(?P<key>[^\s()!=,]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s()!=,]*)")
_EXISTS = re.compile(r"(?P<bang>!?)\s*(?P<key>[^\s()!=,]+)")

FIX = "a label selector as kubectl -l takes it, e.g. peakscale.io/tier=cache or 'peakscale.io/tier in (cache,database)'"


def split_requirements(text: str) -> list[str]:
    """The requirements of a selector: its ``,``-separated parts, a ``(...)`` kept whole."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def _key(key: str, field: str, part: str) -> str:
    prefix, slash, name = key.rpartition("/")
    ok = bool(_LABEL_NAME.fullmatch(name)) and len(name) <= 63 and (not slash or (_LABEL_PREFIX.fullmatch(prefix) is not None and len(prefix) <= 253))
    if not ok:
        raise InputError(field, f"{key!r} in {part!r} is not a label key", "a key is [prefix/]name of letters, digits, '-', '_' or '.'")
    return key


def _value(value: str, field: str) -> str:
    if value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
        raise InputError(field, f"{value!r} is not a label value", "at most 63 letters, digits, '-', '_' or '.'")
    return value


def parse_selector(text: str | None, field: str = "targets") -> dict[str, Any] | None:
    """kubectl's selector syntax as the CRD's selector (None for nothing given: every policy)."""
    if text is None or not text.strip():
        return None
    labels: dict[str, str] = {}
    expressions: list[dict[str, Any]] = []
    for part in split_requirements(text):
        if not part:
            raise InputError(field, f"an empty requirement in {text!r}", FIX)
        if m := _SET.fullmatch(part):
            values = [v.strip() for v in m["values"].split(",")]
            if not all(values):
                raise InputError(field, f"an empty value in {part!r}", "list values as (a,b)")
            expressions.append({"key": _key(m["key"], field, part), "operator": "In" if m["op"].lower() == "in" else "NotIn", "values": sorted({_value(v, field) for v in values})})
        elif m := _EQUALITY.fullmatch(part):
            key, value = _key(m["key"], field, part), _value(m["value"], field)
            if m["op"] == "!=":
                expressions.append({"key": key, "operator": "NotIn", "values": [value]})
            elif key in labels:
                raise InputError(field, f"label {key!r} is given twice", "give each label once")
            else:
                labels[key] = value
        elif m := _EXISTS.fullmatch(part):
            expressions.append({"key": _key(m["key"], field, part), "operator": "DoesNotExist" if m["bang"] else "Exists"})
        else:
            raise InputError(field, f"cannot read {part!r} as a requirement", FIX)
    out: dict[str, Any] = {}
    if labels:
        out["matchLabels"] = labels
    if expressions:
        out["matchExpressions"] = expressions
    return out


def format_selector(selector: dict[str, Any] | None) -> str:
    """A selector (as the CRD spells it) in kubectl's syntax; ``all`` for the empty one."""
    if not selector:
        return "all"
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for r in selector.get("matchExpressions") or []:
        op, key, values = r.get("operator"), r.get("key"), r.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key}!={values[0]}" if len(values) == 1 else f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            parts.append(f"{key} {op} ({','.join(values)})")
    return ",".join(parts) or "all"
