"""Benchmarks: quality and speed of the backtest and of one live forecast + plan.

Prints tables; asserts nothing (budgets are in DESIGN.md and compared by eye and in notes):

* the whole six-strategy backtest of the World Cup 1998 trace (budget: under 10 s);
* one controller cycle's forecast + decision for one target from 14 days of 1-minute history
  (``cycle.live_forecast`` + ``cycle.decide``; budget: under 5 ms);
* the quality table of each real trace;
* how long ``peakscale --version``, ``--help`` and ``promo list --store file`` take to answer
  (``bench/cli_start.py``; budget: under 0.4 s on a quiet machine);
* the cost/coverage frontier of each real trace, the calibration of each coverage and the
  default's verdict against the hand schedule (``bench/frontier.py``);
* ``promo import`` of 1k and 10k rows (linear: ratio at most 15) and a 1 MB YAML alias bomb
  refused in under 1 s (``bench/inputs.py``).

Reads the real traces from ../shared/data/traces when present, else the bundled copy.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from autoscaler.core.backtest import Scenario, run_backtest
from autoscaler.core.calendar import select_kinds
from autoscaler.adapters.calendar_files import load_calendar
from autoscaler.core.cycle import decide, index_calendar, live_forecast
from autoscaler.core.cycle_types import CyclePolicy, CycleState, HpaFloor, Seen
from autoscaler.core.baseline import ForecastSettings
from autoscaler.core.plan import PlanPolicy
from autoscaler.core.profiles import clear_memo
from autoscaler.core.timezones import get_zone
from autoscaler.adapters.trace_files import load_trace

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "traces"
console = Console(width=150)

@dataclass(frozen=True)
class BenchScenario:
    trace: str
    tz: str
    #: the calendar's kinds that count (None: all)
    kinds: list[str] | None
    policy: PlanPolicy


SCENARIOS = [
    BenchScenario("worldcup98_requests_1min.csv", "UTC", ["sports match (scheduled)"], PlanPolicy(capacity_per_replica=2000, lead_time_s=600, min_replicas=2, max_replicas=200)),
    BenchScenario("nyc_taxi_nab_30min.csv", "America/New_York", None, PlanPolicy(capacity_per_replica=500, lead_time_s=1800, min_replicas=2, max_replicas=200)),
]


def trace_paths(name: str) -> tuple[Path, Path] | None:
    stem = name.removesuffix(".csv")
    for folder, suffix in ((SHARED, ""), (REPO / "autoscaler" / "data" / "traces", ".gz")):
        trace, events = folder / f"{name}{suffix}", folder / f"{stem}.events.csv"
        if trace.is_file() and events.is_file():
            return trace, events
    return None


def backtests() -> tuple[float, object]:
    speed = Table(title="backtest wall time (load + six strategies)", title_justify="left")
    for col in ("trace", "samples", "simulated minutes", "wall s", "budget"):
        speed.add_column(col, justify="right" if col != "trace" else "left")
    quality = []
    wc_result = None
    for sc in SCENARIOS:
        paths = trace_paths(sc.trace)
        if paths is None:
            console.print(f"[yellow]skipped {sc.trace}: not found[/]")
            continue
        zone = get_zone(sc.tz)
        started = time.perf_counter()
        trace = load_trace(paths[0], zone)
        events = select_kinds(load_calendar(paths[1], zone), sc.kinds)
        result = run_backtest(trace, events, Scenario(policy=sc.policy))
        wall = time.perf_counter() - started
        budget = "< 10 s" if sc.trace.startswith("worldcup") else ""
        speed.add_row(sc.trace, f"{len(trace):,}", f"{len(result.demand):,}", f"{wall:.2f}", budget)
        quality.append(result)
        if sc.trace.startswith("worldcup"):
            wc_result = result
    console.print(speed)
    for result in quality:
        table = Table(title=f"quality: {result.trace.name}", title_justify="left")
        for col in ("strategy", "unserved all", "unserved events", "under-prov. min", "replica-h", "vs oracle", "vs reactive", "scale actions"):
            table.add_column(col, justify="left" if col == "strategy" else "right")
        reactive_rh = result.runs["reactive"].measured()[0].replica_hours
        for name, run in result.runs.items():
            overall, during = run.measured()
            table.add_row(
                name,
                f"{overall.unserved_fraction:.4%}",
                f"{during.unserved_fraction:.4%}",
                f"{overall.underprovisioned_minutes:,.0f}",
                f"{overall.replica_hours:,.0f}",
                f"{overall.replica_hours_vs_oracle:.3f}",
                f"{overall.replica_hours / reactive_rh:.3f}",
                f"{overall.scale_actions:,}",
            )
        console.print(table)
    return 0.0, wc_result


def live_forecast_speed(samples: int = 300) -> None:
    paths = trace_paths("worldcup98_requests_1min.csv")
    if paths is None:
        return
    zone = get_zone("UTC")
    trace = load_trace(paths[0], zone)
    events = select_kinds(load_calendar(paths[1], zone), ["sports match (scheduled)"])
    policy = CyclePolicy(plan=PlanPolicy(capacity_per_replica=2000, lead_time_s=600, min_replicas=2, max_replicas=200))
    settings = ForecastSettings()
    history = 14 * 1440
    rng = np.random.default_rng(0)
    # decision moments during the tournament, a quarter of them in the run-up to a match
    lo = int(np.searchsorted(trace.times_s, events[0].start_s)) + 1
    moments = list(rng.integers(max(lo, history), len(trace) - 1, samples * 3 // 4))
    for e in rng.choice(len(events), samples // 4):
        i = int(np.searchsorted(trace.times_s, events[e].start_s - 300))
        if i >= history:
            moments.append(i)
    index = index_calendar(policy, events)
    timings: dict[str, list[float]] = {"cold (first cycle)": [], "next cycle": []}
    for i in moments:
        # the controller's history cache: 14 days of samples labeled at the end of their minute; a
        # cycle, then the next one a sample later (what a controller does every interval: what it
        # learned of past events is memoized, the rest is computed again)
        for row, j in zip(timings.values(), (i, i + 1)):
            window_t = trace.times_s[j - history + 1 : j + 1] + 60
            window_v = trace.values[j - history + 1 : j + 1]
            now = int(window_t[-1]) + 15
            started = time.perf_counter()
            view, _ = live_forecast(window_t, window_v, events, policy, settings, 60)
            decide(policy, CycleState(), Seen(now, view, 10, HpaFloor(2, 200)), index)
            row.append((time.perf_counter() - started) * 1000)
        clear_memo()
    table = Table(title="one target, one cycle: live_forecast + decide from 14 days of 1-minute history", title_justify="left")
    for col in ("cycle", "calls", "median ms", "p95 ms", "max ms", "budget"):
        table.add_column(col, justify="right")
    for name, row in timings.items():
        row.sort()
        table.add_row(name, f"{len(row)}", f"{statistics.median(row):.2f}", f"{row[int(0.95 * (len(row) - 1))]:.2f}", f"{row[-1]:.2f}", "< 5 ms")
    console.print(table)


def main() -> int:
    backtests()
    live_forecast_speed()
    from bench.inputs import run as input_guards

    input_guards(console)
    from bench.frontier import run as frontier

    frontier(console, SCENARIOS, trace_paths)
    from bench.cli_start import run as cli_start

    cli_start(console)
    if "--no-controller" not in sys.argv:
        from bench.controller_cycle import run as controller_cycle

        controller_cycle(console)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"peak resident memory of this benchmark run: {peak_mib:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
