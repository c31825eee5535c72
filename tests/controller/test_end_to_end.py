"""One promotion end to end on the real control plane: the controller raises the HPA's floor at
``start - leadTime - interval``, the real HPA controller scales the Deployment, the real scheduler
places the pods on kwok's nodes and they are Ready by the start; after the cool-down the floor
comes back and the HPA, reading the load through the External metrics API, scales back down."""

from __future__ import annotations

import math

from kubernetes import client

from tests.cluster.controlplane import wait_for
from tests.cluster.facade import pod_template
from tests.cluster.objects import add_nodes, delete_nodes, unique
from tests.controller.world import COOLDOWN, LEAD, Clock, controller, hpa_min, policy_spec, iso

PER_REPLICA = 700  # capacityPerReplica x targetUtilization: what the HPA's target says too
QUIET_LOAD = 2000  # the load outside the event: ceil(2000 / 700) = 3 replicas


def seed(kube, pool: str, event_start: float) -> None:
    kube.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3, "template": pod_template("web", pool=pool)}})
    metric = {"type": "External", "external": {"metric": {"name": "shop_demand"}, "target": {"type": "AverageValue", "averageValue": str(PER_REPLICA)}}}
    kube.put_object(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 3,
                "maxReplicas": 100,
                "metrics": [metric],
                # a test cannot wait the default 5 minutes of scale-down stabilization
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
            },
        }
    )
    spec = policy_spec(floor="events-only")
    kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "web"}, "spec": spec})
    kube.put_object(
        {
            "apiVersion": "peakscale.io/v1alpha1",
            "kind": "PromotionEvent",
            "metadata": {"name": "flash-sale"},
            "spec": {"title": "Flash sale 20:00", "start": iso(event_start), "end": iso(event_start + 3600), "kind": "flash-sale", "expectedPeak": 50_000},
        }
    )


def deployment(kube) -> client.V1Deployment:
    return client.AppsV1Api(kube.api).read_namespaced_deployment("web", kube.ns)


def test_a_promotion_raises_real_pods_ready_by_its_start_and_they_go_after_the_cool_down(kube, prometheus, metrics_adapter, start):
    t = start + 3600
    pool = unique("web")
    add_nodes(kube.api, 3, pool=pool)
    try:
        metrics_adapter.set(kube.ns, "shop_demand", QUIET_LOAD)
        seed(kube, pool, t)
        wait_for("3 web pods ready", lambda: (deployment(kube).status.ready_replicas or 0) == 3, 120)
        clock = Clock(t - LEAD - 120)
        ctl = controller(kube, prometheus, clock)
        ctl.run_cycle()
        assert hpa_min(kube) == 3
        clock.now = t - LEAD - 60  # start - leadTime - interval: the raise
        ctl.run_cycle()
        floor = math.ceil(50_000 / PER_REPLICA)
        assert hpa_min(kube) == floor == 72
        # the HPA controller scales to its new minimum; the pods are placed and Ready, all of them,
        # while the controller's clock is still before the start
        wait_for(f"{floor} web pods ready", lambda: (deployment(kube).status.ready_replicas or 0) == floor, 240, poll_s=0.5)
        assert clock.now < t
        pods = client.CoreV1Api(kube.api).list_namespaced_pod(kube.ns, label_selector="app=web").items
        assert len(pods) == floor and {p.spec.node_name.rsplit("-", 1)[0] for p in pods} == {pool}
        # through the event the floor holds; after it and its cool-down the original comes back
        clock.now = t + 1800
        ctl.run_cycle()
        assert hpa_min(kube) == floor
        clock.now = t + 3600 + COOLDOWN
        ctl.run_cycle()
        assert hpa_min(kube) == 3
        # the HPA, reading the quiet load through the aggregation layer, scales back down
        wait_for("back to 3 replicas", lambda: deployment(kube).spec.replicas == 3 and (deployment(kube).status.ready_replicas or 0) == 3, 240, poll_s=0.5)
        assert metrics_adapter.requests > 0
    finally:
        delete_nodes(kube.api, pool)
