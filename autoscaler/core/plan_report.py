"""``peakscale plan``: what will scale when, before the night.

For each ScalingPolicy, the plan is the controller's own cycles replayed (``replay.replay``, which
calls ``cycle.decide``) at the instants the controller would run them, from ``--from`` to
``--to``: every floor it would raise, lower or restore, every replica count it would write, each
with its reason. Each cycle sees the history up to that instant only; beyond the newest sample,
the history is carried forward by the seasonal baseline times the current level (the
forecaster's own view of the future), so events ahead are planned as the controller will plan
them once it gets there. Once a promotion's window reaches past the newest sample, what the
controller does next depends on what the metrics show, so the plan tells two stories from that
instant (``Scenario``): the promotion arrives as forecast (its samples are the central forecast
made just before them, ``_as_forecast``), or it does not show at all (the carried-forward
history). The rows before that instant hold in both. The plan starts from the state the controller's cycles reach by
``--from`` (replayed from up to ``WARM_UP_S`` before it, as far as the history goes;
``minReplicas`` where none precedes it). What ``plan`` shows is what the controller does;
a parity test holds the two to the same writes at the same instants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel

from autoscaler.core.calendar import PromotionEvent
from autoscaler.core.replay import Replay, forecast_table, remember, replay_from_bounds
from autoscaler.core.cycle_types import NONE, SCALE, CycleDecision
from autoscaler.core.baseline import ForecastSettings
from autoscaler.core.cycle import carry_forward, period_starts
from autoscaler.core.profiles import band_note
from autoscaler.core.resources import ScalingPolicySpec, event_applies

SPARK = "▁▂▃▄▅▆▇█"

#: how long before its window a plan (and a review) starts replaying the controller's cycles, so
#: that it starts from the state the controller has reached by then (a floor raised for a running
#: promotion, a stabilization window), never from minReplicas
WARM_UP_S = 2 * 3600


class Action(BaseModel):
    at: str
    at_s: int
    #: raise-floor, lower-floor, restore-floor or scale; node headroom: create-headroom,
    #: resize-headroom or delete-headroom (replicas are then placeholder pods)
    action: str
    from_replicas: int
    to_replicas: int
    #: the promotion behind it ('' when the seasonal forecast alone moved the plan)
    event: str
    title: str
    lead_time_s: int
    reason: str


class TimelinePoint(BaseModel):
    """One bucket of the timeline: its start and the highest floor or count planned in it."""

    at: str
    at_s: int
    replicas: int


class Scenario(BaseModel):
    """The writes from ``at`` on (the start of a promotion the history does not reach yet) under one
    assumption about what the metrics will show."""

    #: as-forecast: the promotions arrive as the forecaster expects them (their central forecast);
    #: no-show: they do not show in the metrics at all
    name: str
    title: str
    at: str
    at_s: int
    actions: list[Action]
    timeline: list[TimelinePoint]


class TargetPlan(BaseModel):
    policy: str
    namespace: str
    target: str
    mode: str
    min_replicas: int
    max_replicas: int
    #: the floor (hpa-floor) or replica count (scale) the plan starts from at --from: what the
    #: controller's cycles before it reach (``WARM_UP_S``), minReplicas where no history precedes it
    start_replicas: int
    lead_time_s: int
    interval_s: int
    actions: list[Action]
    #: one point per bucket of ``timeline_step_s`` (``sparkline`` draws it)
    timeline: list[TimelinePoint]
    timeline_step_s: int
    #: promotions that select this policy
    events: list[str]
    #: the share of event demand the plan is sized to serve (spec.coverage), and per promotion of
    #: the window how wide its upper forecast is at it (``profiles.band_note``)
    coverage: float = 0.99
    bands: list[str] = []
    #: empty while the history covers the promotions of the window; else the two stories from the
    #: first promotion the history does not reach (``actions`` then holds the rows before it, and
    #: ``timeline`` is the as-forecast one)
    scenarios: list[Scenario] = []


class Plan(BaseModel):
    start: str
    end: str
    tz: str
    #: where the promotions and policies were read (store, namespace, context)
    source: str = ""
    targets: list[TargetPlan]
    #: promotions in the window that select no policy (nothing is raised for them)
    unmatched: list[str] = []


@dataclass
class PolicyInput:
    name: str
    namespace: str
    labels: dict[str, str]
    spec: ScalingPolicySpec

    def applying(self, calendar: list[PromotionEvent]) -> list[PromotionEvent]:
        """The promotions that apply to this policy (``resources.event_applies``: the controller's
        rule), each as its forecaster sees it, earliest first."""
        return sorted((e.for_policy(self.name) for e in calendar if event_applies(e, self.namespace, self.labels)), key=lambda e: e.start_s)


def _as_forecast(times: np.ndarray, values: np.ndarray, calendar: list[PromotionEvent], real: int, settings: ForecastSettings) -> np.ndarray:
    """The carried-forward series with each promotion arriving as forecast: its samples past the
    ``real`` ones are the central forecast made at the sample just before them (on the series so
    far, earlier promotions' forecast arrivals included), never below the seasonal carry."""
    from autoscaler.core.forecast import forecast_at

    step = int(times[1] - times[0])
    starts = period_starts(times, step)
    out = values.copy()
    for event in calendar:
        first = max(real, -(-(event.start_s - int(starts[0])) // step))
        end = min(len(out), -(-(event.end_s - int(starts[0])) // step))
        if first >= end or first < 1:
            continue
        made = forecast_at(starts, out, calendar, first - 1, end - first + 1, settings, step_s=step)
        out[first:end] = np.maximum(out[first:end], made.values[1 : end - first + 1])
    return out


def replay_target(
    policy: PolicyInput,
    times: np.ndarray,
    values: np.ndarray,
    calendar: list[PromotionEvent],
    from_s: int,
    to_s: int,
    *,
    interval_s: int = 30,
    arrives: bool = False,
) -> tuple[Replay, list[PromotionEvent]]:
    """The controller's cycles for one policy over ``[from_s, to_s)`` (``replay.replay``), and the
    events that target it, as the controller will know them (with what it will have recorded).
    Beyond the history, the promotions arrive as forecast (``arrives``) or do not show."""
    spec = policy.spec
    cycle_policy = spec.cycle_policy(interval_s)
    settings = spec.forecast_settings()
    mine = policy.applying(calendar)
    real = len(times)
    known = np.flatnonzero(np.isfinite(values))
    if len(known) and times[-1] < to_s:
        # what comes after the history, by the controller's own rule (``cycle.carry_forward``)
        real = int(known[-1]) + 1
        times, values = carry_forward(times, values, mine, settings, int(times[1] - times[0]), to_s)
    if arrives and len(times) > real:
        values = _as_forecast(times, values, mine, real, settings)
    # what the controller will have recorded of each event by the time it plans the next ones
    mine = remember(times, values, mine, cycle_policy, settings, int(times[1] - times[0]), policy_name=policy.name)
    table = forecast_table(times, values, mine, cycle_policy, settings, start_s=from_s, stop_s=to_s)
    run = replay_from_bounds(cycle_policy, mine, table, start_s=from_s, stop_s=to_s)
    return run, mine


def unseen_promotions(policy: PolicyInput, times: np.ndarray, calendar: list[PromotionEvent], to_s: int) -> list[PromotionEvent]:
    """The promotions of the policy whose window reaches past the newest sample (``times`` as
    Prometheus labels them) and starts before ``to_s``: what the metrics will show of them is not
    known yet, earliest first."""
    newest = int(times[-1]) if len(times) else -(2**62)
    return [e for e in policy.applying(calendar) if e.end_s > newest and e.start_s < to_s]


def plan_target(
    policy: PolicyInput,
    times: np.ndarray,
    values: np.ndarray,
    calendar: list[PromotionEvent],
    from_s: int,
    to_s: int,
    *,
    interval_s: int = 30,
    fmt: Callable[[float], str] = str,
) -> TargetPlan:
    """The controller's writes for one policy over ``[from_s, to_s)``, from its history
    (``times`` as its Prometheus labels them: each sample at the end of the period it measures);
    from the first promotion the history does not reach, two scenarios (see the module)."""
    spec = policy.spec
    pp = spec.plan_policy()
    # the cycles before --from too (as far as the history reaches, at most WARM_UP_S, on the same
    # instants): the plan starts from the state the controller has reached by then
    first = int(times[0]) if len(times) else from_s
    warm_s = from_s - max(0, min(WARM_UP_S, from_s - first)) // interval_s * interval_s
    unseen = unseen_promotions(policy, times, calendar, to_s)
    run, mine = replay_target(policy, times, values, calendar, warm_s, to_s, interval_s=interval_s, arrives=bool(unseen))
    before = run.targets[run.times_s < from_s]
    actions = _actions(run, mine, spec.mode, pp.lead_time_s, from_s, fmt)
    timeline, bucket = _timeline(run.times_s, run.targets, pp.min_replicas, from_s, to_s, fmt)
    scenarios: list[Scenario] = []
    if unseen:
        # samples from the split on are what the two stories disagree on; no cycle before it sees them
        split = max(from_s, unseen[0].start_s, int(times[-1]))
        absent, _ = replay_target(policy, times, values, calendar, warm_s, to_s, interval_s=interval_s)
        what = repr(unseen[0].label) + (f" and {len(unseen) - 1} later promotion(s)" if len(unseen) > 1 else "")
        scenarios = [
            Scenario(name="as-forecast", title=f"if {what} arrives as forecast", at=fmt(split), at_s=split, actions=[a for a in actions if a.at_s >= split], timeline=timeline),
            Scenario(
                name="no-show", title=f"if {what} does not show in the metrics", at=fmt(split), at_s=split,
                actions=_actions(absent, mine, spec.mode, pp.lead_time_s, split, fmt),
                timeline=_timeline(absent.times_s, absent.targets, pp.min_replicas, from_s, to_s, fmt)[0],
            ),
        ]  # fmt: skip
        actions = [a for a in actions if a.at_s < split]
    return TargetPlan(
        policy=policy.name,
        namespace=policy.namespace,
        target=f"{spec.target_ref.kind}/{spec.target_ref.name}",
        mode=spec.mode,
        min_replicas=pp.min_replicas,
        max_replicas=pp.max_replicas,
        start_replicas=int(before[-1]) if before.size else pp.min_replicas,
        lead_time_s=pp.lead_time_s,
        interval_s=interval_s,
        actions=actions,
        timeline=timeline,
        timeline_step_s=bucket,
        events=[e.name for e in mine],
        scenarios=scenarios,
        coverage=spec.coverage,
        bands=[band_note(e, mine, spec.coverage, spec.forecast_settings().max_past_events) for e in mine if e.end_s > from_s and e.start_s < to_s],
    )


def _actions(run: Replay, mine: list[PromotionEvent], mode: str, lead_s: int, from_s: int, fmt: Callable[[float], str]) -> list[Action]:
    """The rows of a replay's writes from ``from_s`` on (none in observe mode)."""
    actions: list[Action] = []
    if mode == "observe":
        return actions
    for d in (d for d in run.writes if d.at_s >= from_s):
        if d.action != NONE:
            actions.append(_action(d, mine, lead_s, fmt))
        if d.headroom_write != NONE:
            actions.append(_headroom_action(d, mine, lead_s, fmt))
    return actions


def _action(decision: CycleDecision, calendar: list[PromotionEvent], lead: int, fmt: Callable[[float], str]) -> Action:
    label = decision.event
    event = next((e for e in decision.events if e.label == label), None) or next((e for e in calendar if e.label == label), None)
    if event is None and decision.events:
        event = decision.events[0]
    return Action(
        at=fmt(decision.at_s),
        at_s=int(decision.at_s),
        action=decision.action if decision.action != SCALE else "scale",
        from_replicas=int(decision.previous or 0),
        to_replicas=int(decision.target or 0),
        event=event.name if event is not None else "",
        title=event.label if event is not None else "",
        lead_time_s=lead,
        reason=decision.why(),
    )


def _headroom_action(decision: CycleDecision, calendar: list[PromotionEvent], lead: int, fmt: Callable[[float], str]) -> Action:
    event = next((e for e in calendar if e.label == decision.headroom_event), None)
    why = decision.explain_headroom().split(": ", 1)[-1]
    if decision.headroom_event:
        why = why.rsplit(f" for {decision.headroom_event!r}", 1)[0]
    return Action(
        at=fmt(decision.at_s),
        at_s=int(decision.at_s),
        action=decision.headroom_write,
        from_replicas=int(decision.placeholders_before or 0),
        to_replicas=int(decision.placeholders or 0),
        event=event.name if event is not None else "",
        title=event.label if event is not None else "",
        lead_time_s=lead,
        reason=why,
    )


def _timeline(times_s: np.ndarray, targets: np.ndarray, base: int, from_s: int, to_s: int, fmt: Callable[[float], str], width: int = 48) -> tuple[list[TimelinePoint], int]:
    """About ``width`` buckets of whole minutes: the highest planned floor or count in each."""
    bucket = max(60, math.ceil((to_s - from_s) / width / 60) * 60)
    points = []
    for lo in range(from_s, to_s, bucket):
        inside = targets[(times_s >= lo) & (times_s < lo + bucket)]
        points.append(TimelinePoint(at=fmt(lo), at_s=lo, replicas=int(inside.max()) if inside.size else base))
    return points, bucket


def sparkline(points: list[TimelinePoint], base: int, top: int) -> str:
    """One character per point, its replicas scaled from ``base`` to ``top``."""
    chars = []
    for p in points:
        frac = 0.0 if top <= base else (p.replicas - base) / (top - base)
        chars.append(SPARK[min(len(SPARK) - 1, max(0, int(round(frac * (len(SPARK) - 1)))))])
    return "".join(chars)
