"""``peakscale backtest --sweep``: print (or plot) the cost/coverage frontier (``core.frontier``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING


from autoscaler.cli.output import echo_doc, Progress, table_console

if TYPE_CHECKING:
    from autoscaler.core.backtest import Scenario
    from autoscaler.core.calendar import PromotionEvent
    from autoscaler.core.frontier import Frontier, Point
    from autoscaler.core.trace import Trace


def run_sweep(trace: Trace, events: list[PromotionEvent], scenario: Scenario, *, output: str, plot: Path | None, quiet: bool) -> None:
    from autoscaler.cli.backtest import options_named
    from autoscaler.core.frontier import sweep

    with Progress(enabled=not quiet and output == "table") as report, options_named():
        frontier = sweep(trace, events, scenario, progress=report)
    if plot is not None:
        from autoscaler.adapters.plot import plot_frontier

        plot_frontier(frontier, trace.name, plot)
    if output == "table":
        _print(frontier, trace.name, plot)
        return

    doc = {"trace": trace.name, **frontier.as_json(), **({"plot": str(plot)} if plot is not None else {})}
    echo_doc(doc, output)


def _knob(point: Point) -> str:
    if point.knob == "coverage":
        return f"coverage {point.value:.2%}".replace(".00%", "%")
    if point.knob == "multiple":
        return f"floors x{point.value:g}"
    return f"utilization {point.value:.0%}"


def _print(frontier: Frontier, name: str, plot: Path | None) -> None:
    from rich.table import Table

    console = table_console(150)
    points = Table(title=f"{name}: each strategy across its knob", title_justify="left")
    for col in ("strategy", "knob", "replica-h all", "vs oracle", "unserved events", "unserved all", "event minutes over the plan"):
        points.add_column(col, justify="left" if col in ("strategy", "knob") else "right")
    for p in frontier.points:
        vs = "-" if p.replica_hours_vs_oracle is None else f"{p.replica_hours_vs_oracle:.3f}"
        over = "-" if p.exceeded is None else f"{p.exceeded:.2%} (nominal {1 - p.value:.2%})"
        points.add_row(p.strategy, _knob(p), f"{p.replica_hours:,.0f}", vs, f"{p.unserved_events:.4%}", f"{p.unserved_all:.4%}", over, style="bold" if p.strategy == "peakscale" else None)
    console.print(points)
    matches = Table(title="for each baseline point: the cheapest peakscale coverage that serves events at least as well", title_justify="left")
    for col in ("baseline", "its unserved events", "its replica-h", "peakscale at", "unserved events", "replica-h", "saves"):
        matches.add_column(col, justify="left" if col in ("baseline", "peakscale at") else "right")
    for m in frontier.matches:
        b, o = m.baseline, m.peakscale
        ours = ("none serves events that well", "-", "-", "-") if o is None else (_knob(o), f"{o.unserved_events:.4%}", f"{o.replica_hours:,.0f}", f"{m.saving:.1%}")
        matches.add_row(f"{b.strategy}, {_knob(b)}", f"{b.unserved_events:.4%}", f"{b.replica_hours:,.0f}", *ours)
    console.print(matches)
    console.print("unserved events: share of demand inside calendar windows above ready capacity; saves: share of the baseline's replica-hours (negative: costs more).", style="dim")
    if frontier.unsized_minutes:
        console.print(f"event minutes over the plan: {frontier.unsized_minutes:,.0f} event minutes left out, of events with no past of their kind and no expected size (the plan sized nothing).", style="dim")
    if plot is not None:
        console.print(f"frontier plot written to {plot}")
