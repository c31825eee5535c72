"""Stack configuration: structured Pulumi config loaded into pydantic models.

Set with ``pulumi config set --path peakscale:cache.replicas 3`` (or edit ``Pulumi.<stack>.yaml``).
Every key lives under the ``peakscale`` namespace: ``namespace``, ``environment``, ``zones``,
``cache``, ``edge``, ``database``. A bad value raises ``ConfigError`` naming the config path
(``peakscale:cache.maxmemory``), which fails the preview before any resource is declared.
"""

from __future__ import annotations

import math

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from autoscaler.core.defaults import MAX_COVERAGE, MIN_COVERAGE
from autoscaler.core.durations import parse_duration_s
from autoscaler.core.resources import NodeHeadroom, duration_field
from autoscaler.errors import ConfigError, dotted, validation_problem

_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)



class Model(_Model):
    """Config models take camelCase keys, like the Kubernetes objects they become."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, alias_generator=to_camel)


class Image(Model):
    """An image reference; pin it by tag or, better, by digest."""

    registry: str = "docker.io"
    repository: str
    tag: str
    digest: str | None = None
    pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"

    @field_validator("tag")
    @classmethod
    def _pinned(cls, tag: str) -> str:
        if not tag or tag == "latest":
            raise ValueError("pin the image by a version tag (not 'latest') or a digest")
        return tag

    @field_validator("digest")
    @classmethod
    def _digest(cls, digest: str | None) -> str | None:
        if digest is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise ValueError("a digest looks like sha256:<64 hex digits>")
        return digest

    @property
    def ref(self) -> str:
        base = f"{self.registry}/{self.repository}" if self.registry else self.repository
        return f"{base}:{self.tag}@{self.digest}" if self.digest else f"{base}:{self.tag}"


def _check_quantities(values: dict[str, str], what: str) -> dict[str, str]:
    for key, value in values.items():
        if key not in ("cpu", "memory", "ephemeral-storage"):
            raise ValueError(f"{what}: unknown resource {key!r} (cpu, memory, ephemeral-storage)")
        if not _QUANTITY.match(str(value)):
            raise ValueError(f"{what}.{key}: {value!r} is not a Kubernetes quantity such as 500m or 2Gi")
    return {k: str(v) for k, v in values.items()}


class Resources(Model):
    requests: dict[str, str]
    limits: dict[str, str]

    @field_validator("requests", "limits")
    @classmethod
    def _quantities(cls, values: dict[str, str], info) -> dict[str, str]:
        values = _check_quantities(values, info.field_name)
        if "cpu" not in values or "memory" not in values:
            raise ValueError(f"{info.field_name} needs cpu and memory")
        return values

    def as_k8s(self) -> dict[str, dict[str, str]]:
        return {"requests": dict(self.requests), "limits": dict(self.limits)}


class Persistence(Model):
    enabled: bool = True
    size: str = "8Gi"
    storage_class: str | None = None

    @field_validator("size")
    @classmethod
    def _size(cls, size: str) -> str:
        if not _QUANTITY.match(size):
            raise ValueError(f"{size!r} is not a quantity such as 20Gi")
        return size


class Scaling(Model):
    """What the autoscaler may do with the tier (becomes the tier's scale contract)."""

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=10, ge=1)
    lead_time: str = "5m"
    method: Literal["hpa-floor", "scale", "observe"] | None = None
    #: the demand one replica serves (in the unit of the tier's metric query)
    capacity_per_replica: float = Field(default=1000.0, gt=0)
    #: the share of demand inside promotion windows the tier's plan is sized to serve (the
    #: ScalingPolicy's spec.coverage; None: the CRD's default, 0.99)
    coverage: float | None = Field(default=None, ge=MIN_COVERAGE, le=MAX_COVERAGE)
    node_headroom: NodeHeadroom = NodeHeadroom()

    @field_validator("lead_time")
    @classmethod
    def _lead(cls, value: str) -> str:
        return duration_field(value, "leadTime", allow_zero=False)

    @model_validator(mode="after")
    def _bounds(self) -> Scaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas {self.min_replicas} is above maxReplicas {self.max_replicas}")
        return self

    @property
    def lead_time_s(self) -> int:
        return parse_duration_s(self.lead_time, field="leadTime")


class Tls(Model):
    """TLS for Redis, its Sentinels, replication and the cluster bus: a Secret of cert-manager's shape
    (tls.crt, tls.key, ca.crt) whose certificate names the pods (``*.<name>-headless.<namespace>.svc``,
    ``*.<name>-sentinel-headless.<namespace>.svc``, ``<name>.<namespace>.svc``). None: plain TCP."""

    secret_name: str | None = Field(default=None, min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class Metrics(Model):
    enabled: bool = True
    service_monitor: bool = True
    interval: str = "30s"


MAXMEMORY = re.compile(r"^[0-9]+(b|kb|mb|gb|k|m|g)?$", re.IGNORECASE)
POLICIES = Literal[
    "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"
]


#: a Redis container's memory limit over its maxmemory: room for the fork of a full sync (copy on
#: write) and the replication buffers
FORK_ROOM = 1.5


class RedisSettings(Model):
    """Settings rendered into redis.conf; checked here so that Redis never sees a bad file."""

    maxmemory: str = "1gb"
    maxmemory_policy: POLICIES = "allkeys-lru"
    appendonly: bool = True
    appendfsync: Literal["always", "everysec", "no"] = "everysec"
    save: list[tuple[int, int]] = [(900, 1), (300, 100)]
    timeout_s: int = Field(default=0, ge=0)
    tcp_keepalive_s: int = Field(default=300, ge=0)
    io_threads: int = Field(default=1, ge=1, le=128)

    @field_validator("maxmemory")
    @classmethod
    def _maxmemory(cls, value: str) -> str:
        if not MAXMEMORY.match(str(value)):
            raise ValueError(f"{value!r} is not a Redis memory size such as 512mb or 2gb")
        return str(value).lower()

    @property
    def maxmemory_bytes(self) -> int:
        """maxmemory as Redis reads it (k/m/g are powers of 1000, kb/mb/gb of 1024)."""
        digits = self.maxmemory.rstrip("bkmg")
        units = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
        unit = self.maxmemory[len(digits) :]
        # 0 for a value the validator would refuse (a test renders one to show Redis refuses it too)
        return int(digits) * units[unit] if digits.isdigit() and unit in units else 0


class CacheConfig(Model):
    name: str = "cache"
    mode: Literal["sentinel", "cluster"] = "sentinel"
    #: sentinel mode: primary + read replicas
    replicas: int = Field(default=3, ge=1, le=100)
    #: cluster mode
    shards: int = Field(default=3, ge=3, le=500)
    replicas_per_shard: int = Field(default=1, ge=0, le=5)
    image: Image = Image(repository="library/redis", tag="7.2.5")
    exporter_image: Image = Image(registry="docker.io", repository="oliver006/redis_exporter", tag="v1.62.0")
    redis: RedisSettings = RedisSettings()
    resources: Resources = Resources(requests={"cpu": "250m", "memory": "1536Mi"}, limits={"cpu": "1", "memory": "1536Mi"})
    persistence: Persistence = Persistence()
    metrics: Metrics = Metrics()
    scaling: Scaling = Scaling(min_replicas=3, max_replicas=9, lead_time="5m", capacity_per_replica=40000)
    tls: Tls = Tls()
    #: Sentinel mode: the image of the sidecar that keeps each pod's role as its label for the
    #: primary-only Service (``peakscale redis-role``: the controller's image)
    role_label_image: Image = Image(registry="ghcr.io", repository="peakscale/peakscale", tag="0.1.0")
    #: cluster mode: the migration throughput the reshard step is assumed to reach until it measured
    #: one (status.reshard); with maxmemory it sets the lead time of a raise
    reshard_throughput: str = "5MB/s"

    @field_validator("reshard_throughput")
    @classmethod
    def _throughput(cls, value: str) -> str:
        from autoscaler.core.reshard import parse_size

        parse_size(value, field="reshardThroughput", per_second=True)
        return value

    @model_validator(mode="after")
    def _sane(self) -> CacheConfig:
        if self.mode == "sentinel" and self.scaling.min_replicas > self.replicas:
            raise ValueError(f"scaling.minReplicas {self.scaling.min_replicas} is above replicas {self.replicas}")
        if self.mode == "cluster" and self.scaling.min_replicas < 3:
            raise ValueError(f"scaling.minReplicas {self.scaling.min_replicas} is below 3: in cluster mode replicas are shards, and a Redis Cluster keeps at least 3 primaries")
        if self.mode == "cluster" and not self.scaling.min_replicas <= self.shards <= self.scaling.max_replicas:
            raise ValueError(f"shards {self.shards} is outside scaling's [{self.scaling.min_replicas}, {self.scaling.max_replicas}] (in cluster mode replicas are shards)")
        from autoscaler.controller.headroom import quantity

        # a full sync forks the primary: the pages written while the RDB goes out are copied, beside
        # the replicas' output buffers; below 1.5x maxmemory the kernel kills Redis mid-sync
        limit, need = quantity(self.resources.limits["memory"], "resources.limits.memory"), FORK_ROOM * self.redis.maxmemory_bytes
        if limit < need:
            raise ValueError(f"resources.limits.memory {self.resources.limits['memory']} leaves no room to fork: give at least {math.ceil(need / 2**20)}Mi ({FORK_ROOM:g}x redis.maxmemory {self.redis.maxmemory}) or lower maxmemory")
        return self


class MetricsAdapter(Model):
    """prometheus-adapter from its pinned chart, serving the Pods metric the edges' HPA reads."""

    chart_version: str = "4.11.0"
    namespace: str = "monitoring"
    prometheus_url: str = Field(default="http://prometheus-operated.monitoring.svc", pattern=r"^https?://\S+$")


class EdgeConfig(Model):
    name: str = "live"
    origins: int = Field(default=2, ge=1, le=20)
    image: Image = Image(repository="ossrs/srs", tag="5.0.213")
    origin_resources: Resources = Resources(requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "2", "memory": "2Gi"})
    edge_resources: Resources = Resources(requests={"cpu": "1", "memory": "512Mi"}, limits={"cpu": "2", "memory": "1Gi"})
    #: how long a terminating edge may keep serving viewers before it is killed
    drain: str = "10m"
    #: viewer connections per edge the HPA aims for
    target_connections_per_pod: int = Field(default=800, ge=1)
    load_balancer_annotations: dict[str, str] = {}
    #: the viewers' address (a reserved IP the LoadBalancer is given, e.g. through the cloud's
    #: annotation): the edges' WebRTC candidate and the Service's loadBalancerIP. None: the pod IP,
    #: which a viewer outside the cluster cannot reach (fine for a dev cluster only)
    public_address: str | None = Field(default=None, pattern=r"^[0-9a-fA-F:.]+$")
    #: a hook SRS calls before accepting a stream (RTMP/WebRTC publish): it answers 0 to allow; None:
    #: anyone who reaches 1935 may publish (keep the origins internal then)
    on_publish: str | None = Field(default=None, pattern=r"^https?://\S+$")
    #: install prometheus-adapter with the rule that serves srs_clients to the edges' HPA (None: one
    #: is already installed with such a rule)
    metrics_adapter: MetricsAdapter | None = None
    metrics: Metrics = Metrics()
    scaling: Scaling = Scaling(min_replicas=2, max_replicas=40, lead_time="3m", capacity_per_replica=800)

    @field_validator("drain")
    @classmethod
    def _drain(cls, value: str) -> str:
        return duration_field(value, "drain", allow_zero=False)


class Backup(Model):
    enabled: bool = False
    destination_path: str = ""
    #: an S3-compatible store's endpoint (Alibaba OSS, MinIO), e.g. https://oss-cn-shanghai.aliyuncs.com
    endpoint_url: str | None = None
    credentials_secret: str = "pg-backup-credentials"
    retention_policy: str = "30d"
    #: the daily backup at this wall-clock time in ``timezone`` (its quiet hour, not 03:00 UTC,
    #: which is 11:00 in Shanghai); the operator's schedule runs in UTC
    at: str = Field(default="04:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from autoscaler.core.timezones import get_zone

        get_zone(value)
        return value

    def cron_utc(self) -> str:
        """The six-field cron (seconds first, as CloudNativePG reads it) in UTC for ``at`` in
        ``timezone``, at the zone's offset on 1 January (a zone with daylight saving moves it by
        an hour in summer: still its night)."""
        from datetime import datetime

        from autoscaler.core.timezones import get_zone

        hour, minute = (int(x) for x in self.at.split(":"))
        local = datetime(2026, 1, 1, hour, minute, tzinfo=get_zone(self.timezone))
        utc = local.astimezone(get_zone("UTC"))
        return f"0 {utc.minute} {utc.hour} * * *"

    @model_validator(mode="after")
    def _destination(self) -> Backup:
        if self.enabled and not self.destination_path.startswith(("s3://", "gs://", "https://")):
            raise ValueError("backup.destinationPath must be an s3://, gs:// or https:// object-store path")
        return self


class DatabaseConfig(Model):
    name: str = "pg"
    instances: int = Field(default=3, ge=1, le=20)
    postgres_version: str = "16.4"
    image_name: str = "ghcr.io/cloudnative-pg/postgresql:16.4"
    storage: Persistence = Persistence(size="50Gi")
    wal_storage: Persistence | None = None
    resources: Resources = Resources(requests={"cpu": "1", "memory": "4Gi"}, limits={"cpu": "2", "memory": "4Gi"})
    parameters: dict[str, str] = {"max_connections": "400", "shared_buffers": "1GB"}
    pooler_instances: int = Field(default=2, ge=1, le=20)
    pooler_resources: Resources = Resources(requests={"cpu": "100m", "memory": "64Mi"}, limits={"cpu": "1", "memory": "256Mi"})
    pool_mode: Literal["session", "transaction"] = "transaction"
    operator_chart_version: str = "0.22.1"
    operator_namespace: str = "cnpg-system"
    #: install the CloudNativePG operator from its pinned chart; false where one is installed
    #: already (one operator serves every namespace of a cluster, and a second stack in the same
    #: cluster must not install it again) or where its chart repository cannot be reached
    install_operator: bool = True
    #: ``protect`` the Cluster: ``pulumi destroy`` refuses to delete its data until unprotected
    protect: bool = True
    backup: Backup = Backup()
    monitoring: bool = True
    #: how fast a new replica clones the data (pg_basebackup from the primary): a replica serves
    #: after its pod starts (``scaling.leadTime``) plus the clone of ``storage.size`` at this rate
    clone_rate: str = "50MB/s"
    scaling: Scaling = Scaling(min_replicas=3, max_replicas=6, lead_time="5m", capacity_per_replica=2000)

    @field_validator("clone_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        from autoscaler.core.reshard import parse_size

        parse_size(value, field="cloneRate", per_second=True)
        return value

    @property
    def clone_s(self) -> int:
        """How long a new replica's clone takes: the volume at ``clone_rate``, x1.5 (a clone under a
        peak's load is slower than one measured idle; the whole volume, as the data may fill it)."""
        from autoscaler.controller.headroom import quantity
        from autoscaler.core.reshard import THROUGHPUT_MARGIN, parse_size

        return math.ceil(THROUGHPUT_MARGIN * quantity(self.storage.size, "storage.size") / parse_size(self.clone_rate, field="cloneRate", per_second=True))

    @field_validator("image_name")
    @classmethod
    def _pinned(cls, value: str) -> str:
        if ":" not in value.rsplit("/", 1)[-1] or value.endswith(":latest"):
            raise ValueError("pin the PostgreSQL image by a version tag, not 'latest'")
        return value


class ControllerConfig(Model):
    """The peakscale controller, installed from charts/peakscale, plus one ScalingPolicy per tier."""

    namespace: str = "peakscale-system"
    replicas: int = Field(default=2, ge=1, le=5)
    image: Image = Image(registry="ghcr.io", repository="peakscale/peakscale", tag="0.1.0")
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    prometheus_token_secret: str = ""
    interval: str = "30s"
    dry_run: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    service_monitor: bool = False
    #: empty: the stack's namespace
    watch_namespaces: list[str] = []
    resources: Resources = Resources(requests={"cpu": "100m", "memory": "256Mi"}, limits={"cpu": "1", "memory": "512Mi"})

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        return duration_field(value, "interval", allow_zero=False)

    @field_validator("prometheus_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("namespace")
    @classmethod
    def _ns(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a valid namespace name")
        return value


class StackConfig(Model):
    namespace: str = "peakscale"
    environment: Literal["dev", "staging", "prod"] = "dev"
    zones: list[str] = []
    cache: CacheConfig | None = None
    edge: EdgeConfig | None = None
    database: DatabaseConfig | None = None
    controller: ControllerConfig | None = None

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a valid namespace name (lowercase letters, digits, '-')")
        return value

    @property
    def prod(self) -> bool:
        return self.environment == "prod"


KEYS = ("namespace", "environment", "zones", "cache", "edge", "database", "controller")
#: config keys read as Pulumi secrets by the component that uses them, never into the model:
#: ``cachePassword`` (`pulumi config set --secret cachePassword ...`) is the cache's password where
#: the stack should not generate one
SECRET_KEYS = ("cachePassword",)


def parse_stack_config(raw: dict[str, Any], project: str = "peakscale") -> StackConfig:
    """Validate a mapping of config keys; raise ``ConfigError`` naming the config path."""
    raw = {k: v for k, v in raw.items() if k not in SECRET_KEYS}  # each read by its component
    for key in raw:
        if key not in KEYS:
            raise ConfigError(f"{project}:{key}", "unknown config key", f"known: {', '.join(KEYS + SECRET_KEYS)}")
    try:
        return StackConfig.model_validate(raw)
    except ValidationError as exc:
        loc, msg = validation_problem(exc.errors(), StackConfig)
        raise ConfigError(f"{project}:{dotted(loc) or 'config'}", msg) from None


def load_stack_config(project: str = "peakscale") -> StackConfig:
    """Read the stack's structured config through Pulumi."""
    import json

    import pulumi

    cfg = pulumi.Config(project)
    raw: dict[str, Any] = {}
    for key in KEYS:
        text = cfg.get(key)
        if text is None:
            continue
        try:
            raw[key] = json.loads(text)
        except json.JSONDecodeError:
            raw[key] = text  # a plain string such as the namespace
    return parse_stack_config(raw, project)
