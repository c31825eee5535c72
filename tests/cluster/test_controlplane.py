"""The local control plane is the real one: its version, RBAC, admission, the scheduler, the HPA
controller and kwok's nodes all do what a cluster does."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.cluster.controlplane import wait_for
from tests.cluster.objects import add_nodes, apply, delete_nodes, ready_replicas, service_account_token, unique


def test_it_reports_the_version_it_was_built_as(cluster):
    version = cluster.version()
    assert version["gitVersion"].startswith("v1.") and version["gitVersion"] != "v0.0.0", version


def test_a_service_account_without_a_role_is_refused(cluster, namespace):
    api = cluster.api()
    client.CoreV1Api(api).create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = service_account_token(api, namespace, "nobody")
    config = client.Configuration()
    config.host = cluster.url
    config.ssl_ca_cert = str(cluster.pki.ca.cert)
    config.api_key = {"authorization": f"Bearer {token}"}
    with pytest.raises(client.ApiException) as refused:
        client.AutoscalingV2Api(client.ApiClient(config)).list_namespaced_horizontal_pod_autoscaler(namespace)
    assert refused.value.status == 403
    denied = [e for e in cluster.audit() if e["user"]["username"] == f"system:serviceaccount:{namespace}:nobody"]
    assert any(e["responseStatus"]["code"] == 403 and e["objectRef"]["resource"] == "horizontalpodautoscalers" for e in denied)


def test_the_hpa_controller_raises_a_deployment_to_its_floor_and_kwok_makes_the_pods_ready(cluster, namespace):
    api = cluster.api()
    pool = unique("pool")
    add_nodes(api, 2, pool=pool, cpu="2")
    try:
        apply(api, [deployment(namespace, "web", pool, replicas=1), hpa(namespace, "web", minimum=3, maximum=10)])
        wait_for("3 ready replicas", lambda: ready_replicas(api, namespace, "web") == 3, 120)
        pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=web").items
        assert {p.spec.node_name.rsplit("-", 1)[0] for p in pods} == {pool}
    finally:
        delete_nodes(api, pool)


def deployment(namespace: str, name: str, pool: str, *, replicas: int, cpu: str = "100m") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"pool": pool},
                    "containers": [{"name": "app", "image": "registry.invalid/app:1", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}],
                },
            },
        },
    }


def hpa(namespace: str, name: str, *, minimum: int, maximum: int) -> dict:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": minimum,
            "maxReplicas": maximum,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}],
        },
    }
