"""The Jobs the controller runs for a resharding tier (``controller.reshard``), as plain JSON."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from autoscaler.adapters.kube import FIELD_MANAGER, Kube


def list_jobs(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    raw = client.BatchV1Api(kube.api).list_namespaced_job(namespace, label_selector=selector, _preload_content=False)
    return list(json.loads(raw.data).get("items", []))


def create_job(kube: Kube, body: dict[str, Any]) -> bool:
    """Create the Job; False when one of its name exists (another leader, or a retry that landed,
    made it: the numbered name is the same step, so it is left to run)."""
    meta = body["metadata"]
    kube.guard()
    try:
        client.BatchV1Api(kube.api).create_namespaced_job(meta["namespace"], body, field_manager=FIELD_MANAGER)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    kube.writes += 1
    return True
