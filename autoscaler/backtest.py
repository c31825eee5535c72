"""The backtest: replay a real trace through the simulated cluster for five strategies.

| strategy  | what it models |
|-----------|----------------|
| reactive  | an HPA on the request rate, 60 s late (the most favourable case for reactive scaling) |
| schedule  | the HPA plus fixed floors over each calendar window, sized by hand (KEDA cron style) |
| history   | the peakscale planner fed by the seasonal forecast alone, no calendar (EHPA style) |
| peakscale | the planner fed by history + calendar + lead time |
| oracle    | perfect foresight: exactly the replicas needed, ready just in time |

The forecasters here are the live ones (``forecast.forecast_block``), refitted every
``refit_every_s`` on the samples seen so far; the planner is ``plan.plan_step`` itself. What a
backtest shows is what the controller would do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from autoscaler.calendar import PromotionEvent, event_mask
from autoscaler.errors import InputError
from autoscaler.forecast import ForecastSettings, fit_baseline, forecast_block
from autoscaler.plan import PlannerState, PlanPolicy, freeze_windows, plan_step
from autoscaler.simulate import Figures, figures, need_replicas, ready_replicas, simulate_hpa
from autoscaler.trace import Trace

STRATEGIES = ("reactive", "schedule", "history", "peakscale", "oracle")
Progress = Callable[[str, float], None]


def _quiet(stage: str, fraction: float) -> None:
    return None


@dataclass(frozen=True)
class Scenario:
    policy: PlanPolicy
    metric_lag_s: int = 60
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    refit_every_s: int = 3600
    #: the daily profile moves slowly: refit it less often than the event profiles
    baseline_refit_every_s: int = 6 * 3600


@dataclass
class StrategyRun:
    name: str
    desired: np.ndarray
    ready: np.ndarray
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
                "simulation_step_s": self.step_s,
                "trace_step_s": self.trace.step_s,
                "samples": len(self.trace),
                "calendar_events": len(self.events),
                "event_kinds": sorted({e.kind for e in self.events}),
                "event_minutes": float(self.in_event.sum() * self.step_s / 60),
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
    if lag <= 0:
        return x.copy()
    return np.concatenate([np.full(lag, x[0]), x[:-lag]])


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
            if hi <= lo:
                continue
            peak = event.expected_multiplier * float(demand[lo:hi].mean())
        else:
            past = [e for e in events if e.kind == event.kind and e.end_s <= decided_at]
            if not past:
                continue
            last = max(past, key=lambda e: e.end_s)
            lo, hi = np.searchsorted(times_s, [last.start_s, last.end_s])
            if hi <= lo:
                continue
            peak = float(demand[lo:hi].max())
        lo, hi = np.searchsorted(times_s, [event.start_s - policy.lead_time_s, event.end_s])
        floor[lo:hi] = np.maximum(floor[lo:hi], policy.replicas_for(peak))
    return np.minimum(floor, policy.max_replicas)


def forecast_peaks(
    trace: Trace,
    events: list[PromotionEvent],
    scenario: Scenario,
    sim_times_s: np.ndarray,
    progress: Progress,
    stage: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each simulation step t: central and upper forecast peaks over ``[t, t + lead]``, and
    the demand seen.

    Forecasts are made from the last sample at or before ``t - lag``, so nothing later is seen.
    """
    step = trace.step_s
    lag_s = scenario.metric_lag_s
    lead_s = scenario.policy.lead_time_s
    horizon = math.ceil((lag_s + lead_s) / step) + 1
    n = len(trace)
    masked = event_mask(trace.times_s, events)
    central = np.empty((n, horizon + 1))
    upper = np.empty((n, horizon + 1))
    refit = max(1, scenario.refit_every_s // step)
    n_blocks = math.ceil(n / refit)
    baseline = None
    for b, first in enumerate(range(0, n, refit)):
        stop = min(n, first + refit)
        if baseline is None or trace.times_s[first] - baseline.fitted_at_s >= scenario.baseline_refit_every_s:
            baseline = fit_baseline(trace.times_s, trace.values, masked, first, step, scenario.forecast)
        block = forecast_block(
            trace.times_s, trace.values, masked, events, first, stop, horizon, step, scenario.forecast, baseline
        )
        central[first:stop] = block.central
        upper[first:stop] = block.upper
        if b % 50 == 0:
            progress(stage, b / n_blocks)
    t0 = int(trace.times_s[0])
    j = np.clip((sim_times_s - lag_s - t0) // step, 0, n - 1)
    k_lo = (sim_times_s - t0) // step
    k_hi = (sim_times_s + lead_s - t0) // step
    h_lo = np.clip(k_lo - j, 0, horizon)
    h_hi = np.clip(k_hi - j, 0, horizon)
    peaks = np.empty(len(sim_times_s))
    uppers = np.empty(len(sim_times_s))
    for lo_v, hi_v in set(zip(h_lo.tolist(), h_hi.tolist())):
        sel = (h_lo == lo_v) & (h_hi == hi_v)
        peaks[sel] = central[j[sel], lo_v : hi_v + 1].max(axis=1)
        uppers[sel] = upper[j[sel], lo_v : hi_v + 1].max(axis=1)
    progress(stage, 1.0)
    return peaks, uppers, trace.values[j]


def run_planner(
    sim_times_s: np.ndarray,
    demand_seen: np.ndarray,
    peaks: np.ndarray,
    uppers: np.ndarray,
    frozen: np.ndarray,
    policy: PlanPolicy,
    initial: int,
) -> np.ndarray:
    """Drive ``plan_step`` over every simulation step; return the replicas it asks for."""
    state = PlannerState(replicas=initial, at_s=int(sim_times_s[0]))
    out = np.empty(len(sim_times_s), dtype=np.int64)
    times = sim_times_s.tolist()
    seen = demand_seen.tolist()
    peak_l = peaks.tolist()
    upper_l = uppers.tolist()
    frozen_l = frozen.tolist()
    for i in range(len(times)):
        decision, state = plan_step(
            policy, state, now_s=times[i], demand_now=seen[i], forecast_peak=peak_l[i], forecast_upper=upper_l[i], frozen=frozen_l[i]
        )
        out[i] = decision.replicas
    return out


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
    for k, name in enumerate(wanted):
        progress(name, 0.0)
        if name == "reactive":
            desired = hpa(policy.min_replicas)
        elif name == "schedule":
            floor = schedule_floor(times, demand, events, policy, scenario.metric_lag_s)
            desired = hpa(np.maximum(floor, policy.min_replicas))
        elif name == "history":
            peaks, uppers, seen = forecast_peaks(trace, [], scenario, times, progress, name)
            desired = run_planner(times, seen, peaks, uppers, np.zeros(len(times), dtype=bool), policy, initial)
        elif name == "peakscale":
            peaks, uppers, seen = forecast_peaks(trace, events, scenario, times, progress, name)
            frozen = np.zeros(len(times), dtype=bool)
            for lo_s, hi_s in freeze_windows(events, policy):
                frozen[np.searchsorted(times, lo_s) : np.searchsorted(times, hi_s)] = True
            desired = run_planner(times, seen, peaks, uppers, frozen, policy, initial)
        else:
            desired = run_oracle(need, lead, policy)
        runs[name] = StrategyRun(name=name, desired=desired, ready=ready_replicas(desired, lead, initial))
        progress(name, 1.0)
    oracle = runs["oracle"]
    oracle_all = float(oracle.desired.sum()) * step / 3600
    oracle_events = float(oracle.desired[in_event].sum()) * step / 3600
    for run in runs.values():
        common = dict(capacity_per_replica=policy.capacity_per_replica, step_s=step)
        run.all = figures(demand, run.desired, run.ready, select=None, oracle_replica_hours=oracle_all, **common)
        run.events = figures(demand, run.desired, run.ready, select=in_event, oracle_replica_hours=oracle_events, **common)
    ordered = {name: runs[name] for name in STRATEGIES if name in runs and (name in strategies)}
    return BacktestResult(
        trace=trace, events=events, scenario=scenario, step_s=step, times_s=times, demand=demand, in_event=in_event, runs=ordered
    )
