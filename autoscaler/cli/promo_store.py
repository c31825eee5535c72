"""Where promotions live, for the ``promo`` commands and ``plan``: the store choice (kube, file,
auto), reading and writing it with one-line failures, and the shared option declarations and
parsers (times in a zone, label selectors, the PromotionEvent spec built from options).

Every write says where it went; a file write adds that the controller does not read the file.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, UTC
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

from autoscaler.adapters.kubeconfig import check_context, current_context, in_cluster, resolve_namespace
from autoscaler.cli.output import err_console
from autoscaler.core.durations import parse_duration_s
from autoscaler.core.timezones import aware, get_zone, next_occurrence, shown
from autoscaler.core.selectors import format_selector, parse_selector
from autoscaler.errors import CommandFailed, InputError, StoreConflict, clip, printable

if TYPE_CHECKING:
    from autoscaler.adapters.store import KubeStore, Promo


StoreOpt = Annotated[
    str,
    typer.Option(
        "--store",
        help="Where promotions live: kube (PromotionEvent resources: what the controller reads), file (a YAML calendar), or auto: kube when a kubeconfig context or in-cluster config is found (as kubectl finds them) and no --calendar is given, else file.",
    ),
]

CalendarOpt = Annotated[Optional[Path], typer.Option("--calendar", envvar="PEAKSCALE_CALENDAR", help="Calendar file for --store file (default ~/.config/peakscale/calendar.yaml).")]

KubeconfigOpt = Annotated[Optional[Path], typer.Option("--kubeconfig", help="Kubeconfig for --store kube (default: in-cluster, else ~/.kube/config).")]

ContextOpt = Annotated[Optional[str], typer.Option("--context", help="Kubeconfig context for --store kube.")]

AllowPastOpt = Annotated[bool, typer.Option("--allow-past", help="Accept a start in the past: record a past promotion, so that it teaches later ones of its kind.")]

NamespaceOpt = Annotated[
    Optional[str],
    typer.Option("--namespace", "-n", help="Namespace of the PromotionEvents for --store kube. Default, as kubectl: the kubeconfig context's namespace, else default."),
]

AllNamespacesOpt = Annotated[bool, typer.Option("--all-namespaces", "-A", help="Read every namespace (--store kube).")]

TzOpt = Annotated[
    str, typer.Option("--tz", help="Zone of local times given and shown (IANA name). Default Asia/Shanghai: promotions are scheduled on the operators' wall clock; shown times carry their UTC offset.")
]

OutputOpt = Annotated[str, typer.Option("--output", "-o", help="table, json or yaml.")]

QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")]


def open_store(store: str, calendar: Path | None, kubeconfig: Path | None, context: str | None, namespace: str | None, all_namespaces: bool = False):
    """The store ``--store`` names; ``auto`` is the cluster when one is configured (and no
    ``--calendar`` is given), else the calendar file. In the cluster, the namespace is kubectl's:
    ``-n``, else the context's, else ``default``; ``-A`` reads every namespace."""
    from autoscaler.adapters.store import FileStore, KubeStore

    if store not in ("auto", "kube", "file"):
        raise InputError("--store", f"unknown store {store!r}", "use auto, kube or file")
    check_context(kubeconfig, context)
    if store == "auto":
        store = "kube" if calendar is None and (kubeconfig is not None or context is not None or cluster_configured()) else "file"
    if store == "file":
        if all_namespaces and namespace is not None:
            resolve_namespace(namespace, all_namespaces, kubeconfig, context)  # the same refusal
        return FileStore(calendar or default_calendar())
    from autoscaler.adapters.kube import api_client

    ns = resolve_namespace(namespace, all_namespaces, kubeconfig, context)
    api = api_client(str(kubeconfig) if kubeconfig is not None else None, context)
    return KubeStore(api, ns, where=current_context(kubeconfig, context))


def namespace_of(namespace: str | None, kubeconfig: Path | None, context: str | None, store=None) -> str:
    """The one namespace a command works in (kubectl's rule): the cluster store's when it has one,
    for the policies of a file that name none and for what it writes out."""
    from autoscaler.adapters.store import KubeStore

    if isinstance(store, KubeStore) and store.namespace:
        return store.namespace
    return resolve_namespace(namespace, False, kubeconfig, context) or "default"


def cluster_policies(store: KubeStore, only: list[str] | None = None) -> list:
    """The store's ScalingPolicies (``only`` those named) as ``PolicyDoc``s; one the API server
    holds but that does not parse is named in a warning and left out, so the others are still
    planned."""
    from autoscaler.adapters.inputs import policies_of

    skipped: list[InputError] = []
    docs = policies_of(read_policies(store), only, skipped=skipped)
    for exc in skipped:
        warn_skipped(exc.where, exc.problem, "fix it with kubectl edit scalingpolicy")
    return docs


def default_calendar() -> Path:
    """``$XDG_CONFIG_HOME/peakscale/calendar.yaml`` (``~/.config/...``): not whatever folder one stands in."""
    import os

    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "peakscale" / "calendar.yaml"


def cluster_configured() -> bool:
    """Whether kubectl would find a cluster: in-cluster credentials, or a kubeconfig (``$KUBECONFIG``
    or ``~/.kube/config``) with a current context."""
    return in_cluster() or current_context(None, None) is not None


def where_stored(store, name: str) -> str:
    """Where a write went, and for a file, how to get it to the controller."""
    from autoscaler.adapters.store import KubeStore

    if isinstance(store, KubeStore):
        return f"PromotionEvent {store.namespace}/{name}" + (f" in context {store.where}" if store.where else "")
    return f"{home_relative(store.path)}"


def home_relative(path: Path) -> str:
    try:
        return "~/" + str(Path(path).expanduser().resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def file_note(store) -> None:
    """After a write to a file: the controller reads PromotionEvents (or its --calendar), not this."""
    from autoscaler.adapters.store import FileStore

    if isinstance(store, FileStore):
        err_console.print(
            f"note: the controller does not read {home_relative(store.path)}: schedule in the cluster with --store kube, "
            "or `peakscale promo export --store file -o manifests -n <namespace> | kubectl apply -f -`, "
            "or mount the file as the controller's --calendar (chart: calendar.fromConfigMap)",
            highlight=False,
            soft_wrap=True,
        )


def targets_report(store, *promos: Promo) -> None:
    """Which ScalingPolicies each promotion's selector matches (in the cluster: the policies of its
    namespace, by the controller's rule); none is a warning naming the tier labels that do exist
    (a selector that matches nothing raises nothing). A file store has no policies to match: the
    selector is only shown."""
    from autoscaler.adapters.store import KubeStore

    from autoscaler.core.resources import applies

    if not isinstance(store, KubeStore):
        if len(promos) > 1:
            for promo in promos[:MAX_REPORTED]:
                typer.echo(f"  {promo.name}: targets {format_selector(promo.spec.get('targets'))}")
        return
    try:
        policies = store.policies()
    except Exception as exc:  # noqa: BLE001 (the promotion is stored; this is advice)
        err_console.print(f"warning: could not list ScalingPolicies in {store.namespace} to check --targets ({failure_reason(exc)})", highlight=False, soft_wrap=True)
        return
    labels = sorted({f"{k}={v}" for p in policies for k, v in ((p.get("metadata") or {}).get("labels") or {}).items()})
    tiers = [label for label in labels if label.startswith("peakscale.io/tier=")] or labels
    for k, promo in enumerate(promos):
        if k == MAX_REPORTED:
            typer.echo(f"  ... and {len(promos) - MAX_REPORTED} more (peakscale promo list shows their targets)")
            break
        ns = promo.namespace or store.namespace or "default"
        selector = promo.parsed.targets
        matched = sorted(
            (p.get("metadata") or {}).get("name", "?") for p in policies if applies(selector, ns, (p.get("metadata") or {}).get("namespace", ns), (p.get("metadata") or {}).get("labels") or {})
        )
        lead = f"{promo.name}: " if len(promos) > 1 else ""
        if matched:
            typer.echo(f"{lead}targets {len(matched)} ScalingPolicy(ies) in {ns}: {', '.join(matched[:10])}{' ...' if len(matched) > 10 else ''}")
            continue
        there = f"labels there: {', '.join(tiers[:12])}" if tiers else f"there is no ScalingPolicy in {ns}"
        err_console.print(
            f"warning: {promo.name!r} selects no ScalingPolicy in {ns}: nothing will be raised for it ({there}); "
            f"fix with peakscale promo edit {promo.name} --targets peakscale.io/tier=<tier>",
            highlight=False,
            soft_wrap=True,
        )


#: an import reports the targets of this many promotions, one line each
MAX_REPORTED = 50


T = TypeVar("T")


def retrying(change: Callable[[], T], attempts: int = 3) -> T:
    """Run a read-modify-write of the store again when a promotion it read changed before its
    write (``StoreConflict``): each attempt reads afresh and reapplies the change, so no update is
    lost and none is made over another's."""
    for attempt in range(attempts):
        try:
            return change()
        except StoreConflict:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def read_promos(store, *, keep_invalid: bool = False) -> list[Promo]:
    """The store's promotions. One the API server holds but that does not make sense (an end
    that is not after its start: the CRD cannot say so) is left out with a one-line warning that
    names it, so the rest of the namespace keeps working; ``keep_invalid`` keeps it (to delete it)."""
    try:
        promos = store.promos()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 (any transport failure: one line, exit 1)
        raise CommandFailed(f"cannot read {store.describe()}: {failure_reason(exc)}") from None
    if keep_invalid:
        return promos
    out = []
    for promo in promos:
        problem = invalid_promo(promo)
        if problem is None:
            out.append(promo)
        else:
            warn_skipped(f"promotion {promo.name!r}", problem, f"fix it, or `peakscale promo delete {promo.name}`")
    return out


def invalid_promo(promo: Promo) -> str | None:
    """What makes a stored promotion unusable (None: nothing)."""
    from pydantic import ValidationError

    from autoscaler.errors import validation_problem

    try:
        promo.event()
    except ValidationError as exc:
        return validation_problem(exc.errors())[1]
    except (InputError, ValueError, TypeError) as exc:
        return str(exc)
    return None


def warn_skipped(what: str, problem: str, fix: str) -> None:
    err_console.print(f"warning: skipped {what}: {clip(printable(problem), 300)} ({fix})", highlight=False, soft_wrap=True)


def write_promos(store, promos: list[Promo], changed: list[str], deleted: list[str], created: list[str] | None = None) -> None:
    try:
        store.save(promos, changed=changed, deleted=deleted, created=created)
    except (InputError, StoreConflict):
        raise
    except Exception as exc:  # noqa: BLE001
        raise CommandFailed(f"cannot write {store.describe()}: {failure_reason(exc)}") from None


def failure_reason(exc: Exception) -> str:
    text = getattr(exc, "reason", None) or str(exc)
    if "Max retries" in str(exc) or "Connection refused" in str(exc):
        text = "connection refused (is the cluster reachable?)"
    return f"{type(exc).__name__}: {clip(str(text), 160)}"


def parse_time(text: str, zone_name: str, field: str) -> datetime:
    """A local time in ``zone_name`` (or with its own offset) -> aware datetime (1970-9000);
    ``MM-DD HH:MM`` without a year is its next occurrence ('11-11 20:00': the coming 11.11)."""
    from autoscaler.core.calendar import stamp

    zone = get_zone(zone_name, field="--tz")
    if not text.strip():
        raise InputError(field, "empty time", "give a time such as '11-11 20:00' or '2027-11-11 20:00'")
    coming = next_occurrence(text, zone, field=field)
    if coming is not None:
        return coming
    return stamp(text, zone, field)


def refuse_past(begin: datetime, allow_past: bool, field: str = "--start") -> None:
    """A start in the past is a mistake, unless a past promotion is recorded on purpose."""
    if not allow_past and begin < datetime.now(begin.tzinfo):
        raise InputError(field, f"{shown(begin, begin.tzinfo)} is in the past", "give a future time (MM-DD HH:MM is the next one), or --allow-past to record a past promotion (it teaches later ones)")


def parse_targets(text: str | None) -> dict | None:
    """``--targets`` as the CRD's selector: kubectl's ``-l`` syntax (``core.selectors``)."""

    return parse_selector(text, "--targets")


def _rfc3339(stamp: datetime) -> str:
    return stamp.isoformat(timespec="seconds")


def build_spec(
    *,
    start: str,
    end: str | None,
    duration: str | None,
    kind: str,
    tz: str,
    title: str | None,
    multiplier: float | None,
    expected_peak: float | None,
    like: list[str] | None,
    targets: str | None,
) -> dict[str, Any]:
    from autoscaler.core.calendar import MAX_PEAK

    begin = parse_time(start, tz, "--start")
    if end is not None and duration is None:
        finish = parse_time(end, tz, "--end")
    elif duration is not None and end is None:
        # elapsed time, not wall-clock time: 2h on a fall-back night is two hours, not three
        finish = (begin.astimezone(UTC) + timedelta(seconds=parse_duration_s(duration, field="--duration"))).astimezone(begin.tzinfo)
    else:
        raise InputError("--end", "give --end or --duration (one of them)", "e.g. --duration 4h")
    if finish <= begin:
        raise InputError("--end", f"{_rfc3339(finish)} is not after --start {_rfc3339(begin)}", "end after start, or use --duration")
    if multiplier is not None and expected_peak is not None:
        raise InputError("--multiplier", "give --multiplier or --expected-peak, not both", "one way of sizing the event")
    from autoscaler.core.calendar import MAX_MULTIPLIER

    if multiplier is not None and not (0 < multiplier <= MAX_MULTIPLIER):
        raise InputError("--multiplier", f"{multiplier:g} is outside (0, {MAX_MULTIPLIER:g}]", "the expected peak over the usual load, e.g. 3")
    if expected_peak is not None and not (math.isfinite(expected_peak) and 0 < expected_peak <= MAX_PEAK):
        raise InputError("--expected-peak", f"{expected_peak:g} is outside (0, {MAX_PEAK:g}]", "the expected peak of the policies' metric")
    spec: dict = {"start": _rfc3339(begin), "end": _rfc3339(finish), "kind": kind}
    if title:
        spec["title"] = title
    if multiplier is not None:
        spec["expectedMultiplier"] = multiplier
    if expected_peak is not None:
        spec["expectedPeak"] = expected_peak
    if like:
        spec["like"] = list(like)
    parsed = parse_targets(targets)
    if parsed:
        spec["targets"] = parsed
    return spec


def find_promo(promos: list[Promo], name: str) -> Promo:
    for p in promos:
        if p.name == name:
            return p
    raise InputError("NAME", f"no promotion named {name!r}", "see promo list")


def read_policies(st: KubeStore) -> list[dict]:
    try:
        return st.policies()
    except Exception as exc:  # noqa: BLE001 (any transport failure: one line, exit 1)
        raise CommandFailed(f"cannot read ScalingPolicies in namespace {st.namespace}: {failure_reason(exc)}") from None


def promo_status(st, promos: list[Promo], tz: str, now_s: float, *, shown_local: bool) -> dict[tuple[str | None, str], dict]:
    """Each promotion's phase now and when the controller first raises for it, by the rules the
    controller writes into the PromotionEvent's status (``windows.event_span``, ``windows.event_phase``),
    from the policies it applies to; a file store has no policies, so its phases follow the
    promotion's own times and its raise time is unknown."""
    from autoscaler.adapters.store import KubeStore
    from autoscaler.core.windows import action_offsets, event_phase, event_span
    from autoscaler.core.resources import applies

    docs = []
    if isinstance(st, KubeStore):
        from autoscaler.adapters.inputs import policies_of

        listed = read_policies(st)
        docs = policies_of(listed, skipped=[]) if listed else []
    utc = get_zone("UTC")
    zone = get_zone(tz, field="--tz") if shown_local else utc
    out = {}
    for p in promos:
        event = p.event(UTC)
        offsets = [action_offsets(d.spec.cycle_policy(DEFAULT_INTERVAL_S)) for d in docs if applies(p.parsed.targets, p.namespace, d.namespace, d.labels)]
        opens, closes = event_span(event, offsets)
        entry: dict = {"phase": event_phase(now_s, opens, event.start_s, event.end_s, closes, pending=False)}
        if offsets:
            entry["raiseAt"] = shown(aware(opens, utc), zone)
        out[(p.namespace, p.name)] = entry
    return out


#: the controller's default --interval (the raise time is the cycle before the window opens)
DEFAULT_INTERVAL_S = 30
