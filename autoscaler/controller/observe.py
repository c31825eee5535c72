"""Observe: each policy's target, HPA and metrics (histories fetched on a pool, incrementally), and
the forecast the cycle decision reads. ``Observer.observe`` returns what it found of one policy;
it writes nothing but the status of a target that cannot be acted on."""

from __future__ import annotations

import logging
from concurrent.futures import Executor, Future

from autoscaler.core.defaults import stale_after
from autoscaler.core.cycle import index_calendar, live_forecast, stale_forecast
from autoscaler.core.cycle_types import CyclePolicy, ForecastView
from autoscaler.core.resources import ScalingPolicySpec, parse_policy
from autoscaler.errors import InputError, KubeError, MetricsUnavailable
from autoscaler.adapters.kube import ORIGINAL_MIN, HpaView, Kube
from autoscaler.adapters.prometheus import HistoryCache, Series, render_query
from autoscaler.core.baseline import Baseline
from autoscaler.controller.headroom import PodShape, shape_of, unscheduled
from autoscaler.controller.leader import NotLeader
from autoscaler.controller.model import LEVEL_REFRESH_S, ControllerOptions, Observation, Outcome, last_level, level_series, persisted_level
from autoscaler.controller.promotions import ParsedEvent
from autoscaler.controller.report import Reporter
from autoscaler.controller.resource import Resource
from autoscaler.controller.status import Condition, ConditionType, Reason, condition

log = logging.getLogger("peakscale.controller")

Fetched = Future[Series | MetricsUnavailable]


def missing(why: str) -> Fetched:
    """A history that did not come: a future already answered with ``MetricsUnavailable``."""
    future: Fetched = Future()
    future.set_result(MetricsUnavailable(why))
    return future


def query_of(spec: ScalingPolicySpec, namespace: str, name: str) -> str:
    """The policy's PromQL with its placeholders filled in: what the prefetch fetches."""
    return render_query(spec.metric.query, namespace=namespace, target=spec.target_ref.name, policy=name)


class Observer:
    """Reads what a cycle decides from. Keeps, between cycles, what it is cheaper not to read again:
    parsed specs, fitted baselines, the histories' costs, which policies' metrics are down."""

    def __init__(self, kube: Kube, history: HistoryCache, options: ControllerOptions, reporter: Reporter) -> None:
        self.kube, self.history, self.options, self.reporter = kube, history, options, reporter
        self.telemetry = reporter.telemetry
        #: parsed specs by ``Resource.spec_version``: the spec or its error
        self._specs: dict[tuple[str, str, str, int | str], ScalingPolicySpec | InputError] = {}
        self._baselines: dict[tuple[str, int], Baseline | None] = {}
        self._metrics_down: set[tuple[str, str]] = set()
        #: the histories left out of the last cycle's query budget, and what each history cost
        self._deferred: set[tuple[str, int]] = set()
        self.costs: dict[tuple[str, int], int] = {}
        #: this cycle's: history fetches by (query, step), HPAs by namespace, PriorityClass values
        self.fetched: dict[tuple[str, int], Fetched] = {}
        self._hpas: dict[str, dict[tuple[str, str], HpaView]] = {}
        self._priority_values: dict[str, int | None] = {}

    def new_cycle(self) -> None:
        """Forget the last cycle's reads before this cycle's are made (two generations of them
        never share the memory limit)."""
        self.fetched, self._hpas, self._priority_values = {}, {}, {}

    def parse(self, policy: Resource) -> ScalingPolicySpec:
        """parse_policy, once per spec generation (status writes do not change it)."""
        key = policy.spec_version
        if key not in self._specs:
            try:
                self._specs[key] = parse_policy(policy.raw)
            except InputError as exc:
                self._specs[key] = exc
        found = self._specs[key]
        if isinstance(found, InputError):
            raise found
        return found

    def history_queries(self, spec: ScalingPolicySpec, policy: Resource) -> int | None:
        """The range queries the policy's history cost this cycle (its status shows it)."""
        return self.costs.get((query_of(spec, *policy.key), spec.step_s))

    def series_for(self, spec: ScalingPolicySpec, namespace: str, name: str) -> Series | None:
        """The policy's history as this cycle fetched it, else as last known (stale is still history)."""
        query = query_of(spec, namespace, name)
        found = self.fetched.get((query, spec.step_s))
        series = found.result() if found is not None else None
        if series is None or isinstance(series, Exception):
            series = self.history.last_known(query, spec.step_s)
        return series

    def prefetch(self, policies: list[Resource], now: float, pool: Executor) -> dict[tuple[str, int], Fetched]:
        """Start fetching every policy's history on ``pool``; returns the futures (kept as ``fetched``).

        The cycle's range queries are a budget (``max_queries_per_cycle``) shared fairly: the
        histories left out last cycle go first, then the cheapest; one that would overspend it is
        left out this cycle (the policy holds) and goes first next time. What each history costs
        sent is kept for its policy's status."""
        if len(self._specs) > 4 * len(policies) + 100:
            self._specs = {}  # forget specs of deleted or changed policies
        jobs: dict[tuple[str, int], ScalingPolicySpec] = {}
        for policy in policies:
            try:
                spec = self.parse(policy)
            except InputError:
                continue
            jobs.setdefault((query_of(spec, *policy.key), spec.step_s), spec)

        def fetch(query: str, spec: ScalingPolicySpec) -> Series | MetricsUnavailable:
            try:
                return self.history.history(
                    query, now_s=now, history_s=spec.forecast_settings().history_s, step_s=spec.step_s,
                    stale_after_s=stale_after(spec.step_s, self.options.stale_after_s), ceiling=spec.plausible_demand,
                )  # fmt: skip
            except MetricsUnavailable as exc:
                return exc

        costs = {key: self.history.cost(key[0], now_s=now, history_s=spec.forecast_settings().history_s, step_s=key[1]) for key, spec in jobs.items()}
        order = sorted(jobs, key=lambda key: (key not in self._deferred, costs[key]))
        budget, deferred = self.options.max_queries_per_cycle, set()
        out: dict[tuple[str, int], Fetched] = {}
        for key in order:
            if costs[key] > budget:
                deferred.add(key)
                needed, costs[key] = costs[key], 0  # sent nothing
                out[key] = missing(f"its history needs {needed} range queries and this cycle's budget ({self.options.max_queries_per_cycle}) is spent: it goes first next cycle")
                continue
            budget -= costs[key]
            out[key] = pool.submit(fetch, key[0], jobs[key])
        self._deferred, self.costs, self.fetched = deferred, costs, out
        return out

    def observe(self, policy: Resource, spec: ScalingPolicySpec, cycle_policy: CyclePolicy, mine: list[ParsedEvent], holder: dict | None, now: float) -> Observation | Outcome:
        """Where the target stands and what the metrics say, planned with the promotions that apply
        (``mine``); an Outcome for a target that cannot be acted on (its status is written)."""
        calendar = [e.for_policy(policy.name) for e in mine]
        target = self._target(policy, spec, now)
        if isinstance(target, Outcome):
            return target
        hpa, current, jobs = target
        ref = spec.target_ref
        found = condition(ConditionType.TARGET_FOUND, True, Reason.FOUND, f"{ref.kind} {ref.name}", now, policy.conditions)
        index = index_calendar(cycle_policy, calendar)
        seen = Observation(policy, spec, cycle_policy, calendar, index, hpa, current, [found], holder=holder, jobs=jobs)
        seen.view, metrics, seen.series = self._forecast(seen, now)
        seen.conditions.append(metrics)
        kept = persisted_level(policy)
        fresh = last_level(seen.series) if seen.series is not None else None
        # refreshed at most every ten minutes: a status that changed every cycle would be written every cycle
        seen.level = fresh if fresh is not None and (kept is None or fresh[1] - kept[1] >= LEVEL_REFRESH_S) else kept
        if cycle_policy.headroom and not policy.deleting and index.ahead_at(int(now)):
            seen.shape, seen.headroom = self._shape(policy, spec, hpa, now)
        return seen

    def _hpa_for(self, namespace: str, kind: str, name: str) -> HpaView | None:
        if namespace not in self._hpas:
            self._hpas[namespace] = self.kube.hpas_by_target(namespace)
        return self._hpas[namespace].get((kind, name))

    def _target(self, policy: Resource, spec: ScalingPolicySpec, now: float) -> tuple[HpaView | None, int | None, list[dict] | None] | Outcome:
        """(the HPA in hpa-floor mode, the replicas the target runs, a resharding tier's Jobs), or the
        Outcome of a target that cannot be acted on (no HPA, an HPA that owns a scale-mode target)."""
        (ns, name), ref = policy.key, spec.target_ref
        if spec.mode == "hpa-floor":
            hpa = self.kube.get_hpa_view(ns, ref.name) if ref.kind == "HorizontalPodAutoscaler" else self._hpa_for(ns, ref.kind, ref.name)
            if hpa is None:
                msg = f"no HorizontalPodAutoscaler targets {ref.kind} {ref.name}: create one or use mode scale"
                self.reporter.fault(policy, Reason.NO_HPA, msg, now, ConditionType.TARGET_FOUND)
                return Outcome(ns, name, action="error", error=msg)
            self.telemetry.floor.labels(ns, name).set(hpa.min_replicas)
            self.telemetry.actual.labels(ns, name).set(hpa.current_replicas)
            return hpa, hpa.current_replicas, None
        owner = self._hpa_for(ns, ref.kind, ref.name)
        jobs = None
        if spec.mode == "scale":
            if owner is not None:
                msg = f"HPA {owner.name} owns {ref.kind} {ref.name}: writing its scale would fight it; use mode hpa-floor"
                self.reporter.fault(policy, Reason.HPA_OWNS_TARGET, msg, now)
                return Outcome(ns, name, action="refused", error=msg)
            current = self.kube.get_replicas(ns, ref.kind, ref.name)
            if spec.reshard is not None:
                current, jobs = self._serving_shards(policy, spec, current)
        else:
            try:
                current = self.kube.get_replicas(ns, ref.kind, ref.name)
            except KubeError:
                current = None
        if current is not None:
            self.telemetry.actual.labels(ns, name).set(current)
        # observe mode: an HPA peakscale raised earlier is handed back (cycle.decide restores it)
        return (owner if spec.mode == "observe" and owner is not None and ORIGINAL_MIN in owner.annotations else None), current, jobs

    def _serving_shards(self, policy: Resource, spec: ScalingPolicySpec, nodes: int) -> tuple[int, list[dict]]:
        """A resharding tier's replicas are the shards that serve (``controller.reshard.serving``);
        with the Jobs that says so."""
        from autoscaler.adapters.kube_jobs import list_jobs
        from autoscaler.controller.reshard import POLICY_LABEL, serving

        assert spec.reshard is not None
        jobs = list_jobs(self.kube, policy.namespace, f"{POLICY_LABEL}={policy.name}")
        return serving(nodes, spec.reshard.replicas_per_shard, jobs), jobs

    def _forecast(self, seen: Observation, now: float) -> tuple[ForecastView | None, Condition, Series | None]:
        """The forecast made at the last sample (None without fresh metrics), the MetricsAvailable
        condition, and the fresh history it was made from."""
        policy, spec, key = seen.policy_object, seen.spec, seen.key
        step, settings = spec.step_s, spec.forecast_settings()
        query = query_of(spec, *key)
        try:
            # every valid policy's history was fetched at the start of the cycle
            series = self.fetched[(query, step)].result()
            if isinstance(series, MetricsUnavailable):
                raise series
        except MetricsUnavailable as exc:
            msg = f"holding capacity: {exc}"
            self.telemetry.errors.labels("metrics").inc()
            if key not in self._metrics_down:
                self._metrics_down.add(key)
                self.reporter.event(policy.raw, "MetricsUnavailable", msg, warning=True, now=now)
            # an event whose window is open still gets its raise, from the last known level: what
            # this instance cached, else what the status kept of it (a restart while Prometheus is down)
            cached = self.history.last_known(query, step)
            if cached is None and (level := persisted_level(policy)) is not None:
                cached = level_series(level, settings.history_s, step)
            view = None
            if cached is not None and seen.index.at(int(now))[0]:
                view = stale_forecast(cached.times_s, cached.values, seen.calendar, seen.policy, settings, step, int(now))
            return view, condition(ConditionType.METRICS_AVAILABLE, False, Reason.METRICS_UNAVAILABLE, msg, now, policy.conditions), None
        view, self._baselines[(query, step)] = live_forecast(series.times_s, series.values, seen.calendar, seen.policy, settings, step, self._baselines.get((query, step)))
        self._metrics_down.discard(key)
        said = "samples are fresh"
        if series.dropped:
            self.telemetry.errors.labels("bad-samples").inc(sum(series.dropped.values()))
            said += "; held as missing: " + ", ".join(f"{n} {why}" for why, n in sorted(series.dropped.items()))
        return view, condition(ConditionType.METRICS_AVAILABLE, True, Reason.FRESH, said, now, policy.conditions), series

    def _shape(self, policy: Resource, spec: ScalingPolicySpec, hpa: HpaView | None, now: float) -> tuple[PodShape | None, Condition]:
        """The target's pod shape and ready count, and the NodeHeadroom condition."""
        ref, previous = spec.target_ref, policy.conditions
        kind, name = (hpa.target_kind, hpa.target_name) if ref.kind == "HorizontalPodAutoscaler" and hpa is not None else (ref.kind, ref.name)
        try:
            shape = shape_of(kind, self.kube.get_workload(policy.namespace, kind, name))
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
