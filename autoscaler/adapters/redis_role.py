"""Keeps a Redis pod's role on the pod as a label, for a Service that selects the primary only.

Sentinel moves the primary; clients that are not Sentinel-aware need an address that follows it. Each
data pod runs this beside Redis (``peakscale redis-role``): it reads ``ROLE`` from its own Redis and
patches its own pod's ``peakscale.io/redis-role`` label (``primary`` or ``replica``) when it changes,
as Bitnami's chart does. The ``<name>-primary`` Service selects ``primary``. A demoted primary's label
follows within one look (``every``); in that window writes to it fail with READONLY, which clients
retry. Its ServiceAccount may patch the StatefulSet's own pods and nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from autoscaler.adapters.kube import Kube
from autoscaler.errors import KubeError

ROLE_LABEL = "peakscale.io/redis-role"
log = logging.getLogger("peakscale.redis-role")


def role_of(client: redis.Redis) -> str:
    """``primary``, ``replica``, or '' when Redis does not answer (the label is then left as it is)."""
    try:
        role = client.execute_command("ROLE")[0]
    except redis.RedisError:
        return ""
    role = role.decode() if isinstance(role, bytes) else str(role)
    return {"master": "primary", "slave": "replica"}.get(role, "")


def label(kube: Kube, namespace: str, pod: str, role: str) -> None:
    kube.guard()
    kube.core.patch_namespaced_pod(pod, namespace, {"metadata": {"labels": {ROLE_LABEL: role}}})
    kube.writes += 1


def keep_labelled(kube: Kube, namespace: str, pod: str, client: redis.Redis, *, every_s: float, looks: int | None = None, sleep: Callable[[float], None] = time.sleep) -> str:
    """Look every ``every_s`` (``looks`` times, None: until stopped), label on a change and again every
    minute (a label someone removed comes back); return the last role labelled."""
    labelled, since = "", 0.0
    done = 0
    while looks is None or done < looks:
        role = role_of(client)
        if role and (role != labelled or since >= 60):
            try:
                label(kube, namespace, pod, role)
                if role != labelled:
                    log.info("pod %s/%s is the %s", namespace, pod, role)
                labelled, since = role, 0.0
            except KubeError as exc:
                log.warning("cannot label pod %s/%s %s: %s", namespace, pod, role, exc)
        done += 1
        if looks is None or done < looks:
            sleep(every_s)
            since += every_s
    return labelled
