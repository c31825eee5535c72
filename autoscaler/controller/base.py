"""What every step of the controller shares: its options, its per-cycle records, and the state
it keeps between cycles (all of it rebuildable from the cluster; see ``reconcile``)."""

from __future__ import annotations

import logging
import time
from typing import Any
from concurrent.futures import Future
from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np

from autoscaler.core.calendar import EventProfile, PromotionEvent
from autoscaler.core.cycle import CalendarIndex
from autoscaler.core.cycle_types import CyclePolicy, CycleState, ForecastView
from autoscaler.core.defaults import DEFAULT_LEASE_NAME, DEFAULT_MAX_PLACEHOLDERS, STALE_AFTER_S
from autoscaler.errors import InputError, KubeApiError, KubeError, MetricsUnavailable, clip
from autoscaler.adapters.kube import HpaView, Kube
from autoscaler.controller.headroom import PodShape
from autoscaler.controller.status import MESSAGE_CHARS, Condition, EventStatus, PolicyStatus, ReshardStatus, conditions_of
from autoscaler.controller.leader import LEASE_DURATION_S, RENEW_DEADLINE_S, RETRY_PERIOD_S, LeaderElector, NotLeader
from autoscaler.adapters.prometheus import HistoryCache, Series
from autoscaler.core.baseline import Baseline
from autoscaler.adapters.inputs import PolicyDoc
from autoscaler.controller.preflight_model import Check
from autoscaler.core.resources import DEFAULT_PRIORITY_CLASS, POLICY_PLURAL, PromotionEventSpec, ScalingPolicySpec, applies
from autoscaler.controller.telemetry import Telemetry

log = logging.getLogger("peakscale.controller")
COMPONENT = "peakscale-controller"


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


def persisted_level(obj: dict[str, Any]) -> tuple[float, int] | None:
    """The last known level a previous cycle (of this instance or another) wrote into status."""
    status = obj.get("status") or {}
    level, at = status.get("lastKnownLevel"), status.get("lastKnownAtSeconds")
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
class ParsedEvent:
    obj: dict[str, Any]
    spec: PromotionEventSpec
    event: PromotionEvent
    #: what was recorded of it once it was over, per policy (status.memory)
    memory: dict[str, EventProfile] = field(default_factory=dict)
    #: from the controller's --calendar file: no object to report on, any namespace
    from_file: bool = False

    def for_policy(self, policy: str) -> PromotionEvent:
        return self.event.for_policy(policy)

    @property
    def namespace(self) -> str:
        """The PromotionEvent's namespace ('' for a --calendar entry)."""
        return str((self.obj.get("metadata") or {}).get("namespace", ""))

    def selects(self, namespace: str, labels: dict[str, str]) -> bool:
        """Whether it applies to the policy of ``namespace`` with ``labels``: a PromotionEvent to
        those of its own namespace that its targets match, a --calendar entry in every namespace.
        The one rule for the cycle, preflight and the events' status."""
        return applies(self.spec.targets, None if self.from_file else self.namespace, namespace, labels)


class EventIndex:
    """The cycle's promotions indexed by namespace and by a label their selector requires, so that
    finding the ones that apply to a policy never walks every promotion (5,000 policies and 10,000
    promotions would be fifty million selector matches a cycle). What it finds is exactly what
    ``ParsedEvent.selects`` says, in the promotions' own order."""

    def __init__(self, events: list[ParsedEvent]) -> None:
        self._position = {id(e): i for i, e in enumerate(events)}
        #: policies of one namespace with the same labels share one answer (tiers label alike)
        self._memo: dict[tuple[str, frozenset[tuple[str, str]]], list[ParsedEvent]] = {}
        self._reach: dict[tuple[str, frozenset[tuple[str, str]], int, int, int, int], list[ParsedEvent]] = {}
        #: per namespace ('' for the --calendar file's, which apply in every namespace): the ones
        #: any policy may match, and those that require a label, by one (key, value) they require
        self._open: dict[str, list[ParsedEvent]] = {}
        self._by_label: dict[str, dict[tuple[str, str], list[ParsedEvent]]] = {}
        for e in events:
            ns = "" if e.from_file else e.namespace
            required = e.spec.targets.match_labels
            if required:
                key = min(required.items())
                self._by_label.setdefault(ns, {}).setdefault(key, []).append(e)
            else:
                self._open.setdefault(ns, []).append(e)

    def applying(self, namespace: str, labels: dict[str, str]) -> list[ParsedEvent]:
        """The promotions that apply to the policy of ``namespace`` with ``labels``."""
        key = (namespace, frozenset(labels.items()))
        if key not in self._memo:
            self._memo[key] = self._applying(namespace, labels)
        return self._memo[key]

    def in_reach(self, namespace: str, labels: dict[str, str], now: float, *, history_s: int, ahead_s: int, cooldown_s: int) -> list[ParsedEvent]:
        """``in_reach`` of what applies, shared by the policies that label and plan alike."""
        key = (namespace, frozenset(labels.items()), int(now), history_s, ahead_s, cooldown_s)
        if key not in self._reach:
            self._reach[key] = in_reach(self.applying(namespace, labels), now, history_s=history_s, ahead_s=ahead_s, cooldown_s=cooldown_s)
        return self._reach[key]

    def _applying(self, namespace: str, labels: dict[str, str]) -> list[ParsedEvent]:
        found: list[ParsedEvent] = []
        for ns in {namespace, ""}:
            found += self._open.get(ns, [])
            by_label = self._by_label.get(ns, {})
            if by_label:
                for pair in labels.items():
                    found += by_label.get(pair, [])
        found = [e for e in found if e.selects(namespace, labels)]
        return sorted(found, key=lambda e: self._position[id(e)])


def in_reach(events: list[ParsedEvent], now: float, *, history_s: int, ahead_s: int, cooldown_s: int) -> list[ParsedEvent]:
    """The promotions that can bear on this cycle of a policy: those whose windows reach the history
    it learns from or the horizon it plans (and what they name in ``like``), those that carry what
    was recorded of them, and the first one beyond the horizon (the status's next action). A
    promotion a year ahead or long gone changes nothing now, and 5,000 policies each carrying
    thousands of them would not fit the cycle, nor the chart's memory limit."""
    past, horizon = now - history_s - ahead_s - cooldown_s, now + ahead_s + cooldown_s
    kept = [e for e in events if e.memory or (e.event.end_s >= past and e.event.start_s <= horizon)]
    later = [e for e in events if e.event.start_s > horizon]
    if later:
        kept.append(min(later, key=lambda e: e.event.start_s))
    named = {n for e in kept for n in e.spec.like}
    if named:
        kept += [e for e in events if e.event.name in named and e not in kept]
    position = {id(e): i for i, e in enumerate(events)}
    return sorted({id(e): e for e in kept}.values(), key=lambda e: position[id(e)])


@dataclass
class Observed:
    """What the observe step found of one policy this cycle; decide, act and report read it."""

    obj: dict[str, Any]
    spec: ScalingPolicySpec
    policy: CyclePolicy
    #: the calendar as the policy plans it (the promotions that select it), indexed
    calendar: list[PromotionEvent]
    index: CalendarIndex
    #: the conditions the policy's status holds now (for their last transitions)
    previous: list[dict[str, Any]]
    deleting: bool
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

    @property
    def key(self) -> tuple[str, str]:
        meta = self.obj["metadata"]
        return meta["namespace"], meta["name"]

    @property
    def placeholders(self) -> int | None:
        """The placeholder pods asked for now (None: no placeholder)."""
        return int((self.holder.get("spec") or {}).get("replicas") or 0) if self.holder is not None else None


@dataclass
class PreflightRun:
    """The preflight of one promotion, run a few policies per cycle (``EventSteps._preflight``)."""

    event: ParsedEvent
    #: the policies still to check
    todo: list[PolicyDoc]
    checks: list[Check] = field(default_factory=list)
    #: what the checks read once per run (nodes, the Lease, ...)
    cache: dict[str, Any] = field(default_factory=dict)


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


class ControllerBase:
    """The controller's clients, options and the state it carries between cycles."""

    def __init__(
        self,
        kube: Kube,
        history: HistoryCache,
        options: ControllerOptions,
        *,
        clock: Callable[[], float] = time.time,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.kube = kube
        self.history = history
        self.options = options
        self.clock = clock
        self.telemetry = telemetry or Telemetry()
        self.elector = LeaderElector(
            kube,
            namespace=options.lease_namespace,
            name=options.lease_name,
            identity=options.identity,
            lease_duration_s=options.lease_duration_s,
            renew_deadline_s=options.renew_deadline_s,
            retry_period_s=options.retry_period_s,
            clock=clock,
        )
        # every write checks the Lease first: a paused or partitioned leader stops writing
        kube.guard = self.elector.check
        #: True once the renewal runs on its own thread (run_forever); else each cycle renews
        self._renewing = False
        #: policies whose last write failed (their promotions are not Done until it lands)
        self._write_failed: set[tuple[str, str]] = set()
        self._failed_cycles = 0
        self._states: dict[tuple[str, str], CycleState] = {}
        self._hpas: dict[str, dict[tuple[str, str], HpaView]] = {}
        #: this cycle's history fetches, by (query, step)
        self._prefetched: dict[tuple[str, int], Future[Series | MetricsUnavailable]] = {}
        self._baselines: dict[tuple[str, int], Baseline | None] = {}
        #: parsed specs by (namespace, name, uid, generation): the object and its spec or its error
        self._specs: dict[tuple[Any, ...], tuple[dict[str, Any], ScalingPolicySpec | InputError]] = {}
        self._metrics_down: set[tuple[str, str]] = set()
        #: profiles recorded this cycle, per (namespace, event), per policy, not yet in status
        self._recorded: dict[tuple[str, str], dict[str, EventProfile]] = {}
        #: node-headroom placeholders found this cycle, by the policy they serve
        self._holders: dict[tuple[str, str], dict[str, Any]] = {}
        #: preflight per promotion: when next due, the run in progress, the condition to report
        self._preflight_due: dict[tuple[str, str], float] = {}
        self._preflight_run: PreflightRun | None = None
        self._preflight_conditions: dict[tuple[str, str], Condition] = {}
        self._preflight_said: set[tuple[str, str, str]] = set()
        #: the --calendar file's entries last read whole, and its bad entries already reported
        self._file_last: list[ParsedEvent] = []
        self._calendar_said: set[str] = set()
        #: this cycle's promotions, indexed (``EventIndex``)
        self._event_index = EventIndex([])
        #: the histories left out of the last cycle's query budget, and what each history cost
        self._deferred: set[tuple[str, int]] = set()
        self._costs: dict[tuple[str, int], int] = {}
        #: node headroom: the value of each PriorityClass looked up this cycle (None: none)
        self._priority_values: dict[str, int | None] = {}

    # --- reporting: status, Events ----------------------------------------------------------
    def _write_status(self, obj: dict[str, Any], status: PolicyStatus | EventStatus, plural: str = POLICY_PLURAL) -> None:
        meta = obj.get("metadata") or {}
        if isinstance(status, PolicyStatus) and status.reshard is None:
            status.reshard = ReshardStatus.of(obj)  # the reshard step's report survives the cycle's status
        try:
            self.kube.update_status(plural, meta["namespace"], meta["name"], status.as_status(), listed=obj)
        except KubeError as exc:
            self.telemetry.errors.labels("status").inc()
            log.warning("status of %s/%s: %s", meta.get("namespace"), meta.get("name"), exc)

    def _event_once(self, obj: dict[str, Any], reason: str, message: str, *, warning: bool, now: float) -> None:
        """An Event, unless the same condition was already reported (its message is in status)."""
        if any(c.get("message") == clip(message, MESSAGE_CHARS) for c in conditions_of(obj)):
            return
        self._emit(obj, reason, message, warning=warning, now=now)

    def _emit(self, obj: dict[str, Any], reason: str, message: str, *, warning: bool, now: float) -> None:
        try:
            self.kube.emit_event(obj, reason=reason, message=message, warning=warning, now_s=now, component=COMPONENT)
        except KubeError as exc:
            self.telemetry.errors.labels("event").inc()
            log.warning("event %s: %s", reason, exc)
