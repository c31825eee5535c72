"""The backtest: replay a real trace through the simulated cluster for six strategies.

| strategy        | what it models |
|-----------------|----------------|
| reactive        | an HPA on the request rate, 60 s late (the most favourable case for reactive scaling) |
| schedule        | the HPA plus fixed floors over each calendar window, sized by hand (KEDA cron style) |
| history         | the controller in ``scale`` mode fed by the seasonal forecast alone, no calendar (EHPA style) |
| peakscale       | the controller as shipped (``hpa-floor``): the HPA of ``reactive`` plus the floor it writes |
| peakscale-scale | the controller in ``mode: scale`` |
| oracle          | perfect foresight: exactly the replicas needed, ready just in time |

The planner strategies are the controller itself: ``cycle.replay`` runs ``cycle.decide`` every
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

import math
from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np

from autoscaler.core.calendar import PromotionEvent, event_mask
from autoscaler.core.cycle import horizon_steps, placeholders_for
from autoscaler.core.replay import Replay, forecast_table, remember, replay
from autoscaler.core.cycle_types import NONE, CyclePolicy, HpaFloor
from autoscaler.errors import InputError
from autoscaler.core.baseline import ForecastSettings
from autoscaler.core.plan import PlanPolicy
from autoscaler.core.simulate import NODE_RELEASE_S, Figures, figures, need_replicas, ready_replicas, ready_with_nodes, simulate_hpa
from autoscaler.core.trace import Trace

STRATEGIES = ("reactive", "schedule", "history", "peakscale", "peakscale-scale", "oracle")
Progress = Callable[[str, float], None]


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

    def cycle_policy(self, mode: str, interval_s: int | None = None, headroom: bool = False) -> CyclePolicy:
        ahead = self.node_lead_s if (headroom and self.node_headroom and self.node_lead_s > 0) else None
        return CyclePolicy(plan=self.policy, mode=mode, floor=self.floor, cooldown_s=self.cooldown_s, interval_s=interval_s or self.interval_s, headroom_lead_s=ahead)


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

    def as_json(self) -> dict:
        p = self.scenario.policy
        return {
            "trace": self.trace.name,
            "scenario": {
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
                name: {"all": run.all.as_dict(), "events": run.events.as_dict()}
                for name, run in self.runs.items()
                if run.all is not None and run.events is not None
            },
        }


def simulation_step_s(trace_step_s: int) -> int:
    """One minute, or the trace's step when it is finer; the trace step must be a multiple."""
    step = min(trace_step_s, 60)
    if trace_step_s % step:
        raise InputError("--trace", f"step of {trace_step_s} s is not a whole number of minutes", "resample the trace to 1 min, 5 min, 30 min ...")
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
    return sliding_window_view(padded, lead_steps + 1).max(axis=1)


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
    tables: dict | None = None,
    interval_s: int | None = None,
) -> Replay:
    """The controller's cycles over the trace (``cycle.replay``), from the first simulated step."""
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


def run_backtest(
    trace: Trace,
    events: list[PromotionEvent],
    scenario: Scenario,
    strategies: tuple[str, ...] = STRATEGIES,
    progress: Progress = _quiet,
) -> BacktestResult:
    """Replay ``trace`` for each strategy and measure it against the oracle."""
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise InputError("--strategies", f"unknown strategy {unknown[0]!r}", f"choose from {', '.join(STRATEGIES)}")
    policy = scenario.policy
    step = simulation_step_s(trace.step_s)
    repeat = trace.step_s // step
    demand = np.repeat(trace.values, repeat)
    t0 = int(trace.times_s[0])
    times = t0 + np.arange(len(demand), dtype=np.int64) * step
    lag = math.ceil(scenario.metric_lag_s / step)
    lead = math.ceil(policy.lead_time_s / step)
    node_lead = math.ceil(scenario.node_lead_s / step)
    need = need_replicas(demand, policy.capacity_per_replica, policy.target_utilization)
    initial = int(min(max(need[0], policy.min_replicas), policy.max_replicas))
    in_event = event_mask(times, events)
    observed = _lagged(demand, lag)
    runs: dict[str, StrategyRun] = {}

    def hpa(mins: np.ndarray | int) -> np.ndarray:
        return simulate_hpa(
            observed,
            step_s=step,
            capacity_per_replica=policy.capacity_per_replica,
            target_utilization=policy.target_utilization,
            min_replicas=mins,
            max_replicas=policy.max_replicas,
            initial=initial,
        )

    wanted = list(dict.fromkeys(list(strategies) + ["oracle"]))
    tables: dict = {}
    for name in wanted:
        progress(name, 0.0)
        plan = None
        ahead = None
        writes: list[tuple[int, int]] = []
        if name == "reactive":
            desired = hpa(policy.min_replicas)
        elif name == "schedule":
            floor = schedule_floor(times, demand, events, policy, scenario.metric_lag_s)
            desired = hpa(np.maximum(floor, policy.min_replicas))
        elif name in ("history", "peakscale", "peakscale-scale"):
            calendar = [] if name == "history" else events
            mode = "hpa-floor" if name == "peakscale" else "scale"
            # history stands for another product (EHPA): it decides once a simulated step, not at
            # the controller's interval
            every = step if name == "history" else None
            run = run_controller(trace, calendar, scenario, mode, times, initial=initial, progress=progress, stage=name, tables=tables, interval_s=every)
            plan = per_step(run, times)
            writes = [(d.at_s, int(d.target)) for d in run.writes if d.action != NONE]
            if run.headroom_for is not None:
                ahead = per_step(Replay(run.times_s, run.headroom_for, []), times)
            desired = hpa(plan) if mode == "hpa-floor" else plan
        else:
            desired = run_oracle(need, lead + node_lead, policy)
        if node_lead > 0:
            ready, holders = ready_with_nodes(
                desired, ahead, lead_steps=lead, node_lead_steps=node_lead, release_steps=max(1, NODE_RELEASE_S // step),
                initial=initial, placeholders_for=placeholders_for,
            )  # fmt: skip
        else:
            ready, holders = ready_replicas(desired, lead, initial), None
        runs[name] = StrategyRun(name=name, desired=desired, ready=ready, plan=plan, writes=writes, placeholders=holders)
        progress(name, 1.0)
    oracle = runs["oracle"]
    known = np.isfinite(demand)
    oracle_all = float(oracle.desired[known].sum()) * step / 3600
    oracle_events = float(oracle.desired[in_event & known].sum()) * step / 3600
    for run in runs.values():
        common = dict(capacity_per_replica=policy.capacity_per_replica, step_s=step, placeholders=run.placeholders)
        run.all = figures(demand, run.desired, run.ready, select=None, oracle_replica_hours=oracle_all, **common)
        run.events = figures(demand, run.desired, run.ready, select=in_event, oracle_replica_hours=oracle_events, **common)
    ordered = {name: runs[name] for name in STRATEGIES if name in runs and (name in strategies)}
    return BacktestResult(
        trace=trace, events=events, scenario=scenario, step_s=step, times_s=times, demand=demand, in_event=in_event, runs=ordered
    )
