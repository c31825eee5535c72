"""``peakscale backtest``: replay a real trace through a simulated cluster, every strategy on the
same trace and capacity model, and print the comparison (a table, ``--json``, a PNG plot)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional
from zoneinfo import ZoneInfo

import typer

from autoscaler.cli.app import app
from autoscaler.cli.output import echo_doc, EpochOpt, Progress, TimeColumnOpt, ValueColumnOpt, as_options, check_output, split_list, table_console
from autoscaler.core.timezones import get_zone
from autoscaler.core.durations import parse_duration_s
from autoscaler.errors import InputError

if TYPE_CHECKING:
    from autoscaler.adapters.trace_files import TraceFormat
    from autoscaler.core.backtest import BacktestResult, Scenario
    from autoscaler.core.calendar import PromotionEvent
    from autoscaler.core.plan import PlanPolicy
    from autoscaler.core.trace import Trace

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "data" / "traces"  # travels in the wheel
BUNDLED_TRACE = BUNDLED_DIR / "worldcup98_requests_1min.csv.gz"
BUNDLED_EVENTS = BUNDLED_DIR / "worldcup98_requests_1min.events.csv"
#: the bundled trace's scenario: 2,000 requests/min per replica, 10 min to start and warm up
BUNDLED_CAPACITY = 2000.0
#: the bundled calendar's surges: the matches (its 'tournament' row spans five weeks)
BUNDLED_KINDS = ["sports match (scheduled)"]


@app.command()
def backtest(
    trace: Annotated[
        Optional[Path],
        typer.Option(help="CSV of timestamp,value at a regular step (.csv or .csv.gz). Default: the bundled World Cup 1998 trace."),
    ] = None,
    events: Annotated[
        Optional[Path],
        typer.Option(help="Calendar: CSV start,end,name,kind[,expected_multiplier,expected_peak] or the YAML calendar. Default: <trace>.events.csv beside the trace."),
    ] = None,
    tz: Annotated[str, typer.Option(help="Zone of naive timestamps in the trace and calendar (IANA name). Default UTC: trace exports usually are; the seasonality is learned on this clock, so give the users' zone when the trace is local.")] = "UTC",
    capacity_per_replica: Annotated[
        Optional[float],
        typer.Option(help="Demand one replica serves at 100 % (same unit as the trace per sample). Required with --trace."),
    ] = None,
    target_utilization: Annotated[float, typer.Option(help="Share of capacity to plan for, in (0, 1].")] = 0.7,
    coverage: Annotated[float, typer.Option(help="The share of demand inside calendar windows the peakscale plan is sized to serve (a ScalingPolicy's spec.coverage), in [0.5, 0.9999]. The table reports how often event demand exceeded what the plan had ready, against the nominal 1 - coverage.")] = 0.99,
    sweep: Annotated[bool, typer.Option("--sweep", help="The cost/coverage frontier instead: peakscale over coverage, reactive and history over target utilization, schedule over a multiple of its floors; for each baseline point, the cheapest peakscale point that serves events at least as well. With --plot: the frontier (replica-hours against unserved event demand).")] = False,
    lead_time: Annotated[str, typer.Option(help="How long a new replica takes to serve: pod start, warm-up, resharding (e.g. 90s, 10m, 1h).")] = "10m",
    min_replicas: Annotated[int, typer.Option(help="Never fewer replicas.")] = 2,
    max_replicas: Annotated[int, typer.Option(help="Never more replicas, whatever the forecast.")] = 200,
    scale_down_stabilization: Annotated[str, typer.Option(help="Scale in only after the need stayed lower this long.")] = "5m",
    freeze: Annotated[bool, typer.Option("--freeze/--no-freeze", help="No scale-in while a calendar event is active.")] = True,
    max_freeze: Annotated[str, typer.Option(help="A freeze lasts at most this long from an event's start.")] = "6h",
    metric_lag: Annotated[str, typer.Option(help="How late the HPA of every strategy that has one sees the demand.")] = "60s",
    interval: Annotated[str, typer.Option(help="The controller's interval: the peakscale strategies decide this often.")] = "30s",
    cooldown: Annotated[str, typer.Option(help="How long after an event the event's plan still applies.")] = "30m",
    floor: Annotated[str, typer.Option(help="The peakscale strategy's HPA floor: plan (follows the plan at all times) or events-only.")] = "plan",
    history_window: Annotated[str, typer.Option(help="What the forecaster sees: the policy's forecast.history (as much as Prometheus keeps), e.g. 2d.")] = "14d",
    memory: Annotated[bool, typer.Option("--memory/--no-memory", help="Events older than the history window teach through the profiles the controller records (--no-memory: they are forgotten).")] = True,
    node_lead_time: Annotated[str, typer.Option(help="How long the cluster takes to add a node: pods asked for beyond the node room held serve after --lead-time plus this. 0: nodes always have room.")] = "0s",
    dataset_size: Annotated[Optional[str], typer.Option(help="A resharding tier (Redis Cluster; replicas are shards): its dataset, e.g. 20GB. With --reshard-throughput every raise serves once its pods are up and its slots have moved, and peakscale plans that far ahead.")] = None,
    reshard_throughput: Annotated[Optional[str], typer.Option(help="The migration throughput last measured for the tier (status.reshard of its ScalingPolicy), e.g. 6MB/s.")] = None,
    node_headroom: Annotated[bool, typer.Option("--node-headroom/--no-node-headroom", help="With --node-lead-time: the peakscale strategies keep placeholder pods ahead of each raise (nodeHeadroom), so the replicas that replace them serve after --lead-time alone.")] = True,
    kinds: Annotated[Optional[list[str]], typer.Option("--kinds", help="Event kinds that count as calendar events (repeatable). Default: all but kinds naming an anomaly, artifact, outage or gap; for the bundled trace, its matches.")] = None,
    strategies: Annotated[Optional[list[str]], typer.Option("--strategies", help="Strategies to run, repeatable or comma-separated: reactive, schedule, history, peakscale, peakscale-scale, oracle. Default: all.")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Write a PNG: demand, ready capacity per strategy, event windows shaded.")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table, json or yaml (one object for scripts).")] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="Same as -o json.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse a trace with gaps or empty values (by default they are missing samples: every strategy holds through them, and the figures count only the minutes with data).")] = False,
    time_column: TimeColumnOpt = None,
    value_column: ValueColumnOpt = None,
    epoch: EpochOpt = "auto",
) -> None:
    """Replay a real trace through a simulated cluster and compare scaling strategies.

    New replicas serve only after --lead-time. Six strategies see the same trace: reactive (an HPA on the request rate, 60 s late), schedule (calendar floors sized by hand, KEDA-cron style), history (seasonal forecast, no calendar), peakscale (the controller as shipped: that HPA plus the floor it writes every --interval), peakscale-scale (the controller in mode scale) and oracle (perfect foresight, the lower bound on cost). The peakscale strategies run the controller's own cycle function on what its Prometheus would hold: each trace sample (the demand of the period starting at its timestamp) once that period is over, within the policy's 14-day history window.

    Examples:

    peakscale backtest

    peakscale backtest --trace traffic.csv --events promos.csv --tz Asia/Shanghai --capacity-per-replica 500 --lead-time 25m --max-replicas 300 --plot out.png

    peakscale backtest --json | jq .strategies.peakscale.events
    """
    from autoscaler.adapters.trace_files import TraceFormat
    from autoscaler.core.backtest import run_backtest

    scenario = _scenario(
        capacity_per_replica=_capacity(trace, capacity_per_replica), target_utilization=target_utilization, coverage=coverage, lead_time=lead_time, min_replicas=min_replicas,
        max_replicas=max_replicas, scale_down_stabilization=scale_down_stabilization, freeze=freeze, max_freeze=max_freeze, metric_lag=metric_lag, interval=interval,
        cooldown=cooldown, floor=floor, history_window=history_window, memory=memory, node_lead_time=node_lead_time, node_headroom=node_headroom, reshard=_reshard(dataset_size, reshard_throughput),
    )
    chosen = _strategies(strategies)
    if plot is not None and plot.suffix.lower() != ".png":
        raise InputError("--plot", f"{str(plot)!r} is not a .png file", "name the plot file *.png")
    series, selected = _inputs(trace, events, get_zone(tz, field="--tz"), scenario, kinds=split_list(kinds), strict=strict, as_given=(lead_time, node_lead_time), fmt=TraceFormat(time_column, value_column, epoch))
    check_output(output)
    output = "json" if as_json else output
    if sweep:
        return _sweep(series, selected, scenario, output=output, plot=plot, quiet=quiet)
    with Progress(enabled=not quiet and output == "table") as report, options_named():
        result = run_backtest(series, selected, scenario, tuple(chosen), progress=report)
    if plot is not None:
        from autoscaler.adapters.plot import plot_backtest

        plot_backtest(result, plot)
    _emit(result, output, plot)


def _sweep(series: Trace, selected: list[PromotionEvent], scenario: Scenario, *, output: str, plot: Path | None, quiet: bool) -> None:
    from autoscaler.cli.frontier import run_sweep

    run_sweep(series, selected, scenario, output=output, plot=plot, quiet=quiet)


def _strategies(strategies: list[str] | None) -> list[str]:
    """The strategies --strategies names (default: all), each one that exists."""
    from autoscaler.core.backtest import STRATEGIES

    chosen = split_list(strategies) or list(STRATEGIES)
    if unknown := [name for name in chosen if name not in STRATEGIES]:
        raise InputError("--strategies", f"unknown strategy {unknown[0]!r}", f"choose from {', '.join(STRATEGIES)}")
    return chosen


def _emit(result: BacktestResult, output: str, plot: Path | None) -> None:
    """The result as one JSON or YAML object for scripts, or the table for people."""
    if output == "table":
        _print_table(result, plot)
        return

    doc = result.as_json()
    if plot is not None:
        doc["plot"] = str(plot)
    echo_doc(doc, output)


def _capacity(trace: Path | None, capacity_per_replica: float | None) -> float:
    if trace is None:
        return capacity_per_replica if capacity_per_replica is not None else BUNDLED_CAPACITY
    if capacity_per_replica is None:
        raise InputError("--capacity-per-replica", "required with --trace", "give the demand one replica serves, e.g. --capacity-per-replica 500")
    return capacity_per_replica


def _scenario(
    *, capacity_per_replica: float, target_utilization: float, coverage: float, lead_time: str, min_replicas: int, max_replicas: int,
    scale_down_stabilization: str, freeze: bool, max_freeze: str, metric_lag: str, interval: str, cooldown: str,
    floor: str, history_window: str, memory: bool, node_lead_time: str, node_headroom: bool, reshard: tuple[float, float] | None = None,
) -> Scenario:
    """The options as a backtest scenario, each checked and named when wrong."""
    try:
        policy = _plan_policy(capacity_per_replica, target_utilization, lead_time, min_replicas, max_replicas, scale_down_stabilization, freeze, max_freeze)
    except InputError as exc:
        raise as_options(exc, OPTIONS) from None
    return _rest(policy, coverage=coverage, floor=floor, history_window=history_window, memory=memory, metric_lag=metric_lag, interval=interval, cooldown=cooldown, node_lead_time=node_lead_time, node_headroom=node_headroom, reshard=reshard)


def _plan_policy(capacity_per_replica: float, target_utilization: float, lead_time: str, min_replicas: int, max_replicas: int, scale_down_stabilization: str, freeze: bool, max_freeze: str) -> PlanPolicy:
    from autoscaler.core.plan import PlanPolicy

    return PlanPolicy(
        capacity_per_replica=capacity_per_replica,
        target_utilization=target_utilization,
        lead_time_s=parse_duration_s(lead_time, field="--lead-time", allow_zero=True),
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        scale_down_stabilization_s=parse_duration_s(scale_down_stabilization, field="--scale-down-stabilization", allow_zero=True),
        freeze_during_events=freeze,
        max_freeze_s=parse_duration_s(max_freeze, field="--max-freeze", allow_zero=True),
    )


def _rest(
    policy: PlanPolicy, *, coverage: float, floor: str, history_window: str, memory: bool, metric_lag: str, interval: str, cooldown: str,
    node_lead_time: str, node_headroom: bool, reshard: tuple[float, float] | None,
) -> Scenario:
    from autoscaler.core.backtest import Scenario
    from autoscaler.core.baseline import ForecastSettings

    if floor not in ("plan", "events-only"):
        raise InputError("--floor", f"unknown rule {floor!r}", "use plan or events-only")
    from autoscaler.core.defaults import checked_coverage

    checked_coverage(coverage, field="--coverage")
    history_s = parse_duration_s(history_window, field="--history-window")
    if history_s < 86400:
        raise InputError("--history-window", f"{history_window!r} is shorter than a day", "the daily profile needs at least 1d, e.g. 2d or 14d")
    return Scenario(
        policy=policy,
        forecast=ForecastSettings(history_s=history_s, coverage=coverage),
        memory=memory,
        metric_lag_s=parse_duration_s(metric_lag, field="--metric-lag", allow_zero=True),
        interval_s=parse_duration_s(interval, field="--interval"),
        cooldown_s=parse_duration_s(cooldown, field="--cooldown", allow_zero=True),
        floor=floor,
        node_lead_s=parse_duration_s(node_lead_time, field="--node-lead-time", allow_zero=True),
        node_headroom=node_headroom,
        reshard=reshard,
    )


#: the ScalingPolicy fields (as the core names them) the backtest takes from its options
OPTIONS = {
    "spec.metric.capacityPerReplica": "--capacity-per-replica", "spec.metric.targetUtilization": "--target-utilization",
    "spec.leadTime": "--lead-time", "spec.minReplicas": "--min-replicas", "spec.maxReplicas": "--max-replicas",
    "spec.scaleDownStabilization": "--scale-down-stabilization", "spec.maxFreeze": "--max-freeze", "strategies": "--strategies", "trace": "--trace",
}  # fmt: skip


@contextmanager
def options_named() -> Iterator[None]:
    """Errors of the fields the backtest took from its options name the options (``OPTIONS``)."""
    try:
        yield
    except InputError as exc:
        raise as_options(exc, OPTIONS) from None


def _reshard(dataset_size: str | None, throughput: str | None) -> tuple[float, float] | None:
    """(dataset bytes, bytes/s) of a resharding tier: both options or neither."""
    from autoscaler.core.reshard import parse_size

    if dataset_size is None and throughput is None:
        return None
    if dataset_size is None or throughput is None:
        missing = "--dataset-size" if dataset_size is None else "--reshard-throughput"
        raise InputError(missing, "a resharding tier needs both its dataset size and its migration throughput", "give --dataset-size 20GB --reshard-throughput 6MB/s")
    return parse_size(dataset_size, field="--dataset-size"), parse_size(throughput, field="--reshard-throughput", per_second=True)


def _inputs(
    trace: Path | None, events: Path | None, zone: ZoneInfo, scenario: Scenario, *, kinds: list[str], strict: bool, as_given: tuple[str, str], fmt: TraceFormat
) -> tuple[Trace, list[PromotionEvent]]:
    """The trace and the calendar events that count, checked against the scenario's lead times
    (``as_given``: --lead-time and --node-lead-time as the user wrote them, for the message)."""
    from autoscaler.adapters.calendar_files import load_calendar
    from autoscaler.adapters.trace_files import load_trace
    from autoscaler.core.calendar import select_kinds

    trace_path = trace or BUNDLED_TRACE
    events_path = events or (BUNDLED_EVENTS if trace is None else _default_events(trace))
    series = load_trace(trace_path, zone, strict=strict, fmt=fmt)
    span_s = int(series.times_s[-1] - series.times_s[0]) + series.step_s
    lead_s = scenario.policy.lead_time_s
    if lead_s >= span_s or lead_s >= scenario.forecast.history_s:
        raise InputError("--lead-time", f"{as_given[0]} is not shorter than the trace ({span_s // 60:,} min) and the history window", "give the lead time of the tier, e.g. 10m")
    if lead_s + scenario.node_lead_s >= min(span_s, scenario.forecast.history_s):
        raise InputError("--node-lead-time", f"{as_given[1]} plus --lead-time is not shorter than the trace and the history window", "give how long a node takes to come up, e.g. 3m")
    calendar = load_calendar(events_path, zone) if events_path is not None else []
    wanted_kinds = kinds or (BUNDLED_KINDS if trace is None and events is None else [])
    selected = select_kinds(calendar, wanted_kinds)
    if wanted_kinds and not selected:
        known = sorted({e.kind for e in calendar})
        raise InputError("--kinds", f"no event of kind {', '.join(map(repr, wanted_kinds))} in the calendar", f"kinds present: {', '.join(map(repr, known)) or 'none'}")
    return series, selected


def _default_events(trace: Path) -> Path | None:
    name = trace.name.removesuffix(".gz").removesuffix(".csv")
    for candidate in (trace.with_name(f"{name}.events.csv"), trace.with_name(f"{name}.events.yaml")):
        if candidate.is_file():
            return candidate
    return None


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_table(result: BacktestResult, plot: Path | None) -> None:
    from rich.table import Table

    doc = result.as_json()
    sc = doc["scenario"]
    console = table_console(150)
    title = (
        f"{doc['trace']}: {sc['samples']:,} samples, {sc['calendar_events']} calendar events "
        f"({sc['event_minutes']:,.0f} min; kinds: {', '.join(sc['event_kinds']) or 'none'}), "
        f"lead time {sc['lead_time_s'] / 60:g} min, {sc['capacity_per_replica']:g}/replica at {sc['target_utilization']:.0%}"
    )
    if sc["reshard"]:
        title += f", resharding {sc['reshard']['dataset_bytes'] / 1e9:g} GB at {sc['reshard']['throughput_bytes_s'] / 1e6:g} MB/s (plans {sc['reshard']['plan_lead_s'] / 60:.0f} min ahead)"
    if sc["node_lead_s"]:
        title += f", node lead time {sc['node_lead_s'] / 60:g} min ({'peakscale keeps node headroom' if sc['node_headroom'] else 'no node headroom'})"
    table = Table(title=title, title_justify="left")
    table.add_column("strategy")
    table.add_column("unserved\nall", justify="right")
    table.add_column("unserved\nevents", justify="right")
    table.add_column("under-prov.\nmin, all", justify="right")
    table.add_column("under-prov.\nmin, events", justify="right")
    table.add_column("replica-h\nall", justify="right")
    table.add_column("vs oracle\nall", justify="right")
    table.add_column("vs oracle\nevents", justify="right")
    table.add_column("scale\nactions", justify="right")
    for name, figs in doc["strategies"].items():
        a, e = figs["all"], figs["events"]
        style = "bold" if name == "peakscale" else None
        table.add_row(
            name,
            f"{a['unserved_fraction']:.4%}",
            f"{e['unserved_fraction']:.4%}",
            f"{a['underprovisioned_minutes']:,.0f}",
            f"{e['underprovisioned_minutes']:,.0f}",
            f"{a['replica_hours']:,.0f}",
            _ratio(a["replica_hours_vs_oracle"]),
            _ratio(e["replica_hours_vs_oracle"]),
            f"{a['scale_actions']:,}",
            style=style,
        )
    console.print(table)
    console.print(
        "unserved: share of demand above ready capacity; under-prov.: minutes with any; "
        "replica-h: replicas asked for (warming or ready); events: minutes inside calendar windows.",
        style="dim",
    )
    for name, figs in doc["strategies"].items():
        if cal := figs.get("calibration"):
            console.print(
                f"{name} at coverage {cal['coverage']:.2%}: event demand exceeded what the plan had ready in {cal['exceeded']:.2%} of event minutes "
                f"(nominal {cal['nominal_exceeded']:.2%}; the HPA serves what is above the plan)"
                + (f"; {cal['unsized_minutes']:,.0f} event minutes left out: events with no past of their kind and no expected size" if cal["unsized_minutes"] else ""), highlight=False,
            )  # fmt: skip
    if sc["missing_minutes"]:
        console.print(f"{sc['missing_minutes']:,.0f} minutes of the trace have no data: every strategy held through them, and no figure counts them.")
    if plot is not None:
        console.print(f"plot written to {plot}")
