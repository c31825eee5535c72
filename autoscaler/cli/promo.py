"""``peakscale promo``: schedule, review and change promotions in a calendar file or the cluster.

Local times are read in ``--tz`` (default Asia/Shanghai) and printed back with their offset, so
nobody schedules 11.11 in the wrong zone. Every change is checked whole (times, sizes, names,
``like`` references) before the store is written; on bad input the store is left as it was.
Exit codes: 0 ok, 1 failed operation (store unreachable), 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from autoscaler.cli.app import app
from autoscaler.cli.output import as_options, echo_doc, check_output, err_console, table_console
from autoscaler.cli.promo_store import (
    promo_status,
    AllNamespacesOpt,
    retrying,
    AllowPastOpt,
    CalendarOpt,
    ContextOpt,
    KubeconfigOpt,
    NamespaceOpt,
    OutputOpt,
    QuietOpt,
    StoreOpt,
    TzOpt,
    build_spec,
    file_note,
    find_promo,
    home_relative,
    namespace_of,
    open_store,
    read_promos,
    refuse_past,
    targets_report,
    where_stored,
    write_promos,
)
from autoscaler.core.timezones import get_zone, shown
from autoscaler.core.durations import format_duration
from autoscaler.core.selectors import format_selector
from autoscaler.errors import InputError

if TYPE_CHECKING:
    from autoscaler.adapters.store import Promo

promo_app = typer.Typer(help="Schedule and review promotions (the calendar peakscale pre-scales for).", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(promo_app, name="promo")


def _shown(promo: Promo, tz: str) -> dict:
    zone = get_zone(tz, field="--tz")
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
        "targets": format_selector(promo.spec.get("targets")),
    }


def _kept_targets(promo: Promo) -> str | None:
    text = format_selector(promo.spec.get("targets"))
    return None if text == "all" else text


def _emit(promos: list[Promo], output: str, tz: str, title: str, *, source: str = "", status: dict[tuple[str | None, str], dict] | None = None) -> None:
    """A list of promotions: a table for people; for scripts one shape in JSON and YAML,
    ``{source, events: [...]}``, each event as a calendar entry with its ``status`` (phase, raiseAt)
    when known (``promo export`` writes what ``promo import`` reads back)."""
    from rich.table import Table

    status = status or {}
    if output in ("json", "yaml"):
        events = [{**p.as_entry(), **({"namespace": p.namespace} if p.namespace else {}), **({"status": status[(p.namespace, p.name)]} if (p.namespace, p.name) in status else {})} for p in promos]
        doc = {"source": source, "events": events}
        echo_doc(doc, output)
    elif output == "table":
        console = table_console(160)
        table = Table(title=title, title_justify="left")
        many = len({p.namespace for p in promos}) > 1
        cols = (("namespace",) if many else ()) + ("name", "phase", "raise at", "kind", "start", "end", "duration", "size", "like", "targets", "title")
        for col in cols:
            table.add_column(col)
        for p in promos:
            row = _shown(p, tz)
            known = status.get((p.namespace, p.name), {})
            row.update(namespace=p.namespace or "-", phase=known.get("phase", "-"), **{"raise at": known.get("raiseAt", "-")})
            table.add_row(*(row[c] for c in cols))
        console.print(table)
    else:
        raise InputError("--output", f"unknown format {output!r}", "use table, json or yaml")


def _validated(promo: Promo) -> Promo:
    """``store.validate_promo``, its refusal naming the option that gave the field."""
    from autoscaler.adapters.store import validate_promo

    try:
        return validate_promo(promo)
    except InputError as exc:
        raise _as_flags(exc, promo.name) from None


def _check_references(promos: list[Promo], name: str) -> None:
    """``store.check_references`` after promotion ``name`` was added or changed, naming its options."""
    from autoscaler.adapters.store import check_references

    try:
        check_references(promos)
    except InputError as exc:
        raise _as_flags(exc, name) from None


def _as_flags(exc: InputError, name: str) -> InputError:
    """The store names the fields of promotion ``name``; ``add`` and ``edit`` took them from options."""
    return as_options(exc, {f"promotion {name!r} like": "--like", f"promotion {name!r}": "NAME"})


def _warn_overlaps(promos: list[Promo], promo: Promo) -> None:
    from autoscaler.adapters.store import overlaps

    clash = overlaps(promos, promo)
    if clash:
        _say_overlap(promo, clash)


def _say_overlap(promo: Promo, clash: list[str]) -> None:
    if clash:
        err_console.print(
            f"warning: {promo.name!r} overlaps {', '.join(map(repr, clash))} of the same kind on the same targets (kept: they will be planned together)",
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
    namespace: NamespaceOpt = None,
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
    from autoscaler.adapters.store import Promo

    st = open_store(store, calendar, kubeconfig, context, namespace)
    spec = build_spec(start=start, end=end, duration=duration, kind=kind, tz=tz, title=title, multiplier=multiplier, expected_peak=expected_peak, like=like, targets=targets)
    promo = _validated(Promo(name=name, spec=spec))
    refuse_past(promo.parsed.start, allow_past)
    promos = read_promos(st)
    if any(p.name == name for p in promos):
        raise InputError("NAME", f"a promotion named {name!r} already exists", "pick another name, or use promo edit")
    updated = promos + [promo]
    _check_references(updated, name)
    _warn_overlaps(promos, promo)
    write_promos(st, updated, changed=[name], deleted=[], created=[name])
    if not quiet:
        row = _shown(promo, tz)
        typer.echo(f"stored {where_stored(st, name)}: {row['kind']}, {row['start']} -> {row['end']} ({row['duration']}), size {row['size']}, targets {row['targets']}")
    targets_report(st, promo)
    file_note(st)


@promo_app.command("list")
def list_(
    tz: TzOpt = "Asia/Shanghai",
    output: OutputOpt = "table",
    store: StoreOpt = "auto",
    calendar: CalendarOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    all_namespaces: AllNamespacesOpt = False,
) -> None:
    """List the promotions, earliest first, times in --tz, each with its phase (Scheduled,
    PreScaling, Active, Cooling, Done: what the controller writes into the PromotionEvent's status)
    and when the controller first raises capacity for it (the earliest lead time of the policies it
    targets; in the cluster only, where the policies are).

    Examples:

    peakscale promo list

    peakscale promo list -o json --store kube -n live
    """

    import time

    check_output(output)
    get_zone(tz, field="--tz")
    st = open_store(store, calendar, kubeconfig, context, namespace, all_namespaces)
    promos = sorted(read_promos(st), key=lambda p: (p.parsed.start, p.namespace or "", p.name))
    status = promo_status(st, promos, tz, time.time(), shown_local=output == "table")
    _emit(promos, output, tz, f"{len(promos)} promotion(s) in {st.describe()} (times in {tz})", source=st.describe(), status=status)


@promo_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The promotion's name.")],
    tz: TzOpt = "Asia/Shanghai",
    output: OutputOpt = "table",
    store: StoreOpt = "auto",
    calendar: CalendarOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Show one promotion.

    Example:

    peakscale promo show kol-live-1111 -o yaml
    """

    check_output(output)
    get_zone(tz, field="--tz")
    st = open_store(store, calendar, kubeconfig, context, namespace)
    promo = find_promo(read_promos(st), name)
    if output in ("json", "yaml"):
        echo_doc(promo.as_entry(), output)
    else:
        for key, value in _shown(promo, tz).items():
            typer.echo(f"{key:>9}: {value}")


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
    namespace: NamespaceOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Change fields of a promotion; the others stay.

    Examples:

    peakscale promo edit kol-live-1111 --duration 4h

    peakscale promo edit kol-live-1111 --multiplier 8 --tz Asia/Shanghai
    """
    from autoscaler.adapters.store import Promo

    st = open_store(store, calendar, kubeconfig, context, namespace)

    def change() -> Promo:
        promos = read_promos(st)
        current = find_promo(promos, name)
        old = current.parsed
        zone = get_zone(tz, field="--tz")
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
            targets=targets if targets is not None else _kept_targets(current),
        )
        promo = _validated(Promo(name=name, spec=spec, memory=current.memory).replacing(current))
        if start is not None:
            refuse_past(promo.parsed.start, allow_past)
        updated = [promo if p.name == name else p for p in promos]
        _check_references(updated, name)
        _warn_overlaps(promos, promo)
        write_promos(st, updated, changed=[name], deleted=[])
        return promo

    promo = retrying(change)
    if not quiet:
        row = _shown(promo, tz)
        typer.echo(f"updated {where_stored(st, name)}: {row['start']} -> {row['end']} ({row['duration']}), size {row['size']}, targets {row['targets']}")
    targets_report(st, promo)
    file_note(st)


@promo_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="The promotion's name.")],
    store: StoreOpt = "auto",
    calendar: CalendarOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Delete a promotion (refused while another one names it in --like).

    Example:

    peakscale promo delete kol-live-1111
    """
    st = open_store(store, calendar, kubeconfig, context, namespace)

    def change() -> None:
        promos = read_promos(st, keep_invalid=True)
        find_promo(promos, name)
        rest = [p for p in promos if p.name != name]
        users = [p.name for p in rest if name in (p.spec.get("like") or [])]
        if users:
            raise InputError("NAME", f"{name!r} is named in --like of {', '.join(map(repr, users))}", "edit those first")
        write_promos(st, promos, changed=[], deleted=[name])  # the deleted one's version: no delete over a change

    retrying(change)
    if not quiet:
        typer.echo(f"deleted {where_stored(st, name)}")


def import_rows(path: Path, tz: str | None) -> list[Promo]:
    """Promotions from a YAML calendar or a CSV (names become object names); all or nothing, the
    row at fault named."""
    from autoscaler.adapters.store import Promo, validate_promo

    from autoscaler.core.calendar import read_entries
    from autoscaler.adapters.calendar_files import csv_entries
    from autoscaler.adapters.trace_files import open_text

    label = path.name
    zone = get_zone(tz, field="--tz") if tz else None
    name = path.name.removesuffix(".gz")
    if name.endswith((".yaml", ".yml")):
        from autoscaler.adapters import yamlsafe

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
    file: Annotated[Path, typer.Argument(help="A YAML calendar, or a CSV with columns start,end,name,kind and optionally title, expected_multiplier, expected_peak, like, targets, source.")],
    tz: Annotated[str, typer.Option("--tz", help="Zone of naive times in the file, as for promo add (a YAML 'timezone:' key, or a time's own offset, wins).")] = "Asia/Shanghai",
    allow_past: AllowPastOpt = False,
    store: StoreOpt = "auto",
    calendar: CalendarOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Import promotions: all of them, or none (the row at fault is named).

    Examples:

    peakscale promo import promos.csv --tz Asia/Shanghai

    peakscale promo export > backup.yaml && peakscale promo import backup.yaml --allow-past --store kube -n live
    """
    from autoscaler.adapters.store import KubeStore, check_references, overlapping

    get_zone(tz, field="--tz")
    st = open_store(store, calendar, kubeconfig, context, namespace)
    incoming = import_rows(file, tz)
    if not allow_past:
        for promo in incoming:
            try:
                refuse_past(promo.parsed.start, False, field=f"{file.name} {promo.name!r} start")
            except InputError as exc:
                raise InputError(exc.where, exc.problem, "--allow-past imports past promotions (they teach later ones), or remove them") from None
    promos = read_promos(st)
    # a retry of an import that failed part-way (or ran already) is idempotent: what is stored as
    # the file says is kept; a name stored with other content is a clash
    stored = {p.name: p for p in promos}
    same = {p.name for p in incoming if p.name in stored and (stored[p.name].spec, stored[p.name].memory) == (p.spec, p.memory)}
    clash = sorted({p.name for p in incoming} & set(stored) - same)
    if clash:
        raise InputError("NAME", f"already in the store with other content: {', '.join(map(repr, clash[:5]))}", "delete or rename them first")
    incoming = [p for p in incoming if p.name not in same]
    updated = promos + incoming
    check_references(updated)
    clashes = overlapping(updated, [p.name for p in incoming])
    said = [p for p in incoming if clashes.get(p.name)]
    for promo in said[:10]:
        _say_overlap(promo, clashes[promo.name])
    if len(said) > 10:
        err_console.print(f"warning: {len(said) - 10} more imported promotions overlap others of their kind on the same targets (kept)", highlight=False)
    write_promos(st, updated, changed=[p.name for p in incoming], deleted=[], created=[p.name for p in incoming])
    if not quiet:
        typer.echo(f"imported {len(incoming)} promotion(s) into {st.describe() if isinstance(st, KubeStore) else home_relative(st.path)}")
    targets_report(st, *incoming)
    file_note(st)


@promo_app.command("export")
def export(
    output: Annotated[str, typer.Option("--output", "-o", help="yaml or json (a calendar promo import reads back), or manifests (PromotionEvents for kubectl apply).")] = "yaml",
    store: StoreOpt = "auto",
    calendar: CalendarOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Print every promotion as a calendar that promo import reads back (yaml or json), or as
    PromotionEvent manifests for kubectl (-o manifests, in the namespace of -n, else the kubeconfig
    context's, else default).

    Examples:

    peakscale promo export > calendar-backup.yaml

    peakscale promo export --store file -o manifests -n live | kubectl apply -f -
    """
    import yaml

    check_output(output, ("yaml", "json", "manifests"))
    st = open_store(store, calendar, kubeconfig, context, namespace)
    promos = sorted(read_promos(st), key=lambda p: (p.parsed.start, p.name))
    if output == "manifests":
        from autoscaler.core.resources import GROUP, VERSION

        home = namespace_of(namespace, kubeconfig, context)
        docs = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "PromotionEvent", "metadata": {"name": p.name, "namespace": p.namespace or home}, "spec": p.spec} for p in promos]
        typer.echo(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True).rstrip())
        return
    _emit(promos, output, "UTC", "")
