"""The vocabulary of one controller cycle: the modes and actions, what the cycle is given (the policy,
the HPA's floor, the forecast, what was seen) and what it returns (the state, the decision).

Frozen dataclasses only; the rules that use them live in ``autoscaler.core.cycle``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from collections.abc import Sequence


from autoscaler.core.calendar import PromotionEvent
from autoscaler.core.defaults import DEFAULT_MAX_PLACEHOLDERS
from autoscaler.core.plan import Decision, PlannerState, PlanPolicy


MODES = ("hpa-floor", "scale", "observe")

#: a policy's phase after a cycle (``status.phase``; the controller adds Error)
Phase = Literal["Idle", "PreScaling", "Holding", "Restoring", "Observing"]
#: a PromotionEvent's phase (``windows.event_phase``)
EventPhase = Literal["Scheduled", "PreScaling", "Active", "Cooling", "Done"]

FLOOR_RULES = ("plan", "events-only")

# what a cycle writes (stable strings: Events, metrics, `plan`, JSON)
RAISE = "raise-floor"

LOWER = "lower-floor"

RESTORE = "restore-floor"

SCALE = "scale"

NONE = "none"

# what a cycle does to the node-headroom placeholder
HEADROOM_CREATE = "create-headroom"

HEADROOM_RESIZE = "resize-headroom"

HEADROOM_DELETE = "delete-headroom"

# why a cycle writes nothing or restores (plan reasons come from ``plan``)
METRICS_UNAVAILABLE = "metrics-unavailable"

LAST_KNOWN_LEVEL = "last-known-level"

OBSERVE_ONLY = "observe-only"

POLICY_DELETED = "policy-deleted"

OUTSIDE_EVENTS = "outside-event-windows"




@dataclass(frozen=True)
class CyclePolicy:
    """What a ScalingPolicy says about one cycle (``resources.ScalingPolicySpec.cycle_policy``)."""

    plan: PlanPolicy
    mode: str = "hpa-floor"
    #: hpa-floor: ``plan`` follows the plan at all times; ``events-only`` raises only around events
    floor: str = "plan"
    cooldown_s: int = 1800
    #: the controller's interval: the next chance to act is one interval after this one
    interval_s: int = 30
    #: node headroom: how long new nodes take (None: no headroom)
    headroom_lead_s: int | None = None
    #: node headroom: at most this many placeholder pods per policy, whatever the plan says (the
    #: controller's --headroom-max-pods; a tenant's maxReplicas alone does not bound what the
    #: placeholders hold)
    max_placeholders: int = DEFAULT_MAX_PLACEHOLDERS
    reach_s: int = field(init=False, repr=False, compare=False, default=0)
    #: how far ahead the forecast reaches: ``reach_s``, plus the node lead with headroom
    ahead_s: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {MODES}")
        if self.floor not in FLOOR_RULES:
            raise ValueError(f"floor {self.floor!r} is not one of {FLOOR_RULES}")
        if self.interval_s <= 0:
            raise ValueError("interval must be positive")
        # how far ahead capacity asked for now must reach: it serves from now + lead, and the next
        # chance to ask is one interval later (kept, not recomputed: decide runs every cycle)
        object.__setattr__(self, "reach_s", self.plan.lead_time_s + self.interval_s)
        if self.headroom_lead_s is not None and self.headroom_lead_s < 0:
            raise ValueError("the node lead time must not be negative")
        if self.max_placeholders < 0:
            raise ValueError("max_placeholders must not be negative")
        object.__setattr__(self, "ahead_s", self.reach_s + (self.headroom_lead_s or 0))

    @property
    def headroom(self) -> bool:
        return self.headroom_lead_s is not None and self.mode != "observe"


@dataclass(frozen=True)
class HpaFloor:
    """The HPA's floor as it is now."""

    min_replicas: int
    max_replicas: int
    #: the original minReplicas peakscale remembered when it first raised the floor (None: not raised)
    original: int | None = None


@dataclass(slots=True)
class ForecastView:
    """A forecast made at the last sample: ``central[h]`` is for ``made_at_s + h * step_s``."""

    made_at_s: int
    step_s: int
    demand_now: float
    central: Sequence[float]
    upper: Sequence[float]
    #: the event that shaped each step ('' for none); empty when no event shaped any
    events: Sequence[str]
    #: made from the last known level carried forward (no fresh metrics): it may only raise
    stale: bool = False


@dataclass(slots=True)
class Seen:
    """What the controller knows at ``now_s`` about one policy's target."""

    now_s: int
    #: None: no fresh metrics (Prometheus down, empty or stale answer)
    forecast: ForecastView | None
    #: replicas the target runs (scale mode: its scale subresource); None when unknown
    replicas: int | None = None
    #: hpa-floor mode: the HPA's floor
    hpa: HpaFloor | None = None
    #: the policy is being deleted (its finalizer is still on)
    deleting: bool = False
    #: node headroom: the target's ready replicas (None: unknown; taken as the floor or count in effect)
    ready: int | None = None
    #: node headroom: the placeholder pods asked for now (None: no placeholder)
    placeholders: int | None = None


@dataclass(slots=True)
class CycleState:
    """What the controller remembers of a policy between cycles (rebuilt from the cluster on a
    restart: a fresh state is seeded from the floor or replica count the cluster holds)."""

    planner: PlannerState | None = None


@dataclass(slots=True)
class CycleDecision:
    at_s: int
    #: RAISE, LOWER, RESTORE, SCALE or NONE
    action: str
    reason: str
    #: hpa-floor: the floor in effect after this cycle; scale: the replica count; None: unknown
    target: int | None
    #: what was there before (floor or replicas)
    previous: int | None
    #: the plan's replicas this cycle (None without metrics)
    planned: int | None
    forecast_peak: float | None
    forecast_upper: float | None
    #: events whose action window is open now, earliest first
    events: tuple[PromotionEvent, ...]
    frozen: bool
    phase: Phase
    state: CycleState
    plan: Decision | None = None
    #: the original floor (hpa-floor), to remember on a raise and put back on a restore
    original: int | None = None
    #: node headroom: the replicas the plan needs within the node lead (None: no headroom window,
    #: or no forecast to size it)
    headroom_for: int | None = None
    #: node headroom: the placeholder pods after this cycle (None: no placeholder), and before it
    placeholders: int | None = None
    placeholders_before: int | None = None
    #: the event that opened the headroom window ('' for none)
    headroom_event: str = ""
    #: the ready replicas the placeholder count was sized against
    headroom_ready: int | None = None

    @property
    def writes(self) -> bool:
        return self.action != NONE or self.placeholders != self.placeholders_before

    @property
    def headroom_write(self) -> str:
        """NONE, or what happens to the placeholder: HEADROOM_CREATE, _RESIZE or _DELETE."""
        before, after = self.placeholders_before, self.placeholders
        if before == after:
            return NONE
        if before is None:
            return HEADROOM_CREATE
        return HEADROOM_DELETE if after is None else HEADROOM_RESIZE

    def explain_headroom(self) -> str:
        """One line on the placeholder, as ``explain`` does for the floor."""
        what = self.headroom_write
        if what == HEADROOM_DELETE:
            return f"delete headroom placeholder ({self.placeholders_before} pods): the headroom windows are over"
        if self.placeholders is None:
            return "no headroom placeholder"
        head = {HEADROOM_CREATE: "create headroom placeholder", HEADROOM_RESIZE: "resize headroom placeholder"}.get(what, "hold headroom placeholder")
        before = f"{self.placeholders_before} -> " if what == HEADROOM_RESIZE else ""
        why = f"plan needs {self.headroom_for} within the node lead time, {self.headroom_ready} ready" if self.headroom_for is not None else "no fresh metrics: holding"
        event = f" for {self.headroom_event!r}" if self.headroom_event else ""
        return f"{head} {before}{self.placeholders} pods: {why}{event}"

    @property
    def event(self) -> str:
        """The event behind the decision ('' for none)."""
        if self.plan is not None and self.plan.event:
            return self.plan.event
        return self.events[0].label if self.events else ""

    def why(self) -> str:
        """The reason alone, as a person reads it."""
        if self.reason == METRICS_UNAVAILABLE:
            return "no fresh metrics: holding"
        if self.reason == LAST_KNOWN_LEVEL and self.plan is not None:
            return "no fresh metrics: " + self.plan.explain().split(": ", 1)[-1] + ", from the last known level"
        if self.reason == POLICY_DELETED:
            return "the policy is being deleted"
        if self.reason == OBSERVE_ONLY:
            return "the policy observes only"
        if self.plan is None:
            return "no event within lead time or cool-down"
        why = self.plan.explain().split(": ", 1)[-1]
        if self.plan.event and self.plan.event in why:
            why = why.rsplit(f" for {self.plan.event!r}", 1)[0]
        return why

    def explain(self) -> str:
        """One line a person reads in ``kubectl describe``, ``peakscale plan`` and Events."""
        what = {RAISE: "raise floor", LOWER: "lower floor", RESTORE: "restore floor", SCALE: "scale"}.get(self.action)
        if what is None:
            return f"hold {self.target}: {self.why()}"
        return f"{what} {self.previous} -> {self.target}: {self.why()}"
