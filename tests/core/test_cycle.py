"""The one decision path: what ``cycle.decide`` writes, and when."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from hypothesis import given, settings, strategies as st

from autoscaler.core.calendar import PromotionEvent
from autoscaler.core.cycle import decide, forecast_window, horizon_steps, index_calendar, next_action
from autoscaler.core.cycle_types import LOWER, NONE, RAISE, RESTORE, SCALE, CyclePolicy, CycleState, ForecastView, HpaFloor, Seen
from autoscaler.core.plan import FROZEN, PlanPolicy

T0 = datetime(2026, 11, 11, 12, 0)
STEP = 60
LEAD = 600
INTERVAL = 30


def policy(mode="hpa-floor", floor="plan", **kw) -> CyclePolicy:
    plan = dict(capacity_per_replica=100.0, lead_time_s=LEAD, min_replicas=2, max_replicas=80, target_utilization=0.5, scale_down_stabilization_s=300)
    plan.update(kw)
    return CyclePolicy(plan=PlanPolicy(**plan), mode=mode, floor=floor, cooldown_s=1200, interval_s=INTERVAL)


def event(start_min=60, minutes=60, name="flash", **kw) -> PromotionEvent:
    start = T0 + timedelta(minutes=start_min)
    return PromotionEvent(name=name, title=name.title(), start=start, end=start + timedelta(minutes=minutes), kind="flash-sale", **kw)


def flat(made_at_s: int, demand: float, peak: float | None = None, upper: float | None = None, horizon: int = 12, who: str = "") -> ForecastView:
    central = [demand] * (horizon + 1)
    if peak is not None:
        central[-2] = peak
    up = list(central) if upper is None else [upper] * (horizon + 1)
    events = [who] * (horizon + 1) if who else ()
    return ForecastView(made_at_s, STEP, demand, central, up, events)


def at(minutes: float) -> int:
    return int((T0 - datetime(1970, 1, 1)).total_seconds() + minutes * 60)


def hpa_cycle(p, calendar, now, fc, hpa, state=None):
    return decide(p, state or CycleState(), Seen(now, fc, hpa.min_replicas, hpa), index_calendar(p, calendar))


def test_the_forecast_window_reaches_lead_time_plus_one_interval_past_now():
    p = policy()
    made = at(0)
    # a sample labeled L measures [L - 1 min, L); now = the last label: from the period holding now
    # (step 1) to the one holding now + 10 min + 30 s (step 11)
    assert forecast_window(p, made, made, STEP) == (1, 11)
    # later within the same minute, the end reaches the next period as soon as it holds the instant
    assert forecast_window(p, made + 29, made, STEP) == (1, 11)
    assert forecast_window(p, made + 30, made, STEP) == (1, 12)
    assert horizon_steps(p, STEP) == 12  # enough for a sample up to one step old


def test_outside_events_the_floor_carries_the_forecast_less_the_hpa_tolerance():
    p = policy()
    d = hpa_cycle(p, [], at(0), flat(at(0), 1000, peak=3000), HpaFloor(2, 100))
    # 3,000 / (100 x 0.5) = 60 replicas at the target utilization; less the HPA's 10 %: 55
    assert d.action == RAISE and d.target == math.ceil(3000 / 1.1 / 50 - 1e-9) == 55
    assert d.planned == 55 and d.phase == "Idle"


def test_outside_events_the_current_need_is_left_to_the_hpa():
    p = policy()
    d = hpa_cycle(p, [], at(0), flat(at(0), 9000, peak=100), HpaFloor(2, 100))
    # the last sample needs 90 replicas at full capacity, but a floor that carries it pays twice
    assert d.target < 90


def test_inside_an_event_window_the_floor_is_the_whole_plan():
    p = policy()
    e = event(start_min=10)
    fc = flat(at(0), 1000, upper=5000, who=e.label)
    d = hpa_cycle(p, [e], at(0), fc, HpaFloor(2, 100))
    assert d.action == RAISE and d.target == 50  # the upper forecast at full capacity
    assert d.event == e.label and d.phase == "PreScaling"


def test_the_window_opens_one_interval_before_start_minus_lead():
    p = policy()
    e = event(start_min=60)
    opens = e.start_s - LEAD - INTERVAL
    fc = flat(at(0), 1000, upper=5000)
    before = hpa_cycle(p, [e], opens - 1, fc, HpaFloor(2, 100))
    inside = hpa_cycle(p, [e], opens, fc, HpaFloor(2, 100))
    assert before.events == () and inside.events == (e,)
    assert next_action(p, index_calendar(p, [e]), at(0)) == (opens, e)


def test_never_above_the_hpa_max_or_the_policy_max_never_below_the_original():
    p = policy(max_replicas=40)
    d = hpa_cycle(p, [], at(0), flat(at(0), 10, peak=10**9), HpaFloor(5, 30))
    assert d.target == 30
    low = hpa_cycle(p, [], at(0), flat(at(0), 10, peak=10), HpaFloor(7, 30))
    assert low.action == NONE and low.target == 7  # the operator's own floor stays


def test_a_floor_back_at_the_original_is_restored():
    p = policy(scale_down_stabilization_s=0)
    d = hpa_cycle(p, [], at(0), flat(at(0), 10, peak=10), HpaFloor(40, 100, original=4))
    assert d.action == RESTORE and d.target == 4


def test_the_floor_goes_down_only_after_the_stabilization_window():
    p = policy()
    hpa = HpaFloor(2, 100)
    high = hpa_cycle(p, [], at(0), flat(at(0), 100, peak=3000), hpa)
    hpa = HpaFloor(high.target, 100, original=2)
    state = high.state
    downs = []
    for k in range(1, 14):
        now = at(0) + k * INTERVAL
        d = hpa_cycle(p, [], now, flat(now, 100, peak=200), hpa, state)
        state = d.state
        downs.append((k * INTERVAL, d.action, d.reason))
        if d.action != NONE:
            hpa = HpaFloor(d.target, 100, original=None if d.action == RESTORE else 2)
    assert all(action == NONE for t, action, _ in downs if t < 300)
    assert any(action in (LOWER, RESTORE) for t, action, _ in downs if t >= 300)


def test_a_frozen_event_scales_in_no_lower_than_the_need_plus_headroom_capped_by_max_freeze():
    p = policy(scale_down_stabilization_s=0, max_freeze_s=1800)
    e = event(start_min=0, minutes=240)
    hpa = HpaFloor(60, 100, original=2)
    # 2,000 now: 20 replicas at full capacity, 40 with the headroom of the target utilization;
    # the forecast says the event is fading (200)
    def fading(now):
        return ForecastView(now, STEP, 2000.0, [200.0] * 13, [200.0] * 13, ())

    frozen = hpa_cycle(p, [e], at(10), fading(at(10)), hpa)
    assert frozen.frozen and frozen.action == LOWER and frozen.target == 40 and frozen.reason == FROZEN
    thawed = hpa_cycle(p, [e], at(31), fading(at(31)), hpa)
    assert not thawed.frozen and thawed.target == 20  # the event runs on, the freeze does not


def test_missing_metrics_hold_the_floor():
    p = policy()
    d = hpa_cycle(p, [event(start_min=5)], at(0), None, HpaFloor(30, 100, original=2))
    assert d.action == NONE and d.target == 30 and d.reason == "metrics-unavailable"


def test_without_fresh_metrics_an_events_raise_goes_on_and_nothing_goes_down():
    p = policy(scale_down_stabilization_s=0)
    e = event(start_min=10)
    stale = flat(at(0), 1000, upper=5000, who=e.label)
    stale.stale = True
    raised = hpa_cycle(p, [e], at(0), stale, HpaFloor(2, 100))
    assert raised.action == RAISE and raised.target == 50 and raised.reason == "last-known-level"
    assert "last known level" in raised.explain()
    lower = flat(at(0), 10, peak=10, who=e.label)
    lower.stale = True
    held = hpa_cycle(p, [e], at(0), lower, HpaFloor(60, 100, original=2))
    assert held.action == NONE and held.target == 60  # a stale forecast never lowers
    seasonal = flat(at(0), 1000, peak=9000)
    seasonal.stale = True
    assert hpa_cycle(p, [], at(0), seasonal, HpaFloor(2, 100)).action == NONE  # no event: hold


def test_events_only_raises_inside_windows_ratchets_and_restores_after():
    p = policy(floor="events-only", scale_down_stabilization_s=0)
    e = event(start_min=20, minutes=30)
    outside = hpa_cycle(p, [e], at(0), flat(at(0), 1000, peak=3000), HpaFloor(2, 100))
    assert outside.action == NONE and outside.target == 2
    raised = hpa_cycle(p, [e], at(10), flat(at(10), 1000, upper=4000), HpaFloor(2, 100))
    assert raised.action == RAISE and raised.target == 40
    later = hpa_cycle(p, [e], at(30), flat(at(30), 100, peak=100), HpaFloor(40, 100, original=2))
    assert later.action == NONE and later.target == 40  # ratchet: never down inside the windows
    after = hpa_cycle(p, [e], at(71), flat(at(71), 100, peak=100), HpaFloor(40, 100, original=2))
    assert after.action == RESTORE and after.target == 2  # end + 20 min cool-down has passed


def test_observe_and_deletion_restore_a_raised_floor():
    observe = policy(mode="observe")
    d = hpa_cycle(observe, [], at(0), flat(at(0), 1000, peak=3000), HpaFloor(30, 100, original=3))
    assert d.action == RESTORE and d.target == 3
    p = policy()
    gone = decide(p, CycleState(), Seen(at(0), flat(at(0), 9000, peak=9000), 30, HpaFloor(30, 100, original=3), deleting=True), index_calendar(p, []))
    assert gone.action == RESTORE and gone.target == 3


def test_scale_mode_writes_the_plan_itself():
    p = policy(mode="scale")
    d = decide(p, CycleState(), Seen(at(0), flat(at(0), 1000, peak=3000), 5, None), index_calendar(p, []))
    assert d.action == SCALE and d.target == 60 and d.previous == 5


def test_a_change_within_the_tolerance_is_not_written():
    p = policy(tolerance=0.1, scale_down_stabilization_s=0)
    d = hpa_cycle(p, [], at(0), flat(at(0), 100, peak=2100 * 1.1), HpaFloor(40, 100, original=2), CycleState())
    assert d.action == NONE and d.target == 40


@settings(max_examples=200, deadline=None)
@given(
    original=st.integers(0, 20),
    hpa_max=st.integers(20, 120),
    policy_max=st.integers(1, 120),
    steps=st.lists(
        st.tuples(
            st.floats(0, 1e5, allow_nan=False),  # demand now
            st.floats(0, 1e6, allow_nan=False),  # forecast peak
            st.floats(0, 1e6, allow_nan=False),  # upper
            st.booleans(),  # metrics available
        ),
        min_size=1,
        max_size=60,
    ),
    floor_rule=st.sampled_from(["plan", "events-only"]),
)
def test_floor_properties(original, hpa_max, policy_max, steps, floor_rule):
    p = policy(floor=floor_rule, min_replicas=0, max_replicas=policy_max)
    e = event(start_min=10, minutes=20)
    index = index_calendar(p, [e])
    hpa = HpaFloor(original, hpa_max)
    state = CycleState()
    for k, (demand, peak, upper, fresh) in enumerate(steps):
        now = at(0) + k * INTERVAL
        fc = ForecastView(now, STEP, demand, [peak] * 13, [upper] * 13, ()) if fresh else None
        d = decide(p, state, Seen(now, fc, hpa.min_replicas, hpa), index)
        state = d.state
        # never below the operator's floor, never above either max (unless the operator's floor is)
        assert original <= d.target <= max(original, min(policy_max, hpa_max))
        if fc is None:
            assert d.action == NONE
        if d.frozen:
            assert d.target >= hpa.min_replicas
        if d.action in (LOWER, RESTORE):
            assert d.target < hpa.min_replicas or d.action == RESTORE
        if d.action != NONE:
            hpa = HpaFloor(d.target, hpa_max, original=None if d.action == RESTORE else original)


# --- node headroom --------------------------------------------------------------------------------

from autoscaler.core.windows import headroom_window
from autoscaler.core.cycle_types import HEADROOM_CREATE, HEADROOM_DELETE, HEADROOM_RESIZE

NODE_LEAD = 300


def headroom_policy(mode="hpa-floor", **kw) -> CyclePolicy:
    plan = dict(capacity_per_replica=100.0, lead_time_s=LEAD, min_replicas=2, max_replicas=80, target_utilization=0.5, scale_down_stabilization_s=300)
    plan.update(kw)
    return CyclePolicy(plan=PlanPolicy(**plan), mode=mode, cooldown_s=1200, interval_s=INTERVAL, headroom_lead_s=NODE_LEAD)


def test_headroom_opens_the_node_lead_time_before_the_raise_and_is_gone_after_the_cooldown():
    p = headroom_policy()
    e = event(start_min=60)
    index = index_calendar(p, [e])
    opens, closes = headroom_window(p, e)
    assert opens == e.start_s - LEAD - NODE_LEAD - INTERVAL and closes == e.end_s + 1200
    assert horizon_steps(p, STEP) == 17  # the forecast reaches the node lead further
    hpa = HpaFloor(2, 100)

    def cycle(now, placeholders=None, ready=2):
        fc = ForecastView(now, STEP, 100.0, [100.0] * 18, [4000.0] * 18, [e.label] * 18)
        return decide(p, CycleState(), Seen(now, fc, 2, hpa, ready=ready, placeholders=placeholders), index)

    before = cycle(opens - 1)
    assert before.placeholders is None and before.headroom_write == NONE
    first = cycle(opens)
    # the floor is not raised yet; the headroom holds room for the upper forecast's 40 replicas
    assert first.events == () and first.action == NONE
    assert first.headroom_for == 40 and first.placeholders == 38 and first.headroom_write == HEADROOM_CREATE
    assert first.headroom_event == e.label and "38 pods" in first.explain_headroom()
    # placeholders held for a promotion ahead: the policy says it is pre-scaling, not idle
    assert first.phase == "PreScaling" and before.phase == "Idle"
    # real pods become ready: the placeholder shrinks by as many
    later = cycle(opens + 600, placeholders=38, ready=30)
    assert later.placeholders == 10 and later.headroom_write == HEADROOM_RESIZE
    full = cycle(e.start_s, placeholders=10, ready=40)
    assert full.placeholders == 0
    after = cycle(closes, placeholders=0, ready=40)
    assert after.placeholders is None and after.headroom_write == HEADROOM_DELETE


def test_without_headroom_the_decision_has_no_placeholder():
    p = policy()
    e = event(start_min=10)
    d = hpa_cycle(p, [e], at(0), flat(at(0), 1000, upper=5000, who=e.label), HpaFloor(2, 100))
    assert d.placeholders is None and d.headroom_for is None and d.headroom_write == NONE


@settings(max_examples=200, deadline=None)
@given(
    mode=st.sampled_from(["hpa-floor", "scale"]),
    hpa_max=st.integers(2, 120),
    steps=st.lists(
        st.tuples(
            st.integers(-40, 140),  # minutes from T0
            st.floats(0, 1e4, allow_nan=False),  # upper forecast
            st.integers(0, 150),  # ready replicas
            st.booleans(),  # metrics available
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_headroom_properties(mode, hpa_max, steps):
    """Placeholders only inside headroom windows; never more than the plan needs beyond the ready
    replicas, never above the max; held (not dropped) without metrics."""
    p = headroom_policy(mode=mode)
    e = event(start_min=60, minutes=30)
    index = index_calendar(p, [e])
    opens, closes = headroom_window(p, e)
    hpa = HpaFloor(2, hpa_max) if mode == "hpa-floor" else None
    top = min(80, hpa_max) if hpa else 80
    placeholders = None
    for minute, upper, ready, fresh in steps:
        now = at(minute)
        fc = ForecastView(now, STEP, 50.0, [50.0] * 18, [upper] * 18, [e.label] * 18) if fresh else None
        d = decide(p, CycleState(), Seen(now, fc, 2, hpa, ready=ready, placeholders=placeholders), index)
        if not opens <= now < closes:
            assert d.placeholders is None
        elif fc is None:
            assert d.placeholders == placeholders
        else:
            assert d.headroom_for <= top and d.placeholders == max(0, d.headroom_for - ready)
            assert d.headroom_for >= math.ceil(upper / 100.0 - 1e-9) or d.headroom_for == top
        placeholders = d.placeholders
