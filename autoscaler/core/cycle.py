"""One controller cycle for one ScalingPolicy: the only place where peakscale decides.

``decide`` takes what the controller knows at ``now`` (the policy, the planner's state, the
forecast made from the history up to the last sample, the calendar, the target's replicas and the
HPA's floor with its remembered original) and returns the decision with its reason, the new state
and the write to make. It alone computes:

* the forecast window, ``[now, now + leadTime + interval]`` measured from the last sample
  (``forecast_window``; capacity asked for now serves from ``now + leadTime``, and the next
  chance to ask is one interval later; a sample measures the step that ends at its timestamp),
  and the horizon every forecast covers (``horizon_steps``);
* the action window around each event, ``[start - leadTime - interval, end + cooldown)``, the
  freeze, ``[start, min(end, start + maxFreeze))`` (``CalendarIndex``), and the next action;
* in ``hpa-floor`` mode, the floor: ``max(original, planned)`` clamped to the HPA's and the
  policy's max. Inside action windows ``planned`` is the whole plan (the forecast's upper bound,
  the current need, rate limits). Outside them the floor carries only what the HPA cannot know,
  the central forecast over the lead time, less the HPA's tolerance (a floor within it is one the
  HPA would not move from); the current need is the HPA's own job and is not paid for twice. The
  floor goes down only after the stabilization window and never during a frozen event; a floor
  back at the original is restored (the annotation dropped); a deleted policy, or one switched to
  ``observe``, restores it. With ``floor: events-only`` the floor moves only inside action
  windows, ratchets up there, and is restored after them;
* in ``scale`` mode, the replica count (the plan itself);
* with node headroom, the placeholder pods that hold node room ahead of a raise: inside each
  event's headroom window, ``[start - leadTime - nodeHeadroom.leadTime - interval, end +
  cooldown)``, the plan's replicas over ``[now, now + nodeLead + leadTime + interval]`` (what the
  floor will be once the raise comes) less the replicas ready now (``placeholders_for``); none
  outside them.

The controller calls ``decide`` every interval. ``replay`` calls it at the instants the
controller would, for ``peakscale plan`` and the backtest, so what they show is what the
controller does; parity tests hold the three to the same writes at the same instants.

Pure: no Kubernetes, no Prometheus, no files, no clock. Never decide anything of this kind
elsewhere: a second copy is how the backtest and the controller drifted apart before.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from autoscaler.core.calendar import PromotionEvent, event_mask
from autoscaler.core.forecast import Baseline, ForecastSettings, baseline_for, block_bounds, forecast_at, forecast_block, level_ratios, record_profile
from autoscaler.core.plan import Decision, PlannerState, PlanPolicy, plan_step

MODES = ("hpa-floor", "scale", "observe")
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


# The per-cycle values below are slotted, not frozen (a frozen dataclass costs microseconds to
# build and the backtest builds one per simulated cycle): treat them as values, never change one.


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
    phase: str
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


# --- windows -----------------------------------------------------------------------------------


def horizon_steps(policy: CyclePolicy, step_s: int) -> int:
    """How many steps past the last sample every forecast for this policy covers.

    Fixed per policy (a forecast's event terms depend on its horizon), so that the controller and
    the backtest ask for the same forecast; enough for a last sample up to one step old. With
    node headroom it reaches the node lead time further."""
    return (step_s - 1 + policy.ahead_s) // step_s + 1


def forecast_window(policy: CyclePolicy, now_s: int, made_at_s: int, step_s: int, reach_s: int | None = None) -> tuple[int, int]:
    """The forecast steps ``[lo, hi]`` (from the last sample) that cover ``[now, now + lead + interval]``
    (``now + reach_s`` when given: the headroom's window reaches the node lead time further).

    A sample labeled ``L`` measures the period ``[L - step, L)`` (a Prometheus rate over the step):
    the window runs from the period that holds ``now`` to the one that holds ``now + lead +
    interval``."""
    reach = policy.reach_s if reach_s is None else reach_s
    horizon = (step_s - 1 + policy.ahead_s) // step_s + 1  # horizon_steps
    lo = (now_s - made_at_s) // step_s + 1
    lo = 0 if lo < 0 else (horizon if lo > horizon else lo)
    hi = (now_s + reach - made_at_s) // step_s + 1
    return lo, (lo if hi < lo else (horizon if hi > horizon else hi))


def period_starts(labels_s: np.ndarray, step_s: int) -> np.ndarray:
    """Where the periods the samples measure begin: a sample labeled ``L`` measures ``[L - step, L)``.

    The forecaster and the calendar speak of periods by their start (an event from 20:00 drives
    the sample labeled 20:01), so every forecast the cycle uses is made on these times."""
    return labels_s - step_s


def live_forecast(
    times_s: np.ndarray,
    values: np.ndarray,
    calendar: Sequence[PromotionEvent],
    policy: CyclePolicy,
    settings: ForecastSettings,
    step_s: int,
    baseline: Baseline | None = None,
) -> tuple[ForecastView, Baseline]:
    """The forecast the controller hands ``decide``, from its history (samples labeled as
    Prometheus labels them), and the daily profile it used (to keep for the next cycle). The same
    row ``forecast_table`` computes for the backtest."""
    fc = forecast_at(period_starts(times_s, step_s), values, list(calendar), len(times_s) - 1, horizon_steps(policy, step_s), settings, baseline, step_s=step_s)
    events = list(fc.events) if any(fc.events) else ()
    return ForecastView(int(times_s[-1]), step_s, float(values[-1]), fc.values.tolist(), fc.upper.tolist(), events), fc.fitted


@dataclass(frozen=True)
class CalendarIndex:
    """The action windows and freezes of one policy's events, for lookups by time.

    Built once per calendar (``index_calendar``); ``at(now)`` is a binary search."""

    bounds: list[int]
    #: per segment: (events whose action window is open, frozen, one of them has started)
    segments: list[tuple[tuple[PromotionEvent, ...], bool, bool]]
    #: (window opens at, event), in time order
    openings: list[tuple[int, PromotionEvent]] = field(default_factory=list)
    #: node headroom: the same for the headroom windows (events whose window is open)
    ahead_bounds: list[int] = field(default_factory=list)
    ahead_segments: list[tuple[PromotionEvent, ...]] = field(default_factory=list)
    ahead_openings: list[tuple[int, PromotionEvent]] = field(default_factory=list)

    def ahead_at(self, now_s: int) -> tuple[PromotionEvent, ...]:
        """Events whose headroom window is open at ``now_s``, earliest first."""
        k = bisect_right(self.ahead_bounds, now_s) - 1
        return self.ahead_segments[k] if k >= 0 else ()

    def at(self, now_s: int) -> tuple[tuple[PromotionEvent, ...], bool, bool]:
        """(open events, frozen, started) at ``now_s``."""
        k = bisect_right(self.bounds, now_s) - 1
        return self.segments[k] if k >= 0 else _NOTHING

    def next_opening(self, now_s: int) -> tuple[int, PromotionEvent] | None:
        """The next action window to open after ``now_s`` (when the controller will act)."""
        k = bisect_right([at for at, _ in self.openings], now_s)
        return self.openings[k] if k < len(self.openings) else None


_NOTHING: tuple[tuple[PromotionEvent, ...], bool, bool] = ((), False, False)


def action_window(policy: CyclePolicy, event: PromotionEvent) -> tuple[int, int]:
    """``[start - lead - interval, end + cooldown)``: from the last cycle whose capacity is ready by
    the start, to the end of the cool-down."""
    return event.start_s - policy.plan.lead_time_s - policy.interval_s, event.end_s + policy.cooldown_s


def headroom_window(policy: CyclePolicy, event: PromotionEvent) -> tuple[int, int]:
    """``[start - lead - nodeLead - interval, end + cooldown)``: nodes asked for at its start are up
    by the cycle that raises for the event."""
    lo, hi = action_window(policy, event)
    return lo - (policy.headroom_lead_s or 0), hi


def _open_segments(windows: list[tuple[int, int, PromotionEvent]]) -> tuple[list[int], list[tuple[PromotionEvent, ...]]]:
    """Cut time where the set of open windows changes: (bounds, open events per segment)."""
    edges = sorted([(lo, 1, e) for lo, _, e in windows] + [(hi, -1, e) for _, hi, e in windows], key=lambda x: x[0])
    bounds: list[int] = []
    segments: list[tuple[PromotionEvent, ...]] = []
    active: dict[int, PromotionEvent] = {}
    i = 0
    while i < len(edges):
        t = edges[i][0]
        while i < len(edges) and edges[i][0] == t:
            _, delta, event = edges[i]
            if delta > 0:
                active[id(event)] = event
            else:
                active.pop(id(event), None)
            i += 1
        bounds.append(t)
        segments.append(tuple(sorted(active.values(), key=lambda e: (e.start_s, e.name))))
    return bounds, segments


def freeze_window(policy: CyclePolicy, event: PromotionEvent) -> tuple[int, int] | None:
    """``[start, min(end, start + maxFreeze))``, or None when events do not freeze scale-in."""
    if not policy.plan.freeze_during_events:
        return None
    return event.start_s, min(event.end_s, event.start_s + policy.plan.max_freeze_s)


def index_calendar(policy: CyclePolicy, calendar: Sequence[PromotionEvent]) -> CalendarIndex:
    """Cut time into segments in which the open windows, the freeze and whether an open event
    has started do not change."""
    edges: list[tuple[int, PromotionEvent, int, int]] = []  # (time, event, kind, +1/-1)
    for event in calendar:
        lo, hi = action_window(policy, event)
        edges += [(lo, event, 0, 1), (hi, event, 0, -1), (event.start_s, event, 2, 0)]
        frozen = freeze_window(policy, event)
        if frozen is not None and frozen[1] > frozen[0]:
            edges += [(frozen[0], event, 1, 1), (frozen[1], event, 1, -1)]
    edges.sort(key=lambda e: e[0])
    bounds: list[int] = []
    segments: list[tuple[tuple[PromotionEvent, ...], bool, bool]] = []
    active: dict[int, PromotionEvent] = {}
    freezes = 0
    i = 0
    while i < len(edges):
        t = edges[i][0]
        while i < len(edges) and edges[i][0] == t:
            _, event, kind, delta = edges[i]
            if kind == 0:
                if delta > 0:
                    active[id(event)] = event
                else:
                    active.pop(id(event), None)
            elif kind == 1:
                freezes += delta
            i += 1
        open_now = tuple(sorted(active.values(), key=lambda e: (e.start_s, e.name)))
        bounds.append(t)
        segments.append((open_now, freezes > 0, any(e.start_s <= t for e in open_now)))
    openings = sorted(((action_window(policy, e)[0], e) for e in calendar), key=lambda p: (p[0], p[1].name))
    if not policy.headroom:
        return CalendarIndex(bounds=bounds, segments=segments, openings=openings)
    windows = [(*headroom_window(policy, e), e) for e in calendar]
    ahead_bounds, ahead_segments = _open_segments([w for w in windows if w[1] > w[0]])
    ahead_openings = sorted(((lo, e) for lo, _, e in windows), key=lambda p: (p[0], p[1].name))
    return CalendarIndex(bounds, segments, openings, ahead_bounds, ahead_segments, ahead_openings)


# --- the decision --------------------------------------------------------------------------------


def _phase(events: tuple[PromotionEvent, ...], started: bool, action: str) -> str:
    if started:
        return "Holding"
    if events:
        return "PreScaling"
    return "Restoring" if action in (LOWER, RESTORE) else "Idle"


def _seed(replicas: int, now_s: int, interval_s: int) -> PlannerState:
    """A planner state for a policy seen for the first time (or after a restart): it starts
    from what the cluster holds, and scale-in waits a whole stabilization window."""
    return PlannerState(replicas, now_s - interval_s, ((now_s - 1, replicas),))


def decide(policy: CyclePolicy, state: CycleState, seen: Seen, calendar: CalendarIndex) -> CycleDecision:
    """Decide one cycle. See the module docstring for the rules."""
    now = seen.now_s
    events, frozen, started = calendar.at(now)
    fc = seen.forecast
    peak = upper = None
    who = ""
    if fc is not None:
        lo, hi = forecast_window(policy, now, fc.made_at_s, fc.step_s)
        peak = max(fc.central[lo : hi + 1])
        upper = max(fc.upper[lo : hi + 1])
        for name in fc.events[lo : hi + 1]:
            if name:
                who = name
                break
        if peak != peak or upper != upper or fc.demand_now != fc.demand_now:
            fc, peak, upper = None, None, None  # an unknown forecast is no forecast: hold
        elif fc.stale and not who:
            fc, peak, upper = None, None, None  # without fresh metrics only an event's raise goes on
    plan = policy.plan
    mode = policy.mode
    hpa = seen.hpa
    d: Decision | None = None
    original: int | None = None
    reason = METRICS_UNAVAILABLE
    action = NONE

    if mode == "scale":
        target = previous = seen.replicas
        if fc is not None and previous is not None:
            d, pstate = plan_step(plan, state.planner or _seed(previous, now, policy.interval_s), now_s=now, demand_now=fc.demand_now, forecast_peak=peak, forecast_upper=upper, event=who, frozen=frozen)
            state, target, reason = CycleState(pstate), d.replicas, d.reason
            if fc.stale:
                target, reason = max(target, previous), LAST_KNOWN_LEVEL
            action = SCALE if target != previous else NONE
        planned = target if d is not None else None
        phase = _phase(events, started, action)
    elif mode == "observe" or hpa is None:
        if fc is not None:
            base = seen.replicas if seen.replicas is not None else plan.min_replicas
            d, pstate = plan_step(plan, state.planner or _seed(base, now, policy.interval_s), now_s=now, demand_now=fc.demand_now, forecast_peak=peak, forecast_upper=upper, event=who, frozen=frozen)
            state = CycleState(pstate)
        planned = d.replicas if d is not None else None
        reason, phase = OBSERVE_ONLY, "Observing"
        target = previous = hpa.min_replicas if hpa is not None else seen.replicas
        if hpa is not None and hpa.original is not None:
            # switched to observe: a floor peakscale raised goes back
            action, target, original = RESTORE, hpa.original, hpa.original
    else:
        # --- hpa-floor ---------------------------------------------------------------------------
        raised = hpa.original is not None
        original = hpa.original if raised else hpa.min_replicas
        target = previous = hpa.min_replicas
        planned = None
        if seen.deleting:
            reason = POLICY_DELETED
            if raised:
                action, target = RESTORE, original
        elif fc is not None:
            # missing metrics never lower capacity: without them the floor holds where it is
            pstate = state.planner or _seed(previous, now, policy.interval_s)
            if events:
                # around an event: the whole plan (the upper forecast, the current need)
                d, pstate = plan_step(plan, pstate, now_s=now, demand_now=fc.demand_now, forecast_peak=peak, forecast_upper=upper, event=who, frozen=frozen)
            elif policy.floor == "plan":
                # what the HPA cannot know: the forecast over the lead time, less its tolerance
                d, pstate = plan_step(plan, pstate, now_s=now, demand_now=0.0, forecast_peak=peak / (1.0 + plan.tolerance), event=who, frozen=frozen)
            if d is None:
                # events-only, outside every window: a raised floor goes back
                reason, state = OUTSIDE_EVENTS, CycleState(None)
                if raised:
                    action, target = RESTORE, original
            else:
                state, reason, planned = CycleState(pstate), d.reason, d.replicas
                wanted = max(planned, original)
                if policy.floor == "events-only" and raised:
                    wanted = max(wanted, previous)  # ratchet: up only, until the windows close
                # clamped to the HPA's and the policy's max, never below the operator's own floor
                wanted = max(min(wanted, plan.max_replicas, hpa.max_replicas), original)
                if fc.stale:
                    wanted, reason = max(wanted, previous), LAST_KNOWN_LEVEL  # never lower without metrics
                if raised and wanted == original:
                    action, target = RESTORE, original
                elif wanted != previous:
                    action, target = (RAISE if wanted > previous else LOWER), wanted
        phase = _phase(events, started, action)
    decision = CycleDecision(now, action, reason, target, previous, planned, peak, upper, events, frozen, phase, state, d, original)
    if policy.headroom:
        decision.placeholders_before = seen.placeholders
        decision.headroom_for, decision.placeholders, decision.headroom_event = _headroom(policy, seen, calendar, target, hpa)
        decision.headroom_ready = seen.ready if seen.ready is not None else target
    return decision


def placeholders_for(headroom_for: int, ready: int) -> int:
    """Placeholder pods that keep node room for what the plan needs and the ready replicas do not
    yet hold: as real pods become ready, the placeholder shrinks by as many."""
    return headroom_for - ready if headroom_for > ready else 0


def _headroom(policy: CyclePolicy, seen: Seen, calendar: CalendarIndex, target: int | None, hpa: HpaFloor | None) -> tuple[int | None, int | None, str]:
    """(replicas the plan needs within the node lead, placeholder pods, event) for ``decide``."""
    ahead = calendar.ahead_at(seen.now_s)
    if not ahead or seen.deleting:
        return None, None, ""  # outside every headroom window: no placeholder
    event, hold = ahead[0].label, seen.placeholders
    fc = seen.forecast
    if fc is None:
        return None, hold, event  # no metrics: the placeholder holds
    lo, hi = forecast_window(policy, seen.now_s, fc.made_at_s, fc.step_s, policy.ahead_s)
    peak, upper = max(fc.central[lo : hi + 1]), max(fc.upper[lo : hi + 1])
    if peak != peak or upper != upper or (fc.stale and not any(fc.events[lo : hi + 1])):
        return None, hold, event
    plan = policy.plan
    wanted = max(plan.replicas_for(peak), plan.replicas_at_full(upper), plan.min_replicas, target or 0)
    wanted = min(wanted, plan.max_replicas, hpa.max_replicas if hpa is not None else plan.max_replicas)
    count = placeholders_for(wanted, seen.ready if seen.ready is not None else (target or 0))
    if fc.stale and hold is not None:
        count = max(count, hold)  # without fresh metrics: up only
    return wanted, count, event


def next_action(policy: CyclePolicy, calendar: CalendarIndex, now_s: int) -> tuple[int, PromotionEvent] | None:
    """When the controller will next act for an event: the cycle at which its window opens."""
    if policy.mode == "observe":
        return None
    return calendar.next_opening(now_s)


# --- replay: the controller's cycles over a known history ------------------------------------------


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
        self._shaped = (self.who >= 0).any(axis=1).tolist()
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
                hpa = replace(hpa, min_replicas=decision.target, original=None if restored else (hpa.original if hpa.original is not None else decision.original))
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


def stale_forecast(
    times_s: np.ndarray,
    values: np.ndarray,
    calendar: Sequence[PromotionEvent],
    policy: CyclePolicy,
    settings: ForecastSettings,
    step_s: int,
    now_s: int,
) -> ForecastView | None:
    """Without fresh metrics: the history carried forward from its last known level to ``now``
    (the daily profile times that level), and the forecast made from it, marked stale (``decide``
    lets it raise for an event, never lower). None when nothing is known."""
    known = np.flatnonzero(np.isfinite(values))
    if not len(known):
        return None
    times_s, values = times_s[: known[-1] + 1], values[: known[-1] + 1]
    starts = period_starts(times_s, step_s)
    base = baseline_for(starts, values, event_mask(starts, list(calendar)), len(starts) - 1, step_s, settings)
    window = max(1, settings.level_window_s // step_s)
    level = float(level_ratios(values[-window:], base.at(starts[-window:]), window)[-1])
    last = int(times_s[-1]) + (now_s - int(times_s[-1])) // step_s * step_s
    extra = np.arange(int(times_s[-1]) + step_s, last + step_s, step_s, dtype=np.int64)
    carried = np.concatenate([values, level * base.at(extra - step_s)])
    view, _ = live_forecast(np.concatenate([times_s, extra]), carried, calendar, policy, settings, step_s)
    view.stale = True
    return view


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


__all__ = [
    "CalendarIndex",
    "CycleDecision",
    "CyclePolicy",
    "CycleState",
    "ForecastTable",
    "ForecastView",
    "HpaFloor",
    "Replay",
    "Seen",
    "decide",
    "forecast_table",
    "forecast_window",
    "headroom_window",
    "horizon_steps",
    "index_calendar",
    "live_forecast",
    "next_action",
    "placeholders_for",
    "remember",
    "replay",
    "stale_forecast",
]
