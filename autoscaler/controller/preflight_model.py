"""The preflight's vocabulary: a check and its report (PASS/WARN/FAIL with the fix, the exit code),
the planned raise each check is about, and the facts read from the cluster for it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel

from autoscaler.core.calendar import PromotionEvent
from autoscaler.core.windows import action_window, headroom_window
from autoscaler.core.plan import MAX_BOUND
from autoscaler.controller.headroom import PodShape
from autoscaler.adapters.inputs import PolicyDoc
from autoscaler.adapters.kube import HpaView


PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
EXIT_CODES = {PASS: 0, WARN: 3, FAIL: 1}


class Check(BaseModel):
    status: Literal["PASS", "WARN", "FAIL"]
    #: target, hpa-max, quota, nodes, pdb, prometheus, controller, priority-class
    check: str
    #: the object at fault or checked, as kind namespace/name
    object: str
    message: str
    fix: str = ""
    policy: str = ""
    event: str = ""


class Report(BaseModel):
    at: str
    events: list[str]
    checks: list[Check]

    @property
    def worst(self) -> str:
        statuses = {c.status for c in self.checks}
        return FAIL if FAIL in statuses else (WARN if WARN in statuses else PASS)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.worst]


def policy_field_fix(policy: PolicyDoc, field: str, value: int | str) -> str:
    """The fix of a ScalingPolicy's own field: a policy the stacks made carries its tier's label,
    and the field is the tier's stack config (``scaling.<field>``); else a kubectl patch."""
    tier = policy.labels.get("peakscale.io/tier")
    if tier:
        return f"pulumi config set --path peakscale:{tier}.scaling.{field} {value} && pulumi up (the stack makes this policy)"
    patch = json.dumps({"spec": {field: value}}, separators=(",", ":"))
    return f"kubectl -n {policy.namespace} patch scalingpolicy {policy.name} --type merge -p '{patch}'"


@dataclass(frozen=True)
class PlannedRaise:
    policy: PolicyDoc
    event: PromotionEvent
    #: when the controller first acts for it (the headroom window, else the action window)
    at_s: int
    #: the highest floor (hpa-floor) or replica count (scale) in the event's action window
    planned: int
    #: the most placeholder pods ahead of it (0 without node headroom)
    placeholders: int
    #: what the forecast needed where the policy's maxReplicas capped the plan (None: never capped)
    capped_need: int | None = None


def planned_raise(policy: PolicyDoc, times: np.ndarray, values: np.ndarray, calendar: list[PromotionEvent], event: PromotionEvent, now_s: int, interval_s: int) -> PlannedRaise:
    """What ``peakscale plan`` shows for ``event`` on this policy."""
    from autoscaler.core.plan_report import PolicyInput, replay_target

    cycle_policy = policy.spec.cycle_policy(interval_s)
    lo, hi = action_window(cycle_policy, event)
    first = headroom_window(cycle_policy, event)[0] if cycle_policy.headroom else lo
    # from an hour before the controller first acts (what came earlier does not move the raise)
    start = min(first, max(int(now_s), first - 3600))
    entry = PolicyInput(name=policy.name, namespace=policy.namespace, labels=policy.labels, spec=policy.spec)
    run, _ = replay_target(entry, times, values, calendar, start, hi, interval_s=interval_s)
    inside = (run.times_s >= lo) & (run.times_s < hi)
    planned = int(run.targets[inside].max()) if inside.any() else int(policy.spec.min_replicas)
    placeholders = max((d.placeholders or 0 for d in run.writes if d.headroom_event == event.label), default=0)
    capped = [max(d.plan.want, d.plan.need_now) for d in run.writes if d.plan is not None and d.plan.reason == MAX_BOUND and lo <= d.at_s < hi]
    return PlannedRaise(policy, event, first, planned, placeholders, max(capped) if capped else None)


@dataclass
class TargetFacts:
    """What the cluster says about one policy's target."""

    hpa: HpaView | None = None
    #: the target's replica count (None: it cannot be read)
    current: int | None = None
    #: why the target cannot be acted on ('' when it can)
    missing: str = ""
    shape: PodShape | None = None
    pod_labels: dict[str, str] = field(default_factory=dict)
    quotas: list[dict] = field(default_factory=list)
    pdbs: list[dict] = field(default_factory=list)
    #: the target object's metadata (who manages it: Pulumi, Helm or a person)
    meta: dict = field(default_factory=dict)
    #: the topology key of a required pod anti-affinity of the target's pods against each other
    #: (at most one pod per domain); None: none
    anti_affinity_key: str | None = None
    #: the topology keys of its hard spread constraints (whenUnsatisfiable: DoNotSchedule)
    spread_keys: list[str] = field(default_factory=list)


@dataclass
class ClusterFacts:
    nodes: list[dict] = field(default_factory=list)
    pods: list[dict] = field(default_factory=list)
    lease: dict | None = None
    lease_name: str = ""
    priority_classes: dict[str, dict | None] = field(default_factory=dict)
    now_s: float = 0.0
