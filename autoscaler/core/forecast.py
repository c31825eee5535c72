"""Demand forecast: seasonal baseline, current level, and event growth learned from the calendar.

The model, for a forecast made with samples up to index ``i`` (time t) for ``h`` steps ahead::

    forecast(t + h) = level(t) * baseline(t + h) * growth_kind(tau, h)

* ``baseline`` is a daily profile per day type (weekday / weekend), the median of the history
  window at each time of day, with past event windows masked out so that peaks and dips do not
  leak into "normal" (robust to outages too: a median ignores a few bad days).
* ``level(t)`` is how far the recent samples sit above or below the baseline: it tracks trends the
  profile cannot know (a tournament that grows the audience tenfold).
* ``growth_kind(tau, h)`` is learned from the past events of the same kind (or the events named
  in ``like``), aligned on their start: for each offset ``tau`` from the start and each horizon
  ``h``, a high quantile over those events of how much the load grew, relative to baseline, from
  the level at ``tau`` to the value at ``tau + h``. It anticipates only the growth expected within
  the horizon, so capacity follows the event up instead of being parked at its peak for hours.
* An operator's guess means what an operator means by it. ``expectedMultiplier: m`` says the
  event's peak is about m times the load expected at that time without the event: the baseline
  times the level measured before the run-up (at the last sample before the forecast window of
  the event's start reaches it). ``expectedPeak`` is absolute. Neither is ever multiplied by the
  event's own rise. The kind's past events (in the history, or recorded profiles) spread the
  guess over the window by their shape; without them the guess covers the window from the start.
  Before the event starts, the guess is the forecast (central and upper). Once it runs, what is
  observed is the central forecast, and the guess only bounds what the event may still reach (the
  upper forecast, sized at full capacity): a guess far above what is observed stops costing the
  target utilization's headroom, one below it is overtaken by the observed load. The planner's
  rules keep this safe: the current need is always met, the HPA still catches surprises, and a
  frozen event never scales in below the current need plus headroom.

Times are the *starts* of the periods the samples measure, like the calendar's times (the cycle
module converts Prometheus labels, which mark a period's end).

Fits are anchored on absolute time (``fit_window``): the event profiles of the period
``[anchor, anchor + refit)`` are learned from the samples up to ``anchor``, the daily profile of
its (longer) period likewise, each from the part of the history window every forecast of the
period can see. So a forecast made at a sample is one function of the samples up to it: the
controller's history cache and the backtest's whole trace give bit-identical rows, which is what
lets a parity test hold the backtest to the controller.

No look-ahead: every function takes the index of the last sample it may see, and the tests prove
a forecast made at t is identical whatever the trace holds after t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from autoscaler.core.calendar import EventProfile, PromotionEvent

DAY_S = 86400
#: a recorded event profile holds at most this many points (a few kB in a PromotionEvent's status)
MEMORY_POINTS = 240


@dataclass(frozen=True)
class ForecastSettings:
    """Knobs of the forecaster (the ``forecast`` block of a ScalingPolicy)."""

    history_s: int = 14 * DAY_S
    #: the upper forecast: this quantile, over past events, of the growth they showed
    #: (0.9 = what a big event of the kind does); the central forecast is their median
    quantile: float = 1.0
    #: only the most recent past events of a kind teach a new one (audiences grow and change)
    max_past_events: int = 24
    #: how many seconds of recent samples set the current level
    level_window_s: int = 60
    #: past events' offsets pooled around each offset, so a kick-off a few minutes late still teaches
    align_slack_s: int = 120
    #: circular moving average applied to the daily profile
    smooth_s: int = 900
    #: event profiles are learned once per period, at the period's start (see ``fit_window``)
    refit_s: int = 3600
    #: the daily profile moves slowly: it is refitted less often than the event profiles
    baseline_refit_s: int = 6 * 3600


@dataclass(frozen=True)
class Baseline:
    """Daily profiles (row 0 weekdays, row 1 weekends) fitted from samples up to ``fitted_at_s``."""

    step_s: int
    profiles: np.ndarray
    fitted_at_s: int

    def at(self, times_s: np.ndarray) -> np.ndarray:
        times_s = np.asarray(times_s, dtype=np.int64)
        slot = (times_s % DAY_S) // self.step_s
        return self.profiles[is_weekend(times_s).astype(np.int64), slot]


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


@dataclass(frozen=True)
class Block:
    """Forecasts made at consecutive sample indices (see ``forecast_block``)."""

    central: np.ndarray
    upper: np.ndarray
    who: np.ndarray
    level: np.ndarray
    baseline: Baseline


@dataclass(frozen=True)
class Forecast:
    """A forecast made at ``made_at_s`` for the samples ``made_at_s + h * step_s``, h = 0..H."""

    made_at_s: int
    step_s: int
    #: central forecast (median growth of past events)
    values: np.ndarray
    #: upper forecast (``ForecastSettings.quantile`` of past events' growth)
    upper: np.ndarray
    level: float
    baseline: np.ndarray
    #: the daily profile used (callers may pass it back in to save a refit)
    fitted: Baseline | None = None
    #: the event that shaped each horizon step ('' where none)
    events: tuple[str, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)


def is_weekend(times_s: np.ndarray) -> np.ndarray:
    # 1970-01-01 was a Thursday (weekday 3, Monday = 0)
    return ((np.asarray(times_s, dtype=np.int64) // DAY_S + 3) % 7) >= 5


def _circular_smooth(profile: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return profile
    kernel = np.ones(width) / width
    padded = np.concatenate([profile[-width:], profile, profile[:width]])
    return np.convolve(padded, kernel, mode="same")[width:-width]


def _fill_circular(profile: np.ndarray) -> np.ndarray:
    good = np.isfinite(profile)
    if good.all():
        return profile
    if not good.any():
        return np.full_like(profile, np.nan)
    n = len(profile)
    idx = np.arange(n)
    gi = idx[good]
    return np.interp(idx, np.concatenate([gi - n, gi, gi + n]), np.tile(profile[good], 3))


def fit_baseline(
    times_s: np.ndarray,
    values: np.ndarray,
    masked: np.ndarray,
    last: int,
    step_s: int,
    settings: ForecastSettings,
    *,
    lo: int | None = None,
    fitted_at_s: int | None = None,
) -> Baseline:
    """Fit the daily profiles from the samples ``[lo, last]`` that are not masked (by default
    the history window ending at ``last``)."""
    if DAY_S % step_s:
        raise ValueError(f"step {step_s}s does not divide a day")
    slots = DAY_S // step_s
    if lo is None:
        lo = max(0, last + 1 - max(1, settings.history_s // step_s))
    lo = min(lo, last)
    t = times_s[lo : last + 1]
    v = np.where(masked[lo : last + 1], np.nan, values[lo : last + 1])
    day = t // DAY_S
    day_index = day - day[0]
    n_days = int(day_index[-1]) + 1 if len(t) else 1
    grid = np.full((n_days, slots), np.nan)
    grid[day_index, (t % DAY_S) // step_s] = v
    weekend_days = is_weekend((np.arange(n_days) + (day[0] if len(t) else 0)) * DAY_S)
    pooled = _nanmedian_rows(grid)
    profiles = np.empty((2, slots))
    for row, wanted in ((0, False), (1, True)):
        chosen = grid[weekend_days == wanted]
        # a day type with fewer than two observed days falls back to all days
        observed_days = np.isfinite(chosen).any(axis=1).sum()
        profiles[row] = _nanmedian_rows(chosen) if observed_days >= 2 else pooled
    width = max(1, settings.smooth_s // step_s)
    fallback = float(np.nanmean(v)) if np.isfinite(v).any() else 1.0
    for row in range(2):
        filled = _fill_circular(profiles[row])
        if not np.isfinite(filled).any():
            filled = np.full(slots, fallback)
        profiles[row] = _circular_smooth(filled, width)
    floor = max(1e-6, 0.01 * float(np.nanmean(profiles)))
    fitted = int(times_s[last]) if fitted_at_s is None else fitted_at_s
    return Baseline(step_s=step_s, profiles=np.maximum(profiles, floor), fitted_at_s=fitted)


def nan_quantile_cols(grid: np.ndarray, q: float | tuple[float, ...]) -> np.ndarray:
    """Quantile(s) of each column (axis 0) ignoring NaN (NaN where a column has none).

    Linear interpolation, as numpy's. numpy's ``nanquantile`` loops over columns in Python;
    sorting once (NaN sorts last) is ~50x faster on the grids used here, and several quantiles
    share the one sort. With a tuple ``q`` the result has a leading axis of ``len(q)``.
    """
    qs = q if isinstance(q, tuple) else (q,)
    if grid.shape[0] == 0:
        out = np.full((len(qs), *grid.shape[1:]), np.nan)
        return out if isinstance(q, tuple) else out[0]
    ordered = np.sort(grid, axis=0)
    count = np.isfinite(grid).sum(axis=0)
    top = np.maximum(count - 1, 0)
    results = []
    for quantile in qs:
        pos = top * quantile
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, top)
        frac = pos - lo
        lo_v = np.take_along_axis(ordered, lo[None], axis=0)[0]
        hi_v = np.take_along_axis(ordered, hi[None], axis=0)[0]
        results.append(np.where(count > 0, lo_v + (hi_v - lo_v) * frac, np.nan))
    return np.asarray(results) if isinstance(q, tuple) else results[0]


def _nanmedian_rows(grid: np.ndarray) -> np.ndarray:
    return nan_quantile_cols(grid, 0.5)


def level_ratios(values: np.ndarray, base: np.ndarray, window: int) -> np.ndarray:
    """Level at every index: mean of the last ``window`` samples over the mean of their baseline.

    Sums run over each window on its own (not as differences of running sums), so the level at
    a sample is bit-identical whichever slice of the series it is computed from: the controller's
    history window and the backtest's whole trace give the same forecast.
    """
    if window <= 1:
        return values / np.maximum(base, 1e-12)
    pad = np.zeros(window - 1)
    sums_v = sliding_window_view(np.concatenate([pad, values]), window).sum(axis=1)
    sums_b = sliding_window_view(np.concatenate([pad, base]), window).sum(axis=1)
    return sums_v / np.maximum(sums_b, 1e-12)


def fit_window(times_s: np.ndarray, i: int, settings: ForecastSettings, period_s: int) -> tuple[int, int, int]:
    """Which samples a fit used by the forecast made at index ``i`` sees: ``(lo, at, anchor_s)``.

    Fits are anchored on absolute time: the fit of period ``[anchor, anchor + period)`` uses the
    samples up to ``anchor`` (index ``at``) that are newer than ``anchor + period - history``
    (from index ``lo``). Every forecast made within the period can see exactly those samples in a
    history window of ``history`` seconds, so the controller's cache and the backtest's whole
    trace fit the same thing at the same time.
    """
    t_i = int(times_s[i])
    anchor_s = t_i - t_i % period_s
    at = max(0, int(np.searchsorted(times_s, anchor_s, side="right")) - 1)
    lo = int(np.searchsorted(times_s, anchor_s + period_s - settings.history_s, side="right"))
    return min(lo, at), at, anchor_s


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
    the last ``level_window`` samples) at offset tau and at tau + h; the median and the upper
    quantile over events, pooled over ``align_slack`` offsets around tau so that an event a few
    minutes late still teaches, of their ratio. Only ``rows`` (a half-open range of k) are
    computed, the others left at 1: the live path needs one row.
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
    now_idx = off + shifts[:, None] + np.arange(r_lo, r_hi)[None, :]  # (shifts, rows)
    fut_idx = now_idx[:, :, None] + np.arange(horizon + 1)[None, None, :]  # (shifts, rows, h)
    now = levels_a[:, now_idx]
    fut = levels_a[:, fut_idx]
    with np.errstate(invalid="ignore"):
        ratio = fut / np.maximum(now, 1e-12)[..., None]
    pooled = ratio.reshape(-1, r_hi - r_lo, horizon + 1)
    q = nan_quantile_cols(pooled, (0.5, settings.quantile))
    growth[:, r_lo:r_hi] = np.where(np.isfinite(q), q, 1.0)
    return growth


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


@dataclass(frozen=True)
class _EventTerm:
    event: PromotionEvent
    start_index: int  # sample index of the event start (may be beyond the data)
    profile: KindProfile | None
    floor_peak: float | None  # absolute peak the operator expects, if any
    multiplier: float | None


def _event_terms(
    times_s: np.ndarray,
    values: np.ndarray,
    baseline: Baseline,
    events: list[PromotionEvent],
    fit: tuple[int, int],
    lo_s: int,
    hi_s: int,
    horizon: int,
    settings: ForecastSettings,
    rows: tuple[int, int],
) -> list[_EventTerm]:
    """The events whose (pre-)window touches [lo_s, hi_s], each with what the past teaches.

    Profiles are learned from the samples ``fit = (lo, at)`` only, for the rows ``[first, stop)``.
    """
    step_s = baseline.step_s
    visible_lo, at = fit
    now_s = int(times_s[at])
    t0 = int(times_s[0])
    terms = []
    for event in events:
        if event.end_s + horizon * step_s < lo_s or event.start_s - 2 * horizon * step_s > hi_s:
            continue
        duration = -(-(event.end_s - event.start_s) // step_s)
        past = related_past_events(event, events, now_s, settings.max_past_events)
        start_index = (event.start_s - t0) // step_s
        offsets = (rows[0] - start_index - 1, rows[1] - start_index + 1)
        profile = (
            learn_profile(times_s, values, baseline, past, at, duration, horizon, settings, offsets, visible_lo) if past else None
        )
        terms.append(
            _EventTerm(
                event=event,
                start_index=start_index,
                profile=profile,
                floor_peak=event.expected_peak,
                multiplier=event.expected_multiplier,
            )
        )
    return terms


def baseline_for(
    times_s: np.ndarray, values: np.ndarray, masked: np.ndarray, i: int, step_s: int, settings: ForecastSettings, cached: Baseline | None = None
) -> Baseline:
    """The daily profile a forecast made at index ``i`` uses: ``cached`` when it is the fit of
    the same period, else a new fit (see ``fit_window``)."""
    lo, at, anchor_s = fit_window(times_s, i, settings, settings.baseline_refit_s)
    if cached is not None and cached.fitted_at_s == anchor_s and cached.step_s == step_s:
        return cached
    return fit_baseline(times_s, values, masked, at, step_s, settings, lo=lo, fitted_at_s=anchor_s)


def block_bounds(times_s: np.ndarray, first: int, settings: ForecastSettings) -> int:
    """The end (exclusive) of the block of rows from ``first`` that share one profile fit."""
    t = int(times_s[first])
    return int(np.searchsorted(times_s, t - t % settings.refit_s + settings.refit_s, side="left"))


def forecast_block(
    times_s: np.ndarray,
    values: np.ndarray,
    masked: np.ndarray,
    events: list[PromotionEvent],
    *,
    first: int,
    stop: int,
    horizon: int,
    step_s: int,
    settings: ForecastSettings,
    baseline: Baseline | None = None,
) -> Block:
    """Forecasts made at every sample index ``first <= i < stop`` (one refit period at most).

    ``Block.central[i - first, h]`` is the central forecast for sample ``i + h`` made with the
    samples ``<= i``, ``Block.upper`` the upper one, ``Block.who`` the index in ``events`` of the
    event that shaped it (-1 for none). The daily profile and the event profiles are the fits of
    the period the rows lie in (``fit_window``), the level uses samples ``<= i``: nothing after
    ``i`` is ever read, and a row is the same whether computed alone (the controller) or in a
    block (the backtest). ``baseline``: a fit to reuse when it is the right one.
    """
    if stop > block_bounds(times_s, first, settings):
        raise ValueError("forecast_block rows span two refit periods")
    baseline = baseline_for(times_s, values, masked, first, step_s, settings, baseline)
    visible_lo, at, _ = fit_window(times_s, first, settings, settings.refit_s)
    t0 = int(times_s[0])
    window = max(1, settings.level_window_s // step_s)
    n = stop - first
    lo = max(0, first - window + 1)
    past_t = times_s[lo:stop]
    level_all = level_ratios(values[lo:stop], baseline.at(past_t), window)
    level = level_all[first - lo :]
    future_t = t0 + (np.arange(first, stop + horizon) * step_s)
    base_future = baseline.at(future_t)
    idx = np.arange(n)[:, None] + np.arange(horizon + 1)[None, :]
    base_ih = base_future[idx]
    growth = np.ones((2, n, horizon + 1))
    # where an event drives the load, the daily profile says nothing (its slots are masked and
    # interpolated, the level over it is inflated): the forecast is the event's growth alone
    event_driven = np.zeros(n, dtype=bool)
    who = np.full((n, horizon + 1), -1, dtype=np.int64)
    floor = np.zeros((n, horizon + 1))
    floor_u = np.zeros((n, horizon + 1))
    terms = _event_terms(
        times_s, values, baseline, events, (visible_lo, at), int(future_t[0]), int(future_t[-1]), horizon, settings, (first, stop)
    )
    positions = {id(e): k for k, e in enumerate(events)}
    i_abs = np.arange(first, stop)
    for term in terms:
        k = positions[id(term.event)]
        end_index = (term.event.end_s - t0 + step_s - 1) // step_s
        if term.profile is not None:
            prof = term.profile
            tau = i_abs - (term.start_index - prof.pre_steps)
            tau_end = i_abs - (end_index - prof.pre_end_steps)
            late = i_abs >= term.start_index + prof.half_steps
            ok_start = ~late & (tau >= 0) & (tau < prof.growth.shape[1])
            ok_end = late & (tau_end >= 0) & (tau_end < prof.growth_end.shape[1])
            ok = ok_start | ok_end
            if ok.any():
                g = np.ones((2, n, horizon + 1))
                g[:, ok_start] = prof.growth[:, tau[ok_start]]
                g[:, ok_end] = prof.growth_end[:, tau_end[ok_end]]
                # never below 1: an event's expected dip is left to the observed load
                better = g[1] > growth[1]
                growth = np.maximum(g, growth)
                who = np.where(better & ok[:, None], k, who)
                event_driven |= ok & (i_abs >= term.start_index)
        if term.floor_peak is not None or term.multiplier is not None:
            target_abs = i_abs[:, None] + np.arange(horizon + 1)[None, :]
            inside = (target_abs >= term.start_index) & (target_abs < end_index)
            if term.profile is not None:
                tau_t = target_abs - (term.start_index - term.profile.pre_steps)
                tau_t = np.clip(tau_t, 0, len(term.profile.shape) - 1)
                shape = term.profile.shape[tau_t]
            else:
                shape = np.ones_like(target_abs, dtype=float)
            if term.floor_peak is not None:
                f = term.floor_peak * shape
            else:
                # the multiplier is over the level before the event's run-up, not the inflated one
                ref = max(term.start_index - horizon - 1, visible_lo)
                ref_level = level
                if ref < stop - 1:  # rows after the reference point: they use the level measured there
                    ref_level = np.where(i_abs <= ref, level, _level_at(values, baseline, times_s, ref, window, visible_lo))
                f = term.multiplier * ref_level[:, None] * base_ih * shape
            f = np.where(inside, f, 0.0)
            who = np.where(f > floor_u, k, who)
            # before the event, the guess is the forecast; once it runs, what is observed is
            # (the central forecast follows it) and the guess bounds what it may still reach
            started = (i_abs >= term.start_index)[:, None]
            floor = np.maximum(floor, np.where(started, 0.0, f))
            floor_u = np.maximum(floor_u, f)
    seasonal = level[:, None] * base_ih
    recent = level_ratios(values[lo:stop], np.ones(stop - lo), window)[first - lo :]
    driven = recent[None, :, None] * growth
    F = np.where(event_driven[None, :, None], driven, np.maximum(seasonal[None], driven))
    F[0] = np.maximum(F[0], floor)
    F[1] = np.maximum(F[1], floor_u)
    return Block(central=F[0], upper=F[1], who=who, level=level, baseline=baseline)


def _level_at(values: np.ndarray, baseline: Baseline, times_s: np.ndarray, i: int, window: int, visible_lo: int = 0) -> float:
    """The level (see ``level_ratios``) at sample index ``i``, from samples ``<= i`` (the newest
    known one, when ``i`` itself is missing)."""
    while i > visible_lo and not np.isfinite(values[i]):
        i -= 1
    lo = max(0, i - window + 1)
    return float(level_ratios(values[lo : i + 1], baseline.at(times_s[lo : i + 1]), window)[-1])


def forecast_at(
    times_s: np.ndarray,
    values: np.ndarray,
    events: list[PromotionEvent],
    last: int,
    horizon: int,
    settings: ForecastSettings = ForecastSettings(),
    baseline: Baseline | None = None,
    *,
    step_s: int | None = None,
) -> Forecast:
    """One forecast made with samples ``<= last`` for the next ``horizon`` steps (the live path).

    The same row as the backtest's block at ``last``: the fits are those of the refit period
    (``fit_window``). A ``baseline`` fitted earlier may be passed in and is reused while it is the
    period's fit; ``Forecast.fitted`` is the one used, for the caller to keep.
    """
    from autoscaler.core.calendar import event_mask

    if step_s is None:
        step_s = int(times_s[1] - times_s[0]) if len(times_s) > 1 else 60
    times_s, values = times_s[: last + 1], values[: last + 1]
    masked = event_mask(times_s, events)
    block = forecast_block(
        times_s, values, masked, events, first=last, stop=last + 1, horizon=horizon, step_s=step_s, settings=settings, baseline=baseline
    )
    now_s = int(times_s[last])
    notes = []
    for event in events:
        if event.end_s < now_s or event.start_s > now_s + (2 * horizon + 1) * step_s:
            continue
        if not related_past_events(event, events, now_s) and event.expected_multiplier is None and event.expected_peak is None:
            notes.append(
                f"event {event.label!r}: no past event of kind {event.kind!r} and no expected size; "
                "it adds nothing and the reactive floor rules"
            )
    names = tuple(events[k].label if k >= 0 else "" for k in block.who[0])
    future = now_s + np.arange(horizon + 1) * step_s
    return Forecast(
        fitted=block.baseline,
        made_at_s=now_s,
        step_s=step_s,
        values=block.central[0],
        upper=block.upper[0],
        level=float(block.level[0]),
        baseline=block.baseline.at(future),
        events=names,
        notes=tuple(notes),
    )
