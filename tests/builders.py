"""Builders for tests: synthetic series (a daily pattern plus events of one kind that triple the
load) and the Kubernetes objects of one web tier (Deployment, HPA, ScalingPolicy, a promotion), the
same for the real API server and the double."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from autoscaler.core.calendar import PromotionEvent
from autoscaler.core.timezones import wall_seconds

START = datetime(2026, 10, 1)


def daily_series(days: int, step_s: int = 60, base: float = 1000.0, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = days * 86400 // step_s
    times = wall_seconds(START) + np.arange(n, dtype=np.int64) * step_s
    hour = (times % 86400) / 3600
    shape = 1.0 + 0.6 * np.sin((hour - 8) / 24 * 2 * np.pi)
    values = base * shape * (1 + 0.03 * rng.standard_normal(n))
    return times, np.maximum(values, 0)


#: event hours vary from day to day, so daily seasonality alone cannot learn them
HOURS = (20, 11, 15, 21, 13, 19, 10, 16, 12, 17, 14, 18)


def nightly_events(days: int, minutes: int = 120, kind: str = "kol-live") -> list[PromotionEvent]:
    """One event a day, at a different hour each day (the last at an hour never seen before)."""
    return [
        PromotionEvent(
            name=f"{kind}-{d}",
            start=START + timedelta(days=d, hours=HOURS[d % len(HOURS)]),
            end=START + timedelta(days=d, hours=HOURS[d % len(HOURS)], minutes=minutes),
            kind=kind,
        )
        for d in range(days)
    ]


def add_surges(times: np.ndarray, values: np.ndarray, events: list[PromotionEvent], factor: float = 3.0, ramp_s: int = 300) -> np.ndarray:
    """Multiply the load inside each event window, ramping up over ``ramp_s`` from the start."""
    out = values.copy()
    for e in events:
        inside = (times >= e.start_s) & (times < e.end_s)
        ramp = np.clip((times - e.start_s) / ramp_s, 0, 1)
        out[inside] *= 1 + (factor - 1) * ramp[inside]
    return out


#: the demand query of the web tier's policy
QUERY = 'sum(shop_demand{app="web"})'


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def hpa(ns: str, name: str, *, minimum: int = 3, maximum: int = 100, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}, "minReplicas": minimum, "maxReplicas": maximum},
    }


def policy_spec(**extra: Any) -> dict[str, Any]:
    spec = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "mode": "hpa-floor",
        "metric": {"query": QUERY, "capacityPerReplica": 1000, "targetUtilization": 0.7},
        "leadTime": "10m",
        "minReplicas": 3,
        "maxReplicas": 80,
        "cooldown": "20m",
        "forecast": {"history": "2d", "step": "1m"},
    }
    spec.update(extra)
    return spec


def scaling_policy(name: str, namespace: str, labels: dict[str, str], **spec: Any) -> dict[str, Any]:
    """A ScalingPolicy manifest, as a --policies file holds it."""
    return {"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": spec}


def edge_policy(labels: dict[str, str]) -> dict[str, Any]:
    """The live-stream edge's ScalingPolicy of the CLI tests (namespace live, 100 a replica)."""
    return scaling_policy(
        "edge", "live", labels,
        targetRef={"kind": "Deployment", "name": "live-edge"}, metric={"query": "x", "capacityPerReplica": 100}, leadTime="10m", minReplicas=2, maxReplicas=300,
    )  # fmt: skip


def web_tier(ns: str, *, event_start: float, expected_peak: float = 50_000, hpa_max: int = 100, policy_max: int = 80, mode: str = "hpa-floor", extra_spec: dict[str, Any] | None = None, status: bool = False) -> list[dict[str, Any]]:
    """The web tier (3 replicas, its HPA, its ScalingPolicy) and a one-hour flash sale at ``event_start``.
    ``status``: with the status a cluster's own controllers would write (for the double, which has none)."""
    deployment: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns}, "spec": {"replicas": 3}}
    autoscaler = hpa(ns, "web", maximum=hpa_max)
    if status:
        deployment["status"] = {"replicas": 3}
        autoscaler["status"] = {"currentReplicas": 3, "desiredReplicas": 3}
    spec = policy_spec(mode=mode, maxReplicas=policy_max, **(extra_spec or {}))
    return [
        deployment,
        autoscaler,
        {"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "web", "namespace": ns, "labels": {"tier": "web"}}, "spec": spec},
        {
            "apiVersion": "peakscale.io/v1alpha1", "kind": "PromotionEvent", "metadata": {"name": "flash-sale", "namespace": ns},
            "spec": {"title": "Flash sale 20:00", "start": iso(event_start), "end": iso(event_start + 3600), "kind": "flash-sale", "expectedPeak": expected_peak},
        },
    ]  # fmt: skip
