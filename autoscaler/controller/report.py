"""Report: what a cycle saw and did, written where an SRE looks: the policy's status (with its
conditions and next action), Events (each condition once), and one log line per write."""

from __future__ import annotations

import logging

from autoscaler.core.cycle import CalendarIndex, next_action
from autoscaler.core.cycle_types import LAST_KNOWN_LEVEL, CycleDecision, CyclePolicy
from autoscaler.core.resources import EVENT_PLURAL, POLICY_PLURAL
from autoscaler.errors import KubeError, clip, printable
from autoscaler.adapters.kube import HpaView, Kube, now_rfc3339
from autoscaler.controller.model import ControllerOptions, Observation, Outcome
from autoscaler.controller.leader import NotLeader
from autoscaler.controller.resource import Resource
from autoscaler.controller.status import (
    MESSAGE_CHARS, Condition, ConditionType, EventStatus, HeadroomStatus, PolicyStatus, Reason, ReshardStatus, condition, fault_status, ready, significant,
)  # fmt: skip
from autoscaler.controller.telemetry import Telemetry

log = logging.getLogger("peakscale.controller")
COMPONENT = "peakscale-controller"


class Reporter:
    """Writes statuses and Events; a report that fails is counted and logged, never raised."""

    def __init__(self, kube: Kube, options: ControllerOptions, telemetry: Telemetry) -> None:
        self.kube, self.options, self.telemetry = kube, options, telemetry

    def status(self, resource: Resource, status: PolicyStatus | EventStatus) -> None:
        plural = POLICY_PLURAL if isinstance(status, PolicyStatus) else EVENT_PLURAL
        if isinstance(status, PolicyStatus) and status.reshard is None:
            status.reshard = ReshardStatus.of(resource.raw)  # the reshard step's report survives the cycle's status
        try:
            self.kube.update_status(plural, resource.namespace, resource.name, status.as_status(), listed=resource.raw)
        except KubeError as exc:
            self.telemetry.errors.labels("status").inc()
            log.warning("status of %s/%s: %s", resource.namespace, resource.name, exc)

    def event_once(self, resource: Resource, reason: str, message: str, *, warning: bool, now: float) -> None:
        """An Event, unless the same condition was already reported (its message is in status)."""
        if any(c.get("message") == clip(message, MESSAGE_CHARS) for c in resource.conditions):
            return
        self.event(resource.raw, reason, message, warning=warning, now=now)

    def event(self, obj: dict, reason: str, message: str, *, warning: bool, now: float) -> None:
        try:
            self.kube.emit_event(obj, reason=reason, message=message, warning=warning, now_s=now, component=COMPONENT)
        except KubeError as exc:
            self.telemetry.errors.labels("event").inc()
            log.warning("event %s: %s", reason, exc)

    def fault(self, resource: Resource, reason: Reason, message: str, now: float, kind: ConditionType = ConditionType.READY) -> None:
        """A condition and a Warning Event on the object at fault; the cycle goes on."""
        try:
            self.status(resource, fault_status(kind, reason, message, now, resource.conditions))
            self.event_once(resource, reason, message, warning=True, now=now)
        except NotLeader:
            raise
        except Exception as exc:  # noqa: BLE001 (reporting a fault must not become one)
            log.warning("reporting on %s: %s", resource.name, type(exc).__name__)

    def write(self, key: tuple[str, str], what: str, now: float) -> None:
        """One INFO line per write: the policy, what changed (from -> to, for which promotion, why),
        and when on the operators' wall clock."""
        from autoscaler.core.timezones import aware, get_zone, shown

        at = shown(aware(now, get_zone("UTC")), get_zone(self.options.tz))
        log.info("policy %s/%s at %s: %s", *key, at, printable(what))

    def policy(self, seen: Observation, decision: CycleDecision, outcome: Outcome, now: float, history_queries: int | None) -> None:
        """The policy's status: what was seen, decided and done this cycle."""
        ns, name = seen.key
        status = PolicyStatus(
            phase=decision.phase, reason=decision.reason, conditions=self._conditions(seen, decision, outcome, now),
            observed_generation=seen.policy_object.observed_generation, active_events=sorted(e.name for e in decision.events),
        )  # fmt: skip
        if decision.planned is not None:
            self.telemetry.planned.labels(ns, name).set(decision.planned)
        if decision.forecast_peak is not None:
            self.telemetry.forecast.labels(ns, name).set(decision.forecast_peak)
            status.forecast_peak = significant(decision.forecast_peak)
        current, planned = seen.current, decision.planned
        status.current_replicas = current
        if seen.spec.mode == "hpa-floor":
            floor_now = seen.hpa.min_replicas if self.options.dry_run and seen.hpa is not None else decision.target
            status.floor_replicas, status.original_min_replicas = floor_now, decision.original
            status.planned_replicas = planned if planned is not None else floor_now
        elif seen.spec.mode == "scale":
            status.planned_replicas = planned if planned is not None else current
        else:
            status.planned_replicas = planned
        if seen.policy.headroom:
            status.headroom = self._headroom(seen, decision)
        status.next_action = next_action_text(seen.policy, seen.index, now, seen.hpa)
        if seen.level is not None:
            status.last_known_level, status.last_known_at_seconds = significant(seen.level[0]), seen.level[1]
        status.history_queries = history_queries
        self.status(seen.policy_object, status)

    def _conditions(self, seen: Observation, decision: CycleDecision, outcome: Outcome, now: float) -> list[Condition]:
        """Ready first, then TargetFound, MetricsAvailable, Written (when a write failed) and NodeHeadroom."""
        conditions, previous = list(seen.conditions), seen.policy_object.conditions
        if decision.reason == LAST_KNOWN_LEVEL:
            metrics = conditions[-1]
            message = f"{metrics.message}; planning {decision.event!r} from the last known level"
            conditions[-1] = condition(ConditionType.METRICS_AVAILABLE, False, Reason.LAST_KNOWN_LEVEL, message, now, previous)
        if outcome.error:
            conditions.append(condition(ConditionType.WRITTEN, False, Reason.WRITE_FAILED, outcome.error, now, previous))
        if seen.headroom is not None:
            conditions.append(seen.headroom)
        return [ready(conditions, now, previous), *conditions]

    def _headroom(self, seen: Observation, decision: CycleDecision) -> HeadroomStatus | None:
        ns, name = seen.key
        holder = seen.holder
        running = int((holder.get("status") or {}).get("readyReplicas") or 0) if holder is not None else 0
        planned_pods = decision.placeholders or 0
        self.telemetry.headroom.labels(ns, name, "planned").set(planned_pods)
        self.telemetry.headroom.labels(ns, name, "running").set(running)
        if decision.placeholders is None:
            return None
        return HeadroomStatus(planned_replicas=decision.headroom_for, placeholders=planned_pods, ready_placeholders=running, event=decision.headroom_event)


def next_action_text(policy: CyclePolicy, index: CalendarIndex, now: float, hpa: HpaView | None) -> str:
    """The status's next action, in words: when the controller next writes, and for what."""
    if policy.mode == "observe":
        return "observe only"
    upcoming = next_action(policy, index, int(now))
    if upcoming is None:
        return "follow the forecast" if policy.mode == "scale" or policy.floor == "plan" else "none planned"
    at, event = upcoming
    verb = f"raise HPA {hpa.name} floor" if hpa is not None else "scale"
    text = f"{verb} at {now_rfc3339(at)} for {event.label!r} (lead {policy.plan.lead_time_s // 60} min)"
    if policy.headroom:
        first = next(((t, e) for t, e in index.ahead_openings if t > now), None)
        if first is not None and first[0] <= at:
            text = f"node headroom at {now_rfc3339(first[0])}, then {text}"
    return text
