import math

import pytest
from hypothesis import given, settings, strategies as st

from autoscaler.errors import InputError
from autoscaler.core.plan import (
    FORECAST,
    FROZEN,
    MAX_BOUND,
    RATE_LIMIT,
    STABILIZATION,
    PlannerState,
    PlanPolicy,
    plan_step,
)


def policy(**kw):
    base = dict(capacity_per_replica=100.0, lead_time_s=600, min_replicas=2, max_replicas=50, target_utilization=0.5, tolerance=0.0)
    base.update(kw)
    return PlanPolicy(**base)


def test_forecast_within_lead_time_raises_replicas_with_its_reason():
    p = policy()
    decision, _ = plan_step(p, PlannerState(replicas=2, at_s=0), now_s=60, demand_now=100, forecast_peak=1000, event="KOL live 20:00")
    assert decision.replicas == 20  # 1000 / (100 * 0.5)
    assert decision.reason == FORECAST
    assert "KOL live 20:00" in decision.explain() and "2 -> 20" in decision.explain()


def test_upper_forecast_must_fit_at_full_capacity():
    p = policy()
    decision, _ = plan_step(p, PlannerState(replicas=2, at_s=0), now_s=60, demand_now=100, forecast_peak=100, forecast_upper=3000)
    assert decision.replicas == 30


def test_max_replicas_wins_over_any_forecast():
    decision, _ = plan_step(policy(), PlannerState(replicas=10, at_s=0), now_s=60, demand_now=10**9, forecast_peak=10**12)
    assert decision.replicas == 50 and decision.reason == MAX_BOUND


def test_scale_in_waits_for_stabilization():
    p = policy(scale_down_stabilization_s=300)
    state = PlannerState(replicas=2, at_s=0)
    d, state = plan_step(p, state, now_s=60, demand_now=1000, forecast_peak=1000)
    assert d.replicas == 20
    d, state = plan_step(p, state, now_s=120, demand_now=100, forecast_peak=100)
    assert d.replicas == 20 and d.reason == STABILIZATION
    d, state = plan_step(p, state, now_s=420, demand_now=100, forecast_peak=100)
    assert d.replicas == 2


def test_a_frozen_event_never_scales_in_below_the_current_need_plus_headroom():
    p = policy(scale_down_stabilization_s=0)
    # 1,000 now: 10 replicas at full capacity, 20 at the target utilization (0.5)
    d, _ = plan_step(p, PlannerState(replicas=30, at_s=0), now_s=60, demand_now=1000, forecast_peak=100, frozen=True)
    assert d.replicas == 20 and d.reason == FROZEN
    d, _ = plan_step(p, PlannerState(replicas=30, at_s=0), now_s=60, demand_now=1000, forecast_peak=100, frozen=False)
    assert d.replicas == 10


def test_rate_limit_slows_anticipation_but_never_current_need():
    p = policy(max_scale_up_per_minute=3)
    d, _ = plan_step(p, PlannerState(replicas=2, at_s=0), now_s=60, demand_now=100, forecast_peak=2000)
    assert d.replicas == 5 and d.reason == RATE_LIMIT
    d, _ = plan_step(p, PlannerState(replicas=2, at_s=0), now_s=60, demand_now=2000, forecast_peak=2000)
    assert d.replicas >= 20  # the current load needs 20 at full capacity


def test_tolerance_ignores_small_changes():
    p = policy(tolerance=0.1)
    d, _ = plan_step(p, PlannerState(replicas=20, at_s=0), now_s=60, demand_now=1000, forecast_peak=1050)
    assert d.replicas == 20


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(capacity_per_replica=0), "spec.metric.capacityPerReplica"),
        (dict(target_utilization=1.5), "spec.metric.targetUtilization"),
        (dict(target_utilization=0), "spec.metric.targetUtilization"),
        (dict(min_replicas=10, max_replicas=5), "spec.minReplicas"),
        (dict(max_replicas=0, min_replicas=0), "spec.maxReplicas"),
        (dict(lead_time_s=-1), "spec.leadTime"),
    ],
)
def test_nonsensical_policies_are_refused_naming_the_field(kw, field):
    with pytest.raises(InputError) as info:
        policy(**kw)
    assert str(info.value).startswith(field)


step = st.tuples(
    st.floats(min_value=0, max_value=1e6, allow_nan=False),  # demand now
    st.floats(min_value=0, max_value=1e7, allow_nan=False),  # central forecast peak
    st.floats(min_value=0, max_value=1e7, allow_nan=False),  # upper forecast peak
    st.booleans(),  # frozen event active
    st.integers(min_value=1, max_value=600),  # seconds since the previous step
)


@settings(max_examples=300, deadline=None)
@given(
    min_r=st.integers(0, 20),
    extra=st.integers(0, 200),
    capacity=st.floats(min_value=1, max_value=1e4),
    utilization=st.floats(min_value=0.05, max_value=1.0),
    stabilization=st.integers(0, 900),
    rate=st.one_of(st.none(), st.integers(1, 50)),
    tolerance=st.floats(min_value=0, max_value=0.5),
    start=st.integers(0, 300),
    steps=st.lists(step, min_size=1, max_size=40),
)
def test_planner_properties(min_r, extra, capacity, utilization, stabilization, rate, tolerance, start, steps):
    p = PlanPolicy(
        capacity_per_replica=capacity,
        lead_time_s=600,
        min_replicas=min_r,
        max_replicas=max(1, min_r + extra),
        target_utilization=utilization,
        scale_down_stabilization_s=stabilization,
        max_scale_up_per_minute=rate,
        tolerance=tolerance,
    )
    state = PlannerState(replicas=start, at_s=0)
    now = 0
    for demand, peak, upper, frozen, dt in steps:
        now += dt
        before = state.replicas
        decision, state = plan_step(p, state, now_s=now, demand_now=demand, forecast_peak=peak, forecast_upper=upper, frozen=frozen)
        # never leaves [min, max]
        assert p.min_replicas <= decision.replicas <= p.max_replicas
        # never plans below what the current load needs (at full capacity), up to maxReplicas
        need = math.ceil(demand / capacity - 1e-9)
        assert decision.replicas >= min(need, p.max_replicas)
        # a frozen event never scales in below the current need plus headroom (from a count
        # inside the bounds)
        if frozen and p.min_replicas <= before <= p.max_replicas and decision.replicas < before:
            with_headroom = math.ceil(demand / (capacity * utilization) - 1e-9)
            assert decision.replicas >= min(with_headroom, p.max_replicas)
        assert state.replicas == decision.replicas


def test_the_why_shows_the_arithmetic_that_sized_the_replicas():
    p = policy(capacity_per_replica=500.0, target_utilization=0.7, max_replicas=100)
    central, _ = plan_step(p, PlannerState(replicas=3, at_s=0), now_s=60, demand_now=1000, forecast_peak=4167)
    assert central.explain() == "3 -> 12: forecast peak 4,167 within lead time at 500 per replica x 70% needs 12"  # 4,167 / 350
    upper, _ = plan_step(p, PlannerState(replicas=3, at_s=0), now_s=60, demand_now=1000, forecast_peak=4000, forecast_upper=16_000)
    assert upper.explain() == "3 -> 32: upper forecast 16,000 within lead time at 500 per replica (full) needs 32"  # 16,000 / 500
    now, _ = plan_step(p, PlannerState(replicas=3, at_s=0), now_s=60, demand_now=2100, forecast_peak=100)
    assert now.explain() == "3 -> 5: current load 2,100 at 500 per replica needs 5"


@settings(max_examples=300, deadline=None)
@given(st.floats(1, 1e6), st.floats(0, 1e6), st.floats(1, 5e3), st.sampled_from([0.5, 0.7, 0.9]))
def test_a_forecast_reason_names_numbers_whose_arithmetic_gives_the_replicas(peak, upper, capacity, utilization):
    p = policy(capacity_per_replica=capacity, target_utilization=utilization, max_replicas=10**6)
    d, _ = plan_step(p, PlannerState(replicas=1, at_s=0), now_s=60, demand_now=0, forecast_peak=peak, forecast_upper=upper)
    if d.reason != FORECAST:
        return
    text = d.explain()
    if "upper forecast" in text:
        assert d.want == math.ceil(upper / capacity - 1e-9)
    else:
        assert d.want == math.ceil(peak / (capacity * utilization) - 1e-9) and f"x {utilization:.0%}" in text
    assert text.endswith(f"needs {d.want}")


def test_a_promotions_headroom_resizes_fold_into_one_row_unless_verbose():
    from autoscaler.cli.plan import _rows
    from autoscaler.core.plan_report import Action

    def action(minute: int, kind: str, before: int, after: int) -> Action:
        return Action(at=f"2026-11-11 19:{minute:02d} +08:00", at_s=minute * 60, action=kind, from_replicas=before, to_replicas=after, event="d11", title="11.11", lead_time_s=600, reason="r")

    actions = [action(30, "create-headroom", 0, 60), action(40, "raise-floor", 3, 72), action(45, "resize-headroom", 60, 40), action(48, "resize-headroom", 40, 20), action(50, "resize-headroom", 20, 5), action(59, "delete-headroom", 5, 0)]
    folded = _rows(actions, verbose=False)
    assert [r[1] for r in folded] == ["create headroom", "raise floor", "resize headroom", "delete headroom"]
    assert folded[2][:3] == ("2026-11-11 19:45 +08:00 .. 19:50", "resize headroom", "60 -> 5") and folded[2][4].startswith("3 resizes")
    assert len(_rows(actions, verbose=True)) == len(actions)


def test_a_plan_from_mid_promotion_starts_from_the_state_the_controller_reached():
    """plan --from 12:30 of a sale that opened at 11:29 starts from its raised count, and writes
    what the plan of the whole day writes from 12:30 on (never a false lowering to minReplicas)."""
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from autoscaler.cli import app

    examples = Path(__file__).resolve().parents[2] / "examples"

    def plan(start: str) -> dict:
        args = ["plan", "--trace", str(examples / "traffic.csv"), "--events", str(examples / "promos.csv"), "--policies", str(examples / "policies.yaml")]
        done = CliRunner().invoke(app, [*args, "--from", start, "--to", "2026-06-18 16:00", "--tz", "UTC", "-o", "json"])
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)["targets"][0]

    whole, mid = plan("2026-06-18 09:00"), plan("2026-06-18 12:30")
    assert mid["start_replicas"] > mid["min_replicas"]  # the sale's raise, not minReplicas
    assert mid["start_replicas"] == [a["to_replicas"] for a in whole["actions"] if a["at_s"] < mid["timeline"][0]["at_s"]][-1]
    assert [(a["at_s"], a["to_replicas"]) for a in mid["actions"]] == [(a["at_s"], a["to_replicas"]) for a in whole["actions"] if a["at_s"] >= mid["timeline"][0]["at_s"]]


def test_past_the_history_a_plan_tells_both_stories_of_a_promotion(tmp_path):
    """With history up to 11:00 and a sale from 12:00, the rows from 12:00 on are two labelled
    scenarios: the sale arrives as forecast (the raise holds through it), or it does not show
    (the plan lowers). Rows before it hold in both; with the whole history there is one story."""
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from autoscaler.cli import app

    examples = Path(__file__).resolve().parents[2] / "examples"
    lines = (examples / "traffic.csv").read_text().splitlines()
    (tmp_path / "upto11.csv").write_text("\n".join([lines[0], *(x for x in lines[1:] if x < "2026-06-18 11:00")]) + "\n")

    def plan(trace: Path) -> dict:
        args = ["plan", "--trace", str(trace), "--events", str(examples / "promos.csv"), "--policies", str(examples / "policies.yaml")]
        done = CliRunner().invoke(app, [*args, "--from", "2026-06-18 10:00", "--to", "2026-06-18 16:00", "--tz", "UTC", "-o", "json"])
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)["targets"][0]

    whole, cut = plan(examples / "traffic.csv"), plan(tmp_path / "upto11.csv")
    assert whole["scenarios"] == []
    a, b = cut["scenarios"]
    assert (a["name"], b["name"]) == ("as-forecast", "no-show") and "Flash sale 06-18" in a["title"] and a["at"].startswith("2026-06-18 12:00")
    assert all(x["at_s"] < a["at_s"] for x in cut["actions"]) and all(x["at_s"] >= a["at_s"] for s in (a, b) for x in s["actions"])
    raised = cut["actions"][-1]["to_replicas"]  # the raise ahead of the sale, common to both
    assert raised > cut["min_replicas"]

    def during(points: list[dict]) -> list[int]:
        return [p["replicas"] for p in points if a["at_s"] + 600 <= p["at_s"] < a["at_s"] + 3600]

    assert min(during(a["timeline"])) >= raised > min(during(b["timeline"]))
    # as forecast, the sale is the whole history's sale (a x4 step): the same count holds through it
    assert during(a["timeline"]) == during(whole["timeline"])
