"""The forecast's settings and the seasonal baseline: daily and weekly profiles fitted on the
history window with past event windows masked out, and the robust statistics they rest on.

Pure numpy over epoch-second arrays; no look-ahead (a fit at sample i sees samples up to i).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


DAY_S = 86400


@dataclass(frozen=True)
class ForecastSettings:
    """Knobs of the forecaster (the ``forecast`` block of a ScalingPolicy)."""

    history_s: int = 14 * DAY_S
    #: the share of demand inside promotion windows the plan is sized to serve: the upper forecast
    #: there is the split-conformal quantile at this level of what past events of the kind grew
    #: by and of the forecast's own errors at the horizon (``conformal_cols``, ``Baseline.noise``);
    #: the central forecast is the median growth
    coverage: float = 0.99
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
    #: the slots (same shape) measured by at least one unmasked sample, the others interpolated
    #: (None: all measured)
    observed: np.ndarray | None = None
    #: the forecast's own error quantiles, per (coverage, horizon), computed once per fit (``noise``)
    errors: dict[tuple[float, int], float] = field(default_factory=dict, compare=False, repr=False)

    def at(self, times_s: np.ndarray) -> np.ndarray:
        times_s = np.asarray(times_s, dtype=np.int64)
        slot = (times_s % DAY_S) // self.step_s
        out: np.ndarray = self.profiles[is_weekend(times_s).astype(np.int64), slot]
        return out

    def noise(self, times_s: np.ndarray, values: np.ndarray, masked: np.ndarray, fit: tuple[int, int], horizon: int, window: int, coverage: float) -> float:
        """How far above the seasonal forecast ``horizon`` steps ahead the load went, at the
        ``coverage`` split-conformal level, over the samples ``fit = (lo, at)`` this profile was
        fitted from: the ratio of each unmasked sample to the forecast made ``horizon`` steps
        before it (the level then times the profile). Never below 1; the largest seen when the
        samples are too few for the level asked (``conformal_cols``)."""
        key = (coverage, horizon)
        if key not in self.errors:
            lo, at = fit
            v = np.where(masked[lo : at + 1], np.nan, values[lo : at + 1])
            ratios = np.array([np.nan])
            if len(v) > horizon:
                level = level_ratios(v, self.at(times_s[lo : at + 1]), window)
                ahead = v[horizon:] / np.maximum(level[: len(v) - horizon] * self.at(times_s[lo + horizon : at + 1]), 1e-12)
                ratios = ahead[np.isfinite(ahead)]
            self.errors[key] = max(1.0, float(conformal_cols(ratios[:, None], coverage)[0][0])) if ratios.size else 1.0
        return self.errors[key]

    def observed_at(self, times_s: np.ndarray) -> np.ndarray:
        """Whether the profile at each time was measured (not interpolated over masked slots)."""
        times_s = np.asarray(times_s, dtype=np.int64)
        if self.observed is None:
            return np.ones(times_s.shape, dtype=bool)
        out: np.ndarray = self.observed[is_weekend(times_s).astype(np.int64), (times_s % DAY_S) // self.step_s]
        return out


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
    out: np.ndarray = np.interp(idx, np.concatenate([gi - n, gi, gi + n]), np.tile(profile[good], 3))
    return out


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
    observed = np.isfinite(profiles)
    width = max(1, settings.smooth_s // step_s)
    fallback = float(np.nanmean(v)) if np.isfinite(v).any() else 1.0
    for row in range(2):
        filled = _fill_circular(profiles[row])
        if not np.isfinite(filled).any():
            filled = np.full(slots, fallback)
        profiles[row] = _circular_smooth(filled, width)
    floor = max(1e-6, 0.01 * float(np.nanmean(profiles)))
    fitted = int(times_s[last]) if fitted_at_s is None else fitted_at_s
    return Baseline(step_s=step_s, profiles=np.maximum(profiles, floor), fitted_at_s=fitted, observed=observed)


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


def median_without_each(grid: np.ndarray) -> np.ndarray:
    """For grid (groups, members, ...), the median (linear, as ``nan_quantile_cols``) of each
    column over every group but one, for each group: out[g] leaves group g out. NaN is no value.

    One sort: the k-th smallest of what remains is the full order's ``k + j``-th, where j counts
    the left-out values at or below it (the least fixed point, from j = 0)."""
    groups, members = grid.shape[:2]
    cols = grid.shape[2:]
    n = groups * members
    if n == 0:
        return np.full((groups, *cols), np.nan)
    flat = np.ascontiguousarray(grid.reshape(n, -1).T)  # (columns, values): the sorts run along rows
    order = np.argsort(flat, axis=1)
    ordered = np.take_along_axis(flat, order, axis=1)
    rows = np.arange(flat.shape[0])[:, None]
    rank = np.empty_like(order)
    rank[rows, order] = np.arange(n)[None, :]
    finite = np.isfinite(flat)
    # each member's rank in the full order, as (members, columns, groups) (NaN: never counted)
    rank = np.ascontiguousarray(np.where(finite, rank, n).reshape(-1, groups, members).transpose(2, 0, 1))
    left = finite.sum(axis=1)[:, None] - finite.reshape(-1, groups, members).sum(axis=2)  # (columns, groups)
    top = np.maximum(left - 1, 0)

    def kth(k: np.ndarray) -> np.ndarray:
        j = np.zeros_like(k)
        for _ in range(members):  # j only grows, by one at least until it holds
            j = sum((r <= k + j for r in rank), np.zeros_like(k))
        out: np.ndarray = ordered[rows, np.minimum(k + j, n - 1)]
        return out

    pos = top * 0.5
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, top)
    lo_v, hi_v = kth(lo), kth(hi)
    out = np.where(left > 0, lo_v + (hi_v - lo_v) * (pos - lo), np.nan).T
    return out.reshape(groups, *cols)


def conformal_rank(count: Any, coverage: float) -> Any:
    """The rank (1-based) of the split-conformal bound among ``count`` values at ``coverage``:
    ``ceil((count + 1) * coverage)``; above ``count`` the values cannot support the coverage
    (an int, or an array of them)."""
    return np.ceil((np.asarray(count) + 1) * coverage - 1e-9).astype(np.int64)


def conformal_cols(grid: np.ndarray, coverage: float) -> tuple[np.ndarray, np.ndarray]:
    """The split-conformal upper bound of each column (axis 0) at ``coverage``, ignoring NaN:
    its ``ceil((n + 1) * coverage)``-th smallest of the n values, which a new value exchangeable
    with them stays at or below with probability at least ``coverage``, whatever their
    distribution. With too few values for that rank, the largest (and ``wide`` says so: the
    coverage asked is more than n values can support, ``n / (n + 1)``). NaN where a column is empty.
    """
    ordered = np.sort(grid, axis=0)
    count = np.isfinite(grid).sum(axis=0)
    rank = conformal_rank(count, coverage)
    wide = rank > count
    pick = np.clip(np.minimum(rank, count) - 1, 0, max(0, grid.shape[0] - 1))
    out = np.take_along_axis(ordered, pick[None], axis=0)[0] if grid.shape[0] else np.full(grid.shape[1:], np.nan)
    return np.where(count > 0, out, np.nan), wide


def _nanmedian_rows(grid: np.ndarray) -> np.ndarray:
    return nan_quantile_cols(grid, 0.5)


def level_ratios(values: np.ndarray, base: np.ndarray, window: int) -> np.ndarray:
    """Level at every index: mean of the last ``window`` samples over the mean of their baseline.

    Sums run over each window on its own (not as differences of running sums), so the level at
    a sample is bit-identical whichever slice of the series it is computed from: the controller's
    history window and the backtest's whole trace give the same forecast.
    """
    if window <= 1:
        out: np.ndarray = values / np.maximum(base, 1e-12)
        return out
    pad = np.zeros(window - 1)
    sums_v = sliding_window_view(np.concatenate([pad, values]), window).sum(axis=1)
    sums_b = sliding_window_view(np.concatenate([pad, base]), window).sum(axis=1)
    ratios: np.ndarray = sums_v / np.maximum(sums_b, 1e-12)
    return ratios


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


def baseline_for(
    times_s: np.ndarray, values: np.ndarray, masked: np.ndarray, i: int, step_s: int, settings: ForecastSettings, cached: Baseline | None = None
) -> Baseline:
    """The daily profile a forecast made at index ``i`` uses: ``cached`` when it is the fit of
    the same period, else a new fit (see ``fit_window``)."""
    lo, at, anchor_s = fit_window(times_s, i, settings, settings.baseline_refit_s)
    if cached is not None and cached.fitted_at_s == anchor_s and cached.step_s == step_s:
        return cached
    return fit_baseline(times_s, values, masked, at, step_s, settings, lo=lo, fitted_at_s=anchor_s)
