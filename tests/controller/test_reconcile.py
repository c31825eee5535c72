"""The controller against the real control plane, as the chart's ServiceAccount: what the cluster
ends with. The simulated clock moves the controller through an event; kube-apiserver, its
admission and validation, and RBAC are the real ones."""

from __future__ import annotations

from datetime import datetime, UTC

from autoscaler.adapters.kube import ORIGINAL_MIN
from tests.conftest import BASE_DEMAND
from tests.controller.world import COOLDOWN, LEAD, QUERY, Clock, conditions, controller, hpa_min, floors_until, policy_spec, raised, seed, status_of


def test_event_raises_floor_by_t_minus_lead_and_restores_after_cooldown(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, extra_spec={"floor": "events-only"})
    clock = Clock(t - 1800)
    ctl = controller(kube, prometheus, clock)
    floors = floors_until(ctl, clock, kube, t, t + 3600 + COOLDOWN + 120)
    # the last cycle before T - L raises it: capacity asked for then is ready by T
    assert floors[-LEAD - 120] == 3
    assert floors[-LEAD - 60] == 72  # ceil(50,000 / (1,000 x 0.7))
    assert all(v == 72 for k, v in floors.items() if -LEAD - 60 <= k < 3600 + COOLDOWN)
    assert floors[3600 + COOLDOWN] == 3  # restored after the cool-down
    hpa = kube.get("autoscaling/v2", "horizontalpodautoscalers", kube.ns, "web")
    assert ORIGINAL_MIN not in (hpa["metadata"].get("annotations") or {})
    raised = kube.events("FloorRaised")
    assert len(raised) == 1 and "Flash sale 20:00" in raised[0]["message"] and raised[0]["involvedObject"]["kind"] == "ScalingPolicy"
    assert len(kube.events("FloorRestored")) == 1
    policy = status_of(kube, "scalingpolicies", "web")
    assert policy["phase"] == "Idle" and conditions(policy)["Ready"]["status"] == "True"
    assert status_of(kube, "promotionevents", "flash-sale")["phase"] == "Done"


def test_next_action_is_one_interval_before_start_minus_lead(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    controller(kube, prometheus, Clock(t - 1800)).run_cycle()
    status = status_of(kube, "scalingpolicies", "web")
    expected = datetime.fromtimestamp(t - LEAD - 60, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert expected in status["nextAction"] and "Flash sale 20:00" in status["nextAction"]


def test_floor_follows_the_seasonal_forecast_between_events(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    clock = Clock(t - 1800)
    ctl = controller(kube, prometheus, clock)
    floors = floors_until(ctl, clock, kube, t, t + 3600 + COOLDOWN + 900)
    # demand is about 10,000 (+-20 %): 1,000 per replica at 70 %, less the HPA's 10 % tolerance
    seasonal = [v for k, v in floors.items() if k < -LEAD - 60]
    assert all(9 <= v <= 17 for v in seasonal)
    # the event's whole plan: its expected peak at the target utilization before it starts; once it
    # runs (and stays near 10,000), the peak it may still reach, at full capacity
    assert all(v == 72 for k, v in floors.items() if -LEAD - 60 <= k < 0)
    assert all(v == 50 for k, v in floors.items() if 300 <= k < 3600)
    after = [v for k, v in floors.items() if k >= 3600 + COOLDOWN + 600]
    assert after and all(9 <= v <= 17 for v in after)  # back to the seasonal plan, not to 3
    hpa = kube.get("autoscaling/v2", "horizontalpodautoscalers", kube.ns, "web")
    assert hpa["metadata"]["annotations"][ORIGINAL_MIN] == "3"
    policy = status_of(kube, "scalingpolicies", "web")
    assert policy["floorReplicas"] == after[-1] and policy["originalMinReplicas"] == 3


def test_a_deleted_policy_restores_the_floor_before_it_goes(kube, prometheus, start):
    ctl, clock, t = raised(kube, prometheus, start)
    policy = kube.get("peakscale.io/v1alpha1", "scalingpolicies", kube.ns, "web")
    assert "peakscale.io/restore-floor" in policy["metadata"]["finalizers"]
    kube.delete("peakscale.io/v1alpha1", "scalingpolicies", kube.ns, "web")
    assert kube.get("peakscale.io/v1alpha1", "scalingpolicies", kube.ns, "web")["metadata"]["deletionTimestamp"]
    clock.now += 60
    ctl.run_cycle()
    assert hpa_min(kube) == 3
    assert ORIGINAL_MIN not in (kube.get("autoscaling/v2", "horizontalpodautoscalers", kube.ns, "web")["metadata"].get("annotations") or {})
    assert kube.get("peakscale.io/v1alpha1", "scalingpolicies", kube.ns, "web") is None  # the finalizer let it go


def test_switching_a_policy_to_observe_restores_the_floor(kube, prometheus, start):
    ctl, clock, t = raised(kube, prometheus, start)
    policy = kube.get("peakscale.io/v1alpha1", "scalingpolicies", kube.ns, "web")
    policy["spec"]["mode"] = "observe"
    kube.replace(policy)
    clock.now += 60
    ctl.run_cycle()
    assert hpa_min(kube) == 3
    assert len(kube.events("FloorRestored")) == 1


def test_status_reports_the_plan_before_and_during_the_event(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    clock = Clock(t - 1800)
    ctl = controller(kube, prometheus, clock)
    ctl.run_cycle()
    status = status_of(kube, "scalingpolicies", "web")
    assert status["phase"] == "Idle" and "Flash sale 20:00" in status["nextAction"]
    assert status_of(kube, "promotionevents", "flash-sale")["phase"] == "Scheduled"
    clock.now = t + 60
    ctl.run_cycle()
    status = status_of(kube, "scalingpolicies", "web")
    # under way: the expected peak at full capacity (the observed load stays far below it)
    assert status["phase"] == "Holding" and status["plannedReplicas"] == 50 and status["originalMinReplicas"] == 3
    event = status_of(kube, "promotionevents", "flash-sale")
    assert event["phase"] == "Active" and event["policies"] == ["web"] and event["plannedPeak"] >= 50_000


def test_observe_mode_writes_no_spec(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, mode="observe")
    controller(kube, prometheus, Clock(t - 300)).run_cycle()
    assert hpa_min(kube) == 3
    assert kube.get("apps/v1", "deployments", kube.ns, "web")["spec"]["replicas"] == 3
    spec_writes = [(m, p) for m, p in kube.writes() if not p.endswith("/status") and "/events" not in p and "/leases" not in p]
    assert spec_writes == []
    status = status_of(kube, "scalingpolicies", "web")
    assert status["phase"] == "Observing" and status["plannedReplicas"] == 72


def test_dry_run_writes_no_spec_but_says_what_it_would_do(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    controller(kube, prometheus, Clock(t - 300), dry_run=True).run_cycle()
    assert hpa_min(kube) == 3
    spec_writes = [(m, p) for m, p in kube.writes() if not p.endswith("/status") and "/events" not in p and "/leases" not in p]
    assert spec_writes == []
    assert "would raise" in kube.events("DryRun")[0]["message"]


def test_max_replicas_is_never_exceeded_whatever_the_forecast(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, expected_peak=1e12, policy_max=80, hpa_max=100)
    ctl = controller(kube, prometheus, Clock(t))
    ctl.run_cycle()
    assert hpa_min(kube) == 80
    # scale mode on a workload no HPA owns: the StatefulSet's real scale subresource
    kube.put_object({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "cache", "namespace": kube.ns}, "spec": {"replicas": 2}})
    spec = policy_spec(
        targetRef={"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "cache"}, mode="scale",
        metric={"query": QUERY, "capacityPerReplica": 100}, leadTime="5m", minReplicas=2, maxReplicas=20, forecast={"history": "1d"},
    )  # fmt: skip
    kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "cache", "namespace": kube.ns, "labels": {"tier": "cache"}}, "spec": spec})
    ctl.run_cycle()
    assert kube.get("apps/v1", "statefulsets", kube.ns, "cache")["spec"]["replicas"] == 20
    assert len(kube.events("Scaled")) == 1


def test_scale_mode_refuses_a_target_an_hpa_owns(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, mode="scale")
    controller(kube, prometheus, Clock(t)).run_cycle()
    assert kube.get("apps/v1", "deployments", kube.ns, "web")["spec"]["replicas"] == 3
    status = status_of(kube, "scalingpolicies", "web")
    assert status["phase"] == "Error" and conditions(status)["Ready"]["reason"] == "HPAOwnsTarget"


def test_after_the_first_cycle_one_range_query_per_policy(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    clock = Clock(t - 3600)
    ctl = controller(kube, prometheus, clock)
    first = ctl.run_cycle()
    assert first.queries >= 1
    for _ in range(3):
        clock.now += 60
        assert ctl.run_cycle().queries == 1


def test_demand_history_comes_from_prometheus(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t + 86400)  # no event near
    controller(kube, prometheus, Clock(t), identity="x").run_cycle()
    status = status_of(kube, "scalingpolicies", "web")
    assert 0.7 * BASE_DEMAND < status["forecastPeak"] < 1.3 * BASE_DEMAND


def test_empty_answer_holds_capacity_with_a_condition(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, extra_spec={"metric": {"query": 'sum(no_such_metric{app="web"})', "capacityPerReplica": 1000}})
    controller(kube, prometheus, Clock(t - 300)).run_cycle()
    assert hpa_min(kube) == 3  # nothing to plan from: nothing changes
    metrics = conditions(status_of(kube, "scalingpolicies", "web"))["MetricsAvailable"]
    assert metrics["status"] == "False" and "no samples" in metrics["message"]


def test_every_write_is_one_info_line_with_the_policy_the_promotion_and_the_local_time(kube, prometheus, start, caplog):
    import logging

    t = start + 3600
    seed(kube, event_start=t, extra_spec={"floor": "events-only"})
    clock = Clock(t - LEAD - 60)
    with caplog.at_level(logging.INFO, logger="peakscale.controller"):
        controller(kube, prometheus, clock).run_cycle()
    writes = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "floor" in r.getMessage()]
    assert len(writes) == 1, writes
    local = datetime.fromtimestamp(clock.now, tz=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    line = writes[0]
    assert line.startswith(f"policy {kube.ns}/web at {local}") and "raise HPA web floor 3 -> 72" in line and "Flash sale 20:00" in line, line
