"""`pulumi up` of the dev stack with the real engine, against the real local control plane.

Every object becomes real: the Redis StatefulSet with its Secret and PDB, the live-edge
Deployments and HPA, the controller's Deployment from the chart's Helm release, the ScalingPolicies,
and the CloudNativePG Cluster and Pooler against CloudNativePG's own generated CRDs. Then
`pulumi preview` shows no change and a second `pulumi up` is a no-op; the controller and Pulumi
share the edge HPA without fighting (seen in the real managedFields); `pulumi destroy` leaves
nothing behind. The local overrides are in ``tests/cluster/pulumi_stack.py``.
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from autoscaler.adapters.kube import FIELD_MANAGER, ORIGINAL_MIN, Kube
from tests.cluster.controlplane import wait_for
from tests.cluster.objects import delete_nodes, service_account_token
from tests.cluster.pulumi_stack import dev_stack, make_room

NS, CONTROLLER_NS = "live-dev", "peakscale-system"


@pytest.fixture(scope="module")
def deployed(cluster, tmp_path_factory):
    api = cluster.api()
    pool = make_room(api, "dev")
    stack = dev_stack(tmp_path_factory.mktemp("pulumi") / "dev", cluster.kubeconfig)
    began = time.monotonic()
    up = stack.up(color="never")
    took = time.monotonic() - began
    yield {"stack": stack, "up": up, "took": took, "api": api}
    stack.destroy(color="never")
    delete_nodes(api, pool)


def test_pulumi_up_makes_every_object_real(deployed):
    up, api = deployed["up"], deployed["api"]
    assert up.summary.result == "succeeded" and up.summary.resource_changes.get("create", 0) >= 25, up.summary.resource_changes
    print(f"pulumi up: {up.summary.resource_changes.get('create')} resources created in {deployed['took']:.0f} s")
    apps, core, custom = client.AppsV1Api(api), client.CoreV1Api(api), client.CustomObjectsApi(api)
    cache = apps.read_namespaced_stateful_set("cache-node", NS)
    assert cache.status.ready_replicas == cache.spec.replicas == 1
    assert core.read_namespaced_secret("cache-auth", NS).data["redis-password"]
    assert client.PolicyV1Api(api).read_namespaced_pod_disruption_budget("cache", NS).spec.max_unavailable == 1
    for name in ("live-edge",):
        assert apps.read_namespaced_deployment(name, NS).status.ready_replicas >= 1
    assert apps.read_namespaced_stateful_set("live-origin", NS).status.ready_replicas == 1
    hpa = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("live-edge", NS)
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 4)
    controller = apps.read_namespaced_deployment("peakscale", CONTROLLER_NS)
    assert controller.status.ready_replicas == 1 and "peakscale" in controller.spec.template.spec.containers[0].image
    policies = custom.list_namespaced_custom_object("peakscale.io", "v1alpha1", NS, "scalingpolicies")["items"]
    assert {p["metadata"]["name"] for p in policies} == {"cache-cache-node", "edge-live-edge", "database-pg"}
    # the CRD's defaults filled in what the stack left out
    assert all(p["spec"]["scaleDownStabilization"] == "5m" for p in policies)
    pg = custom.get_namespaced_custom_object("postgresql.cnpg.io", "v1", NS, "clusters", "pg")
    assert pg["spec"]["instances"] == 1 and custom.get_namespaced_custom_object("postgresql.cnpg.io", "v1", NS, "poolers", "pg-pooler-rw")


def test_preview_shows_no_change_and_a_second_up_is_a_no_op(deployed):
    stack = deployed["stack"]
    preview = stack.preview(color="never")
    assert set(preview.change_summary) == {"same"}, preview.change_summary
    again = stack.up(color="never")
    assert set(again.summary.resource_changes) == {"same"}, again.summary.resource_changes


def test_pulumi_and_the_controller_share_the_hpa_without_fighting(deployed, cluster):
    stack, api = deployed["stack"], deployed["api"]
    # the controller raises the floor, as the chart's ServiceAccount, through its own write path
    token = service_account_token(api, CONTROLLER_NS, "peakscale")
    config = client.Configuration()
    config.host, config.ssl_ca_cert, config.api_key = cluster.url, str(cluster.pki.ca.cert), {"authorization": f"Bearer {token}"}
    kube = Kube(client.ApiClient(config))
    assert kube.set_hpa_floor(NS, "live-edge", 3, remember_original=True) == (1, 3)
    # a change Pulumi makes to the same HPA (its maxReplicas) leaves the raised floor alone
    stack.set_config("edge.scaling.maxReplicas", auto_value("5"), path=True)
    up = stack.up(color="never")
    assert up.summary.resource_changes.get("update", 0) >= 1, up.summary.resource_changes
    hpas = client.AutoscalingV2Api(api)
    hpa = hpas.read_namespaced_horizontal_pod_autoscaler("live-edge", NS)
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (3, 5)
    assert hpa.metadata.annotations[ORIGINAL_MIN] == "1"
    # the managedFields say who owns what: minReplicas is the controller's, maxReplicas Pulumi's
    owners = {m.manager: m.fields_v1 for m in hpa.metadata.managed_fields}
    spec_of = lambda manager: (owners.get(manager) or {}).get("f:spec", {})  # noqa: E731
    pulumi_manager = next(m for m in owners if m.startswith("pulumi-kubernetes"))
    assert "f:minReplicas" in spec_of(FIELD_MANAGER) and "f:minReplicas" not in spec_of(pulumi_manager)
    assert "f:maxReplicas" in spec_of(pulumi_manager)
    # and the controller's next write does not take Pulumi's fields: it restores only its own
    assert kube.set_hpa_floor(NS, "live-edge", None, remember_original=False) == (3, 1)
    wait_for("the restore", lambda: hpas.read_namespaced_horizontal_pod_autoscaler("live-edge", NS).spec.min_replicas == 1, 30)
    assert set(stack.preview(color="never").change_summary) == {"same"}


def test_destroy_leaves_nothing_behind(deployed):
    stack, api = deployed["stack"], deployed["api"]
    stack.destroy(color="never")
    core = client.CoreV1Api(api)

    def gone(name: str) -> bool:
        try:
            core.read_namespace(name)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for("the stack's namespaces gone", lambda: gone(NS) and gone(CONTROLLER_NS), 180, poll_s=1)
    left = [r for r in stack.export_stack().deployment.get("resources", []) if r["type"] != "pulumi:pulumi:Stack"]
    assert left == []
    assert not [c for c in client.RbacAuthorizationV1Api(api).list_cluster_role().items if c.metadata.name.startswith("peakscale")]


def auto_value(value: str):
    from pulumi import automation as auto

    return auto.ConfigValue(value=value)
