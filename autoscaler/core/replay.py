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

from autoscaler.core.defaults import stale_after
from autoscaler.core.calendar import EventProfile, PromotionEvent, event_mask
from autoscaler.core.forecast import block_bounds, forecast_block
from autoscaler.core.profiles import record_profile
from autoscaler.core.baseline import ForecastSettings
from autoscaler.core.cycle import CalendarIndex, decide, horizon_steps, index_calendar, period_starts, stale_forecast
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


class _Samples:
    """The samples the controller's Prometheus holds at each cycle, cycles moving forward: the
    forecast of the newest usable one at or before ``now``, as in the controller's cache (a missing
    sample is no sample, an old one is stale and only an open event window still gets its raise,
    from the last known level)."""

    def __init__(self, table: ForecastTable, policy: CyclePolicy, calendar: Sequence[PromotionEvent], index: CalendarIndex, start_s: int, stale_s: int) -> None:
        self.table, self.policy, self.calendar, self.index, self.stale_s = table, policy, calendar, index, stale_s
        self.times = table.times_s.tolist()
        self.last = bisect_right(self.times, start_s) - 1
        self.known = self.last
        while self.known >= table.first and not table.usable[self.known - table.first]:
            self.known -= 1
        self.view: ForecastView | None = None
        self.view_for = -1

    def forecast(self, now: int) -> ForecastView | None:
        table, times, first = self.table, self.times, self.table.first
        while self.last + 1 < len(times) and times[self.last + 1] <= now:
            self.last += 1
            if self.last >= first and table.usable[self.last - first]:
                self.known = self.last
        known = self.known
        if known < first:
            return None
        if now - times[known] > self.stale_s:
            if not self.index.at(now)[0]:
                return None
            return stale_forecast(table.times_s[: known + 1], table.values[: known + 1], self.calendar, self.policy, table.settings, table.step_s, now)
        if known != self.view_for:
            self.view, self.view_for = table.view(known), known
        return self.view


class _Cluster:
    """The cluster answering each write: the HPA takes the floor, the target the replica count, the
    placeholder its pod count. With node headroom, the target's ready replicas are those the floor
    or count kept for the whole lead time before ``now`` (pods serve a lead time after they are
    asked for; the newest go first)."""

    def __init__(self, policy: CyclePolicy, hpa: HpaFloor | None, replicas: int | None, start_s: int) -> None:
        self.scale, self.hpa, self.replicas = policy.mode == "scale", hpa, replicas
        self.headroom = policy.headroom
        self.lead_s = policy.plan.lead_time_s
        self.placeholders: int | None = None
        # (since, value) of the floor or count in effect, from the one in effect a lead time ago
        self.effect: list[tuple[int, int]] = [(start_s - self.lead_s, (replicas if self.scale else (hpa.min_replicas if hpa else 0)) or 0)]

    def seen(self, now: int, fc: ForecastView | None) -> Seen:
        ready = None
        if self.headroom:
            effect = self.effect
            while len(effect) > 1 and effect[1][0] <= now - self.lead_s:
                effect.pop(0)
            ready = min(v for _, v in effect)
        return Seen(now, fc, self.replicas, self.hpa, ready=ready, placeholders=self.placeholders)

    def apply(self, decision: CycleDecision, now: int) -> int:
        """Carry out the decision; returns the floor or count in effect after it."""
        self.placeholders = decision.placeholders
        hpa = self.hpa
        if decision.action == SCALE:
            self.replicas = decision.target
        elif decision.action != NONE and hpa is not None:
            restored = decision.action == RESTORE
            original = None if restored else (hpa.original if hpa.original is not None else decision.original)
            self.hpa = replace(hpa, min_replicas=decision.target if decision.target is not None else hpa.min_replicas, original=original)
        target = (self.replicas or 0) if self.scale else (self.hpa.min_replicas if self.hpa is not None else 0)
        if self.headroom and target != self.effect[-1][1]:
            self.effect.append((now, target))
        return target


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
    would: each cycle sees the samples up to ``now`` (their forecast from ``table``, ``_Samples``),
    and the cluster answers each write (``_Cluster``); the backtest's node model counts its own
    ready replicas from ``headroom_for``."""
    index = index_calendar(policy, calendar)
    stale = stale_after_s if stale_after_s is not None else stale_after(int(table.times_s[1] - table.times_s[0]))
    n = max(0, -(-(stop_s - start_s) // policy.interval_s))
    out_times = start_s + np.arange(n, dtype=np.int64) * policy.interval_s
    targets = [0] * n
    sized: list[float] = [math.nan] * n
    headroom = policy.headroom
    ahead: list[int] = [0] * n if headroom else []
    holding = 0
    state = CycleState()
    writes: list[CycleDecision] = []
    samples = _Samples(table, policy, calendar, index, start_s, stale)
    cluster = _Cluster(policy, hpa, replicas, start_s)
    for k, now in enumerate(out_times.tolist()):
        decision = decide(policy, state, cluster.seen(now, samples.forecast(now)), index)
        state = decision.state
        if decision.forecast_peak is not None:
            sized[k] = max(decision.forecast_peak, decision.forecast_upper or 0.0)
        if keep and decision.writes:
            writes.append(decision)
        if headroom:
            holding = 0 if decision.placeholders is None else (decision.headroom_for if decision.headroom_for is not None else holding)
            ahead[k] = holding
        targets[k] = cluster.apply(decision, now)
        if progress is not None and k % 20000 == 0:
            progress(k / n)
    return Replay(
        times_s=out_times, targets=np.asarray(targets, dtype=np.int64), writes=writes, sized_for=np.asarray(sized),
        headroom_for=np.asarray(ahead, dtype=np.int64) if ahead else None,
    )  # fmt: skip


def replay_from_bounds(policy: CyclePolicy, calendar: Sequence[PromotionEvent], table: ForecastTable, *, start_s: int, stop_s: int) -> Replay:
    """``replay`` from where a policy's target stands with nothing raised: a scale-mode target at
    minReplicas, an HPA at its own bounds (``plan`` and ``promo review`` start there)."""
    pp = policy.plan
    if policy.mode == "scale":
        return replay(policy, calendar, table, start_s=start_s, stop_s=stop_s, replicas=pp.min_replicas)
    return replay(policy, calendar, table, start_s=start_s, stop_s=stop_s, hpa=HpaFloor(pp.min_replicas, pp.max_replicas))


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
    have passed (``profiles.record_profile``, from the cycle that acts on it, one lead time and
    one interval before the start, to its end; available from ``end + cooldown``): a replay over a
    known history remembers what the controller would have. Events whose samples the history does
    not cover keep what they had."""
    events = list(calendar)
    out = []
    for event in events:
        recorded = record_event(times_s, values, events, event, policy, settings, step_s, policy_name=policy_name)
        out.append(event if recorded is None else event.model_copy(update={"memory": recorded}))
    return out


def recordable(event: PromotionEvent, policy: CyclePolicy, first_s: int, now_s: float) -> bool:
    """Whether what a policy saw of ``event`` is known at ``now_s`` (its window and cool-down have
    passed) from samples that start at ``first_s`` (the oldest period the history holds reaches
    the cycle that acts on it): the memory window of ``record_event``, for the controller."""
    return now_s >= event.end_s + policy.cooldown_s and event.start_s - policy.reach_s >= first_s


def record_event(
    times_s: np.ndarray,
    values: np.ndarray,
    calendar: list[PromotionEvent],
    event: PromotionEvent,
    policy: CyclePolicy,
    settings: ForecastSettings,
    step_s: int,
    *,
    policy_name: str = "",
) -> EventProfile | None:
    """What the controller records of ``event`` for one policy (``profiles.record_profile``): from
    the cycle that acts on it, one lead time and one interval before the start, to its end, known
    from ``end + cooldown``. ``times_s`` are labeled as Prometheus labels them. The one rule for the
    controller, ``remember`` and ``promo review``."""
    return record_profile(
        period_starts(times_s, step_s), values, calendar, event, step_s=step_s, lead_time_s=policy.reach_s, settings=settings,
        recorded_at_s=event.end_s + policy.cooldown_s, policy=policy_name,
    )  # fmt: skip


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
