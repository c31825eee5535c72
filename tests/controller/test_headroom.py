"""Node headroom on the real control plane: the real scheduler places the placeholder pods on
spare nodes and preempts them when the raised pods arrive.

A promotion whose raise needs more pods than the nodes hold: the placeholder Deployment appears at
``start - leadTime - nodeHeadroom.leadTime - interval``, sized to the planned replicas less the
ready ones. Its pods (negative priority) wait for nodes; the test adds nodes for them as a cluster
autoscaler would. At the raise the real HPA controller scales the target to the floor and the real
scheduler evicts placeholders to make room: no raised pod waits for a node. As the raised pods
pass their readiness probes the placeholder shrinks; after the event it is gone.

Pods annotated ``peakscale.test/hold-ready`` are bound but not ready until the test removes the
annotation (kwok's pod-ready stage waits for that): the readiness probe of a real kubelet.
"""

from __future__ import annotations

import math

from kubernetes import client

from autoscaler.controller.headroom import A_PLANNED, PAUSE_IMAGE, placeholder_name
from tests.cluster.controlplane import wait_for
from tests.cluster.objects import delete_nodes, unique
from tests.controller.world import QUERY, Clock, controller, hpa, hpa_min, iso, policy_spec, status_of

LEAD, NODE_LEAD, INTERVAL, COOLDOWN = 600, 300, 60, 1200
CAPACITY, UTILIZATION, PEAK = 5000, 0.7, 50_000
POD = {"cpu": "1", "memory": "2Gi"}
HOLD = "peakscale.test/hold-ready"


def seed(kube, event_start: float, pool: str) -> None:
    template = {
        "metadata": {"labels": {"app": "web"}, "annotations": {HOLD: "true"}},
        "spec": {
            "nodeSelector": {"pool": pool},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": pool, "effect": "NoSchedule"}],
            "containers": [{"name": "web", "image": "registry.invalid/web:1", "resources": {"requests": POD}}],
        },
    }
    kube.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3, "template": template}})
    kube.put_object(hpa(kube.ns, "web"))
    metric = {"query": QUERY, "capacityPerReplica": CAPACITY, "targetUtilization": UTILIZATION}
    spec = policy_spec(metric=metric, floor="events-only", nodeHeadroom={"enabled": True, "leadTime": "5m"})
    kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "web", "labels": {"tier": "web"}}, "spec": spec})
    kube.put_object(
        {
            "apiVersion": "peakscale.io/v1alpha1",
            "kind": "PromotionEvent",
            "metadata": {"name": "flash-sale"},
            "spec": {"title": "Flash sale", "start": iso(event_start), "end": iso(event_start + 3600), "kind": "flash-sale", "expectedPeak": PEAK},
        }
    )


def live_nodes(kube, pool: str, count: int, first: int = 0) -> None:
    """Nodes of the test's pool, tainted for it: room for 4 pods of the web tier each."""
    taint = [{"key": "dedicated", "value": pool, "effect": "NoSchedule"}]
    for i in range(first, first + count):
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": f"{pool}-{i}", "labels": {"pool": pool, "kubernetes.io/hostname": f"{pool}-{i}"}, "annotations": {"kwok.x-k8s.io/node": "fake"}},
            "spec": {"taints": taint},
            "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}, "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"}},
        }
        client.CoreV1Api(kube.api).create_node(node)


def pods(kube, prefix: str) -> list[client.V1Pod]:
    return [p for p in client.CoreV1Api(kube.api).list_namespaced_pod(kube.ns).items if p.metadata.name.startswith(prefix) and not p.metadata.deletion_timestamp]


def placeholder(kube) -> dict | None:
    return kube.get("apps/v1", "deployments", kube.ns, placeholder_name(kube.ns, "web"))


def release_ready(kube, count: int) -> int:
    """Let ``count`` bound web pods pass their readiness probe (kwok then marks them Ready)."""
    core = client.CoreV1Api(kube.api)
    held = sorted((p for p in pods(kube, "web-") if p.spec.node_name and HOLD in (p.metadata.annotations or {})), key=lambda p: p.metadata.name)
    for pod in held[:count]:
        core.patch_namespaced_pod(pod.metadata.name, kube.ns, {"metadata": {"annotations": {HOLD: None}}})
    return min(count, len(held))


def test_placeholders_hold_node_room_ahead_of_the_raise_and_are_preempted_by_the_raised_pods(kube, prometheus, history_window):
    start = float(history_window[1] - 6 * 3600) // INTERVAL * INTERVAL
    event_start = start + 3 * 3600
    pool = unique("live")
    live_nodes(kube, pool, 2)  # room for 8 pods of the web tier; the raise needs more
    try:
        seed(kube, event_start, pool)
        wait_for("3 web pods bound", lambda: len([p for p in pods(kube, "web-") if p.spec.node_name]) == 3, 60)
        release_ready(kube, 3)
        wait_for("3 web pods ready", lambda: (kube.get("apps/v1", "deployments", kube.ns, "web")["status"].get("readyReplicas") or 0) == 3, 60)
        opens = event_start - LEAD - NODE_LEAD - INTERVAL
        clock = Clock(opens - INTERVAL)
        ctl = controller(kube, prometheus, clock)
        ctl.run_cycle()
        assert placeholder(kube) is None, "no placeholder before the documented instant"
        clock.now = opens
        ctl.run_cycle()
        holder = placeholder(kube)
        assert holder is not None, "the placeholder appears at start - lead - nodeLead - interval"
        planned = status_of(kube, "scalingpolicies", "web")["headroom"]["plannedReplicas"]
        # sized to the plan (the expected peak at the target utilization) less the 3 ready pods
        assert math.ceil(PEAK / (CAPACITY * UTILIZATION)) <= planned <= 80
        assert holder["spec"]["replicas"] == planned - 3 and holder["metadata"]["annotations"][A_PLANNED] == str(planned)
        assert hpa_min(kube) == 3  # the floor comes a node lead time later
        pod = holder["spec"]["template"]["spec"]
        assert pod["containers"][0]["image"] == PAUSE_IMAGE and pod["nodeSelector"] == {"pool": pool}
        assert pod["priorityClassName"] == "peakscale-headroom"

        # the real scheduler: what fits on the 2 nodes is placed, the rest waits; nodes are added
        # for the waiting ones as a cluster autoscaler would, until every placeholder is placed
        name = placeholder_name(kube.ns, "web")
        wait_for("the placeholder's pods", lambda: len(pods(kube, name)) == planned - 3, 60)
        wait_for("5 placeholders placed beside the web pods", lambda: len([p for p in pods(kube, name) if p.spec.node_name]) == 5, 60)
        extra = math.ceil((planned - 3 - 5) / 4)
        live_nodes(kube, pool, extra, first=2)
        wait_for("every placeholder placed", lambda: all(p.spec.node_name for p in pods(kube, name)), 120)
        assert all(p.spec.priority == -10 for p in pods(kube, name))

        # the raise: the HPA controller scales web to the floor; the scheduler evicts placeholders
        # to place every raised pod at once, none waits for a node
        clock.now = event_start - LEAD - INTERVAL
        ctl.run_cycle()
        floor = hpa_min(kube)
        assert floor >= planned - 1
        wait_for(f"{floor} web pods, all placed", lambda: len(web := pods(kube, "web-")) == floor and all(p.spec.node_name for p in web), 180)
        assert len([p for p in pods(kube, name) if p.spec.node_name]) < planned - 3, "the raised pods took the placeholders' room"

        # as raised pods become ready, the placeholder shrinks by as many
        sizes = []
        for batch in (4, 4, floor):
            release_ready(kube, batch)
            ready_now = min(floor, 3 + sum([4, 4, floor][: len(sizes) + 1]))
            wait_for(f"{ready_now} web pods ready", lambda n=ready_now: (kube.get("apps/v1", "deployments", kube.ns, "web")["status"].get("readyReplicas") or 0) >= n, 120)
            clock.now += INTERVAL
            ctl.run_cycle()
            ready = kube.get("apps/v1", "deployments", kube.ns, "web")["status"]["readyReplicas"]
            want = status_of(kube, "scalingpolicies", "web")["headroom"]["plannedReplicas"]
            size = placeholder(kube)["spec"]["replicas"]
            assert size == max(0, want - ready)
            sizes.append(size)
        assert sizes[0] > sizes[1] > sizes[2] == 0

        # after the event and its cool-down: the placeholder is gone, its pods with it
        clock.now = event_start + 3600 + COOLDOWN
        ctl.run_cycle()
        assert placeholder(kube) is None
        wait_for("the placeholder's pods gone", lambda: pods(kube, name) == [], 120)
        assert kube.events("HeadroomCreated") and kube.events("HeadroomDeleted")
    finally:
        delete_nodes(kube.api, pool)


def test_a_placeholder_whose_policy_is_gone_is_deleted(kube, prometheus, history_window):
    start = float(history_window[1] - 6 * 3600) // INTERVAL * INTERVAL
    event_start = start + 3 * 3600
    seed(kube, event_start, unique("nowhere"))
    clock = Clock(event_start - LEAD - NODE_LEAD)
    ctl = controller(kube, prometheus, clock)
    ctl.run_cycle()
    assert placeholder(kube) is not None
    policy = kube.get("peakscale.io/v1alpha1", "scalingpolicies", kube.ns, "web")
    policy["metadata"]["finalizers"] = []  # gone at once, as a policy without a finalizer goes
    kube.replace(policy)
    kube.delete("peakscale.io/v1alpha1", "scalingpolicies", kube.ns, "web")
    wait_for("the policy gone", lambda: kube.get("peakscale.io/v1alpha1", "scalingpolicies", kube.ns, "web") is None, 30)
    clock.now += INTERVAL
    ctl.run_cycle()
    assert placeholder(kube) is None


def test_dry_run_says_what_it_would_do_and_creates_nothing(kube, prometheus, history_window):
    start = float(history_window[1] - 6 * 3600) // INTERVAL * INTERVAL
    event_start = start + 3 * 3600
    seed(kube, event_start, unique("nowhere"))
    ctl = controller(kube, prometheus, Clock(event_start - LEAD - NODE_LEAD), dry_run=True)
    ctl.run_cycle()
    assert placeholder(kube) is None
    assert any("would create headroom placeholder" in e["message"] for e in kube.events("DryRun"))
