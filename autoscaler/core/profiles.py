"""Event profiles: how the load of past events of one kind grew, aligned on start and on end, learned
from the history in view or from the memory the controller recorded once an event was over
(``record_profile``), so that once-a-year events teach beyond Prometheus' retention.
"""

from __future__ import annotations

import hashlib
import math
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoscaler.core.calendar import EventProfile, PromotionEvent
from autoscaler.core.baseline import Baseline, ForecastSettings, baseline_for, conformal_cols, conformal_rank, level_ratios, median_without_each, nan_quantile_cols


#: a recorded event profile holds at most this many points (a few kB in a PromotionEvent's status)
MEMORY_POINTS = 240


@dataclass(frozen=True)
class KindProfile:
    """Growth learned from past events for one event (by kind or by ``like``)."""

    source: tuple[str, ...]
    #: growth[0 central | 1 upper, tau_index, h]; tau_index 0 is ``pre_steps`` before the start
    growth: np.ndarray
    #: the same anchored on the end; tau_index 0 is ``pre_end_steps`` before the end
    growth_end: np.ndarray
    #: typical shape of load over baseline (median), normalised to a peak of 1; same tau axis
    shape: np.ndarray
    #: median peak of load over baseline in past events
    peak_uplift: float
    pre_steps: int
    pre_end_steps: int
    #: from this many steps after the start on, the end-anchored table applies
    half_steps: int


def _growth_table(
    loads: list[np.ndarray],
    pre: int,
    post: int,
    horizon: int,
    settings: ForecastSettings,
    step_s: int,
    rows: tuple[int, int] | None = None,
) -> np.ndarray | None:
    """growth[0 central | 1 upper, k, h] for offsets ``k - pre`` from each past event's anchor.

    ``loads`` holds one array per past event (``_segment``): its load from ``pre + slack +
    window`` steps before the anchor, NaN where nothing is known. For each event, the level (mean of
    the last ``level_window`` samples) at offset tau and at tau + h; the median and the
    split-conformal bound at ``settings.coverage`` (``conformal_cols``) over events, pooled over
    ``align_slack`` offsets around tau so that an event a few minutes late still teaches, of their
    ratio. The upper bound is also never below the central growth times the spread of past events
    around it at that horizon (split-conformal over every offset and event, each event scored
    against the median of the others), which high coverages need: 24 events alone support 96 %.
    Only ``rows`` (a half-open range of k) are filled, the others left at 1: the live path needs one.
    """
    window = max(1, settings.level_window_s // step_s)
    slack = max(0, settings.align_slack_s // step_s)
    span = pre + post + 1
    levels = [level_ratios(seg, np.ones_like(seg), window) for seg in loads]
    if not levels:
        return None
    levels_a = np.asarray(levels)
    r_lo, r_hi = rows if rows is not None else (0, span)
    r_lo, r_hi = max(0, r_lo), min(span, r_hi)
    growth = np.ones((2, span, horizon + 1))
    if r_hi <= r_lo:
        return growth
    off = window + slack
    shifts = np.arange(-slack, slack + 1)
    ratio = _ratios(levels_a, off + shifts[:, None] + np.arange(r_lo, r_hi)[None, :], horizon)
    central = nan_quantile_cols(ratio.reshape(-1, r_hi - r_lo, horizon + 1), 0.5)
    # the unit a new event is exchangeable with is a past event: its largest growth over the
    # aligned offsets, and the conformal rank over events (24 past events support 96 % at most)
    per_event = _nanmax(ratio, axis=1)
    upper, _ = conformal_cols(per_event, settings.coverage)
    upper = np.fmax(upper, central * _spread(levels_a, (off, slack, span), horizon, settings.coverage)[None, :])
    q = np.stack([central, np.maximum(upper, central)])
    growth[:, r_lo:r_hi] = np.where(np.isfinite(q), q, 1.0)
    return growth


#: the spreads of recent tables (``_spread``), by a digest of what they are computed from: enough
#: for every (policy, event, table) a controller of thousands of policies plans in one cycle (an
#: entry is a few hundred bytes)
SPREADS_KEPT = 16_384
_SPREADS: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
_SPREADS_LOCK = threading.Lock()


def clear_memo() -> None:
    """Forget the memoized spreads (``_spread``): for a benchmark of cold cycles."""
    with _SPREADS_LOCK:
        _SPREADS.clear()


def _spread(levels: np.ndarray, layout: tuple[int, int, int], horizon: int, coverage: float) -> np.ndarray:
    """How far past events went above the central growth, at each horizon, at the coverage asked
    (split-conformal): each event's growth at each offset over the median growth of the *other*
    events there, over the aligned offsets as the central growth pools them (a score is never
    measured by a fit it shaped), pooled over every offset of the table, so a few events support high coverages (24 events alone support 96 %). Never
    below 1. Memoized on its inputs: every cycle of a controller learns the same past events."""
    off, slack, span = layout
    key = (hashlib.blake2b(np.ascontiguousarray(levels).tobytes(), digest_size=16).digest(), levels.shape, layout, horizon, coverage)
    with _SPREADS_LOCK:
        if key in _SPREADS:
            _SPREADS.move_to_end(key)
            return _SPREADS[key]
    every = _ratios(levels, off + np.arange(-slack, slack + 1)[:, None] + np.arange(span)[None, :], horizon)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = every[:, slack] / np.maximum(median_without_each(every), 1e-12)
    bound, _ = conformal_cols(scores.reshape(-1, horizon + 1), coverage)
    spread = np.where(np.isfinite(bound), np.maximum(bound, 1.0), 1.0)
    with _SPREADS_LOCK:
        _SPREADS[key] = spread
        while len(_SPREADS) > SPREADS_KEPT:
            _SPREADS.popitem(last=False)
    return spread


def _ratios(levels: np.ndarray, now_idx: np.ndarray, horizon: int) -> np.ndarray:
    """Each past event's growth ratio (events, shifts, rows, h): its level ``h`` steps after each
    offset of ``now_idx`` (shifts, rows) over its level at the offset."""
    fut_idx = now_idx[:, :, None] + np.arange(horizon + 1)[None, None, :]
    with np.errstate(invalid="ignore"):
        out: np.ndarray = levels[:, fut_idx] / np.maximum(levels[:, now_idx], 1e-12)[..., None]
    return out


def _nanmax(grid: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out: np.ndarray = np.nanmax(grid, axis=axis)
    return out


def _width(pre: int, post: int, horizon: int, settings: ForecastSettings, step_s: int) -> tuple[int, int]:
    """(segment width, steps before the anchor) of a growth table's segments."""
    window = max(1, settings.level_window_s // step_s)
    slack = max(0, settings.align_slack_s // step_s)
    return pre + post + 1 + horizon + 2 * slack + window, pre + window + slack


def _raw_segment(values: np.ndarray, anchor: int, before: int, width: int, visible_lo: int, last: int) -> np.ndarray:
    """Samples ``[anchor - before, anchor - before + width)``, NaN outside ``[visible_lo, last]``."""
    lo = anchor - before
    seg = np.full(width, np.nan)
    a, b = max(lo, visible_lo), min(lo + width, last + 1)
    if b > a:
        seg[a - lo : b - lo] = values[a:b]
    return seg


def _memory_segment(memory: EventProfile, anchor_rel_s: int, before: int, width: int, step_s: int) -> np.ndarray:
    """A recorded profile as a segment: the uplift at ``anchor_rel_s + (j - before) * step`` seconds
    from the event's start (NaN outside what was recorded). Inside an event the event drives the
    load, so its uplift over the day's baseline stands in for the load itself."""
    rel = anchor_rel_s + (np.arange(width) - before) * step_s - memory.offset_s
    k = np.floor_divide(rel, memory.step_s)
    points = np.asarray(memory.uplift, dtype=float)
    ok = (rel >= 0) & (k < len(points))
    return np.where(ok, points[np.clip(k, 0, len(points) - 1)], np.nan)


def learn_profile(
    times_s: np.ndarray,
    values: np.ndarray,
    baseline: Baseline,
    past: list[PromotionEvent],
    last: int,
    duration_steps: int,
    horizon: int,
    settings: ForecastSettings,
    offsets: tuple[int, int] | None = None,
    visible_lo: int = 0,
) -> KindProfile | None:
    """Learn growth and shape from ``past`` events, using only samples ``[visible_lo, last]``.

    Growth is learned on the load itself (not over baseline): inside an event the event, not
    the time of day, drives the load, and past events of a kind need not fall at the same hour.
    Two tables: one anchored on the start (the run-up), one on the end (the rush at the final
    whistle, the last minutes of a sale), since past events need not last as long as this one.
    A past event whose samples are outside the history window teaches through the profile
    recorded for it (``EventProfile``), once that was recorded. ``offsets`` (half-open, in steps
    from this event's start) limits the work to the offsets a caller will look up.
    """
    step_s = baseline.step_s
    t0 = int(times_s[0])
    now_s = int(times_s[last])
    half = duration_steps // 2
    pre_start = horizon
    pre_end = duration_steps - half + horizon
    w_start, before_start = _width(pre_start, half + horizon, horizon, settings, step_s)
    w_end, before_end = _width(pre_end, 2 * horizon, horizon, settings, step_s)
    span = pre_start + duration_steps + horizon + 1
    from_starts, from_ends, ratios, sources = [], [], [], []
    for e in past:
        start = (e.start_s - t0) // step_s
        end = (e.end_s - t0 + step_s - 1) // step_s
        if start - before_start >= visible_lo and last >= start - pre_start + 1:
            from_starts.append(_raw_segment(values, start, before_start, w_start, visible_lo, last))
            from_ends.append(_raw_segment(values, end, before_end, w_end, visible_lo, last))
            lo, hi = start - pre_start, min(start - pre_start + span, last + 1)
            r = np.full(span, np.nan)
            r[: hi - lo] = values[lo:hi] / baseline.at(times_s[lo:hi])
            ratios.append(r)
            sources.append(e.name)
        elif e.memory is not None and e.memory.recorded_at_s <= now_s:
            m = e.memory
            duration_s = e.end_s - e.start_s
            from_starts.append(_memory_segment(m, 0, before_start, w_start, step_s))
            from_ends.append(_memory_segment(m, duration_s, before_end, w_end, step_s))
            ratios.append(_memory_segment(m, 0, pre_start, span, step_s))
            sources.append(f"{e.name} (recorded)")
    rows_start = rows_end = None
    if offsets is not None:
        rows_start = (offsets[0] + pre_start, min(offsets[1], half) + pre_start)
        rows_end = (max(offsets[0], half) - duration_steps + pre_end, offsets[1] - duration_steps + pre_end)
    from_start = _growth_table(from_starts, pre_start, half + horizon, horizon, settings, step_s, rows_start)
    from_end = _growth_table(from_ends, pre_end, 2 * horizon, horizon, settings, step_s, rows_end)
    if from_start is None or from_end is None:
        return None
    # the typical shape of load over baseline, start-anchored, for operator-sized floors
    typical = nan_quantile_cols(np.asarray(ratios), 0.5) if ratios else np.ones(span)
    typical = np.where(np.isfinite(typical), typical, 1.0)
    peak = float(np.max(typical)) if typical.size else 1.0
    shape = typical / peak if peak > 0 else np.ones_like(typical)
    return KindProfile(
        source=tuple(sources),
        growth=from_start,
        growth_end=from_end,
        shape=shape,
        peak_uplift=peak,
        pre_steps=pre_start,
        pre_end_steps=pre_end,
        half_steps=half,
    )


def record_profile(
    times_s: np.ndarray,
    values: np.ndarray,
    calendar: list[PromotionEvent],
    event: PromotionEvent,
    *,
    step_s: int,
    lead_time_s: int,
    settings: ForecastSettings,
    recorded_at_s: int,
    policy: str = "",
    max_points: int = MEMORY_POINTS,
) -> EventProfile | None:
    """What the controller records of ``event`` once it is over: the load over the no-event
    baseline (the daily profile fitted with event windows masked), aligned on the start, from
    ``lead_time_s`` before it (plus the minutes the forecaster pools over around an offset) to
    its end, averaged over ``step_s`` or a coarser step so that it holds at most ``max_points``
    points, three significant digits each (a few kB in a status).

    None when the samples do not cover the event. A function of the samples alone: the
    controller's cache and the backtest's trace record the same bytes.
    """
    from autoscaler.core.calendar import EventProfile, event_mask

    before_s = lead_time_s + settings.align_slack_s + settings.level_window_s
    lo = int(np.searchsorted(times_s, event.start_s - before_s, side="left"))
    hi = int(np.searchsorted(times_s, event.end_s, side="left"))
    if hi <= lo or hi > len(times_s) - 1 or times_s[lo] > event.start_s:
        return None
    masked = event_mask(times_s, calendar)
    base = baseline_for(times_s, values, masked, hi - 1, step_s, settings)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = values[lo:hi] / base.at(times_s[lo:hi])
    per = max(1, -(-(hi - lo) // max_points))
    n = -(-(hi - lo) // per)
    padded = np.full(n * per, np.nan)
    padded[: hi - lo] = ratio
    with np.errstate(invalid="ignore"):
        points = np.nanmean(padded.reshape(n, per), axis=1) if np.isfinite(padded).any() else padded[:n]
    points = np.array([_three_digits(p) for p in points])
    if not np.isfinite(points).any():
        return None
    top = int(np.nanargmax(points))
    offset_s = int(times_s[lo]) - event.start_s
    return EventProfile(
        policy=policy,
        step_s=step_s * per,
        offset_s=offset_s,
        uplift=tuple(float(p) if np.isfinite(p) else 0.0 for p in points),
        peak_uplift=float(points[top]),
        minutes_to_peak=round((offset_s + top * step_s * per) / 60, 1),
        recorded_at_s=recorded_at_s,
    )


def _three_digits(value: float) -> float:
    if not math.isfinite(value) or value == 0:
        return float("nan") if not math.isfinite(value) else 0.0
    return round(value, 2 - int(math.floor(math.log10(abs(value)))))


def related_past_events(
    event: PromotionEvent, events: list[PromotionEvent], now_s: int, limit: int | None = None
) -> list[PromotionEvent]:
    """Past events that teach ``event``: those named in ``like``, else ended ones of the same kind."""
    if event.like:
        names = set(event.like)
        return [e for e in events if e.name in names and e.end_s <= now_s]
    past = [e for e in events if e.kind == event.kind and e.end_s <= now_s and e.name != event.name]
    return sorted(past, key=lambda e: e.start_s)[-limit:] if limit else past


def has_basis(event: PromotionEvent, calendar: list[PromotionEvent]) -> bool:
    """Whether the plan has anything to size ``event`` from: an expected size, or a past event of
    its kind (or named in ``like``) over by its start. Without either, it adds nothing to the
    observed load, and no coverage can be promised for it."""
    return event.expected_multiplier is not None or event.expected_peak is not None or bool(related_past_events(event, calendar, event.start_s, 1))


def band_note(event: PromotionEvent, calendar: list[PromotionEvent], coverage: float, limit: int | None = None) -> str:
    """How wide the upper forecast of ``event`` is at ``coverage``, in words: the past events of
    its kind (or ``like``) the plan learns from, and whether they are enough for the coverage asked
    (n exchangeable events support at most n / (n + 1): ``conformal_cols``)."""
    n = len(related_past_events(event, calendar, event.start_s, limit))
    guess = f"x{event.expected_multiplier:g}" if event.expected_multiplier is not None else (f"peak {event.expected_peak:,.0f}" if event.expected_peak is not None else "")
    if n == 0:
        if guess:
            return f"{event.label!r}: no past event of kind {event.kind!r}, only the guess ({guess}): wide, the guess bounds it"
        return f"{event.label!r}: no past event of kind {event.kind!r} and no expected size: it adds nothing, the observed load and the HPA rule"
    rank = int(conformal_rank(n, coverage))
    if rank > n:
        return f"{event.label!r}: {n} past event(s) support a coverage of at most {n / (n + 1):.0%}, {coverage:.2%} asked: wide, sized at the largest growth seen" + (f" (and the guess, {guess})" if guess else "")
    k = n - rank + 1
    which = "largest" if k == 1 else f"{k}{'nd' if k == 2 else 'rd' if k == 3 else 'th'} largest"
    return f"{event.label!r}: sized at the {which} growth of {n} past event(s) (coverage {coverage:.2%})"
