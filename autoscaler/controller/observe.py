"""Observe: each policy's target, HPA and metrics (histories fetched on a pool, incrementally), and
the forecast the cycle decision reads."""

from __future__ import annotations

import logging

from kubernetes.client.rest import ApiException

from autoscaler.core.calendar import PromotionEvent
from autoscaler.core.cycle import index_calendar, live_forecast, stale_forecast
from autoscaler.errors import InputError, clip
from autoscaler.adapters.kube import ORIGINAL_MIN
from autoscaler.errors import KubeError
from autoscaler.controller.leader import NotLeader
from autoscaler.adapters.prometheus import render_query
from autoscaler.errors import MetricsUnavailable
from autoscaler.core.resources import ScalingPolicySpec, parse_policy

log = logging.getLogger("peakscale.controller")

from autoscaler.controller.base import ControllerBase
from autoscaler.controller.base import Outcome, condition


class ObserveSteps(ControllerBase):
    def _fault(self, obj: dict, reason: str, message: str, now: float) -> None:
        """A condition and a Warning Event on the object at fault; the cycle goes on."""
        try:
            self._write_status(obj, {"phase": "Error", "reason": clip(message, 512), "conditions": [condition("Ready", False, reason, message, now, self._conditions(obj))]})
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

    def _observe_target(self, obj: dict, spec: ScalingPolicySpec, now: float, previous: list[dict]):
        """(the HPA in hpa-floor mode, the replicas the target runs), or the Outcome of a target
        that cannot be acted on (no HPA, an HPA that owns a scale-mode target)."""
        meta = obj["metadata"]
        ns, name, ref = meta["namespace"], meta["name"], spec.target_ref
        if spec.mode == "hpa-floor":
            hpa = self.kube.get_hpa_view(ns, ref.name) if ref.kind == "HorizontalPodAutoscaler" else self._hpa_for(ns, ref.kind, ref.name)
            if hpa is None:
                msg = f"no HorizontalPodAutoscaler targets {ref.kind} {ref.name}: create one or use mode scale"
                self._write_status(obj, {"phase": "Error", "reason": msg, "conditions": [condition("TargetFound", False, "NoHPA", msg, now, previous)]})
                self._event_once(obj, "NoHPA", msg, warning=True, now=now)
                return Outcome(ns, name, action="error", error=msg)
            self.telemetry.floor.labels(ns, name).set(hpa.min_replicas)
            self.telemetry.actual.labels(ns, name).set(hpa.current_replicas)
            return hpa, hpa.current_replicas
        owner = self._hpa_for(ns, ref.kind, ref.name)
        if spec.mode == "scale":
            if owner is not None:
                msg = f"HPA {owner.name} owns {ref.kind} {ref.name}: writing its scale would fight it; use mode hpa-floor"
                self._write_status(obj, {"phase": "Error", "reason": msg, "conditions": [condition("Ready", False, "HPAOwnsTarget", msg, now, previous)]})
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
            return view, condition("MetricsAvailable", False, "MetricsUnavailable", msg, now, previous), None
        view, self._baselines[(query, step)] = live_forecast(
            series.times_s, series.values, calendar, policy, spec.forecast_settings(), step, self._baselines.get((query, step))
        )
        self._metrics_down.discard(key)
        return view, condition("MetricsAvailable", True, "Fresh", "samples are fresh", now, previous), series
