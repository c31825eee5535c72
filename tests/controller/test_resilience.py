"""The controller's reliability rules on the real control plane: Prometheus down, two instances and
one real Lease, a restart mid-event, bad objects beside good ones, a calendar file, the command."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime, UTC

import pytest
from kubernetes import client

from autoscaler.adapters.kube import ORIGINAL_MIN, Kube
from autoscaler.adapters.prometheus import HistoryCache
from autoscaler.controller.model import ControllerOptions
from autoscaler.controller.reconcile import Controller
from autoscaler.controller.telemetry import Telemetry, serve
from tests.cluster.controlplane import free_port
from tests.conftest import BASE_DEMAND
from tests.controller.world import COOLDOWN, LEAD, Clock, assert_web_acted_each_cycle, conditions, controller, hpa, hpa_min, iso, policy_spec, raised, seed, status_of


def test_prometheus_killed_mid_run_leaves_floors_untouched(kube, own_prometheus, start):
    ctl, clock, t = raised(kube, own_prometheus, start)
    own_prometheus.stop()
    for minutes in range(0, 120, 10):  # well past the end and the cool-down
        clock.now = t + 3600 + minutes * 60
        ctl.run_cycle()
        assert hpa_min(kube) == 72
    metrics = conditions(status_of(kube, "scalingpolicies", "web"))["MetricsAvailable"]
    assert metrics["status"] == "False" and "holding capacity" in metrics["message"]
    assert len(kube.events("MetricsUnavailable")) == 1  # once per outage, not every cycle


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
    metrics = conditions(status_of(kube, "scalingpolicies", "web"))["MetricsAvailable"]
    assert metrics["status"] == "False" and metrics["reason"] == "LastKnownLevel"
    assert "Flash sale 20:00" in metrics["message"] and "last known level" in metrics["message"]


def test_second_instance_writes_nothing_while_first_holds_the_lease(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    clock = Clock(t - 300)
    first = controller(kube, prometheus, clock, identity="first")
    second = controller(kube, prometheus, clock, identity="second")
    assert first.run_cycle().leader
    assert not second.run_cycle().leader
    clock.now += 10  # first renews within the lease duration
    assert first.run_cycle().leader
    assert kube.writes("second") == []
    # first stops renewing; second looks every 2 s (its retry period) and takes over once it has
    # seen the same record for a whole lease duration (15 s), by its own clock
    taken_at = None
    for _ in range(12):
        clock.now += 2
        if second.run_cycle().leader:
            taken_at = clock.now
            break
    assert taken_at is not None and 15 <= taken_at - (t - 300 + 10) <= 15 + 2 + 2
    lease = kube.get("coordination.k8s.io/v1", "leases", kube.ns, "peakscale-controller")
    assert lease["spec"]["holderIdentity"] == "second" and lease["spec"]["leaseTransitions"] == 1
    assert not first.run_cycle().leader


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


def test_bad_objects_the_api_server_accepts_get_a_condition_and_an_event_while_a_good_policy_is_acted_on(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    for name, annotation in (("stepless", None), ("annotated", "three")):
        kube.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {"replicas": 3}})
        kube.put_object(hpa(kube.ns, name, annotations={ORIGINAL_MIN: annotation} if annotation else None))
        spec = policy_spec(targetRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": name})
        if name == "stepless":
            spec["forecast"] = {"history": "2d", "step": "0s"}  # the CRD's pattern accepts it
        kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": name}, "spec": spec})
    # valid field by field, inconsistent as a whole: the API server takes both
    inverted = policy_spec(targetRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "annotated"}, minReplicas=9, maxReplicas=5)
    kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "inverted"}, "spec": inverted})
    kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "PromotionEvent", "metadata": {"name": "instant"}, "spec": {"start": iso(t), "end": iso(t), "kind": "flash-sale"}})
    clock = Clock(t - LEAD - 60)
    ctl = controller(kube, prometheus, clock)
    assert_web_acted_each_cycle(ctl, clock, lambda: hpa_min(kube))
    stepless = status_of(kube, "scalingpolicies", "stepless")
    assert conditions(stepless)["Ready"]["reason"] == "InvalidSpec" and "forecast.step" in stepless["reason"]
    annotated = status_of(kube, "scalingpolicies", "annotated")
    assert conditions(annotated)["Ready"]["reason"] == "InvalidSpec" and "three" in annotated["reason"]
    assert hpa_min(kube, "annotated") == 3
    warned = {e["involvedObject"]["name"] for e in kube.events("InvalidSpec") if e["type"] == "Warning"}
    assert {"stepless", "annotated"} <= warned
    assert len([e for e in kube.events() if e["involvedObject"]["name"] == "stepless"]) == 1  # once, not every cycle
    inverted_status = status_of(kube, "scalingpolicies", "inverted")
    assert conditions(inverted_status)["Ready"]["reason"] == "InvalidSpec" and "maxReplicas" in inverted_status["reason"]
    instant = status_of(kube, "promotionevents", "instant")
    assert any(c["status"] == "False" and c["reason"] == "InvalidSpec" and "end is not after start" in c["message"] for c in instant["conditions"]), instant


def test_the_api_server_refuses_what_the_crd_forbids_naming_each_field(kube):
    with pytest.raises(client.ApiException) as refused:
        kube.put_object(
            {
                "apiVersion": "peakscale.io/v1alpha1",
                "kind": "ScalingPolicy",
                "metadata": {"name": "broken"},
                "spec": {"targetRef": {"kind": "Deployment", "name": "web"}, "metric": {"query": "up", "capacityPerReplica": -5}, "leadTime": "soon", "maxReplicas": 5},
            }
        )
    assert refused.value.status == 422
    fields = {c["field"] for c in json.loads(refused.value.body)["details"]["causes"]}
    assert fields == {"spec.metric.capacityPerReplica", "spec.leadTime"}
    with pytest.raises(client.ApiException) as naive:
        kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "PromotionEvent", "metadata": {"name": "naive"}, "spec": {"start": "2026-11-11T20:00:00", "end": "2026-11-11T21:00:00", "kind": "x"}})
    assert naive.value.status == 422 and "spec.start" in naive.value.body and "date-time" in naive.value.body


def test_a_calendar_file_raises_like_a_promotion_event_and_a_resource_of_its_name_wins(kube, prometheus, start, tmp_path):
    t = start + 3600
    seed(kube, event_start=t, extra_spec={"floor": "events-only"})
    kube.delete("peakscale.io/v1alpha1", "promotionevents", kube.ns, "flash-sale")  # the file alone
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
    assert "Night sale" in kube.events("FloorRaised")[0]["message"]
    assert not [w for w in kube.writes() if "/promotionevents/" in w[1]], "a file entry has no status to write"
    # a PromotionEvent of the same name wins over the file's entry
    kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "PromotionEvent", "metadata": {"name": "from-file"}, "spec": {"start": iso(t + 86400), "end": iso(t + 90000), "kind": "flash-sale"}})
    clock.now = t + 600  # inside the file entry's window, not the resource's
    ctl.run_cycle()
    assert hpa_min(kube) == 3
    # a file that does not read is one log line; the cycle goes on with the resources
    calendar.write_text("events: [unclosed\n")
    clock.now += 60
    report = ctl.run_cycle()
    assert report.leader and all(o.error is None for o in report.outcomes)


def test_metrics_health_and_readiness_endpoints(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    telemetry = Telemetry()
    port = free_port()
    server = serve(telemetry, port, interval_s=60, host="127.0.0.1")
    try:
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
        opts = ControllerOptions(identity="m", namespaces=[kube.ns], lease_namespace=kube.ns)
        Controller(Kube(kube.controller_api("m")), HistoryCache(prometheus.url), opts, clock=Clock(t), telemetry=telemetry).run_cycle()
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert f'peakscale_planned_replicas{{namespace="{kube.ns}",policy="web"}} 72.0' in body
        assert f'peakscale_floor_replicas{{namespace="{kube.ns}",policy="web"}} 72.0' in body
        assert "peakscale_cycle_duration_seconds_count 1.0" in body
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).status == 200
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_controller_command_runs_a_cycle_against_the_cluster(kube, prometheus, tmp_path):
    # real time: the backfilled data ends three hours ago, so the metrics are stale and the
    # controller must hold; the command still reports and exits 0
    seed(kube, event_start=datetime.now(UTC).timestamp() + 300)
    kubeconfig = kube.cluster.token_kubeconfig(tmp_path / "kc", kube.token())
    done = subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "controller", "--prometheus-url", prometheus.url, "--kubeconfig", str(kubeconfig), "-n", kube.ns, "--once", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "POD_NAMESPACE": kube.ns},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["leader"] and report["policies"] == 1
    # every outcome says why, in words (without fresh metrics the event's raise still goes on)
    [outcome] = report["outcomes"]
    assert outcome["planned"] == 72 and outcome["phase"] == "PreScaling" and outcome["why"], outcome
    assert hpa_min(kube) == 3
    assert conditions(status_of(kube, "scalingpolicies", "web"))["MetricsAvailable"]["status"] == "False"


def test_a_request_the_charts_rbac_does_not_grant_is_named_by_verb_and_resource(cluster, namespace, prometheus, start):
    """The RBAC check every controller test ends with can fail: a controller told to watch a
    namespace the chart gave it no Role in is refused, and the refusal is named."""
    from tests.cluster.facade import ClusterKube

    kube = ClusterKube(cluster, namespace)
    t = start + 3600
    seed(kube, event_start=t)
    opts = ControllerOptions(identity="stray", namespaces=[kube.ns, "default"], interval_s=60, lease_namespace=kube.ns)
    Controller(Kube(kube.controller_api("stray")), HistoryCache(prometheus.url, timeout_s=5), opts, clock=Clock(t - LEAD - 60)).run_guarded()  # the cycle fails as a whole: one log line
    assert "list peakscale.io/scalingpolicies in default" in kube.refused(), kube.refused()


class Hung:
    """A Prometheus that accepts connections on its port and never answers."""

    def __init__(self, port: int) -> None:
        import socket
        import threading

        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(64)
        self.held: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.listener.accept())
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for conn, _ in self.held:
            conn.close()


def test_a_prometheus_that_never_answers_does_not_delay_the_raise(kube, own_prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, extra_spec={"floor": "events-only"})
    clock = Clock(t - 1800)
    # each query may wait 20 s; the cycle waits for its histories 2 s at most
    ctl = Controller(
        Kube(kube.controller_api("a")), HistoryCache(own_prometheus.url, timeout_s=20),
        ControllerOptions(identity="a", namespaces=[kube.ns], interval_s=60, lease_namespace=kube.ns, fetch_deadline_s=2), clock=clock,
    )  # fmt: skip
    ctl.run_cycle()  # the history is cached
    own_prometheus.stop()
    hung = Hung(own_prometheus.port)
    try:
        clock.now = t - LEAD - 60  # the window opens while Prometheus hangs
        report = ctl.run_cycle()
        assert hpa_min(kube) == 72 and report.leader  # raised this cycle, from the last known level
        metrics = conditions(status_of(kube, "scalingpolicies", "web"))["MetricsAvailable"]
        assert metrics["reason"] == "LastKnownLevel" and "within 2 s (the cycle's deadline)" in metrics["message"], metrics
        assert ctl.telemetry.heartbeat_s is not None  # the loop is alive: /healthz says so
    finally:
        hung.close()


def test_a_restart_while_prometheus_is_down_raises_from_the_level_kept_in_status(kube, own_prometheus, start):
    t = start + 3600
    # a guess relative to the usual load: without a level, nothing to size the raise from
    seed(kube, event_start=t, extra_spec={"floor": "events-only"})
    event = kube.get("peakscale.io/v1alpha1", "promotionevents", kube.ns, "flash-sale")
    event["spec"].pop("expectedPeak")
    event["spec"]["expectedMultiplier"] = 5
    kube.replace(event)
    clock = Clock(t - 1800)
    controller(kube, own_prometheus, clock, identity="before").run_cycle()
    kept = status_of(kube, "scalingpolicies", "web")
    assert 0.7 * BASE_DEMAND < kept["lastKnownLevel"] < 1.3 * BASE_DEMAND and kept["lastKnownAtSeconds"] <= t - 1800
    own_prometheus.stop()
    clock.now = t - LEAD - 60  # a new instance starts with nothing cached, as the window opens
    restarted = controller(kube, own_prometheus, clock, identity="after")
    assert not restarted.run_cycle().leader  # it sees the old Lease, and waits a lease duration
    clock.now += 16
    assert restarted.run_cycle().leader
    floor = hpa_min(kube)
    assert floor >= math.ceil(5 * 0.7 * BASE_DEMAND / 700), floor  # x5 the kept level, at 700 per replica
    assert conditions(status_of(kube, "scalingpolicies", "web"))["MetricsAvailable"]["reason"] == "LastKnownLevel"


def test_a_standby_is_ready_while_it_can_take_over(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    clock = Clock(t - 1800)
    leader = controller(kube, prometheus, clock, identity="leader")
    standby = controller(kube, prometheus, clock, identity="standby")
    assert leader.run_cycle().leader and leader.telemetry.ready
    assert not standby.run_cycle().leader
    assert standby.telemetry.ready  # it reads the Lease: a rolling update can move on
