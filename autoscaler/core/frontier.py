"""The cost/coverage frontier (``peakscale backtest --sweep``): each strategy across its own knob.

| strategy  | knob | what it turns |
|-----------|------|---------------|
| peakscale | coverage | the share of event demand the plan is sized to serve (``spec.coverage``) |
| reactive  | target utilization | how much headroom the HPA keeps |
| schedule  | multiple | the hand-sized floors times this (a schedule sized with margin) |
| history   | target utilization | the seasonal forecaster's headroom (EHPA style) |

Each point is one backtest of the trace (``run_backtest``) with that knob, measured as usual:
replica-hours over the whole trace and the share of event demand left unserved. For each point of
a baseline, the cheapest peakscale point that serves events at least as well, and what it saves:
the comparison an SRE takes to whoever pays for the capacity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autoscaler.core.backtest import Progress, Scenario, TableKey, run_backtest
from autoscaler.core.calendar import PromotionEvent
from autoscaler.core.replay import ForecastTable
from autoscaler.core.trace import Trace

COVERAGES = (0.9, 0.99, 0.999, 0.9999)
UTILIZATIONS = (0.5, 0.6, 0.7, 0.8, 0.9)
MULTIPLES = (1.0, 1.25, 1.5, 2.0)
#: (strategy, knob, its values) in the order the sweep runs them
KNOBS: tuple[tuple[str, str, tuple[float, ...]], ...] = (
    ("peakscale", "coverage", COVERAGES),
    ("reactive", "target_utilization", UTILIZATIONS),
    ("schedule", "multiple", MULTIPLES),
    ("history", "target_utilization", UTILIZATIONS),
)


@dataclass(frozen=True)
class Point:
    strategy: str
    knob: str
    value: float
    replica_hours: float
    replica_hours_vs_oracle: float | None
    unserved_events: float
    unserved_all: float
    #: peakscale: the share of event minutes above the plan's ready capacity (None for the others)
    exceeded: float | None = None


@dataclass(frozen=True)
class Match:
    """For one baseline point: the cheapest peakscale point that serves events at least as well."""

    baseline: Point
    peakscale: Point | None

    @property
    def saving(self) -> float | None:
        """The share of the baseline's replica-hours the peakscale point saves (negative: costs more)."""
        if self.peakscale is None or self.baseline.replica_hours <= 0:
            return None
        return 1.0 - self.peakscale.replica_hours / self.baseline.replica_hours


@dataclass(frozen=True)
class Frontier:
    points: list[Point]
    matches: list[Match]
    #: minutes inside events the plan had nothing to size from, left out of ``Point.exceeded``
    unsized_minutes: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "points": [dataclasses.asdict(p) for p in self.points],
            "unsized_minutes": self.unsized_minutes,
            "matches": [
                {"baseline": dataclasses.asdict(m.baseline), "peakscale": dataclasses.asdict(m.peakscale) if m.peakscale else None, "saving": m.saving}
                for m in self.matches
            ],
        }


def _with_knob(scenario: Scenario, knob: str, value: float) -> Scenario:
    if knob == "coverage":
        return dataclasses.replace(scenario, forecast=dataclasses.replace(scenario.forecast, coverage=value))
    if knob == "multiple":
        return dataclasses.replace(scenario, schedule_multiple=value)
    return dataclasses.replace(scenario, policy=dataclasses.replace(scenario.policy, target_utilization=value))


def match(points: list[Point]) -> list[Match]:
    """For each baseline point, the cheapest peakscale point whose unserved share of event demand
    is at most the baseline's (None when no coverage serves events that well)."""
    ours = sorted((p for p in points if p.strategy == "peakscale"), key=lambda p: p.replica_hours)
    return [Match(p, next((o for o in ours if o.unserved_events <= p.unserved_events), None)) for p in points if p.strategy != "peakscale"]


def sweep(trace: Trace, events: list[PromotionEvent], scenario: Scenario, progress: Progress | None = None) -> Frontier:
    """Every strategy of ``KNOBS`` at every value of its knob (forecast tables shared where the
    forecast is the same: across utilizations, never across coverages)."""
    report: Callable[[str, float], None] = progress or (lambda stage, fraction: None)
    total = sum(len(values) for _, _, values in KNOBS)
    points: list[Point] = []
    unsized = 0.0
    shared: dict[tuple[str, float], dict[TableKey, ForecastTable]] = {}
    for strategy, knob, values in KNOBS:
        for value in values:
            report("sweep", len(points) / total)
            tables = shared.setdefault((strategy, value if knob == "coverage" else 0.0), {})
            result = run_backtest(trace, events, _with_knob(scenario, knob, value), (strategy,), tables=tables)
            overall, during = result.runs[strategy].measured()
            unsized = result.unsized_minutes
            points.append(
                Point(
                    strategy=strategy, knob=knob, value=value, replica_hours=overall.replica_hours, replica_hours_vs_oracle=overall.replica_hours_vs_oracle,
                    unserved_events=during.unserved_fraction, unserved_all=overall.unserved_fraction, exceeded=result.runs[strategy].exceeded if strategy == "peakscale" else None,
                )
            )  # fmt: skip
    report("sweep", 1.0)
    return Frontier(points=points, matches=match(points), unsized_minutes=unsized)
