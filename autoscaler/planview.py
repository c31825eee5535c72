"""``peakscale plan``: what will scale when, before the night.

For each ScalingPolicy and each promotion that targets it, the plan replays what the controller
will do: at the last cycle before ``start - leadTime`` it forecasts (``forecast.forecast_at``) and
plans (``plan.plan_step``) from the history it will have by then, and raises the floor; at
``end + cooldown`` it restores it. Decisions in the past of the history use the samples up to that
moment only; decisions beyond the newest sample use the history carried forward by the seasonal
baseline (the forecaster's own view of the future). Same functions as the controller and the
backtest: what ``plan`` shows is what the controller would do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from autoscaler.calendar import PromotionEvent, event_mask
from autoscaler.forecast import ForecastSettings, fit_baseline, forecast_at
from autoscaler.plan import PlannerState, plan_step
from autoscaler.resources import ScalingPolicySpec

SPARK = "▁▂▃▄▅▆▇█"


class Action(BaseModel):
    at: str
    at_s: int
    action: str
    from_replicas: int
    to_replicas: int
    event: str
    title: str
    lead_time_s: int
    reason: str


class TargetPlan(BaseModel):
    policy: str
    namespace: str
    target: str
    mode: str
    min_replicas: int
    max_replicas: int
    lead_time_s: int
    actions: list[Action]
    timeline: str
    timeline_step_s: int


class Plan(BaseModel):
    start: str
    end: str
    tz: str
    targets: list[TargetPlan]


@dataclass
class PolicyInput:
    name: str
    namespace: str
    labels: dict[str, str]
    spec: ScalingPolicySpec
    targets_of: callable  # event name -> bool (selector match)


def _project(times: np.ndarray, values: np.ndarray, masked: np.ndarray, to_s: int, step: int, settings: ForecastSettings) -> tuple[np.ndarray, np.ndarray]:
    """Carry the series forward to ``to_s`` with the seasonal baseline times the current level."""
    if times[-1] >= to_s:
        return times, values
    baseline = fit_baseline(times, values, masked, len(times) - 1, step, settings)
    window = min(len(values), max(1, 3600 // step))
    level = float(values[-window:].sum() / max(baseline.at(times[-window:]).sum(), 1e-12))
    extra = np.arange(times[-1] + step, to_s + step, step, dtype=np.int64)
    return np.concatenate([times, extra]), np.concatenate([values, level * baseline.at(extra)])


def plan_target(
    policy: PolicyInput,
    times: np.ndarray,
    values: np.ndarray,
    calendar: list[PromotionEvent],
    from_s: int,
    to_s: int,
    *,
    interval_s: int = 30,
    fmt=str,
) -> TargetPlan:
    spec = policy.spec
    pp = spec.plan_policy()
    settings = spec.forecast_settings()
    step = int(times[1] - times[0])
    lead = pp.lead_time_s
    cooldown = spec.cooldown_s
    mine = sorted((e for e in calendar if policy.targets_of(e.name)), key=lambda e: e.start_s)
    floor_base = max(pp.min_replicas, 1)
    actions: list[Action] = []
    masked = event_mask(times, calendar)
    horizon = math.ceil((lead + interval_s) / step) + 1
    raised_until = None
    raised_to = floor_base
    spans: list[tuple[int, int, int]] = []
    for event in mine:
        raise_at = event.start_s - lead - interval_s
        restore_at = event.end_s + cooldown
        if restore_at < from_s or raise_at > to_s:
            continue
        t, v = _project(times, values, masked, raise_at, step, settings)
        last = int(np.searchsorted(t, raise_at, side="right")) - 1
        if last < 2:
            continue
        fc = forecast_at(t[: last + 1], v[: last + 1], calendar, last, horizon, settings)
        peak, upper = float(fc.values.max()), float(fc.upper.max())
        decision, _ = plan_step(
            pp, PlannerState(replicas=floor_base, at_s=raise_at - interval_s), now_s=raise_at, demand_now=float(v[last]), forecast_peak=peak, forecast_upper=upper, event=event.label
        )
        target = min(max(decision.replicas, floor_base), pp.max_replicas)
        if raised_until is not None and raise_at <= raised_until:
            # still raised for an earlier event: go higher if needed, keep it up longer
            if target > raised_to:
                actions.append(_action("raise-floor", raise_at, raised_to, target, event, lead, decision.explain(), fmt))
                raised_to = target
            previous_restore = raised_until
            raised_until = max(raised_until, restore_at)
            actions = [a for a in actions if not (a.action == "restore-floor" and a.at_s == previous_restore)]
            actions.append(_action("restore-floor", raised_until, raised_to, floor_base, event, lead, "after the event and its cool-down", fmt))
            spans[-1] = (spans[-1][0], raised_until, raised_to)
            continue
        if target <= floor_base:
            continue
        actions.append(_action("raise-floor", raise_at, floor_base, target, event, lead, decision.explain(), fmt))
        actions.append(_action("restore-floor", restore_at, target, floor_base, event, lead, "after the event and its cool-down", fmt))
        raised_until, raised_to = restore_at, target
        spans.append((raise_at, restore_at, target))
    actions.sort(key=lambda a: (a.at_s, a.action))
    timeline, bucket = _timeline(spans, floor_base, pp.max_replicas, from_s, to_s)
    return TargetPlan(
        policy=policy.name,
        namespace=policy.namespace,
        target=f"{spec.target_ref.kind}/{spec.target_ref.name}",
        mode=spec.mode,
        min_replicas=pp.min_replicas,
        max_replicas=pp.max_replicas,
        lead_time_s=lead,
        actions=actions,
        timeline=timeline,
        timeline_step_s=bucket,
    )


def _action(kind: str, at_s: int, before: int, after: int, event: PromotionEvent, lead: int, reason: str, fmt) -> Action:
    return Action(
        at=fmt(at_s), at_s=int(at_s), action=kind, from_replicas=before, to_replicas=after, event=event.name, title=event.label, lead_time_s=lead, reason=reason
    )


def _timeline(spans: list[tuple[int, int, int]], base: int, top: int, from_s: int, to_s: int, width: int = 48) -> tuple[str, int]:
    """One character per bucket: the highest planned floor in it, on a log-like scale to ``top``."""
    bucket = max(60, math.ceil((to_s - from_s) / width / 60) * 60)
    chars = []
    for lo in range(from_s, to_s, bucket):
        level = base
        for s, e, r in spans:
            if s < lo + bucket and e > lo:
                level = max(level, r)
        frac = 0.0 if top <= base else (level - base) / (top - base)
        chars.append(SPARK[min(len(SPARK) - 1, int(round(frac * (len(SPARK) - 1))))] if level > base else SPARK[0])
    return "".join(chars), bucket
