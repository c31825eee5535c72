"""What tests do to the real control plane: apply objects (server-side apply, as the admin),
install the chart's CRDs and RBAC as the chart renders them, mint a ServiceAccount's token, make
simulated nodes, and wait on what the cluster's controllers do."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import helm_python
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from tests.cluster.controlplane import ControlPlane, wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "peakscale"
ADMIN_MANAGER = "peakscale-tests"
#: kinds the chart renders that need a cluster add-on this control plane does not run
NOT_SERVED = {"ServiceMonitor"}


def dynamic(api: client.ApiClient) -> DynamicClient:
    return DynamicClient(api)


def apply(api: client.ApiClient, objects: list[dict[str, Any]], *, manager: str = ADMIN_MANAGER) -> list[dict[str, Any]]:
    """Server-side apply each object (CRDs first, and waited on until they are served)."""
    dyn = dynamic(api)
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    out = []
    for obj in crds:
        out.append(_apply_one(dyn, obj, manager))
    for obj in crds:
        wait_crd(api, obj["metadata"]["name"])
    if crds:
        dyn = dynamic(api)  # discovery again: the new kinds are served now
    for obj in objects:
        if obj["kind"] != "CustomResourceDefinition":
            out.append(_apply_one(dyn, obj, manager))
    return out


def _apply_one(dyn: DynamicClient, obj: dict[str, Any], manager: str) -> dict[str, Any]:
    resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    namespace = obj["metadata"].get("namespace") if resource.namespaced else None
    result = resource.server_side_apply(body=obj, name=obj["metadata"]["name"], namespace=namespace, field_manager=manager, force_conflicts=True)
    return dict(result.to_dict())


def wait_crd(api: client.ApiClient, name: str, timeout_s: float = 60) -> None:
    ext = client.ApiextensionsV1Api(api)

    def established() -> bool:
        crd = ext.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))

    wait_for(f"CRD {name} established", established, timeout_s)


def render_chart(values: dict[str, Any], *, release: str, namespace: str) -> list[dict[str, Any]]:
    """The chart's objects as Helm renders them, its CRDs included (as `helm install` does)."""
    with helm_python.Chart.load(str(CHART)) as chart:
        files = chart.render(values, name=release, namespace=namespace)
    docs = [yaml.safe_load(p.read_text()) for p in sorted((CHART / "crds").glob("*.yaml"))]
    for path, text in sorted(files.items()):
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        if doc["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "Namespace"):
            doc["metadata"].setdefault("namespace", namespace)
    return [d for d in docs if d["kind"] not in NOT_SERVED]


def install_chart(cluster: ControlPlane, *, namespace: str, release: str, values: dict[str, Any] | None = None, kinds: set[str] | None = None) -> list[dict[str, Any]]:
    """Render the chart for ``release`` in ``namespace`` and apply what it renders (only ``kinds``
    when given, e.g. the CRDs and RBAC without the controller's Deployment)."""
    objects = render_chart(values or {}, release=release, namespace=namespace)
    if kinds is not None:
        objects = [o for o in objects if o["kind"] in kinds]
    api = cluster.api()
    ensure_namespace(api, namespace)
    return apply(api, objects)


RBAC_KINDS = {"CustomResourceDefinition", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}


def ensure_namespace(api: client.ApiClient, name: str, labels: dict[str, str] | None = None) -> None:
    apply(api, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}])
    # the ServiceAccount admission plugin wants the namespace's default ServiceAccount first
    core = client.CoreV1Api(api)
    wait_for(f"namespace {name}'s default ServiceAccount", lambda: core.read_namespaced_service_account("default", name), 60)


def delete_namespace(api: client.ApiClient, name: str) -> None:
    try:
        client.CoreV1Api(api).delete_namespace(name, propagation_policy="Background")
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def service_account_token(api: client.ApiClient, namespace: str, name: str, *, seconds: int = 7200) -> str:
    """A bound token for a ServiceAccount, from the TokenRequest API (what a pod's projected
    volume holds)."""
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
    response = client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, request)
    return str(response.status.token)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def add_nodes(api: client.ApiClient, count: int, *, pool: str, cpu: str = "4", memory: str = "16Gi", pods: str = "110", labels: dict[str, str] | None = None) -> list[str]:
    """Simulated nodes (kwok manages every node): Ready with this allocatable, labelled
    ``pool=<pool>`` so a test's pods select only its own."""
    names = []
    for i in range(count):
        name = f"{pool}-{i}"
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "pool": pool, "type": "kwok", **(labels or {})},
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            },
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}, "capacity": {"cpu": cpu, "memory": memory, "pods": pods}},
        }
        client.CoreV1Api(api).create_node(node)
        names.append(name)
    core = client.CoreV1Api(api)

    def ready() -> bool:
        # Ready, and the node lifecycle controller has lifted its not-ready taint (on its own time)
        items = core.list_node(label_selector=f"pool={pool}").items
        return len(items) == count and all(
            any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or [])) and not any(t.key.startswith("node.kubernetes.io/") for t in (n.spec.taints or [])) for n in items
        )

    wait_for(f"{count} nodes of pool {pool} Ready and schedulable", ready, 120)
    return names


def delete_nodes(api: client.ApiClient, pool: str) -> None:
    client.CoreV1Api(api).delete_collection_node(label_selector=f"pool={pool}")


def ready_replicas(api: client.ApiClient, namespace: str, name: str) -> int:
    status = client.AppsV1Api(api).read_namespaced_deployment_status(name, namespace).status
    return int(status.ready_replicas or 0)
