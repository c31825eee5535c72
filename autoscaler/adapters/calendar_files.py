"""Calendar files: CSV and YAML calendars read into the core's calendar model.

CSV rows are checked header first and each unreadable row is refused naming its line; YAML goes
through the guarded loader (no alias bombs, no huge documents). The field rules themselves
(``entry``, ``read_entries``) live with the model in ``autoscaler.core.calendar``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from autoscaler.adapters import yamlsafe
from autoscaler.adapters.trace_files import open_text
from autoscaler.core.calendar import CSV_COLUMNS, MAX_EVENTS, CalendarEntry, PromotionEvent, check_calendar, entry, read_entries, slug
from autoscaler.core.selectors import parse_selector
from autoscaler.errors import InputError, did_you_mean


def csv_calendar_rows(handle, label: str) -> Iterator[tuple[str, dict[str, str]]]:
    """The rows of a CSV calendar as (``"<label> line N"``, row with lower-case keys).

    Checks the header (start,end,name,kind required), skips blank rows, and turns an unreadable
    row into ``InputError`` naming its line. Shared by the backtest's loader and ``promo import``.
    """
    reader = csv.DictReader(handle)
    try:
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
        raise InputError(f"{label} header", f"cannot read ({exc})", "expected a UTF-8 CSV text file") from None
    missing = [c for c in ("start", "end", "name", "kind") if c not in fields]
    if missing:
        raise InputError(f"{label} header", f"missing column(s) {', '.join(missing)}", f"columns are {', '.join(CSV_KNOWN)}")
    unknown = [c for c in fields if c not in CSV_KNOWN]
    if unknown:
        hint = did_you_mean(unknown[0], CSV_KNOWN, cutoff=0.6)
        raise InputError(f"{label} header", f"unknown column(s) {', '.join(map(repr, unknown))}", f"{hint}the columns are {', '.join(CSV_KNOWN)}")
    reader.fieldnames = fields
    try:
        for row in reader:
            if all(not (v or "").strip() for k, v in row.items() if k is not None and isinstance(v, str)):
                continue
            yield f"{label} line {reader.line_num}", row
    except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
        raise InputError(f"{label} line {reader.line_num}", f"cannot read row ({exc})", "expected a UTF-8 CSV text file") from None


#: the columns a CSV calendar may have: the four required, then the optional ones. ``targets`` is a
#: label selector in kubectl's syntax (quote it: it has commas); ``like`` names past promotions,
#: separated by ``;`` or spaces; ``source`` says where the row came from and is not used
CSV_KNOWN = ("start", "end", "name", "kind", "title", "expected_multiplier", "expected_peak", "like", "targets", "source")


def csv_entries(handle, label: str, zone: ZoneInfo | None, *, slug_names: bool = False) -> list[CalendarEntry]:
    """The entries of a CSV calendar (``CSV_KNOWN``'s columns; any other is refused).
    ``slug_names``: names become object names (``promo import``), the name stays the title."""
    out = []
    for where, row in csv_calendar_rows(handle, label):
        raw_name = (row.get("name") or "").strip()
        item: dict[str, Any] = {
            "name": slug(raw_name) if slug_names else raw_name,
            "start": row.get("start") or "",
            "end": row.get("end") or "",
            "kind": row.get("kind") or "",
            "expectedMultiplier": row.get("expected_multiplier"),
            "expectedPeak": row.get("expected_peak"),
        }
        title = (row.get("title") or (raw_name if slug_names else "")).strip()
        if title:
            item["title"] = title
        targets = parse_selector(row.get("targets"), f"{where} targets")
        if targets:
            item["targets"] = targets
        like = (row.get("like") or "").replace(";", " ").split()
        if like:
            item["like"] = like
        out.append(entry(item, zone, where, columns=CSV_COLUMNS))
        if len(out) > MAX_EVENTS:
            raise InputError(label, f"over {MAX_EVENTS:,} promotions", "split the calendar")
    return out


def load_calendar(path: str | Path, zone: ZoneInfo) -> list[PromotionEvent]:
    """Load a ``.csv`` or ``.yaml``/``.yml`` calendar and check it as a whole."""
    path = Path(path)
    if not path.is_file():
        raise InputError("--events", f"no such file {str(path)!r}", "give a CSV or YAML calendar")
    name = path.name.removesuffix(".gz")
    label = f"calendar {path.name}"
    if name.endswith(".csv"):
        with open_text(path) as handle:
            entries = csv_entries(handle, label, zone)
    elif name.endswith((".yaml", ".yml")):
        entries = read_entries(yamlsafe.read(path, label), zone, label)
    else:
        raise InputError("--events", f"unknown calendar format {path.name!r}", "use a .csv or .yaml file")
    events = [e.event(zone) for e in entries]
    check_calendar(events)
    return events
