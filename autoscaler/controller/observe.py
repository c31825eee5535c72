"""Observe: each policy's target, HPA and metrics (histories fetched on a pool, incrementally), and
the forecast the cycle decision reads."""

from __future__ import annotations

import logging
from concurrent.futures import Executor, Future
from typing import Any


from autoscaler.core.defaults import stale_after
from autoscaler.core.calendar import PromotionEvent
from autoscaler.core.cycle import CalendarIndex, live_forecast, stale_forecast
from autoscaler.core.cycle_types import CyclePolicy, ForecastView
from autoscaler.core.resources import ScalingPolicySpec, parse_policy
from autoscaler.errors import InputError, KubeError, MetricsUnavailable
from autoscaler.adapters.kube import ORIGINAL_MIN, HpaView
from autoscaler.adapters.prometheus import Series, render_query
from autoscaler.controller.base import ControllerBase, Outcome, level_series, persisted_level
from autoscaler.controller.headroom import PodShape, shape_of, unscheduled
from autoscaler.controller.leader import NotLeader
from autoscaler.controller.status import Condition, ConditionType, Reason, condition, conditions_of, fault_status

log = logging.getLogger("peakscale.controller")


class ObserveSteps(ControllerBase):
    def _fault(self, obj: dict[str, Any], reason: Reason, message: str, now: float) -> None:
        """A condition and a Warning Event on the object at fault; the cycle goes on."""
        try:
            self._write_status(obj, fault_status(ConditionType.READY, reason, message, now, conditions_of(obj)))
            self._event_once(obj, reason, message, warning=True, now=now)
        except NotLeader:
            raise
        except Exception as exc:  # noqa: BLE001 (reporting a fault must not become one)
            log.warning("reporting on %s: %s", (obj.get("metadata") or {}).get("name"), type(exc).__name__)

    def _query_for(self, obj: dict[str, Any]) -> tuple[str, ScalingPolicySpec] | None:
        try:
            spec = self._parse(obj)
        except InputError:
            return None
        meta = obj.get("metadata") or {}
        return self._query(spec, meta.get("namespace", ""), meta.get("name", "")), spec

    @staticmethod
    def _query(spec: ScalingPolicySpec, namespace: str, name: str) -> str:
        """The policy's PromQL with its placeholders filled in: what the prefetch fetched."""
        return render_query(spec.metric.query, namespace=namespace, target=spec.target_ref.name, policy=name)

    def _prefetch(self, policies: list[dict[str, Any]], now: float, pool: Executor) -> dict[tuple[str, int], Future[Series | MetricsUnavailable]]:
        """Start fetching every policy's history on ``pool``; returns futures.

        The cycle's range queries are a budget (``max_queries_per_cycle``) shared fairly: the
        histories left out last cycle go first, then the cheapest; one that would overspend it is
        left out this cycle (the policy holds) and goes first next time. What each history costs
        sent is kept for its policy's status."""
        jobs: dict[tuple[str, int], ScalingPolicySpec] = {}
        for obj in policies:
            found = self._query_for(obj)
            if found is not None:
                query, spec = found
                jobs.setdefault((query, spec.step_s), spec)

        def fetch(query: str, spec: ScalingPolicySpec) -> Series | MetricsUnavailable:
            try:
                return self.history.history(
                    query, now_s=now, history_s=spec.forecast_settings().history_s, step_s=spec.step_s,
                    stale_after_s=stale_after(spec.step_s, self.options.stale_after_s), ceiling=spec.plausible_demand,
                )
            except MetricsUnavailable as exc:
                return exc

        costs = {key: self.history.cost(key[0], now_s=now, history_s=spec.forecast_settings().history_s, step_s=key[1]) for key, spec in jobs.items()}
        order = sorted(jobs, key=lambda key: (key not in self._deferred, costs[key]))
        budget, deferred = self.options.max_queries_per_cycle, set()
        out: dict[tuple[str, int], Future[Series | MetricsUnavailable]] = {}
        for key in order:
            if costs[key] > budget:
                deferred.add(key)
                needed, costs[key] = costs[key], 0  # sent nothing
                left: Future[Series | MetricsUnavailable] = Future()
                left.set_result(MetricsUnavailable(f"its history needs {needed} range queries and this cycle's budget ({self.options.max_queries_per_cycle}) is spent: it goes first next cycle"))
                out[key] = left
                continue
            budget -= costs[key]
            out[key] = pool.submit(fetch, key[0], jobs[key])
        self._deferred, self._costs = deferred, costs
        return out

    def _parse(self, obj: dict[str, Any]) -> ScalingPolicySpec:
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

    def _hpa_for(self, namespace: str, kind: str, name: str) -> HpaView | None:
        if namespace not in self._hpas:
            self._hpas[namespace] = self.kube.hpas_by_target(namespace)
        return self._hpas[namespace].get((kind, name))

    def _observe_target(self, obj: dict[str, Any], spec: ScalingPolicySpec, now: float, previous: list[dict[str, Any]]) -> tuple[HpaView | None, int | None] | Outcome:
        """(the HPA in hpa-floor mode, the replicas the target runs), or the Outcome of a target
        that cannot be acted on (no HPA, an HPA that owns a scale-mode target)."""
        meta = obj["metadata"]
        ns, name, ref = meta["namespace"], meta["name"], spec.target_ref
        if spec.mode == "hpa-floor":
            hpa = self.kube.get_hpa_view(ns, ref.name) if ref.kind == "HorizontalPodAutoscaler" else self._hpa_for(ns, ref.kind, ref.name)
            if hpa is None:
                msg = f"no HorizontalPodAutoscaler targets {ref.kind} {ref.name}: create one or use mode scale"
                self._write_status(obj, fault_status(ConditionType.TARGET_FOUND, Reason.NO_HPA, msg, now, previous))
                self._event_once(obj, Reason.NO_HPA, msg, warning=True, now=now)
                return Outcome(ns, name, action="error", error=msg)
            self.telemetry.floor.labels(ns, name).set(hpa.min_replicas)
            self.telemetry.actual.labels(ns, name).set(hpa.current_replicas)
            return hpa, hpa.current_replicas
        owner = self._hpa_for(ns, ref.kind, ref.name)
        if spec.mode == "scale":
            if owner is not None:
                msg = f"HPA {owner.name} owns {ref.kind} {ref.name}: writing its scale would fight it; use mode hpa-floor"
                self._write_status(obj, fault_status(ConditionType.READY, Reason.HPA_OWNS_TARGET, msg, now, previous))
                self._event_once(obj, Reason.HPA_OWNS_TARGET, msg, warning=True, now=now)
                return Outcome(ns, name, action="refused", error=msg)
            current = self.kube.get_replicas(ns, ref.kind, ref.name)
            if spec.reshard is not None:
                current = self._serving_shards(ns, name, spec, current)
        else:
            try:
                current = self.kube.get_replicas(ns, ref.kind, ref.name)
            except KubeError:
                current = None
        if current is not None:
            self.telemetry.actual.labels(ns, name).set(current)
        # observe mode: an HPA peakscale raised earlier is handed back (cycle.decide restores it)
        return (owner if spec.mode == "observe" and owner is not None and ORIGINAL_MIN in owner.annotations else None), current

    def _serving_shards(self, ns: str, name: str, spec: ScalingPolicySpec, nodes: int) -> int:
        """A resharding tier's replicas are the shards that serve (``controller.reshard.serving``)."""
        from autoscaler.adapters.kube_jobs import list_jobs
        from autoscaler.controller.reshard import POLICY_LABEL, serving

        assert spec.reshard is not None
        return serving(nodes, spec.reshard.replicas_per_shard, list_jobs(self.kube, ns, f"{POLICY_LABEL}={name}"))

    def _forecast(
        self,
        obj: dict[str, Any],
        spec: ScalingPolicySpec,
        policy: CyclePolicy,
        calendar: list[PromotionEvent],
        index: CalendarIndex,
        now: float,
        previous: list[dict[str, Any]],
    ) -> tuple[ForecastView | None, Condition, Series | None]:
        """The forecast made at the last sample (None without fresh metrics), and the
        MetricsAvailable condition."""
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        step = spec.step_s
        query = self._query(spec, *key)
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
            # an event whose window is open still gets its raise, from the last known level: what
            # this instance cached, else what the status kept of it (a restart while Prometheus is down)
            cached = self.history.last_known(query, step)
            if cached is None and (level := persisted_level(obj)) is not None:
                cached = level_series(level, spec.forecast_settings().history_s, step)
            view = None
            if cached is not None and index.at(int(now))[0]:
                view = stale_forecast(cached.times_s, cached.values, calendar, policy, spec.forecast_settings(), step, int(now))
            return view, condition(ConditionType.METRICS_AVAILABLE, False, Reason.METRICS_UNAVAILABLE, msg, now, previous), None
        view, self._baselines[(query, step)] = live_forecast(
            series.times_s, series.values, calendar, policy, spec.forecast_settings(), step, self._baselines.get((query, step))
        )
        self._metrics_down.discard(key)
        said = "samples are fresh"
        if series.dropped:
            self.telemetry.errors.labels("bad-samples").inc(sum(series.dropped.values()))
            said += "; held as missing: " + ", ".join(f"{n} {why}" for why, n in sorted(series.dropped.items()))
        return view, condition(ConditionType.METRICS_AVAILABLE, True, Reason.FRESH, said, now, previous), series

    def _shape(self, ns: str, spec: ScalingPolicySpec, hpa: HpaView | None, now: float, previous: list[dict[str, Any]]) -> tuple[PodShape | None, Condition]:
        """The target's pod shape and ready count, and the NodeHeadroom condition."""
        ref = spec.target_ref
        kind, name = (hpa.target_kind, hpa.target_name) if ref.kind == "HorizontalPodAutoscaler" and hpa is not None else (ref.kind, ref.name)
        try:
            shape = shape_of(kind, self.kube.get_workload(ns, kind, name))
        except NotLeader:
            raise
        except (InputError, KubeError) as exc:
            message = f"cannot read the pod template of {kind} {name}: {exc}"
            return None, condition(ConditionType.NODE_HEADROOM, False, Reason.NO_POD_TEMPLATE, message, now, previous)
        if shape.cpu <= 0 and shape.memory <= 0:
            message = f"{kind} {name} requests no CPU or memory: placeholders would hold no node room (set resources.requests)"
            return None, condition(ConditionType.NODE_HEADROOM, False, Reason.NO_REQUESTS, message, now, previous)
        refused = self._priority_refused(spec.node_headroom.priority_class_name)
        if refused is not None:
            return None, condition(ConditionType.NODE_HEADROOM, False, Reason.PRIORITY_CLASS_REFUSED, refused, now, previous)
        if not self.options.headroom_copy_scheduling:
            shape = unscheduled(shape)
        return shape, condition(ConditionType.NODE_HEADROOM, True, Reason.HEADROOM_READY, f"placeholders ask {shape.requests} each, like {kind} {name}", now, previous)

    def _priority_refused(self, name: str) -> str | None:
        """Why placeholders may not run at PriorityClass ``name`` (None: they may): it must be one
        the controller was allowed (``--headroom-priority-class``) and have a negative value, so
        that a policy can never make the controller start pods that preempt others."""
        allowed = self.options.headroom_priority_classes
        if name not in allowed:
            return f"nodeHeadroom.priorityClassName {name!r} is not one this controller may use (allowed: {', '.join(allowed)}): no placeholders"
        if name not in self._priority_values:
            found = self.kube.get_priority_class(name)
            self._priority_values[name] = int(found.get("value", 0)) if found is not None else None
        value = self._priority_values[name]
        if value is None:
            return f"PriorityClass {name} does not exist: no placeholders (install the chart's, or create it with a negative value)"
        if value >= 0:
            return f"PriorityClass {name} has value {value}: placeholders must be preempted by every real pod, so it must be negative"
        return None
