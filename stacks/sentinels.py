"""The Sentinels of a Sentinel-mode RedisCache: a fixed set of three, a StatefulSet of their own.

Apart from the data nodes peakscale scales, so a raise or a lower never moves the quorum (2 of 3)
nor leaves departed Sentinels counted: each keeps one id across restarts (from its pod name,
``START_SENTINEL``), and a sidecar resets a Sentinel whose replicas went in a scale-in
(``RESET_DEPARTED``). The RedisCache's client Service (``<name>:26379``) selects them; they reach
the data nodes inside the namespace.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks import redis_conf
from stacks.workload import disruption_budget, labels, restricted_container_security, selector, spread, tcp_probe

SMALL = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}


def sentinel_labels(cache: Any) -> dict[str, str]:
    """The Sentinels' labels: the cache's, with the component ``sentinel`` (the client Service selects them)."""
    return labels(cache.base, "sentinel", "cache", cache.stack.environment)


class SentinelSet:
    """Declared by ``RedisCache`` in Sentinel mode (``cache`` is it: names, labels, config)."""

    def __init__(self, cache: Any, *, depends_on: list[pulumi.Resource]) -> None:
        self.cache = cache
        self.name = f"{cache.base}-sentinel"
        self.labels = sentinel_labels(cache)
        self.match = selector(self.labels)
        self.headless = f"{self.name}-headless"
        child = pulumi.ResourceOptions(parent=cache)
        port = [{"name": "sentinel", "port": redis_conf.SENTINEL_PORT, "targetPort": "sentinel"}]
        k8s.core.v1.Service(
            f"{cache.name}-sentinel-headless",
            metadata={"name": self.headless, "namespace": cache.ns, "labels": self.labels},
            spec={"clusterIP": "None", "publishNotReadyAddresses": True, "selector": self.match, "ports": port},
            opts=child,
        )
        self.statefulset = k8s.apps.v1.StatefulSet(
            f"{cache.name}-sentinel",
            metadata={"name": self.name, "namespace": cache.ns, "labels": self.labels},
            spec=self._spec(),
            opts=pulumi.ResourceOptions(parent=cache, depends_on=depends_on),
        )
        disruption_budget(self.name, cache.ns, self.match, self.labels, cache)
        k8s.networking.v1.NetworkPolicy(
            f"{cache.name}-sentinel-netpol",
            metadata={"name": self.name, "namespace": cache.ns, "labels": self.labels},
            spec={
                "podSelector": {"matchLabels": self.match},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": redis_conf.SENTINEL_PORT, "protocol": "TCP"}]}],
            },
            opts=child,
        )

    def _env(self) -> list[dict[str, Any]]:
        cache = self.cache
        return [
            cache.password_env("REDIS_PASSWORD", "redis-password"),
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_FQDN", "value": f"$(POD_NAME).{self.headless}.{cache.ns}.svc.cluster.local"},
            {"name": "PRIMARY_FQDN", "value": f"{cache.statefulset_name}-0.{cache.fqdn_suffix}"},
            {"name": "SENTINEL_SERVICE", "value": f"{cache.base}.{cache.ns}.svc.cluster.local"},
            *cache.tls_env(),
        ]

    def _spec(self) -> dict[str, Any]:
        cache, env = self.cache, self._env()
        image = {"image": cache.config.image.ref, "imagePullPolicy": cache.config.image.pull_policy}
        config_mount = [{"name": "config", "mountPath": "/etc/redis"}, *cache.tls_mounts()]
        containers = [
            {
                "name": "sentinel", **image, "command": ["/bin/sh", "/etc/redis/start-sentinel.sh"], "env": env,
                "ports": [{"name": "sentinel", "containerPort": redis_conf.SENTINEL_PORT}], "resources": SMALL,
                "readinessProbe": tcp_probe("sentinel"), "livenessProbe": tcp_probe("sentinel", initial_s=20),
                "securityContext": restricted_container_security(),
                "volumeMounts": [*config_mount, {"name": "sentinel", "mountPath": "/sentinel"}],
            },
            {
                # after a scale-in: forget the replicas that went (SENTINEL RESET), one Sentinel at a time
                "name": "reset-departed", **image, "command": ["/bin/sh", "/etc/redis/reset-departed.sh"], "env": env,
                "resources": SMALL, "securityContext": restricted_container_security(), "volumeMounts": config_mount,
            },
        ]  # fmt: skip
        return {
            "replicas": redis_conf.SENTINELS,
            "serviceName": self.headless,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": self.match},
            "template": {
                "metadata": {"labels": self.labels, "annotations": {"peakscale.io/config-hash": cache.config_hash}},
                "spec": {
                    "securityContext": {"runAsUser": 999, "runAsGroup": 999, "fsGroup": 999, "runAsNonRoot": True},
                    "enableServiceLinks": False,
                    "containers": containers,
                    "volumes": [
                        {"name": "config", "configMap": {"name": f"{cache.base}-config", "defaultMode": 0o550}},
                        {"name": "sentinel", "emptyDir": {}},
                        *cache.tls_volumes(),
                    ],
                    **spread(self.match, cache.stack),
                },
            },
        }
