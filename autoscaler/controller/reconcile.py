"""The controller: every interval, read policies and events, forecast, decide, act, report.

Wiring only: what to write is decided by ``cycle.decide``, the one function the backtest and
``peakscale plan`` also call (the forecast it gets is ``cycle.live_forecast``, the same row the
backtest computes); the cluster and Prometheus are reached through ``kube.Kube`` and
``prometheus.HistoryCache``. A policy's cycle is four steps: observe (the target and its
metrics), decide, act (the write, an Event), report (status).

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
from concurrent.futures import Future
from typing import Any


from autoscaler.core.cycle import decide, index_calendar
from autoscaler.core.cycle_types import NONE, CycleDecision, CycleState, HpaFloor, Seen
from autoscaler.core.resources import EVENT_PLURAL, POLICY_PLURAL, ScalingPolicySpec
from autoscaler.errors import InputError, KubeError, MetricsUnavailable, clip
from autoscaler.adapters.kube import FINALIZER
from autoscaler.adapters.prometheus import Series
from autoscaler.controller.act import ActSteps
from autoscaler.controller.base import LEVEL_REFRESH_S, CycleReport, EventIndex, Observed, Outcome, ParsedEvent, describe, last_level, persisted_level, run_step
from autoscaler.controller.headroom import SELECTOR, served_policy
from autoscaler.controller.leader import NotLeader
from autoscaler.controller.status import ConditionType, Reason, condition, conditions_of

log = logging.getLogger("peakscale.controller")


def _missing(why: str) -> Future[Series | MetricsUnavailable]:
    """A history that did not come: a future already answered with ``MetricsUnavailable``."""
    future: Future[Series | MetricsUnavailable] = Future()
    future.set_result(MetricsUnavailable(why))
    return future


class Controller(ActSteps):
    """The controller: run_cycle every interval as the Lease holder, each policy observed, decided,
    acted on and reported (one bad object never stops the rest)."""

    # ------------------------------------------------------------------------------------------
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
        namespaces = self.options.namespaces
        # last cycle's objects go before this cycle's are read: two generations of 10,000 parsed
        # promotions never share the memory limit
        self._event_index, self._prefetched, self._holders = EventIndex([]), {}, {}
        policies = run_step("listing ScalingPolicies", lambda: self.kube.list_custom(POLICY_PLURAL, namespaces))
        events = self._events(run_step("listing PromotionEvents", lambda: self.kube.list_custom(EVENT_PLURAL, namespaces)), now)
        events += self._file_events(events, now)
        holders = run_step("listing node-headroom placeholders", lambda: self.kube.list_placeholders(namespaces, SELECTOR))
        self._holders = {k: h for h in holders if (k := served_policy(h)) is not None}
        report.policies = len(policies)
        self._event_index = EventIndex(events)
        self._hpas = {}
        self._priority_values = {}
        if len(self._specs) > 4 * len(policies) + 100:
            self._specs = {}  # forget specs of deleted or changed policies
        from concurrent.futures import ThreadPoolExecutor, wait

        pool = ThreadPoolExecutor(max_workers=max(1, self.options.fetch_concurrency), thread_name_prefix="peakscale-fetch")
        self._prefetched = self._prefetch(policies, now, pool)
        # all histories first: planning while fetches run only fights them for the interpreter
        # (measured: 2.05 s instead of 1.8 s per 1,000-policy cycle); but never past the cycle's
        # deadline: a Prometheus that accepts and never answers must not delay a raise, so what
        # has not come by then is missing this cycle (the policy holds, and raises from its last
        # known level), and the fetches still running are left to their own timeout
        deadline = self.options.fetch_deadline_s or max(5.0, 0.5 * self.options.interval_s)
        _, late = wait(self._prefetched.values(), timeout=deadline)
        self.telemetry.beat()
        if late:
            self.telemetry.errors.labels("metrics-deadline").inc(len(late))
            log.warning("%d of %d histories did not come within the cycle's %.0f s deadline: held from the last known level", len(late), len(self._prefetched), deadline)
            for fetched, future in list(self._prefetched.items()):
                if future in late:
                    self._prefetched[fetched] = _missing(f"Prometheus gave no answer within {deadline:.0f} s (the cycle's deadline)")
        plans: dict[tuple[str, str], tuple[ScalingPolicySpec, float | None, dict[str, str]]] = {}
        try:
            for obj in policies:
                meta = obj.get("metadata") or {}
                key = (meta.get("namespace", ""), meta.get("name", ""))
                try:
                    outcome, spec, peak = self._reconcile(obj, events, now)
                    plans[key] = (spec, peak, meta.get("labels") or {})
                except NotLeader:
                    raise
                except InputError as exc:
                    outcome = Outcome(*key, action="invalid", error=str(exc))
                    if meta.get("deletionTimestamp"):
                        self._release(obj)  # no valid spec to restore from: do not block the deletion
                    self.telemetry.errors.labels("invalid-spec").inc()
                    self._fault(obj, Reason.INVALID_SPEC, str(exc), now)
                except KubeError as exc:
                    message = f"{type(exc).__name__}: {getattr(exc, 'reason', '') or exc}"
                    outcome = Outcome(*key, action="error", error=message)
                    self.telemetry.errors.labels("kubernetes").inc()
                    log.warning("policy %s/%s: %s", *key, message)
                except Exception as exc:  # noqa: BLE001 (one object never stops the others)
                    message = f"{type(exc).__name__}: {clip(str(exc), 300)}"
                    outcome = Outcome(*key, action="error", error=message)
                    self.telemetry.errors.labels("internal").inc()
                    log.warning("policy %s/%s: %s", *key, message)
                    log.debug("policy %s/%s", *key, exc_info=True)
                    self._fault(obj, Reason.RECONCILE_FAILED, f"could not reconcile: {message}", now)
                report.outcomes.append(outcome)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        self._orphans(policies)
        self.telemetry.forget_except({((o.get("metadata") or {}).get("namespace", ""), (o.get("metadata") or {}).get("name", "")) for o in policies})
        checking = time.perf_counter()
        try:
            self._preflight(policies, events, now)
        except NotLeader:
            raise
        except Exception as exc:  # noqa: BLE001 (a check that fails never stops the cycle)
            self._preflight_run = None
            self.telemetry.errors.labels("preflight").inc()
            log.warning("preflight: %s", describe(exc))
        report.preflight_s = time.perf_counter() - checking
        self._event_statuses(events, plans, now)

    def _orphans(self, policies: list[dict[str, Any]]) -> None:
        """Delete the placeholders whose policy is gone (a policy has no finalizer in scale mode)."""
        alive = {((o.get("metadata") or {}).get("namespace"), (o.get("metadata") or {}).get("name")) for o in policies}
        for key, holder in self._holders.items():
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

    # ------------------------------------------------------------------------------------------
    def _reconcile(self, obj: dict[str, Any], events: list[ParsedEvent], now: float) -> tuple[Outcome, ScalingPolicySpec, float | None]:
        """One policy, one cycle: observe, decide (``cycle.decide``), act, report."""
        seen = self._observe(obj, events, now)
        if isinstance(seen, Outcome):
            return seen, self._parse(obj), None
        decision = self._decide(seen, now)
        outcome = self._act(seen, decision, now)
        # the peak the plan is sized for: the central forecast, or the upper one (an event's guess)
        sized_for = max((p for p in (decision.forecast_peak, decision.forecast_upper) if p is not None), default=None)
        if seen.deleting:
            if not outcome.error:
                self._release(obj)  # the floor is back: let the deletion finish
        else:
            self._report(seen, decision, outcome, now)
        return outcome, seen.spec, sized_for

    def _observe(self, obj: dict[str, Any], events: list[ParsedEvent], now: float) -> Observed | Outcome:
        """Where the target stands and what the metrics say; an Outcome for a target that cannot
        be acted on (its status is written already)."""
        spec = self._parse(obj)
        meta = obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        labels = meta.get("labels") or {}
        policy = spec.cycle_policy(self.options.interval_s, self.options.headroom_max_pods)
        mine = self._event_index.in_reach(ns, labels, now, history_s=spec.forecast_settings().history_s, ahead_s=policy.ahead_s, cooldown_s=policy.cooldown_s)
        calendar = [e.for_policy(name) for e in mine]
        previous = conditions_of(obj)
        deleting = bool(meta.get("deletionTimestamp"))
        target = self._observe_target(obj, spec, now, previous)
        if isinstance(target, Outcome):
            if deleting:
                self._release(obj)  # nothing left to restore on a target that is gone
            return target
        hpa, current = target
        if spec.mode == "hpa-floor" and not deleting and not self.options.dry_run and FINALIZER not in (meta.get("finalizers") or []):
            # before any raise: a deleted policy must never leave a raised floor behind
            self.kube.set_finalizer(POLICY_PLURAL, ns, name, present=True, listed=obj)
        found = condition(ConditionType.TARGET_FOUND, True, Reason.FOUND, f"{spec.target_ref.kind} {spec.target_ref.name}", now, previous)
        index = index_calendar(policy, calendar)
        view, metrics, series = self._forecast(obj, spec, policy, calendar, index, now, previous)
        if series is not None and not deleting:
            self._remember(name, spec, policy, mine, calendar, series, now)
        seen = Observed(obj, spec, policy, calendar, index, previous, deleting, hpa, current, [found, metrics], view, self._holders.get((ns, name)))
        kept = persisted_level(obj)
        fresh = last_level(series) if series is not None else None
        # refreshed at most every ten minutes: a status that changed every cycle would be written every cycle
        seen.level = fresh if fresh is not None and (kept is None or fresh[1] - kept[1] >= LEVEL_REFRESH_S) else kept
        if policy.headroom and not deleting and index.ahead_at(int(now)):
            seen.shape, seen.headroom = self._shape(ns, spec, hpa, now, previous)
        return seen

    def _decide(self, seen: Observed, now: float) -> CycleDecision:
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

    def _act(self, seen: Observed, decision: CycleDecision, now: float) -> Outcome:
        """The decision's writes: the placeholder first (its node room is what the raise lands on)."""
        outcome = Outcome(*seen.key, planned=decision.planned, placeholders=decision.placeholders, phase=decision.phase, why=decision.why())
        if not decision.writes:
            self._write_failed.discard(seen.key)
            return outcome
        if decision.headroom_write != NONE:
            self._headroom(seen.obj, seen.spec, decision, seen.shape, seen.holder, outcome, now)
        if decision.action != NONE and not outcome.error:
            self._carry_out(seen.obj, seen.spec, seen.hpa, decision, outcome, now)
        return outcome
