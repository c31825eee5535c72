"""One test's view of the real control plane: a namespace of its own, the chart's CRDs and RBAC
installed for a release of its own, and the controller's credentials (a TokenRequest token of
the chart's ServiceAccount, never ``system:masters``).

Tests seed and read objects as the admin (``put_object``, ``get``, ``list``); the controller
talks to kube-apiserver as the ServiceAccount, and what it asked for is read back from the API
server's audit log (``requests``, ``writes``, ``refused``): the evidence that every request the
controller makes is one the chart's Role grants.

The same small surface is offered by the API double (``tests/fakes/kube.py``), so a scenario can
run on both (``tests/controller/test_contract.py``).
"""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from tests.cluster.controlplane import ControlPlane, wait_for
from tests.cluster.objects import RBAC_KINDS, install_chart, service_account_token

#: pods of seeded workloads select this pool, which no node has: they stay Pending (a test that
#: wants them scheduled makes nodes and its own Deployment)
NO_POOL = "none"


def pod_template(name: str, *, pool: str = NO_POOL, cpu: str = "100m", memory: str = "64Mi") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": name}},
        "spec": {
            "nodeSelector": {"pool": pool},
            "containers": [{"name": "app", "image": "registry.invalid/app:1", "resources": {"requests": {"cpu": cpu, "memory": memory}}}],
        },
    }


def complete(obj: dict[str, Any]) -> dict[str, Any]:
    """A workload as the API server wants it: a selector and a pod template when a test gave none."""
    obj = copy.deepcopy(obj)
    if obj["kind"] in ("Deployment", "StatefulSet"):
        name = obj["metadata"]["name"]
        spec = obj.setdefault("spec", {})
        spec.setdefault("template", pod_template(name))
        spec.setdefault("selector", {"matchLabels": dict((spec["template"].get("metadata") or {}).get("labels") or {"app": name})})
        if obj["kind"] == "StatefulSet":
            spec.setdefault("serviceName", name)
    obj.pop("status", None)  # status is the cluster's to write
    return obj


class ClusterKube:
    def __init__(self, cluster: ControlPlane, namespace: str, *, values: dict[str, Any] | None = None) -> None:
        self.cluster = cluster
        self.ns = namespace
        self.release = f"ps-{uuid.uuid4().hex[:6]}"
        self.api = cluster.api()
        self.dyn = DynamicClient(self.api)
        # every test release makes the PriorityClass the policies' default names (one per worker,
        # applied alike by each): a release's own name would make one class per test
        chart_values = {"watchNamespaces": [namespace], "nodeHeadroom": {"priorityClass": {"name": "peakscale-headroom"}}, **(values or {})}
        installed = install_chart(cluster, namespace=namespace, release=self.release, values=chart_values, kinds=RBAC_KINDS)
        self.service_account = next(o["metadata"]["name"] for o in installed if o["kind"] == "ServiceAccount")
        self.user = f"system:serviceaccount:{namespace}:{self.service_account}"
        self._token: str | None = None

    # --- the controller's credentials ----------------------------------------------------------
    def token(self) -> str:
        if self._token is None:
            self._token = service_account_token(self.api, self.ns, self.service_account)
        return self._token

    def controller_api(self, identity: str = "test") -> client.ApiClient:
        """An ApiClient authenticated as the chart's ServiceAccount (what the pod would get)."""
        assert self.cluster.pki is not None
        config = client.Configuration()
        config.host = self.cluster.url
        config.ssl_ca_cert = str(self.cluster.pki.ca.cert)
        config.api_key = {"authorization": f"Bearer {self.token()}"}
        api = client.ApiClient(config)
        api.user_agent = f"peakscale-controller/{identity}"
        return api

    # --- objects, as the admin -------------------------------------------------------------------
    def _resource(self, api_version: str, plural: str) -> Any:
        return self.dyn.resources.get(api_version=api_version, name=plural)

    def put_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create the object (or replace it when it exists), as the admin, through admission."""
        obj = complete(obj)
        meta = obj["metadata"]
        resource = self.dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        namespace = meta.setdefault("namespace", self.ns) if resource.namespaced else None
        try:
            current = resource.get(name=meta["name"], namespace=namespace)
        except NotFoundError:
            return dict(resource.create(body=obj, namespace=namespace).to_dict())
        meta["resourceVersion"] = current.metadata.resourceVersion
        return dict(resource.replace(body=obj, namespace=namespace).to_dict())

    def get(self, api_version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        resource = self._resource(api_version, plural)
        try:
            return dict(resource.get(name=name, namespace=namespace or None).to_dict())
        except NotFoundError:
            return None

    def list(self, api_version: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        found = self._resource(api_version, plural).get(namespace=namespace)
        return [dict(item) for item in found.to_dict()["items"]]

    def put_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace the object's status subresource (as a controller does), as the admin."""
        resource = self.dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        return dict(resource.status.replace(body=obj, namespace=obj["metadata"].get("namespace")).to_dict())

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        resource = self.dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        return dict(resource.replace(body=obj, namespace=obj["metadata"].get("namespace")).to_dict())

    def delete(self, api_version: str, plural: str, namespace: str, name: str) -> None:
        self._resource(api_version, plural).delete(name=name, namespace=namespace or None)

    def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        """The Events peakscale emitted in the namespace (not the cluster's own controllers')."""
        found = self.list("v1", "events", self.ns)
        return [e for e in found if (e.get("source") or {}).get("component", "").startswith("peakscale") and (reason is None or e.get("reason") == reason)]

    # --- what the controller asked for (the audit log) ---------------------------------------------
    def _flush(self) -> None:
        """Wait until the audit log holds every request the controller sent so far: send one more,
        marked, as the ServiceAccount, and wait for it to be logged."""
        marker = f"audit-marker-{uuid.uuid4().hex[:8]}"
        try:
            client.CoordinationV1Api(self.controller_api("marker")).read_namespaced_lease(marker, self.ns)
        except client.ApiException:
            pass
        wait_for("the audit log to catch up", lambda: any(marker in e.get("requestURI", "") for e in self.cluster.audit()), 30, poll_s=0.05)

    def audit(self, identity: str | None = None) -> list[dict[str, Any]]:
        """The controller's requests, as logged (only those of the instance named ``identity``)."""
        self._flush()
        agent = f"peakscale-controller/{identity}" if identity else ""
        return [
            e for e in self.cluster.audit()
            if e["user"]["username"] == self.user and "audit-marker-" not in e.get("requestURI", "") and e.get("userAgent", "").startswith(agent)
        ]  # fmt: skip

    @property
    def requests(self) -> list[tuple[str, str]]:
        return [(_method(e["verb"]), e["requestURI"].split("?")[0]) for e in self.audit()]

    def writes(self, identity: str | None = None) -> list[tuple[str, str]]:
        """(method, path) of every write the controller made (``identity``: of that instance only)."""
        return [(_method(e["verb"]), e["requestURI"].split("?")[0]) for e in self.audit(identity) if e["verb"] in WRITE_VERBS]

    def refused(self) -> list[str]:
        """Every request of the controller RBAC refused, as ``<verb> <resource>[/<sub>] in <ns>``."""
        out = []
        for e in self.audit():
            if e["responseStatus"].get("code") == 403:
                ref = e.get("objectRef") or {}
                sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
                group = f"{ref.get('apiGroup')}/" if ref.get("apiGroup") else ""
                out.append(f"{e['verb']} {group}{ref.get('resource', e['requestURI'])}{sub} in {ref.get('namespace') or 'the cluster'}")
        return out


WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def _method(verb: str) -> str:
    return {"create": "POST", "update": "PUT", "patch": "PATCH", "delete": "DELETE", "deletecollection": "DELETE"}.get(verb, "GET")


def now_s() -> float:
    return time.time()
