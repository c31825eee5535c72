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

from bisect import bisect_right
from dataclasses import dataclass, field
from collections.abc import Sequence

import numpy as np

from autoscaler.core.calendar import PromotionEvent, event_mask
from autoscaler.core.forecast import forecast_at
from autoscaler.core.baseline import Baseline, ForecastSettings, baseline_for
from autoscaler.core.plan import Decision, PlannerState, plan_step
from autoscaler.core.windows import action_window, headroom_window
from autoscaler.core.cycle_types import Phase, CycleDecision, CyclePolicy, CycleState, ForecastView, HpaFloor, LAST_KNOWN_LEVEL, LOWER, METRICS_UNAVAILABLE, NONE, OBSERVE_ONLY, OUTSIDE_EVENTS, POLICY_DELETED, RAISE, RESTORE, SCALE, Seen


# The per-cycle values below are slotted, not frozen (a frozen dataclass costs microseconds to
# build and the backtest builds one per simulated cycle): treat them as values, never change one.


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
) -> tuple[ForecastView, Baseline | None]:
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


def _phase(events: tuple[PromotionEvent, ...], started: bool, action: str) -> Phase:
    if started:
        return "Holding"
    if events:
        return "PreScaling"
    return "Restoring" if action in (LOWER, RESTORE) else "Idle"


def _seed(replicas: int, now_s: int, interval_s: int) -> PlannerState:
    """A planner state for a policy seen for the first time (or after a restart): it starts
    from what the cluster holds, and scale-in waits a whole stabilization window."""
    return PlannerState(replicas, now_s - interval_s, ((now_s - 1, replicas),))


@dataclass(slots=True)
class _Outlook:
    """The fresh forecast over this cycle's window: its view, the central and upper peaks, and the
    event that shaped it ('' for none)."""

    view: ForecastView
    peak: float
    upper: float
    event: str


@dataclass(slots=True)
class _Moment:
    """What ``decide`` works from at one instant: the cycle's input and the calendar there."""

    policy: CyclePolicy
    seen: Seen
    outlook: _Outlook | None
    #: events whose action window is open, earliest first; scale-in frozen; one of them started
    events: tuple[PromotionEvent, ...]
    frozen: bool
    started: bool

    def plan(self, state: CycleState, base: int, *, demand_now: float, peak: float, upper: float = 0.0) -> tuple[Decision, PlannerState]:
        """The plan's step from the planner's state (seeded from ``base`` when there is none)."""
        event = self.outlook.event if self.outlook is not None else ""
        policy, now = self.policy, self.seen.now_s
        return plan_step(policy.plan, state.planner or _seed(base, now, policy.interval_s), now_s=now, demand_now=demand_now, forecast_peak=peak, forecast_upper=upper, event=event, frozen=self.frozen)

    def decision(self, action: str, reason: str, target: int | None, previous: int | None, planned: int | None, phase: Phase, state: CycleState, d: Decision | None, original: int | None = None) -> CycleDecision:
        out = self.outlook
        peak, upper = (out.peak, out.upper) if out is not None else (None, None)
        return CycleDecision(self.seen.now_s, action, reason, target, previous, planned, peak, upper, self.events, self.frozen, phase, state, d, original)


def _outlook(policy: CyclePolicy, seen: Seen) -> _Outlook | None:
    """The forecast's peaks over ``forecast_window``; None when there is no forecast to act on."""
    fc = seen.forecast
    if fc is None:
        return None
    lo, hi = forecast_window(policy, seen.now_s, fc.made_at_s, fc.step_s)
    peak = max(fc.central[lo : hi + 1])
    upper = max(fc.upper[lo : hi + 1])
    who = next((name for name in fc.events[lo : hi + 1] if name), "")
    if peak != peak or upper != upper or fc.demand_now != fc.demand_now:
        return None  # an unknown forecast is no forecast: hold
    if fc.stale and not who:
        return None  # without fresh metrics only an event's raise goes on
    return _Outlook(fc, peak, upper, who)


def decide(policy: CyclePolicy, state: CycleState, seen: Seen, calendar: CalendarIndex) -> CycleDecision:
    """Decide one cycle. See the module docstring for the rules."""
    events, frozen, started = calendar.at(seen.now_s)
    now = _Moment(policy, seen, _outlook(policy, seen), events, frozen, started)
    if policy.mode == "scale":
        decision = _decide_scale(now, state)
    elif policy.mode == "observe" or seen.hpa is None:
        decision = _decide_observe(now, state)
    else:
        decision = _decide_floor(now, state, seen.hpa)
    if policy.headroom:
        decision.placeholders_before = seen.placeholders
        decision.headroom_for, decision.placeholders, decision.headroom_event = _headroom(policy, seen, calendar, decision.target, seen.hpa)
        if decision.headroom_event and decision.phase in ("Idle", "Restoring"):
            decision.phase = "PreScaling"  # node room is being held for a promotion ahead
        decision.headroom_ready = seen.ready if seen.ready is not None else decision.target
    return decision


def _decide_scale(now: _Moment, state: CycleState) -> CycleDecision:
    """``scale`` mode: the replica count is the plan itself."""
    out, previous = now.outlook, now.seen.replicas
    if out is None or previous is None:
        return now.decision(NONE, METRICS_UNAVAILABLE, previous, previous, None, _phase(now.events, now.started, NONE), state, None)
    d, pstate = now.plan(state, previous, demand_now=out.view.demand_now, peak=out.peak, upper=out.upper)
    target, reason = d.replicas, d.reason
    if out.view.stale:
        target, reason = max(target, previous), LAST_KNOWN_LEVEL
    action = SCALE if target != previous else NONE
    return now.decision(action, reason, target, previous, target, _phase(now.events, now.started, action), CycleState(pstate), d)


def _decide_observe(now: _Moment, state: CycleState) -> CycleDecision:
    """``observe`` mode (or no HPA to raise): plan, write nothing, and put back a floor peakscale raised."""
    out, seen, hpa = now.outlook, now.seen, now.seen.hpa
    d: Decision | None = None
    if out is not None:
        base = seen.replicas if seen.replicas is not None else now.policy.plan.min_replicas
        d, pstate = now.plan(state, base, demand_now=out.view.demand_now, peak=out.peak, upper=out.upper)
        state = CycleState(pstate)
    planned = d.replicas if d is not None else None
    target = previous = hpa.min_replicas if hpa is not None else seen.replicas
    if hpa is not None and hpa.original is not None:
        # switched to observe: a floor peakscale raised goes back
        return now.decision(RESTORE, OBSERVE_ONLY, hpa.original, previous, planned, "Observing", state, d, hpa.original)
    return now.decision(NONE, OBSERVE_ONLY, target, previous, planned, "Observing", state, d)


def _decide_floor(now: _Moment, state: CycleState, hpa: HpaFloor) -> CycleDecision:
    """``hpa-floor`` mode: the floor is ``max(original, planned)``, clamped (see the module docstring)."""
    policy, plan, out = now.policy, now.policy.plan, now.outlook
    raised = hpa.original is not None
    original = hpa.original if hpa.original is not None else hpa.min_replicas
    target = previous = hpa.min_replicas
    action, reason, planned = NONE, METRICS_UNAVAILABLE, None
    d: Decision | None = None
    if now.seen.deleting:
        reason = POLICY_DELETED
        if raised:
            action, target = RESTORE, original
    elif out is not None:
        # missing metrics never lower capacity: without them the floor holds where it is
        if now.events:
            # around an event: the whole plan (the upper forecast, the current need)
            d, pstate = now.plan(state, previous, demand_now=out.view.demand_now, peak=out.peak, upper=out.upper)
        elif policy.floor == "plan":
            # what the HPA cannot know: the forecast over the lead time, less its tolerance
            d, pstate = now.plan(state, previous, demand_now=0.0, peak=out.peak / (1.0 + plan.tolerance))
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
            if out.view.stale:
                wanted, reason = max(wanted, previous), LAST_KNOWN_LEVEL  # never lower without metrics
            if raised and wanted == original:
                action, target = RESTORE, original
            elif wanted != previous:
                action, target = (RAISE if wanted > previous else LOWER), wanted
    return now.decision(action, reason, target, previous, planned, _phase(now.events, now.started, action), state, d, original)


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
    return wanted, min(count, policy.max_placeholders), event


def next_action(policy: CyclePolicy, calendar: CalendarIndex, now_s: int) -> tuple[int, PromotionEvent] | None:
    """When the controller will next act for an event: the cycle at which its window opens."""
    if policy.mode == "observe":
        return None
    return calendar.next_opening(now_s)


# --- replay: the controller's cycles over a known history ------------------------------------------


def stale_forecast(
    times_s: np.ndarray,
    values: np.ndarray,
    calendar: Sequence[PromotionEvent],
    policy: CyclePolicy,
    settings: ForecastSettings,
    step_s: int,
    now_s: int,
) -> ForecastView | None:
    """Without fresh metrics: the history carried forward to ``now`` (``carry_forward``), and the
    forecast made from it, marked stale (``decide`` lets it raise for an event, never lower).
    None when nothing is known."""
    if not np.isfinite(values).any():
        return None
    times_s, carried = carry_forward(times_s, values, calendar, settings, step_s, now_s)
    view, _ = live_forecast(times_s, carried, calendar, policy, settings, step_s)
    view.stale = True
    return view


def carry_forward(
    times_s: np.ndarray, values: np.ndarray, calendar: Sequence[PromotionEvent], settings: ForecastSettings, step_s: int, to_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """The history (``times_s`` as Prometheus labels them: each sample at its period's end) carried
    forward from its last known sample to ``to_s``: the daily profile the forecast made there uses,
    times the level of its last ``level_window_s`` (the known samples of it). The one rule for what
    comes after the samples: the controller without fresh metrics, its replay, and ``plan``'s
    future. Missing samples after the last known one are dropped (missing is never a level);
    nothing known: returned as it is."""
    known = np.flatnonzero(np.isfinite(values))
    if not len(known):
        return times_s, values
    times_s, values = times_s[: known[-1] + 1], values[: known[-1] + 1]
    starts = period_starts(times_s, step_s)
    base = baseline_for(starts, values, event_mask(starts, list(calendar)), len(starts) - 1, step_s, settings)
    window = max(1, settings.level_window_s // step_s)
    recent, fitted = values[-window:], base.at(starts[-window:])
    ok = np.isfinite(recent)
    level = float(recent[ok].sum() / max(float(fitted[ok].sum()), 1e-12))
    last = int(times_s[-1]) + max(0, to_s - int(times_s[-1])) // step_s * step_s
    extra = np.arange(int(times_s[-1]) + step_s, last + step_s, step_s, dtype=np.int64)
    return np.concatenate([times_s, extra]), np.concatenate([values, level * base.at(extra - step_s)])
