"""Demand forecast: seasonal baseline, current level, and event growth learned from the calendar.

The model, for a forecast made with samples up to index ``i`` (time t) for ``h`` steps ahead::

    forecast(t + h) = max(level(t) * baseline(t + h), load(t) * growth_kind(tau, h))

  (where no event is near, growth is 1 and the first term rules; inside an event, the first term
  only where the daily profile observed both slots, see ``forecast_block``)

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

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from autoscaler.core.calendar import PromotionEvent
from autoscaler.core.baseline import Baseline, ForecastSettings, baseline_for, fit_window, level_ratios
from autoscaler.core.profiles import KindProfile, learn_profile, related_past_events


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


def block_bounds(times_s: np.ndarray, first: int, settings: ForecastSettings) -> int:
    """The end (exclusive) of the block of rows from ``first`` that share one profile fit."""
    t = int(times_s[first])
    return int(np.searchsorted(times_s, t - t % settings.refit_s + settings.refit_s, side="left"))


@dataclass
class _Rows:
    """The rows of one block (``forecast_block``), what the event terms read of them, and what
    they add up: the growth of event profiles, the floors of expected sizes, who shaped each cell."""

    #: the sample index of each row, and the horizon of each
    i_abs: np.ndarray
    horizon: int
    #: the level at each row, the baseline at each (row, step ahead)
    level: np.ndarray
    base_ih: np.ndarray
    growth: np.ndarray
    who: np.ndarray
    event_driven: np.ndarray
    floor: np.ndarray
    floor_u: np.ndarray

    @classmethod
    def empty(cls, first: int, stop: int, horizon: int, level: np.ndarray, base_ih: np.ndarray) -> _Rows:
        n = stop - first
        cells = (n, horizon + 1)
        return cls(np.arange(first, stop), horizon, level, base_ih, np.ones((2, *cells)), np.full(cells, -1, dtype=np.int64), np.zeros(n, dtype=bool), np.zeros(cells), np.zeros(cells))

    def add_profile(self, k: int, term: _EventTerm, prof: KindProfile, end_index: int) -> None:
        """Event ``k``'s learned profile: its growth where a row lies in its run-up or its end."""
        i_abs = self.i_abs
        tau = i_abs - (term.start_index - prof.pre_steps)
        tau_end = i_abs - (end_index - prof.pre_end_steps)
        late = i_abs >= term.start_index + prof.half_steps
        ok_start = ~late & (tau >= 0) & (tau < prof.growth.shape[1])
        ok_end = late & (tau_end >= 0) & (tau_end < prof.growth_end.shape[1])
        ok = ok_start | ok_end
        if not ok.any():
            return
        g = np.ones_like(self.growth)
        g[:, ok_start] = prof.growth[:, tau[ok_start]]
        g[:, ok_end] = prof.growth_end[:, tau_end[ok_end]]
        # never below 1: an event's expected dip is left to the observed load
        better = g[1] > self.growth[1]
        self.growth = np.maximum(g, self.growth)
        self.who = np.where(better & ok[:, None], k, self.who)
        self.event_driven |= ok & (i_abs >= term.start_index)

    def add_guess(self, k: int, term: _EventTerm, end_index: int, reference_level: Callable[[int], np.ndarray]) -> None:
        """Event ``k``'s expected size (a peak, or a multiplier over the level before its run-up)
        as a floor over the cells inside the event."""
        target_abs = self.i_abs[:, None] + np.arange(self.horizon + 1)[None, :]
        inside = (target_abs >= term.start_index) & (target_abs < end_index)
        if term.profile is not None:
            tau_t = np.clip(target_abs - (term.start_index - term.profile.pre_steps), 0, len(term.profile.shape) - 1)
            shape = term.profile.shape[tau_t]
        else:
            shape = np.ones_like(target_abs, dtype=float)
        if term.floor_peak is not None:
            f = term.floor_peak * shape
        else:
            f = (term.multiplier or 0.0) * reference_level(term.start_index)[:, None] * self.base_ih * shape
        f = np.where(inside, f, 0.0)
        self.who = np.where(f > self.floor_u, k, self.who)
        # before the event, the guess is the forecast; once it runs, what is observed is
        # (the central forecast follows it) and the guess bounds what it may still reach
        started = (self.i_abs >= term.start_index)[:, None]
        self.floor = np.maximum(self.floor, np.where(started, 0.0, f))
        self.floor_u = np.maximum(self.floor_u, f)


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
    lo = max(0, first - window + 1)
    level = level_ratios(values[lo:stop], baseline.at(times_s[lo:stop]), window)[first - lo :]
    future_t = t0 + (np.arange(first, stop + horizon) * step_s)
    base_future = baseline.at(future_t)
    rows = _Rows.empty(first, stop, horizon, level, base_future[np.arange(stop - first)[:, None] + np.arange(horizon + 1)[None, :]])

    def reference_level(start_index: int) -> np.ndarray:
        # the multiplier is over the level before the event's run-up, not the inflated one
        ref = max(start_index - horizon - 1, visible_lo)
        if ref < stop - 1:  # rows after the reference point: they use the level measured there
            return np.where(rows.i_abs <= ref, level, _level_at(values, baseline, times_s, ref, window, visible_lo))
        return level

    terms = _event_terms(times_s, values, baseline, events, (visible_lo, at), int(future_t[0]), int(future_t[-1]), horizon, settings, (first, stop))
    positions = {id(e): k for k, e in enumerate(events)}
    target_abs = rows.i_abs[:, None] + np.arange(horizon + 1)[None, :]
    inside = np.zeros(target_abs.shape, dtype=bool)
    for term in terms:
        k = positions[id(term.event)]
        end_index = (term.event.end_s - t0 + step_s - 1) // step_s
        inside |= (target_abs >= term.start_index) & (target_abs < end_index)
        if term.profile is not None:
            rows.add_profile(k, term, term.profile, end_index)
        if term.floor_peak is not None or term.multiplier is not None:
            rows.add_guess(k, term, end_index, reference_level)
    # where an event drives the load, the daily profile at slots it never observed (masked on every
    # day of its window: events at those hours every day) says nothing, and the level over the event
    # is inflated: there the forecast is the event's growth alone. Where the profile observed both
    # the current slot and the one ahead, an event never lowers the forecast below it at the
    # observed level (the forecast without the event): a day-long holiday whose past instances had
    # a small morning ramp still gets an ordinary day's ramp, and an expected dip is left to the
    # observed load
    seasonal = level[:, None] * rows.base_ih
    recent = level_ratios(values[lo:stop], np.ones(stop - lo), window)[first - lo :]
    driven = recent[None, :, None] * rows.growth
    observed = baseline.observed_at(future_t)
    known = observed[: stop - first, None] & observed[np.arange(stop - first)[:, None] + np.arange(horizon + 1)[None, :]]
    F = np.where((rows.event_driven[:, None] & ~known)[None], driven, np.maximum(seasonal[None], driven))
    F[0] = np.maximum(F[0], rows.floor)
    F[1] = np.maximum(F[1], rows.floor_u)
    if inside.any():
        # inside a promotion's window the upper forecast covers the forecast's own errors too: the
        # central forecast times how far above its forecast the load went ``horizon`` steps later,
        # at the coverage asked, over the samples the daily profile was fitted from
        fit = fit_window(times_s, first, settings, settings.baseline_refit_s)[:2]
        errors = baseline.noise(times_s, values, masked, fit, horizon, window, settings.coverage)
        F[1] = np.where(inside, np.maximum(F[1], F[0] * errors), F[1])
    return Block(central=F[0], upper=F[1], who=rows.who, level=level, baseline=baseline)


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
