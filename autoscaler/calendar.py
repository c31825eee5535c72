"""The promotion calendar: planned surges, loaded from YAML or CSV.

Owns the ``PromotionEvent`` model (the same fields as the PromotionEvent custom resource's spec)
and the two file formats:

* the project's YAML calendar::

      timezone: Asia/Shanghai          # for naive times below; offsets win
      events:
        - name: double11-2026
          title: "11.11 midnight sale"
          start: 2026-11-10 23:30
          end: 2026-11-11 02:00
          kind: double11
          expectedMultiplier: 8        # or expectedPeak: 120000 (absolute metric value)
          like: [double11-2025]

* a CSV with columns ``start,end,name,kind`` plus optional ``expected_multiplier`` and
  ``expected_peak``; other columns are ignored.

A calendar that fails validation raises ``InputError`` naming the row and field; nothing is
half-loaded.
"""

from __future__ import annotations

import csv
import math
from functools import cached_property
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from zoneinfo import ZoneInfo

from autoscaler.errors import InputError
from autoscaler.timezones import get_zone, parse_timestamp, wall_seconds
from autoscaler.trace import open_text

#: Kinds that describe the data rather than a plan: a calendar-driven scaler cannot know them.
DATA_KIND_MARKERS = ("anomaly", "artifact", "outage", "gap")
MAX_MULTIPLIER = 1000.0


class EventProfile(BaseModel):
    """What was observed of a past event, recorded once its window and cool-down had passed (its
    memory beyond the history window): the load over the no-event baseline, one point per
    ``step_s`` from ``offset_s`` seconds after the start (negative: before it) to the end."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    policy: str = ""
    step_s: int = Field(gt=0, alias="stepSeconds")
    offset_s: int = Field(alias="offsetSeconds")
    uplift: tuple[float, ...] = Field(min_length=1, max_length=2000)
    peak_uplift: float = Field(ge=0, alias="peakUplift")
    minutes_to_peak: float = Field(alias="minutesToPeak")
    #: when it became known (the event's end plus the cool-down), seconds in the planner's clock
    recorded_at_s: int = Field(alias="recordedAtSeconds")

    @field_validator("uplift")
    @classmethod
    def _finite(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(math.isfinite(v) and 0 <= v <= 1e6 for v in value):
            raise ValueError("uplift values must be finite and between 0 and 1e6")
        return value

    def summary(self) -> str:
        return f"peak x{self.peak_uplift:g} over the usual load, {self.minutes_to_peak:+g} min from the start"


class PromotionEvent(BaseModel):
    """One planned surge. ``start``/``end`` are naive wall-clock times of the calendar's zone."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    name: str = Field(min_length=1)
    title: str = ""
    start: datetime
    end: datetime
    kind: str = Field(min_length=1)
    expected_multiplier: float | None = Field(default=None, alias="expectedMultiplier")
    expected_peak: float | None = Field(default=None, alias="expectedPeak")
    like: tuple[str, ...] = ()
    targets: dict[str, Any] | None = None
    #: what was recorded of it once it was over, per policy (status.memory, or the calendar file)
    memories: tuple[EventProfile, ...] = ()
    #: the one the forecaster learns from (``for_policy`` chooses it)
    memory: EventProfile | None = None

    def for_policy(self, policy: str) -> "PromotionEvent":
        """The event as one policy's forecaster sees it: with the profile recorded for that policy
        (or, for a policy added since, one recorded for another)."""
        if not self.memories:
            return self
        chosen = next((m for m in self.memories if m.policy == policy), self.memories[0])
        return self if chosen is self.memory else self.model_copy(update={"memory": chosen})

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> "PromotionEvent":
        if update:  # validated again, so the cached seconds follow the new times
            return type(self).model_validate({**self.model_dump(), **update})
        return super().model_copy(deep=deep)

    @field_validator("expected_multiplier")
    @classmethod
    def _multiplier_sane(cls, value: float | None) -> float | None:
        if value is not None and (not math.isfinite(value) or value <= 0 or value > MAX_MULTIPLIER):
            raise ValueError(f"must be > 0 and <= {MAX_MULTIPLIER:g} (peak over baseline, e.g. 3 for 3x)")
        return value

    @field_validator("expected_peak")
    @classmethod
    def _peak_sane(cls, value: float | None) -> float | None:
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise ValueError("must be a positive metric value")
        return value

    @model_validator(mode="after")
    def _window_sane(self) -> "PromotionEvent":
        if self.end <= self.start:
            raise ValueError(f"end {self.end.isoformat(' ')} is not after start {self.start.isoformat(' ')}")
        if self.expected_multiplier is not None and self.expected_peak is not None:
            raise ValueError("give expectedMultiplier or expectedPeak, not both")
        return self

    @property
    def label(self) -> str:
        return self.title or self.name

    # wall-clock seconds, computed once: the backtest looks them up hundreds of thousands of times
    @cached_property
    def start_s(self) -> int:
        return wall_seconds(self.start)

    @cached_property
    def end_s(self) -> int:
        return wall_seconds(self.end)


def parse_memories(items: Any, where: str) -> tuple[EventProfile, ...]:
    """A calendar entry's ``memory`` list (as in a PromotionEvent's status.memory)."""
    from pydantic import ValidationError

    if items is None:
        return ()
    if not isinstance(items, list):
        raise InputError(where, "must be a list of recorded profiles", "as `peakscale promo export` writes it")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(EventProfile.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err.get("loc", ()))
            raise InputError(f"{where}[{i}] {loc}".rstrip(), err.get("msg", "invalid").removeprefix("Value error, "), "as `peakscale promo export` writes it") from None
    return tuple(out)


def is_data_kind(kind: str) -> bool:
    """True for kinds that describe the data (anomalies, artifacts, outages, gaps), not a plan."""
    lowered = kind.lower()
    return any(marker in lowered for marker in DATA_KIND_MARKERS)


def select_kinds(events: Iterable[PromotionEvent], kinds: Iterable[str] | None) -> list[PromotionEvent]:
    """Keep the events whose kind is listed; by default every kind that is not a data kind."""
    wanted = list(kinds or [])
    if wanted:
        chosen = set(wanted)
        return [e for e in events if e.kind in chosen]
    return [e for e in events if not is_data_kind(e.kind)]


def _event(fields: dict[str, Any], where: str) -> PromotionEvent:
    from pydantic import ValidationError

    try:
        return PromotionEvent(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ())) or "event"
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        raise InputError(f"{where} {loc}", msg, "fix the calendar entry") from None


def _time_field(value: Any, zone: ZoneInfo, where: str) -> datetime:
    if isinstance(value, datetime):
        value = value.isoformat()
    if value is None or str(value).strip() == "":
        raise InputError(where, "missing", "give an ISO 8601 time such as 2026-11-11 20:00")
    return parse_timestamp(str(value), zone, field=where)


def _float_field(value: Any, where: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(where, f"not a number: {value!r}", "give a number") from None


def csv_calendar_rows(handle, label: str) -> Iterator[tuple[str, dict[str, str]]]:
    """The rows of a CSV calendar as (``"<label> line N"``, row with lower-case keys).

    Checks the header (start,end,name,kind required), skips blank rows, and turns an unreadable
    row into ``InputError`` naming its line. Shared by the backtest's loader and ``promo import``.
    """
    reader = csv.DictReader(handle)
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    missing = [c for c in ("start", "end", "name", "kind") if c not in fields]
    if missing:
        raise InputError(f"{label} header", f"missing column(s) {', '.join(missing)}", "columns are start,end,name,kind[,expected_multiplier,expected_peak]")
    reader.fieldnames = fields
    try:
        for row in reader:
            if all(not (v or "").strip() for k, v in row.items() if k is not None and isinstance(v, str)):
                continue
            yield f"{label} line {reader.line_num}", row
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{label} line {reader.line_num}", f"cannot read row ({exc})", "expected a CSV text file") from None


def load_csv_calendar(path: Path, zone: ZoneInfo) -> list[PromotionEvent]:
    events: list[PromotionEvent] = []
    with open_text(path) as handle:
        for where, row in csv_calendar_rows(handle, f"calendar {path.name}"):
            events.append(
                _event(
                    {
                        "name": (row.get("name") or "").strip(),
                        "start": _time_field(row.get("start"), zone, f"{where} start"),
                        "end": _time_field(row.get("end"), zone, f"{where} end"),
                        "kind": (row.get("kind") or "").strip(),
                        "expected_multiplier": _float_field(row.get("expected_multiplier"), f"{where} expected_multiplier"),
                        "expected_peak": _float_field(row.get("expected_peak"), f"{where} expected_peak"),
                    },
                    where,
                )
            )
    return events


def events_from_mapping(doc: Any, zone: ZoneInfo, label: str) -> list[PromotionEvent]:
    """Build events from the parsed YAML calendar document."""
    if doc is None:
        return []
    if isinstance(doc, list):
        doc = {"events": doc}
    if not isinstance(doc, dict):
        raise InputError(label, "top level must be a mapping with an 'events' list", "see the calendar format in the README")
    if doc.get("timezone") is not None:
        zone = get_zone(str(doc["timezone"]), field=f"{label} timezone")
    items = doc.get("events") or []
    if not isinstance(items, list):
        raise InputError(f"{label} events", "must be a list", "write events: as a YAML list")
    events = []
    for i, item in enumerate(items):
        where = f"{label} events[{i}]"
        if not isinstance(item, dict):
            raise InputError(where, "must be a mapping", "each event has name, start, end, kind")
        fields = dict(item)
        fields["start"] = _time_field(fields.get("start"), zone, f"{where} start")
        fields["end"] = _time_field(fields.get("end"), zone, f"{where} end")
        for key in ("name", "kind", "title"):
            if key in fields and fields[key] is not None:
                fields[key] = str(fields[key])
        if "like" in fields and fields["like"] is not None:
            like = fields["like"]
            fields["like"] = tuple([like] if isinstance(like, str) else [str(x) for x in like])
        if "memory" in fields:
            fields["memories"] = parse_memories(fields.pop("memory"), f"{where} memory")
            fields["memory"] = fields["memories"][0] if fields["memories"] else None
        events.append(_event(fields, where))
    return events


def load_calendar(path: str | Path, zone: ZoneInfo) -> list[PromotionEvent]:
    """Load a ``.csv`` or ``.yaml``/``.yml`` calendar and check it as a whole."""
    path = Path(path)
    if not path.is_file():
        raise InputError("--events", f"no such file {str(path)!r}", "give a CSV or YAML calendar")
    name = path.name.removesuffix(".gz")
    if name.endswith(".csv"):
        events = load_csv_calendar(path, zone)
    elif name.endswith((".yaml", ".yml")):
        try:
            with open_text(path) as handle:
                doc = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"calendar {path.name}" + (f" line {mark.line + 1}" if mark else "")
            raise InputError(where, "malformed YAML", "fix the YAML syntax") from None
        events = events_from_mapping(doc, zone, f"calendar {path.name}")
    else:
        raise InputError("--events", f"unknown calendar format {path.name!r}", "use a .csv or .yaml file")
    check_calendar(events)
    return events


def check_calendar(events: list[PromotionEvent]) -> None:
    """Whole-calendar rules: unique names, ``like`` naming known events."""
    seen: set[str] = set()
    for event in events:
        if event.name in seen:
            raise InputError(f"event {event.name!r}", "duplicate name", "give every event a unique name")
        seen.add(event.name)
    for event in events:
        for other in event.like:
            if other not in seen:
                raise InputError(f"event {event.name!r} like", f"names unknown event {other!r}", "name an event in the calendar")


def event_mask(times_s: np.ndarray, events: Iterable[PromotionEvent], *, pad_before_s: int = 0, pad_after_s: int = 0) -> np.ndarray:
    """Boolean mask of samples inside any event window (optionally padded)."""
    mask = np.zeros(len(times_s), dtype=bool)
    for event in events:
        lo = np.searchsorted(times_s, event.start_s - pad_before_s, side="left")
        hi = np.searchsorted(times_s, event.end_s + pad_after_s, side="left")
        mask[lo:hi] = True
    return mask
