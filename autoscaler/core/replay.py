"""Replaying the controller's cycles over a history: what ``peakscale plan``, the backtest and
``promo review`` use to show what the controller does.

``replay`` calls ``cycle.decide`` at the instants the controller would, each cycle seeing the
history up to its own instant only (no look-ahead); ``forecast_table`` precomputes, once per
period, the forecasts those cycles read; ``remember`` records past events as the controller does.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from collections.abc import Callable, Sequence

import numpy as np

from autoscaler.core.calendar import PromotionEvent, event_mask
from autoscaler.core.forecast import block_bounds, forecast_block
from autoscaler.core.profiles import record_profile
from autoscaler.core.baseline import ForecastSettings
from autoscaler.core.cycle import decide, horizon_steps, index_calendar, period_starts, stale_forecast
from autoscaler.core.cycle_types import CycleDecision, CyclePolicy, CycleState, ForecastView, HpaFloor, NONE, RESTORE, SCALE, Seen


@dataclass
class ForecastTable:
    """Forecasts made at each sample index ``i`` of a series (rows ``first .. first + n - 1``)."""

    times_s: np.ndarray
    values: np.ndarray
    first: int
    central: np.ndarray
    upper: np.ndarray
    who: np.ndarray
    labels: list[str]
    settings: ForecastSettings = field(default_factory=ForecastSettings)

    def __post_init__(self) -> None:
        self._step_s = self.step_s = int(self.times_s[1] - self.times_s[0])
        self._shaped: list[bool] = np.asarray((self.who >= 0).any(axis=1)).tolist()
        # a row is usable when its sample and its forecast are known (a gap is missing metrics)
        rows = slice(self.first, self.first + len(self.central))
        self.usable = (np.isfinite(self.values[rows]) & np.isfinite(self.central).all(axis=1) & np.isfinite(self.upper).all(axis=1)).tolist()

    def view(self, i: int) -> ForecastView:
        r = i - self.first
        events = [self.labels[k] if k >= 0 else "" for k in self.who[r].tolist()] if self._shaped[r] else ()
        return ForecastView(int(self.times_s[i]), self._step_s, float(self.values[i]), self.central[r].tolist(), self.upper[r].tolist(), events)


@dataclass
class Replay:
    """What the controller would do at each cycle ``times_s[k]``: the floor (hpa-floor) or the
    replica count (scale) in effect after it, and every decision that wrote something."""

    times_s: np.ndarray
    targets: np.ndarray
    writes: list[CycleDecision]
    #: the peak each cycle's plan was sized for (the central or the upper forecast; NaN: none)
    sized_for: np.ndarray | None = None
    #: node headroom: the replicas each cycle's headroom holds node room for (0: no placeholder)
    headroom_for: np.ndarray | None = None


def replay(
    policy: CyclePolicy,
    calendar: Sequence[PromotionEvent],
    table: ForecastTable,
    *,
    start_s: int,
    stop_s: int,
    hpa: HpaFloor | None = None,
    replicas: int | None = None,
    stale_after_s: int | None = None,
    keep: bool = True,
    progress: Callable[[float], None] | None = None,
) -> Replay:
    """Run ``decide`` at ``start_s, start_s + interval, ...`` (before ``stop_s``) as the controller
    would: each cycle sees the samples up to ``now`` (their forecast from ``table``), and the
    cluster answers each write (the HPA takes the floor, the target the replica count, the
    placeholder its pod count). With node headroom, the target's ready replicas are those the
    floor or count kept for the whole lead time before ``now`` (pods serve a lead time after they
    are asked for; the newest go first); the backtest's node model counts its own from
    ``headroom_for``."""
    index = index_calendar(policy, calendar)
    times = table.times_s
    times_list = times.tolist()
    state = CycleState()
    stale = stale_after_s if stale_after_s is not None else max(300, 3 * int(times[1] - times[0]))
    n = max(0, -(-(stop_s - start_s) // policy.interval_s))
    out_times = start_s + np.arange(n, dtype=np.int64) * policy.interval_s
    targets = [0] * n
    sized: list[float] = [math.nan] * n
    ahead: list[int] = [0] * n if policy.headroom else []
    holding = 0
    placeholders: int | None = None
    # (since, value) of the floor or count in effect, from the one in effect a lead time ago
    effect: list[tuple[int, int]] = [(start_s - policy.plan.lead_time_s, (replicas if policy.mode == "scale" else (hpa.min_replicas if hpa else 0)) or 0)]
    lead_s = policy.plan.lead_time_s
    writes: list[CycleDecision] = []
    view_for = -1
    view = None
    # the newest known sample at or before each cycle (cycles move forward, so does it): as in the
    # controller's cache, a missing sample is no sample, and an old one is stale
    last = bisect_right(times_list, start_s) - 1
    known = last
    n_times = len(times_list)
    first, usable = table.first, table.usable
    while known >= first and not usable[known - first]:
        known -= 1
    scale = policy.mode == "scale"
    for k, now in enumerate(out_times.tolist()):
        while last + 1 < n_times and times_list[last + 1] <= now:
            last += 1
            if last >= first and usable[last - first]:
                known = last
        if known < first:
            fc = None
        elif now - times_list[known] > stale:
            # no fresh sample: an open event window still gets its raise from the last known level
            fc = stale_forecast(times[: known + 1], table.values[: known + 1], calendar, policy, table.settings, table.step_s, now) if index.at(now)[0] else None
        else:
            if known != view_for:
                view, view_for = table.view(known), known
            fc = view
        ready = None
        if ahead:
            while len(effect) > 1 and effect[1][0] <= now - lead_s:
                effect.pop(0)
            ready = min(v for _, v in effect)
        decision = decide(policy, state, Seen(now, fc, replicas, hpa, ready=ready, placeholders=placeholders), index)
        state = decision.state
        if decision.forecast_peak is not None:
            sized[k] = max(decision.forecast_peak, decision.forecast_upper or 0.0)
        if keep and decision.writes:
            writes.append(decision)
        if ahead:
            placeholders = decision.placeholders
            holding = 0 if placeholders is None else (decision.headroom_for if decision.headroom_for is not None else holding)
            ahead[k] = holding
        if decision.action != NONE:
            if decision.action == SCALE:
                replicas = decision.target
            elif hpa is not None:
                restored = decision.action == RESTORE
                hpa = replace(hpa, min_replicas=decision.target if decision.target is not None else hpa.min_replicas, original=None if restored else (hpa.original if hpa.original is not None else decision.original))
        if scale:
            targets[k] = replicas or 0
        elif hpa is not None:
            targets[k] = hpa.min_replicas
        if ahead and targets[k] != effect[-1][1]:
            effect.append((now, targets[k]))
        if progress is not None and k % 20000 == 0:
            progress(k / n)
    return Replay(
        times_s=out_times, targets=np.asarray(targets, dtype=np.int64), writes=writes, sized_for=np.asarray(sized),
        headroom_for=np.asarray(ahead, dtype=np.int64) if ahead else None,
    )  # fmt: skip


def remember(
    times_s: np.ndarray,
    values: np.ndarray,
    calendar: Sequence[PromotionEvent],
    policy: CyclePolicy,
    settings: ForecastSettings,
    step_s: int,
    *,
    policy_name: str = "",
) -> list[PromotionEvent]:
    """The calendar with what the controller records of each event once its window and cool-down
    have passed (``forecast.record_profile``, from the cycle that acts on it, one lead time and
    one interval before the start, to its end; available from ``end + cooldown``): a replay over a
    known history remembers what the controller would have. Events whose samples the history does
    not cover keep what they had."""
    events = list(calendar)
    starts = period_starts(times_s, step_s)
    out = []
    for event in events:
        recorded = record_profile(
            starts, values, events, event, step_s=step_s, lead_time_s=policy.reach_s, settings=settings,
            recorded_at_s=event.end_s + policy.cooldown_s, policy=policy_name,
        )  # fmt: skip
        out.append(event if recorded is None else event.model_copy(update={"memory": recorded}))
    return out


def forecast_table(
    times_s: np.ndarray,
    values: np.ndarray,
    calendar: Sequence[PromotionEvent],
    policy: CyclePolicy,
    settings: ForecastSettings,
    *,
    start_s: int,
    stop_s: int,
    progress: Callable[[float], None] | None = None,
) -> ForecastTable:
    """The forecasts a replay over ``[start_s, stop_s)`` uses: one per sample it can see (``times_s``
    labeled as Prometheus labels them), each the row ``live_forecast`` computes at that sample."""
    events = list(calendar)
    step_s = int(times_s[1] - times_s[0])
    horizon = horizon_steps(policy, step_s)
    first = max(0, int(np.searchsorted(times_s, start_s, side="right")) - 1)
    stop = max(first + 1, min(len(times_s), int(np.searchsorted(times_s, stop_s, side="right"))))
    starts = period_starts(times_s, step_s)
    masked = event_mask(starts, events)
    central = np.empty((stop - first, horizon + 1))
    upper = np.empty((stop - first, horizon + 1))
    who = np.empty((stop - first, horizon + 1), dtype=np.int64)
    baseline = None
    i = first
    blocks = 0
    while i < stop:
        j = min(stop, block_bounds(starts, i, settings))
        block = forecast_block(starts, values, masked, events, first=i, stop=j, horizon=horizon, step_s=step_s, settings=settings, baseline=baseline)
        baseline = block.baseline
        central[i - first : j - first] = block.central
        upper[i - first : j - first] = block.upper
        who[i - first : j - first] = block.who
        i = j
        blocks += 1
        if progress is not None and blocks % 50 == 0:
            progress((i - first) / (stop - first))
    return ForecastTable(times_s=times_s, values=values, first=first, central=central, upper=upper, who=who, labels=[e.label for e in events], settings=settings)
