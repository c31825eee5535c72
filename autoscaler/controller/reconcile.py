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
* 409 conflicts are retried with a fresh read (``kube.retry_conflict``);
* never above ``maxReplicas`` (the planner clamps, the HPA write clamps again to the HPA's own max);
* a malformed policy or event gets a condition naming the field; the others carry on;
* node headroom: the placeholder Deployment of each policy lives in ``--headroom-namespace``,
  found again each cycle by its labels (its size is its state), so a restart changes nothing; a
  placeholder whose policy is gone is deleted.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from kubernetes.client.rest import ApiException

from autoscaler.core.calendar import EventProfile, PromotionEvent
from autoscaler.core.cycle import (
    HEADROOM_CREATE,
    HEADROOM_DELETE,
    NONE,
    LOWER,
    RAISE,
    RESTORE,
    SCALE,
    CycleDecision,
    CycleState,
    HpaFloor,
    Seen,
    action_window,
    decide,
    index_calendar,
    LAST_KNOWN_LEVEL,
    live_forecast,
    next_action,
    period_starts,
    stale_forecast,
)
from autoscaler.errors import InputError, clip
from autoscaler.controller.headroom import A_EVENT, A_PLANNED, PodShape, placeholder_deployment, served_policy, shape_of
from autoscaler.adapters.kube import FINALIZER, ORIGINAL_MIN, Kube, now_rfc3339
from autoscaler.errors import KubeError
from autoscaler.controller.leader import LEASE_DURATION_S, RENEW_DEADLINE_S, RETRY_PERIOD_S, LeaderElector, NotLeader
from autoscaler.adapters.prometheus import HistoryCache, render_query
from autoscaler.errors import MetricsUnavailable
from autoscaler.core.forecast import record_profile
from autoscaler.core.resources import EVENT_PLURAL, POLICY_PLURAL, PromotionEventSpec, ScalingPolicySpec, memory_status, parse_event, parse_memory, parse_policy
from autoscaler.controller.telemetry import Telemetry

log = logging.getLogger("peakscale.controller")
COMPONENT = "peakscale-controller"


@dataclass
class ControllerOptions:
    identity: str
    namespaces: list[str] | None = None
    interval_s: int = 30
    dry_run: bool = False
    metric_lag_s: int = 60
    stale_after_s: int = 300
    lease_namespace: str = "peakscale-system"
    lease_name: str = "peakscale-controller"
    lease_duration_s: float = LEASE_DURATION_S
    renew_deadline_s: float = RENEW_DEADLINE_S
    retry_period_s: float = RETRY_PERIOD_S
    #: /readyz turns 503 after this many cycles failed in a row
    unready_after: int = 3
    #: Prometheus range queries in flight at once
    fetch_concurrency: int = 2
    #: where the node-headroom placeholders live (the controller's own namespace)
    headroom_namespace: str = "peakscale-system"
    #: a YAML calendar file read every cycle beside the PromotionEvents (None: none)
    calendar_file: str | None = None
    #: preflight: run the checks for each promotion starting within this long (0: never), again
    #: every ``preflight_every_s``; each cycle checks policies for at most ``preflight_budget_s``
    #: (at least one), so that checks never hold up the cycle's own work
    preflight_ahead_s: int = 86400
    preflight_every_s: int = 3600
    preflight_budget_s: float = 0.3


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


@dataclass
class CycleReport:
    leader: bool
    policies: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    queries: int = 0
    duration_s: float = 0.0
    #: of which spent on preflight checks
    preflight_s: float = 0.0


@dataclass
class _ParsedEvent:
    obj: dict
    spec: PromotionEventSpec
    event: PromotionEvent
    #: what was recorded of it once it was over, per policy (status.memory)
    memory: dict[str, EventProfile] = field(default_factory=dict)
    #: from the controller's --calendar file: no object to report on, any namespace
    from_file: bool = False

    def for_policy(self, policy: str) -> PromotionEvent:
        return self.event.for_policy(policy)


def _significant(value: float, digits: int = 2) -> float:
    """Round to two significant digits, so that noise does not rewrite 1,000 statuses every
    cycle; /metrics carries the exact values."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def _condition(kind: str, ok: bool, reason: str, message: str, now_s: float, previous: list[dict]) -> dict:
    status = "True" if ok else "False"
    old = next((c for c in previous if c.get("type") == kind), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status and old.get("lastTransitionTime") else now_rfc3339(now_s)
    return {"type": kind, "status": status, "reason": reason, "message": clip(message, 512), "lastTransitionTime": since}


class CycleFailed(Exception):
    """A step every policy needs failed (the API unreachable): the cycle stops, the loop goes on."""


def describe(exc: BaseException) -> str:
    """One line: what failed, with its HTTP status when it has one."""
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason or ''}".strip()
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {clip(text, 300)}" if not isinstance(exc, CycleFailed) else clip(text, 400)


def _step(what: str, call: Callable[[], list]) -> list:
    try:
        return call()
    except NotLeader:
        raise
    except Exception as exc:  # noqa: BLE001 (named and reported by run_guarded on one line)
        raise CycleFailed(f"{what}: {describe(exc)}") from None


class Controller:
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
        self._hpas: dict[str, dict] = {}
        self._prefetched: dict = {}
        self._baselines: dict = {}
        self._specs: dict[tuple, tuple] = {}
        self._metrics_down: set[tuple[str, str]] = set()
        #: profiles recorded this cycle, per (namespace, event), per policy, not yet in status
        self._recorded: dict[tuple[str, str], dict[str, EventProfile]] = {}
        #: node-headroom placeholders found this cycle, by the policy they serve
        self._holders: dict[tuple[str, str], dict] = {}
        #: preflight per promotion: when next due, the run in progress, the condition to report
        self._preflight_due: dict[tuple[str, str], float] = {}
        self._preflight_run: dict | None = None
        self._preflight_conditions: dict[tuple[str, str], dict] = {}
        self._preflight_said: set[tuple[str, str, str]] = set()

    # ------------------------------------------------------------------------------------------
    def run_cycle(self) -> CycleReport:
        started = time.perf_counter()
        now = self.clock()
        self.history.reset_count()
        if not self._renewing:
            self.elector.try_acquire_or_renew(now)
        leader = self.elector.holds()
        self.telemetry.leader.set(1 if leader else 0)
        report = CycleReport(leader=leader)
        if not leader:
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
        policies = _step("listing ScalingPolicies", lambda: self.kube.list_custom(POLICY_PLURAL, namespaces))
        events = self._events(_step("listing PromotionEvents", lambda: self.kube.list_custom(EVENT_PLURAL, namespaces)), now)
        events += self._file_events(events)
        holders = _step("listing node-headroom placeholders", lambda: self.kube.list_placeholders(self.options.headroom_namespace))
        self._holders = {k: h for h in holders if (k := served_policy(h)) is not None}
        report.policies = len(policies)
        self._hpas = {}
        if len(self._specs) > 4 * len(policies) + 100:
            self._specs = {}  # forget specs of deleted or changed policies
        from concurrent.futures import ThreadPoolExecutor, wait

        pool = ThreadPoolExecutor(max_workers=max(1, self.options.fetch_concurrency), thread_name_prefix="peakscale-fetch")
        self._prefetched = self._prefetch(policies, now, pool)
        # all histories first: planning while fetches run only fights them for the interpreter
        # (measured: 2.05 s instead of 1.8 s per 1,000-policy cycle)
        wait(self._prefetched.values())
        plans: dict[tuple[str, str], tuple[ScalingPolicySpec, float | None, dict]] = {}
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
                    self._fault(obj, "InvalidSpec", str(exc), now)
                except (ApiException, KubeError) as exc:
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
                    self._fault(obj, "ReconcileFailed", f"could not reconcile: {message}", now)
                report.outcomes.append(outcome)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        self._orphans(policies)
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

    def _orphans(self, policies: list[dict]) -> None:
        """Delete the placeholders whose policy is gone (a policy has no finalizer in scale mode)."""
        alive = {((o.get("metadata") or {}).get("namespace"), (o.get("metadata") or {}).get("name")) for o in policies}
        for key, holder in self._holders.items():
            if key in alive or self.options.dry_run:
                continue
            name = holder["metadata"]["name"]
            try:
                self.kube.delete_placeholder(self.options.headroom_namespace, name)
                log.info("deleted node-headroom placeholder %s: ScalingPolicy %s/%s is gone", name, *key)
            except NotLeader:
                raise
            except Exception as exc:  # noqa: BLE001 (tried again next cycle)
                log.warning("deleting placeholder %s: %s", name, describe(exc))

    def _preflight(self, policies: list[dict], events: list["_ParsedEvent"], now: float) -> None:
        """Run ``preflight`` for each promotion due (starting within ``preflight_ahead_s``), a few
        policies per cycle within the time budget; report a Preflight condition once it is done."""
        from autoscaler.adapters.inputs import PolicyDoc
        from autoscaler.errors import HistoryUnavailable
        from autoscaler.controller.preflight import FAIL, WARN, run_checks

        opts = self.options
        if opts.preflight_ahead_s <= 0:
            return
        started = time.perf_counter()
        docs = []
        for obj in policies:
            meta = obj.get("metadata") or {}
            try:
                docs.append((PolicyDoc(meta["name"], meta["namespace"], meta.get("labels") or {}, self._parse(obj)), obj.get("spec") or {}))
            except (InputError, KeyError):
                continue
        run = self._preflight_run
        if run is None:
            due = [
                p for p in events
                if not p.from_file and now < p.event.start_s <= now + opts.preflight_ahead_s and self._preflight_due.get(self._event_key(p), 0.0) <= now
            ]  # fmt: skip
            if not due:
                return
            parsed = min(due, key=lambda p: p.event.start_s)
            ns = self._event_key(parsed)[0]
            todo = [d for d, _ in docs if d.namespace == ns and parsed.spec.targets.matches(d.labels)]
            run = self._preflight_run = {"event": parsed, "todo": todo, "checks": [], "cache": {}}

        def history(policy):
            query, _ = self._query_for(next(o for o in policies if (o.get("metadata") or {}).get("name") == policy.name and (o.get("metadata") or {}).get("namespace") == policy.namespace))
            found = self._prefetched.get((query, policy.spec.step_s))
            series = found.result() if found is not None else None
            if series is None or isinstance(series, Exception):
                series = self.history.last_known(query, policy.spec.step_s)  # stale is still history
            if series is None:
                raise HistoryUnavailable(f"Prometheus gave no history for {policy.namespace}/{policy.name}")
            return series.times_s, series.values

        def calendar_for(policy):
            return [p.for_policy(policy.name) for p in events if self._event_key(p)[0] == policy.namespace and p.spec.targets.matches(policy.labels)]

        parsed = run["event"]
        while run["todo"] and (time.perf_counter() - started < opts.preflight_budget_s or not run["checks"]):
            policy = run["todo"].pop(0)
            run["checks"] += run_checks(
                self.kube, docs, [(parsed.event, [policy])], calendar_for, history, now_s=now, interval_s=opts.interval_s,
                lease_namespace=opts.lease_namespace, lease_name=opts.lease_name, cache=run["cache"],
            )  # fmt: skip
        if run["todo"]:
            return
        self._preflight_run = None
        key = self._event_key(parsed)
        self._preflight_due[key] = now + opts.preflight_every_s
        checks = run["checks"]
        fails = [c for c in checks if c.status == FAIL]
        warns = [c for c in checks if c.status == WARN]
        if fails:
            text = "; ".join(f"FAIL {c.check} {c.object}: {c.message} (fix: {c.fix})" for c in fails)
            reason = "Failed"
        elif warns:
            text = "; ".join(f"WARN {c.check} {c.object}: {c.message}" for c in warns)
            reason = "Warnings"
        else:
            text, reason = f"{len(checks)} checks passed", "Passed"
        self._preflight_conditions[key] = _condition("Preflight", not fails, reason, text, now, self._conditions(parsed.obj))
        for c in fails:
            said = (*key, c.message)
            if said not in self._preflight_said:
                self._preflight_said.add(said)
                self._emit(parsed.obj, "PreflightFailed", f"{c.check} {c.object}: {c.message} (fix: {c.fix})", warning=True, now=now)

    @staticmethod
    def _event_key(parsed: "_ParsedEvent") -> tuple[str, str]:
        return ((parsed.obj.get("metadata") or {}).get("namespace", ""), parsed.event.name)

    def _fault(self, obj: dict, reason: str, message: str, now: float) -> None:
        """A condition and a Warning Event on the object at fault; the cycle goes on."""
        try:
            self._write_status(obj, {"phase": "Error", "reason": clip(message, 512), "conditions": [_condition("Ready", False, reason, message, now, self._conditions(obj))]})
            self._event_once(obj, reason, message, warning=True, now=now)
        except NotLeader:
            raise
        except Exception as exc:  # noqa: BLE001 (reporting a fault must not become one)
            log.warning("reporting on %s: %s", (obj.get("metadata") or {}).get("name"), type(exc).__name__)

    def _query_for(self, obj: dict) -> tuple[str, ScalingPolicySpec] | None:
        try:
            spec = self._parse(obj)
        except InputError:
            return None
        meta = obj.get("metadata") or {}
        return render_query(spec.metric.query, namespace=meta.get("namespace", ""), target=spec.target_ref.name, policy=meta.get("name", "")), spec

    def _prefetch(self, policies: list[dict], now: float, pool) -> dict:
        """Start fetching every policy's history (one range query each) on ``pool``; returns futures."""
        jobs = {}
        for obj in policies:
            found = self._query_for(obj)
            if found is not None:
                query, spec = found
                jobs.setdefault((query, spec.step_s), spec)

        def fetch(query: str, spec: ScalingPolicySpec):
            try:
                return self.history.history(
                    query, now_s=now, history_s=spec.forecast_settings().history_s, step_s=spec.step_s,
                    stale_after_s=max(self.options.stale_after_s, 3 * spec.step_s),
                )
            except MetricsUnavailable as exc:
                return exc

        return {key: pool.submit(fetch, key[0], spec) for key, spec in jobs.items()}

    def _parse(self, obj: dict) -> ScalingPolicySpec:
        """parse_policy, once per spec generation (status writes do not change it)."""
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace"), meta.get("name"), meta.get("uid"), meta.get("generation") or meta.get("resourceVersion"))
        if key not in self._specs:
            try:
                self._specs[key] = (obj, parse_policy(obj))
            except InputError as exc:
                self._specs[key] = (obj, exc)
        found = self._specs[key][1]
        if isinstance(found, InputError):
            raise found
        return found

    def _hpa_for(self, namespace: str, kind: str, name: str):
        if namespace not in self._hpas:
            self._hpas[namespace] = self.kube.hpas_by_target(namespace)
        return self._hpas[namespace].get((kind, name))

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
    def _events(self, objs: list[dict], now: float) -> list[_ParsedEvent]:
        out = []
        for obj in objs:
            try:
                spec, event = parse_event(obj)
                memory = parse_memory(obj)
                if memory:
                    event = event.model_copy(update={"memories": tuple(memory[p] for p in sorted(memory))})
                out.append(_ParsedEvent(obj, spec, event, memory))
            except (InputError, ValueError, TypeError, KeyError) as exc:
                self.telemetry.errors.labels("invalid-event").inc()
                self._write_status(obj, {"conditions": [_condition("Valid", False, "InvalidSpec", str(exc), now, self._conditions(obj))]}, plural=EVENT_PLURAL)
                self._event_once(obj, "InvalidSpec", str(exc), warning=True, now=now)
        return out

    def _file_events(self, crs: list[_ParsedEvent]) -> list[_ParsedEvent]:
        """The promotions of ``--calendar`` (a ConfigMap mount, for clusters without the CRDs): they
        select policies in every watched namespace; a name a PromotionEvent already has is left
        out; a file that does not read is one log line, and the PromotionEvents go on."""
        from pathlib import Path

        from autoscaler.adapters import yamlsafe
        from autoscaler.core.calendar import read_entries

        path = self.options.calendar_file
        if not path:
            return []
        try:
            entries = read_entries(yamlsafe.read(Path(path), path), None, path)
            out = []
            for e in entries:
                spec, event = parse_event({"metadata": {"name": e.name}, "spec": e.spec})
                if e.memory:
                    event = event.model_copy(update={"memories": tuple(e.memory)})
                out.append(_ParsedEvent({"metadata": {"name": e.name}, "spec": e.spec}, spec, event, {m.policy: m for m in e.memory}, from_file=True))
        except (InputError, OSError) as exc:
            self.telemetry.errors.labels("calendar-file").inc()
            log.warning("calendar file %s: %s", path, exc)
            return []
        taken = {p.event.name for p in crs}
        clash = sorted(p.event.name for p in out if p.event.name in taken)
        if clash:
            log.warning("calendar file %s: %s also PromotionEvent(s): the resources win", path, ", ".join(clash[:5]))
        return [p for p in out if p.event.name not in taken]

    @staticmethod
    def _conditions(obj: dict) -> list[dict]:
        status = obj.get("status")
        conditions = status.get("conditions") if isinstance(status, dict) else None
        return [c for c in conditions if isinstance(c, dict)] if isinstance(conditions, list) else []

    def _write_status(self, obj: dict, status: dict, plural: str = POLICY_PLURAL) -> None:
        meta = obj.get("metadata") or {}
        try:
            self.kube.update_status(plural, meta["namespace"], meta["name"], status, listed=obj)
        except ApiException as exc:
            self.telemetry.errors.labels("status").inc()
            log.warning("status of %s/%s: %s", meta.get("namespace"), meta.get("name"), exc.reason)

    def _event_once(self, obj: dict, reason: str, message: str, *, warning: bool, now: float) -> None:
        """An Event, unless the same condition was already reported (its message is in status)."""
        if any(c.get("message") == clip(message, 512) for c in self._conditions(obj)):
            return
        self._emit(obj, reason, message, warning=warning, now=now)

    def _emit(self, obj: dict, reason: str, message: str, *, warning: bool, now: float) -> None:
        try:
            self.kube.emit_event(obj, reason=reason, message=message, warning=warning, now_s=now, component=COMPONENT)
        except ApiException as exc:
            self.telemetry.errors.labels("event").inc()
            log.warning("event %s: %s", reason, exc.reason)

    # ------------------------------------------------------------------------------------------
    def _reconcile(self, obj: dict, events: list[_ParsedEvent], now: float) -> tuple[Outcome, ScalingPolicySpec, float | None]:
        """One policy, one cycle: observe the target, decide (``cycle.decide``), act, report."""
        spec = self._parse(obj)
        meta = obj.get("metadata") or {}
        ns, name = meta["namespace"], meta["name"]
        key = (ns, name)
        labels = meta.get("labels") or {}
        policy = spec.cycle_policy(self.options.interval_s)
        mine = [e for e in events if (e.from_file or (e.obj.get("metadata") or {}).get("namespace") == ns) and e.spec.targets.matches(labels)]
        calendar = [e.for_policy(name) for e in mine]
        previous = self._conditions(obj)
        deleting = bool(meta.get("deletionTimestamp"))

        # --- observe: where the target stands, what the metrics say --------------------------
        target = self._observe_target(obj, spec, now, previous)
        if isinstance(target, Outcome):
            if deleting:
                self._release(obj)  # nothing left to restore on a target that is gone
            return target, spec, None
        hpa, current = target
        if spec.mode == "hpa-floor" and not deleting and not self.options.dry_run and FINALIZER not in (meta.get("finalizers") or []):
            # before any raise: a deleted policy must never leave a raised floor behind
            self.kube.set_finalizer(POLICY_PLURAL, ns, name, present=True, listed=obj)
        conditions = [_condition("TargetFound", True, "Found", f"{spec.target_ref.kind} {spec.target_ref.name}", now, previous)]
        view, metrics, series = self._forecast(obj, spec, policy, calendar, now, previous)
        conditions.append(metrics)
        if series is not None and not deleting:
            self._remember(name, spec, policy, mine, calendar, series, now)

        # --- decide --------------------------------------------------------------------------
        floor = None
        if hpa is not None:
            floor = HpaFloor(min_replicas=hpa.min_replicas, max_replicas=hpa.max_replicas, original=hpa.original_min())
        index = index_calendar(policy, calendar)
        holder = self._holders.get(key)
        placeholders = int((holder.get("spec") or {}).get("replicas") or 0) if holder is not None else None
        shape, headroom_condition = None, None
        if policy.headroom and not deleting and index.ahead_at(int(now)):
            shape, headroom_condition = self._shape(ns, spec, hpa, now, previous)
        seen = Seen(int(now), view, current, floor, deleting, shape.ready if shape is not None else None, placeholders)
        decision = decide(policy, self._states.get(key) or CycleState(), seen, index)
        if headroom_condition is not None and headroom_condition["status"] == "False":
            decision.placeholders = placeholders  # the target's pods cannot be read: no headroom write
        self._states[key] = decision.state
        if decision.reason == LAST_KNOWN_LEVEL:
            message = f"{metrics['message']}; planning {decision.event!r} from the last known level"
            conditions[-1] = _condition("MetricsAvailable", False, "LastKnownLevel", message, now, previous)

        # --- act -----------------------------------------------------------------------------
        outcome = Outcome(ns, name, planned=decision.planned, placeholders=decision.placeholders)
        if decision.writes:
            if decision.headroom_write != NONE:
                self._headroom(obj, spec, decision, shape, holder, outcome, now)
            if decision.action != NONE and not outcome.error:
                self._carry_out(obj, spec, hpa, decision, outcome, now)
            if outcome.error:
                conditions.append(_condition("Written", False, "WriteFailed", outcome.error, now, previous))
        else:
            self._write_failed.discard(key)
        if headroom_condition is not None:
            conditions.append(headroom_condition)
        # the peak the plan is sized for: the central forecast, or the upper one (an event's guess)
        sized_for = max((p for p in (decision.forecast_peak, decision.forecast_upper) if p is not None), default=None)
        if deleting:
            if not outcome.error:
                self._release(obj)  # the floor is back: let the deletion finish
            return outcome, spec, sized_for

        # --- report --------------------------------------------------------------------------
        self._report(obj, spec, policy, decision, calendar, hpa, current, conditions, previous, now, holder)
        return outcome, spec, sized_for

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
            return None, _condition("NodeHeadroom", False, "NoPodTemplate", message, now, previous)
        if shape.cpu <= 0 and shape.memory <= 0:
            message = f"{kind} {name} requests no CPU or memory: placeholders would hold no node room (set resources.requests)"
            return None, _condition("NodeHeadroom", False, "NoRequests", message, now, previous)
        return shape, _condition("NodeHeadroom", True, "Ready", f"placeholders ask {shape.requests} each, like {kind} {name}", now, previous)

    #: Event reason per placeholder write
    _HEADROOM_REASONS = {HEADROOM_CREATE: "HeadroomCreated", HEADROOM_DELETE: "HeadroomDeleted"}

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

    def _observe_target(self, obj: dict, spec: ScalingPolicySpec, now: float, previous: list[dict]):
        """(the HPA in hpa-floor mode, the replicas the target runs), or the Outcome of a target
        that cannot be acted on (no HPA, an HPA that owns a scale-mode target)."""
        meta = obj["metadata"]
        ns, name, ref = meta["namespace"], meta["name"], spec.target_ref
        if spec.mode == "hpa-floor":
            hpa = self.kube.get_hpa_view(ns, ref.name) if ref.kind == "HorizontalPodAutoscaler" else self._hpa_for(ns, ref.kind, ref.name)
            if hpa is None:
                msg = f"no HorizontalPodAutoscaler targets {ref.kind} {ref.name}: create one or use mode scale"
                self._write_status(obj, {"phase": "Error", "reason": msg, "conditions": [_condition("TargetFound", False, "NoHPA", msg, now, previous)]})
                self._event_once(obj, "NoHPA", msg, warning=True, now=now)
                return Outcome(ns, name, action="error", error=msg)
            self.telemetry.floor.labels(ns, name).set(hpa.min_replicas)
            self.telemetry.actual.labels(ns, name).set(hpa.current_replicas)
            return hpa, hpa.current_replicas
        owner = self._hpa_for(ns, ref.kind, ref.name)
        if spec.mode == "scale":
            if owner is not None:
                msg = f"HPA {owner.name} owns {ref.kind} {ref.name}: writing its scale would fight it; use mode hpa-floor"
                self._write_status(obj, {"phase": "Error", "reason": msg, "conditions": [_condition("Ready", False, "HPAOwnsTarget", msg, now, previous)]})
                self._event_once(obj, "HPAOwnsTarget", msg, warning=True, now=now)
                return Outcome(ns, name, action="refused", error=msg)
            current = self.kube.get_replicas(ns, ref.kind, ref.name)
        else:
            try:
                current = self.kube.get_replicas(ns, ref.kind, ref.name)
            except (ApiException, KubeError):
                current = None
        if current is not None:
            self.telemetry.actual.labels(ns, name).set(current)
        # observe mode: an HPA peakscale raised earlier is handed back (cycle.decide restores it)
        return (owner if spec.mode == "observe" and owner is not None and ORIGINAL_MIN in owner.annotations else None), current

    def _forecast(self, obj: dict, spec: ScalingPolicySpec, policy, calendar: list[PromotionEvent], now: float, previous: list[dict]):
        """The forecast made at the last sample (None without fresh metrics), and the
        MetricsAvailable condition."""
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        step = spec.step_s
        query, _ = self._query_for(obj)  # the same query the prefetch used
        try:
            # every valid policy's history was fetched at the start of the cycle
            series = self._prefetched[(query, step)].result()
            if isinstance(series, MetricsUnavailable):
                raise series
        except MetricsUnavailable as exc:
            msg = f"holding capacity: {exc}"
            self.telemetry.errors.labels("metrics").inc()
            if key not in self._metrics_down:
                self._metrics_down.add(key)
                self._emit(obj, "MetricsUnavailable", msg, warning=True, now=now)
            # an event whose window is open still gets its raise, from the last known level
            cached = self.history.last_known(query, step)
            view = None
            if cached is not None and index_calendar(policy, calendar).at(int(now))[0]:
                view = stale_forecast(cached.times_s, cached.values, calendar, policy, spec.forecast_settings(), step, int(now))
            return view, _condition("MetricsAvailable", False, "MetricsUnavailable", msg, now, previous), None
        view, self._baselines[(query, step)] = live_forecast(
            series.times_s, series.values, calendar, policy, spec.forecast_settings(), step, self._baselines.get((query, step))
        )
        self._metrics_down.discard(key)
        return view, _condition("MetricsAvailable", True, "Fresh", "samples are fresh", now, previous), series

    def _remember(self, name: str, spec: ScalingPolicySpec, policy, mine: list[_ParsedEvent], calendar: list[PromotionEvent], series, now: float) -> None:
        """Record what this policy saw of each event whose window and cool-down have passed and
        that has no profile for it yet; ``_event_statuses`` writes them to the events' status."""
        first_s = int(series.times_s[0]) - spec.step_s  # the oldest period the cache holds
        for parsed in mine:
            e = parsed.event
            key = ((parsed.obj.get("metadata") or {}).get("namespace"), e.name)
            if parsed.from_file or now < e.end_s + policy.cooldown_s or name in parsed.memory or name in self._recorded.get(key, {}):
                continue
            if e.start_s - policy.reach_s < first_s:
                continue  # its samples are gone (the controller was not running then)
            recorded = record_profile(
                period_starts(series.times_s, spec.step_s), series.values, calendar, e, step_s=spec.step_s,
                lead_time_s=policy.reach_s, settings=spec.forecast_settings(), recorded_at_s=e.end_s + policy.cooldown_s, policy=name,
            )  # fmt: skip
            if recorded is not None:
                self._recorded.setdefault(key, {})[name] = recorded

    #: Event reason per write
    _REASONS = {RAISE: "FloorRaised", LOWER: "FloorLowered", RESTORE: "FloorRestored", SCALE: "Scaled"}

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
            status["forecastPeak"] = _significant(decision.forecast_peak)
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
        conditions.insert(0, _condition("Ready", ok, "Reconciled" if ok else "Degraded", "planned and acted" if ok else "see other conditions", now, previous))
        status["conditions"] = conditions
        # the reason code, not explain(): its exact forecast would rewrite status every cycle
        status["reason"] = decision.reason
        self._write_status(obj, {k: v for k, v in status.items() if v is not None})

    def _next_action(self, policy, calendar: list[PromotionEvent], now: float, hpa) -> str:
        if policy.mode == "observe":
            return "observe only"
        upcoming = next_action(policy, index_calendar(policy, calendar), int(now))
        if upcoming is None:
            return "follow the forecast" if policy.mode == "scale" or policy.floor == "plan" else "none planned"
        at, event = upcoming
        verb = f"raise HPA {hpa.name} floor" if hpa is not None else "scale"
        text = f"{verb} at {now_rfc3339(at)} for {event.label!r} (lead {policy.plan.lead_time_s // 60} min)"
        if policy.headroom:
            ahead = index_calendar(policy, calendar).ahead_openings
            first = next(((t, e) for t, e in ahead if t > now), None)
            if first is not None and first[0] <= at:
                text = f"node headroom at {now_rfc3339(first[0])}, then {text}"
        return text

    def _event_statuses(self, events: list[_ParsedEvent], plans: dict, now: float) -> None:
        for parsed in events:
            if parsed.from_file:
                continue  # a file entry has no status to write
            meta = parsed.obj.get("metadata") or {}
            ns = meta.get("namespace")
            matched = [(k, v) for k, v in plans.items() if k[0] == ns and parsed.spec.targets.matches(v[2])]
            e = parsed.event
            windows = [action_window(spec.cycle_policy(self.options.interval_s), e) for _, (spec, _, _) in matched]
            opens = min((lo for lo, _ in windows), default=e.start_s)
            closes = max((hi for _, hi in windows), default=e.end_s)
            if now < opens:
                phase = "Scheduled"
            elif now < e.start_s:
                phase = "PreScaling"
            elif now < e.end_s:
                phase = "Active"
            elif now < closes:
                phase = "Cooling"
            else:
                phase = "Done"
            pending = sorted(k[1] for k, _ in matched if k in self._write_failed)
            if phase == "Done" and pending:
                phase = "Cooling"  # Done only once every floor it raised is back
            peaks = [p for _, (_, p, _) in matched if p is not None]
            status = {"phase": phase, "policies": sorted(k[1] for k, _ in matched), "observedGeneration": meta.get("generation", 1)}
            if peaks:
                status["plannedPeak"] = _significant(max(peaks))
            new = self._recorded.pop((ns, e.name), {})
            memory = {**parsed.memory, **new}
            if memory:
                status["memory"] = memory_status([memory[p] for p in sorted(memory)])
            for policy_name, profile in sorted(new.items()):
                self._emit(parsed.obj, "ProfileRecorded", f"recorded what ScalingPolicy {policy_name} saw: {profile.summary()}", warning=False, now=now)
            status["conditions"] = [_condition("Valid", True, "Parsed", "spec is valid", now, self._conditions(parsed.obj))]
            preflight = self._preflight_conditions.get((ns, e.name))
            if preflight is not None:
                status["conditions"].append(preflight)
            if pending:
                status["conditions"].append(
                    _condition("Restored", False, "WriteFailed", f"waiting for the write of {', '.join(pending)} to land", now, self._conditions(parsed.obj))
                )
            self._write_status(parsed.obj, status, plural=EVENT_PLURAL)
