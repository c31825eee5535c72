"""PostgresCluster: PostgreSQL through the CloudNativePG operator.

The operator comes from its pinned Helm chart (a Helm release, ordered before its custom
resources); the ``Cluster`` holds a primary and read replicas (``instances`` has a scale
subresource, which peakscale writes: read capacity takes a replica clone, so the lead time is
long), and a PgBouncer ``Pooler`` fronts the primary. The Cluster is ``protect``-ed (unless the
config says ``protect: false``, as a developer's disposable cluster does): its data outlives a
careless ``pulumi destroy``. ``installOperator: false`` leaves the operator to whoever installed it
in the cluster already (its CRDs must be there).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.config import DatabaseConfig, StackConfig
from autoscaler.core.resources import TargetRef
from stacks.contract import ScaleContract, contract_of
from stacks.workload import labels

CHART_REPO = "https://cloudnative-pg.github.io/charts"
ZONE_KEY = "topology.kubernetes.io/zone"
CNPG_API = "postgresql.cnpg.io/v1"


class PostgresCluster(pulumi.ComponentResource):
    def __init__(self, name: str, config: DatabaseConfig, stack: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("peakscale:stacks:PostgresCluster", name, None, opts)
        self.config, self.stack, self.name = config, stack, name
        self.ns = ns = stack.namespace
        self.base = base = config.name
        self.labels = labels(base, "database", "database", stack.environment)

        operator = [self._operator()] if config.install_operator else []
        cluster = k8s.apiextensions.CustomResource(
            f"{name}-cluster",
            api_version=CNPG_API,
            kind="Cluster",
            metadata={"name": base, "namespace": ns, "labels": self.labels},
            spec=self._cluster_spec(),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=operator,
                protect=config.protect,
                # peakscale scales read replicas through the Cluster's scale subresource
                ignore_changes=["spec.instances"],
            ),
        )
        if config.backup.enabled:
            k8s.apiextensions.CustomResource(
                f"{name}-backup-schedule",
                api_version=CNPG_API,
                kind="ScheduledBackup",
                metadata={"name": f"{base}-daily", "namespace": ns, "labels": self.labels},
                spec={"schedule": config.backup.cron_utc(), "backupOwnerReference": "self", "cluster": {"name": base}},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster]),
            )
        self._pooler(cluster)
        self.contract = self._contract()
        self.read_write = f"{base}-rw.{ns}.svc.cluster.local:5432"
        self.read_only = f"{base}-ro.{ns}.svc.cluster.local:5432"
        self.pooled = f"{base}-pooler-rw.{ns}.svc.cluster.local:5432"
        self.pooled_read_only = f"{base}-pooler-ro.{ns}.svc.cluster.local:5432"
        self.app_secret = f"{base}-app"
        self.register_outputs(
            {"readWrite": self.read_write, "readOnly": self.read_only, "pooled": self.pooled, "pooledReadOnly": self.pooled_read_only, "appSecretName": self.app_secret, "scaleContract": self.contract.as_output()}
        )

    def _operator(self) -> k8s.helm.v3.Release:
        """The CloudNativePG operator, from its pinned chart, in its own namespace."""
        config = self.config
        operator_ns = k8s.core.v1.Namespace(
            f"{self.name}-operator-ns",
            metadata={"name": config.operator_namespace, "labels": {"app.kubernetes.io/part-of": "peakscale"}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        return k8s.helm.v3.Release(
            f"{self.name}-operator",
            name="cnpg",
            chart="cloudnative-pg",
            version=config.operator_chart_version,
            namespace=config.operator_namespace,
            repository_opts={"repo": CHART_REPO},
            values={"monitoring": {"podMonitorEnabled": config.monitoring}, "crds": {"create": True}},
            atomic=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[operator_ns]),
        )

    def _cluster_spec(self) -> dict[str, Any]:
        """The Cluster: a primary and read replicas spread over zones (prod) or hosts, backups when on."""
        config = self.config
        storage = {"size": config.storage.size}
        if config.storage.storage_class:
            storage["storageClass"] = config.storage.storage_class
        spec: dict[str, Any] = {
            "instances": config.instances,
            "imageName": config.image_name,
            "primaryUpdateStrategy": "unsupervised",
            "storage": storage,
            "resources": config.resources.as_k8s(),
            "postgresql": {"parameters": dict(config.parameters)},
            "affinity": self._placement(),
            "monitoring": {"enablePodMonitor": config.monitoring},
            "bootstrap": {"initdb": {"database": "app", "owner": "app"}},
            "inheritedMetadata": {"labels": self.labels},
        }
        if spread := self._spread():
            spec["topologySpreadConstraints"] = spread
        if config.wal_storage is not None:
            spec["walStorage"] = {"size": config.wal_storage.size}
        backup = config.backup
        if backup.enabled:
            store: dict[str, Any] = {
                "destinationPath": backup.destination_path,
                "s3Credentials": {
                    "accessKeyId": {"name": backup.credentials_secret, "key": "ACCESS_KEY_ID"},
                    "secretAccessKey": {"name": backup.credentials_secret, "key": "ACCESS_SECRET_KEY"},
                },
                "wal": {"compression": "gzip"},
            }
            if backup.endpoint_url:
                store["endpointURL"] = backup.endpoint_url
            spec["backup"] = {"barmanObjectStore": store, "retentionPolicy": backup.retention_policy}
        return spec

    def _placement(self) -> dict[str, Any]:
        """Never two instances on one node (required in prod); in prod the instances spread evenly
        over the zones the stack declares (a spread, not a zone anti-affinity: that would cap the
        Cluster at one instance per zone, below the replicas peakscale may add for a peak)."""
        prod, zones = self.stack.prod, self.stack.zones
        affinity: dict[str, Any] = {"enablePodAntiAffinity": True, "topologyKey": "kubernetes.io/hostname", "podAntiAffinityType": "required" if prod else "preferred"}
        if prod and zones:
            affinity["nodeAffinity"] = {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": ZONE_KEY, "operator": "In", "values": list(zones)}]}]}
            }
        return affinity

    def _spread(self) -> list[dict[str, Any]]:
        if not (self.stack.prod and self.stack.zones):
            return []
        return [{"maxSkew": 1, "topologyKey": ZONE_KEY, "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"cnpg.io/cluster": self.base}}}]

    def _pooler(self, cluster: k8s.apiextensions.CustomResource) -> None:
        """PgBouncer in front of the primary (rw) and of the replicas (ro): the replicas peakscale
        adds for a peak serve pooled reads, not only unpooled ones through ``-ro``."""
        for kind in ("rw", "ro"):
            self._one_pooler(cluster, kind)

    def _one_pooler(self, cluster: k8s.apiextensions.CustomResource, kind: str) -> None:
        config = self.config
        k8s.apiextensions.CustomResource(
            f"{self.name}-pooler" if kind == "rw" else f"{self.name}-pooler-{kind}",
            api_version=CNPG_API,
            kind="Pooler",
            metadata={"name": f"{self.base}-pooler-{kind}", "namespace": self.ns, "labels": self.labels},
            spec={
                "cluster": {"name": self.base},
                "instances": config.pooler_instances,
                "type": kind,
                "pgbouncer": {"poolMode": config.pool_mode, "parameters": {"max_client_conn": "2000", "default_pool_size": "50"}},
                "monitoring": {"enablePodMonitor": config.monitoring},
                # the operator's pod template: PgBouncer gets requests and limits like every container
                "template": {"metadata": {"labels": self.labels}, "spec": {"containers": [{"name": "pgbouncer", "resources": config.pooler_resources.as_k8s()}]}},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster]),
        )

    def _contract(self) -> ScaleContract:
        """Read replicas: the demand is the read transactions the replicas serve (committed on the
        instances in recovery: a hot standby runs only reads), not every commit, writes included,
        which a replica cannot take; the lead time is the pod start plus the clone of the volume."""
        config = self.config
        reads = f'sum(rate(cnpg_pg_stat_database_xact_commit{{namespace="{self.ns}",datname="app"}}[1m]) and on (pod) (cnpg_pg_replication_in_recovery{{namespace="{self.ns}"}} == 1))'
        contract = contract_of(
            config.scaling,
            tier="database",
            target=TargetRef(api_version=CNPG_API, kind="Cluster", name=self.base),
            namespace=self.ns,
            default_method="scale",
            metric_query=reads,
            reason=f"read replicas through the Cluster's instances scale subresource (a clone of {config.storage.size} at {config.clone_rate}: ~{config.clone_s // 60} min)",
        )
        return contract.model_copy(update={"lead_time_s": config.scaling.lead_time_s + config.clone_s})
