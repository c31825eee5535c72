"""Stacks under the official Pulumi mocks: rendered once per stack config for the whole session."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.render import load_stack_file, render

REPO = Path(__file__).resolve().parents[2]

CLUSTER_MODE = {
    "namespace": "live-cluster",
    "environment": "prod",
    "zones": ["a", "b", "c"],
    "cache": {
        "name": "sessions",
        "mode": "cluster",
        "shards": 3,
        "replicasPerShard": 1,
        "redis": {"maxmemory": "2gb", "maxmemoryPolicy": "volatile-lru"},
        "resources": {"requests": {"cpu": "1", "memory": "3Gi"}, "limits": {"cpu": "2", "memory": "3Gi"}},
        "persistence": {"enabled": True, "size": "10Gi"},
        "scaling": {"minReplicas": 3, "maxReplicas": 9, "leadTime": "45m", "capacityPerReplica": 50000},
    },
}


#: a Sentinel-mode cache with TLS (its Secret cert-manager's): Redis, its Sentinels and their scripts
TLS_MODE = {
    "namespace": "live-tls",
    "environment": "dev",
    "cache": {"name": "secure", "tls": {"secretName": "secure-tls"}, "scaling": {"minReplicas": 1, "maxReplicas": 5, "capacityPerReplica": 20000}},
}


@pytest.fixture(scope="session")
def rendered():
    """{'dev': Rendered, 'prod': Rendered, 'cluster': Rendered, 'tls': Rendered}"""
    out = {stack: render(load_stack_file(REPO, stack), stack) for stack in ("dev", "prod")}
    out["cluster"] = render(CLUSTER_MODE, "cluster")
    out["tls"] = render(TLS_MODE, "tls")
    return out
