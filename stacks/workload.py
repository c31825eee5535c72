"""Pod-level building blocks every tier shares: labels, spreading, disruption budgets, probes.

Plain functions returning Kubernetes-shaped dicts (camelCase), so each tier reads like the
manifest it produces. Nothing here creates a resource except ``disruption_budget``.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from stacks.config import StackConfig

PART_OF = "peakscale"


def labels(instance: str, component: str, tier: str, environment: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": tier,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
        "peakscale.io/tier": tier,
        "peakscale.io/environment": environment,
    }


def selector(all_labels: dict[str, str]) -> dict[str, str]:
    keys = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component")
    return {k: all_labels[k] for k in keys}


def spread(match: dict[str, str], stack: StackConfig) -> dict:
    """Zone and node spread plus soft anti-affinity; hard zone spread in prod."""
    constraints = [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": match},
        }
    ]
    if stack.prod or stack.zones:
        constraints.insert(
            0,
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule" if stack.prod else "ScheduleAnyway",
                "labelSelector": {"matchLabels": match},
            },
        )
    affinity: dict = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": match}},
                }
            ]
        }
    }
    if stack.zones:
        affinity["nodeAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": list(stack.zones)}]}
                ]
            }
        }
    return {"topologySpreadConstraints": constraints, "affinity": affinity}


def restricted_container_security() -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def tcp_probe(port: int | str, *, initial_s: int = 5, period_s: int = 10, failures: int = 3) -> dict:
    return {
        "tcpSocket": {"port": port},
        "initialDelaySeconds": initial_s,
        "periodSeconds": period_s,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def exec_probe(command: list[str], *, initial_s: int = 5, period_s: int = 10, failures: int = 3) -> dict:
    return {
        "exec": {"command": command},
        "initialDelaySeconds": initial_s,
        "periodSeconds": period_s,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def disruption_budget(
    name: str, namespace: str, match: dict[str, str], all_labels: dict[str, str], parent: pulumi.Resource, *, max_unavailable: int = 1
) -> k8s.policy.v1.PodDisruptionBudget:
    return k8s.policy.v1.PodDisruptionBudget(
        f"{name}-pdb",
        metadata={"name": name, "namespace": namespace, "labels": all_labels},
        spec={"maxUnavailable": max_unavailable, "selector": {"matchLabels": match}},
        opts=pulumi.ResourceOptions(parent=parent),
    )


def service_monitor(
    name: str, namespace: str, match: dict[str, str], all_labels: dict[str, str], port: str, interval: str, parent: pulumi.Resource
) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        f"{name}-servicemonitor",
        api_version="monitoring.coreos.com/v1",
        kind="ServiceMonitor",
        metadata={"name": name, "namespace": namespace, "labels": all_labels},
        spec={
            "selector": {"matchLabels": match},
            "namespaceSelector": {"matchNames": [namespace]},
            "endpoints": [{"port": port, "interval": interval, "path": "/metrics"}],
        },
        opts=pulumi.ResourceOptions(parent=parent),
    )


def metrics_endpoint(
    logical: str, name: str, namespace: str, match: dict[str, str], all_labels: dict[str, str], port: int, metrics, parent: pulumi.Resource
) -> None:
    """A Service exposing a pod's ``metrics`` port and, when asked, the ServiceMonitor scraping it."""
    marker = {"peakscale.io/metrics": "true"}
    k8s.core.v1.Service(
        f"{logical}-metrics",
        metadata={"name": f"{name}-metrics", "namespace": namespace, "labels": {**all_labels, **marker}},
        spec={"selector": match, "ports": [{"name": "metrics", "port": port, "targetPort": "metrics"}]},
        opts=pulumi.ResourceOptions(parent=parent),
    )
    if metrics.service_monitor:
        service_monitor(name, namespace, {**marker, **match}, all_labels, "metrics", metrics.interval, parent)
