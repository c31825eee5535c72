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

import math
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from zoneinfo import ZoneInfo

from autoscaler.errors import InputError, did_you_mean, dotted, validation_problem

if TYPE_CHECKING:
    import numpy as np
from autoscaler.core.timezones import get_zone, parse_aware, wall_seconds

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
    #: the PromotionEvent's namespace; None for an entry of a calendar file, which applies in every
    #: namespace (``resources.applies``: the one rule)
    namespace: str | None = None
    #: what was recorded of it once it was over, per policy (status.memory, or the calendar file)
    memories: tuple[EventProfile, ...] = ()
    #: the one the forecaster learns from (``for_policy`` chooses it)
    memory: EventProfile | None = None

    def for_policy(self, policy: str) -> PromotionEvent:
        """The event as one policy's forecaster sees it: with the profile recorded for that policy
        (or, for a policy added since, one recorded for another)."""
        if not self.memories:
            return self
        chosen = next((m for m in self.memories if m.policy == policy), self.memories[0])
        return self if chosen is self.memory else self.model_copy(update={"memory": chosen})

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> PromotionEvent:
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
    def _window_sane(self) -> PromotionEvent:
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
            loc, msg = validation_problem(exc.errors())
            raise InputError(f"{where}[{i}] {dotted(loc)}".rstrip(), msg, "as `peakscale promo export` writes it") from None
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


@dataclass(frozen=True)
class CalendarEntry:
    """One promotion as a calendar states it: its name, its spec as the PromotionEvent CRD spells
    it (RFC 3339 times with offsets), and what was recorded of it."""

    name: str
    spec: dict[str, Any]
    memory: tuple[EventProfile, ...] = ()
    where: str = ""

    def event(self, zone: ZoneInfo) -> PromotionEvent:
        """The calendar event in wall-clock time of ``zone`` (what the planner uses): the spec read
        as the PromotionEvent CRD reads it (``resources.event_of``, the one conversion)."""
        from autoscaler.core.resources import event_of  # resources builds on this module

        return event_of(self.spec, self.name, zone, self.memory, where=self.where or f"event {self.name!r}")


#: what a calendar entry may say (the PromotionEvent spec, its name, and its memory)
ENTRY_KEYS = ("name", "title", "start", "end", "kind", "expectedMultiplier", "expectedPeak", "like", "targets", "memory")
TOP_KEYS = ("timezone", "events")
#: the years a promotion may fall in
YEARS = (1970, 9000)
MAX_PEAK = 1e15
#: the most promotions a calendar may hold
MAX_EVENTS = 100_000


def unknown_key(key: Any, known: tuple[str, ...], where: str) -> InputError:
    """A key nobody reads: named, with the nearest known one (a typo such as ``sart``)."""
    fix = did_you_mean(key, known).rstrip() or f"known keys: {', '.join(known)}"
    return InputError(f"{where} {key}", "unknown key", fix)


def stamp(value: Any, zone: ZoneInfo | None, where: str) -> datetime:
    """An aware time from a calendar: ISO 8601 text (naive: in ``zone``) or a YAML timestamp;
    never a number (12345 is not 1970) and never outside 1970-9000."""
    if isinstance(value, datetime):
        value = value.isoformat()
    if isinstance(value, bool) or not isinstance(value, str):
        raise InputError(where, f"{value!r} is not a time", "give an ISO 8601 time such as 2026-11-11 20:00")
    if not value.strip():
        raise InputError(where, "missing", "give an ISO 8601 time such as 2026-11-11 20:00")
    aware = parse_aware(value, zone, field=where)
    if not YEARS[0] <= aware.year < YEARS[1]:
        raise InputError(where, f"{value!r} is outside {YEARS[0]}-{YEARS[1] - 1}", "give a time such as 2026-11-11 20:00")
    return aware


def number(value: Any, where: str, *, lo: float, hi: float, what: str) -> float | None:
    """A number from a calendar (text from a CSV is fine); never a boolean, never inf or NaN."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(where, f"{value!r} is not a number", f"give {what}")
    try:
        result = float(value)
    except ValueError:
        raise InputError(where, f"not a number: {value!r}", f"give {what}") from None
    if not math.isfinite(result) or not lo < result <= hi:
        raise InputError(where, f"{value!r} is outside ({lo:g}, {hi:g}]", f"give {what}")
    return result


def _text_field(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list, bool)):
        raise InputError(where, f"{value!r} is not text", "give a string")
    return str(value).strip()


#: the CSV calendar's names for the spec's fields (errors name the column the user wrote)
CSV_COLUMNS = {"expectedMultiplier": "expected_multiplier", "expectedPeak": "expected_peak"}


def entry(item: Any, zone: ZoneInfo | None, where: str, *, columns: dict[str, str] | None = None) -> CalendarEntry:
    """One calendar entry (a YAML mapping, or a CSV row turned into one: ``columns`` names its
    fields as the CSV does)."""
    if not isinstance(item, dict):
        raise InputError(where, "must be a mapping", "each event has name, start, end, kind")
    for key in item:
        if key not in ENTRY_KEYS:
            raise unknown_key(key, ENTRY_KEYS, where)
    name = _text_field(item.get("name"), f"{where} name")
    if not name:
        raise InputError(f"{where} name", "missing", "give every event a name")
    if columns is None:
        where = f"{where} ({name})"
    col = (columns or {}).get
    spec: dict[str, Any] = {
        "start": stamp(item.get("start"), zone, f"{where} start").isoformat(timespec="seconds"),
        "end": stamp(item.get("end"), zone, f"{where} end").isoformat(timespec="seconds"),
        "kind": _text_field(item.get("kind"), f"{where} kind"),
    }
    if not spec["kind"]:
        raise InputError(f"{where} kind", "missing", "give a kind such as double11 or flash-sale")
    title = _text_field(item.get("title"), f"{where} title")
    if title:
        spec["title"] = title
    multiplier = number(item.get("expectedMultiplier"), f"{where} {col('expectedMultiplier', 'expectedMultiplier')}", lo=0, hi=MAX_MULTIPLIER, what="the peak over the usual load, e.g. 3")
    peak = number(item.get("expectedPeak"), f"{where} {col('expectedPeak', 'expectedPeak')}", lo=0, hi=MAX_PEAK, what="the expected peak of the metric")
    if multiplier is not None and peak is not None:
        raise InputError(f"{where} {col('expectedPeak', 'expectedPeak')}", "given with an expected multiplier", "give one of them")
    if multiplier is not None:
        spec["expectedMultiplier"] = multiplier
    if peak is not None:
        spec["expectedPeak"] = peak
    like = item.get("like")
    if like:
        names = [like] if isinstance(like, str) else like
        if not isinstance(names, list) or not all(isinstance(x, str) and x.strip() for x in names):
            raise InputError(f"{where} like", f"{like!r} is not a list of promotion names", "e.g. like: [double11-2025]")
        not_itself(name, names, f"{where} like")
        spec["like"] = [x.strip() for x in names]
    targets = item.get("targets")
    if isinstance(targets, str):  # kubectl's syntax, as --targets and the CSV column take it
        from autoscaler.core.selectors import parse_selector

        targets = parse_selector(targets, f"{where} targets")
    if targets:
        if not isinstance(targets, dict):
            raise InputError(f"{where} targets", "must be a label selector", "e.g. targets: 'peakscale.io/tier in (cache,database)' or {matchLabels: {peakscale.io/tier: cache}}")
        spec["targets"] = targets
    return CalendarEntry(name=name, spec=spec, memory=parse_memories(item.get("memory"), f"{where} memory"), where=where)


def read_entries(doc: Any, zone: ZoneInfo | None, label: str) -> list[CalendarEntry]:
    """The entries of a YAML calendar document (``timezone:`` for its naive times; an offset wins);
    the first bad entry refuses the whole document (a command's input)."""
    items, zone = _items(doc, zone, label)
    return [entry(item, zone, f"{label} events[{i}]") for i, item in enumerate(items)]


def read_entries_isolated(doc: Any, zone: ZoneInfo | None, label: str) -> tuple[list[CalendarEntry], list[InputError]]:
    """The good entries of a calendar document, and what is wrong with each bad one: a bad entry
    is skipped like a bad object, the others still apply (the controller's ``--calendar``). A
    document that is not a calendar at all still raises."""
    items, zone = _items(doc, zone, label)
    good, bad = [], []
    for i, item in enumerate(items):
        try:
            good.append(entry(item, zone, f"{label} events[{i}]"))
        except InputError as exc:
            bad.append(exc)
    return good, bad


def _items(doc: Any, zone: ZoneInfo | None, label: str) -> tuple[list[Any], ZoneInfo | None]:
    """The raw ``events`` items of a calendar document, and the zone its naive times are in."""
    if doc is None:
        return [], zone
    if isinstance(doc, list):
        doc = {"events": doc}
    if not isinstance(doc, dict):
        raise InputError(label, "top level must be a mapping with an 'events' list", "see the calendar format in the README")
    for key in doc:
        # other top-level keys are the file owner's (kept by the store); a near miss is a typo
        if key not in TOP_KEYS and did_you_mean(key, TOP_KEYS, cutoff=0.6):
            raise unknown_key(key, TOP_KEYS, label)
    if doc.get("timezone") is not None:
        if not isinstance(doc["timezone"], str):
            raise InputError(f"{label} timezone", f"{doc['timezone']!r} is not a zone name", "use an IANA name such as Asia/Shanghai")
        zone = get_zone(doc["timezone"], field=f"{label} timezone")
    items = doc.get("events") or []
    if not isinstance(items, list):
        raise InputError(f"{label} events", "must be a list", "write events: as a YAML list")
    if len(items) > MAX_EVENTS:
        raise InputError(f"{label} events", f"{len(items):,} promotions, over {MAX_EVENTS:,}", "split the calendar")
    return items, zone


def slug(text: str) -> str:
    """A promotion name as an object name: lowercase letters, digits and '-'."""
    out = "".join(c if (c.isascii() and c.isalnum()) else "-" for c in text.strip().lower())
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")[:63].strip("-")


def check_calendar(events: list[PromotionEvent]) -> None:
    """Whole-calendar rules (``check_names``) over a calendar's events."""
    check_names([(e.name, e.like) for e in events])


def check_names(named: Sequence[tuple[str, Sequence[str]]], *, where: Callable[[str], str] = lambda n: f"event {n!r}", known: str = "the calendar") -> None:
    """Whole-calendar rules, the one home for a calendar file, the promotion store and the
    controller's file: every name once, each ``like`` naming another promotion of the calendar."""
    seen: set[str] = set()
    for name, _ in named:
        if name in seen:
            raise InputError(where(name), f"duplicate name {name!r}", "give every promotion a unique name")
        seen.add(name)
    for name, like in named:
        not_itself(name, like, f"{where(name)} like")
        for other in like:
            if other not in seen:
                raise InputError(f"{where(name)} like", f"names unknown promotion {other!r}", f"name a promotion in {known}")


def not_itself(name: str, like: Sequence[str], field: str) -> None:
    """A promotion is never ``like`` itself (it learns from past ones of its kind)."""
    if name in like:
        raise InputError(field, f"{name!r} names the promotion itself", "name past promotions of the kind")


def event_mask(times_s: np.ndarray, events: Iterable[PromotionEvent], *, pad_before_s: int = 0, pad_after_s: int = 0) -> np.ndarray:
    """Boolean mask of samples inside any event window (optionally padded)."""
    import numpy as np  # here, not at the top: reading a calendar (promo list) needs no numpy

    mask = np.zeros(len(times_s), dtype=bool)
    for event in events:
        lo = np.searchsorted(times_s, event.start_s - pad_before_s, side="left")
        hi = np.searchsorted(times_s, event.end_s + pad_after_s, side="left")
        mask[lo:hi] = True
    return mask
