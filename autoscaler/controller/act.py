"""Act: carry out a cycle's decision (the floor, the replica count, a resharding tier's step, node
headroom placeholders) unless dry-run; return what was written. A write that fails (after its
retries) is reported and its policy's promotions wait for it (``pending``)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from autoscaler.core.cycle_types import HEADROOM_CREATE, HEADROOM_DELETE, LOWER, NONE, RAISE, RESTORE, SCALE, CycleDecision
from autoscaler.core.resources import POLICY_PLURAL
from autoscaler.adapters.kube import FINALIZER, Kube
from autoscaler.controller.headroom import A_EVENT, A_PLANNED, placeholder_deployment
from autoscaler.controller.leader import NotLeader
from autoscaler.controller.model import ControllerOptions, Observation, Outcome, describe
from autoscaler.controller.report import Reporter
from autoscaler.controller.resource import Resource

log = logging.getLogger("peakscale.controller")

#: the Event's reason per write, and per placeholder write
WRITE_REASONS = {RAISE: "FloorRaised", LOWER: "FloorLowered", RESTORE: "FloorRestored", SCALE: "Scaled"}
HEADROOM_REASONS = {HEADROOM_CREATE: "HeadroomCreated", HEADROOM_DELETE: "HeadroomDeleted"}


class Actor:
    def __init__(self, kube: Kube, options: ControllerOptions, reporter: Reporter) -> None:
        self.kube, self.options, self.reporter = kube, options, reporter
        self.telemetry = reporter.telemetry
        #: policies whose last write failed: their promotions are not Done until it lands
        self.pending: set[tuple[str, str]] = set()

    def act(self, seen: Observation, decision: CycleDecision, now: float) -> Outcome:
        """The decision's writes: the placeholder first (its node room is what the raise lands on)."""
        outcome = Outcome(*seen.key, planned=decision.planned, placeholders=decision.placeholders, phase=decision.phase, why=decision.why())
        if not decision.writes:
            self.pending.discard(seen.key)
            return outcome
        if decision.headroom_write != NONE:
            self._headroom(seen, decision, outcome, now)
        if decision.action != NONE and not outcome.error:
            self._carry_out(seen, decision, outcome, now)
        return outcome

    def guard_deletion(self, policy: Resource, mode: str) -> None:
        """Before any raise: a deleted hpa-floor policy must never leave a raised floor behind, so
        its finalizer is on first."""
        if mode == "hpa-floor" and not policy.deleting and not self.options.dry_run and FINALIZER not in policy.finalizers:
            self.kube.set_finalizer(POLICY_PLURAL, policy.namespace, policy.name, present=True, listed=policy.raw)

    def release(self, policy: Resource) -> bool:
        """The policy is being deleted and its floor is back (or there is none to restore): let the
        deletion finish. True when its finalizer was removed."""
        if FINALIZER not in policy.finalizers:
            return False
        self.kube.set_finalizer(POLICY_PLURAL, policy.namespace, policy.name, present=False)
        return True

    def _headroom(self, seen: Observation, decision: CycleDecision, outcome: Outcome, now: float) -> None:
        """Create, resize or delete the placeholder as the decision says (unless dry-run)."""
        policy, spec, holder = seen.policy_object, seen.spec, seen.holder
        where = policy.namespace  # the target's namespace: its ResourceQuota binds the placeholders
        what, why = decision.headroom_write, decision.explain_headroom()
        outcome.headroom = what
        if self.options.dry_run:
            self.reporter.event(policy.raw, "DryRun", f"dry-run: would {why}", warning=False, now=now)
            return
        try:
            if what == HEADROOM_CREATE:
                if seen.shape is None:
                    return
                body = placeholder_deployment(
                    policy_namespace=where, policy=policy.name, shape=seen.shape, replicas=decision.placeholders or 0,
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
            self._failed(policy, outcome, f"{why} failed: {describe(exc)}", now)
            return
        self.telemetry.actions.labels(what).inc()
        self.reporter.event(policy.raw, HEADROOM_REASONS.get(what, "HeadroomResized"), f"{why} (Deployment {where}/{placed})", warning=False, now=now)
        self.reporter.write(policy.key, f"{why} (Deployment {where}/{placed})", now)

    def _carry_out(self, seen: Observation, decision: CycleDecision, outcome: Outcome, now: float) -> None:
        """Make the write the decision asks for (unless dry-run), count it, report it as an Event."""
        policy, spec, hpa = seen.policy_object, seen.spec, seen.hpa
        ns, ref = policy.namespace, spec.target_ref
        action, target = decision.action, decision.target
        assert target is not None, "cycle.decide writes only with a target"
        lead = spec.plan_policy().lead_time_s
        event = f" for {decision.event!r} (lead {lead // 60} min)" if decision.event and action in (RAISE, LOWER) else ""
        change = f"{decision.previous} -> {decision.target}{event}: {decision.why()}"
        if action == SCALE and spec.reshard is not None:
            return self._reshard(seen, target, change, outcome, now)
        write: Callable[[], object]
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
        if not dry:
            try:
                write()
            except NotLeader:
                raise
            except Exception as exc:  # noqa: BLE001 (retried already: report it, keep the floor's record)
                self._failed(policy, outcome, f"{why} failed: {describe(exc)}", now)
                return
        self.pending.discard(policy.key)
        self.telemetry.actions.labels(action).inc()
        said = ("dry-run: would " if dry else "") + why
        self.reporter.event(policy.raw, "DryRun" if dry else WRITE_REASONS[action], said, warning=False, now=now)
        self.reporter.write(policy.key, said, now)
        if hpa is not None and not dry:
            self.telemetry.floor.labels(*policy.key).set(target)

    def _reshard(self, seen: Observation, target: int, change: str, outcome: Outcome, now: float) -> None:
        """A resharding tier's shard count (``controller.reshard``): the StatefulSet by whole shards
        and the reshard Job, one step a cycle; while a Job runs, nothing is written."""
        from autoscaler.controller import reshard

        policy, spec = seen.policy_object, seen.spec
        what = f"reshard {spec.target_ref.kind} {spec.target_ref.name} {change}"
        if self.options.dry_run:
            outcome.action = SCALE
            self.reporter.event(policy.raw, "DryRun", f"dry-run: would {what}", warning=False, now=now)
            return
        try:
            step = reshard.carry_out(self.kube, namespace=policy.namespace, policy=policy.name, spec=spec, target=target, image=self.options.reshard_image, jobs=seen.jobs)
        except NotLeader:
            raise
        except Exception as exc:  # noqa: BLE001 (retried already: report it; tried again next cycle)
            self._failed(policy, outcome, f"{what} failed: {describe(exc)}", now)
            return
        self.pending.discard(policy.key)
        outcome.why = f"{what}: {step.why}"
        if step.what == "hold":
            return
        outcome.action = SCALE
        self.telemetry.actions.labels(SCALE).inc()
        self.reporter.event(policy.raw, "Resharding", outcome.why, warning=False, now=now)
        self.reporter.write(policy.key, outcome.why, now)

    def _failed(self, policy: Resource, outcome: Outcome, message: str, now: float) -> None:
        """A write that failed (after its retries): the policy's promotions wait for it, the outcome,
        the log, the error count and a Warning Event say so; the next cycle tries again."""
        self.pending.add(policy.key)
        outcome.error = message
        self.telemetry.errors.labels("write").inc()
        log.warning("policy %s/%s: %s", *policy.key, message)
        self.reporter.event(policy.raw, "WriteFailed", message, warning=True, now=now)
