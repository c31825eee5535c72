"""The scale contract a tier exports: what peakscale may scale, how, within which bounds.

The Controller component turns each contract into a ScalingPolicy. A contract is plain data
(pydantic), exported as a stack output so that ``pulumi stack output`` shows it too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoscaler.core.resources import NodeHeadroom, Reshard, TargetRef
from stacks.config import Scaling


class ScaleContract(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    tier: Literal["cache", "edge", "database"]
    #: the object peakscale scales (the ScalingPolicy's targetRef), in ``namespace``
    target: TargetRef
    namespace: str
    #: the object whose replicas the HPA owns, for ``hpa-floor``
    hpa: str | None = None
    method: Literal["hpa-floor", "scale", "observe"]
    min_replicas: int = Field(ge=0)
    max_replicas: int = Field(ge=1)
    lead_time_s: int = Field(ge=0)
    #: PromQL giving the tier's demand, and the demand one replica serves
    metric_query: str
    capacity_per_replica: float = Field(gt=0)
    reason: str = ""
    #: the ScalingPolicy's ``nodeHeadroom`` (None: off)
    node_headroom: NodeHeadroom | None = None
    #: the ScalingPolicy's ``coverage`` (None: the CRD's default)
    coverage: float | None = None
    #: a resharding tier (Redis Cluster: replicas are shards): the ScalingPolicy's ``reshard``
    reshard: Reshard | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ScaleContract:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas above maxReplicas")
        if self.method == "hpa-floor" and not self.hpa:
            raise ValueError("hpa-floor needs the HPA's name")
        return self

    def as_output(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "targetRef": {**self.target.model_dump(by_alias=True), "namespace": self.namespace},
            "hpa": self.hpa,
            "method": self.method,
            "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas,
            "leadTimeSeconds": self.lead_time_s,
            "metric": {"query": self.metric_query, "capacityPerReplica": self.capacity_per_replica},
            "reason": self.reason,
            "nodeHeadroom": self.node_headroom.model_dump(by_alias=True) if self.node_headroom is not None else None,
            "coverage": self.coverage,
            "reshard": self.reshard.model_dump(by_alias=True, exclude_none=True) if self.reshard is not None else None,
        }


def policy_name(tier: str, target: str) -> str:
    """The name of the ScalingPolicy the Controller component makes for a tier's contract."""
    return f"{tier}-{target}"


def contract_of(
    scaling: Scaling,
    *,
    tier: Literal["cache", "edge", "database"],
    target: TargetRef,
    namespace: str,
    default_method: Literal["hpa-floor", "scale", "observe"],
    metric_query: str,
    reason: str,
    hpa: str | None = None,
    bounds: tuple[int, int] | None = None,
) -> ScaleContract:
    """A tier's contract from its ``scaling`` config: the method it names (else the tier's
    default), its replica bounds (or the tier's fixed ``bounds``), lead time, capacity per replica
    and node headroom (when enabled)."""
    low, high = bounds if bounds is not None else (scaling.min_replicas, scaling.max_replicas)
    return ScaleContract(
        tier=tier, target=target, namespace=namespace, hpa=hpa, method=scaling.method or default_method, min_replicas=low, max_replicas=high,
        lead_time_s=scaling.lead_time_s, node_headroom=scaling.node_headroom if scaling.node_headroom.enabled else None,
        metric_query=metric_query, capacity_per_replica=scaling.capacity_per_replica, reason=reason, coverage=scaling.coverage,
    )  # fmt: skip
