"""The controller against the Kubernetes double and a real Prometheus: what the cluster ends with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from datetime import datetime, UTC


import pytest
from kubernetes import client

from autoscaler.controller.reconcile import Controller
from autoscaler.controller.base import ControllerOptions
from autoscaler.adapters.kube import ORIGINAL_MIN, Kube
from autoscaler.adapters.prometheus import HistoryCache, escape_label_value, render_query
from autoscaler.controller.telemetry import Telemetry, serve
from tests.autoscaler.conftest import BASE_DEMAND
from tests.fakes.kube import write_kubeconfig
from tests.prometheus_server import free_port

NS = "shop"
LEAD = 600
COOLDOWN = 1200


class Clock:
    def __init__(self, now: float) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def api_for(fake) -> client.ApiClient:
    config = client.Configuration()
    config.host = fake.url
    return client.ApiClient(config)


def seed(fake, *, event_start: float, expected_peak: float = 50_000, hpa_max: int = 100, policy_max: int = 80, mode: str = "hpa-floor", extra_spec=None):
    fake.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS}, "spec": {"replicas": 3}, "status": {"replicas": 3}})
    fake.put_object(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": hpa_max},
            "status": {"currentReplicas": 3, "desiredReplicas": 3},
        }
    )
    spec = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "mode": mode,
        "metric": {"query": 'sum(shop_demand{app="web"})', "capacityPerReplica": 1000, "targetUtilization": 0.7},
        "leadTime": "10m",
        "minReplicas": 3,
        "maxReplicas": policy_max,
        "cooldown": "20m",
        "forecast": {"history": "2d", "step": "1m"},
    }
    spec.update(extra_spec or {})
    fake.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "web", "namespace": NS, "labels": {"tier": "web"}}, "spec": spec})
    fake.put_object(
        {
            "apiVersion": "peakscale.io/v1alpha1",
            "kind": "PromotionEvent",
            "metadata": {"name": "flash-sale", "namespace": NS},
            "spec": {"title": "Flash sale 20:00", "start": iso(event_start), "end": iso(event_start + 3600), "kind": "flash-sale", "expectedPeak": expected_peak},
        }
    )


def controller(fake, prometheus, clock, identity="a", **options):
    opts = ControllerOptions(identity=identity, namespaces=[NS], interval_s=60, lease_namespace=NS, **options)
    return Controller(Kube(api_for(fake)), HistoryCache(prometheus.url, timeout_s=5), opts, clock=clock)


def hpa_min(fake) -> int:
    return fake.get("autoscaling/v2", "horizontalpodautoscalers", NS, "web")["spec"]["minReplicas"]


def events_with(fake, reason: str) -> list[dict]:
    return [e for e in fake.list("v1", "events", NS) if e.get("reason") == reason]


@pytest.fixture
def start(history_window):
    """A simulated 'now' well inside the backfilled history."""
    return float(history_window[1] - 6 * 3600)


def test_event_raises_floor_by_t_minus_lead_and_restores_after_cooldown(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, extra_spec={"floor": "events-only"})
    clock = Clock(t - 1800)
    ctl = controller(kube, prometheus, clock)
    floors = {}
    while clock.now <= t + 3600 + COOLDOWN + 120:
        ctl.run_cycle()
        floors[clock.now - t] = hpa_min(kube)
        clock.now += 60
    # the last cycle before T - L raises it: capacity asked for then is ready by T
    assert floors[-LEAD - 120] == 3
    assert floors[-LEAD - 60] == 72  # ceil(50,000 / (1,000 x 0.7))
    assert all(v == 72 for k, v in floors.items() if -LEAD - 60 <= k < 3600 + COOLDOWN)
    assert floors[3600 + COOLDOWN] == 3  # restored after the cool-down
    hpa = kube.get("autoscaling/v2", "horizontalpodautoscalers", NS, "web")
    assert ORIGINAL_MIN not in (hpa["metadata"].get("annotations") or {})
    raised = events_with(kube, "FloorRaised")
    assert len(raised) == 1 and "Flash sale 20:00" in raised[0]["message"] and raised[0]["involvedObject"]["kind"] == "ScalingPolicy"
    assert len(events_with(kube, "FloorRestored")) == 1
    policy = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")
    assert policy["status"]["phase"] == "Idle"
    assert {c["type"]: c["status"] for c in policy["status"]["conditions"]}["Ready"] == "True"
    assert kube.get("peakscale.io/v1alpha1", "promotionevents", NS, "flash-sale")["status"]["phase"] == "Done"


def test_floor_follows_the_seasonal_forecast_between_events(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    clock = Clock(t - 1800)
    ctl = controller(kube, prometheus, clock)
    floors = {}
    while clock.now <= t + 3600 + COOLDOWN + 900:
        ctl.run_cycle()
        floors[clock.now - t] = hpa_min(kube)
        clock.now += 60
    # demand is about 10,000 (+-20 %): 1,000 per replica at 70 %, less the HPA's 10 % tolerance
    seasonal = [v for k, v in floors.items() if k < -LEAD - 60]
    assert all(9 <= v <= 17 for v in seasonal)
    # the event's whole plan: its expected peak at the target utilization before it starts; once it
    # runs (and stays near 10,000), the peak it may still reach, at full capacity
    assert all(v == 72 for k, v in floors.items() if -LEAD - 60 <= k < 0)
    assert all(v == 50 for k, v in floors.items() if 300 <= k < 3600)
    after = [v for k, v in floors.items() if k >= 3600 + COOLDOWN + 600]
    assert after and all(9 <= v <= 17 for v in after)  # back to the seasonal plan, not to 3
    hpa = kube.get("autoscaling/v2", "horizontalpodautoscalers", NS, "web")
    assert hpa["metadata"]["annotations"][ORIGINAL_MIN] == "3"
    policy = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")
    assert policy["status"]["floorReplicas"] == after[-1] and policy["status"]["originalMinReplicas"] == 3


def test_next_action_is_one_interval_before_start_minus_lead(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    controller(kube, prometheus, Clock(t - 1800)).run_cycle()
    status = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["status"]
    expected = datetime.fromtimestamp(t - LEAD - 60, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert expected in status["nextAction"] and "Flash sale 20:00" in status["nextAction"]


def test_a_deleted_policy_restores_the_floor_before_it_goes(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    clock = Clock(t - 300)
    ctl = controller(kube, prometheus, clock)
    ctl.run_cycle()
    assert hpa_min(kube) == 72
    policy = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")
    assert "peakscale.io/restore-floor" in policy["metadata"]["finalizers"]
    status, _ = kube.handle("DELETE", f"/apis/peakscale.io/v1alpha1/namespaces/{NS}/scalingpolicies/web", None, "")
    assert status == 200 and kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["metadata"]["deletionTimestamp"]
    clock.now += 60
    ctl.run_cycle()
    assert hpa_min(kube) == 3
    assert ORIGINAL_MIN not in (kube.get("autoscaling/v2", "horizontalpodautoscalers", NS, "web")["metadata"].get("annotations") or {})
    assert kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web") is None  # the finalizer let it go


def test_switching_a_policy_to_observe_restores_the_floor(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    clock = Clock(t - 300)
    ctl = controller(kube, prometheus, clock)
    ctl.run_cycle()
    assert hpa_min(kube) == 72
    policy = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")
    policy["spec"]["mode"] = "observe"
    kube.handle("PUT", f"/apis/peakscale.io/v1alpha1/namespaces/{NS}/scalingpolicies/web", policy, "application/json")
    clock.now += 60
    ctl.run_cycle()
    assert hpa_min(kube) == 3
    assert len(events_with(kube, "FloorRestored")) == 1


def test_status_reports_the_plan_before_and_during_the_event(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    clock = Clock(t - 1800)
    ctl = controller(kube, prometheus, clock)
    ctl.run_cycle()
    status = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["status"]
    assert status["phase"] == "Idle" and "Flash sale 20:00" in status["nextAction"]
    assert kube.get("peakscale.io/v1alpha1", "promotionevents", NS, "flash-sale")["status"]["phase"] == "Scheduled"
    clock.now = t + 60
    ctl.run_cycle()
    status = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["status"]
    # under way: the expected peak at full capacity (the observed load stays far below it)
    assert status["phase"] == "Holding" and status["plannedReplicas"] == 50 and status["originalMinReplicas"] == 3
    event = kube.get("peakscale.io/v1alpha1", "promotionevents", NS, "flash-sale")["status"]
    assert event["phase"] == "Active" and event["policies"] == ["web"] and event["plannedPeak"] >= 50_000


def test_prometheus_killed_mid_run_leaves_floors_untouched(kube, own_prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    clock = Clock(t - 300)
    ctl = controller(kube, own_prometheus, clock)
    ctl.run_cycle()
    assert hpa_min(kube) == 72
    own_prometheus.stop()
    for minutes in range(0, 120, 10):  # well past the end and the cool-down
        clock.now = t + 3600 + minutes * 60
        ctl.run_cycle()
        assert hpa_min(kube) == 72
    status = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["status"]
    metrics = {c["type"]: c for c in status["conditions"]}["MetricsAvailable"]
    assert metrics["status"] == "False" and "holding capacity" in metrics["message"]
    assert len(events_with(kube, "MetricsUnavailable")) == 1  # once per outage, not every cycle


def test_prometheus_down_before_the_window_opens_still_raises_from_the_last_known_level(kube, own_prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, extra_spec={"floor": "events-only"})
    clock = Clock(t - 1800)
    ctl = controller(kube, own_prometheus, clock)
    ctl.run_cycle()  # the history is cached; nothing to raise yet
    assert hpa_min(kube) == 3
    own_prometheus.stop()
    clock.now = t - LEAD - 60  # the window opens; Prometheus has been down for 19 minutes
    ctl.run_cycle()
    assert hpa_min(kube) == 72
    status = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["status"]
    metrics = {c["type"]: c for c in status["conditions"]}["MetricsAvailable"]
    assert metrics["status"] == "False" and metrics["reason"] == "LastKnownLevel"
    assert "Flash sale 20:00" in metrics["message"] and "last known level" in metrics["message"]


def test_second_instance_writes_nothing_while_first_holds_the_lease(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    clock = Clock(t - 300)
    first = controller(kube, prometheus, clock, identity="first")
    second = controller(kube, prometheus, clock, identity="second")
    assert first.run_cycle().leader
    before = len(kube.writes())
    report = second.run_cycle()
    assert not report.leader and kube.writes()[before:] == []
    clock.now += 10  # first renews within the lease duration
    assert first.run_cycle().leader
    # first stops renewing; second looks every 2 s (its retry period) and takes over once it has
    # seen the same record for a whole lease duration (15 s), by its own clock
    taken_at = None
    for _ in range(12):
        clock.now += 2
        if second.run_cycle().leader:
            taken_at = clock.now
            break
    assert taken_at is not None and 15 <= taken_at - (t - 300 + 10) <= 15 + 2 + 2
    lease = kube.get("coordination.k8s.io/v1", "leases", NS, "peakscale-controller")
    assert lease["spec"]["holderIdentity"] == "second" and lease["spec"]["leaseTransitions"] == 1
    assert not first.run_cycle().leader


def test_injected_conflicts_are_retried_to_success(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    kube.fail_next("PUT", "/horizontalpodautoscalers/web", status=409, times=2)
    ctl = controller(kube, prometheus, Clock(t - 300))
    ctl.run_cycle()
    assert hpa_min(kube) == 72
    puts = [p for m, p in kube.requests if m == "PUT" and p.endswith("/horizontalpodautoscalers/web")]
    assert len(puts) == 3


def test_concurrent_writer_conflict_is_resolved_with_a_fresh_read(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    # someone else bumps the HPA between the controller's read and write: a real 409
    original = kube.handle

    def racing(method, path, body, content_type):
        if method == "PUT" and path.endswith("/horizontalpodautoscalers/web") and not racing.done:
            racing.done = True
            hpa = kube.get("autoscaling/v2", "horizontalpodautoscalers", NS, "web")
            hpa["spec"]["maxReplicas"] = 90
            original("PUT", path, hpa, "application/json")
        return original(method, path, body, content_type)

    racing.done = False
    kube.handle = racing
    controller(kube, prometheus, Clock(t - 300)).run_cycle()
    hpa = kube.get("autoscaling/v2", "horizontalpodautoscalers", NS, "web")
    assert hpa["spec"]["minReplicas"] == 72 and hpa["spec"]["maxReplicas"] == 90  # neither update lost


def test_restart_mid_event_keeps_the_floor(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, extra_spec={"floor": "events-only"})
    clock = Clock(t + 600)
    controller(kube, prometheus, clock, identity="before").run_cycle()
    assert hpa_min(kube) == 50
    clock.now += 60  # killed; a new instance starts with nothing in memory
    restarted = controller(kube, prometheus, clock, identity="after", lease_duration_s=15)
    clock.now += 30  # the old lease expires
    for _ in range(5):
        restarted.run_cycle()
        assert hpa_min(kube) == 50
        clock.now += 60
    clock.now = t + 3600 + COOLDOWN + 60
    restarted.run_cycle()
    assert hpa_min(kube) == 3  # the original came back from the annotation


def test_observe_mode_writes_no_spec(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, mode="observe")
    controller(kube, prometheus, Clock(t - 300)).run_cycle()
    assert hpa_min(kube) == 3
    assert kube.get("apps/v1", "deployments", NS, "web")["spec"]["replicas"] == 3
    spec_writes = [(m, p) for m, p in kube.writes() if not p.endswith("/status") and "/events" not in p and "/leases" not in p]
    assert spec_writes == []
    status = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["status"]
    assert status["phase"] == "Observing" and status["plannedReplicas"] == 72


def test_dry_run_writes_no_spec_but_says_what_it_would_do(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    controller(kube, prometheus, Clock(t - 300), dry_run=True).run_cycle()
    assert hpa_min(kube) == 3
    spec_writes = [(m, p) for m, p in kube.writes() if not p.endswith("/status") and "/events" not in p and "/leases" not in p]
    assert spec_writes == []
    assert "would raise" in events_with(kube, "DryRun")[0]["message"]


def test_max_replicas_is_never_exceeded_whatever_the_forecast(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, expected_peak=1e12, policy_max=80, hpa_max=100)
    ctl = controller(kube, prometheus, Clock(t))
    ctl.run_cycle()
    assert hpa_min(kube) == 80
    # scale mode on a workload no HPA owns
    kube.put_object({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "cache", "namespace": NS}, "spec": {"replicas": 2}})
    kube.put_object(
        {
            "apiVersion": "peakscale.io/v1alpha1",
            "kind": "ScalingPolicy",
            "metadata": {"name": "cache", "namespace": NS, "labels": {"tier": "cache"}},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "cache"},
                "mode": "scale",
                "metric": {"query": 'sum(shop_demand{app="web"})', "capacityPerReplica": 100},
                "leadTime": "5m",
                "minReplicas": 2,
                "maxReplicas": 20,
                "forecast": {"history": "1d"},
            },
        }
    )
    ctl.run_cycle()
    assert kube.get("apps/v1", "statefulsets", NS, "cache")["spec"]["replicas"] == 20
    assert len(events_with(kube, "Scaled")) == 1


def test_scale_mode_refuses_a_target_an_hpa_owns(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, mode="scale")
    controller(kube, prometheus, Clock(t)).run_cycle()
    assert kube.get("apps/v1", "deployments", NS, "web")["spec"]["replicas"] == 3
    status = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["status"]
    assert status["phase"] == "Error" and {c["type"]: c["reason"] for c in status["conditions"]}["Ready"] == "HPAOwnsTarget"


def test_malformed_policy_gets_a_condition_naming_the_field_and_others_carry_on(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    kube.put_object(
        {
            "apiVersion": "peakscale.io/v1alpha1",
            "kind": "ScalingPolicy",
            "metadata": {"name": "broken", "namespace": NS},
            "spec": {"targetRef": {"kind": "Deployment", "name": "web"}, "metric": {"query": "up", "capacityPerReplica": -5}, "leadTime": "soon", "maxReplicas": 5},
        }
    )
    kube.put_object(
        {
            "apiVersion": "peakscale.io/v1alpha1",
            "kind": "PromotionEvent",
            "metadata": {"name": "naive", "namespace": NS},
            "spec": {"start": "2026-11-11T20:00:00", "end": "2026-11-11T21:00:00", "kind": "x"},
        }
    )
    report = controller(kube, prometheus, Clock(t)).run_cycle()
    assert hpa_min(kube) == 72  # the good policy was acted on
    broken = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "broken")["status"]
    ready = {c["type"]: c for c in broken["conditions"]}["Ready"]
    assert ready["status"] == "False" and "spec.metric.capacityPerReplica" in ready["message"]
    naive = kube.get("peakscale.io/v1alpha1", "promotionevents", NS, "naive")["status"]
    assert "spec.start" in naive["conditions"][0]["message"] and "offset" in naive["conditions"][0]["message"]
    assert {o.name: o.action for o in report.outcomes}["broken"] == "invalid"


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


def test_label_values_reaching_promql_are_escaped():
    assert escape_label_value('a"b\\c') == 'a\\"b\\\\c'
    query = render_query('sum(rate(http_requests_total{namespace="${namespace}",deployment="${target}"}[1m]))', namespace='x"} or vector(1e9) #', target="web")
    assert query == 'sum(rate(http_requests_total{namespace="x\\"} or vector(1e9) #",deployment="web"}[1m]))'


def test_metrics_health_and_readiness_endpoints(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    telemetry = Telemetry()
    port = free_port()
    server = serve(telemetry, port, interval_s=60, host="127.0.0.1")
    try:
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
        opts = ControllerOptions(identity="m", namespaces=[NS], lease_namespace=NS)
        Controller(Kube(api_for(kube)), HistoryCache(prometheus.url), opts, clock=Clock(t), telemetry=telemetry).run_cycle()
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'peakscale_planned_replicas{namespace="shop",policy="web"} 72.0' in body
        assert 'peakscale_floor_replicas{namespace="shop",policy="web"} 72.0' in body
        assert "peakscale_cycle_duration_seconds_count 1.0" in body
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).status == 200
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_demand_history_comes_from_prometheus(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t + 86400)  # no event near
    ctl = controller(kube, prometheus, Clock(t), identity="x")
    ctl.run_cycle()
    status = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["status"]
    assert 0.7 * BASE_DEMAND < status["forecastPeak"] < 1.3 * BASE_DEMAND


def kubeconfig_for(fake, path):
    return write_kubeconfig(fake.url, path)


def test_controller_command_runs_a_cycle_against_the_cluster(kube, prometheus, tmp_path):
    # real time: the backfilled data ends three hours ago, so the metrics are stale and the
    # controller must hold; the command still reports and exits 0
    seed(kube, event_start=datetime.now(UTC).timestamp() + 300)
    done = subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "controller", "--prometheus-url", prometheus.url, "--kubeconfig", str(kubeconfig_for(kube, tmp_path / "kc")), "-n", NS, "--once", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "POD_NAMESPACE": NS},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["leader"] and report["policies"] == 1
    assert hpa_min(kube) == 3
    status = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["status"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["MetricsAvailable"] == "False"


def test_controller_command_reports_an_unreachable_cluster(tmp_path, prometheus):
    class Nowhere:
        url = f"http://127.0.0.1:{free_port()}"

    done = subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "controller", "--prometheus-url", prometheus.url, "--kubeconfig", str(kubeconfig_for(Nowhere, tmp_path / "kc")), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "cannot reach the Kubernetes API" in done.stderr and "Traceback" not in done.stderr


def test_empty_answer_holds_capacity_with_a_condition(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, extra_spec={"metric": {"query": 'sum(no_such_metric{app="web"})', "capacityPerReplica": 1000}})
    controller(kube, prometheus, Clock(t - 300)).run_cycle()
    assert hpa_min(kube) == 3  # nothing to plan from: nothing changes
    status = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["status"]
    metrics = {c["type"]: c for c in status["conditions"]}["MetricsAvailable"]
    assert metrics["status"] == "False" and "no samples" in metrics["message"]


def test_a_slow_prometheus_times_out_instead_of_stalling_the_cycle():
    import socket
    import threading
    import time

    from autoscaler.errors import MetricsUnavailable

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    held = []
    threading.Thread(target=lambda: [held.append(listener.accept()) for _ in range(5)], daemon=True).start()
    cache = HistoryCache(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout_s=1)
    # the server accepts and never answers: the query must fail (and the policy hold), not hang
    with pytest.raises(MetricsUnavailable, match="ReadTimeout|timed out|Timeout"):
        cache.history("up", now_s=time.time(), history_s=3600, step_s=60, stale_after_s=300)
    listener.close()


def test_each_bad_object_gets_a_condition_and_an_event_while_a_good_policy_is_acted_on(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    good_spec = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["spec"]
    for name, annotation in (("stepless", None), ("annotated", "three")):
        kube.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS}, "spec": {"replicas": 3}})
        hpa_meta = {"name": name, "namespace": NS}
        if annotation:
            hpa_meta["annotations"] = {ORIGINAL_MIN: annotation}
        kube.put_object(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": hpa_meta,
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}, "minReplicas": 3, "maxReplicas": 100},
                "status": {"currentReplicas": 3, "desiredReplicas": 3},
            }
        )
        spec = {**good_spec, "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}}
        if name == "stepless":
            spec["forecast"] = {"history": "2d", "step": "0s"}  # the CRD's pattern accepts it
        kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": name, "namespace": NS}, "spec": spec})
    kube.put_object(
        {
            "apiVersion": "peakscale.io/v1alpha1",
            "kind": "PromotionEvent",
            "metadata": {"name": "garbled", "namespace": NS},
            "spec": {"start": iso(t), "end": iso(t + 600), "kind": "x"},
            "status": {"conditions": "not a list", "memory": [{"policy": 5}]},
        }
    )
    clock = Clock(t - LEAD - 60)
    ctl = controller(kube, prometheus, clock)
    for _ in range(3):
        report = ctl.run_cycle()
        assert report.leader and {o.name: o.error for o in report.outcomes}["web"] is None
        assert hpa_min(kube) == 72  # the good policy is planned and acted on every cycle
        clock.now += 60
    stepless = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "stepless")["status"]
    assert {c["type"]: c["reason"] for c in stepless["conditions"]}["Ready"] == "InvalidSpec" and "forecast.step" in stepless["reason"]
    annotated = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "annotated")["status"]
    assert {c["type"]: c["reason"] for c in annotated["conditions"]}["Ready"] == "InvalidSpec" and "three" in annotated["reason"]
    assert kube.get("autoscaling/v2", "horizontalpodautoscalers", NS, "annotated")["spec"]["minReplicas"] == 3
    warned = {e["involvedObject"]["name"] for e in fake_events(kube) if e["type"] == "Warning" and e["reason"] == "InvalidSpec"}
    assert {"stepless", "annotated"} <= warned
    assert len([e for e in fake_events(kube) if e["involvedObject"]["name"] == "stepless"]) == 1  # once, not every cycle
    garbled = kube.get("peakscale.io/v1alpha1", "promotionevents", NS, "garbled")["status"]
    assert garbled["phase"] in ("PreScaling", "Active") and isinstance(garbled["conditions"], list)


def fake_events(kube) -> list[dict]:
    return kube.list("v1", "events", NS)


def test_a_failing_write_is_retried_and_a_promotion_is_done_only_once_the_floor_is_back(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, extra_spec={"floor": "events-only"})
    clock = Clock(t - LEAD - 60)
    ctl = controller(kube, prometheus, clock)
    kube.fail_next("PUT", "/horizontalpodautoscalers/web", status=500, times=2)
    ctl.run_cycle()
    assert hpa_min(kube) == 72  # two 500s, then the write landed: retried with backoff
    clock.now = t + 3600 + COOLDOWN + 60
    kube.fail_next("PUT", "/horizontalpodautoscalers/web", status=503, times=100)
    ctl.run_cycle()
    assert hpa_min(kube) == 72
    event = kube.get("peakscale.io/v1alpha1", "promotionevents", NS, "flash-sale")["status"]
    assert event["phase"] == "Cooling" and {c["type"]: c["status"] for c in event["conditions"]}["Restored"] == "False"
    policy = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["status"]
    assert {c["type"]: c["reason"] for c in policy["conditions"]}["Written"] == "WriteFailed"
    assert [e for e in fake_events(kube) if e["reason"] == "WriteFailed"]
    kube._faults.clear()
    clock.now += 60
    ctl.run_cycle()
    assert hpa_min(kube) == 3
    assert kube.get("peakscale.io/v1alpha1", "promotionevents", NS, "flash-sale")["status"]["phase"] == "Done"


def test_a_cycle_that_fails_as_a_whole_logs_one_line_and_readyz_turns_503(kube, prometheus, start, caplog):
    t = start + 3600
    seed(kube, event_start=t)
    ctl = controller(kube, prometheus, Clock(t - 1800), unready_after=2)
    assert ctl.run_guarded() is not None and ctl.telemetry.ready
    kube.fail_next("GET", "/scalingpolicies", status=500, times=100)
    caplog.clear()
    assert ctl.run_guarded() is None and ctl.telemetry.ready  # one failure: still ready
    assert ctl.run_guarded() is None and not ctl.telemetry.ready  # two in a row: not ready
    failures = [r for r in caplog.records if "cycle failed" in r.getMessage() and r.levelname == "ERROR"]
    assert len(failures) == 2 and all(r.exc_info is None for r in failures)  # one line each, no traceback
    assert "500" in failures[0].getMessage() or "InternalError" in failures[0].getMessage()
    kube._faults.clear()
    assert ctl.run_guarded() is not None and ctl.telemetry.ready


def test_a_calendar_file_raises_like_a_promotion_event_and_a_resource_of_its_name_wins(kube, prometheus, start, tmp_path):
    t = start + 3600
    seed(kube, event_start=t, extra_spec={"floor": "events-only"})
    with kube.lock:  # no PromotionEvent resources: the file alone
        del kube.objects[("peakscale.io/v1alpha1", "promotionevents", NS, "flash-sale")]
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text(
        "timezone: UTC\n"
        "events:\n"
        f"  - {{name: from-file, title: Night sale, start: '{iso(t)}', end: '{iso(t + 3600)}', kind: flash-sale, expectedPeak: 50000}}\n"
    )
    clock = Clock(t - LEAD - 60)
    ctl = controller(kube, prometheus, clock, calendar_file=str(calendar))
    ctl.run_cycle()
    assert hpa_min(kube) == 72  # ceil(50,000 / (1,000 x 0.7)), as from the resource
    assert "Night sale" in events_with(kube, "FloorRaised")[0]["message"]
    assert not [w for w in kube.writes() if "/promotionevents/" in w[1]], "a file entry has no status to write"
    # a PromotionEvent of the same name wins over the file's entry
    kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "PromotionEvent", "metadata": {"name": "from-file", "namespace": NS}, "spec": {"start": iso(t + 86400), "end": iso(t + 90000), "kind": "flash-sale"}})
    clock.now = t + 600  # inside the file entry's window, not the resource's
    ctl.run_cycle()
    assert hpa_min(kube) == 3
    # a file that does not read is one log line; the cycle goes on with the resources
    calendar.write_text("events: [unclosed\n")
    clock.now += 60
    report = ctl.run_cycle()
    assert report.leader and all(o.error is None for o in report.outcomes)
