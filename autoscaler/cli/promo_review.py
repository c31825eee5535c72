"""``peakscale promo review``: after a promotion, per targeted policy, what was planned and when it
was ready, forecast vs observed peak, the minutes short, and what was recorded into memory.

The controller's own cycles are replayed around the promotion (``core.review``); this module
gathers the history and the policies and prints the result."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from autoscaler.cli.output import echo_doc, PROMETHEUS_ENV, EpochOpt, TimeColumnOpt, ValueColumnOpt, check_output, history_url, table_console
from autoscaler.cli.promo import promo_app
from autoscaler.cli.promo_store import (
    CalendarOpt,
    ContextOpt,
    KubeconfigOpt,
    NamespaceOpt,
    OutputOpt,
    StoreOpt,
    TzOpt,
    cluster_policies,
    find_promo,
    namespace_of,
    open_store,
    read_promos,
    write_promos,
)
from autoscaler.core.timezones import aware, get_zone, shown
from autoscaler.core.durations import parse_duration_s
from autoscaler.errors import InputError

if TYPE_CHECKING:
    from autoscaler.core.calendar import PromotionEvent
    import numpy as np
    from autoscaler.adapters.inputs import PolicyDoc
    from autoscaler.core.review import Review


@promo_app.command("review")
def review(
    name: Annotated[str, typer.Argument(help="The promotion to review (it should be over).")],
    trace: Annotated[Optional[Path], typer.Option(help="Offline: the demand history, read like a backtest's (a timestamp,value CSV, Grafana's CSV export, a saved Prometheus query_range answer).")] = None,
    trace_tz: Annotated[str, typer.Option(help="Zone of the trace's naive timestamps.")] = "UTC",
    prometheus_url: Annotated[Optional[str], typer.Option(envvar=PROMETHEUS_ENV, help="Prometheus to read each policy's history from.")] = None,
    policies: Annotated[Optional[Path], typer.Option(help="YAML file of ScalingPolicy resources. Default: the cluster's with --store kube, else one from the options below.")] = None,
    policy: Annotated[Optional[list[str]], typer.Option("--policy", help="Only these policies (repeatable).")] = None,
    capacity_per_replica: Annotated[Optional[float], typer.Option(help="Without policies: demand one replica serves.")] = None,
    lead_time: Annotated[str, typer.Option(help="Without policies: how long new capacity takes to serve.")] = "10m",
    min_replicas: Annotated[int, typer.Option(help="Without policies: the usual floor.")] = 2,
    max_replicas: Annotated[int, typer.Option(help="Without policies: never more.")] = 200,
    interval: Annotated[str, typer.Option(help="The controller's interval.")] = "30s",
    record: Annotated[bool, typer.Option("--record", help="Store what was observed into the promotion's memory (file store; the controller does it in the cluster).")] = False,
    tz: TzOpt = "Asia/Shanghai",
    output: OutputOpt = "table",
    store: StoreOpt = "auto",
    calendar: CalendarOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse a --trace with gaps or empty values (by default they are missing samples).")] = False,
    time_column: TimeColumnOpt = None,
    value_column: ValueColumnOpt = None,
    epoch: EpochOpt = "auto",
) -> None:
    """After a promotion: per targeted policy, what was planned and when it was ready, forecast vs observed peak, the minutes demand exceeded ready capacity, and what was recorded into memory.

    The controller's own cycles are replayed around the promotion from the history (Prometheus, or --trace offline), so the review shows what the controller decided. The memory is what later promotions of the kind (or naming this one in --like) learn from once Prometheus has forgotten the samples: the controller records it into the PromotionEvent's status; --record stores it in a calendar file.

    Examples:

    peakscale promo review double11-2026 --store kube -n live --prometheus-url http://prometheus:9090

    peakscale promo review flash-0618 --trace traffic.csv --policies policies.yaml --record -o json
    """
    from autoscaler.adapters.inputs import one_history_source, trace_history
    from autoscaler.adapters.store import Promo
    from autoscaler.adapters.trace_files import TraceFormat
    from autoscaler.core.review import Review, recorded_profile, review_policy
    from autoscaler.core.plan_report import PolicyInput

    check_output(output)
    show_zone = get_zone(tz, field="--tz")
    prometheus_url = history_url(prometheus_url, trace)
    one_history_source(trace, prometheus_url)
    interval_s = parse_duration_s(interval, field="--interval")
    clock_zone = get_zone(trace_tz if trace is not None else "UTC", field="--trace-tz")
    st = open_store(store, calendar, kubeconfig, context, namespace)
    promos = read_promos(st)
    promo = find_promo(promos, name)
    events = [p.event(clock_zone) for p in promos]
    event = next(e for e in events if e.name == name)
    options = {"capacity_per_replica": capacity_per_replica, "lead_time": lead_time, "min_replicas": min_replicas, "max_replicas": max_replicas}
    targeted = _targeted(st, event, policies, policy, options, home=namespace_of(namespace, kubeconfig, context, st))

    def fmt(seconds: float) -> str:
        return shown(aware(seconds, clock_zone), show_zone)

    from_trace = trace_history(trace, clock_zone, strict=strict, fmt=TraceFormat(time_column, value_column, epoch))[:2] if trace is not None else None
    reviews, profiles = [], []
    for doc in targeted:
        entry = PolicyInput(doc.name, doc.namespace, doc.labels, doc.spec)
        times, values = from_trace if from_trace is not None else _prometheus_history(doc, prometheus_url, event_start_s=event.start_s)
        reviews.append(review_policy(entry, times, values, events, name, interval_s=interval_s, fmt=fmt))
        if record:
            profiles.append(recorded_profile(entry, times, values, events, name, interval_s=interval_s))
    result = Review(event=name, title=promo.parsed.title, kind=promo.parsed.kind, start=fmt(event.start_s), end=fmt(event.end_s), tz=tz, policies=reviews)
    if record:
        kept = [m for m in promo.memory if m.get("policy") not in {p.policy for p in profiles if p is not None}]
        memory = tuple(kept + [p.model_dump(by_alias=True) for p in profiles if p is not None])
        updated = [Promo(name=p.name, spec=p.spec, memory=memory, version=p.version) if p.name == name else p for p in promos]
        write_promos(st, updated, changed=[name], deleted=[])
    _print_review(result, output)
    if record:
        table_console(160).print(f"recorded into {st.describe()}: later promotions of kind {result.kind!r} learn from it", highlight=False)


def _targeted(st, event: PromotionEvent, policies: Path | None, only: list[str] | None, options: dict, *, home: str) -> list[PolicyDoc]:
    """The policies the promotion applies to (the controller's rule): the cluster's, or those of
    --policies (or one from the options); none is refused, naming the labels that are there."""
    from autoscaler.adapters.inputs import load_policies
    from autoscaler.adapters.store import KubeStore
    from autoscaler.core.resources import event_applies

    docs = cluster_policies(st, only) if policies is None and isinstance(st, KubeStore) else load_policies(policies, only=only, namespace=home, **options)
    targeted = [d for d in docs if event_applies(event, d.namespace, d.labels)]
    if not targeted:
        known = sorted({f"{k}={v}" for d in docs for k, v in d.labels.items()})
        raise InputError("NAME", f"{event.name!r} selects no ScalingPolicy", f"its targets must match a policy's labels; labels present: {', '.join(known) or 'none'}")
    return targeted


def _prometheus_history(doc: PolicyDoc, prometheus_url: str | None, *, event_start_s: int) -> tuple[np.ndarray, np.ndarray]:
    """The policy's history from Prometheus, back to a history window before the promotion's start."""
    from autoscaler.adapters.inputs import prometheus_history

    assert prometheus_url is not None
    now_s = time.time()
    reach = int(now_s - event_start_s) + 2 * 86400 + doc.spec.forecast_settings().history_s
    return prometheus_history(prometheus_url, doc, now_s=now_s, history_s=reach)


def _print_review(result: Review, output: str) -> None:
    from rich.table import Table

    if output in ("json", "yaml"):
        echo_doc(result.model_dump(mode="json"), output)
        return
    table = Table(title=f"review of {result.event!r} ({result.kind}): {result.start} -> {result.end}", title_justify="left")
    for col in ("policy", "target", "ready at start", "planned peak", "asked -> ready", "forecast peak", "observed peak", "short", "over the plan", "memory"):
        table.add_column(col)
    for r in result.policies:
        memory = "-"
        if r.recorded is not None:
            memory = f"x{r.recorded.peak_uplift:g} at {r.recorded.minutes_to_peak:+g} min ({r.recorded.points} pts{', stored' if r.recorded.stored else ''})"
        table.add_row(
            r.policy, f"{r.target} ({r.mode})", str(r.ready_at_start if r.ready_at_start is not None else "-"), str(r.planned_peak if r.planned_peak is not None else "-"),
            f"{r.asked_at or '-'} -> {r.ready_at or '-'}", f"{r.forecast_peak:,.0f}" if r.forecast_peak is not None else "-",
            f"{r.observed_peak:,.0f}" if r.observed_peak is not None else "-", f"{r.short_minutes:g} min" + (f" ({r.missing_minutes:g} min no data)" if r.missing_minutes else ""),
            "-" if r.exceeded is None else f"{r.exceeded:.1%} of min (nominal {1 - r.coverage:.2%})", memory,
        )  # fmt: skip
    table_console(160).print(table)
