"""Node headroom: the placeholder Deployment that holds node room ahead of a raise.

What the placeholder is (DESIGN.md): pause pods (image pinned by digest) with the target pod
template's CPU and memory requests, its nodeSelector, affinity and tolerations, so that the nodes
the cluster autoscaler adds for them fit the real pods, and a PriorityClass with a negative
value, so that real pods preempt them. How many, and when, is decided by ``cycle.decide`` (the
one decision path); this module only turns a target's pod template into the placeholder and
reads one back.

Placeholders live in the target's namespace, beside the real pods: its ResourceQuota binds them
and what they hold is charged to the tenant who asked for it, never to the controller's own
namespace (a tenant must not borrow the controller's rights). For the same reason their
PriorityClass is one the cluster admin allowed (``--headroom-priority-class``), never one a policy
names on its own, their size has a controller-wide cap, and the target's scheduling constraints are
copied only when the admin allows it (``--headroom-copy-scheduling``). A namespace's quota must
therefore leave room for the placeholders beside the planned pods (``peakscale preflight`` checks it).

Everything the controller needs to carry on after a restart is on the Deployment: the policy it
serves in labels, its size in ``spec.replicas``, what it was sized for in annotations.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field

from kubernetes.utils.quantity import parse_quantity

from autoscaler.errors import InputError

#: registry.k8s.io/pause:3.9, pinned by digest
PAUSE_IMAGE = "registry.k8s.io/pause:3.9@sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097"
MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT = "app.kubernetes.io/component"
POLICY_NS = "peakscale.io/policy-namespace"
POLICY = "peakscale.io/policy"
#: label selector of every placeholder peakscale owns
SELECTOR = f"{MANAGED_BY}=peakscale,{COMPONENT}=node-headroom"
# annotations: what the placeholder was sized for (informative; the decision is rebuilt each cycle)
A_POLICY = "peakscale.io/policy"
A_PLANNED = "peakscale.io/headroom-planned-replicas"
A_EVENT = "peakscale.io/headroom-event"
A_TARGET = "peakscale.io/headroom-target"


@dataclass(frozen=True)
class PodShape:
    """What a target's pods ask of a node, and how many of them are ready."""

    namespace: str
    kind: str
    name: str
    #: per pod: cores and bytes (the scheduler's effective requests)
    cpu: float
    memory: float
    ready: int
    node_selector: dict = field(default_factory=dict)
    affinity: dict = field(default_factory=dict)
    tolerations: list = field(default_factory=list)

    @property
    def requests(self) -> dict[str, str]:
        out = {}
        if self.cpu > 0:
            out["cpu"] = f"{max(1, round(self.cpu * 1000))}m"
        if self.memory > 0:
            out["memory"] = str(int(self.memory))
        return out


def quantity(value, where: str) -> float:
    """A Kubernetes quantity ('500m', '2Gi') as a float; ``InputError`` naming ``where`` if garbled."""
    if value is None:
        return 0.0
    try:
        return float(parse_quantity(str(value)))
    except (ValueError, ArithmeticError):
        raise InputError(where, f"{value!r} is not a Kubernetes quantity", "e.g. 500m, 2, 512Mi, 4Gi") from None


def _requests(pod_spec: dict, where: str) -> tuple[float, float]:
    """The scheduler's effective requests: containers summed, init containers at most."""
    cpu = mem = 0.0
    for c in pod_spec.get("containers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        cpu += quantity(req.get("cpu"), f"{where} resources.requests.cpu")
        mem += quantity(req.get("memory"), f"{where} resources.requests.memory")
    for c in pod_spec.get("initContainers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        cpu = max(cpu, quantity(req.get("cpu"), f"{where} initContainers resources.requests.cpu"))
        mem = max(mem, quantity(req.get("memory"), f"{where} initContainers resources.requests.memory"))
    return cpu, mem


def unscheduled(shape: PodShape) -> PodShape:
    """The shape without the target's nodeSelector, affinity and tolerations."""
    return PodShape(shape.namespace, shape.kind, shape.name, cpu=shape.cpu, memory=shape.memory, ready=shape.ready)


def shape_of(kind: str, obj: dict) -> PodShape:
    """The pod shape of a Deployment, StatefulSet or CloudNativePG Cluster, from its JSON."""
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    where = f"{kind} {ns}/{name}"
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    if kind == "Cluster":
        requests = (spec.get("resources") or {}).get("requests") or {}
        affinity = spec.get("affinity") or {}
        return PodShape(
            ns, kind, name,
            cpu=quantity(requests.get("cpu"), f"{where} spec.resources.requests.cpu"),
            memory=quantity(requests.get("memory"), f"{where} spec.resources.requests.memory"),
            ready=int(status.get("readyInstances") or 0),
            node_selector=dict(affinity.get("nodeSelector") or {}),
            tolerations=list(affinity.get("tolerations") or []),
        )  # fmt: skip
    pod = (spec.get("template") or {}).get("spec") or {}
    cpu, mem = _requests(pod, where)
    return PodShape(
        ns, kind, name, cpu=cpu, memory=mem, ready=int(status.get("readyReplicas") or 0),
        node_selector=dict(pod.get("nodeSelector") or {}), affinity=copy.deepcopy(pod.get("affinity") or {}),
        tolerations=list(pod.get("tolerations") or []),
    )  # fmt: skip


def _label_value(text: str) -> str:
    """A label value (at most 63 characters): the text, or its head and a hash when longer."""
    if len(text) <= 63:
        return text
    return f"{text[:52]}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def placeholder_name(namespace: str, policy: str) -> str:
    """``headroom-<policy>-<hash of namespace/policy>``, at most 63 characters: two policies never
    share one (``a-b/c`` and ``a/b-c`` differ in the hash), and a Deployment of the user's own is
    unlikely to bear it (one that does is never adopted: ``Kube.create_placeholder``)."""
    digest = hashlib.sha256(f"{namespace}/{policy}".encode()).hexdigest()[:8]
    return f"headroom-{policy[:44].rstrip('-.')}-{digest}"


def placeholder_labels(namespace: str, policy: str) -> dict[str, str]:
    return {MANAGED_BY: "peakscale", COMPONENT: "node-headroom", POLICY_NS: _label_value(namespace), POLICY: _label_value(policy)}


def _pinned_affinity(affinity: dict, namespace: str) -> dict:
    """The affinity with every pod (anti-)affinity term naming the target's namespace."""
    out = copy.deepcopy(affinity)
    for kind in ("podAffinity", "podAntiAffinity"):
        section = out.get(kind) or {}
        for term in section.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            if not term.get("namespaces") and term.get("namespaceSelector") is None:
                term["namespaces"] = [namespace]
        for weighted in section.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
            term = weighted.get("podAffinityTerm") or {}
            if not term.get("namespaces") and term.get("namespaceSelector") is None:
                term["namespaces"] = [namespace]
    return out


def placeholder_deployment(*, policy_namespace: str, policy: str, shape: PodShape, replicas: int, priority_class: str, planned: int | None, event: str) -> dict:
    """The placeholder Deployment for one policy's target, in the policy's (the target's) namespace."""
    labels = placeholder_labels(policy_namespace, policy)
    pod: dict = {
        "priorityClassName": priority_class,
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65535, "runAsGroup": 65535, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "pause",
                "image": PAUSE_IMAGE,
                "resources": {"requests": shape.requests, "limits": shape.requests},
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
            }
        ],
    }
    if shape.node_selector:
        pod["nodeSelector"] = dict(shape.node_selector)
    if shape.affinity:
        pod["affinity"] = _pinned_affinity(shape.affinity, shape.namespace)
    if shape.tolerations:
        pod["tolerations"] = list(shape.tolerations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": placeholder_name(policy_namespace, policy),
            "namespace": policy_namespace,
            "labels": labels,
            "annotations": headroom_annotations(policy_namespace, policy, shape, planned, event),
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "Recreate"},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def headroom_annotations(policy_namespace: str, policy: str, shape: PodShape, planned: int | None, event: str) -> dict[str, str]:
    out = {A_POLICY: f"{policy_namespace}/{policy}", A_TARGET: f"{shape.kind} {shape.namespace}/{shape.name}", A_EVENT: event}
    if planned is not None:
        out[A_PLANNED] = str(planned)
    return out


def served_policy(obj: dict) -> tuple[str, str] | None:
    """(namespace, name) of the policy a placeholder serves, from its annotation."""
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(A_POLICY, "")
    ns, _, name = value.partition("/")
    return (ns, name) if ns and name else None
