"""The controller: every interval, read policies and events, forecast, decide, act, report.

Wiring only: what to write is decided by ``cycle.decide``, the one function the backtest and
``peakscale plan`` also call (the forecast it gets is ``cycle.live_forecast``, the same row the
backtest computes); the cluster and Prometheus are reached through ``kube.Kube`` and
``prometheus.HistoryCache``. A policy's cycle is four steps, each a collaborator that takes
explicit inputs and returns a value: ``Observer.observe`` returns an ``Observation``, ``decide``
is the core's, ``Actor.act`` returns the ``Outcome`` of what it wrote, ``Reporter`` writes status.
``Promotions`` reads the promotions and writes their statuses, ``PreflightRuns`` checks the
promotions due. This module is the loop, top to bottom.

Reliability rules (DESIGN.md), and where they live:

* missing or stale metrics never lower capacity: a policy without fresh data holds its floor or
  replica count, gets ``MetricsAvailable=False`` and a Warning Event;
* no state that cannot be rebuilt: the original ``minReplicas`` lives in an annotation on the HPA,
  the raised floor on the HPA itself; a restarted controller finds both and keeps them (the
  planner's stabilization memory is seeded from the floor it finds, so scale-in waits a whole
  window again, never less);
* a deleted hpa-floor policy never leaves a raised floor behind: its finalizer stays until the
  original is restored;
* only the Lease holder writes (``leader.LeaderElector``);
* 409 conflicts are retried with a fresh read (``kube_errors.retry_conflict``);
* never above ``maxReplicas`` (the planner clamps, the HPA write clamps again to the HPA's own max);
* a malformed policy or event gets a condition naming the field; the others carry on;
* node headroom: the placeholder Deployment of each policy lives in the policy's (its target's)
  namespace, charged to its quota, found again each cycle by its labels (its size is its state), so
  a restart changes nothing; a placeholder whose policy is gone is deleted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

from autoscaler.core.cycle import decide
from autoscaler.core.cycle_types import CycleDecision, CyclePolicy, CycleState, HpaFloor, Seen
from autoscaler.core.resources import EVENT_PLURAL, POLICY_PLURAL
from autoscaler.errors import InputError, KubeError, clip
from autoscaler.adapters.kube import Kube
from autoscaler.adapters.prometheus import HistoryCache
from autoscaler.controller.act import Actor
from autoscaler.controller.events import Planned, Promotions
from autoscaler.controller.headroom import SELECTOR, served_policy
from autoscaler.controller.leader import LeaderElector, NotLeader
from autoscaler.controller.model import ControllerOptions, CycleReport, Observation, Outcome, describe, run_step
from autoscaler.controller.observe import Observer, missing
from autoscaler.controller.preflight_runs import PreflightRuns
from autoscaler.controller.promotions import EventIndex
from autoscaler.controller.report import Reporter
from autoscaler.controller.resource import Resource
from autoscaler.controller.status import Reason
from autoscaler.controller.telemetry import Telemetry

log = logging.getLogger("peakscale.controller")


class Controller:
    """run_cycle every interval as the Lease holder, each policy observed, decided, acted on and
    reported (one bad object never stops the rest). Between cycles it keeps only what can be
    rebuilt from the cluster: the planners' states (seeded again from the floor a restart finds)."""

    def __init__(self, kube: Kube, history: HistoryCache, options: ControllerOptions, *, clock: Callable[[], float] = time.time, telemetry: Telemetry | None = None) -> None:
        self.kube, self.history, self.options, self.clock = kube, history, options, clock
        self.telemetry = telemetry or Telemetry()
        self.elector = LeaderElector(
            kube, namespace=options.lease_namespace, name=options.lease_name, identity=options.identity, lease_duration_s=options.lease_duration_s,
            renew_deadline_s=options.renew_deadline_s, retry_period_s=options.retry_period_s, clock=clock,
        )  # fmt: skip
        # every write checks the Lease first: a paused or partitioned leader stops writing
        kube.guard = self.elector.check
        self.reporter = Reporter(kube, options, self.telemetry)
        self.observer = Observer(kube, history, options, self.reporter)
        self.actor = Actor(kube, options, self.reporter)
        self.promotions = Promotions(options, self.reporter)
        self.preflight = PreflightRuns(kube, options, self.reporter, self.observer)
        #: each policy's planner state (``cycle.decide``'s), by (namespace, name)
        self._states: dict[tuple[str, str], CycleState] = {}
        #: True once the renewal runs on its own thread (run_forever); else each cycle renews
        self._renewing = False
        self._failed_cycles = 0

    # --- the loop ---------------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event, *, paused: Callable[[], bool] = lambda: False) -> None:
        """Renew the Lease on its own thread and run a cycle every interval until ``stop``.

        A cycle that fails as a whole (the API unreachable) is one log line, never a traceback;
        after ``unready_after`` of them in a row /readyz answers 503."""
        self._renewing = True
        renewer = threading.Thread(target=self.elector.run, args=(stop,), kwargs={"paused": paused}, name="peakscale-leader", daemon=True)
        renewer.start()
        wake = self.elector.acquired
        while not stop.is_set():
            wake.clear()
            if not paused():
                self.run_guarded()
            # the next cycle an interval later, or at once when this instance has just become the
            # leader (failover takes the lease duration, not that plus an interval); or on stop
            deadline = time.monotonic() + self.options.interval_s
            while not stop.is_set() and not wake.is_set() and time.monotonic() < deadline:
                wake.wait(min(0.5, max(0.0, deadline - time.monotonic())))
        renewer.join(timeout=5)

    def run_guarded(self) -> CycleReport | None:
        """One cycle; a failure of the whole cycle is counted and logged on one line."""
        try:
            report = self.run_cycle()
        except Exception as exc:  # noqa: BLE001 (keep the loop alive)
            self._failed_cycles += 1
            self.telemetry.errors.labels("cycle").inc()
            log.error("cycle failed (%d in a row): %s", self._failed_cycles, describe(exc))
            log.debug("cycle failed", exc_info=True)
            if self._failed_cycles >= self.options.unready_after:
                self.telemetry.ready = False
            return None
        self._failed_cycles = 0
        log.info("cycle: leader=%s policies=%d queries=%d %.3fs", report.leader, report.policies, report.queries, report.duration_s)
        return report

    def run_cycle(self) -> CycleReport:
        started = time.perf_counter()
        now = self.clock()
        self.history.reset_count()
        if not self._renewing:
            self.elector.try_acquire_or_renew(now)
        leader = self.elector.holds()
        self.telemetry.leader.set(1 if leader else 0)
        self.telemetry.beat()
        report = CycleReport(leader=leader)
        if not leader:
            # a standby is ready while it can take over: it reaches the API server and reads the
            # Lease (two replicas and a PDB of one must be able to roll)
            self.telemetry.ready = self.elector.in_touch()
            report.duration_s = time.perf_counter() - started
            return report
        try:
            self._lead_cycle(report, now)
        except NotLeader:
            report.leader = False  # lost the Lease mid-cycle: the rest is the new leader's
            log.warning("lost the Lease mid-cycle: stopped writing")
        report.queries = self.history.queries
        self.telemetry.queries.inc(report.queries)
        report.duration_s = time.perf_counter() - started
        self.telemetry.cycle.observe(report.duration_s)
        self.telemetry.last_cycle_s = time.time()
        self.telemetry.ready = True
        return report

    def _lead_cycle(self, report: CycleReport, now: float) -> None:
        """Read everything, fetch every history, then each policy in turn; then the placeholders
        whose policy is gone, the preflight checks due, and the promotions' statuses."""
        namespaces = self.options.namespaces
        self.observer.new_cycle()
        policies = [Resource.of(o) for o in run_step("listing ScalingPolicies", lambda: self.kube.list_custom(POLICY_PLURAL, namespaces))]
        events = self.promotions.read(run_step("listing PromotionEvents", lambda: self.kube.list_custom(EVENT_PLURAL, namespaces)), now)
        holders = run_step("listing node-headroom placeholders", lambda: self.kube.list_placeholders(namespaces, SELECTOR))
        placeholders = {k: h for h in holders if (k := served_policy(h)) is not None}
        report.policies = len(policies)
        index = EventIndex(events)
        pool = ThreadPoolExecutor(max_workers=max(1, self.options.fetch_concurrency), thread_name_prefix="peakscale-fetch")
        planned: Planned = {}
        try:
            self._fetch_all(policies, now, pool)
            for policy in policies:
                report.outcomes.append(self._policy(policy, index, placeholders.get(policy.key), planned, now))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        self._orphans(policies, placeholders)
        self.telemetry.forget_except({p.key for p in policies})
        checking = time.perf_counter()
        try:
            self.preflight.step(policies, events, index, now)
        except NotLeader:
            raise
        except Exception as exc:  # noqa: BLE001 (a check that fails never stops the cycle)
            self.preflight.abandon()
            self.telemetry.errors.labels("preflight").inc()
            log.warning("preflight: %s", describe(exc))
        report.preflight_s = time.perf_counter() - checking
        self.promotions.write_statuses(events, index, planned, self.actor.pending, self.preflight.conditions, now)

    def _fetch_all(self, policies: list[Resource], now: float, pool: ThreadPoolExecutor) -> None:
        """Every history first: planning while fetches run only fights them for the interpreter
        (measured: 2.05 s instead of 1.8 s per 1,000-policy cycle); but never past the cycle's
        deadline: a Prometheus that accepts and never answers must not delay a raise, so what has
        not come by then is missing this cycle (the policy holds, and raises from its last known
        level), and the fetches still running are left to their own timeout."""
        fetched = self.observer.prefetch(policies, now, pool)
        deadline = self.options.fetch_deadline_s or max(5.0, 0.5 * self.options.interval_s)
        _, late = wait(fetched.values(), timeout=deadline)
        self.telemetry.beat()
        if late:
            self.telemetry.errors.labels("metrics-deadline").inc(len(late))
            log.warning("%d of %d histories did not come within the cycle's %.0f s deadline: held from the last known level", len(late), len(fetched), deadline)
            for key, future in list(fetched.items()):
                if future in late:
                    fetched[key] = missing(f"Prometheus gave no answer within {deadline:.0f} s (the cycle's deadline)")

    def _policy(self, policy: Resource, index: EventIndex, holder: dict | None, planned: Planned, now: float) -> Outcome:
        """One policy, isolated: what went wrong is its outcome, its status and a count."""
        try:
            outcome, cycle_policy, peak = self._reconcile(policy, index, holder, now)
            planned[policy.key] = (cycle_policy, peak, policy.labels)
            return outcome
        except NotLeader:
            raise
        except InputError as exc:
            if policy.deleting:
                self._release(policy)  # no valid spec to restore from: do not block the deletion
            self.telemetry.errors.labels("invalid-spec").inc()
            self.reporter.fault(policy, Reason.INVALID_SPEC, str(exc), now)
            return Outcome(*policy.key, action="invalid", error=str(exc))
        except KubeError as exc:
            message = f"{type(exc).__name__}: {getattr(exc, 'reason', '') or exc}"
            self.telemetry.errors.labels("kubernetes").inc()
            log.warning("policy %s/%s: %s", *policy.key, message)
            return Outcome(*policy.key, action="error", error=message)
        except Exception as exc:  # noqa: BLE001 (one object never stops the others)
            message = f"{type(exc).__name__}: {clip(str(exc), 300)}"
            self.telemetry.errors.labels("internal").inc()
            log.warning("policy %s/%s: %s", *policy.key, message)
            log.debug("policy %s/%s", *policy.key, exc_info=True)
            self.reporter.fault(policy, Reason.RECONCILE_FAILED, f"could not reconcile: {message}", now)
            return Outcome(*policy.key, action="error", error=message)

    def _reconcile(self, policy: Resource, index: EventIndex, holder: dict | None, now: float) -> tuple[Outcome, CyclePolicy, float | None]:
        """One policy, one cycle: observe, decide (``cycle.decide``), act, report; with what the
        cycle planned by and the peak the plan is sized for (the central forecast, or the upper
        one: an event's guess)."""
        spec = self.observer.parse(policy)
        cycle_policy = spec.cycle_policy(self.options.interval_s, self.options.headroom_max_pods)
        history_s = spec.forecast_settings().history_s
        mine = index.in_reach(policy.namespace, policy.labels, now, history_s=history_s, ahead_s=cycle_policy.ahead_s, cooldown_s=cycle_policy.cooldown_s)
        seen = self.observer.observe(policy, spec, cycle_policy, mine, holder, now)
        if isinstance(seen, Outcome):
            if policy.deleting:
                self._release(policy)  # nothing left to restore on a target that is gone
            return seen, cycle_policy, None
        self.actor.guard_deletion(policy, spec.mode)
        self.promotions.remember(seen, mine, now)
        decision = self._decide(seen, now)
        outcome = self.actor.act(seen, decision, now)
        if policy.deleting:
            if not outcome.error:
                self._release(policy)  # the floor is back: let the deletion finish
        else:
            self.reporter.policy(seen, decision, outcome, now, self.observer.history_queries(spec, policy))
        sized_for = max((p for p in (decision.forecast_peak, decision.forecast_upper) if p is not None), default=None)
        return outcome, cycle_policy, sized_for

    def _decide(self, seen: Observation, now: float) -> CycleDecision:
        """``cycle.decide`` on what was observed; its planner state is kept for the next cycle."""
        hpa = seen.hpa
        floor = HpaFloor(min_replicas=hpa.min_replicas, max_replicas=hpa.max_replicas, original=hpa.original_min()) if hpa is not None else None
        ready = seen.shape.ready if seen.shape is not None else None
        facts = Seen(int(now), seen.view, seen.current, floor, seen.deleting, ready, seen.placeholders)
        decision = decide(seen.policy, self._states.get(seen.key) or CycleState(), facts, seen.index)
        if seen.headroom is not None and not seen.headroom.ok:
            decision.placeholders = seen.placeholders  # the target's pods cannot be read: no headroom write
        self._states[seen.key] = decision.state
        return decision

    def _release(self, policy: Resource) -> None:
        """The deletion may finish: the finalizer goes, and with it the policy's planner state."""
        if self.actor.release(policy):
            self._states.pop(policy.key, None)

    def _orphans(self, policies: list[Resource], placeholders: dict[tuple[str, str], dict]) -> None:
        """Delete the placeholders whose policy is gone (a policy has no finalizer in scale mode)."""
        alive = {p.key for p in policies}
        for key, holder in placeholders.items():
            if key in alive or self.options.dry_run:
                continue
            name = holder["metadata"]["name"]
            try:
                self.kube.delete_placeholder(holder["metadata"]["namespace"], name)
                log.info("deleted node-headroom placeholder %s: ScalingPolicy %s/%s is gone", name, *key)
            except NotLeader:
                raise
            except Exception as exc:  # noqa: BLE001 (tried again next cycle)
                log.warning("deleting placeholder %s: %s", name, describe(exc))
