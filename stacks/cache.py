"""RedisCache: Redis on Kubernetes, in Sentinel mode (primary + replicas + Sentinel) or cluster mode.

What it owns: the password (generated, a Pulumi secret, stored in a Kubernetes Secret and passed to
Redis through the environment only), redis.conf and sentinel.conf rendered from validated settings,
a StatefulSet with persistence, spread and anti-affinity, a PodDisruptionBudget, a NetworkPolicy,
the redis_exporter sidecar with its Service and ServiceMonitor, and in cluster mode the Job that
forms the cluster. Its scale contract: Sentinel mode scales read replicas through the
StatefulSet's scale subresource (peakscale owns ``spec.replicas``); cluster mode scales by shards (a
primary and its replicas): the controller grows the StatefulSet by whole shards and runs the reshard
step as a Job (``autoscaler.controller.reshard``), as the ServiceAccount this component makes for it,
which may patch its ScalingPolicy's status and nothing else. A raise's lead time is the pod start
plus moving the whole dataset (``maxmemory`` on each of the fewest shards) at ``reshardThroughput``.
"""

from __future__ import annotations

import math
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from stacks import redis_conf
from stacks.primary import PrimaryService
from stacks.sentinels import SentinelSet, sentinel_labels
from stacks.config import CacheConfig, StackConfig
from autoscaler.core.resources import GROUP, POLICY_PLURAL, TargetRef
from stacks.contract import ScaleContract, contract_of, policy_name
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
        self.config, self.stack, self.name = config, stack, name
        self.ns = stack.namespace
        self.base = config.name
        self.labels = labels(self.base, "redis", "cache", stack.environment)
        self.match = selector(self.labels)
        self.child = pulumi.ResourceOptions(parent=self)
        self.headless = f"{self.base}-headless"
        self.statefulset_name = f"{self.base}-node"
        self.fqdn_suffix = f"{self.headless}.{self.ns}.svc.cluster.local"
        self.secret_name = f"{self.base}-auth"
        self.sentinel_mode = config.mode == "sentinel"
        self.tls = config.tls.secret_name is not None
        self.nodes = config.replicas if self.sentinel_mode else config.shards * (1 + config.replicas_per_shard)

        secret = self._secret()
        files, config_map = self._config()
        self.config_hash = _digest(files)
        ports = self._services()
        # Sentinel mode: a Service that follows the primary, for clients that are not Sentinel-aware
        self.primary = PrimaryService(self) if self.sentinel_mode else None
        self.statefulset = self._statefulset(files, depends_on=[secret, config_map])
        if self.sentinel_mode:
            SentinelSet(self, depends_on=[secret, config_map])
        else:
            self._bootstrap()
            self._reshard_account()
        disruption_budget(self.base, self.ns, self.match, self.labels, self)
        self._network_policy(ports)
        if config.metrics.enabled:
            metrics_endpoint(name, self.base, self.ns, self.match, self.labels, EXPORTER_PORT, config.metrics, self)
        self.contract = self._contract()
        port = redis_conf.SENTINEL_PORT if self.sentinel_mode else redis_conf.REDIS_PORT
        self.endpoint = f"{self.base}.{self.ns}.svc.cluster.local:{port}"
        # clients connect as user `app` with the Secret's `app-password`
        self.register_outputs({"endpoint": self.endpoint, "mode": config.mode, "secretName": self.secret_name, "user": "app", "passwordKey": "app-password", "scaleContract": self.contract.as_output()})

    def _secret(self) -> k8s.core.v1.Secret:
        """The passwords, Pulumi secrets, in one Kubernetes Secret, a key per Redis user: the default
        user's (Sentinel, replicas, probes, operators), the app's (user ``app``: data commands, no
        administration) and the exporter's (user ``exporter``: INFO and the like, no key): the stack's
        secret config ``cachePassword``, ``cacheAppPassword``, ``cacheExporterPassword`` when set, else
        generated (pulumi-random) and kept in the state."""
        config = pulumi.Config("peakscale")
        passwords = {}
        for key, setting in (("redis-password", "cachePassword"), ("app-password", "cacheAppPassword"), ("exporter-password", "cacheExporterPassword")):
            supplied = config.get_secret(setting)
            if supplied is None:
                resource = f"{self.name}-password" if key == "redis-password" else f"{self.name}-{key}"
                supplied = random.RandomPassword(resource, length=32, special=False, opts=self.child).result
            passwords[key] = pulumi.Output.secret(supplied)
        return k8s.core.v1.Secret(
            f"{self.name}-auth",
            metadata={"name": self.secret_name, "namespace": self.ns, "labels": self.labels},
            type="Opaque",
            string_data=passwords,
            opts=self.child,
        )

    def _config(self) -> tuple[dict[str, str], k8s.core.v1.ConfigMap]:
        """redis.conf, sentinel.conf and the start scripts, in a ConfigMap."""
        config = self.config
        self.redis_conf = redis_conf.render_redis_conf(config.redis, mode=config.mode, persistence=config.persistence.enabled, tls=self.tls)
        files = {"redis.conf": self.redis_conf, "ready.sh": redis_conf.READY}
        self.sentinel_conf: str | None = None
        if self.sentinel_mode:
            # the Sentinels are a fixed set of their own (stacks.sentinels): the quorum never moves
            self.sentinel_conf = redis_conf.render_sentinel_conf(primary_host=f"{self.statefulset_name}-0.{self.fqdn_suffix}", quorum=redis_conf.QUORUM, tls=self.tls)
            files["sentinel.conf"] = self.sentinel_conf
            files["start-redis.sh"] = redis_conf.START_REDIS_SENTINEL_MODE
            files["start-sentinel.sh"] = redis_conf.START_SENTINEL
            files["reset-departed.sh"] = redis_conf.RESET_DEPARTED
            files["pre-stop.sh"] = redis_conf.PRE_STOP_FAILOVER
        else:
            files["start-redis.sh"] = redis_conf.START_REDIS_CLUSTER_MODE
            files["bootstrap.sh"] = redis_conf.BOOTSTRAP_CLUSTER
        config_map = k8s.core.v1.ConfigMap(
            f"{self.name}-config", metadata={"name": f"{self.base}-config", "namespace": self.ns, "labels": self.labels}, data=files, opts=self.child
        )
        return files, config_map

    def _services(self) -> list[dict[str, Any]]:
        """The headless Service of the StatefulSet and the clients' Services; returns the nodes' ports.
        Sentinel mode: ``<name>`` is the Sentinels' (clients ask them for the primary), ``<name>-read``
        the data nodes' (reads); cluster mode: ``<name>`` is the nodes'."""
        ports: list[dict[str, Any]] = [{"name": "redis", "port": redis_conf.REDIS_PORT, "targetPort": "redis"}]
        if not self.sentinel_mode:
            ports.append({"name": "bus", "port": redis_conf.BUS_PORT, "targetPort": "bus"})
        k8s.core.v1.Service(
            f"{self.name}-headless",
            metadata={"name": self.headless, "namespace": self.ns, "labels": self.labels},
            spec={"clusterIP": "None", "publishNotReadyAddresses": True, "selector": self.match, "ports": ports},
            opts=self.child,
        )
        if self.sentinel_mode:
            sentinels = selector(sentinel_labels(self))
            k8s.core.v1.Service(
                f"{self.name}-service",
                metadata={"name": self.base, "namespace": self.ns, "labels": self.labels},
                spec={"type": "ClusterIP", "selector": sentinels, "ports": [{"name": "sentinel", "port": redis_conf.SENTINEL_PORT, "targetPort": "sentinel"}]},
                opts=self.child,
            )
        k8s.core.v1.Service(
            f"{self.name}-read" if self.sentinel_mode else f"{self.name}-service",
            metadata={"name": f"{self.base}-read" if self.sentinel_mode else self.base, "namespace": self.ns, "labels": self.labels},
            spec={"type": "ClusterIP", "selector": self.match, "ports": ports},
            opts=self.child,
        )
        return ports

    def _env(self) -> list[dict[str, Any]]:
        """The Redis and Sentinel containers' environment: the password first (the bootstrap Job reuses it)."""
        env: list[dict[str, Any]] = [
            self.password_env("REDIS_PASSWORD", "redis-password"),
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_FQDN", "value": f"$(POD_NAME).{self.fqdn_suffix}"},
        ]
        if self.sentinel_mode:
            env += [
                {"name": "PRIMARY_FQDN", "value": f"{self.statefulset_name}-0.{self.fqdn_suffix}"},
                {"name": "SENTINEL_SERVICE", "value": f"{self.base}.{self.ns}.svc.cluster.local"},
            ]
        return env + self.tls_env()

    def tls_env(self) -> list[dict[str, Any]]:
        """What every script's redis-cli adds on a TLS stack (nothing without)."""
        return [{"name": "REDIS_CLI_TLS", "value": redis_conf.REDIS_CLI_TLS}] if self.tls else []

    def tls_mounts(self) -> list[dict[str, Any]]:
        return [{"name": "tls", "mountPath": redis_conf.TLS_DIR, "readOnly": True}] if self.tls else []

    def tls_volumes(self) -> list[dict[str, Any]]:
        return [{"name": "tls", "secret": {"secretName": self.config.tls.secret_name, "defaultMode": 0o440}}] if self.tls else []

    def password_env(self, variable: str, key: str) -> dict[str, Any]:
        return {"name": variable, "valueFrom": {"secretKeyRef": {"name": self.secret_name, "key": key}}}

    def _containers(self) -> list[dict[str, Any]]:
        """Redis, Sentinel (in Sentinel mode) and the exporter (with metrics)."""
        config, env = self.config, self._env()
        mounts = [
            {"name": "data", "mountPath": "/data"},
            {"name": "config", "mountPath": "/etc/redis"},
            {"name": "tmp", "mountPath": "/tmp"},
            # the password fragment redis.conf includes: written 0600 at start, kept in memory
            {"name": "auth", "mountPath": redis_conf.AUTH_DIR},
            *self.tls_mounts(),
        ]
        redis_ports = [{"name": "redis", "containerPort": redis_conf.REDIS_PORT}]
        if not self.sentinel_mode:
            redis_ports.append({"name": "bus", "containerPort": redis_conf.BUS_PORT})
        containers: list[dict[str, Any]] = [
            {
                "name": "redis", "image": config.image.ref, "imagePullPolicy": config.image.pull_policy,
                # the app's and the exporter's users are declared at start, from their own keys
                "command": ["/bin/sh", "/etc/redis/start-redis.sh"], "ports": redis_ports,
                "env": [*env, self.password_env("APP_PASSWORD", "app-password"), self.password_env("EXPORTER_PASSWORD", "exporter-password")],
                "resources": config.resources.as_k8s(),
                # ready once it serves the data: a replica linked and past its full sync
                "readinessProbe": exec_probe(["/bin/sh", "/etc/redis/ready.sh"], initial_s=5),
                "livenessProbe": tcp_probe("redis", initial_s=20),
                "startupProbe": tcp_probe("redis", initial_s=2, period_s=5, failures=60),
                "securityContext": restricted_container_security(),
                "volumeMounts": mounts,
            }
        ]  # fmt: skip
        if self.sentinel_mode:
            # a terminating primary hands over first (a planned failover, not a timeout)
            containers[0]["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sh", "/etc/redis/pre-stop.sh"]}}}
        if self.primary is not None:
            containers.append(self.primary.container())
        if config.metrics.enabled:
            containers.append(
                {
                    "name": "exporter", "image": config.exporter_image.ref, "imagePullPolicy": config.exporter_image.pull_policy,
                    "env": [
                        {"name": "REDIS_ADDR", "value": f"{'rediss' if self.tls else 'redis'}://127.0.0.1:6379"},
                        {"name": "REDIS_USER", "value": "exporter"},
                        self.password_env("REDIS_PASSWORD", "exporter-password"),
                        # over the pod's loopback, whose address the certificate does not name
                        *([{"name": "REDIS_EXPORTER_SKIP_TLS_VERIFICATION", "value": "true"}] if self.tls else []),
                    ],
                    "ports": [{"name": "metrics", "containerPort": EXPORTER_PORT}],
                    "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
                    "readinessProbe": tcp_probe("metrics"),
                    "securityContext": restricted_container_security(),
                }
            )  # fmt: skip
        return containers

    def _volumes(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(the pod's volumes, the StatefulSet's claim templates): data on a claim with persistence."""
        persistence = self.config.persistence
        volumes: list[dict[str, Any]] = [
            {"name": "config", "configMap": {"name": f"{self.base}-config", "defaultMode": 0o550}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "auth", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            *self.tls_volumes(),
        ]
        if not persistence.enabled:
            volumes.append({"name": "data", "emptyDir": {}})
            return volumes, []
        claim_spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": persistence.size}}}
        if persistence.storage_class:
            claim_spec["storageClassName"] = persistence.storage_class
        return volumes, [{"metadata": {"name": "data", "labels": self.match}, "spec": claim_spec}]

    def _statefulset(self, files: dict[str, str], *, depends_on: list[pulumi.Resource]) -> k8s.apps.v1.StatefulSet:
        """The Redis nodes: persistence, spread and anti-affinity, restarted when the config changes."""
        volumes, claims = self._volumes()
        pod_spec = {
            "securityContext": {"runAsUser": REDIS_UID, "runAsGroup": REDIS_UID, "fsGroup": REDIS_UID, "runAsNonRoot": True},
            "terminationGracePeriodSeconds": 30,
            "enableServiceLinks": False,
            **({"serviceAccountName": self.primary.account} if self.primary is not None else {"automountServiceAccountToken": False}),
            "containers": self._containers(),
            "volumes": volumes,
            **spread(self.match, self.stack),
        }
        sts_spec: dict[str, Any] = {
            "replicas": self.nodes,
            "serviceName": self.headless,
            "podManagementPolicy": "OrderedReady" if self.sentinel_mode else "Parallel",
            "selector": {"matchLabels": self.match},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": self.labels, "annotations": {"peakscale.io/config-hash": self.config_hash}}, "spec": pod_spec},
        }
        if claims:
            sts_spec["volumeClaimTemplates"] = claims
            sts_spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Retain", "whenScaled": "Retain"}
        owned_by_autoscaler = self.config.scaling.method != "observe"
        return k8s.apps.v1.StatefulSet(
            f"{self.name}-node",
            metadata={"name": self.statefulset_name, "namespace": self.ns, "labels": self.labels},
            spec=sts_spec,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=depends_on,
                # peakscale scales the read replicas, or the shards: never fight it on `pulumi up`
                ignore_changes=["spec.replicas"] if owned_by_autoscaler else None,
            ),
        )

    def _bootstrap(self) -> None:
        """Cluster mode: the Job that forms the cluster once every node is up."""
        config = self.config
        env = [
            self._env()[0],
            {"name": "NODES", "value": str(self.nodes)},
            {"name": "STATEFULSET", "value": self.statefulset_name},
            {"name": "HEADLESS", "value": self.fqdn_suffix},
            {"name": "REPLICAS_PER_SHARD", "value": str(config.replicas_per_shard)},
            *self.tls_env(),
        ]
        container = {
            "name": "bootstrap", "image": config.image.ref, "imagePullPolicy": config.image.pull_policy,
            "command": ["/bin/sh", "/etc/redis/bootstrap.sh"], "env": env,
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
            "securityContext": restricted_container_security(),
            "volumeMounts": [{"name": "config", "mountPath": "/etc/redis"}, *self.tls_mounts()],
        }  # fmt: skip
        k8s.batch.v1.Job(
            f"{self.name}-bootstrap",
            metadata={"name": f"{self.base}-bootstrap", "namespace": self.ns, "labels": self.labels},
            spec={
                "backoffLimit": 20,
                "ttlSecondsAfterFinished": 86400,
                "template": {
                    "metadata": {"labels": {**self.labels, "app.kubernetes.io/component": "bootstrap"}},
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "securityContext": {"runAsUser": REDIS_UID, "runAsGroup": REDIS_UID, "runAsNonRoot": True},
                        "containers": [container],
                        "volumes": [{"name": "config", "configMap": {"name": f"{self.base}-config", "defaultMode": 0o550}}, *self.tls_volumes()],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.statefulset]),
        )

    def _network_policy(self, ports: list[dict[str, Any]]) -> None:
        """Clients and the nodes themselves from inside the namespace; Prometheus from monitoring."""
        client_ports = [{"port": p["port"], "protocol": "TCP"} for p in ports]
        k8s.networking.v1.NetworkPolicy(
            f"{self.name}-netpol",
            metadata={"name": self.base, "namespace": self.ns, "labels": self.labels},
            spec={
                "podSelector": {"matchLabels": self.match},
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
            opts=self.child,
        )

    def _contract(self) -> ScaleContract:
        """How peakscale may scale this tier: read replicas in Sentinel mode, shards in cluster mode."""
        contract = contract_of(
            self.config.scaling,
            tier="cache",
            target=TargetRef(api_version="apps/v1", kind="StatefulSet", name=self.statefulset_name),
            namespace=self.ns,
            default_method="scale",
            metric_query=f'sum(rate(redis_commands_processed_total{{namespace="{self.ns}",service="{self.base}-metrics"}}[1m]))',
            reason=(
                "read replicas through the StatefulSet's scale subresource"
                if self.sentinel_mode
                else "shards: the StatefulSet by whole shards, then the reshard Job moves the slots (a lower moves them first)"
            ),
        )
        if self.sentinel_mode:
            return contract
        from autoscaler.core.reshard import SLOTS, parse_size, reshard_seconds
        from autoscaler.core.resources import Reshard, SecretKey

        config = self.config
        # the dataset fits the fewest shards the policy may keep: maxmemory on each of them
        dataset = config.redis.maxmemory_bytes * config.scaling.min_replicas
        reshard = Reshard(
            dataset_size=f"{math.ceil(dataset / 2**20)}Mi", throughput=config.reshard_throughput, replicas_per_shard=config.replicas_per_shard,
            password_secret=SecretKey(name=self.secret_name, key="redis-password"), service_account_name=self.reshard_account, tls_secret=config.tls.secret_name,
        )  # fmt: skip
        moving = reshard_seconds(SLOTS, dataset, parse_size(config.reshard_throughput, field="reshardThroughput", per_second=True))
        return contract.model_copy(update={"reshard": reshard, "lead_time_s": contract.lead_time_s + moving})

    @property
    def reshard_account(self) -> str:
        return f"{self.base}-reshard"

    def _reshard_account(self) -> None:
        """Cluster mode: the ServiceAccount the reshard Job runs as, allowed to report into its
        ScalingPolicy's status and nothing else (it reaches Redis over the network, not the API)."""
        name = self.reshard_account
        meta = {"name": name, "namespace": self.ns, "labels": self.labels}
        k8s.core.v1.ServiceAccount(f"{self.name}-reshard-sa", metadata=meta, automount_service_account_token=True, opts=self.child)
        policy = policy_name("cache", self.statefulset_name)
        k8s.rbac.v1.Role(
            f"{self.name}-reshard-role", metadata=meta,
            rules=[{"apiGroups": [GROUP], "resources": [f"{POLICY_PLURAL}/status"], "resourceNames": [policy], "verbs": ["get", "patch"]}],
            opts=self.child,
        )  # fmt: skip
        k8s.rbac.v1.RoleBinding(
            f"{self.name}-reshard-binding", metadata=meta,
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            subjects=[{"kind": "ServiceAccount", "name": name, "namespace": self.ns}],
            opts=self.child,
        )  # fmt: skip


def _digest(files: dict[str, str]) -> str:
    import hashlib

    h = hashlib.sha256()
    for key in sorted(files):
        h.update(key.encode() + b"\0" + files[key].encode() + b"\0")
    return h.hexdigest()[:16]
