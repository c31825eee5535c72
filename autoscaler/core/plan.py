"""The planner: from a demand forecast to a replica count, with the reason for every decision.

One step of the planner is a pure function of the policy, the planner's previous state and what
is known now (current demand, forecast peak over the window, whether a frozen event is active).
Its only caller is ``cycle.decide``, which owns the window, the freeze and what gets written; the
controller, ``peakscale plan`` and the backtest all reach the planner through it.

Rules, in order (DESIGN.md):

1. ``want`` = ceil(central forecast peak over the lead-time window / (capacity * utilization)),
   and at least ceil(upper forecast peak / capacity);
2. never below what the current load needs now: the replicas without which it goes unserved
   (full capacity; the utilization headroom applies to the forecast, not twice);
3. clamped to ``[minReplicas, maxReplicas]`` (``maxReplicas`` wins over everything);
4. scale-in only after ``scaleDownStabilization`` (the highest recommendation of that window);
5. while a frozen event is active, no scale-in below the current need plus headroom (the replicas
   the current load needs at the target utilization): capacity may follow an event that turns out
   smaller than planned, never below what it is using;
6. scale-up limited to ``maxScaleUpPerMinute``, except that it never holds capacity below the
   current need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autoscaler.errors import InputError

#: the planner's bounds, which the ScalingPolicy model and CRD hold too (one home: a test ties them)
MAX_REPLICAS = 1_000_000
MAX_CAPACITY = 1e12

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
        return replicas_serving(demand, self.capacity_per_replica)

    def replicas_for(self, demand: float) -> int:
        """Replicas that serve ``demand`` at the target utilization (no bounds applied)."""
        return replicas_serving(demand, self.capacity_per_replica * self.target_utilization)


def replicas_serving(demand: float, per_replica: float) -> int:
    """The fewest replicas that serve ``demand`` when each serves ``per_replica`` (no bounds
    applied): the one sizing rule of the planner (a float's last bit never adds a replica)."""
    return math.ceil(demand / per_replica - 1e-9) if demand > 0 else 0


def validate_policy(policy: PlanPolicy) -> None:
    """Raise ``InputError`` naming the ScalingPolicy field at fault, as the CRD spells it (a command
    line that took the value from an option names the option instead: ``cli.output.as_options``)."""
    if not (math.isfinite(policy.capacity_per_replica) and 0 < policy.capacity_per_replica <= MAX_CAPACITY):
        raise InputError("spec.metric.capacityPerReplica", f"{policy.capacity_per_replica:g} must be > 0 and at most {MAX_CAPACITY:g}", "give the demand one replica serves, e.g. 2000")
    if policy.max_replicas > MAX_REPLICAS:
        raise InputError("spec.maxReplicas", f"{policy.max_replicas} is over {MAX_REPLICAS:,}", "give the most replicas the tier may run")
    if not (0 < policy.target_utilization <= 1):
        raise InputError("spec.metric.targetUtilization", f"{policy.target_utilization:g} is outside (0, 1]", "e.g. 0.7 keeps 30 % headroom")
    if policy.lead_time_s < 0:
        raise InputError("spec.leadTime", "must not be negative", "e.g. 10m")
    if policy.min_replicas < 0:
        raise InputError("spec.minReplicas", f"{policy.min_replicas} is negative", "give 0 or more")
    if policy.max_replicas < 1:
        raise InputError("spec.maxReplicas", f"{policy.max_replicas} must be at least 1", "give the most replicas the tier may run")
    if policy.min_replicas > policy.max_replicas:
        raise InputError("spec.minReplicas", f"{policy.min_replicas} is above spec.maxReplicas {policy.max_replicas}", "make min <= max")
    if policy.max_scale_up_per_minute is not None and policy.max_scale_up_per_minute < 1:
        raise InputError("spec.maxScaleUpPerMinute", "must be at least 1", "leave it unset for no limit")
    if not (0 <= policy.tolerance < 1):
        raise InputError("tolerance", f"{policy.tolerance:g} is outside [0, 1)", "e.g. 0.1 ignores changes under 10 %")
    if policy.max_freeze_s < 0:
        raise InputError("spec.maxFreeze", "must not be negative", "e.g. 6h")
    if policy.scale_down_stabilization_s < 0:
        raise InputError("spec.scaleDownStabilization", "must not be negative", "e.g. 5m")


@dataclass(slots=True)
class PlannerState:
    """What the planner remembers between steps: the replicas it set and its recent advice.

    A value: ``plan_step`` returns a new one and never changes the one it was given (slots rather
    than frozen, because the backtest makes one every simulated cycle)."""

    replicas: int
    at_s: int
    #: (time, recommendation) within the stabilization window that can still be its highest:
    #: oldest first, recommendations strictly decreasing
    recent: tuple[tuple[int, int], ...] = field(default_factory=tuple)


@dataclass(slots=True)
class Decision:
    at_s: int
    replicas: int
    previous: int
    reason: str
    need_now: int
    want: int
    forecast_peak: float
    event: str = ""
    #: the arithmetic behind ``need_now`` and ``want``, for ``explain``
    demand_now: float = 0.0
    forecast_upper: float = 0.0
    capacity: float = 1.0
    utilization: float = 1.0

    @property
    def changed(self) -> bool:
        return self.replicas != self.previous

    def explain(self) -> str:
        """One line a person can read in ``kubectl describe`` or ``peakscale plan``."""
        head = f"{self.previous} -> {self.replicas}" if self.changed else f"hold {self.replicas}"
        why = {
            FORECAST: self._sizing(),
            CURRENT_NEED: f"current load {self.demand_now:,.0f} at {self.capacity:,.0f} per replica needs {self.need_now}",
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

    def _sizing(self) -> str:
        """How ``want`` was sized: the central forecast's peak at the target utilization, or the
        upper forecast's at full capacity, whichever needs more (``plan_step``)."""
        central = replicas_serving(self.forecast_peak, self.capacity * self.utilization)
        if replicas_serving(self.forecast_upper, self.capacity) > central:
            return f"upper forecast {self.forecast_upper:,.0f} within lead time at {self.capacity:,.0f} per replica (full) needs {self.want}"
        return f"forecast peak {self.forecast_peak:,.0f} within lead time at {self.capacity:,.0f} per replica x {self.utilization:.0%} needs {self.want}"


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
    capacity = policy.capacity_per_replica
    # the policy's helpers' rule, called directly: this runs every simulated cycle of a backtest
    need_now = replicas_serving(demand_now, capacity)
    want = replicas_serving(forecast_peak, capacity * policy.target_utilization)
    if forecast_upper > 0:
        want = max(want, replicas_serving(forecast_upper, capacity))
    if want > need_now:
        rec, reason = want, FORECAST
    else:
        rec, reason, event = need_now, CURRENT_NEED, ""
    if rec < policy.min_replicas:
        rec, reason = policy.min_replicas, MIN_BOUND
    if rec > policy.max_replicas:
        rec, reason = policy.max_replicas, MAX_BOUND
    # the stabilization window's highest recommendation is the first one still inside it
    recent = state.recent
    horizon = now_s - policy.scale_down_stabilization_s
    k = 0
    while k < len(recent) and recent[k][0] <= horizon:
        k += 1
    while k < len(recent) and recent[-1][1] <= rec:
        recent = recent[:-1]
    recent = recent[k:] + ((now_s, rec),)
    target = rec
    if current > 0 and abs(rec - current) <= policy.tolerance * current and need_now <= current:
        if policy.min_replicas <= current <= policy.max_replicas:
            target, reason = current, TOLERANCE
    if target < current:
        held = recent[0][1]
        if held > target:
            target, reason = min(held, current), STABILIZATION
        if policy.freeze_during_events and frozen and target < current:
            # a frozen event never scales in below the current need plus headroom
            headroom = policy.replicas_for(demand_now)
            if headroom > target:
                target, reason = min(headroom, current), FROZEN
    elif target > current and policy.max_scale_up_per_minute is not None:
        minutes = max(now_s - state.at_s, 0) / 60 or 1.0
        allowed = current + int(policy.max_scale_up_per_minute * minutes)
        floor_now = min(max(need_now, policy.min_replicas), policy.max_replicas)
        if target > allowed:
            target, reason = max(allowed, floor_now), RATE_LIMIT
    target = min(max(target, policy.min_replicas), policy.max_replicas)
    decision = Decision(now_s, target, current, reason, need_now, want, float(forecast_peak), event, float(demand_now), float(forecast_upper), capacity, policy.target_utilization)
    return decision, PlannerState(target, now_s, recent)
