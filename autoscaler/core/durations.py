"""Parsing of human durations such as ``90s``, ``10m``, ``1h30m``, ``2d``.

Durations are returned in whole seconds; a bare number means seconds. Never raises anything but
``InputError``, whatever the text.
"""

from __future__ import annotations

import re

from autoscaler.errors import InputError

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration_s(text: str, *, field: str = "duration", allow_zero: bool = False) -> int:
    """Return the duration in seconds, or raise ``InputError`` naming ``field``."""
    raw = str(text).strip().lower().replace(" ", "")
    fix = "use forms like 90s, 10m, 1h30m, 2d"
    if not raw:
        raise InputError(field, "empty duration", fix)
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        seconds = float(raw)
    else:
        pos = 0
        seconds = 0.0
        for match in _PART.finditer(raw):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_S[match.group(2)]
            pos = match.end()
        if pos != len(raw) or pos == 0:
            raise InputError(field, f"cannot read duration {text!r}", fix)
    if seconds > 10 * 365 * 86400:
        raise InputError(field, f"duration {text!r} is longer than ten years", fix)
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise InputError(field, f"duration {text!r} must be positive", fix)
    if 0 < seconds < 1:
        raise InputError(field, f"duration {text!r} is under a second", "durations are whole seconds, e.g. 1s")
    return int(round(seconds))


def format_duration(seconds: float) -> str:
    """Short human form: 600 -> '10m', 5400 -> '1h30m'."""
    seconds = int(round(seconds))
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            n, seconds = divmod(seconds, size)
            out.append(f"{n}{unit}")
    return "".join(out)
