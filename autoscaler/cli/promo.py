"""``peakscale promo``: schedule, review and change promotions in a calendar file or the cluster.

Local times are read in ``--tz`` (default Asia/Shanghai) and printed back with their offset, so
nobody schedules 11.11 in the wrong zone. Every change is checked whole (times, sizes, names,
``like`` references) before the store is written; on bad input the store is left as it was.
Exit codes: 0 ok, 1 failed operation (store unreachable), 2 bad input.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table

from autoscaler.adapters import yamlsafe
from autoscaler.core.calendar import MAX_PEAK, stamp
from autoscaler.core.durations import format_duration, parse_duration_s
from autoscaler.errors import InputError, clip
from autoscaler.adapters.store import FileStore, KubeStore, Promo, check_references, overlapping, overlaps, validate_promo
from autoscaler.core.timezones import get_zone, next_occurrence, parse_aware, shown

promo_app = typer.Typer(help="Schedule and review promotions (the calendar peakscale pre-scales for).", no_args_is_help=True, rich_markup_mode=None)
err = Console(stderr=True)

StoreOpt = Annotated[
    str,
    typer.Option(
        "--store",
        help="Where promotions live: kube (PromotionEvent resources: what the controller reads), file (a YAML calendar), or auto: kube when a kubeconfig context or in-cluster config is found (as kubectl finds them) and no --calendar is given, else file.",
    ),
]
CalendarOpt = Annotated[
    Optional[Path], typer.Option("--calendar", envvar="PEAKSCALE_CALENDAR", help="Calendar file for --store file (default ~/.config/peakscale/calendar.yaml).")
]
KubeconfigOpt = Annotated[Optional[Path], typer.Option("--kubeconfig", help="Kubeconfig for --store kube (default: in-cluster, else ~/.kube/config).")]
ContextOpt = Annotated[Optional[str], typer.Option("--context", help="Kubeconfig context for --store kube.")]
AllowPastOpt = Annotated[bool, typer.Option("--allow-past", help="Accept a start in the past: record a past promotion, so that it teaches later ones of its kind.")]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the PromotionEvents for --store kube.")]
TzOpt = Annotated[str, typer.Option("--tz", help="Zone of local times given and shown (IANA name). Default Asia/Shanghai: promotions are scheduled on the operators' wall clock; shown times carry their UTC offset.")]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="table, json or yaml.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")]


class Failed(Exception):
    """An operation failed for a reason outside the input (exit 1)."""


def _fail(error: Exception) -> None:
    err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(2 if isinstance(error, InputError) else 1)


def open_store(store: str, calendar: Path | None, kubeconfig: Path | None, context: str | None, namespace: str):
    """The store ``--store`` names; ``auto`` is the cluster when one is configured (and no
    ``--calendar`` is given), else the calendar file."""
    if store not in ("auto", "kube", "file"):
        raise InputError("--store", f"unknown store {store!r}", "use auto, kube or file")
    if store == "auto":
        store = "kube" if calendar is None and (kubeconfig is not None or context is not None or cluster_configured()) else "file"
    if store == "file":
        return FileStore(calendar or default_calendar())
    from autoscaler.adapters.kube import api_client

    api = api_client(str(kubeconfig) if kubeconfig is not None else None, context)
    return KubeStore(api, namespace, where=_context_name(kubeconfig, context))


def default_calendar() -> Path:
    """``$XDG_CONFIG_HOME/peakscale/calendar.yaml`` (``~/.config/...``): not whatever folder one stands in."""
    import os

    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "peakscale" / "calendar.yaml"


def cluster_configured() -> bool:
    """Whether kubectl would find a cluster: in-cluster credentials, or a kubeconfig (``$KUBECONFIG``
    or ``~/.kube/config``) with a current context."""
    import os

    if os.environ.get("KUBERNETES_SERVICE_HOST") and Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists():
        return True
    return _context_name(None, None) is not None


def _context_name(kubeconfig: Path | None, context: str | None) -> str | None:
    """The kubeconfig context a client would use (None: no kubeconfig, or no current context)."""
    import os

    if context:
        return context
    paths = [str(kubeconfig)] if kubeconfig is not None else [p for p in (os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")).split(os.pathsep) if p]
    for path in paths:
        try:
            doc = yamlsafe.read(Path(path), path)
        except (InputError, OSError):
            continue
        if isinstance(doc, dict) and doc.get("current-context"):
            return str(doc["current-context"])
    return None


def where_stored(store, name: str) -> str:
    """Where a write went, and for a file, how to get it to the controller."""
    if isinstance(store, KubeStore):
        return f"PromotionEvent {store.namespace}/{name}" + (f" in context {store.where}" if store.where else "")
    return f"{_home(store.path)}"


def _home(path: Path) -> str:
    try:
        return "~/" + str(Path(path).expanduser().resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def file_note(store) -> None:
    """After a write to a file: the controller reads PromotionEvents (or its --calendar), not this."""
    if isinstance(store, FileStore):
        err.print(
            f"note: the controller does not read {_home(store.path)}: schedule in the cluster with --store kube, "
            "or `peakscale promo export --store file -o manifests -n <namespace> | kubectl apply -f -`, "
            "or mount the file as the controller's --calendar (chart: calendar.fromConfigMap)",
            highlight=False,
            soft_wrap=True,
        )


def _targets_report(store, promo: Promo) -> None:
    """In the cluster: which ScalingPolicies the promotion's selector matches; none is a warning
    naming the tier labels that do exist (a selector that matches nothing raises nothing)."""
    if not isinstance(store, KubeStore):
        return
    try:
        policies = store.policies()
    except Exception as exc:  # noqa: BLE001 (the promotion is stored; this is advice)
        err.print(f"warning: could not list ScalingPolicies in {store.namespace} to check --targets ({_reason(exc)})", highlight=False, soft_wrap=True)
        return
    selector = promo.parsed.targets
    matched = sorted(((p.get("metadata") or {}).get("name", "?") for p in policies if selector.matches((p.get("metadata") or {}).get("labels") or {})))
    if matched:
        typer.echo(f"targets {len(matched)} ScalingPolicy(ies) in {store.namespace}: {', '.join(matched[:10])}{' ...' if len(matched) > 10 else ''}")
        return
    labels = sorted({f"{k}={v}" for p in policies for k, v in ((p.get("metadata") or {}).get("labels") or {}).items()})
    tiers = [label for label in labels if label.startswith("peakscale.io/tier=")] or labels
    there = f"labels there: {', '.join(tiers[:12])}" if tiers else f"there is no ScalingPolicy in {store.namespace}"
    err.print(
        f"warning: {promo.name!r} selects no ScalingPolicy in {store.namespace}: nothing will be raised for it ({there}); "
        f"fix with peakscale promo edit {promo.name} --targets peakscale.io/tier=<tier>",
        highlight=False,
        soft_wrap=True,
    )


def _read(store) -> list[Promo]:
    try:
        return store.list()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 (any transport failure: one line, exit 1)
        raise Failed(f"cannot read {store.describe()}: {_reason(exc)}") from None


def _write(store, promos: list[Promo], changed: list[str], deleted: list[str], created: list[str] | None = None) -> None:
    try:
        store.save(promos, changed=changed, deleted=deleted, created=created)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise Failed(f"cannot write {store.describe()}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    text = getattr(exc, "reason", None) or str(exc)
    if "Max retries" in str(exc) or "Connection refused" in str(exc):
        text = "connection refused (is the cluster reachable?)"
    return f"{type(exc).__name__}: {clip(str(text), 160)}"


def parse_time(text: str, zone_name: str, field: str) -> datetime:
    """A local time in ``zone_name`` (or with its own offset) -> aware datetime (1970-9000);
    ``MM-DD HH:MM`` without a year is its next occurrence ('11-11 20:00': the coming 11.11)."""
    zone = get_zone(zone_name)
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


_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def parse_targets(text: str | None) -> dict | None:
    """``key=value,...`` as a matchLabels selector; keys and values as Kubernetes spells labels."""
    if not text:
        return None
    fix = "use key=value pairs of Kubernetes labels, e.g. peakscale.io/tier=cache,app=live"
    labels: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        prefix, slash, name = key.rpartition("/")
        ok_key = bool(_LABEL_NAME.fullmatch(name)) and len(name) <= 63 and (not slash or (_LABEL_PREFIX.fullmatch(prefix) is not None and len(prefix) <= 253))
        if not sep or not ok_key:
            raise InputError("--targets", f"cannot read {part.strip()!r} as a label", fix)
        if value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
            raise InputError("--targets", f"{value!r} is not a label value", "at most 63 letters, digits, '-', '_' or '.'")
        if key in labels:
            raise InputError("--targets", f"label {key!r} is given twice", "give each label once")
        labels[key] = value
    return {"matchLabels": labels}


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
) -> dict:
    begin = parse_time(start, tz, "--start")
    if (end is None) == (duration is None):
        raise InputError("--end", "give --end or --duration (one of them)", "e.g. --duration 4h")
    if duration is not None:
        finish = begin + timedelta(seconds=parse_duration_s(duration, field="--duration"))
    else:
        finish = parse_time(end, tz, "--end")
    if finish <= begin:
        raise InputError("--end", f"{_rfc3339(finish)} is not after --start {_rfc3339(begin)}", "end after start, or use --duration")
    if multiplier is not None and expected_peak is not None:
        raise InputError("--multiplier", "give --multiplier or --expected-peak, not both", "one way of sizing the event")
    if multiplier is not None and not (0 < multiplier <= 1000):
        raise InputError("--multiplier", f"{multiplier:g} is outside (0, 1000]", "the expected peak over the usual load, e.g. 3")
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


def _shown(promo: Promo, tz: str) -> dict:
    zone = get_zone(tz)
    spec = promo.parsed
    return {
        "name": promo.name,
        "title": spec.title,
        "kind": spec.kind,
        "start": shown(spec.start, zone),
        "end": shown(spec.end, zone),
        "duration": format_duration((spec.end - spec.start).total_seconds()),
        "size": f"x{spec.expected_multiplier:g}" if spec.expected_multiplier else (f"peak {spec.expected_peak:g}" if spec.expected_peak else "-"),
        "like": ",".join(spec.like) or "-",
        "targets": ",".join(f"{k}={v}" for k, v in spec.targets.match_labels.items()) or "all",
    }


def _emit(promos: list[Promo], output: str, tz: str, title: str) -> None:
    if output == "json":
        typer.echo(json.dumps([p.as_entry() for p in promos], indent=2))
    elif output == "yaml":
        typer.echo(yaml.safe_dump({"events": [p.as_entry() for p in promos]}, sort_keys=False).rstrip())
    elif output == "table":
        console = Console() if Console().is_terminal else Console(width=160, no_color=True)
        table = Table(title=title, title_justify="left")
        for col in ("name", "kind", "start", "end", "duration", "size", "like", "targets", "title"):
            table.add_column(col)
        for p in promos:
            row = _shown(p, tz)
            table.add_row(*(row[c] for c in ("name", "kind", "start", "end", "duration", "size", "like", "targets", "title")))
        console.print(table)
    else:
        raise InputError("--output", f"unknown format {output!r}", "use table, json or yaml")


def _check_output(output: str, allowed=("table", "json", "yaml")) -> None:
    if output not in allowed:
        raise InputError("--output", f"unknown format {output!r}", f"use {', '.join(allowed)}")


def _warn_overlaps(promos: list[Promo], promo: Promo) -> None:
    clash = overlaps(promos, promo)
    if clash:
        _say_overlap(promo, clash)


def _say_overlap(promo: Promo, clash: list[str]) -> None:
    if clash:
        err.print(
            f"warning: {promo.name!r} overlaps {', '.join(map(repr, clash))} of the same kind on the same targets "
            "(kept: they will be planned together)",
            highlight=False,
            soft_wrap=True,
        )


@promo_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Unique name (lowercase, digits, '-'), e.g. kol-live-1111.")],
    start: Annotated[str, typer.Option(help="Start, local time in --tz (e.g. '2026-11-11 20:00') or with an offset.")],
    kind: Annotated[str, typer.Option(help="Kind; events of one kind teach each other (double11, kol-live, flash-sale).")],
    end: Annotated[Optional[str], typer.Option(help="End, like --start.")] = None,
    duration: Annotated[Optional[str], typer.Option(help="Length instead of --end, e.g. 4h or 90m.")] = None,
    tz: TzOpt = "Asia/Shanghai",
    title: Annotated[Optional[str], typer.Option(help="Human title shown in plans and Events.")] = None,
    multiplier: Annotated[Optional[float], typer.Option(help="Expected peak over the usual load, (0, 1000].")] = None,
    expected_peak: Annotated[Optional[float], typer.Option(help="Expected peak as an absolute value of the metric.")] = None,
    like: Annotated[Optional[list[str]], typer.Option(help="Past promotion whose shape to reuse (repeatable).")] = None,
    targets: Annotated[Optional[str], typer.Option(help="Label selector over ScalingPolicies, e.g. peakscale.io/tier=cache (default: every policy in the namespace).")] = None,
    allow_past: AllowPastOpt = False,
    store: StoreOpt = "auto",
    calendar: CalendarOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = "default",
    quiet: QuietOpt = False,
) -> None:
    """Schedule a promotion: when, how big, which tiers.

    A promotion says when and how big. How early capacity must be asked for (the warm-up: pod
    start, cache fill, resharding) is the tier's lead time: spec.leadTime of its ScalingPolicy,
    set in the stack config as scaling.leadTime; it is not an option here. --targets selects
    ScalingPolicies by label (the stacks label them peakscale.io/tier=cache|edge|database); in the
    cluster, the policies it matches are listed, and none is a warning. Times are local in --tz
    and printed back with their offset; MM-DD HH:MM is the next such date; a start in the past
    needs --allow-past. With --store auto (the default) the promotion goes to the cluster when a
    kubeconfig context is found, else to ~/.config/peakscale/calendar.yaml; the command says where.

    Examples:

    peakscale promo add kol-live-1111 --start '11-11 20:00' --duration 3h --kind kol-live --multiplier 6 --targets peakscale.io/tier=edge -n live

    peakscale promo add double11-redis --start '11-11 20:00' --duration 4h --kind double11 --multiplier 8 --title '11.11 KOL live' --targets peakscale.io/tier=cache --store kube -n live
    """
    try:
        st = open_store(store, calendar, kubeconfig, context, namespace)
        spec = build_spec(start=start, end=end, duration=duration, kind=kind, tz=tz, title=title, multiplier=multiplier, expected_peak=expected_peak, like=like, targets=targets)
        promo = validate_promo(Promo(name=name, spec=spec))
        refuse_past(promo.parsed.start, allow_past)
        promos = _read(st)
        if any(p.name == name for p in promos):
            raise InputError("NAME", f"a promotion named {name!r} already exists", "pick another name, or use promo edit")
        updated = promos + [promo]
        check_references(updated)
        _warn_overlaps(promos, promo)
        _write(st, updated, changed=[name], deleted=[], created=[name])
    except (InputError, Failed) as error:
        _fail(error)
    if not quiet:
        row = _shown(promo, tz)
        typer.echo(f"stored {where_stored(st, name)}: {row['kind']}, {row['start']} -> {row['end']} ({row['duration']}), size {row['size']}, targets {row['targets']}")
    _targets_report(st, promo)
    file_note(st)


@promo_app.command("list")
def list_(
    tz: TzOpt = "Asia/Shanghai",
    output: OutputOpt = "table",
    store: StoreOpt = "auto",
    calendar: CalendarOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = "default",
) -> None:
    """List the promotions, earliest first, times in --tz.

    Examples:

    peakscale promo list

    peakscale promo list -o json --store kube -n live
    """
    try:
        _check_output(output)
        get_zone(tz)
        st = open_store(store, calendar, kubeconfig, context, namespace)
        promos = sorted(_read(st), key=lambda p: (p.parsed.start, p.name))
        _emit(promos, output, tz, f"{len(promos)} promotion(s) in {st.describe()} (times in {tz})")
    except (InputError, Failed) as error:
        _fail(error)


def _find(promos: list[Promo], name: str) -> Promo:
    for p in promos:
        if p.name == name:
            return p
    raise InputError("NAME", f"no promotion named {name!r}", "see promo list")


@promo_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The promotion's name.")],
    tz: TzOpt = "Asia/Shanghai",
    output: OutputOpt = "table",
    store: StoreOpt = "auto",
    calendar: CalendarOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = "default",
) -> None:
    """Show one promotion.

    Example:

    peakscale promo show kol-live-1111 -o yaml
    """
    try:
        _check_output(output)
        get_zone(tz)
        st = open_store(store, calendar, kubeconfig, context, namespace)
        promo = _find(_read(st), name)
        if output == "json":
            typer.echo(json.dumps(promo.as_entry(), indent=2))
        elif output == "yaml":
            typer.echo(yaml.safe_dump(promo.as_entry(), sort_keys=False).rstrip())
        else:
            for key, value in _shown(promo, tz).items():
                typer.echo(f"{key:>9}: {value}")
    except (InputError, Failed) as error:
        _fail(error)


@promo_app.command("edit")
def edit(
    name: Annotated[str, typer.Argument(help="The promotion's name.")],
    start: Annotated[Optional[str], typer.Option(help="New start (local time in --tz).")] = None,
    end: Annotated[Optional[str], typer.Option(help="New end.")] = None,
    duration: Annotated[Optional[str], typer.Option(help="New length, from the (new) start.")] = None,
    kind: Annotated[Optional[str], typer.Option(help="New kind.")] = None,
    tz: TzOpt = "Asia/Shanghai",
    title: Annotated[Optional[str], typer.Option(help="New title.")] = None,
    multiplier: Annotated[Optional[float], typer.Option(help="New expected multiplier (replaces --expected-peak).")] = None,
    expected_peak: Annotated[Optional[float], typer.Option(help="New expected peak (replaces --multiplier).")] = None,
    like: Annotated[Optional[list[str]], typer.Option(help="New list of past promotions to reuse.")] = None,
    targets: Annotated[Optional[str], typer.Option(help="New label selector, e.g. peakscale.io/tier=cache.")] = None,
    allow_past: AllowPastOpt = False,
    store: StoreOpt = "auto",
    calendar: CalendarOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = "default",
    quiet: QuietOpt = False,
) -> None:
    """Change fields of a promotion; the others stay.

    Examples:

    peakscale promo edit kol-live-1111 --duration 4h

    peakscale promo edit kol-live-1111 --multiplier 8 --tz Asia/Shanghai
    """
    try:
        st = open_store(store, calendar, kubeconfig, context, namespace)
        promos = _read(st)
        current = _find(promos, name)
        old = current.parsed
        zone = get_zone(tz)
        spec = build_spec(
            start=start or old.start.astimezone(zone).isoformat(),
            end=None if duration is not None else (end or old.end.astimezone(zone).isoformat()),
            duration=duration,
            kind=kind or old.kind,
            tz=tz,
            title=title if title is not None else (old.title or None),
            multiplier=multiplier if multiplier is not None else (None if expected_peak is not None else old.expected_multiplier),
            expected_peak=expected_peak if expected_peak is not None else (None if multiplier is not None else old.expected_peak),
            like=like if like is not None else list(old.like),
            targets=targets if targets is not None else ",".join(f"{k}={v}" for k, v in old.targets.match_labels.items()) or None,
        )
        promo = validate_promo(Promo(name=name, spec=spec, memory=current.memory))
        if start is not None:
            refuse_past(promo.parsed.start, allow_past)
        updated = [promo if p.name == name else p for p in promos]
        check_references(updated)
        _warn_overlaps(promos, promo)
        _write(st, updated, changed=[name], deleted=[])
    except (InputError, Failed) as error:
        _fail(error)
    if not quiet:
        row = _shown(promo, tz)
        typer.echo(f"updated {where_stored(st, name)}: {row['start']} -> {row['end']} ({row['duration']}), size {row['size']}, targets {row['targets']}")
    _targets_report(st, promo)
    file_note(st)


@promo_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="The promotion's name.")],
    store: StoreOpt = "auto",
    calendar: CalendarOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = "default",
    quiet: QuietOpt = False,
) -> None:
    """Delete a promotion (refused while another one names it in --like).

    Example:

    peakscale promo delete kol-live-1111
    """
    try:
        st = open_store(store, calendar, kubeconfig, context, namespace)
        promos = _read(st)
        _find(promos, name)
        rest = [p for p in promos if p.name != name]
        users = [p.name for p in rest if name in (p.spec.get("like") or [])]
        if users:
            raise InputError("NAME", f"{name!r} is named in --like of {', '.join(map(repr, users))}", "edit those first")
        _write(st, rest, changed=[], deleted=[name])
    except (InputError, Failed) as error:
        _fail(error)
    if not quiet:
        typer.echo(f"deleted {where_stored(st, name)}")


def _import_rows(path: Path, tz: str | None) -> list[Promo]:
    """Promotions from a YAML calendar or a CSV (names become object names); all or nothing, the
    row at fault named."""
    from autoscaler.core.calendar import read_entries
    from autoscaler.adapters.calendar_files import csv_entries
    from autoscaler.adapters.trace_files import open_text

    label = path.name
    zone = get_zone(tz) if tz else None
    name = path.name.removesuffix(".gz")
    if name.endswith((".yaml", ".yml")):
        entries = read_entries(yamlsafe.read(path, label), zone, label)
    elif name.endswith(".csv"):
        try:
            with open_text(path) as handle:
                entries = csv_entries(handle, label, zone, slug_names=True)
        except OSError as exc:
            raise InputError("FILE", f"cannot read {str(path)!r} ({exc.strerror or exc})", "give a YAML or CSV calendar") from None
    elif not path.exists():
        raise InputError("FILE", f"no such file {str(path)!r}", "give a YAML or CSV calendar")
    else:
        raise InputError("FILE", f"unknown format {path.name!r}", "use a .yaml, .yml or .csv file")
    promos = []
    for e in entries:
        memory = tuple(m.model_dump(by_alias=True) for m in e.memory)
        try:
            promos.append(validate_promo(Promo(name=e.name, spec=e.spec, memory=memory)))
        except InputError as exc:
            raise InputError(e.where, f"{exc.where}: {exc.problem}", exc.fix) from None
    return promos


@promo_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A YAML calendar or a CSV with columns start,end,name,kind.")],
    tz: Annotated[Optional[str], typer.Option("--tz", help="Zone of naive times in the file (a YAML 'timezone:' key wins).")] = None,
    allow_past: AllowPastOpt = False,
    store: StoreOpt = "auto",
    calendar: CalendarOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = "default",
    quiet: QuietOpt = False,
) -> None:
    """Import promotions: all of them, or none (the row at fault is named).

    Examples:

    peakscale promo import promos.csv --tz Asia/Shanghai

    peakscale promo export > backup.yaml && peakscale promo import backup.yaml --allow-past --store kube -n live
    """
    try:
        if tz is not None:
            get_zone(tz)
        st = open_store(store, calendar, kubeconfig, context, namespace)
        incoming = _import_rows(file, tz)
        if not allow_past:
            for promo in incoming:
                try:
                    refuse_past(promo.parsed.start, False, field=f"{file.name} {promo.name!r} start")
                except InputError as exc:
                    raise InputError(exc.where, exc.problem, "--allow-past imports past promotions (they teach later ones), or remove them") from None
        promos = _read(st)
        clash = sorted({p.name for p in incoming} & {p.name for p in promos})
        if clash:
            raise InputError("NAME", f"already in the store: {', '.join(map(repr, clash[:5]))}", "delete or rename them first")
        updated = promos + incoming
        check_references(updated)
        clashes = overlapping(updated, [p.name for p in incoming])
        said = [p for p in incoming if clashes.get(p.name)]
        for promo in said[:10]:
            _say_overlap(promo, clashes[promo.name])
        if len(said) > 10:
            err.print(f"warning: {len(said) - 10} more imported promotions overlap others of their kind on the same targets (kept)", highlight=False)
        _write(st, updated, changed=[p.name for p in incoming], deleted=[], created=[p.name for p in incoming])
    except (InputError, Failed) as error:
        _fail(error)
    if not quiet:
        typer.echo(f"imported {len(incoming)} promotion(s) into {st.describe() if isinstance(st, KubeStore) else _home(st.path)}")
    file_note(st)


@promo_app.command("review")
def review(
    name: Annotated[str, typer.Argument(help="The promotion to review (it should be over).")],
    trace: Annotated[Optional[Path], typer.Option(help="Offline: the demand history as a timestamp,value CSV (read like a backtest's).")] = None,
    trace_tz: Annotated[str, typer.Option(help="Zone of the trace's naive timestamps.")] = "UTC",
    prometheus_url: Annotated[Optional[str], typer.Option(help="Prometheus to read each policy's history from.")] = None,
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
    namespace: NamespaceOpt = "default",
) -> None:
    """After a promotion: per targeted policy, what was planned and when it was ready, forecast vs observed peak, the minutes demand exceeded ready capacity, and what was recorded into memory.

    The controller's own cycles are replayed around the promotion from the history (Prometheus, or --trace offline), so the review shows what the controller decided. The memory is what later promotions of the kind (or naming this one in --like) learn from once Prometheus has forgotten the samples: the controller records it into the PromotionEvent's status; --record stores it in a calendar file.

    Examples:

    peakscale promo review double11-2026 --store kube -n live --prometheus-url http://prometheus:9090

    peakscale promo review flash-0618 --trace traffic.csv --policies policies.yaml --record -o json
    """
    import time as _time

    from autoscaler.core.durations import parse_duration_s
    from autoscaler.adapters.inputs import HistoryUnavailable, load_policies, policies_of, prometheus_history, trace_history
    from autoscaler.core.schedule import PolicyInput
    from autoscaler.core.review import Review, recorded_profile, review_policy
    from autoscaler.core.timezones import aware, wall_seconds

    try:
        _check_output(output)
        show_zone = get_zone(tz)
        if (trace is None) == (prometheus_url is None):
            raise InputError("--trace", "give --trace FILE or --prometheus-url URL (one of them)", "e.g. --trace traffic.csv")
        interval_s = parse_duration_s(interval, field="--interval")
        clock_zone = get_zone(trace_tz if trace is not None else "UTC")
        st = open_store(store, calendar, kubeconfig, context, namespace)
        promos = _read(st)
        promo = _find(promos, name)
        events = [p.event(clock_zone) for p in promos]
        selectors = {p.name: p.parsed.targets for p in promos}
        if policies is None and isinstance(st, KubeStore):
            docs = policies_of(_read_policies(st), policy)
        else:
            docs = load_policies(policies, only=policy, capacity_per_replica=capacity_per_replica, lead_time=lead_time, min_replicas=min_replicas, max_replicas=max_replicas)
        targeted = [d for d in docs if selectors[name].matches(d.labels)]
        if not targeted:
            known = sorted({f"{k}={v}" for d in docs for k, v in d.labels.items()})
            raise InputError("NAME", f"{name!r} selects no ScalingPolicy", f"its targets must match a policy's labels; labels present: {', '.join(known) or 'none'}")
        event = next(e for e in events if e.name == name)

        def fmt(seconds: float) -> str:
            return shown(aware(seconds, clock_zone), show_zone)

        reviews, profiles = [], []
        for doc in targeted:
            entry = PolicyInput(doc.name, doc.namespace, doc.labels, doc.spec, lambda ev, labels=doc.labels: selectors[ev].matches(labels) if ev in selectors else True)
            if trace is not None:
                times, values, _, _ = trace_history(trace, clock_zone)
            else:
                now_s = _time.time()
                reach = int(now_s - event.start_s) + 2 * 86400 + doc.spec.forecast_settings().history_s
                times, values = prometheus_history(prometheus_url, doc, now_s=now_s, history_s=reach)
            reviews.append(review_policy(entry, times, values, events, name, interval_s=interval_s, fmt=fmt))
            if record:
                profiles.append(recorded_profile(entry, times, values, events, name, interval_s=interval_s))
        result = Review(
            event=name, title=promo.parsed.title, kind=promo.parsed.kind, start=fmt(event.start_s), end=fmt(event.end_s), tz=tz, policies=reviews
        )
        if record:
            kept = [m for m in promo.memory if m.get("policy") not in {p.policy for p in profiles if p is not None}]
            memory = tuple(kept + [p.model_dump(by_alias=True) for p in profiles if p is not None])
            updated = [Promo(name=p.name, spec=p.spec, memory=memory) if p.name == name else p for p in promos]
            _write(st, updated, changed=[name], deleted=[])
    except (InputError, Failed) as error:
        _fail(error)
    except HistoryUnavailable as error:
        _fail(Failed(str(error)))
    if output == "json":
        typer.echo(result.model_dump_json(indent=2))
        return
    if output == "yaml":
        typer.echo(yaml.safe_dump(result.model_dump(), sort_keys=False, allow_unicode=True).rstrip())
        return
    console = Console() if Console().is_terminal else Console(width=160, no_color=True)
    table = Table(title=f"review of {name!r} ({result.kind}): {result.start} -> {result.end}", title_justify="left")
    for col in ("policy", "target", "ready at start", "planned peak", "asked -> ready", "forecast peak", "observed peak", "short", "memory"):
        table.add_column(col)
    for r in reviews:
        memory = "-"
        if r.recorded is not None:
            memory = f"x{r.recorded.peak_uplift:g} at {r.recorded.minutes_to_peak:+g} min ({r.recorded.points} pts{', stored' if r.recorded.stored else ''})"
        table.add_row(
            r.policy, f"{r.target} ({r.mode})", str(r.ready_at_start if r.ready_at_start is not None else "-"), str(r.planned_peak if r.planned_peak is not None else "-"),
            f"{r.asked_at or '-'} -> {r.ready_at or '-'}", f"{r.forecast_peak:,.0f}" if r.forecast_peak is not None else "-",
            f"{r.observed_peak:,.0f}" if r.observed_peak is not None else "-", f"{r.short_minutes:g} min" + (f" ({r.missing_minutes:g} min no data)" if r.missing_minutes else ""), memory,
        )  # fmt: skip
    console.print(table)
    if record:
        console.print(f"recorded into {st.describe()}: later promotions of kind {result.kind!r} learn from it", highlight=False)


def _read_policies(st: KubeStore) -> list[dict]:
    try:
        return st.policies()
    except Exception as exc:  # noqa: BLE001 (any transport failure: one line, exit 1)
        raise Failed(f"cannot read ScalingPolicies in namespace {st.namespace}: {_reason(exc)}") from None


@promo_app.command("export")
def export(
    output: Annotated[str, typer.Option("--output", "-o", help="yaml or json (a calendar promo import reads back), or manifests (PromotionEvents for kubectl apply).")] = "yaml",
    store: StoreOpt = "auto",
    calendar: CalendarOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = "default",
) -> None:
    """Print every promotion as a calendar that promo import reads back (yaml or json), or as
    PromotionEvent manifests for kubectl (-o manifests, in the namespace of -n).

    Examples:

    peakscale promo export > calendar-backup.yaml

    peakscale promo export --store file -o manifests -n live | kubectl apply -f -
    """
    try:
        _check_output(output, ("yaml", "json", "manifests"))
        st = open_store(store, calendar, kubeconfig, context, namespace)
        promos = sorted(_read(st), key=lambda p: (p.parsed.start, p.name))
        if output == "manifests":
            from autoscaler.core.resources import GROUP, VERSION

            docs = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "PromotionEvent", "metadata": {"name": p.name, "namespace": namespace}, "spec": p.spec} for p in promos]
            typer.echo(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True).rstrip())
            return
        _emit(promos, output, "UTC", "")
    except (InputError, Failed) as error:
        _fail(error)
