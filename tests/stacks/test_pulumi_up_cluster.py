"""`pulumi up` of a cluster-mode cache with the real engine, against the real local control plane:
the dev stack with its cache in Redis Cluster mode (3 shards of a primary and a replica). The nodes'
StatefulSet and the Job that forms the cluster become real (kwok plays the kubelet: the Job's pod
completes, nothing runs in it), the ScalingPolicy scales by shards with its reshard spec, and the
reshard step's ServiceAccount may patch that policy's status and nothing else (asked of the real
API server with SubjectAccessReviews). Then `pulumi destroy` leaves nothing behind."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.cluster.controlplane import wait_for
from tests.cluster.objects import delete_nodes
from tests.cluster.pulumi_stack import dev_stack, make_room

NS = "live-cluster"
CLUSTER_CACHE = {
    "namespace": NS,
    "cache.mode": "cluster",
    "cache.shards": 3,
    "cache.replicasPerShard": 1,
    "cache.scaling.minReplicas": 3,
    "cache.scaling.maxReplicas": 5,
}


@pytest.fixture(scope="module")
def deployed(cluster, tmp_path_factory):
    api = cluster.api()
    pool = make_room(api, "cluster")
    stack = dev_stack(tmp_path_factory.mktemp("pulumi") / "cluster", cluster.kubeconfig, config=CLUSTER_CACHE)
    up = stack.up(color="never")
    yield {"stack": stack, "up": up, "api": api}
    stack.destroy(color="never")
    delete_nodes(api, pool)


def may(api, user: str, verb: str, resource: str, name: str = "", subresource: str = "", group: str = "peakscale.io") -> bool:
    review = {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "resourceAttributes": {"namespace": NS, "verb": verb, "group": group, "resource": resource, "subresource": subresource, "name": name}},
    }  # fmt: skip
    return bool(client.AuthorizationV1Api(api).create_subject_access_review(review).status.allowed)


def test_a_cluster_mode_cache_comes_up_and_its_policy_scales_by_shards(deployed):
    up, api = deployed["up"], deployed["api"]
    assert up.summary.result == "succeeded", up.summary.resource_changes
    apps, batch, custom = client.AppsV1Api(api), client.BatchV1Api(api), client.CustomObjectsApi(api)
    nodes = apps.read_namespaced_stateful_set("cache-node", NS)
    assert nodes.spec.replicas == 6 and nodes.status.ready_replicas == 6
    assert batch.read_namespaced_job("cache-bootstrap", NS).status.succeeded == 1
    policy = custom.get_namespaced_custom_object("peakscale.io", "v1alpha1", NS, "scalingpolicies", "cache-cache-node")
    spec = policy["spec"]
    assert (spec["mode"], spec["minReplicas"], spec["maxReplicas"]) == ("scale", 3, 5)
    assert spec["reshard"]["replicasPerShard"] == 1 and spec["reshard"]["passwordSecret"] == {"name": "cache-auth", "key": "redis-password"}
    user = f"system:serviceaccount:{NS}:{spec['reshard']['serviceAccountName']}"
    assert may(api, user, "patch", "scalingpolicies", "cache-cache-node", "status")
    assert not may(api, user, "patch", "scalingpolicies", "edge-live-edge", "status")
    assert not may(api, user, "update", "scalingpolicies", "cache-cache-node")
    assert not may(api, user, "get", "secrets", "cache-auth", group="")
    assert not may(api, user, "patch", "statefulsets", "cache-node", "scale", group="apps")


def test_destroy_leaves_nothing_of_the_cluster_mode_cache(deployed):
    stack, api = deployed["stack"], deployed["api"]
    stack.destroy(color="never")

    def gone() -> bool:
        try:
            client.CoreV1Api(api).read_namespace(NS)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for("the stack's namespace gone", gone, 180, poll_s=1)
    assert [r for r in stack.export_stack().deployment.get("resources", []) if r["type"] != "pulumi:pulumi:Stack"] == []
