"""preflight's check of a resharding tier (a Redis Cluster cache whose replicas are shards): how long
the planned raise takes to move its slots, against the policy's leadTime."""

from __future__ import annotations

import math

from autoscaler.controller.preflight_model import PASS, WARN, Check, PlannedRaise, TargetFacts, policy_field_fix


def check_reshard(r: PlannedRaise, t: TargetFacts, status: dict) -> Check | None:
    """A resharding tier: how long the planned raise takes to move its slots (from the dataset and
    the throughput its last reshard measured, else the one the policy assumes), against leadTime."""
    from autoscaler.core.reshard import SLOTS, describe, parse_size, reshard_seconds

    spec = r.policy.spec
    if spec.reshard is None:
        return None
    what = f"ScalingPolicy {r.policy.namespace}/{r.policy.name}"
    current = t.current if t.current is not None else spec.min_replicas
    if r.planned <= current:
        return Check(status=PASS, check="reshard", object=what, message=f"no shard added for this promotion ({current} shards hold the plan)")
    moves = round(SLOTS * (r.planned - current) / r.planned)
    dataset = parse_size(spec.reshard.dataset_size, field="spec.reshard.datasetSize")
    measured = (status.get("reshard") or {}).get("throughputBytesPerSecond")
    throughput = float(measured) if isinstance(measured, (int, float)) and measured > 0 else parse_size(spec.reshard.throughput, field="spec.reshard.throughput", per_second=True)
    estimate = describe(moves, dataset, throughput, measured=bool(measured))
    seconds, lead = reshard_seconds(moves, dataset, throughput), spec.plan_policy().lead_time_s
    message = f"{current} -> {r.planned} shards: {estimate}"
    if seconds <= lead:
        return Check(status=PASS, check="reshard", object=what, message=f"{message}, within leadTime {spec.lead_time}")
    fix = policy_field_fix(r.policy, "leadTime", f"{math.ceil((lead + seconds) / 60)}m")
    return Check(status=WARN, check="reshard", object=what, message=f"{message}: longer than leadTime {spec.lead_time}, so the new shards serve after the promotion starts", fix=fix)
