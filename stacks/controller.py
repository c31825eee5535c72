"""Controller: installs the peakscale controller from ``charts/peakscale`` and gives it one
ScalingPolicy per tier, generated from the scale contracts the tiers export.

The chart is a Helm release of the local chart (its CRDs included); the ScalingPolicies depend on
it, so their CRD exists before they are applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from autoscaler.core.durations import format_duration
from autoscaler.core.resources import GROUP, VERSION, Metric, NodeHeadroom, ScalingPolicySpec
from stacks.config import ControllerConfig, StackConfig
from stacks.contract import ScaleContract, policy_name

CHART_DIR = Path(__file__).resolve().parent.parent / "charts" / "peakscale"


def policy_for(contract: ScaleContract) -> dict[str, Any]:
    """The ScalingPolicy a contract asks for, built and checked by the controller's own spec model."""
    spec = ScalingPolicySpec(
        target_ref=contract.target,
        mode=contract.method,
        metric=Metric(query=contract.metric_query, capacity_per_replica=contract.capacity_per_replica),
        lead_time=format_duration(contract.lead_time_s),
        min_replicas=contract.min_replicas,
        max_replicas=contract.max_replicas,
        # node headroom written out in full: the policy shows the PriorityClass its placeholders get
        **({"node_headroom": NodeHeadroom(**contract.node_headroom.model_dump())} if contract.node_headroom is not None else {}),
        **({"coverage": contract.coverage} if contract.coverage is not None else {}),
        **({"reshard": contract.reshard} if contract.reshard is not None else {}),
    )
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ScalingPolicy",
        "metadata": {
            "name": policy_name(contract.tier, contract.target.name),
            "namespace": contract.namespace,
            "labels": {"peakscale.io/tier": contract.tier, "app.kubernetes.io/managed-by": "pulumi"},
        },
        # what the contract sets, as the CRD spells it (the CRD's defaults stay defaults)
        "spec": spec.model_dump(by_alias=True, exclude_unset=True),
    }


class PeakscaleController(pulumi.ComponentResource):
    def __init__(
        self, name: str, config: ControllerConfig, stack: StackConfig, contracts: list[ScaleContract], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("peakscale:stacks:Controller", name, None, opts)
        ns = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={"name": config.namespace, "labels": {"app.kubernetes.io/part-of": "peakscale", "pod-security.kubernetes.io/enforce": "restricted"}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        values = {
            "replicaCount": config.replicas,
            "image": {"registry": config.image.registry, "repository": config.image.repository, "tag": config.image.tag, "digest": config.image.digest or ""},
            "prometheus": {"url": config.prometheus_url, "auth": {"existingSecret": config.prometheus_token_secret}},
            "watchNamespaces": list(config.watch_namespaces or [stack.namespace]),
            "interval": config.interval,
            "dryRun": config.dry_run,
            "logLevel": config.log_level,
            "serviceMonitor": {"enabled": config.service_monitor},
            "resources": config.resources.as_k8s(),
        }
        self.release = k8s.helm.v3.Release(
            f"{name}-chart",
            name="peakscale",
            chart=str(CHART_DIR),
            namespace=config.namespace,
            values=values,
            skip_crds=False,
            atomic=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]),
        )
        self.policies = []
        for contract in contracts:
            body = policy_for(contract)
            self.policies.append(
                k8s.apiextensions.CustomResource(
                    f"{name}-policy-{contract.tier}",
                    api_version=body["apiVersion"],
                    kind=body["kind"],
                    metadata=body["metadata"],
                    spec=body["spec"],
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
                )
            )
        self.policy_names = [policy_for(c)["metadata"]["name"] for c in contracts]
        self.register_outputs({"namespace": config.namespace, "scalingPolicies": self.policy_names})
