"""Time zones and timestamps at the edges.

Inside arrays peakscale counts time as *wall-clock seconds* of one zone (a naive local datetime
read as if it were UTC). Seasonality follows the local clock people live by (a host goes live at
20:00 Shanghai time, taxis peak at 18:00 New York time), so the forecaster must see local time.
Naive timestamps are read in the zone given (``--tz``); timestamps with an offset are converted to
that zone first.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo, UTC
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from autoscaler.errors import InputError

_EPOCH = datetime(1970, 1, 1)


def get_zone(name: str, *, field: str = "timezone") -> ZoneInfo:
    """Return the IANA zone ``name`` or raise ``InputError`` naming ``field``."""
    try:
        if not name or name != name.strip():
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise InputError(
            field, f"unknown time zone {name!r}", "use an IANA name such as UTC, Asia/Shanghai, America/New_York"
        ) from None


def parse_aware(text: str, zone: ZoneInfo | None, *, field: str) -> datetime:
    """Parse an ISO-8601 timestamp as an aware datetime: an offset is kept, a naive time is read
    in ``zone``; with no zone a naive time is refused (the field and the fix named)."""
    raw = text.strip()
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    try:
        stamp = datetime.fromisoformat(raw)
    except ValueError:
        raise InputError(field, f"cannot read timestamp {text!r}", "use ISO 8601 such as 2026-11-11 20:00:00") from None
    if stamp.tzinfo is not None:
        return stamp
    if zone is None:
        raise InputError(field, f"{text.strip()!r} has no offset and the file names no timezone", "add an offset, a 'timezone:' key, or pass --tz")
    return in_zone(stamp, zone, field=field)


def in_zone(naive: datetime, zone: tzinfo, *, field: str) -> datetime:
    """A naive wall-clock time read in ``zone``; one the clocks skip (inside a spring-forward gap)
    is refused with the two times it could have meant, never silently moved by an hour."""
    aware = naive.replace(tzinfo=zone)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return aware
    early, late = (naive.replace(tzinfo=zone, fold=f).astimezone(UTC).astimezone(zone) for f in (1, 0))
    raise InputError(
        field,
        f"{naive:%Y-%m-%d %H:%M} does not exist in {zone}: the clocks skip that hour",
        f"give {shown(early, zone)} (before the change) or {shown(late, zone)} (after it)",
    )


def parse_timestamp(text: str, zone: ZoneInfo, *, field: str) -> datetime:
    """Parse an ISO-8601 timestamp; return it as a naive wall-clock datetime in ``zone``."""
    return parse_aware(text, zone, field=field).astimezone(zone).replace(tzinfo=None)


def wall_seconds(stamp: datetime) -> int:
    """Naive wall-clock datetime -> wall-clock seconds."""
    return int((stamp - _EPOCH).total_seconds())


def wall_datetime(seconds: float) -> datetime:
    """Wall-clock seconds -> naive wall-clock datetime."""
    return datetime.fromtimestamp(float(seconds), tz=UTC).replace(tzinfo=None)


def aware(seconds: float, zone: ZoneInfo) -> datetime:
    """Wall-clock seconds -> timezone-aware datetime in ``zone``."""
    return wall_datetime(seconds).replace(tzinfo=zone)


def shown(stamp: datetime, zone: tzinfo | None) -> str:
    """An aware time as people read it in ``zone``: ``2026-11-11 20:00 +08:00`` (the offset, not an
    abbreviation: CST is China to some and Central US to others)."""
    local = stamp.astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


_MONTH_DAY = re.compile(r"^(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2}))?$")


def next_occurrence(text: str, zone: ZoneInfo, now: datetime | None = None, *, field: str = "start") -> datetime | None:
    """``MM-DD HH:MM`` (no year) as its next occurrence in ``zone`` after ``now``, e.g. '11-11 20:00'
    is the coming 11.11 at 20:00; None when ``text`` is not of that form."""
    m = _MONTH_DAY.match(text.strip())
    if m is None:
        return None
    month, day = int(m[1]), int(m[2])
    hour, minute = (int(m[3]), int(m[4])) if m[3] is not None else (0, 0)
    now = (now or datetime.now(UTC)).astimezone(zone)
    for year in (now.year, now.year + 1, now.year + 2, now.year + 3, now.year + 4):
        try:
            naive = datetime(year, month, day, hour, minute)
        except ValueError:
            continue  # 02-29 outside a leap year, or a month or day that does not exist
        if naive.replace(tzinfo=zone) > now:
            return in_zone(naive, zone, field=field)
    raise InputError(field, f"{text.strip()!r} is not a date", "give MM-DD HH:MM, e.g. 11-11 20:00")
