"""The backtest: replay a real trace through the simulated cluster for six strategies.

| strategy        | what it models |
|-----------------|----------------|
| reactive        | an HPA on the request rate, 60 s late (the most favourable case for reactive scaling) |
| schedule        | the HPA plus fixed floors over each calendar window, sized by hand (KEDA cron style) |
| history         | the controller in ``scale`` mode fed by the seasonal forecast alone, no calendar (EHPA style) |
| peakscale       | the controller as shipped (``hpa-floor``): the HPA of ``reactive`` plus the floor it writes |
| peakscale-scale | the controller in ``mode: scale`` |
| oracle          | perfect foresight: exactly the replicas needed, ready just in time |

The planner strategies are the controller itself: ``replay.replay`` runs ``cycle.decide`` every
``--interval`` on what the controller's Prometheus would hold by then (each sample once the
period it measures is over; only the policy's history window), and the forecasts are the rows
the live controller computes. The HPA of every strategy that has one sees the demand
``--metric-lag`` late. What a backtest shows is what the
controller does; parity tests run the real controller against the same trace to prove it.

``--node-lead-time`` (default 0: nodes always have room) adds nodes to the model
(``simulate.ready_with_nodes``): for every strategy, pods asked for beyond the node room held serve
after the lead time plus the node lead time. The peakscale strategies then keep node headroom
(``nodeHeadroom``, the node lead time as its ``leadTime``; ``--no-node-headroom`` turns it off):
the placeholder pods the controller would keep take node room ahead of each raise, and the
replicas that preempt them serve after the pod lead time alone. Placeholder pods count in
replica-hours: the nodes they hold are paid for.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any
from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np

from autoscaler.core.calendar import PromotionEvent, event_mask
from autoscaler.core.cycle import horizon_steps, placeholders_for
from autoscaler.core.replay import ForecastTable, Replay, forecast_table, remember, replay
from autoscaler.core.cycle_types import NONE, CyclePolicy, HpaFloor
from autoscaler.errors import InputError
from autoscaler.core.baseline import ForecastSettings
from autoscaler.core.plan import PlanPolicy
from autoscaler.core.profiles import has_basis
from autoscaler.core.reshard import ready_resharding
from autoscaler.core.simulate import NODE_RELEASE_S, Figures, figures, need_replicas, ready_replicas, ready_with_nodes, simulate_hpa
from autoscaler.core.trace import Trace

STRATEGIES = ("reactive", "schedule", "history", "peakscale", "peakscale-scale", "oracle")
Progress = Callable[[str, float], None]
#: forecast tables are shared by (event names, horizon in steps)
TableKey = tuple[tuple[str, ...], int]


def _quiet(stage: str, fraction: float) -> None:
    return None


@dataclass(frozen=True)
class Scenario:
    policy: PlanPolicy
    metric_lag_s: int = 60
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    #: the controller's interval: the planner strategies decide this often
    interval_s: int = 30
    cooldown_s: int = 1800
    #: the hpa-floor rule of the ``peakscale`` strategy (``plan`` or ``events-only``)
    floor: str = "plan"
    #: events older than the history window teach through the profiles recorded for them
    memory: bool = True
    #: how long a node takes to come up (0: nodes always have room)
    node_lead_s: int = 0
    #: with a node lead time: the peakscale strategies keep node headroom
    node_headroom: bool = True
    #: the schedule strategy's floors times this (the sweep's knob: a hand schedule sized with margin)
    schedule_multiple: float = 1.0
    #: a resharding tier (a Redis Cluster cache, replicas are shards): (dataset bytes, measured
    #: migration throughput in bytes/s). Every raise serves once its pods are up and its slots have
    #: moved (``reshard.ready_resharding``); the planner's lead time is the pod start plus moving the
    #: whole dataset (``plan_lead_s``), the lead time such a policy declares
    reshard: tuple[float, float] | None = None

    @property
    def plan_lead_s(self) -> int:
        """The lead time the planner strategies plan with."""
        if self.reshard is None:
            return self.policy.lead_time_s
        from autoscaler.core.reshard import SLOTS, reshard_seconds

        return self.policy.lead_time_s + int(reshard_seconds(SLOTS, *self.reshard))

    def cycle_policy(self, mode: str, interval_s: int | None = None, headroom: bool = False) -> CyclePolicy:
        ahead = self.node_lead_s if (headroom and self.node_headroom and self.node_lead_s > 0) else None
        plan = self.policy if self.reshard is None else dataclasses.replace(self.policy, lead_time_s=self.plan_lead_s)
        return CyclePolicy(plan=plan, mode=mode, floor=self.floor, cooldown_s=self.cooldown_s, interval_s=interval_s or self.interval_s, headroom_lead_s=ahead)


@dataclass
class StrategyRun:
    name: str
    desired: np.ndarray
    ready: np.ndarray
    #: peakscale: the floor in effect at each step; peakscale-scale, history: the planned count
    plan: np.ndarray | None = None
    #: every write the controller would make (time, new value)
    writes: list[tuple[int, int]] = field(default_factory=list)
    #: node headroom placeholder pods at each step (None: none)
    placeholders: np.ndarray | None = None
    all: Figures | None = None
    events: Figures | None = None
    #: the planner strategies: the share of event minutes whose demand exceeded the capacity the
    #: plan alone had ready (its replicas a lead time after it asked for them), against the
    #: nominal ``1 - coverage``
    exceeded: float | None = None

    def measured(self) -> tuple[Figures, Figures]:
        """(over the whole trace, within events), as ``run_backtest`` measured them."""
        if self.all is None or self.events is None:
            raise ValueError(f"strategy {self.name} was not measured")
        return self.all, self.events


@dataclass
class BacktestResult:
    trace: Trace
    events: list[PromotionEvent]
    scenario: Scenario
    step_s: int
    times_s: np.ndarray
    demand: np.ndarray
    in_event: np.ndarray
    runs: dict[str, StrategyRun]
    #: minutes inside events the plan had nothing to size from (``has_basis``): calibration leaves them out
    unsized_minutes: float = 0.0

    def as_json(self) -> dict[str, Any]:
        p = self.scenario.policy
        return {
            "trace": self.trace.name,
            "scenario": {
                "coverage": self.scenario.forecast.coverage,
                "capacity_per_replica": p.capacity_per_replica,
                "target_utilization": p.target_utilization,
                "lead_time_s": p.lead_time_s,
                "min_replicas": p.min_replicas,
                "max_replicas": p.max_replicas,
                "scale_down_stabilization_s": p.scale_down_stabilization_s,
                "freeze_during_events": p.freeze_during_events,
                "max_freeze_s": p.max_freeze_s,
                "metric_lag_s": self.scenario.metric_lag_s,
                "interval_s": self.scenario.interval_s,
                "cooldown_s": self.scenario.cooldown_s,
                "floor": self.scenario.floor,
                "history_s": self.scenario.forecast.history_s,
                "memory": self.scenario.memory,
                "node_lead_s": self.scenario.node_lead_s,
                "node_headroom": self.scenario.node_headroom and self.scenario.node_lead_s > 0,
                "reshard": None if self.scenario.reshard is None else {"dataset_bytes": self.scenario.reshard[0], "throughput_bytes_s": self.scenario.reshard[1], "plan_lead_s": self.scenario.plan_lead_s},
                "simulation_step_s": self.step_s,
                "trace_step_s": self.trace.step_s,
                "samples": len(self.trace),
                "calendar_events": len(self.events),
                "event_kinds": sorted({e.kind for e in self.events}),
                "event_minutes": float(self.in_event.sum() * self.step_s / 60),
                # figures count only the minutes whose demand is known
                "missing_minutes": float(np.isnan(self.demand).sum() * self.step_s / 60),
            },
            "strategies": {
                name: {"all": run.all.as_dict(), "events": run.events.as_dict(), **self._calibration(run)}
                for name, run in self.runs.items()
                if run.all is not None and run.events is not None
            },
        }

    def _calibration(self, run: StrategyRun) -> dict[str, Any]:
        if run.exceeded is None or run.name not in ("peakscale", "peakscale-scale"):
            return {}
        coverage = self.scenario.forecast.coverage
        return {"calibration": {"coverage": coverage, "nominal_exceeded": round(1 - coverage, 10), "exceeded": run.exceeded, "unsized_minutes": self.unsized_minutes}}


def simulation_step_s(trace_step_s: int) -> int:
    """One minute, or the trace's step when it is finer; the trace step must be a multiple."""
    step = min(trace_step_s, 60)
    if trace_step_s % step:
        raise InputError("trace", f"step of {trace_step_s} s is not a whole number of minutes", "resample the trace to 1 min, 5 min, 30 min ...")
    return step


def _lagged(x: np.ndarray, lag: int) -> np.ndarray:
    """``x`` seen ``lag`` steps late (the first value held before it)."""
    if lag <= 0:
        return x.copy()
    lag = min(lag, len(x))
    return np.concatenate([np.full(lag, x[0]), x[: len(x) - lag]])


def run_oracle(need: np.ndarray, lead_steps: int, policy: PlanPolicy) -> np.ndarray:
    """Exactly the replicas needed, each asked for ``lead`` early so it is ready in time."""
    need = np.clip(need, policy.min_replicas, policy.max_replicas)
    if lead_steps <= 0:
        return need
    from numpy.lib.stride_tricks import sliding_window_view

    padded = np.concatenate([need, np.full(lead_steps, need[-1])])
    out: np.ndarray = sliding_window_view(padded, lead_steps + 1).max(axis=1)
    return out


def schedule_floor(
    times_s: np.ndarray,
    demand: np.ndarray,
    events: list[PromotionEvent],
    policy: PlanPolicy,
    lag_s: int,
) -> np.ndarray:
    """Per-step floor an operator would set by hand over each calendar window (plus lead time).

    Sized from the expected peak when the calendar gives one, from the multiplier times the load
    of the hour before, else from the peak of the most recent past event of the same kind.
    """
    floor = np.zeros(len(times_s), dtype=np.int64)
    for event in events:
        decided_at = event.start_s - policy.lead_time_s - lag_s
        if event.expected_peak is not None:
            peak = event.expected_peak
        elif event.expected_multiplier is not None:
            lo, hi = np.searchsorted(times_s, [decided_at - 3600, decided_at])
            seen = demand[lo:hi][np.isfinite(demand[lo:hi])]
            if not seen.size:
                continue
            peak = event.expected_multiplier * float(seen.mean())
        else:
            past = [e for e in events if e.kind == event.kind and e.end_s <= decided_at]
            if not past:
                continue
            last = max(past, key=lambda e: e.end_s)
            lo, hi = np.searchsorted(times_s, [last.start_s, last.end_s])
            seen = demand[lo:hi][np.isfinite(demand[lo:hi])]
            if not seen.size:
                continue
            peak = float(seen.max())
        lo, hi = np.searchsorted(times_s, [event.start_s - policy.lead_time_s, event.end_s])
        floor[lo:hi] = np.maximum(floor[lo:hi], policy.replicas_for(peak))
    return np.minimum(floor, policy.max_replicas)


def controller_view(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """The series as the controller's Prometheus holds it: a trace sample measures the period
    that starts at its timestamp, a Prometheus rate the period that ends at its timestamp, and
    the controller sees it once that period is over."""
    return trace.times_s + trace.step_s, trace.values


def run_controller(
    trace: Trace,
    events: list[PromotionEvent],
    scenario: Scenario,
    mode: str,
    sim_times_s: np.ndarray,
    *,
    initial: int,
    progress: Progress = _quiet,
    stage: str = "",
    tables: dict[TableKey, ForecastTable] | None = None,
    interval_s: int | None = None,
) -> Replay:
    """The controller's cycles over the trace (``replay.replay``), from the first simulated step."""
    policy = scenario.cycle_policy(mode, interval_s, headroom=bool(events))
    times, values = controller_view(trace)
    start_s, stop_s = int(sim_times_s[0]), int(sim_times_s[-1]) + 1
    key = (tuple(e.name for e in events), horizon_steps(policy, trace.step_s))
    table = (tables or {}).get(key)
    if scenario.memory:
        events = remember(times, values, events, policy, scenario.forecast, trace.step_s)
    if table is None:
        table = forecast_table(
            times, values, events, policy, scenario.forecast, start_s=start_s, stop_s=stop_s, progress=lambda f: progress(stage, 0.8 * f)
        )
        if tables is not None:
            tables[key] = table
    report = lambda f: progress(stage, 0.8 + 0.2 * f)  # noqa: E731
    if mode == "scale":
        return replay(policy, events, table, start_s=start_s, stop_s=stop_s, replicas=initial, progress=report)
    hpa = HpaFloor(min_replicas=scenario.policy.min_replicas, max_replicas=scenario.policy.max_replicas)
    return replay(policy, events, table, start_s=start_s, stop_s=stop_s, hpa=hpa, progress=report)


def per_step(run: Replay, sim_times_s: np.ndarray) -> np.ndarray:
    """What the controller's cycles set, in effect at each simulation step (the last cycle at or
    before it)."""
    k = np.searchsorted(run.times_s, sim_times_s, side="right") - 1
    return run.targets[np.clip(k, 0, len(run.targets) - 1)]


@dataclass
class _Grid:
    """The simulation's grid and what every strategy on it shares."""

    trace: Trace
    events: list[PromotionEvent]
    scenario: Scenario
    step: int
    times: np.ndarray
    demand: np.ndarray
    #: the demand the HPAs see, ``--metric-lag`` late
    observed: np.ndarray
    need: np.ndarray
    initial: int
    #: the pod and node lead times, in simulation steps
    lead_steps: int
    node_lead_steps: int
    #: forecast tables, shared by the strategies that ask for the same forecast
    tables: dict[TableKey, ForecastTable] = field(default_factory=dict)

    @classmethod
    def of(cls, trace: Trace, events: list[PromotionEvent], scenario: Scenario) -> _Grid:
        policy = scenario.policy
        step = simulation_step_s(trace.step_s)
        demand = np.repeat(trace.values, trace.step_s // step)
        times = int(trace.times_s[0]) + np.arange(len(demand), dtype=np.int64) * step
        need = need_replicas(demand, policy.capacity_per_replica, policy.target_utilization)
        initial = int(min(max(need[0], policy.min_replicas), policy.max_replicas))
        lag, lead_steps, node_lead_steps = (math.ceil(s / step) for s in (scenario.metric_lag_s, policy.lead_time_s, scenario.node_lead_s))
        return cls(trace, events, scenario, step, times, demand, _lagged(demand, lag), need, initial, lead_steps, node_lead_steps)

    def hpa(self, mins: np.ndarray | int) -> np.ndarray:
        """The HPA on the lagged demand, above the floor ``mins``."""
        policy = self.scenario.policy
        return simulate_hpa(
            self.observed, step_s=self.step, capacity_per_replica=policy.capacity_per_replica, target_utilization=policy.target_utilization,
            min_replicas=mins, max_replicas=policy.max_replicas, initial=self.initial,
        )  # fmt: skip

    def run(self, name: str, progress: Progress) -> StrategyRun:
        """One strategy: what it asks for at each step, and what is ready then."""
        policy, step = self.scenario.policy, self.step
        plan = ahead = None
        writes: list[tuple[int, int]] = []
        if name == "reactive":
            desired = self.hpa(policy.min_replicas)
        elif name == "schedule":
            floor = schedule_floor(self.times, self.demand, self.events, policy, self.scenario.metric_lag_s)
            if self.scenario.schedule_multiple != 1.0:
                floor = np.minimum(np.ceil(floor * self.scenario.schedule_multiple).astype(np.int64), policy.max_replicas)
            desired = self.hpa(np.maximum(floor, policy.min_replicas))
        elif name in ("history", "peakscale", "peakscale-scale"):
            calendar = [] if name == "history" else self.events
            mode = "hpa-floor" if name == "peakscale" else "scale"
            # history stands for another product (EHPA): it decides once a simulated step, not at
            # the controller's interval
            every = step if name == "history" else None
            replayed = run_controller(self.trace, calendar, self.scenario, mode, self.times, initial=self.initial, progress=progress, stage=name, tables=self.tables, interval_s=every)
            plan = per_step(replayed, self.times)
            writes = [(d.at_s, int(d.target)) for d in replayed.writes if d.action != NONE and d.target is not None]
            if replayed.headroom_for is not None:
                ahead = per_step(Replay(replayed.times_s, replayed.headroom_for, []), self.times)
            desired = self.hpa(plan) if mode == "hpa-floor" else plan
        else:
            desired = run_oracle(self.need, self.lead_steps + self.node_lead_steps, policy)
        if self.node_lead_steps > 0:
            ready, holders = ready_with_nodes(
                desired, ahead, lead_steps=self.lead_steps, node_lead_steps=self.node_lead_steps, release_steps=max(1, NODE_RELEASE_S // step),
                initial=self.initial, placeholders_for=placeholders_for,
            )  # fmt: skip
        elif self.scenario.reshard is not None and name != "oracle":
            ready, holders = ready_resharding(desired, self.lead_steps, step, *self.scenario.reshard, self.initial), None
        else:
            ready, holders = ready_replicas(desired, self.lead_steps, self.initial), None
        return StrategyRun(name=name, desired=desired, ready=ready, plan=plan, writes=writes, placeholders=holders)


def run_backtest(
    trace: Trace,
    events: list[PromotionEvent],
    scenario: Scenario,
    strategies: tuple[str, ...] = STRATEGIES,
    progress: Progress = _quiet,
    tables: dict[TableKey, ForecastTable] | None = None,
) -> BacktestResult:
    """Replay ``trace`` for each strategy and measure it against the oracle. ``tables``: forecast
    tables to share with other backtests of the same trace, calendar and forecast settings."""
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise InputError("strategies", f"unknown strategy {unknown[0]!r}", f"choose from {', '.join(STRATEGIES)}")
    grid = _Grid.of(trace, events, scenario)
    if tables is not None:
        grid.tables = tables
    runs: dict[str, StrategyRun] = {}
    for name in dict.fromkeys(list(strategies) + ["oracle"]):
        progress(name, 0.0)
        runs[name] = grid.run(name, progress)
        progress(name, 1.0)
    step, demand = grid.step, grid.demand
    in_event = event_mask(grid.times, events)
    known = np.isfinite(demand)
    oracle = runs["oracle"]
    oracle_all = float(oracle.desired[known].sum()) * step / 3600
    oracle_events = float(oracle.desired[in_event & known].sum()) * step / 3600
    # calibration is over the events the plan sized: one it had nothing to size from is no promise
    sized = in_event & event_mask(grid.times, [e for e in events if has_basis(e, events)]) & known
    for run in runs.values():
        capacity = scenario.policy.capacity_per_replica
        run.all = figures(demand, run.desired, run.ready, capacity_per_replica=capacity, step_s=step, select=None, oracle_replica_hours=oracle_all, placeholders=run.placeholders)
        run.events = figures(demand, run.desired, run.ready, capacity_per_replica=capacity, step_s=step, select=in_event, oracle_replica_hours=oracle_events, placeholders=run.placeholders)
        if run.plan is not None and sized.any():
            planned = ready_replicas(run.plan, grid.lead_steps, grid.initial) * capacity
            run.exceeded = float((demand[sized] > planned[sized]).mean())
    ordered = {name: runs[name] for name in STRATEGIES if name in runs and (name in strategies)}
    return BacktestResult(
        trace=trace, events=events, scenario=scenario, step_s=step, times_s=grid.times, demand=demand, in_event=in_event, runs=ordered,
        unsized_minutes=float((in_event & known & ~sized).sum()) * step / 60,
    )
