"""What the controller's collaborators share: its options, the records of a cycle (what was
observed of a policy, what came of it, the cycle's report), and the last known level a restart
plans from."""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import numpy as np

from autoscaler.core.calendar import PromotionEvent
from autoscaler.core.cycle import CalendarIndex
from autoscaler.core.cycle_types import CyclePolicy, ForecastView
from autoscaler.core.defaults import DEFAULT_LEASE_NAME, DEFAULT_MAX_PLACEHOLDERS, STALE_AFTER_S
from autoscaler.core.resources import DEFAULT_PRIORITY_CLASS, ScalingPolicySpec
from autoscaler.errors import KubeApiError, clip
from autoscaler.adapters.kube import HpaView
from autoscaler.adapters.prometheus import Series
from autoscaler.controller.headroom import PodShape
from autoscaler.controller.leader import LEASE_DURATION_S, RENEW_DEADLINE_S, RETRY_PERIOD_S, NotLeader
from autoscaler.controller.resource import Resource
from autoscaler.controller.status import Condition

@dataclass
class ControllerOptions:
    identity: str
    namespaces: list[str] | None = None
    interval_s: int = 30
    dry_run: bool = False
    stale_after_s: int = STALE_AFTER_S
    lease_namespace: str = "peakscale-system"
    lease_name: str = DEFAULT_LEASE_NAME
    #: the zone of the local times in log lines (the operators' wall clock)
    tz: str = "Asia/Shanghai"
    lease_duration_s: float = LEASE_DURATION_S
    renew_deadline_s: float = RENEW_DEADLINE_S
    retry_period_s: float = RETRY_PERIOD_S
    #: /readyz turns 503 after this many cycles failed in a row
    unready_after: int = 3
    #: Prometheus range queries in flight at once
    fetch_concurrency: int = 4
    #: the Prometheus range queries one cycle may send, shared fairly among the policies
    max_queries_per_cycle: int = 10_000
    #: how long a cycle waits for its histories before planning without the missing ones (None:
    #: half the interval, at least 5 s): a hung Prometheus never delays a raise past the cycle
    fetch_deadline_s: float | None = None
    #: node headroom: the PriorityClasses a policy may name (the chart's own, or what the cluster
    #: admin allows): never one a tenant picks; each must have a negative value
    headroom_priority_classes: tuple[str, ...] = (DEFAULT_PRIORITY_CLASS,)
    #: node headroom: at most this many placeholder pods per policy
    headroom_max_pods: int = DEFAULT_MAX_PLACEHOLDERS
    #: node headroom: copy the target's nodeSelector, affinity and tolerations onto the
    #: placeholders (they run in the target's namespace, charged to its quota)
    headroom_copy_scheduling: bool = True
    #: a YAML calendar file read every cycle beside the PromotionEvents (None: none)
    calendar_file: str | None = None
    #: preflight: run the checks for each promotion starting within this long (0: never), again
    #: every ``preflight_every_s``; each cycle checks policies for at most ``preflight_budget_s``
    #: (at least one), so that checks never hold up the cycle's own work
    preflight_ahead_s: int = 86400
    preflight_every_s: int = 3600
    preflight_budget_s: float = 0.3
    #: the image of a resharding tier's reshard Job (the controller's own: ``peakscale reshard``);
    #: None: such a policy's raises are refused with the reason
    reshard_image: str | None = None


@dataclass
class Outcome:
    namespace: str
    name: str
    action: str = "none"
    planned: int | None = None
    error: str | None = None
    #: node headroom: what happened to the placeholder (create-headroom, ...), and its size
    headroom: str = "none"
    placeholders: int | None = None
    #: the policy's phase and the cycle's reason, in words (why ``planned`` is null, say)
    phase: str | None = None
    why: str | None = None


@dataclass
class CycleReport:
    leader: bool
    policies: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    queries: int = 0
    duration_s: float = 0.0
    #: of which spent on preflight checks
    preflight_s: float = 0.0


#: the window the last known level is the mean of, and how often the status's copy is refreshed
LEVEL_WINDOW_S = 3600
LEVEL_REFRESH_S = 600


def last_level(series: Series) -> tuple[float, int] | None:
    """The mean demand of the last hour of a fresh series, and its last sample's time."""
    if not len(series.times_s):
        return None
    last = int(series.times_s[-1])
    recent = series.values[series.times_s > last - LEVEL_WINDOW_S]
    recent = recent[recent == recent]  # missing is missing, never zero
    return (float(recent.mean()), last) if len(recent) else None


def persisted_level(policy: Resource) -> tuple[float, int] | None:
    """The last known level a previous cycle (of this instance or another) wrote into status."""
    level, at = policy.status.get("lastKnownLevel"), policy.status.get("lastKnownAtSeconds")
    if isinstance(level, (int, float)) and not isinstance(level, bool) and level >= 0 and isinstance(at, int) and not isinstance(at, bool):
        return float(level), at
    return None


def level_series(level: tuple[float, int], history_s: int, step_s: int) -> Series:
    """A flat history at the persisted level: what a restarted controller plans from while
    Prometheus is down (the seasonal shape is lost with the restart; the level is not)."""
    value, at = level
    times = np.arange(at - history_s // step_s * step_s, at + step_s, step_s, dtype=np.int64)
    return Series(step_s=step_s, times_s=times, values=np.full(len(times), value))


@dataclass
class Observation:
    """What the observer found of one policy this cycle; decide, act and report read it."""

    policy_object: Resource
    spec: ScalingPolicySpec
    policy: CyclePolicy
    #: the calendar as the policy plans it (the promotions that select it), indexed
    calendar: list[PromotionEvent]
    index: CalendarIndex
    #: hpa-floor (and observe, handing back a raised floor): the HPA
    hpa: HpaView | None
    #: the replicas the target runs (None: unknown)
    current: int | None
    conditions: list[Condition]
    view: ForecastView | None = None
    #: node headroom: the placeholder found, the target's pod shape, and the NodeHeadroom condition
    holder: dict[str, Any] | None = None
    shape: PodShape | None = None
    headroom: Condition | None = None
    #: the last known level of the demand and when (what a restart plans from while Prometheus is down)
    level: tuple[float, int] | None = None
    #: the history the forecast was made from (None: none fresh this cycle)
    series: Series | None = None
    #: a resharding tier's reshard Jobs, as listed to count its serving shards (act steps from them)
    jobs: list[dict[str, Any]] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.policy_object.key

    @property
    def deleting(self) -> bool:
        return self.policy_object.deleting

    @property
    def placeholders(self) -> int | None:
        """The placeholder pods asked for now (None: no placeholder)."""
        return int((self.holder.get("spec") or {}).get("replicas") or 0) if self.holder is not None else None


class CycleFailed(Exception):
    """A step every policy needs failed (the API unreachable): the cycle stops, the loop goes on."""


def describe(exc: BaseException) -> str:
    """One line: what failed, with its HTTP status when it has one."""
    if isinstance(exc, KubeApiError):
        return str(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {clip(text, 300)}" if not isinstance(exc, CycleFailed) else clip(text, 400)


def run_step(what: str, call: Callable[[], list[Any]]) -> list[Any]:
    try:
        return call()
    except NotLeader:
        raise
    except Exception as exc:  # noqa: BLE001 (named and reported by run_guarded on one line)
        raise CycleFailed(f"{what}: {describe(exc)}") from None
