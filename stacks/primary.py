"""The primary-only Service of a Sentinel-mode RedisCache, for clients that are not Sentinel-aware.

Each data pod runs ``peakscale redis-role`` beside Redis (``autoscaler.adapters.redis_role``): it
keeps the pod's ``peakscale.io/redis-role`` label on its Redis' role, and ``<name>-primary`` selects
``primary``. The pods run as a ServiceAccount of their own that may get and patch the StatefulSet's
own pods (by name, up to the policy's maxReplicas) and nothing else.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from autoscaler.adapters.redis_role import ROLE_LABEL
from stacks import redis_conf
from stacks.workload import restricted_container_security


def role_rules(statefulset: str, pods: int) -> list[dict[str, Any]]:
    """What the data pods' ServiceAccount may do: read and label the StatefulSet's own pods."""
    return [{"apiGroups": [""], "resources": ["pods"], "resourceNames": [f"{statefulset}-{i}" for i in range(pods)], "verbs": ["get", "patch"]}]


class PrimaryService:
    """Declared by ``RedisCache`` in Sentinel mode, before its StatefulSet (which runs the sidecar)."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self.account = f"{cache.base}-node"
        child = pulumi.ResourceOptions(parent=cache)
        meta = {"name": self.account, "namespace": cache.ns, "labels": cache.labels}
        k8s.core.v1.ServiceAccount(f"{cache.name}-node-sa", metadata=meta, automount_service_account_token=True, opts=child)
        pods = max(cache.config.replicas, cache.config.scaling.max_replicas)
        k8s.rbac.v1.Role(f"{cache.name}-role-label", metadata=meta, rules=role_rules(cache.statefulset_name, pods), opts=child)
        k8s.rbac.v1.RoleBinding(
            f"{cache.name}-role-label-binding", metadata=meta,
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": self.account},
            subjects=[{"kind": "ServiceAccount", "name": self.account, "namespace": cache.ns}],
            opts=child,
        )  # fmt: skip
        k8s.core.v1.Service(
            f"{cache.name}-primary",
            metadata={"name": f"{cache.base}-primary", "namespace": cache.ns, "labels": cache.labels},
            spec={"type": "ClusterIP", "selector": {**cache.match, ROLE_LABEL: "primary"}, "ports": [{"name": "redis", "port": redis_conf.REDIS_PORT, "targetPort": "redis"}]},
            opts=child,
        )

    def container(self) -> dict[str, Any]:
        cache = self.cache
        image = cache.config.role_label_image
        command = ["peakscale", "redis-role"] + (["--tls-ca-file", f"{redis_conf.TLS_DIR}/ca.crt"] if cache.tls else [])
        return {
            "name": "role-label", "image": image.ref, "imagePullPolicy": image.pull_policy, "command": command,
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                cache.password_env("REDISCLI_AUTH", "redis-password"),
            ],
            "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}},
            "securityContext": restricted_container_security(),
            "volumeMounts": cache.tls_mounts(),
        }  # fmt: skip
