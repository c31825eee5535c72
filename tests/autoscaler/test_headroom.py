"""Node headroom in the controller: the placeholder Deployment, from the API double's side.

A promotion whose raise needs more pods than the nodes hold: the placeholder appears at
``start - leadTime - nodeHeadroom.leadTime - interval``, sized to the planned replicas less the
ready ones; the cluster adds nodes for its pending pods; at the raise the real pods preempt the
placeholders; as they become ready the placeholder shrinks; after the event it is gone. A restart
mid-event changes nothing.
"""

from __future__ import annotations

import math

import pytest

from autoscaler.controller.reconcile import Controller
from autoscaler.controller.base import ControllerOptions
from autoscaler.controller.headroom import A_PLANNED, PAUSE_IMAGE, placeholder_name
from autoscaler.adapters.kube import Kube
from autoscaler.adapters.prometheus import HistoryCache
from tests.autoscaler.test_controller_faults import NS, api_for, events_with, iso
from tests.fakes.kube import is_ready

HEADROOM_NS = "peakscale-system"
LEAD, NODE_LEAD, INTERVAL, COOLDOWN = 600, 300, 60, 1200
CAPACITY, UTILIZATION, PEAK = 5000, 0.7, 50_000
POD = {"cpu": "1", "memory": "2Gi"}
NODE_CPU, NODE_MEM = "4", "16Gi"


def seed(fake, event_start: float) -> None:
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "nodeSelector": {"pool": "live"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "live", "effect": "NoSchedule"}],
            "containers": [{"name": "web", "image": "web:1", "resources": {"requests": POD}}],
        },
    }
    fake.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS}, "spec": {"replicas": 3, "template": template}})
    fake.put_object(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": 100},
        }
    )
    fake.put_object({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "peakscale-headroom"}, "value": -10, "preemptionPolicy": "Never"})
    spec = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "metric": {"query": 'sum(shop_demand{app="web"})', "capacityPerReplica": CAPACITY, "targetUtilization": UTILIZATION},
        "leadTime": "10m",
        "minReplicas": 3,
        "maxReplicas": 80,
        "floor": "events-only",
        "cooldown": "20m",
        "forecast": {"history": "2d", "step": "1m"},
        "nodeHeadroom": {"enabled": True, "leadTime": "5m"},
    }
    fake.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "web", "namespace": NS, "labels": {"tier": "web"}}, "spec": spec})
    fake.put_object(
        {
            "apiVersion": "peakscale.io/v1alpha1",
            "kind": "PromotionEvent",
            "metadata": {"name": "flash-sale", "namespace": NS},
            "spec": {"title": "Flash sale", "start": iso(event_start), "end": iso(event_start + 3600), "kind": "flash-sale", "expectedPeak": PEAK},
        }
    )
    # two nodes of the live pool: room for 8 pods of the web tier, the raise needs more
    for n in range(2):
        fake.add_node(f"live-{n}", NODE_CPU, NODE_MEM, labels={"pool": "live"}, taints=[{"key": "dedicated", "value": "live", "effect": "NoSchedule"}])
    fake.add_node("system-0", "8", "32Gi", labels={"pool": "system"})
    fake.reconcile()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now


def make(fake, prometheus, clock) -> Controller:
    opts = ControllerOptions(identity="a", namespaces=[NS], interval_s=INTERVAL, lease_namespace=NS, headroom_namespace=HEADROOM_NS)
    return Controller(Kube(api_for(fake)), HistoryCache(prometheus.url, timeout_s=5), opts, clock=clock)


def placeholder(fake) -> dict | None:
    return fake.get("apps/v1", "deployments", HEADROOM_NS, placeholder_name(NS, "web"))


def grow_nodes(fake) -> int:
    """The cluster autoscaler: a node of the live pool for pending pods, until none is pending."""
    added = 0
    while any(not p["spec"].get("nodeName") for p in fake.pods()):
        fake.add_node(f"live-new-{added}", NODE_CPU, NODE_MEM, labels={"pool": "live"}, taints=[{"key": "dedicated", "value": "live", "effect": "NoSchedule"}])
        fake.reconcile()
        added += 1
    return added


@pytest.fixture
def start(history_window):
    return float(history_window[1] - 6 * 3600) // INTERVAL * INTERVAL


def test_placeholders_hold_node_room_ahead_of_the_raise_and_follow_the_ready_pods(kube, prometheus, start):
    event_start = start + 3 * 3600
    seed(kube, event_start)
    opens = event_start - LEAD - NODE_LEAD - INTERVAL
    clock = Clock(opens - 2 * INTERVAL)
    ctl = make(kube, prometheus, clock)
    for _ in range(2):
        ctl.run_cycle()
        assert placeholder(kube) is None, "no placeholder before the documented instant"
        clock.now += INTERVAL
    assert clock.now == opens
    ctl.run_cycle()
    holder = placeholder(kube)
    assert holder is not None, "the placeholder appears at start - lead - nodeLead - interval"
    status = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["status"]
    planned = status["headroom"]["plannedReplicas"]
    # sized to the plan (the expected peak at the target utilization) less the 3 ready pods
    assert planned >= math.ceil(PEAK / (CAPACITY * UTILIZATION)) and planned <= 80
    assert holder["spec"]["replicas"] == planned - 3 == status["headroom"]["placeholders"]
    assert holder["metadata"]["annotations"][A_PLANNED] == str(planned)
    # the floor is not raised yet: the headroom comes a node lead time before it
    assert kube.get("autoscaling/v2", "horizontalpodautoscalers", NS, "web")["spec"]["minReplicas"] == 3
    # the pods fit the real ones: requests, nodeSelector, tolerations; negative priority
    pod = holder["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["requests"] == {"cpu": "1000m", "memory": str(2 * 1024**3)}
    assert pod["containers"][0]["image"] == PAUSE_IMAGE and "@sha256:" in PAUSE_IMAGE
    assert pod["nodeSelector"] == {"pool": "live"} and pod["tolerations"][0]["key"] == "dedicated"
    assert pod["priorityClassName"] == "peakscale-headroom"
    assert events_with(kube, "HeadroomCreated")

    # the cluster: placeholders that do not fit wait; the autoscaler adds nodes for them
    kube.reconcile()
    placeholders = [p for p in kube.pods(HEADROOM_NS)]
    assert len(placeholders) == planned - 3 and any(not p["spec"].get("nodeName") for p in placeholders)
    assert grow_nodes(kube) > 0
    assert all(p["spec"].get("nodeName") and p["spec"]["priority"] == -10 for p in kube.pods(HEADROOM_NS))

    # the raise: real pods take the placeholders' room at once (preemption), none waits for a node
    raise_at = event_start - LEAD - INTERVAL
    while clock.now < raise_at:
        clock.now += INTERVAL
        ctl.run_cycle()
    floor = kube.get("autoscaling/v2", "horizontalpodautoscalers", NS, "web")["spec"]["minReplicas"]
    assert floor >= planned - 1
    kube.reconcile(ready=False)
    web = kube.pods(NS, "web-")
    assert len(web) == floor and all(p["spec"].get("nodeName") for p in web), "every raised pod found room"
    assert kube.preempted, "the real pods preempted placeholders"

    # as real pods become ready, the placeholder shrinks by as many
    sizes = []
    for batch in (4, 4, floor):
        kube.make_ready(NS, "web-", batch)
        clock.now += INTERVAL
        ctl.run_cycle()
        ready = kube.get("apps/v1", "deployments", NS, "web")["status"]["readyReplicas"]
        size = placeholder(kube)["spec"]["replicas"]
        want = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["status"]["headroom"]["plannedReplicas"]
        assert size == max(0, want - ready)
        sizes.append(size)
    assert sizes[0] > sizes[1] > sizes[2] == 0

    # a restart mid-event: the new controller finds the placeholder and leaves it as it was
    kube.reconcile()
    before = placeholder(kube)
    writes = len(kube.writes())
    clock.now = event_start + 600
    fresh = make(kube, prometheus, clock)
    fresh.run_cycle()
    after = placeholder(kube)
    assert after["spec"] == before["spec"] and after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert not [w for w in kube.writes()[writes:] if "/deployments" in w[1]]

    # after the event and its cool-down: gone, and so are its pods
    clock.now = event_start + 3600 + COOLDOWN
    fresh.run_cycle()
    assert placeholder(kube) is None
    kube.reconcile()
    assert kube.pods(HEADROOM_NS) == []
    assert events_with(kube, "HeadroomDeleted")
    assert all(is_ready(p) for p in kube.pods(NS, "web-"))


def test_a_placeholder_whose_policy_is_gone_is_deleted(kube, prometheus, start):
    event_start = start + 3 * 3600
    seed(kube, event_start)
    clock = Clock(event_start - LEAD - NODE_LEAD)
    ctl = make(kube, prometheus, clock)
    ctl.run_cycle()
    assert placeholder(kube) is not None
    # a scale-mode policy has no finalizer: deleting it leaves the placeholder behind
    with kube.lock:
        del kube.objects[("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")]
    clock.now += INTERVAL
    ctl.run_cycle()
    assert placeholder(kube) is None


def test_dry_run_says_what_it_would_do_and_creates_nothing(kube, prometheus, start):
    event_start = start + 3 * 3600
    seed(kube, event_start)
    clock = Clock(event_start - LEAD - NODE_LEAD)
    opts = ControllerOptions(identity="a", namespaces=[NS], interval_s=INTERVAL, lease_namespace=NS, headroom_namespace=HEADROOM_NS, dry_run=True)
    ctl = Controller(Kube(api_for(kube)), HistoryCache(prometheus.url, timeout_s=5), opts, clock=clock)
    ctl.run_cycle()
    assert placeholder(kube) is None
    assert any("would create headroom placeholder" in e["message"] for e in events_with(kube, "DryRun"))
