"""``peakscale preflight``: the checks of ``autoscaler.controller.preflight`` against the cluster, as a table or JSON."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from autoscaler.adapters.kubeconfig import resolve_namespaces
from autoscaler.cli.app import app
from autoscaler.cli.output import echo_doc, PROMETHEUS_ENV, check_output, err_console, prometheus_base, table_console
from autoscaler.core.defaults import DEFAULT_LEASE_NAME
from autoscaler.core.timezones import aware, get_zone, shown
from autoscaler.core.durations import parse_duration_s
from autoscaler.errors import CommandFailed, InputError, clip

if TYPE_CHECKING:
    from autoscaler.adapters.inputs import PolicyDoc
    from autoscaler.core.calendar import PromotionEvent
    from autoscaler.core.resources import PromotionEventSpec
    from autoscaler.adapters.kube import Kube

STYLE = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red"}


@app.command()
def preflight(
    prometheus_url: Annotated[str, typer.Option(envvar=PROMETHEUS_ENV, help="Prometheus the controller reads, e.g. http://prometheus-operated.monitoring:9090.")],
    event: Annotated[Optional[str], typer.Option("--event", help="Check this promotion (a PromotionEvent name).")] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="Check the promotions running at this time (local time in --tz, or +2h from now).")] = None,
    within: Annotated[str, typer.Option("--within", help="Without --event or --at: the promotions starting within this long from now, or running now.")] = "48h",
    namespace: Annotated[Optional[list[str]], typer.Option("--namespace", "-n", help="Namespace of the policies and promotions (repeatable). Default, as kubectl: the kubeconfig context's namespace, else default.")] = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Check every namespace.")] = False,
    kubeconfig: Annotated[Optional[str], typer.Option(help="Kubeconfig file. Default: in-cluster, else ~/.kube/config.")] = None,
    context: Annotated[Optional[str], typer.Option(help="Kubeconfig context.")] = None,
    interval: Annotated[str, typer.Option(help="The controller's --interval (the plan decides at the same instants).")] = "30s",
    lease_namespace: Annotated[str, typer.Option(help="Namespace of the controller's Lease.")] = "peakscale-system",
    lease_name: Annotated[str, typer.Option(help="Name of the controller's Lease (the chart: <release>-controller).")] = DEFAULT_LEASE_NAME,
    tz: Annotated[str, typer.Option("--tz", help="Zone of --at and of the times shown.")] = "Asia/Shanghai",
    output: Annotated[str, typer.Option("--output", "-o", help="table, json or yaml.")] = "table",
) -> None:
    """Check, before the night, that every planned raise can happen: PASS, WARN or FAIL, each with its fix.

    For each promotion in scope and each ScalingPolicy it targets, the planned raise is what `peakscale plan` shows. Checked: the target and its HPA exist; the HPA's maxReplicas is at least the planned floor; the namespace's ResourceQuotas have room for the extra pods; required pod anti-affinity (CloudNativePG's topologyKey included) leaves a topology domain per planned pod; the policy's maxReplicas does not cap what the forecast needs; the nodes the pods can land on have room (what is missing, in cores and GiB; node-headroom placeholders count as room); fixes name what owns the object (the stack config, the Helm values); no PodDisruptionBudget blocks draining the peak's nodes; Prometheus holds the history the forecast learns from; a controller holds the Lease, renewed it recently and knows every field the policy sets; node headroom's PriorityClass exists and is negative.

    Exit codes: 0 every check passed, 3 warnings only, 1 at least one FAIL (also: cluster unreachable), 2 bad input. The controller runs the same checks a day before each promotion and reports them as the PromotionEvent's Preflight condition.

    Examples:

    peakscale preflight --prometheus-url http://127.0.0.1:9090 --event double11-2026 -n live

    peakscale preflight --prometheus-url http://prometheus:9090 --within 24h -o json | jq '.checks[] | select(.status == "FAIL")'
    """
    from autoscaler.core.resources import event_applies

    from autoscaler.errors import KubeError

    from autoscaler.adapters.inputs import prometheus_history
    from autoscaler.adapters.kube import Kube, api_client, now_rfc3339
    from autoscaler.controller.preflight import run_checks
    from autoscaler.controller.preflight_model import Report
    from autoscaler.cli.promo_store import parse_time

    check_output(output)
    if event is not None and at is not None:
        raise InputError("--at", "give --event or --at, not both", "e.g. --event double11-2026")
    zone = get_zone(tz, field="--tz")
    interval_s = parse_duration_s(interval, field="--interval")
    within_s = parse_duration_s(within, field="--within")
    prometheus_url = prometheus_base(prometheus_url)
    now_s = time.time()
    at_s = None
    if at is not None:
        at_s = now_s + parse_duration_s(at[1:], field="--at") if at.startswith("+") else parse_time(at, tz, "--at").timestamp()
    kube = Kube(api_client(kubeconfig, context))
    namespaces = resolve_namespaces(namespace, all_namespaces, kubeconfig, context)
    policies, parsed = _read_cluster(kube, namespaces)
    chosen = _chosen(parsed, event, at_s, now_s, within_s, namespaces)

    def calendar_for(policy: PolicyDoc):
        return [ev.for_policy(policy.name) for _, _, ev in parsed if event_applies(ev, policy.namespace, policy.labels)]

    pairs = [(ev, [p for p, _ in policies if event_applies(ev, p.namespace, p.labels)]) for _, _, ev in chosen]
    with err_console.status("checking the planned raises against the cluster and Prometheus...") if err_console.is_terminal else _Quiet():
        try:
            checks = run_checks(
                kube, policies, pairs, calendar_for,
                lambda p: prometheus_history(prometheus_url, p, now_s=now_s),
                now_s=now_s, interval_s=interval_s, lease_namespace=lease_namespace, lease_name=lease_name,
            )  # fmt: skip
        except (KubeError, OSError) as exc:
            raise CommandFailed(f"cannot read the cluster ({type(exc).__name__}: {clip(str(exc), 200)})") from None
    report = Report(at=now_rfc3339(now_s), events=[ev.name for _, _, ev in chosen], checks=checks)
    read = "all namespaces" if namespaces is None else "namespace(s) " + ", ".join(namespaces)
    if output in ("json", "yaml"):
        doc = {"namespaces": namespaces, **report.model_dump(), "worst": report.worst, "exit_code": report.exit_code}
        echo_doc(doc, output)
        raise typer.Exit(report.exit_code)
    table_console(160).print(f"read: {read}", highlight=False)
    _print(report, chosen, zone)
    raise typer.Exit(report.exit_code)


def _read_cluster(kube: Kube, namespaces: list[str] | None) -> tuple[list[tuple[PolicyDoc, dict[str, Any]]], list[tuple[str, PromotionEventSpec, PromotionEvent]]]:
    """The ScalingPolicies (with their objects as read) and the PromotionEvents, each parsed."""
    from autoscaler.adapters.inputs import PolicyDoc
    from autoscaler.core.resources import EVENT_PLURAL, POLICY_PLURAL, parse_event, parse_policy

    from autoscaler.errors import KubeError

    try:
        policy_objs = kube.list_custom(POLICY_PLURAL, namespaces)
        event_objs = kube.list_custom(EVENT_PLURAL, namespaces)
    except (KubeError, OSError) as exc:
        raise CommandFailed(f"cannot reach the Kubernetes API ({type(exc).__name__}: {clip(str(exc), 200)})") from None
    from autoscaler.cli.promo_store import warn_skipped

    # an object the API server holds but that does not make sense is named and left out: the
    # rest of the namespace is still checked
    policies = []
    for obj in policy_objs:
        meta = obj.get("metadata") or {}
        try:
            policies.append((PolicyDoc(meta.get("name", "?"), meta.get("namespace", ""), meta.get("labels") or {}, parse_policy(obj)), obj))
        except InputError as exc:
            warn_skipped(exc.where, exc.problem, "fix it with kubectl edit scalingpolicy; it is not checked")
    parsed = []
    for obj in event_objs:
        try:
            spec, ev = parse_event(obj)
        except (InputError, ValueError, TypeError) as exc:
            meta = obj.get("metadata") or {}
            warn_skipped(f"PromotionEvent {meta.get('namespace', '')}/{meta.get('name', '?')}", str(exc), "fix it, or peakscale promo delete it; it is not checked")
            continue
        parsed.append(((obj.get("metadata") or {}).get("namespace", ""), spec, ev))
    return policies, parsed


def _chosen(
    parsed: list[tuple[str, PromotionEventSpec, PromotionEvent]], event: str | None, at_s: float | None, now_s: float, within_s: int, namespaces: list[str] | None
) -> list[tuple[str, PromotionEventSpec, PromotionEvent]]:
    """The promotions to check: the one named, the ones running at --at, or those starting within --within."""

    if event is not None:
        chosen = [p for p in parsed if p[2].name == event]
        if not chosen:
            known = ", ".join(sorted({p[2].name for p in parsed})[:8]) or "none"
            raise InputError("--event", f"no PromotionEvent named {event!r}{' in ' + ', '.join(namespaces) if namespaces else ''}", f"known: {known}")
        return chosen
    if at_s is not None:
        return [p for p in parsed if p[2].start_s <= at_s < p[2].end_s]
    return [p for p in parsed if p[2].end_s > now_s and p[2].start_s <= now_s + within_s]


class _Quiet:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def _print(report, chosen, zone) -> None:
    from rich.table import Table

    console = table_console(160)
    if not chosen:
        console.print("no promotion in scope: nothing to check (see --event, --at, --within)")
        return
    for ns, _spec, ev in chosen:
        rows = [c for c in report.checks if c.event == ev.name and c.policy.startswith(f"{ns}/")]
        starts = shown(aware(ev.start_s, get_zone("UTC")), zone)
        table = Table(title=f"preflight: {ns}/{ev.name} ({ev.label}, {starts})", title_justify="left")
        for col in ("status", "policy", "check", "object", "finding", "fix"):
            table.add_column(col)
        for c in rows:
            table.add_row(f"[{STYLE[c.status]}]{c.status}[/]", c.policy.split("/", 1)[-1], c.check, c.object, c.message, c.fix or "-")
        if not rows:
            table.add_row("-", "-", "-", "-", "no ScalingPolicy is targeted by this promotion", "check its targets selector")
        console.print(table)
    counts = {s: sum(1 for c in report.checks if c.status == s) for s in ("FAIL", "WARN", "PASS")}
    console.print(f"{counts['FAIL']} FAIL, {counts['WARN']} WARN, {counts['PASS']} PASS: exit {report.exit_code}", highlight=False)
