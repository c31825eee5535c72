"""``peakscale plan``: every write the controller would make, per target, with its reason.

The controller's own cycle function runs at the instants the controller would (``core.plan_report``);
this module only gathers the inputs (policies, promotions, histories) and prints the result."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional
from zoneinfo import ZoneInfo

import typer

from autoscaler.cli.app import app
from autoscaler.cli.output import echo_doc, PROMETHEUS_ENV, EpochOpt, TimeColumnOpt, ValueColumnOpt, check_output, history_url, err_console, split_list, table_console
from autoscaler.cli.promo_store import AllNamespacesOpt, NamespaceOpt
from autoscaler.core.timezones import aware, get_zone, shown, wall_seconds
from autoscaler.core.durations import parse_duration_s
from autoscaler.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    from autoscaler.adapters.inputs import PolicyDoc
    from autoscaler.adapters.trace_files import TraceFormat
    from autoscaler.core.calendar import PromotionEvent
    from autoscaler.core.plan_report import Action, Plan, TimelinePoint
    from autoscaler.adapters.store import Store


@app.command()
def plan(
    start: Annotated[str, typer.Option("--from", help="Start of the plan: now, a local time in --tz, or +2h from now. With --trace: the trace's start.")] = "now",
    end: Annotated[str, typer.Option("--to", help="End: +48h (from --from) or a local time in --tz. With --trace: the trace's end.")] = "+48h",
    tz: Annotated[str, typer.Option("--tz", help="Zone of the times given and shown. Default Asia/Shanghai: the operators' wall clock, as in promo.")] = "Asia/Shanghai",
    trace: Annotated[Optional[Path], typer.Option(help="Offline history instead of Prometheus: a timestamp,value CSV.")] = None,
    trace_tz: Annotated[str, typer.Option(help="Zone of the trace's naive timestamps (and of --events).")] = "UTC",
    prometheus_url: Annotated[Optional[str], typer.Option(envvar=PROMETHEUS_ENV, help="Prometheus to read each policy's history from.")] = None,
    events: Annotated[Optional[Path], typer.Option(help="A calendar file (CSV or YAML) instead of the promo store; its entries apply in every namespace, as the controller's --calendar. With --store kube: both, as the controller reads them.")] = None,
    kinds: Annotated[Optional[list[str]], typer.Option("--kinds", help="With --events: the kinds that count (default: all but data kinds).")] = None,
    policies: Annotated[
        Optional[Path],
        typer.Option(
            help="YAML file of ScalingPolicy resources. Default: the cluster's (when promotions come from it and no --capacity-per-replica is given), else one policy from the options below."
        ),
    ] = None,
    policy: Annotated[Optional[list[str]], typer.Option("--policy", help="Only these policies (repeatable).")] = None,
    capacity_per_replica: Annotated[Optional[float], typer.Option(help="Without --policies: demand one replica serves.")] = None,
    lead_time: Annotated[str, typer.Option(help="Without --policies: how long new capacity takes to serve.")] = "10m",
    min_replicas: Annotated[int, typer.Option(help="Without --policies: the usual floor.")] = 2,
    max_replicas: Annotated[int, typer.Option(help="Without --policies: never more.")] = 200,
    coverage: Annotated[Optional[float], typer.Option(help="The share of event demand the plan is sized to serve, in [0.5, 0.9999]: the policies' spec.coverage (default 0.99), or what another coverage would plan.")] = None,
    store: Annotated[
        str,
        typer.Option(
            "--store",
            help="Promotions from: kube (PromotionEvents), file (a YAML calendar), or auto: kube when a kubeconfig context or in-cluster config is found and no --calendar is given, else file.",
        ),
    ] = "auto",
    calendar: Annotated[Optional[Path], typer.Option("--calendar", envvar="PEAKSCALE_CALENDAR", help="Calendar file for --store file (default ~/.config/peakscale/calendar.yaml).")] = None,
    kubeconfig: Annotated[Optional[Path], typer.Option(help="Kubeconfig for --store kube.")] = None,
    context: Annotated[Optional[str], typer.Option(help="Kubeconfig context.")] = None,
    namespace: NamespaceOpt = None,
    all_namespaces: AllNamespacesOpt = False,
    output: Annotated[str, typer.Option("--output", "-o", help="table, json or yaml.")] = "table",
    timeline: Annotated[bool, typer.Option("--timeline/--no-timeline", help="Show a compact timeline of the planned floor per target, with a time axis (in JSON: a list of points).")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every node-headroom resize (by default those of one promotion are folded into one row).")] = False,
    interval: Annotated[str, typer.Option(help="The controller's interval (its --interval): plan decides at the same instants.")] = "30s",
    strict: Annotated[bool, typer.Option("--strict", help="Refuse a --trace with gaps or empty values (by default they are missing samples).")] = False,
    time_column: TimeColumnOpt = None,
    value_column: ValueColumnOpt = None,
    epoch: EpochOpt = "auto",
) -> None:
    """Show what will scale when: every write the controller would make, per target, with its reason.

    The controller's own cycle function runs at the instants the controller would (every --interval from --from), each cycle seeing the history up to that instant only: in hpa-floor mode the floor follows the seasonal forecast (less the HPA's tolerance) and rises to the whole plan from one interval before each promotion's start minus the lead time until its end plus the cool-down; in scale mode the replica count follows the plan. With a policy's nodeHeadroom, the placeholder pods are shown too (create, resize, delete headroom), counting the floor's pods ready a lead time after each raise. Beyond the newest sample the history is carried forward by the seasonal forecast; from the start of a promotion the history does not reach yet, the plan shows two scenarios: A, it arrives as forecast; B, it does not show in the metrics. A --trace is read like a backtest's (each value the demand of the period starting at its timestamp); Prometheus history as the controller reads it.

    Examples:

    peakscale plan --prometheus-url http://127.0.0.1:9090 --policies policies.yaml --to +48h

    peakscale plan --trace traffic.csv --events promos.csv --capacity-per-replica 2000 -o json
    """
    from autoscaler.adapters.inputs import one_history_source
    from autoscaler.adapters.trace_files import TraceFormat

    check_output(output)
    show_zone = get_zone(tz, field="--tz")
    prometheus_url = history_url(prometheus_url, trace)
    one_history_source(trace, prometheus_url)
    clock_zone = get_zone(trace_tz if trace is not None else "UTC", field="--trace-tz")

    def fmt(seconds: float) -> str:
        return shown(aware(seconds, clock_zone), show_zone)

    calendar_events, st = _calendar(events, split_list(kinds), clock_zone, store=store, calendar=calendar, kubeconfig=kubeconfig, context=context, namespace=namespace, all_namespaces=all_namespaces)
    every, where = _policies(st, events, policies, capacity_per_replica=capacity_per_replica, lead_time=lead_time, min_replicas=min_replicas, max_replicas=max_replicas, namespace=namespace, kubeconfig=kubeconfig, context=context)
    docs = _with_coverage(only_policies(every, policy), coverage)
    histories, from_s, to_s = _window(docs, trace, prometheus_url, clock_zone, start=start, end=end, tz=tz, strict=strict, fmt=TraceFormat(time_column, value_column, epoch))
    interval_s = parse_duration_s(interval, field="--interval")
    _bounded(docs, from_s, to_s, interval_s)
    result = _result(every, docs, histories, calendar_events, from_s=from_s, to_s=to_s, interval_s=interval_s, fmt=fmt, tz=tz, where=where)
    _print_plan(result, output, timeline, verbose)


def _result(
    every: list[PolicyDoc], docs: list[PolicyDoc], histories: dict, calendar_events: list[PromotionEvent], *, from_s: int, to_s: int, interval_s: int, fmt: Callable[[float], str], tz: str, where: str
) -> Plan:
    """Each chosen policy's plan; a promotion in the window that applies to no policy at all (of
    ``every``, not only the chosen) is said on stderr, with the labels the policies carry."""
    from autoscaler.core.resources import event_applies
    from autoscaler.core.plan_report import Plan, PolicyInput, plan_target

    targets = []
    for doc in docs:
        times, values = histories[(doc.namespace, doc.name)]
        entry = PolicyInput(name=doc.name, namespace=doc.namespace, labels=doc.labels, spec=doc.spec)
        targets.append(plan_target(entry, times, values, calendar_events, from_s, to_s, interval_s=interval_s, fmt=fmt))
    near = [e for e in calendar_events if from_s - 86400 <= e.end_s and e.start_s <= to_s]
    unmatched = sorted(_event_key(e) for e in near if not any(event_applies(e, d.namespace, d.labels) for d in every))
    result = Plan(start=fmt(from_s), end=fmt(to_s), tz=tz, source=where, targets=targets, unmatched=unmatched)
    labels = sorted({f"{k}={v}" for d in every for k, v in d.labels.items()})
    for name in result.unmatched:
        there = f"the policies carry {', '.join(labels[:8])}" if labels else "the policies carry no labels"
        err_console.print(f"warning: promotion {name!r} selects no policy: nothing is raised for it ({there}; see its targets)", highlight=False, soft_wrap=True)
    return result


def _policies(
    st: Store | None, events: Path | None, policies: Path | None, *, capacity_per_replica: float | None, lead_time: str, min_replicas: int, max_replicas: int, namespace: str | None, kubeconfig: Path | None, context: str | None
) -> tuple[list[PolicyDoc], str]:
    """Every policy (a file, the cluster's beside its promotions, or one from the options), all of
    them, so that a promotion of a policy --policy leaves out is not "selecting no policy"; and
    where the inputs were read. A policy without a namespace is in the command's (kubectl's rule)."""
    from autoscaler.adapters.inputs import load_policies

    from autoscaler.adapters.store import KubeStore
    from autoscaler.cli.promo_store import cluster_policies, namespace_of

    if policies is None and capacity_per_replica is None and isinstance(st, KubeStore):
        return cluster_policies(st), st.describe().replace("PromotionEvents", "promotions and policies")
    home = namespace_of(namespace, kubeconfig, context, st)
    every = load_policies(policies, only=None, capacity_per_replica=capacity_per_replica, lead_time=lead_time, min_replicas=min_replicas, max_replicas=max_replicas, namespace=home)
    where = st.describe() if st is not None else f"calendar {events.name if events else '-'}"
    return every, where + (f"; policies from {policies} (namespace {home} where they name none)" if policies else f"; one policy from the options, namespace {home}")


#: the most controller cycles one plan replays (a year at 5 min is 105,120)
MAX_PLAN_CYCLES = 200_000


def _bounded(docs: list[PolicyDoc], from_s: int, to_s: int, interval_s: int) -> None:
    """The window and the interval, checked before anything is sized by them."""
    from autoscaler.core.trace import MAX_SAMPLES

    cycles = (to_s - from_s) // interval_s
    if cycles > MAX_PLAN_CYCLES:
        raise InputError("--interval", f"{cycles:,} cycles from --from to --to, over {MAX_PLAN_CYCLES:,}", "a longer --interval or a shorter window")
    for doc in docs:
        if (to_s - from_s) // doc.spec.step_s > MAX_SAMPLES:
            raise InputError("--to", f"the window is {(to_s - from_s) // doc.spec.step_s:,} steps of policy {doc.name}'s forecast, over {MAX_SAMPLES:,}", "a shorter window")


def _with_coverage(docs: list[PolicyDoc], coverage: float | None) -> list[PolicyDoc]:
    """The policies, each planned at ``coverage`` when one is given."""
    import dataclasses

    from autoscaler.core.resources import ScalingPolicySpec

    if coverage is None:
        return docs
    from autoscaler.core.defaults import checked_coverage

    checked_coverage(coverage, field="--coverage")
    return [dataclasses.replace(d, spec=ScalingPolicySpec.model_validate({**d.spec.model_dump(), "coverage": coverage})) for d in docs]


def _event_key(event: PromotionEvent) -> str:
    return f"{event.namespace}/{event.name}" if event.namespace else event.name


def only_policies(docs: list[PolicyDoc], only: list[str] | None) -> list[PolicyDoc]:
    """The policies ``--policy`` names (a name, or namespace/name); a name that is not there is
    refused, naming those that are."""
    from autoscaler.adapters.inputs import require_named

    if not only:
        return docs
    require_named(only, sorted({d.name for d in docs} | {f"{d.namespace}/{d.name}" for d in docs}), sorted({d.name for d in docs}))
    return [d for d in docs if d.name in only or f"{d.namespace}/{d.name}" in only]


def _calendar(
    events: Path | None, kinds: list[str], zone: ZoneInfo, *, store: str, calendar: Path | None, kubeconfig: Path | None, context: str | None, namespace: str | None, all_namespaces: bool
) -> tuple[list[PromotionEvent], Store | None]:
    """The promotions and the store: --events, else the store's (each PromotionEvent with its
    namespace); --events with --store kube reads both, as the controller reads its --calendar
    beside the PromotionEvents (a PromotionEvent of the same name wins)."""
    from autoscaler.adapters.calendar_files import load_calendar
    from autoscaler.core.calendar import select_kinds

    from autoscaler.cli.promo_store import open_store, read_promos

    from_file = select_kinds(load_calendar(events, zone), kinds) if events is not None else []
    if events is not None and store != "kube":
        return from_file, None
    st = open_store(store, calendar, kubeconfig, context, namespace, all_namespaces)
    stored = [p.event(zone) for p in read_promos(st)]
    names = {e.name for e in stored}
    return stored + [e for e in from_file if e.name not in names], st


def _window(
    docs: list[PolicyDoc], trace: Path | None, prometheus_url: str | None, zone: ZoneInfo, *, start: str, end: str, tz: str, strict: bool, fmt: TraceFormat
) -> tuple[dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], int, int]:
    """Each policy's history (from the trace, or Prometheus now) and the plan's [from, to) on the
    history's clock."""
    from autoscaler.adapters.inputs import prometheus_history, trace_history

    from autoscaler.cli.promo_store import parse_time

    histories: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    default_to: int | None = None
    if trace is not None:
        seen_times, seen_values, first, last = trace_history(trace, zone, strict=strict, fmt=fmt)
        histories = {(d.namespace, d.name): (seen_times, seen_values) for d in docs}
        base, default_to = first, last
    else:
        assert prometheus_url is not None
        now_s = time.time()
        histories = {(d.namespace, d.name): prometheus_history(prometheus_url, d, now_s=now_s) for d in docs}
        base = int(now_s)
    if start == "now":
        from_s = base
    elif start.startswith("+"):
        from_s = base + parse_duration_s(start[1:], field="--from")
    else:
        from_s = wall_seconds(parse_time(start, tz, "--from").astimezone(zone).replace(tzinfo=None))
    if end.startswith("+"):
        to_s = default_to if (default_to is not None and end == "+48h") else from_s + parse_duration_s(end[1:], field="--to")
    else:
        to_s = wall_seconds(parse_time(end, tz, "--to").astimezone(zone).replace(tzinfo=None))
    if to_s <= from_s:
        raise InputError("--to", "is not after --from", "e.g. --to +48h")
    return histories, from_s, to_s


def _print_plan(result: Plan, output: str, timeline: bool, verbose: bool) -> None:
    from autoscaler.core.plan_report import sparkline
    from rich.table import Table

    if output in ("json", "yaml"):
        echo_doc(result.model_dump(mode="json"), output)
        return
    console = table_console(160)
    if result.source:
        console.print(f"read: {result.source}", highlight=False)
    for target in result.targets:
        table = Table(
            title=f"{target.namespace}/{target.policy} -> {target.target} ({target.mode}, {target.min_replicas}-{target.max_replicas}, lead {target.lead_time_s // 60} min), {result.start} to {result.end}, from {target.start_replicas}",
            title_justify="left",
        )
        for col in ("when", "action", "replicas", "for", "why"):
            table.add_column(col)
        for row in _rows(target.actions, verbose):
            table.add_row(*row)
        if not target.actions and not target.scenarios:
            table.add_row("-", "none", "-", "-", f"nothing to write in this window: the plan stays at the {target.start_replicas} it starts from")
        for k, scenario in enumerate(target.scenarios):
            # the history ends before this promotion: what the controller writes next depends on what it shows
            table.add_section()
            table.add_row(scenario.at, f"[bold]scenario {'AB'[k]}[/bold]", "", "", f"[bold]{scenario.title}[/bold]")
            for row in _rows(scenario.actions, verbose) or [("-", "none", "-", "-", "nothing more to write")]:
                table.add_row(*row)
        console.print(table)
        for band in target.bands:
            console.print(f"  coverage {target.coverage:.2%}: {band}", highlight=False)
        if timeline and target.timeline:
            lines = [("", target.timeline)] if not target.scenarios else [(f"{'AB'[k]}", s.timeline) for k, s in enumerate(target.scenarios)]
            for mark, points in lines:
                head = f"  timeline {mark + ' ' if mark else ''}({target.timeline_step_s // 60} min per mark, floor {target.min_replicas}..{target.max_replicas}): "
                console.print(head + sparkline(points, target.min_replicas, target.max_replicas), highlight=False)
            console.print(" " * len(head) + _axis(target.timeline), highlight=False)


def _rows(actions: list[Action], verbose: bool) -> list[tuple[str, str, str, str, str]]:
    """The table's rows: each write; without ``verbose``, a promotion's run of headroom resizes
    (one per few ready pods) folded into one row."""
    rows: list[tuple[str, str, str, str, str]] = []
    k = 0
    while k < len(actions):
        a = actions[k]
        run = [a]
        while not verbose and a.action == "resize-headroom" and k + len(run) < len(actions) and actions[k + len(run)].action == a.action and actions[k + len(run)].title == a.title:
            run.append(actions[k + len(run)])
        if len(run) > 1:
            last = run[-1]
            rows.append((f"{a.at} .. {last.at[11:16]}", "resize headroom", f"{a.from_replicas} -> {last.to_replicas}", a.title or "-", f"{len(run)} resizes as the real pods become ready (--verbose shows each)"))
        else:
            rows.append((a.at, a.action.replace("-", " "), f"{a.from_replicas} -> {a.to_replicas}", a.title or "-", a.reason))
        k += len(run)
    return rows


def _axis(points: list[TimelinePoint], every: int = 8) -> str:
    """Under the marks: the wall-clock time (HH:MM) of every ``every``-th one."""
    line = [" "] * len(points)
    for i in range(0, len(points), every):
        label = points[i].at[11:16]
        if i + len(label) <= len(points):
            line[i : i + len(label)] = label
    return "".join(line).rstrip()
