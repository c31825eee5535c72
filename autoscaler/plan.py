"""The planner: from a demand forecast to a replica count, with the reason for every decision.

One step of the planner is a pure function of the policy, the planner's previous state and what
is known now (current demand, forecast peak over ``[now, now + leadTime]``, whether a frozen event
is active). The same step serves the backtest, ``peakscale plan`` and the live controller.

Rules, in order (DESIGN.md):

1. ``want`` = ceil(central forecast peak over the lead-time window / (capacity * utilization)),
   and at least ceil(upper forecast peak / capacity);
2. never below what the current load needs now: the replicas without which it goes unserved
   (full capacity; the utilization headroom applies to the forecast, not twice);
3. clamped to ``[minReplicas, maxReplicas]`` (``maxReplicas`` wins over everything);
4. scale-in only after ``scaleDownStabilization`` (the highest recommendation of that window);
5. no scale-in while a frozen event is active;
6. scale-up limited to ``maxScaleUpPerMinute``, except that it never holds capacity below the
   current need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autoscaler.errors import InputError

# reason codes, stable strings for status, Events and JSON
FORECAST = "forecast"
CURRENT_NEED = "current-need"
MIN_BOUND = "min-bound"
MAX_BOUND = "max-bound"
STABILIZATION = "scale-down-stabilization"
FROZEN = "frozen-during-event"
RATE_LIMIT = "scale-up-rate-limit"
TOLERANCE = "within-tolerance"


@dataclass(frozen=True)
class PlanPolicy:
    """What a ScalingPolicy says about sizing one target."""

    capacity_per_replica: float
    lead_time_s: int
    min_replicas: int = 1
    max_replicas: int = 100
    target_utilization: float = 0.7
    max_scale_up_per_minute: int | None = None
    scale_down_stabilization_s: int = 300
    freeze_during_events: bool = True
    #: a freeze lasts at most this long from an event's start: a campaign of weeks is a season,
    #: not a surge, and freezing through it would park peak capacity for weeks
    max_freeze_s: int = 6 * 3600
    #: changes smaller than this share of the current count are not made (the HPA's 10 %),
    #: except that the current need is always met
    tolerance: float = 0.1

    def __post_init__(self) -> None:
        validate_policy(self)

    def replicas_at_full(self, demand: float) -> int:
        """Replicas that serve ``demand`` at full capacity (the upper forecast's bound)."""
        if demand <= 0:
            return 0
        return math.ceil(demand / self.capacity_per_replica - 1e-9)

    def replicas_for(self, demand: float) -> int:
        """Replicas that serve ``demand`` at the target utilization (no bounds applied)."""
        if demand <= 0:
            return 0
        return math.ceil(demand / (self.capacity_per_replica * self.target_utilization) - 1e-9)


def validate_policy(policy: PlanPolicy) -> None:
    """Raise ``InputError`` naming the option at fault."""
    if not (math.isfinite(policy.capacity_per_replica) and policy.capacity_per_replica > 0):
        raise InputError("--capacity-per-replica", f"{policy.capacity_per_replica:g} must be > 0", "give the demand one replica serves, e.g. 2000")
    if not (0 < policy.target_utilization <= 1):
        raise InputError("--target-utilization", f"{policy.target_utilization:g} is outside (0, 1]", "e.g. 0.7 keeps 30 % headroom")
    if policy.lead_time_s < 0:
        raise InputError("--lead-time", "must not be negative", "e.g. 10m")
    if policy.min_replicas < 0:
        raise InputError("--min-replicas", f"{policy.min_replicas} is negative", "give 0 or more")
    if policy.max_replicas < 1:
        raise InputError("--max-replicas", f"{policy.max_replicas} must be at least 1", "give the most replicas the tier may run")
    if policy.min_replicas > policy.max_replicas:
        raise InputError("--min-replicas", f"{policy.min_replicas} is above --max-replicas {policy.max_replicas}", "make min <= max")
    if policy.max_scale_up_per_minute is not None and policy.max_scale_up_per_minute < 1:
        raise InputError("--max-scale-up-per-minute", "must be at least 1", "leave it unset for no limit")
    if not (0 <= policy.tolerance < 1):
        raise InputError("--tolerance", f"{policy.tolerance:g} is outside [0, 1)", "e.g. 0.1 ignores changes under 10 %")
    if policy.max_freeze_s < 0:
        raise InputError("--max-freeze", "must not be negative", "e.g. 6h")
    if policy.scale_down_stabilization_s < 0:
        raise InputError("--scale-down-stabilization", "must not be negative", "e.g. 5m")


@dataclass(frozen=True)
class PlannerState:
    """What the planner remembers between steps: the replicas it set and its recent advice."""

    replicas: int
    at_s: int
    #: (time, recommendation) within the stabilization window, oldest first
    recent: tuple[tuple[int, int], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Decision:
    at_s: int
    replicas: int
    previous: int
    reason: str
    need_now: int
    want: int
    forecast_peak: float
    event: str = ""

    @property
    def changed(self) -> bool:
        return self.replicas != self.previous

    def explain(self) -> str:
        """One line a person can read in ``kubectl describe`` or ``peakscale plan``."""
        head = f"{self.previous} -> {self.replicas}" if self.changed else f"hold {self.replicas}"
        why = {
            FORECAST: f"forecast peak {self.forecast_peak:,.0f} within lead time needs {self.want}",
            CURRENT_NEED: f"current load needs {self.need_now}",
            MIN_BOUND: "minReplicas",
            MAX_BOUND: f"capped by maxReplicas (forecast needs {max(self.want, self.need_now)})",
            STABILIZATION: "scale-in waits for the stabilization window",
            FROZEN: "no scale-in while the event is active",
            RATE_LIMIT: "scale-up rate limit",
            TOLERANCE: f"change to {max(self.want, self.need_now)} is within tolerance",
        }[self.reason]
        if self.event:
            why += f" for {self.event!r}"
        return f"{head}: {why}"


def plan_step(
    policy: PlanPolicy,
    state: PlannerState,
    *,
    now_s: int,
    demand_now: float,
    forecast_peak: float,
    forecast_upper: float = 0.0,
    event: str = "",
    frozen: bool = False,
) -> tuple[Decision, PlannerState]:
    """Decide the replica count at ``now_s``; return the decision and the next state.

    ``forecast_peak`` (the central forecast's peak over ``[now, now + leadTime]``) is sized at
    the target utilization; ``forecast_upper`` (the upper forecast's peak) must still fit at full
    capacity. The headroom that target utilization keeps is thus not paid twice.
    """
    current = state.replicas
    need_now = policy.replicas_at_full(demand_now)
    want = max(policy.replicas_for(forecast_peak), policy.replicas_at_full(forecast_upper))
    if want > need_now:
        rec, reason = want, FORECAST
    else:
        rec, reason, event = need_now, CURRENT_NEED, ""
    if rec < policy.min_replicas:
        rec, reason = policy.min_replicas, MIN_BOUND
    if rec > policy.max_replicas:
        rec, reason = policy.max_replicas, MAX_BOUND
    horizon = now_s - policy.scale_down_stabilization_s
    recent = state.recent
    if recent and recent[0][0] <= horizon:
        recent = tuple(p for p in recent if p[0] > horizon)
    recent = recent + ((now_s, rec),)
    target = rec
    if current > 0 and abs(rec - current) <= policy.tolerance * current and need_now <= current:
        if policy.min_replicas <= current <= policy.max_replicas:
            target, reason = current, TOLERANCE
    if target < current:
        held = max(r for _, r in recent)
        if held > target:
            target, reason = min(held, current), STABILIZATION
        if policy.freeze_during_events and frozen and target < current:
            target, reason = current, FROZEN
    elif target > current and policy.max_scale_up_per_minute is not None:
        minutes = max(now_s - state.at_s, 0) / 60 or 1.0
        allowed = current + int(policy.max_scale_up_per_minute * minutes)
        floor_now = min(max(need_now, policy.min_replicas), policy.max_replicas)
        if target > allowed:
            target, reason = max(allowed, floor_now), RATE_LIMIT
    target = min(max(target, policy.min_replicas), policy.max_replicas)
    decision = Decision(
        at_s=now_s,
        replicas=target,
        previous=current,
        reason=reason,
        need_now=need_now,
        want=want,
        forecast_peak=float(forecast_peak),
        event=event,
    )
    return decision, PlannerState(replicas=target, at_s=now_s, recent=recent)


def freeze_windows(events, policy: PlanPolicy) -> list[tuple[int, int]]:
    """The (start, end) wall-clock seconds during which scale-in is frozen."""
    if not policy.freeze_during_events:
        return []
    return [(e.start_s, min(e.end_s, e.start_s + policy.max_freeze_s)) for e in events]


def is_frozen(now_s: int, windows: list[tuple[int, int]]) -> bool:
    return any(lo <= now_s < hi for lo, hi in windows)
