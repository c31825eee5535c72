"""Act and report: carrying out a cycle's decision (the floor, the replica count, node headroom
placeholders) and writing what was seen and done into the policy's status."""

from __future__ import annotations

import logging

from kubernetes.client.rest import ApiException

from autoscaler.core.cycle_types import HEADROOM_CREATE, HEADROOM_DELETE, LOWER, RAISE, RESTORE, SCALE, CycleDecision
from autoscaler.errors import InputError, clip
from autoscaler.controller.headroom import A_EVENT, A_PLANNED, PodShape, placeholder_deployment, shape_of
from autoscaler.adapters.kube import FINALIZER
from autoscaler.errors import KubeError
from autoscaler.controller.leader import NotLeader
from autoscaler.core.resources import POLICY_PLURAL, ScalingPolicySpec

log = logging.getLogger("peakscale.controller")

from autoscaler.controller.events import EventSteps
from autoscaler.controller.base import Outcome, condition, describe, significant


class ActSteps(EventSteps):
    def _write_status(self, obj: dict, status: dict, plural: str = POLICY_PLURAL) -> None:
        meta = obj.get("metadata") or {}
        try:
            self.kube.update_status(plural, meta["namespace"], meta["name"], status, listed=obj)
        except ApiException as exc:
            self.telemetry.errors.labels("status").inc()
            log.warning("status of %s/%s: %s", meta.get("namespace"), meta.get("name"), exc.reason)

    def _shape(self, ns: str, spec: ScalingPolicySpec, hpa, now: float, previous: list[dict]) -> tuple[PodShape | None, dict]:
        """The target's pod shape and ready count, and the NodeHeadroom condition."""
        ref = spec.target_ref
        kind, name = (hpa.target_kind, hpa.target_name) if ref.kind == "HorizontalPodAutoscaler" and hpa is not None else (ref.kind, ref.name)
        try:
            shape = shape_of(kind, self.kube.get_workload(ns, kind, name))
        except NotLeader:
            raise
        except (InputError, KubeError, ApiException) as exc:
            message = f"cannot read the pod template of {kind} {name}: {exc if not isinstance(exc, ApiException) else describe(exc)}"
            return None, condition("NodeHeadroom", False, "NoPodTemplate", message, now, previous)
        if shape.cpu <= 0 and shape.memory <= 0:
            message = f"{kind} {name} requests no CPU or memory: placeholders would hold no node room (set resources.requests)"
            return None, condition("NodeHeadroom", False, "NoRequests", message, now, previous)
        return shape, condition("NodeHeadroom", True, "Ready", f"placeholders ask {shape.requests} each, like {kind} {name}", now, previous)

    def _headroom(self, obj: dict, spec: ScalingPolicySpec, decision: CycleDecision, shape: PodShape | None, holder: dict | None, outcome: Outcome, now: float) -> None:
        """Create, resize or delete the placeholder as the decision says (unless dry-run)."""
        meta = obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        where = self.options.headroom_namespace
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
                    namespace=where, policy_namespace=ns, policy=name, shape=shape, replicas=decision.placeholders or 0,
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
            message = f"{why} failed: {describe(exc)}"
            self._write_failed.add((ns, name))
            outcome.error = message
            self.telemetry.errors.labels("write").inc()
            log.warning("policy %s/%s: %s", ns, name, message)
            self._emit(obj, "WriteFailed", message, warning=True, now=now)
            return
        self.telemetry.actions.labels(what).inc()
        self._emit(obj, self._HEADROOM_REASONS.get(what, "HeadroomResized"), f"{why} (Deployment {where}/{placed})", warning=False, now=now)

    def _carry_out(self, obj: dict, spec: ScalingPolicySpec, hpa, decision: CycleDecision, outcome: Outcome, now: float) -> None:
        """Make the write the decision asks for (unless dry-run), count it, report it as an Event."""
        ns = obj["metadata"]["namespace"]
        ref = spec.target_ref
        action = decision.action
        lead = spec.plan_policy().lead_time_s
        event = f" for {decision.event!r} (lead {lead // 60} min)" if decision.event and action in (RAISE, LOWER) else ""
        change = f"{decision.previous} -> {decision.target}{event}: {decision.why()}"
        if action == SCALE:
            why = f"scale {ref.kind} {ref.name} {change}"
            write = lambda: self.kube.set_replicas(ns, ref.kind, ref.name, decision.target)  # noqa: E731
        elif action == RESTORE:
            why = f"restore HPA {hpa.name} floor {change}"
            write = lambda: self.kube.set_hpa_floor(ns, hpa.name, None, remember_original=False, listed=hpa)  # noqa: E731
        else:
            why = f"{'raise' if action == RAISE else 'lower'} HPA {hpa.name} floor {change}"
            write = lambda: self.kube.set_hpa_floor(ns, hpa.name, decision.target, remember_original=True, listed=hpa)  # noqa: E731
        dry = self.options.dry_run
        outcome.action = action
        key = (ns, obj["metadata"]["name"])
        if not dry:
            try:
                write()
            except NotLeader:
                raise
            except Exception as exc:  # noqa: BLE001 (retried already: report it, keep the floor's record)
                message = f"{why} failed: {type(exc).__name__}: {getattr(exc, 'reason', None) or clip(str(exc), 200)}"
                self._write_failed.add(key)
                outcome.error = message
                self.telemetry.errors.labels("write").inc()
                log.warning("policy %s/%s: %s", *key, message)
                self._emit(obj, "WriteFailed", message, warning=True, now=now)
                return
        self._write_failed.discard(key)
        self.telemetry.actions.labels(action).inc()
        self._emit(obj, "DryRun" if dry else self._REASONS[action], ("dry-run: would " if dry else "") + why, warning=False, now=now)
        if hpa is not None and not dry:
            self.telemetry.floor.labels(ns, obj["metadata"]["name"]).set(decision.target)

    def _release(self, obj: dict) -> None:
        """The policy is being deleted and its floor is back: let the deletion finish."""
        meta = obj["metadata"]
        if FINALIZER in (meta.get("finalizers") or []):
            self.kube.set_finalizer(POLICY_PLURAL, meta["namespace"], meta["name"], present=False)
            self._states.pop((meta["namespace"], meta["name"]), None)

    def _report(self, obj, spec, policy, decision: CycleDecision, calendar, hpa, current, conditions, previous, now, holder=None) -> None:
        meta = obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        status: dict = {
            "observedGeneration": meta.get("generation", 1),
            "activeEvents": sorted(e.name for e in decision.events),
            "phase": decision.phase,
        }
        if decision.planned is not None:
            self.telemetry.planned.labels(ns, name).set(decision.planned)
        if decision.forecast_peak is not None:
            self.telemetry.forecast.labels(ns, name).set(decision.forecast_peak)
            status["forecastPeak"] = significant(decision.forecast_peak)
        if spec.mode == "hpa-floor":
            floor_now = decision.target if not self.options.dry_run else hpa.min_replicas
            status.update(
                currentReplicas=current,
                floorReplicas=floor_now,
                plannedReplicas=decision.planned if decision.planned is not None else floor_now,
                originalMinReplicas=decision.original,
            )
        elif spec.mode == "scale":
            status.update(currentReplicas=current, plannedReplicas=decision.planned if decision.planned is not None else current)
        else:
            status.update(plannedReplicas=decision.planned, currentReplicas=current)
        if policy.headroom:
            running = int((holder.get("status") or {}).get("readyReplicas") or 0) if holder is not None else 0
            planned_pods = decision.placeholders or 0
            self.telemetry.headroom.labels(ns, name, "planned").set(planned_pods)
            self.telemetry.headroom.labels(ns, name, "running").set(running)
            if decision.placeholders is not None:
                status["headroom"] = {
                    "plannedReplicas": decision.headroom_for, "placeholders": planned_pods,
                    "readyPlaceholders": running, "event": decision.headroom_event,
                }  # fmt: skip
                status["headroom"] = {k: v for k, v in status["headroom"].items() if v is not None}
        status["nextAction"] = self._next_action(policy, calendar, now, hpa)
        ok = all(c["status"] == "True" for c in conditions)
        conditions.insert(0, condition("Ready", ok, "Reconciled" if ok else "Degraded", "planned and acted" if ok else "see other conditions", now, previous))
        status["conditions"] = conditions
        # the reason code, not explain(): its exact forecast would rewrite status every cycle
        status["reason"] = decision.reason
        self._write_status(obj, {k: v for k, v in status.items() if v is not None})
