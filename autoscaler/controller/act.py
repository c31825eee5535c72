"""Act and report: carrying out a cycle's decision (the floor, the replica count, node headroom
placeholders) and writing what was seen and done into the policy's status."""

from __future__ import annotations

import logging
from typing import Any

from autoscaler.core.cycle_types import HEADROOM_CREATE, HEADROOM_DELETE, LAST_KNOWN_LEVEL, LOWER, RAISE, RESTORE, SCALE, CycleDecision
from autoscaler.core.resources import POLICY_PLURAL, ScalingPolicySpec
from autoscaler.errors import clip, printable
from autoscaler.adapters.kube import FINALIZER, HpaView
from autoscaler.controller.base import Observed, Outcome, describe
from autoscaler.controller.events import EventSteps
from autoscaler.controller.headroom import A_EVENT, A_PLANNED, PodShape, placeholder_deployment
from autoscaler.controller.leader import NotLeader
from autoscaler.controller.status import Condition, ConditionType, HeadroomStatus, PolicyStatus, Reason, condition, ready, significant

log = logging.getLogger("peakscale.controller")

#: the Event's reason per write, and per placeholder write
WRITE_REASONS = {RAISE: "FloorRaised", LOWER: "FloorLowered", RESTORE: "FloorRestored", SCALE: "Scaled"}
HEADROOM_REASONS = {HEADROOM_CREATE: "HeadroomCreated", HEADROOM_DELETE: "HeadroomDeleted"}


class ActSteps(EventSteps):
    def _headroom(
        self, obj: dict[str, Any], spec: ScalingPolicySpec, decision: CycleDecision, shape: PodShape | None, holder: dict[str, Any] | None, outcome: Outcome, now: float
    ) -> None:
        """Create, resize or delete the placeholder as the decision says (unless dry-run)."""
        meta = obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        where = ns  # the target's namespace: its ResourceQuota binds the placeholders
        what = decision.headroom_write
        why = decision.explain_headroom()
        outcome.headroom = what
        if self.options.dry_run:
            self._emit(obj, "DryRun", f"dry-run: would {why}", warning=False, now=now)
            return
        try:
            if what == HEADROOM_CREATE:
                if shape is None:
                    return
                body = placeholder_deployment(
                    policy_namespace=ns, policy=name, shape=shape, replicas=decision.placeholders or 0,
                    priority_class=spec.node_headroom.priority_class_name, planned=decision.headroom_for, event=decision.headroom_event,
                )  # fmt: skip
                self.kube.create_placeholder(body)
                placed = body["metadata"]["name"]
            elif what == HEADROOM_DELETE:
                placed = holder["metadata"]["name"] if holder else ""
                self.kube.delete_placeholder(where, placed)
            else:
                placed = holder["metadata"]["name"] if holder else ""
                annotations = {A_EVENT: decision.headroom_event}
                if decision.headroom_for is not None:
                    annotations[A_PLANNED] = str(decision.headroom_for)
                self.kube.resize_placeholder(where, placed, decision.placeholders or 0, annotations)
        except NotLeader:
            raise
        except Exception as exc:  # noqa: BLE001 (retried already: report it; tried again next cycle)
            self._write_failed_on(obj, outcome, f"{why} failed: {describe(exc)}", now)
            return
        self.telemetry.actions.labels(what).inc()
        self._emit(obj, HEADROOM_REASONS.get(what, "HeadroomResized"), f"{why} (Deployment {where}/{placed})", warning=False, now=now)
        self._log_write((obj["metadata"]["namespace"], obj["metadata"]["name"]), f"{why} (Deployment {where}/{placed})", now)

    def _carry_out(self, obj: dict[str, Any], spec: ScalingPolicySpec, hpa: HpaView | None, decision: CycleDecision, outcome: Outcome, now: float) -> None:
        """Make the write the decision asks for (unless dry-run), count it, report it as an Event."""
        ns = obj["metadata"]["namespace"]
        ref = spec.target_ref
        action, target = decision.action, decision.target
        assert target is not None, "cycle.decide writes only with a target"
        lead = spec.plan_policy().lead_time_s
        event = f" for {decision.event!r} (lead {lead // 60} min)" if decision.event and action in (RAISE, LOWER) else ""
        change = f"{decision.previous} -> {decision.target}{event}: {decision.why()}"
        if action == SCALE and spec.reshard is not None:
            return self._reshard(obj, spec, target, change, outcome, now)
        if action == SCALE:
            why = f"scale {ref.kind} {ref.name} {change}"
            write = lambda: self.kube.set_replicas(ns, ref.kind, ref.name, target)  # noqa: E731
        elif hpa is None:
            raise AssertionError("cycle.decide moves a floor only with an HPA")
        elif action == RESTORE:
            why = f"restore HPA {hpa.name} floor {change}"
            write = lambda: self.kube.set_hpa_floor(ns, hpa.name, None, remember_original=False, listed=hpa)  # noqa: E731
        else:
            why = f"{'raise' if action == RAISE else 'lower'} HPA {hpa.name} floor {change}"
            write = lambda: self.kube.set_hpa_floor(ns, hpa.name, target, remember_original=True, listed=hpa)  # noqa: E731
        dry = self.options.dry_run
        outcome.action = action
        key = (ns, obj["metadata"]["name"])
        if not dry:
            try:
                write()
            except NotLeader:
                raise
            except Exception as exc:  # noqa: BLE001 (retried already: report it, keep the floor's record)
                self._write_failed_on(obj, outcome, f"{why} failed: {type(exc).__name__}: {getattr(exc, 'reason', None) or clip(str(exc), 200)}", now)
                return
        self._write_failed.discard(key)
        self.telemetry.actions.labels(action).inc()
        self._emit(obj, "DryRun" if dry else WRITE_REASONS[action], ("dry-run: would " if dry else "") + why, warning=False, now=now)
        self._log_write(key, ("dry-run: would " if dry else "") + why, now)
        if hpa is not None and not dry:
            self.telemetry.floor.labels(ns, obj["metadata"]["name"]).set(target)

    def _reshard(self, obj: dict[str, Any], spec: ScalingPolicySpec, target: int, change: str, outcome: Outcome, now: float) -> None:
        """A resharding tier's shard count (``controller.reshard``): the StatefulSet by whole shards
        and the reshard Job, one step a cycle; while a Job runs, nothing is written."""
        from autoscaler.controller import reshard

        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        what = f"reshard {spec.target_ref.kind} {spec.target_ref.name} {change}"
        if self.options.dry_run:
            outcome.action = SCALE
            self._emit(obj, "DryRun", f"dry-run: would {what}", warning=False, now=now)
            return
        try:
            step = reshard.carry_out(self.kube, namespace=ns, policy=name, spec=spec, target=target, image=self.options.reshard_image)
        except NotLeader:
            raise
        except Exception as exc:  # noqa: BLE001 (retried already: report it; tried again next cycle)
            self._write_failed_on(obj, outcome, f"{what} failed: {describe(exc)}", now)
            return
        self._write_failed.discard((ns, name))
        outcome.why = f"{what}: {step.why}"
        if step.what == "hold":
            return
        outcome.action = SCALE
        self.telemetry.actions.labels(SCALE).inc()
        self._emit(obj, "Resharding", outcome.why, warning=False, now=now)
        self._log_write((ns, name), outcome.why, now)

    def _log_write(self, key: tuple[str, str], what: str, now: float) -> None:
        """One INFO line per write: the policy, what changed (from -> to, for which promotion, why),
        and when on the operators' wall clock."""
        from autoscaler.core.timezones import aware, get_zone, shown

        at = shown(aware(now, get_zone("UTC")), get_zone(self.options.tz))
        log.info("policy %s/%s at %s: %s", *key, at, printable(what))

    def _write_failed_on(self, obj: dict[str, Any], outcome: Outcome, message: str, now: float) -> None:
        """A write that failed (after its retries): the policy's promotions wait for it, the outcome,
        the log, the error count and a Warning Event say so; the next cycle tries again."""
        meta = obj["metadata"]
        self._write_failed.add((meta["namespace"], meta["name"]))
        outcome.error = message
        self.telemetry.errors.labels("write").inc()
        log.warning("policy %s/%s: %s", meta["namespace"], meta["name"], message)
        self._emit(obj, "WriteFailed", message, warning=True, now=now)

    def _release(self, obj: dict[str, Any]) -> None:
        """The policy is being deleted and its floor is back: let the deletion finish."""
        meta = obj["metadata"]
        if FINALIZER in (meta.get("finalizers") or []):
            self.kube.set_finalizer(POLICY_PLURAL, meta["namespace"], meta["name"], present=False)
            self._states.pop((meta["namespace"], meta["name"]), None)

    def _report(self, seen: Observed, decision: CycleDecision, outcome: Outcome, now: float) -> None:
        """The policy's status: what was seen, decided and done this cycle."""
        ns, name = seen.key
        status = PolicyStatus(
            phase=decision.phase, reason=decision.reason, conditions=self._policy_conditions(seen, decision, outcome, now),
            observed_generation=seen.obj["metadata"].get("generation", 1), active_events=sorted(e.name for e in decision.events),
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
            status.headroom = self._headroom_status(seen, decision)
        status.next_action = self._next_action(seen.policy, seen.index, now, seen.hpa)
        if seen.level is not None:
            status.last_known_level, status.last_known_at_seconds = significant(seen.level[0]), seen.level[1]
        status.history_queries = self._costs.get((self._query(seen.spec, ns, name), seen.spec.step_s))
        self._write_status(seen.obj, status)

    def _policy_conditions(self, seen: Observed, decision: CycleDecision, outcome: Outcome, now: float) -> list[Condition]:
        """Ready first, then TargetFound, MetricsAvailable, Written (when a write failed) and NodeHeadroom."""
        conditions = list(seen.conditions)
        if decision.reason == LAST_KNOWN_LEVEL:
            metrics = conditions[-1]
            message = f"{metrics.message}; planning {decision.event!r} from the last known level"
            conditions[-1] = condition(ConditionType.METRICS_AVAILABLE, False, Reason.LAST_KNOWN_LEVEL, message, now, seen.previous)
        if outcome.error:
            conditions.append(condition(ConditionType.WRITTEN, False, Reason.WRITE_FAILED, outcome.error, now, seen.previous))
        if seen.headroom is not None:
            conditions.append(seen.headroom)
        return [ready(conditions, now, seen.previous), *conditions]

    def _headroom_status(self, seen: Observed, decision: CycleDecision) -> HeadroomStatus | None:
        ns, name = seen.key
        holder = seen.holder
        running = int((holder.get("status") or {}).get("readyReplicas") or 0) if holder is not None else 0
        planned_pods = decision.placeholders or 0
        self.telemetry.headroom.labels(ns, name, "planned").set(planned_pods)
        self.telemetry.headroom.labels(ns, name, "running").set(running)
        if decision.placeholders is None:
            return None
        return HeadroomStatus(planned_replicas=decision.headroom_for, placeholders=planned_pods, ready_placeholders=running, event=decision.headroom_event)
