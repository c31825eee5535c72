"""The composition root: the tiers the stack config enables, and what the stack exports.

``main()`` is what ``pulumi up`` runs (through ``stacks/__main__.py``) and what ``peakscale
render`` runs under the official mocks.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from stacks.cache import RedisCache
from stacks.config import StackConfig, load_stack_config
from stacks.controller import PeakscaleController
from stacks.database import PostgresCluster
from stacks.edge import LiveEdge


def build(config: StackConfig) -> dict[str, pulumi.ComponentResource]:
    namespace = k8s.core.v1.Namespace(
        "namespace",
        metadata={
            "name": config.namespace,
            "labels": {
                "app.kubernetes.io/part-of": "peakscale",
                "peakscale.io/environment": config.environment,
                "pod-security.kubernetes.io/enforce": "baseline",
            },
        },
    )
    after_namespace = pulumi.ResourceOptions(depends_on=[namespace])
    tiers: dict[str, pulumi.ComponentResource] = {}
    if config.cache is not None:
        tiers["cache"] = RedisCache(config.cache.name, config.cache, config, after_namespace)
    if config.edge is not None:
        tiers["edge"] = LiveEdge(config.edge.name, config.edge, config, after_namespace)
    if config.database is not None:
        tiers["database"] = PostgresCluster(config.database.name, config.database, config, after_namespace)
    if config.controller is not None:
        contracts = [tier.contract for tier in tiers.values()]
        tiers["controller"] = PeakscaleController("peakscale", config.controller, config, contracts, after_namespace)
    return tiers


def export(tiers: dict[str, pulumi.ComponentResource]) -> None:
    contracts = {}
    if "cache" in tiers:
        cache = tiers["cache"]
        pulumi.export("cacheEndpoint", cache.endpoint)
        pulumi.export("cacheMode", cache.config.mode)
        if cache.config.mode == "sentinel":
            pulumi.export("sentinelAddress", cache.endpoint)
            pulumi.export("sentinelMasterName", "mymaster")
        pulumi.export("cacheSecretName", cache.secret_name)
        contracts["cache"] = cache.contract.as_output()
    if "edge" in tiers:
        edge = tiers["edge"]
        pulumi.export("edgeIngestUrl", edge.ingest_url)
        pulumi.export("edgePlaybackUrl", edge.playback_url)
        contracts["edge"] = edge.contract.as_output()
    if "database" in tiers:
        db = tiers["database"]
        pulumi.export("databaseReadWrite", db.read_write)
        pulumi.export("databaseReadOnly", db.read_only)
        pulumi.export("databasePooled", db.pooled)
        pulumi.export("databaseSecretName", db.app_secret)
        contracts["database"] = db.contract.as_output()
    pulumi.export("scaleContracts", contracts)
    if "controller" in tiers:
        pulumi.export("controllerNamespace", tiers["controller"].release.namespace)
        pulumi.export("scalingPolicies", tiers["controller"].policy_names)


def main() -> None:
    config = load_stack_config()
    export(build(config))
