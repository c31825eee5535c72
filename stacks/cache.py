"""RedisCache: Redis on Kubernetes, in Sentinel mode (primary + replicas + Sentinel) or cluster mode.

What it owns: the password (generated, a Pulumi secret, stored in a Kubernetes Secret and passed to
Redis through the environment only), redis.conf and sentinel.conf rendered from validated settings,
a StatefulSet with persistence, spread and anti-affinity, a PodDisruptionBudget, a NetworkPolicy,
the redis_exporter sidecar with its Service and ServiceMonitor, and in cluster mode the Job that
forms the cluster. Its scale contract: Sentinel mode scales read replicas through the
StatefulSet's scale subresource (peakscale owns ``spec.replicas``); cluster mode is observed only,
since growing a cluster means add-node and a rebalance that peakscale does not run by itself.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from stacks import redis_conf
from stacks.config import CacheConfig, StackConfig
from stacks.contract import ScaleContract, TargetRef
from stacks.workload import (
    disruption_budget,
    exec_probe,
    labels,
    restricted_container_security,
    metrics_endpoint,
    selector,
    spread,
    tcp_probe,
)

REDIS_UID = 999  # the official image's redis user
EXPORTER_PORT = 9121


class RedisCache(pulumi.ComponentResource):
    """A Redis tier. ``config`` is validated before any child is declared."""

    def __init__(self, name: str, config: CacheConfig, stack: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("peakscale:stacks:RedisCache", name, None, opts)
        self.config = config
        ns = stack.namespace
        base = config.name
        all_labels = labels(base, "redis", "cache", stack.environment)
        match = selector(all_labels)
        child = pulumi.ResourceOptions(parent=self)
        headless = f"{base}-headless"
        statefulset = f"{base}-node"
        fqdn_suffix = f"{headless}.{ns}.svc.cluster.local"
        self.secret_name = f"{base}-auth"

        password = random.RandomPassword(f"{name}-password", length=32, special=False, opts=child)
        secret = k8s.core.v1.Secret(
            f"{name}-auth",
            metadata={"name": self.secret_name, "namespace": ns, "labels": all_labels},
            type="Opaque",
            string_data={"redis-password": pulumi.Output.secret(password.result)},
            opts=child,
        )

        sentinel_mode = config.mode == "sentinel"
        nodes = config.replicas if sentinel_mode else config.shards * (1 + config.replicas_per_shard)
        quorum = max(1, config.scaling.min_replicas // 2 + 1) if sentinel_mode else 0
        self.redis_conf = redis_conf.render_redis_conf(config.redis, mode=config.mode, persistence=config.persistence.enabled)
        files = {"redis.conf": self.redis_conf}
        if sentinel_mode:
            self.sentinel_conf: str | None = redis_conf.render_sentinel_conf(primary_host=f"{statefulset}-0.{fqdn_suffix}", quorum=quorum)
            files["sentinel.conf"] = self.sentinel_conf
            files["start-redis.sh"] = redis_conf.START_REDIS_SENTINEL_MODE
            files["start-sentinel.sh"] = redis_conf.START_SENTINEL
        else:
            self.sentinel_conf = None
            files["start-redis.sh"] = redis_conf.START_REDIS_CLUSTER_MODE
            files["bootstrap.sh"] = redis_conf.BOOTSTRAP_CLUSTER
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata={"name": f"{base}-config", "namespace": ns, "labels": all_labels}, data=files, opts=child
        )

        ports = [{"name": "redis", "port": redis_conf.REDIS_PORT, "targetPort": "redis"}]
        if sentinel_mode:
            ports.append({"name": "sentinel", "port": redis_conf.SENTINEL_PORT, "targetPort": "sentinel"})
        else:
            ports.append({"name": "bus", "port": redis_conf.BUS_PORT, "targetPort": "bus"})
        k8s.core.v1.Service(
            f"{name}-headless",
            metadata={"name": headless, "namespace": ns, "labels": all_labels},
            spec={"clusterIP": "None", "publishNotReadyAddresses": True, "selector": match, "ports": ports},
            opts=child,
        )
        k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": base, "namespace": ns, "labels": all_labels},
            spec={"type": "ClusterIP", "selector": match, "ports": ports},
            opts=child,
        )

        env = [
            {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": self.secret_name, "key": "redis-password"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_FQDN", "value": f"$(POD_NAME).{fqdn_suffix}"},
        ]
        if sentinel_mode:
            env += [
                {"name": "PRIMARY_FQDN", "value": f"{statefulset}-0.{fqdn_suffix}"},
                {"name": "SENTINEL_SERVICE", "value": f"{base}.{ns}.svc.cluster.local"},
            ]
        ping = ["sh", "-c", 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG']
        mounts = [
            {"name": "data", "mountPath": "/data"},
            {"name": "config", "mountPath": "/etc/redis"},
            {"name": "tmp", "mountPath": "/tmp"},
            # the password fragment redis.conf includes: written 0600 at start, kept in memory
            {"name": "auth", "mountPath": redis_conf.AUTH_DIR},
        ]
        redis_ports = [{"name": "redis", "containerPort": redis_conf.REDIS_PORT}]
        if not sentinel_mode:
            redis_ports.append({"name": "bus", "containerPort": redis_conf.BUS_PORT})
        containers = [
            {
                "name": "redis",
                "image": config.image.ref,
                "imagePullPolicy": config.image.pull_policy,
                "command": ["/bin/sh", "/etc/redis/start-redis.sh"],
                "env": env,
                "ports": redis_ports,
                "resources": config.resources.as_k8s(),
                "readinessProbe": exec_probe(ping, initial_s=5),
                "livenessProbe": tcp_probe("redis", initial_s=20),
                "startupProbe": tcp_probe("redis", initial_s=2, period_s=5, failures=60),
                "securityContext": restricted_container_security(),
                "volumeMounts": mounts,
            }
        ]
        if sentinel_mode:
            containers.append(
                {
                    "name": "sentinel",
                    "image": config.image.ref,
                    "imagePullPolicy": config.image.pull_policy,
                    "command": ["/bin/sh", "/etc/redis/start-sentinel.sh"],
                    "env": env,
                    "ports": [{"name": "sentinel", "containerPort": redis_conf.SENTINEL_PORT}],
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
                    "readinessProbe": tcp_probe("sentinel"),
                    "livenessProbe": tcp_probe("sentinel", initial_s=20),
                    "securityContext": restricted_container_security(),
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/redis"}, {"name": "sentinel", "mountPath": "/sentinel"}],
                }
            )
        if config.metrics.enabled:
            containers.append(
                {
                    "name": "exporter",
                    "image": config.exporter_image.ref,
                    "imagePullPolicy": config.exporter_image.pull_policy,
                    "env": [
                        {"name": "REDIS_ADDR", "value": "redis://127.0.0.1:6379"},
                        {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": self.secret_name, "key": "redis-password"}}},
                    ],
                    "ports": [{"name": "metrics", "containerPort": EXPORTER_PORT}],
                    "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
                    "readinessProbe": tcp_probe("metrics"),
                    "securityContext": restricted_container_security(),
                }
            )
        volumes = [
            {"name": "config", "configMap": {"name": f"{base}-config", "defaultMode": 0o550}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "auth", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        ]
        if sentinel_mode:
            volumes.append({"name": "sentinel", "emptyDir": {}})
        claims = []
        if config.persistence.enabled:
            claim_spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": config.persistence.size}}}
            if config.persistence.storage_class:
                claim_spec["storageClassName"] = config.persistence.storage_class
            claims.append({"metadata": {"name": "data", "labels": match}, "spec": claim_spec})
        else:
            volumes.append({"name": "data", "emptyDir": {}})
        pod_spec = {
            "securityContext": {"runAsUser": REDIS_UID, "runAsGroup": REDIS_UID, "fsGroup": REDIS_UID, "runAsNonRoot": True},
            "terminationGracePeriodSeconds": 30,
            "enableServiceLinks": False,
            "containers": containers,
            "volumes": volumes,
            **spread(match, stack),
        }
        sts_spec = {
            "replicas": nodes,
            "serviceName": headless,
            "podManagementPolicy": "OrderedReady" if sentinel_mode else "Parallel",
            "selector": {"matchLabels": match},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": all_labels, "annotations": {"peakscale.io/config-hash": _digest(files)}},
                "spec": pod_spec,
            },
        }
        if claims:
            sts_spec["volumeClaimTemplates"] = claims
            sts_spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Retain", "whenScaled": "Retain"}
        owned_by_autoscaler = sentinel_mode
        self.statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-node",
            metadata={"name": statefulset, "namespace": ns, "labels": all_labels},
            spec=sts_spec,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[secret, config_map],
                # peakscale scales the read replicas: never fight it on `pulumi up`
                ignore_changes=["spec.replicas"] if owned_by_autoscaler else None,
            ),
        )

        if not sentinel_mode:
            k8s.batch.v1.Job(
                f"{name}-bootstrap",
                metadata={"name": f"{base}-bootstrap", "namespace": ns, "labels": all_labels},
                spec={
                    "backoffLimit": 20,
                    "ttlSecondsAfterFinished": 86400,
                    "template": {
                        "metadata": {"labels": {**all_labels, "app.kubernetes.io/component": "bootstrap"}},
                        "spec": {
                            "restartPolicy": "OnFailure",
                            "securityContext": {"runAsUser": REDIS_UID, "runAsGroup": REDIS_UID, "runAsNonRoot": True},
                            "containers": [
                                {
                                    "name": "bootstrap",
                                    "image": config.image.ref,
                                    "imagePullPolicy": config.image.pull_policy,
                                    "command": ["/bin/sh", "/etc/redis/bootstrap.sh"],
                                    "env": [
                                        env[0],
                                        {"name": "NODES", "value": str(nodes)},
                                        {"name": "STATEFULSET", "value": statefulset},
                                        {"name": "HEADLESS", "value": fqdn_suffix},
                                        {"name": "REPLICAS_PER_SHARD", "value": str(config.replicas_per_shard)},
                                    ],
                                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
                                    "securityContext": restricted_container_security(),
                                    "volumeMounts": [{"name": "config", "mountPath": "/etc/redis"}],
                                }
                            ],
                            "volumes": [{"name": "config", "configMap": {"name": f"{base}-config", "defaultMode": 0o550}}],
                        },
                    },
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.statefulset]),
            )

        disruption_budget(base, ns, match, all_labels, self)
        client_ports = [{"port": p["port"], "protocol": "TCP"} for p in ports]
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata={"name": base, "namespace": ns, "labels": all_labels},
            spec={
                "podSelector": {"matchLabels": match},
                "policyTypes": ["Ingress"],
                "ingress": [
                    # clients and the nodes themselves, inside the namespace
                    {"from": [{"podSelector": {}}], "ports": client_ports},
                    # Prometheus, from the monitoring namespace
                    {
                        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                        "ports": [{"port": EXPORTER_PORT, "protocol": "TCP"}],
                    },
                ],
            },
            opts=child,
        )
        if config.metrics.enabled:
            metrics_endpoint(name, base, ns, match, all_labels, EXPORTER_PORT, config.metrics, self)

        scaling = config.scaling
        self.contract = ScaleContract(
            tier="cache",
            target=TargetRef(api_version="apps/v1", kind="StatefulSet", name=statefulset, namespace=ns),
            method=scaling.method or ("scale" if sentinel_mode else "observe"),
            min_replicas=scaling.min_replicas if sentinel_mode else nodes,
            max_replicas=scaling.max_replicas if sentinel_mode else nodes,
            lead_time_s=scaling.lead_time_s,
            node_headroom=scaling.node_headroom.model_dump(by_alias=True) if scaling.node_headroom.enabled else None,
            metric_query=f'sum(rate(redis_commands_processed_total{{namespace="{ns}",service="{base}-metrics"}}[1m]))',
            capacity_per_replica=scaling.capacity_per_replica,
            reason=(
                "read replicas through the StatefulSet's scale subresource"
                if sentinel_mode
                else "cluster mode grows by add-node and rebalance: forecast published, capacity changed by operators"
            ),
        )
        self.endpoint = f"{base}.{ns}.svc.cluster.local:{redis_conf.SENTINEL_PORT if sentinel_mode else redis_conf.REDIS_PORT}"
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "mode": config.mode,
                "secretName": self.secret_name,
                "scaleContract": self.contract.as_output(),
            }
        )


def _digest(files: dict[str, str]) -> str:
    import hashlib

    h = hashlib.sha256()
    for key in sorted(files):
        h.update(key.encode() + b"\0" + files[key].encode() + b"\0")
    return h.hexdigest()[:16]
