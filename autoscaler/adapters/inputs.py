"""What ``plan`` and ``promo review`` read: ScalingPolicies and each policy's demand history.

Policies come from a YAML file of ScalingPolicy resources, or one ad-hoc policy built from
options. History comes from a trace file (read like a backtest's: each value the demand of the
period starting at its timestamp, seen once that period is over) or from Prometheus (as the
controller reads it). Errors a user can cause are ``InputError``; an unreachable Prometheus is
``HistoryUnavailable`` (exit 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from pathlib import Path

import numpy as np
from zoneinfo import ZoneInfo

from autoscaler.adapters import yamlsafe
from autoscaler.errors import HistoryUnavailable, InputError, did_you_mean
from autoscaler.core.resources import ScalingPolicySpec, parse_policy

if TYPE_CHECKING:
    from autoscaler.adapters.trace_files import TraceFormat


@dataclass(frozen=True)
class PolicyDoc:
    name: str
    namespace: str
    labels: dict[str, str]
    spec: ScalingPolicySpec


def load_policies(
    path: Path | None,
    *,
    only: list[str] | None,
    capacity_per_replica: float | None,
    lead_time: str,
    min_replicas: int,
    max_replicas: int,
    mode: str = "hpa-floor",
    namespace: str = "default",
) -> list[PolicyDoc]:
    """The policies of a YAML file, or of every ``.yaml`` file in a folder (what ``peakscale render``
    writes: documents of other kinds are passed over), ``only`` those named; or one built from the
    options."""
    if path is not None:
        docs = [d for d in _policy_documents(path) if not (isinstance(d, dict) and d.get("kind") not in (None, "ScalingPolicy"))]
        if not docs:
            raise InputError("--policies", f"no ScalingPolicy in {str(path)!r}", "give the YAML of ScalingPolicy resources, or the folder peakscale render writes")
    else:
        if capacity_per_replica is None:
            raise InputError("--capacity-per-replica", "required without --policies", "give the demand one replica serves, or --policies FILE")
        docs = [
            {
                "metadata": {"name": "default", "namespace": namespace},
                "spec": {
                    "targetRef": {"kind": "Deployment", "name": "workload"},
                    "mode": mode,
                    "metric": {"query": "demand", "capacityPerReplica": capacity_per_replica},
                    "leadTime": lead_time,
                    "minReplicas": min_replicas,
                    "maxReplicas": max_replicas,
                },
            }
        ]
        try:
            return policies_of(docs, only, namespace=namespace)
        except InputError as exc:
            # the policy was built from options: name the option, not a document nobody wrote
            field = exc.where.rsplit(".spec.", 1)[-1]
            named = [opt for key, opt in OPTION_OF.items() if key.rsplit(".", 1)[-1] in exc.problem]
            option = OPTION_OF.get(field) or (named[0] if named else "--lead-time")
            raise InputError(option, exc.problem.replace("leadTime", "--lead-time").replace("minReplicas", "--min-replicas").replace("maxReplicas", "--max-replicas"), exc.fix) from None
    return policies_of(docs, only, namespace=namespace)


def _policy_documents(path: Path) -> list:
    files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()) if path.is_dir() else [path]
    docs: list = []
    for file in files:
        data = yamlsafe.read_bytes(file, f"--policies {file.name}")
        docs.extend(yamlsafe.load_all(data, f"--policies {file.name}"))
    return docs


#: the spec field behind each option of a policy built from options
OPTION_OF = {
    "leadTime": "--lead-time",
    "minReplicas": "--min-replicas",
    "maxReplicas": "--max-replicas",
    "metric.capacityPerReplica": "--capacity-per-replica",
    "metric.targetUtilization": "--target-utilization",
    "mode": "--mode",
}


def require_named(only: list[str] | None, names: list[str], shown: list[str]) -> None:
    """Every name ``--policy`` gives is one of ``names``; else the one not there is refused,
    naming the policies (``shown``) and the closest."""
    for wanted in only or []:
        if wanted not in names:
            raise InputError("--policy", f"no policy named {wanted!r}", f"{did_you_mean(wanted, names)}policies: {', '.join(shown[:12]) or 'none'}")


def policies_of(docs: list[dict], only: list[str] | None = None, *, skipped: list[InputError] | None = None, namespace: str = "default") -> list[PolicyDoc]:
    """The policies of ``docs`` (only those named ``only``). A document that does not parse is the
    user's error; with ``skipped`` (objects the API server holds, which one bad one must not keep
    from the others) it is added there instead and left out."""
    out = []
    names = sorted({str((d.get("metadata") or {}).get("name", "?")) for d in docs if isinstance(d, dict)})
    require_named(only, names, names)
    for doc in docs:
        if not isinstance(doc, dict):
            raise InputError("--policies", "each document must be a ScalingPolicy mapping", "give a YAML file of ScalingPolicy resources")
        meta = doc.get("metadata") or {}
        if only and meta.get("name") not in only:
            continue
        try:
            spec = parse_policy(doc)
        except InputError as exc:
            if skipped is None:
                raise
            skipped.append(exc)
            continue
        out.append(PolicyDoc(meta.get("name", "?"), meta.get("namespace") or namespace, meta.get("labels") or {}, spec))
    if not out:
        raise InputError("--policy", "no policy left", "check --policies and --policy")
    return out


def one_history_source(trace: Path | None, prometheus_url: str | None) -> None:
    """History comes from exactly one of a trace file and Prometheus."""
    if trace is None and prometheus_url is None:
        raise InputError("--prometheus-url", "no history to plan from", "give --prometheus-url URL (or set PEAKSCALE_PROMETHEUS_URL), or --trace FILE offline")
    if trace is not None and prometheus_url is not None:
        raise InputError("--trace", "given with --prometheus-url (or PEAKSCALE_PROMETHEUS_URL)", "give one history source")


def trace_history(path: Path, zone: ZoneInfo, *, strict: bool = False, fmt: TraceFormat | None = None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """A trace as the controller's Prometheus would hold it: (times, values, first, end) where
    ``first``/``end`` bound the trace's periods."""
    from autoscaler.core.backtest import controller_view
    from autoscaler.adapters.trace_files import TraceFormat, load_trace

    series = load_trace(path, zone, strict=strict, fmt=fmt or TraceFormat())
    times, values = controller_view(series)
    return times, values, int(series.times_s[0]), int(series.times_s[-1]) + series.step_s


def prometheus_history(url: str, policy: PolicyDoc, *, now_s: float, history_s: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A policy's history from Prometheus (its query, its step), over ``history_s`` (default: the
    policy's forecast history), however old its newest sample."""
    from autoscaler.adapters.prometheus import HistoryCache, render_query
    from autoscaler.errors import MetricsUnavailable

    spec = policy.spec
    query = render_query(spec.metric.query, namespace=policy.namespace, target=spec.target_ref.name, policy=policy.name)
    try:
        series = HistoryCache(url).history(
            query,
            now_s=now_s,
            history_s=history_s or spec.forecast_settings().history_s,
            step_s=spec.step_s,
            stale_after_s=10**12,
            ceiling=spec.plausible_demand,
        )
    except MetricsUnavailable as exc:
        raise HistoryUnavailable(f"policy {policy.name}: {exc}") from None
    if len(series.times_s) < 3:
        raise HistoryUnavailable(f"policy {policy.name}: not enough history to forecast")
    return series.times_s, series.values
