"""``peakscale promo review``: after an event, what was planned, what happened, what was learned.

For one promotion and each ScalingPolicy it targeted, the controller's cycles around the event are
replayed (``replay.replay``, the one decision path) from the history: the floor or replica count
planned for it and when it was asked for, hence when it was ready (a lead time later); the peak
the plan was sized for beside the peak observed; the minutes in which demand exceeded the
capacity ready (an HPA simulated on top of the floor in hpa-floor mode, as in the backtest); and
the profile the controller records into memory (the one it recorded, when the store has it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel

from autoscaler.core.calendar import EventProfile, PromotionEvent
from autoscaler.core.cycle import period_starts
from autoscaler.core.windows import action_window
from autoscaler.core.profiles import has_basis
from autoscaler.core.replay import Replay, forecast_table, record_event, remember, replay_from_bounds
from autoscaler.core.cycle_types import CyclePolicy
from autoscaler.core.plan_report import WARM_UP_S, PolicyInput
from autoscaler.core.simulate import ready_replicas, simulate_hpa

#: how long before an event's window the replay starts, so that the plan has settled


class Recorded(BaseModel):
    step_s: int
    points: int
    peak_uplift: float
    minutes_to_peak: float
    #: True: already in the store (the controller recorded it); False: what it records
    stored: bool


class PolicyReview(BaseModel):
    policy: str
    namespace: str
    target: str
    mode: str
    lead_time_s: int
    #: the floor (hpa-floor) or replica count (scale) ready when the event started
    ready_at_start: int | None
    #: the highest floor or count planned while the event ran, when it was asked for, when ready
    planned_peak: int | None
    asked_at: str | None
    ready_at: str | None
    #: the peak the plan was sized for (central or upper forecast), and the peak observed
    forecast_peak: float | None
    observed_peak: float | None
    #: minutes of the event in which demand exceeded the capacity ready, and minutes without data
    short_minutes: float
    missing_minutes: float
    #: the policy's coverage, and the share of the event's minutes (with data) whose demand exceeded
    #: what the plan alone had ready (its replicas a lead time after it asked): nominal 1 - coverage
    #: (None without data, or for an event the plan had nothing to size from: ``has_basis``)
    coverage: float
    exceeded: float | None
    recorded: Recorded | None

    def line(self) -> str:
        short = f"{self.short_minutes:g} min short" if self.short_minutes else "never short"
        fc = f"{self.forecast_peak:,.0f}" if self.forecast_peak is not None else "-"
        seen = f"{self.observed_peak:,.0f}" if self.observed_peak is not None else "-"
        return f"{self.policy}: planned {self.planned_peak}, ready {self.ready_at_start} at the start; forecast peak {fc} vs observed {seen}; {short}"


class Review(BaseModel):
    event: str
    title: str
    kind: str
    start: str
    end: str
    tz: str
    policies: list[PolicyReview]


def review_policy(
    policy: PolicyInput,
    times: np.ndarray,
    values: np.ndarray,
    calendar: list[PromotionEvent],
    name: str,
    *,
    interval_s: int,
    fmt: Callable[[float], str],
) -> PolicyReview:
    """Review promotion ``name`` for one policy from its history (``times`` labeled as Prometheus
    labels them) and the calendar the controller had."""
    spec = policy.spec
    cycle_policy = spec.cycle_policy(interval_s)
    plan = cycle_policy.plan
    settings = spec.forecast_settings()
    step = int(times[1] - times[0])
    mine = policy.applying(calendar)
    k = next(i for i, e in enumerate(mine) if e.name == name)
    event = mine[k]
    opens, closes = action_window(cycle_policy, event)
    lo_s, hi_s = opens - WARM_UP_S, max(closes, event.end_s + plan.scale_down_stabilization_s) + step
    remembered = remember(times, values, mine, cycle_policy, settings, step, policy_name=policy.name)
    stored = event.memory if event.memory is not None and event.memory.policy == policy.name else None
    table = forecast_table(times, values, remembered, cycle_policy, settings, start_s=lo_s, stop_s=hi_s)
    run = replay_from_bounds(cycle_policy, remembered, table, start_s=lo_s, stop_s=hi_s)
    cycles = run.times_s
    during = (cycles >= opens) & (cycles < event.end_s)
    planned_peak = asked_at = ready_at = None
    if during.any():
        planned_peak = int(run.targets[during].max())
        first = int(cycles[during][np.argmax(run.targets[during] >= planned_peak)])
        asked_at, ready_at = fmt(first), fmt(first + plan.lead_time_s)
    k_start = int(np.searchsorted(cycles, event.start_s - plan.lead_time_s, side="right")) - 1
    ready_at_start = int(run.targets[k_start]) if k_start >= 0 else None
    sized = run.sized_for[during] if run.sized_for is not None else np.array([])
    forecast_peak = float(np.nanmax(sized)) if sized.size and np.isfinite(sized).any() else None
    short, missing, observed, exceeded = _served(times, values, run, cycle_policy, event, spec.mode == "scale")
    # what the controller records of it: ``remember`` has worked it out (a copy of the event carries it)
    recorded = stored or (remembered[k].memory if remembered[k] is not event else None)
    return PolicyReview(
        policy=policy.name,
        namespace=policy.namespace,
        target=f"{spec.target_ref.kind}/{spec.target_ref.name}",
        mode=spec.mode,
        lead_time_s=plan.lead_time_s,
        ready_at_start=ready_at_start,
        planned_peak=planned_peak,
        asked_at=asked_at,
        ready_at=ready_at,
        forecast_peak=forecast_peak,
        observed_peak=observed,
        short_minutes=short,
        missing_minutes=missing,
        coverage=spec.coverage,
        exceeded=exceeded if has_basis(event, mine) else None,
        recorded=_recorded(recorded, stored is not None),
    )


def recorded_profile(policy: PolicyInput, times: np.ndarray, values: np.ndarray, calendar: list[PromotionEvent], name: str, *, interval_s: int) -> EventProfile | None:
    """The profile the controller records of promotion ``name`` for this policy."""
    spec = policy.spec
    cycle_policy = spec.cycle_policy(interval_s)
    mine = policy.applying(calendar)
    event = next(e for e in mine if e.name == name)
    return record_event(times, values, mine, event, cycle_policy, spec.forecast_settings(), int(times[1] - times[0]), policy_name=policy.name)


def _recorded(profile: EventProfile | None, stored: bool) -> Recorded | None:
    if profile is None:
        return None
    return Recorded(step_s=profile.step_s, points=len(profile.uplift), peak_uplift=profile.peak_uplift, minutes_to_peak=profile.minutes_to_peak, stored=stored)


def _served(times: np.ndarray, values: np.ndarray, run: Replay, cycle_policy: CyclePolicy, event: PromotionEvent, scale: bool) -> tuple[float, float, float | None, float | None]:
    """(minutes short of ready capacity, minutes without data, observed peak, share of minutes
    above what the plan alone had ready) during the event.

    The demand of each period against the capacity ready in it: replicas asked for serve a lead
    time later; in hpa-floor mode the HPA (simulated as in the backtest, seeing each period once
    it is over) runs above the floor."""
    plan = cycle_policy.plan
    step = int(times[1] - times[0])
    starts = period_starts(times, step)
    k = np.clip(np.searchsorted(run.times_s, starts, side="right") - 1, 0, len(run.targets) - 1)
    planned = run.targets[k]
    if scale:
        desired = planned
    else:
        observed = np.concatenate([[values[0]], values[:-1]])
        desired = simulate_hpa(
            observed, step_s=step, capacity_per_replica=plan.capacity_per_replica, target_utilization=plan.target_utilization,
            min_replicas=planned, max_replicas=plan.max_replicas, initial=int(planned[0]),
        )  # fmt: skip
    ready = ready_replicas(desired, math.ceil(plan.lead_time_s / step))
    inside = (starts >= event.start_s) & (starts < event.end_s)
    demand = values[inside]
    known = np.isfinite(demand)
    short = int((demand[known] > ready[inside][known] * plan.capacity_per_replica).sum())
    peak = float(demand[known].max()) if known.any() else None
    planned_ready = ready_replicas(planned, math.ceil(plan.lead_time_s / step))[inside][known] * plan.capacity_per_replica
    exceeded = float((demand[known] > planned_ready).mean()) if known.any() else None
    return short * step / 60, float((~known).sum() * step / 60), peak, exceeded
