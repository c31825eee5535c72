"""The cost/coverage frontier of each real trace at the README's settings (``core.frontier``), the
calibration of each coverage (event minutes over what the plan had ready, against 1 - coverage),
and the default's verdict against the hand schedule (issue 22): unserved event demand at most the
schedule's plus 0.005 percentage points, unserved overall at most reactive's, replica-hours at most
1.02x the larger of the schedule's and the oracle's. ``--plots DIR`` also writes each frontier's PNG."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autoscaler.adapters.calendar_files import load_calendar
from autoscaler.adapters.trace_files import load_trace
from autoscaler.core.backtest import Scenario
from autoscaler.core.baseline import ForecastSettings
from autoscaler.core.calendar import select_kinds
from autoscaler.core.frontier import Frontier, sweep
from autoscaler.core.timezones import get_zone


def _verdict(frontier: Frontier, coverage: float) -> tuple[str, str, str]:
    """The three checks of the default against the baselines' own default points."""
    by = {(p.strategy, p.value): p for p in frontier.points}
    ours, schedule, reactive = by[("peakscale", coverage)], by[("schedule", 1.0)], by[("reactive", 0.7)]
    # the oracle's replica-hours from any point's ratio (same trace, same utilization)
    oracle = ours.replica_hours / ours.replica_hours_vs_oracle if ours.replica_hours_vs_oracle else ours.replica_hours
    budget = 1.02 * max(schedule.replica_hours, oracle)
    events = ours.unserved_events <= schedule.unserved_events + 0.00005
    overall = ours.unserved_all <= reactive.unserved_all
    cost = ours.replica_hours <= budget
    return (
        f"{ours.unserved_events:.4%} vs {schedule.unserved_events:.4%} {'ok' if events else 'FAIL'}",
        f"{ours.unserved_all:.4%} vs {reactive.unserved_all:.4%} {'ok' if overall else 'FAIL'}",
        f"{ours.replica_hours:,.0f} vs {budget:,.0f} {'ok' if cost else 'FAIL'}",
    )


def run(console: Console, scenarios: list, trace_paths, plots: Path | None = None) -> None:
    from autoscaler.cli.frontier import _print

    verdicts = Table(title="the default coverage (0.99) against the hand schedule (issue 22, item 5)", title_justify="left")
    for col in ("trace", "unserved events vs schedule (+0.005 pp)", "unserved all vs reactive", "replica-h vs 1.02x max(schedule, oracle)"):
        verdicts.add_column(col)
    for sc in scenarios:
        paths = trace_paths(sc.trace)
        if paths is None:
            continue
        zone = get_zone(sc.tz)
        trace = load_trace(paths[0], zone)
        events = select_kinds(load_calendar(paths[1], zone), sc.kinds)
        frontier = sweep(trace, events, Scenario(policy=sc.policy, forecast=ForecastSettings()))
        plot = None
        if plots is not None:
            from autoscaler.adapters.plot import plot_frontier

            plot = plots / f"frontier-{sc.trace.split('_')[0]}.png"
            plot_frontier(frontier, sc.trace, plot)
        _print(frontier, sc.trace, plot)
        verdicts.add_row(sc.trace, *_verdict(frontier, ForecastSettings().coverage))
    console.print(verdicts)


if __name__ == "__main__":
    from bench.run import SCENARIOS, trace_paths

    out = Path(sys.argv[sys.argv.index("--plots") + 1]) if "--plots" in sys.argv else None
    run(Console(width=150), SCENARIOS, trace_paths, out)
