"""Preflight against the real control plane and a real Prometheus: four faults, four FAILs; fixed, a pass.

The scenario: a promotion six hours ahead whose raise needs 15 replicas of the web tier, with an
HPA whose maxReplicas clips it, a ResourceQuota already nearly full, two nodes with room for five
more pods, and a policy whose forecast learns from fourteen days when Prometheus holds three.
The nodes are kwok's, of a pool of the test's own that the web tier selects; the quota's usage is
the real quota controller's; `peakscale preflight` runs as the SRE (the admin), the controller's
own preflight as the chart's ServiceAccount.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from kubernetes import client
from typer.testing import CliRunner

from autoscaler.cli import app
from autoscaler.controller.reconcile import Controller
from autoscaler.controller.model import ControllerOptions
from autoscaler.adapters.kube import Kube, now_micro
from autoscaler.controller.leader import lease_annotations
from autoscaler.adapters.prometheus import HistoryCache
from tests.cluster.controlplane import wait_for
from tests.cluster.objects import add_nodes, delete_nodes, unique
from tests.controller.world import QUERY, iso, policy_spec

CAPACITY, UTILIZATION, PEAK = 5000, 0.7, 50_000


@pytest.fixture
def pool(kube):
    name = unique("pf")
    yield name
    delete_nodes(kube.api, name)


#: a topology key of the test's own: the real zone label would engage the node lifecycle
#: controller's zone handling, which outlives the test's nodes and slows other tests' new nodes
ZONE = "peakscale.test/zone"


def seed(
    fake, *, event_start: float, hpa_max: int, quota_pods: str, nodes: int, history: str, pool: str, lease: bool = True,
    zones: int = 0, policy_max: int = 80, policy_labels: dict | None = None, hpa_labels: dict | None = None,
) -> None:  # fmt: skip
    """The web tier, its quota, PDB, policy and promotion; ``zones``: the nodes spread over that many
    zones and the pods required one per zone (anti-affinity)."""
    NS = fake.ns
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "nodeSelector": {"pool": pool},
            "containers": [{"name": "web", "image": "registry.invalid/web:1", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}],
        },
    }
    if zones:
        term = {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": ZONE}
        template["spec"]["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    names = add_nodes(fake.api, nodes, pool=pool, cpu="4", memory="16Gi")
    for i, node in enumerate(names if zones else []):
        client.CoreV1Api(fake.api).patch_node(node, {"metadata": {"labels": {ZONE: f"zone-{i % zones}"}}})
    # the quota first: admission charges each pod to it as the ReplicaSet creates it
    fake.put_object({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute", "namespace": NS}, "spec": {"hard": {"pods": quota_pods, "requests.cpu": "64"}}})
    fake.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS}, "spec": {"replicas": 3, "template": template}})
    fake.put_object(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": NS, "labels": hpa_labels or {}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": hpa_max},
        }
    )
    fake.put_object({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": NS}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    spec = policy_spec(metric={"query": QUERY, "capacityPerReplica": CAPACITY, "targetUtilization": UTILIZATION}, floor="events-only", forecast={"history": history, "step": "1m"}, maxReplicas=policy_max)
    del spec["cooldown"]  # the CRD's default
    fake.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "web", "namespace": NS, "labels": policy_labels or {"tier": "web"}}, "spec": spec})
    fake.put_object(
        {
            "apiVersion": "peakscale.io/v1alpha1",
            "kind": "PromotionEvent",
            "metadata": {"name": "double11", "namespace": NS},
            "spec": {"title": "11.11 KOL live", "start": iso(event_start), "end": iso(event_start + 3 * 3600), "kind": "double11", "expectedPeak": PEAK},
        }
    )
    if lease:
        fake.put_object(
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "peakscale-controller", "namespace": NS, "annotations": lease_annotations()},
                "spec": {"holderIdentity": "peakscale-0", "leaseDurationSeconds": 15, "renewTime": now_micro(time.time())},
            }
        )
    # the cluster settles: the web pods placed on the pool, the quota controller counting them
    core = client.CoreV1Api(fake.api)
    wait_for("3 web pods placed", lambda: len([p for p in core.list_namespaced_pod(NS).items if p.spec.node_name]) == 3, 60)
    wait_for("the quota's usage counted", lambda: (core.read_namespaced_resource_quota("compute", NS).status.used or {}).get("pods") == "3", 180)


def preflight(fake, prometheus, tmp_path, *extra):
    args = ["preflight", "--prometheus-url", prometheus.url, "--kubeconfig", str(fake.cluster.kubeconfig), "-n", fake.ns, "--lease-namespace", fake.ns, *extra]
    return CliRunner().invoke(app, args)


@pytest.fixture
def event_start():
    return float(int(time.time()) // 60 * 60 + 6 * 3600)


def test_four_faults_give_four_fails_each_naming_the_object_and_the_fix(kube, prometheus, tmp_path, event_start, pool):
    seed(kube, event_start=event_start, hpa_max=10, quota_pods="10", nodes=2, history="14d", pool=pool)
    result = preflight(kube, prometheus, tmp_path, "--event", "double11", "-o", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    fails = {c["check"]: c for c in report["checks"] if c["status"] == "FAIL"}
    assert set(fails) == {"hpa-max", "quota", "nodes", "prometheus"}, report["checks"]
    assert fails["hpa-max"]["object"] == f"HorizontalPodAutoscaler {kube.ns}/web" and "maxReplicas" in fails["hpa-max"]["fix"]
    assert "clips the planned floor of 15" in fails["hpa-max"]["message"]
    assert fails["quota"]["object"] == f"ResourceQuota {kube.ns}/compute" and "spec.hard.pods" in fails["quota"]["fix"]
    # 2 nodes x 4 cores, 3 pods running: room for 5 more, the raise adds 12: 7 cores, 14 GiB missing
    assert "room for 5 more pods" in fails["nodes"]["message"] and "7 cores and 14.0 GiB missing" in fails["nodes"]["message"]
    assert "nodeHeadroom" in fails["nodes"]["fix"]
    # Prometheus reaches back three days (and the hours since the backfill ends)
    assert re.search(r"holds 3\.\d days of the policy's query; its forecast learns from 14d", fails["prometheus"]["message"])
    assert "forecast.history" in fails["prometheus"]["fix"]
    assert all(c["fix"] for c in fails.values()) and all(c["event"] == "double11" and c["policy"] == f"{kube.ns}/web" for c in fails.values())
    # the table says the same, with the exit code
    table = preflight(kube, prometheus, tmp_path, "--event", "double11")
    assert table.exit_code == 1 and "4 FAIL" in table.stdout and "exit 1" in table.stdout


def test_a_raise_that_anti_affinity_or_the_policys_max_forbids_is_named_with_the_owners_fix(kube, prometheus, tmp_path, event_start, pool):
    helm = {"app.kubernetes.io/managed-by": "Helm"}
    seed(kube, event_start=event_start, hpa_max=10, quota_pods="50", nodes=6, history="2d", pool=pool, zones=3, policy_max=12, policy_labels={"peakscale.io/tier": "edge"}, hpa_labels=helm)
    result = preflight(kube, prometheus, tmp_path, "--event", "double11", "-o", "json")
    assert result.exit_code == 1, result.output
    checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
    # one pod per zone, three zones: the planned 12 cannot happen, though nodes have room
    spread = checks["spread"]
    assert spread["status"] == "FAIL" and "required pod anti-affinity on peakscale.test/zone: at most 3 pods fit (zone-0, zone-1, zone-2), the plan needs 12" in spread["message"]
    assert checks["nodes"]["status"] == "PASS"
    # what plan reports as capped by maxReplicas, preflight says too, with the stack's config as the fix
    capped = checks["policy-max"]
    assert capped["status"] == "WARN" and capped["message"] == "maxReplicas 12 caps the plan at 12: the forecast needs 15"
    assert capped["fix"].startswith("pulumi config set --path peakscale:edge.scaling.maxReplicas 15")
    # an HPA Helm owns is fixed in the release's values, never by a patch the next upgrade reverts
    assert checks["hpa-max"]["status"] == "FAIL" and "helm upgrade" in checks["hpa-max"]["fix"] and "kubectl" not in checks["hpa-max"]["fix"]


def test_the_fixed_scenario_passes(kube, prometheus, tmp_path, event_start, pool):
    seed(kube, event_start=event_start, hpa_max=100, quota_pods="50", nodes=5, history="2d", pool=pool)
    result = preflight(kube, prometheus, tmp_path, "--within", "24h", "-o", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["events"] == ["double11"] and report["worst"] == "PASS"
    assert {c["check"] for c in report["checks"]} >= {"target", "hpa-max", "quota", "nodes", "pdb", "prometheus", "controller"}


def test_warnings_alone_exit_3_and_a_missing_controller_fails(kube, prometheus, tmp_path, event_start, pool):
    seed(kube, event_start=event_start, hpa_max=100, quota_pods="50", nodes=5, history="2d", pool=pool, lease=False)
    result = preflight(kube, prometheus, tmp_path, "--event", "double11", "-o", "json")
    fails = [c for c in json.loads(result.stdout)["checks"] if c["status"] == "FAIL"]
    assert result.exit_code == 1 and [c["check"] for c in fails] == ["controller"], fails
    # a controller that does not know a field the policy sets
    stale = dict(lease_annotations())
    stale["peakscale.io/policy-fields"] = ",".join(f for f in stale["peakscale.io/policy-fields"].split(",") if f != "floor")
    kube.put_object(
        {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "peakscale-controller", "namespace": kube.ns, "annotations": stale},
            "spec": {"holderIdentity": "peakscale-0", "leaseDurationSeconds": 15, "renewTime": now_micro(time.time())},
        }
    )  # fmt: skip
    result = preflight(kube, prometheus, tmp_path, "--event", "double11", "-o", "json")
    fails = [c for c in json.loads(result.stdout)["checks"] if c["status"] == "FAIL"]
    assert [c["check"] for c in fails] == ["controller"] and "does not know floor" in fails[0]["message"]
    # node headroom on, nodes short: a warning (the placeholders will ask for the nodes), exit 3
    kube.put_object({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "peakscale-controller", "namespace": kube.ns, "annotations": lease_annotations()}, "spec": {"holderIdentity": "peakscale-0", "leaseDurationSeconds": 15, "renewTime": now_micro(time.time())}})
    policy = kube.get("peakscale.io/v1alpha1", "scalingpolicies", kube.ns, "web")
    policy["spec"]["nodeHeadroom"] = {"enabled": True, "leadTime": "5m"}
    kube.replace(policy)
    # the chart made the PriorityClass; three of the five nodes go
    for n in range(2, 5):
        client.CoreV1Api(kube.api).delete_node(f"{pool}-{n}")
    wait_for("two nodes left", lambda: len(client.CoreV1Api(kube.api).list_node(label_selector=f"pool={pool}").items) == 2, 60)
    result = preflight(kube, prometheus, tmp_path, "--event", "double11", "-o", "json")
    statuses = {c["check"]: c["status"] for c in json.loads(result.stdout)["checks"]}
    assert result.exit_code == 3 and statuses["nodes"] == "WARN" and statuses["priority-class"] == "PASS", result.stdout


def test_bad_input_is_one_line_and_exit_2(kube, prometheus, tmp_path, event_start, pool):
    seed(kube, event_start=event_start, hpa_max=100, quota_pods="50", nodes=5, history="2d", pool=pool)
    result = preflight(kube, prometheus, tmp_path, "--event", "no-such-promo")
    assert result.exit_code == 2 and "no PromotionEvent named 'no-such-promo'" in result.output and "double11" in result.output
    result = preflight(kube, prometheus, tmp_path, "--within", "soon")
    assert result.exit_code == 2 and "--within" in result.output


def test_the_controller_reports_preflight_a_day_ahead(kube, prometheus, event_start, history_window, pool):
    seed(kube, event_start=event_start, hpa_max=10, quota_pods="10", nodes=2, history="14d", pool=pool)
    clock = type("Clock", (), {"__call__": lambda self: self.now})()
    clock.now = float(history_window[1] + 60)  # fresh metrics; the promotion starts within the day
    opts = ControllerOptions(identity="peakscale-0", namespaces=[kube.ns], interval_s=30, lease_namespace=kube.ns)
    ctl = Controller(Kube(kube.controller_api()), HistoryCache(prometheus.url, timeout_s=5), opts, clock=clock)
    ctl.run_cycle()
    status = kube.get("peakscale.io/v1alpha1", "promotionevents", kube.ns, "double11")["status"]
    preflight_condition = next(c for c in status["conditions"] if c["type"] == "Preflight")
    assert preflight_condition["status"] == "False" and preflight_condition["reason"] == "Failed"
    assert f"HorizontalPodAutoscaler {kube.ns}/web" in preflight_condition["message"]
    warnings = kube.events("PreflightFailed")
    # one Warning Event per FAIL (the controller's own Lease is fresh: it holds it)
    assert len(warnings) == 4 and all(e["type"] == "Warning" and e["involvedObject"]["name"] == "double11" for e in warnings)
    ctl.run_cycle()
    assert len(kube.events("PreflightFailed")) == 4, "not repeated every cycle"


def test_the_controllers_preflight_plans_with_its_calendar_file_as_its_cycles_do(kube, prometheus, event_start, history_window, tmp_path, pool):
    """A --calendar entry selects policies in every namespace, for the cycle and for preflight alike:
    a bigger sale from the file at the time of double11 makes the raise one the quota and the nodes
    cannot hold."""
    seed(kube, event_start=event_start, hpa_max=100, quota_pods="50", nodes=5, history="2d", pool=pool)
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text("events: []\n")
    clock = type("Clock", (), {"__call__": lambda self: self.now})()
    clock.now = float(history_window[1] + 60)

    def preflight_condition(calendar_file):
        opts = ControllerOptions(identity="peakscale-0", namespaces=[kube.ns], interval_s=30, lease_namespace=kube.ns, calendar_file=calendar_file)
        Controller(Kube(kube.controller_api()), HistoryCache(prometheus.url, timeout_s=5), opts, clock=clock).run_cycle()
        status = kube.get("peakscale.io/v1alpha1", "promotionevents", kube.ns, "double11")["status"]
        return next(c for c in status["conditions"] if c["type"] == "Preflight")

    assert preflight_condition(str(calendar))["reason"] == "Passed"
    calendar.write_text(f"events:\n  - {{name: mega-sale, start: '{iso(event_start)}', end: '{iso(event_start + 3 * 3600)}', kind: flash-sale, expectedPeak: 400000}}\n")
    failed = preflight_condition(str(calendar))
    assert failed["reason"] == "Failed" and f"ResourceQuota {kube.ns}/compute" in failed["message"], failed["message"]
