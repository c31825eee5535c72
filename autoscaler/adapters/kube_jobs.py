"""The Jobs the controller runs for a resharding tier (``controller.reshard``), as plain JSON."""

from __future__ import annotations

import json
from typing import Any

from autoscaler.adapters.kube import FIELD_MANAGER, Kube
from autoscaler.errors import KubeConflict


def list_jobs(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    raw = kube.batch.list_namespaced_job(namespace, label_selector=selector, _preload_content=False)
    return list(json.loads(raw.data).get("items", []))


def create_job(kube: Kube, body: dict[str, Any]) -> bool:
    """Create the Job; False when one of its name exists (another leader, or a retry that landed,
    made it: the numbered name is the same step, so it is left to run)."""
    meta = body["metadata"]
    kube.guard()
    try:
        kube.batch.create_namespaced_job(meta["namespace"], body, field_manager=FIELD_MANAGER)
    except KubeConflict:
        return False
    kube.writes += 1
    return True
