"""A resharding tier on the real API server: the controller grows the StatefulSet by whole shards and
starts the reshard Job (as the policy's ServiceAccount, with the password from its Secret), a new
leader finds a Job still running and starts no second one, and a lower moves the slots first: the
pods go only once the Job that moved them succeeded. kwok runs the Jobs' pods to completion (its
pod-complete stage) and kube-controller-manager's job controller marks them Complete; what
``peakscale reshard`` does inside is tests/adapters/test_reshard.py, on real redis-server."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.controller.reshard import FROM_ANNOTATION, POLICY_LABEL, SEQ_ANNOTATION, SHARDS_ANNOTATION
from tests.cluster.controlplane import wait_for
from tests.cluster.facade import NO_POOL
from tests.cluster.objects import add_nodes, delete_nodes, unique
from tests.controller.world import QUERY, Clock, controller, iso, status_of

IMAGE = "registry.example/peakscale:test"


@pytest.fixture
def pool(kube):
    """A node of the test's own, where the Jobs' pods run (to completion: kwok)."""
    name = unique("reshard")
    add_nodes(kube.api, 1, pool=name)
    yield name
    delete_nodes(kube.api, name)


def world(kube, t: float) -> None:
    kube.put_object({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "cache-reshard"}})
    kube.put_object({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "cache-node"}, "spec": {"replicas": 6, "serviceName": "cache-headless"}})
    spec = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "cache-node"}, "mode": "scale",
        "metric": {"query": QUERY, "capacityPerReplica": 10_000, "targetUtilization": 0.7}, "leadTime": "10m",
        "minReplicas": 3, "maxReplicas": 8, "cooldown": "20m", "forecast": {"history": "2d", "step": "1m"},
        "reshard": {"datasetSize": "1Gi", "replicasPerShard": 1, "passwordSecret": {"name": "cache-auth", "key": "redis-password"}, "serviceAccountName": "cache-reshard"},
    }  # fmt: skip
    kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "cache", "labels": {"tier": "cache"}}, "spec": spec})
    kube.put_object(
        {
            "apiVersion": "peakscale.io/v1alpha1", "kind": "PromotionEvent", "metadata": {"name": "sale"},
            "spec": {"start": iso(t), "end": iso(t + 3600), "kind": "flash-sale", "expectedPeak": 35_000},
        }
    )  # fmt: skip


def jobs(kube) -> list[dict[str, Any]]:
    return sorted((j for j in kube.list("batch/v1", "jobs", kube.ns) if (j["metadata"].get("labels") or {}).get(POLICY_LABEL) == "cache"), key=lambda j: int(j["metadata"]["annotations"][SEQ_ANNOTATION]))


def nodes(kube) -> int:
    return int(kube.get("apps/v1", "statefulsets", kube.ns, "cache-node")["spec"]["replicas"])


def complete(kube, name: str) -> None:
    def done() -> bool:
        job = kube.get("batch/v1", "jobs", kube.ns, name)
        return any(c["type"] == "Complete" and c["status"] == "True" for c in (job.get("status") or {}).get("conditions") or [])

    wait_for(f"Job {name} complete", done, 180, poll_s=0.5)


def test_a_raise_grows_by_shards_and_starts_the_reshard_and_a_lower_removes_pods_only_after_theirs(kube, prometheus, start, pool):
    t = start + 3600
    world(kube, t)
    clock = Clock(t - 300)
    ctl = controller(kube, prometheus, clock, reshard_image=IMAGE)
    ctl.run_cycle()
    planned = int(status_of(kube, "scalingpolicies", "cache")["plannedReplicas"])
    assert 3 < planned <= 8 and nodes(kube) == 2 * planned
    [grow] = jobs(kube)
    annotations = grow["metadata"]["annotations"]
    assert (annotations[SHARDS_ANNOTATION], annotations[FROM_ANNOTATION]) == (str(planned), "3")
    pod = grow["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["serviceAccountName"] == "cache-reshard" and container["image"] == IMAGE
    assert container["env"] == [{"name": "REDISCLI_AUTH", "valueFrom": {"secretKeyRef": {"name": "cache-auth", "key": "redis-password"}}}]
    args = container["command"]
    assert args[args.index("--shards") + 1] == str(planned) and len(args[args.index("--nodes") + 1].split(",")) == 2 * planned
    complete(kube, grow["metadata"]["name"])
    clock.now += 60
    ctl.run_cycle()
    assert len(jobs(kube)) == 1 and int(status_of(kube, "scalingpolicies", "cache")["currentReplicas"]) == planned
    # after the event and its cool-down the plan lowers: the slots move first, the pods stay
    clock.now = t + 3600 + 1800
    while len(jobs(kube)) == 1 and clock.now < t + 3 * 3600:
        ctl.run_cycle()
        clock.now += 120
    shrink = jobs(kube)[-1]
    lowered = int(shrink["metadata"]["annotations"][SHARDS_ANNOTATION])
    assert len(jobs(kube)) == 2 and lowered < planned and nodes(kube) == 2 * planned
    complete(kube, shrink["metadata"]["name"])
    ctl.run_cycle()
    assert nodes(kube) == 2 * lowered and len(jobs(kube)) == 2


def test_a_new_leader_finds_the_reshard_running_and_starts_no_second_one(kube, prometheus, start):
    t = start + 3600
    world(kube, t)
    # what a leader that stopped mid-grow left: a Job for 5 shards from 3, still running (its pod
    # pending on a pool no node has), and the StatefulSet not yet grown
    labels = {"app.kubernetes.io/managed-by": "peakscale", POLICY_LABEL: "cache"}
    template = {"metadata": {"labels": labels}, "spec": {"restartPolicy": "Never", "nodeSelector": {"pool": NO_POOL}, "containers": [{"name": "reshard", "image": IMAGE}]}}
    kube.put_object(
        {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "cache-reshard-1", "labels": labels, "annotations": {SEQ_ANNOTATION: "1", SHARDS_ANNOTATION: "5", FROM_ANNOTATION: "3"}},
            "spec": {"backoffLimit": 0, "template": template},
        }
    )  # fmt: skip
    clock = Clock(t - 300)
    ctl = controller(kube, prometheus, clock, identity="b", reshard_image=IMAGE)
    for _ in range(2):
        ctl.run_cycle()
        clock.now += 60
    assert [j["metadata"]["name"] for j in jobs(kube)] == ["cache-reshard-1"]
    # its pods are asked for (the grow it started), and its new shards do not count as serving yet
    assert nodes(kube) == 10 and int(status_of(kube, "scalingpolicies", "cache")["currentReplicas"]) == 3


def test_a_resharding_policy_without_the_reshard_image_says_so_and_writes_nothing(kube, prometheus, start):
    t = start + 3600
    world(kube, t)
    report = controller(kube, prometheus, Clock(t - 300)).run_cycle()
    [outcome] = [o for o in report.outcomes if o.name == "cache"]
    assert outcome.error is not None and "--reshard-image" in outcome.error
    assert nodes(kube) == 6 and jobs(kube) == []
