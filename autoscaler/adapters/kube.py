"""Kubernetes adapter: every call the controller makes, through the official client.

``API_PERMISSIONS`` lists each (scope, API group, resource, verbs) the code below uses; the Helm
chart's RBAC follows it and a test checks the two agree. Scopes: ``watched`` (a Role in each
watched namespace, or one ClusterRole with ``clusterWide``), ``release`` (a Role in the
controller's own namespace: the Lease and the node-headroom placeholders) and ``cluster`` (a
read-only ClusterRole for what has no namespace or spans them: nodes, the pods on them,
PriorityClasses). Writes go through read-modify-replace
with the object's ``resourceVersion``, so a concurrent writer produces a 409 that ``retry_conflict``
answers with a fresh read, never a lost update.
"""

from __future__ import annotations


import json
from dataclasses import dataclass
from datetime import datetime, UTC
from typing import Any, TypeVar
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.rest import ApiException

from autoscaler.adapters.kube_errors import TRANSPORT, Translating, retry_conflict, translated
from autoscaler.errors import InputError, KubeConflict, KubeError, KubeNotFound, clip
from autoscaler.core.resources import EVENT_PLURAL, GROUP, POLICY_PLURAL, VERSION

#: (scope, apiGroup, resource, verbs): exactly what this module calls
API_PERMISSIONS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("watched", GROUP, POLICY_PLURAL, ("get", "list", "update")),
    ("watched", GROUP, f"{POLICY_PLURAL}/status", ("get", "update")),
    ("watched", GROUP, EVENT_PLURAL, ("get", "list")),
    ("watched", GROUP, f"{EVENT_PLURAL}/status", ("get", "update")),
    ("watched", "autoscaling", "horizontalpodautoscalers", ("get", "list", "update")),
    ("watched", "apps", "deployments/scale", ("get", "update")),
    ("watched", "apps", "statefulsets/scale", ("get", "update")),
    ("watched", "postgresql.cnpg.io", "clusters/scale", ("get", "update")),
    # node headroom and preflight: the targets' pod templates and ready counts, quotas, PDBs
    ("watched", "apps", "statefulsets", ("get",)),
    ("watched", "postgresql.cnpg.io", "clusters", ("get",)),
    ("watched", "", "resourcequotas", ("list",)),
    ("watched", "policy", "poddisruptionbudgets", ("list",)),
    ("watched", "", "events", ("create",)),
    ("release", "coordination.k8s.io", "leases", ("get", "create", "update")),
    # what concerns the controller itself (a --calendar entry it skipped): an Event on its Lease
    ("release", "", "events", ("create",)),
    # the node-headroom placeholders live in the targets' namespaces, charged to their quotas
    ("watched", "apps", "deployments", ("get", "list", "create", "update", "delete")),
    # a resharding tier's reshard step (``kube_jobs``): a Job in the policy's namespace
    ("watched", "batch", "jobs", ("list", "create")),
    ("cluster", "", "nodes", ("list",)),
    ("cluster", "", "pods", ("list",)),
    ("cluster", "scheduling.k8s.io", "priorityclasses", ("get",)),
]

ORIGINAL_MIN = "peakscale.io/original-min-replicas"
#: the field manager of every write: kube-apiserver's managedFields name the controller as the
#: owner of what it sets (an HPA's minReplicas, a scale), beside Pulumi's or Helm's own fields
FIELD_MANAGER = "peakscale-controller"
#: on hpa-floor policies: a deleted policy never leaves a raised floor behind
FINALIZER = "peakscale.io/restore-floor"


@dataclass
class HpaView:
    """The fields of an HPA the controller reads, over the API's JSON."""

    raw: dict

    @property
    def name(self) -> str:
        return self.raw["metadata"]["name"]

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.raw["metadata"].get("annotations") or {})

    @property
    def min_replicas(self) -> int:
        return int(self.raw["spec"].get("minReplicas") or 1)

    def original_min(self) -> int | None:
        """The minReplicas peakscale remembered before raising the floor (None: not raised)."""
        value = self.annotations.get(ORIGINAL_MIN)
        if value is None:
            return None
        try:
            original = int(str(value).strip())
        except ValueError:
            original = -1
        if not 0 <= original <= 100_000:
            raise InputError(f"HPA {self.name} annotation {ORIGINAL_MIN}", f"{value!r} is not a replica count", "set it to the HPA's own minReplicas, or remove it if the floor is the original")
        return original

    @property
    def max_replicas(self) -> int:
        return int(self.raw["spec"]["maxReplicas"])

    @property
    def current_replicas(self) -> int:
        return int((self.raw.get("status") or {}).get("currentReplicas") or 0)

    @property
    def target_kind(self) -> str:
        return self.raw["spec"]["scaleTargetRef"]["kind"]

    @property
    def target_name(self) -> str:
        return self.raw["spec"]["scaleTargetRef"]["name"]


T = TypeVar("T")


def now_rfc3339(now_s: float) -> str:
    return datetime.fromtimestamp(now_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro(now_s: float) -> str:
    return datetime.fromtimestamp(now_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def api_client(kubeconfig: str | None, context: str | None, *, field: str = "--kubeconfig"):
    """The official client's ApiClient: ``kubeconfig`` (and ``context``), else in-cluster, else
    ~/.kube/config. A missing, unreadable or garbled kubeconfig is ``InputError``."""
    from kubernetes import config as kconfig

    from autoscaler.adapters.kubeconfig import check_context

    check_context(kubeconfig, context)
    try:
        if kubeconfig is not None:
            return kconfig.new_client_from_config(config_file=str(kubeconfig), context=context)
        try:
            kconfig.load_incluster_config()
            return client.ApiClient()
        except kconfig.ConfigException:
            return kconfig.new_client_from_config(context=context)
    except Exception as exc:  # noqa: BLE001 (the loader raises anything on a garbled file)
        reason = clip(str(exc).splitlines()[0], 160) if str(exc) else type(exc).__name__
        raise InputError(field, f"cannot load Kubernetes credentials ({reason})", "give --kubeconfig with a valid kubeconfig, or run in a cluster") from None


_SCALABLE = {
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
    "Cluster": ("postgresql.cnpg.io", "clusters"),
}


def _allowed() -> None:
    return None


@dataclass
class Kube:
    api: client.ApiClient
    #: called before every write: raises when this instance may not write (``leader.NotLeader``)
    guard: Callable[[], None] = _allowed

    def __post_init__(self) -> None:
        # every call raises the project's KubeApiErrors, never the client's ApiException
        self.custom = Translating(client.CustomObjectsApi(self.api))
        self.autoscaling = Translating(client.AutoscalingV2Api(self.api))
        self.apps = Translating(client.AppsV1Api(self.api))
        self.core = Translating(client.CoreV1Api(self.api))
        self.coordination = Translating(client.CoordinationV1Api(self.api))
        self.batch = Translating(client.BatchV1Api(self.api))
        self.policy = Translating(client.PolicyV1Api(self.api))
        self.scheduling = Translating(client.SchedulingV1Api(self.api))
        self.writes = 0

    # --- custom resources -------------------------------------------------------------------
    def list_custom(self, plural: str, namespaces: list[str] | None) -> list[dict]:
        if not namespaces:
            return self.custom.list_cluster_custom_object(GROUP, VERSION, plural).get("items", [])
        items: list[dict] = []
        for ns in namespaces:
            items += self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, plural).get("items", [])
        return items

    def update_status(self, plural: str, namespace: str, name: str, status: dict, *, listed: dict | None = None) -> None:
        """Replace the status subresource. ``listed`` (the object as listed this cycle) saves the
        write when its status is already right, and the read otherwise: the first attempt
        replaces with its resourceVersion, a 409 falls back to a fresh read."""
        if listed is not None and listed.get("status") == status:
            return
        first = [dict(listed)] if listed is not None else []

        def attempt() -> None:
            obj = first.pop() if first else self.custom.get_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name)
            if obj.get("status") == status:
                return
            obj["status"] = status
            self.guard()
            self.custom.replace_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name, obj, field_manager=FIELD_MANAGER)
            self.writes += 1

        retry_conflict(attempt)

    def patch_status(self, plural: str, namespace: str, name: str, patch: dict) -> None:
        """Merge ``patch`` into the status subresource (the keys it names; the rest stays)."""
        self.guard()
        self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name, {"status": patch}, field_manager=FIELD_MANAGER)
        self.writes += 1

    def set_finalizer(self, plural: str, namespace: str, name: str, *, present: bool, listed: dict | None = None) -> None:
        """Add or remove peakscale's finalizer (read-modify-replace of the object)."""
        first = [dict(listed)] if listed is not None else []

        def attempt() -> None:
            obj = first.pop() if first else self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
            meta = dict(obj.get("metadata") or {})
            finalizers = [f for f in (meta.get("finalizers") or []) if f != FINALIZER]
            if present:
                finalizers.append(FINALIZER)
            if finalizers == list(meta.get("finalizers") or []):
                return
            meta["finalizers"] = finalizers
            self.guard()
            self.custom.replace_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, {**obj, "metadata": meta}, field_manager=FIELD_MANAGER)
            self.writes += 1

        retry_conflict(attempt)

    # --- HPAs -------------------------------------------------------------------------------
    def get_hpa(self, namespace: str, name: str) -> Any:
        return self.autoscaling.read_namespaced_horizontal_pod_autoscaler(name, namespace)

    def get_hpa_view(self, namespace: str, name: str) -> HpaView:
        raw = self.autoscaling.read_namespaced_horizontal_pod_autoscaler(name, namespace, _preload_content=False)
        return HpaView(json.loads(raw.data))

    def hpas_by_target(self, namespace: str) -> dict[tuple[str, str], HpaView]:
        """Every HPA of a namespace, keyed by its scale target (one list call, kept as plain
        dicts: building 1,000 typed models costs a tenth of a 1,000-policy cycle)."""
        raw = self.autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace, _preload_content=False)
        views = [HpaView(item) for item in json.loads(raw.data).get("items", [])]
        return {(v.target_kind, v.target_name): v for v in views}

    def set_hpa_floor(self, namespace: str, name: str, floor: int | None, *, remember_original: bool, listed: HpaView | None = None) -> tuple[int, int]:
        """Set the HPA's minReplicas to ``floor`` (None: restore the remembered original).

        Returns (before, after). The original is kept in an annotation the first time the floor
        is raised, so a restarted controller restores the right value.
        """
        result: dict[str, int] = {}
        first = [client.V2HorizontalPodAutoscaler.from_dict(listed.raw)] if listed is not None else []

        def attempt() -> None:
            hpa = first.pop() if first else self.get_hpa(namespace, name)
            annotations = dict(hpa.metadata.annotations or {})
            before = hpa.spec.min_replicas or 1
            if floor is None:
                if ORIGINAL_MIN not in annotations:
                    result.update(before=before, after=before)
                    return
                target = int(annotations.pop(ORIGINAL_MIN))
            else:
                if remember_original and ORIGINAL_MIN not in annotations:
                    annotations[ORIGINAL_MIN] = str(before)
                target = min(floor, hpa.spec.max_replicas)
            if target == before and annotations == (hpa.metadata.annotations or {}):
                result.update(before=before, after=before)
                return
            hpa.spec.min_replicas = target
            hpa.metadata.annotations = annotations
            self.guard()
            self.autoscaling.replace_namespaced_horizontal_pod_autoscaler(name, namespace, hpa, field_manager=FIELD_MANAGER)
            self.writes += 1
            result.update(before=before, after=target)

        retry_conflict(attempt)
        return result["before"], result["after"]

    # --- scale subresource ------------------------------------------------------------------
    def get_replicas(self, namespace: str, kind: str, name: str) -> int:
        if kind == "Deployment":
            return self.apps.read_namespaced_deployment_scale(name, namespace).spec.replicas or 0
        if kind == "StatefulSet":
            return self.apps.read_namespaced_stateful_set_scale(name, namespace).spec.replicas or 0
        group, plural = _SCALABLE.get(kind, (None, None))
        if group is None:
            raise KubeError(f"targetRef.kind {kind!r} has no known scale subresource (Deployment, StatefulSet, Cluster)")
        scale = self.custom.get_namespaced_custom_object_scale(group, "v1", namespace, plural, name)
        return int((scale.get("spec") or {}).get("replicas") or 0)

    def set_replicas(self, namespace: str, kind: str, name: str, replicas: int) -> tuple[int, int]:
        result: dict[str, int] = {}

        def attempt() -> None:
            if kind in ("Deployment", "StatefulSet"):
                read = self.apps.read_namespaced_deployment_scale if kind == "Deployment" else self.apps.read_namespaced_stateful_set_scale
                replace = self.apps.replace_namespaced_deployment_scale if kind == "Deployment" else self.apps.replace_namespaced_stateful_set_scale
                scale = read(name, namespace)
                before = scale.spec.replicas or 0
                if before != replicas:
                    scale.spec.replicas = replicas
                    self.guard()
                    replace(name, namespace, scale, field_manager=FIELD_MANAGER)
                    self.writes += 1
            else:
                group, plural = _SCALABLE[kind]
                scale = self.custom.get_namespaced_custom_object_scale(group, "v1", namespace, plural, name)
                before = int((scale.get("spec") or {}).get("replicas") or 0)
                if before != replicas:
                    scale.setdefault("spec", {})["replicas"] = replicas
                    self.guard()
                    self.custom.replace_namespaced_custom_object_scale(group, "v1", namespace, plural, name, scale, field_manager=FIELD_MANAGER)
                    self.writes += 1
            result.update(before=before, after=replicas)

        retry_conflict(attempt)
        return result["before"], result["after"]

    # --- workloads and node headroom ---------------------------------------------------------
    def get_workload(self, namespace: str, kind: str, name: str) -> dict:
        """A Deployment, StatefulSet or CloudNativePG Cluster as JSON (its pod template, its
        ready count)."""
        if kind == "Deployment":
            raw = self.apps.read_namespaced_deployment(name, namespace, _preload_content=False)
        elif kind == "StatefulSet":
            raw = self.apps.read_namespaced_stateful_set(name, namespace, _preload_content=False)
        elif kind == "Cluster":
            return self.custom.get_namespaced_custom_object("postgresql.cnpg.io", "v1", namespace, "clusters", name)
        else:
            raise KubeError(f"targetRef.kind {kind!r} has no pod template peakscale knows (Deployment, StatefulSet, Cluster)")
        return json.loads(raw.data)

    def list_placeholders(self, namespaces: list[str] | None, selector: str) -> list[dict]:
        """Every node-headroom placeholder Deployment peakscale owns in the watched namespaces (all:
        None); ``selector``: the labels the controller gives them."""
        if not namespaces:
            raw = self.apps.list_deployment_for_all_namespaces(label_selector=selector, _preload_content=False)
            return json.loads(raw.data).get("items", [])
        items: list[dict] = []
        for ns in namespaces:
            raw = self.apps.list_namespaced_deployment(ns, label_selector=selector, _preload_content=False)
            items += json.loads(raw.data).get("items", [])
        return items

    def create_placeholder(self, body: dict) -> None:
        meta = body["metadata"]
        self.guard()
        try:
            retry_conflict(lambda: self.apps.create_namespaced_deployment(meta["namespace"], body, field_manager=FIELD_MANAGER), attempts=1)
        except KubeConflict:
            # already there: a previous leader's, or a retry that landed, is sized; a Deployment of
            # that name that is not this policy's placeholder is never touched
            existing = json.loads(self.apps.read_namespaced_deployment(meta["name"], meta["namespace"], _preload_content=False).data)
            labels = (existing.get("metadata") or {}).get("labels") or {}
            if any(labels.get(k) != v for k, v in (meta.get("labels") or {}).items()):
                raise KubeError(f"Deployment {meta['namespace']}/{meta['name']} exists and is not this policy's placeholder: it is left alone") from None
            self.resize_placeholder(meta["namespace"], meta["name"], body["spec"]["replicas"], meta.get("annotations") or {})
            return
        self.writes += 1

    def resize_placeholder(self, namespace: str, name: str, replicas: int, annotations: dict[str, str]) -> None:
        """Read-modify-replace of the placeholder's replica count and annotations."""

        def attempt() -> None:
            obj = json.loads(self.apps.read_namespaced_deployment(name, namespace, _preload_content=False).data)
            meta = obj["metadata"]
            merged = {**(meta.get("annotations") or {}), **annotations}
            if obj["spec"].get("replicas") == replicas and merged == (meta.get("annotations") or {}):
                return
            obj["spec"]["replicas"] = replicas
            meta["annotations"] = merged
            obj.pop("status", None)
            self.guard()
            self.apps.replace_namespaced_deployment(name, namespace, obj, field_manager=FIELD_MANAGER)
            self.writes += 1

        retry_conflict(attempt)

    def delete_placeholder(self, namespace: str, name: str) -> None:
        def attempt() -> None:
            self.guard()
            try:
                self.apps.delete_namespaced_deployment(name, namespace, propagation_policy="Background")
            except KubeNotFound:  # already gone: what we wanted
                return
            self.writes += 1

        retry_conflict(attempt)

    # --- what preflight reads (all raw JSON, read only) ----------------------------------------
    def list_nodes(self) -> list[dict]:
        return json.loads(self.core.list_node(_preload_content=False).data).get("items", [])

    def list_pods(self) -> list[dict]:
        """Every pod bound to a node or waiting for one, in all namespaces (node usage)."""
        raw = self.core.list_pod_for_all_namespaces(field_selector="status.phase!=Succeeded,status.phase!=Failed", _preload_content=False)
        return json.loads(raw.data).get("items", [])

    def list_quotas(self, namespace: str) -> list[dict]:
        return json.loads(self.core.list_namespaced_resource_quota(namespace, _preload_content=False).data).get("items", [])

    def list_pdbs(self, namespace: str) -> list[dict]:
        raw = self.policy.list_namespaced_pod_disruption_budget(namespace, _preload_content=False)
        return json.loads(raw.data).get("items", [])

    def get_priority_class(self, name: str) -> dict | None:
        try:
            raw = self.scheduling.read_priority_class(name, _preload_content=False)
        except KubeNotFound:
            return None
        return json.loads(raw.data)

    # --- Leases, as plain JSON ---------------------------------------------------------------------
    def _json(self, method: str, path: str, body: dict | None = None) -> dict:
        """One request with its JSON body sent as written. The client's typed models would turn a
        Lease's MicroTime strings into datetimes and write them back without their fraction when
        the microseconds are zero, which kube-apiserver refuses (400)."""
        params = self.api.param_serialize(
            method=method, resource_path=path, body=body, auth_settings=["BearerToken"],
            query_params=[("fieldManager", FIELD_MANAGER)] if method in ("POST", "PUT") else None,
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
        )  # fmt: skip
        try:
            response = self.api.call_api(*params)
            response.read()
        except TRANSPORT as exc:
            raise translated(exc) from exc
        if not 200 <= response.status <= 299:
            try:
                ApiException.from_response(http_resp=response, body=None, data=None)  # raises the client's own
            except ApiException as exc:
                raise translated(exc) from exc
            raise translated(ApiException(status=response.status, reason=response.reason))
        return dict(json.loads(response.data))

    def read_lease(self, namespace: str, name: str) -> dict | None:
        try:
            return self._json("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")
        except KubeNotFound:
            return None

    def create_lease(self, namespace: str, body: dict) -> dict:
        return self._json("POST", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", body)

    def replace_lease(self, namespace: str, name: str, body: dict) -> dict:
        return self._json("PUT", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}", body)

    # --- Events -----------------------------------------------------------------------------
    def emit_event(self, obj: dict, *, reason: str, message: str, warning: bool, now_s: float, component: str) -> None:
        meta = obj.get("metadata") or {}
        ts = now_rfc3339(now_s)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{meta.get('name', 'peakscale')}.", namespace=meta.get("namespace")),
            involved_object=client.V1ObjectReference(
                api_version=obj.get("apiVersion"),
                kind=obj.get("kind"),
                name=meta.get("name"),
                namespace=meta.get("namespace"),
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            reason=reason,
            message=clip(message, 1024),
            type="Warning" if warning else "Normal",
            first_timestamp=ts,
            last_timestamp=ts,
            count=1,
            source=client.V1EventSource(component=component),
            reporting_component=component,
        )
        self.guard()
        retry_conflict(lambda: self.core.create_namespaced_event(meta.get("namespace"), body))
        self.writes += 1
