"""The ``peakscale`` command line: a thin shell over the library.

Every command prints a table for people and ``--json`` for scripts. Errors a user can cause are
``InputError``: printed on one line to stderr, exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
import typer.core
from rich.console import Console
from rich.table import Table

from autoscaler.errors import InputError, clip

try:  # typer vendors click from 0.2x on
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover (older typer depends on click)
    from click import exceptions as click_exceptions  # type: ignore[no-redef]


class OneLineErrors(typer.core.TyperGroup):
    """Usage errors (a missing option, a value of the wrong type, an unknown option) on one line
    naming the option, with exit 2, like every other input error; never a box or a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, windows_expand_args=True, **extra):  # type: ignore[no-untyped-def]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, windows_expand_args=windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, windows_expand_args=windows_expand_args, **extra)
        except click_exceptions.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
                typer.echo(exc.ctx.get_help())  # a bare command shows its help
                sys.exit(0)
            where = exc.ctx.command_path if exc.ctx is not None else "peakscale"
            err_console.print(f"error: {exc.format_message().rstrip('.')} (see `{where} --help`)", highlight=False, soft_wrap=True, markup=False)
            sys.exit(2)
        except click_exceptions.ClickException as exc:
            err_console.print(f"error: {exc.format_message()}", highlight=False, soft_wrap=True, markup=False)
            sys.exit(exc.exit_code)
        except typer.Abort:
            err_console.print("error: aborted", highlight=False)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    name="peakscale",
    help=(
        "Pre-scale capacity tiers before their peaks: promotion calendar + forecast + lead time.\n\n"
        "Start with `peakscale backtest` (no arguments: the bundled World Cup 1998 trace)."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "data" / "traces"  # travels in the wheel
BUNDLED_TRACE = BUNDLED_DIR / "worldcup98_requests_1min.csv.gz"
BUNDLED_EVENTS = BUNDLED_DIR / "worldcup98_requests_1min.events.csv"
#: the bundled trace's scenario: 2,000 requests/min per replica, 10 min to start and warm up
BUNDLED_CAPACITY = 2000.0
#: the bundled calendar's surges: the matches (its 'tournament' row spans five weeks)
BUNDLED_KINDS = ["sports match (scheduled)"]

err_console = Console(stderr=True)


def fail(error: InputError) -> None:
    err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


from autoscaler.cli.promo import promo_app  # noqa: E402 (the sub-app needs `app` defined first)

app.add_typer(promo_app, name="promo")


def _version(value: bool) -> None:
    if value:
        from autoscaler import __version__

        typer.echo(f"peakscale {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """peakscale: get live-commerce platforms through their peaks."""


def _default_events(trace: Path) -> Path | None:
    name = trace.name.removesuffix(".gz").removesuffix(".csv")
    for candidate in (trace.with_name(f"{name}.events.csv"), trace.with_name(f"{name}.events.yaml")):
        if candidate.is_file():
            return candidate
    return None


def _split_list(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


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
    node_headroom: Annotated[bool, typer.Option("--node-headroom/--no-node-headroom", help="With --node-lead-time: the peakscale strategies keep placeholder pods ahead of each raise (nodeHeadroom), so the replicas that replace them serve after --lead-time alone.")] = True,
    kinds: Annotated[
        Optional[list[str]],
        typer.Option("--kinds", help="Event kinds that count as calendar events (repeatable). Default: all but kinds naming an anomaly, artifact, outage or gap; for the bundled trace, its matches."),
    ] = None,
    strategies: Annotated[
        Optional[list[str]],
        typer.Option("--strategies", help="Strategies to run, repeatable or comma-separated: reactive, schedule, history, peakscale, peakscale-scale, oracle. Default: all."),
    ] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Write a PNG: demand, ready capacity per strategy, event windows shaded.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse a trace with gaps or empty values (by default they are missing samples: every strategy holds through them, and the figures count only the minutes with data).")] = False,
) -> None:
    """Replay a real trace through a simulated cluster and compare scaling strategies.

    New replicas serve only after --lead-time. Six strategies see the same trace: reactive (an HPA on the request rate, 60 s late), schedule (calendar floors sized by hand, KEDA-cron style), history (seasonal forecast, no calendar), peakscale (the controller as shipped: that HPA plus the floor it writes every --interval), peakscale-scale (the controller in mode scale) and oracle (perfect foresight, the lower bound on cost). The peakscale strategies run the controller's own cycle function on what its Prometheus would hold: each trace sample (the demand of the period starting at its timestamp) once that period is over, within the policy's 14-day history window.

    Examples:

    peakscale backtest

    peakscale backtest --trace traffic.csv --events promos.csv --tz Asia/Shanghai --capacity-per-replica 500 --lead-time 25m --max-replicas 300 --plot out.png

    peakscale backtest --json | jq .strategies.peakscale.events
    """
    from autoscaler.core.backtest import STRATEGIES, Scenario, run_backtest
    from autoscaler.core.forecast import ForecastSettings
    from autoscaler.core.calendar import select_kinds
    from autoscaler.adapters.calendar_files import load_calendar
    from autoscaler.core.durations import parse_duration_s
    from autoscaler.core.plan import PlanPolicy
    from autoscaler.core.timezones import get_zone
    from autoscaler.adapters.trace_files import load_trace

    try:
        zone = get_zone(tz)
        if trace is None:
            trace_path, events_path = BUNDLED_TRACE, events or BUNDLED_EVENTS
            capacity = capacity_per_replica if capacity_per_replica is not None else BUNDLED_CAPACITY
        else:
            trace_path, events_path = trace, events or _default_events(trace)
            if capacity_per_replica is None:
                raise InputError("--capacity-per-replica", "required with --trace", "give the demand one replica serves, e.g. --capacity-per-replica 500")
            capacity = capacity_per_replica
        chosen = _split_list(strategies) or list(STRATEGIES)
        for name in chosen:
            if name not in STRATEGIES:
                raise InputError("--strategies", f"unknown strategy {name!r}", f"choose from {', '.join(STRATEGIES)}")
        policy = PlanPolicy(
            capacity_per_replica=capacity,
            target_utilization=target_utilization,
            lead_time_s=parse_duration_s(lead_time, field="--lead-time", allow_zero=True),
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            scale_down_stabilization_s=parse_duration_s(scale_down_stabilization, field="--scale-down-stabilization", allow_zero=True),
            freeze_during_events=freeze,
            max_freeze_s=parse_duration_s(max_freeze, field="--max-freeze", allow_zero=True),
        )
        if floor not in ("plan", "events-only"):
            raise InputError("--floor", f"unknown rule {floor!r}", "use plan or events-only")
        history_s = parse_duration_s(history_window, field="--history-window")
        if history_s < 86400:
            raise InputError("--history-window", f"{history_window!r} is shorter than a day", "the daily profile needs at least 1d, e.g. 2d or 14d")
        scenario = Scenario(
            policy=policy,
            forecast=ForecastSettings(history_s=history_s),
            memory=memory,
            metric_lag_s=parse_duration_s(metric_lag, field="--metric-lag", allow_zero=True),
            interval_s=parse_duration_s(interval, field="--interval"),
            cooldown_s=parse_duration_s(cooldown, field="--cooldown", allow_zero=True),
            floor=floor,
            node_lead_s=parse_duration_s(node_lead_time, field="--node-lead-time", allow_zero=True),
            node_headroom=node_headroom,
        )
        if plot is not None and plot.suffix.lower() != ".png":
            raise InputError("--plot", f"{str(plot)!r} is not a .png file", "name the plot file *.png")
        series = load_trace(trace_path, zone, strict=strict)
        span_s = int(series.times_s[-1] - series.times_s[0]) + series.step_s
        if policy.lead_time_s >= span_s or policy.lead_time_s >= scenario.forecast.history_s:
            raise InputError("--lead-time", f"{lead_time} is not shorter than the trace ({span_s // 60:,} min) and the history window", "give the lead time of the tier, e.g. 10m")
        if policy.lead_time_s + scenario.node_lead_s >= min(span_s, scenario.forecast.history_s):
            raise InputError("--node-lead-time", f"{node_lead_time} plus --lead-time is not shorter than the trace and the history window", "give how long a node takes to come up, e.g. 3m")
        calendar = load_calendar(events_path, zone) if events_path is not None else []
        wanted_kinds = _split_list(kinds) or (BUNDLED_KINDS if trace is None and events is None else [])
        selected = select_kinds(calendar, wanted_kinds)
        if wanted_kinds and not selected:
            known = sorted({e.kind for e in calendar})
            raise InputError("--kinds", f"no event of kind {', '.join(map(repr, wanted_kinds))} in the calendar", f"kinds present: {', '.join(map(repr, known)) or 'none'}")
        with _progress(enabled=not quiet and not as_json) as report:
            result = run_backtest(series, selected, scenario, tuple(chosen), progress=report)
        if plot is not None:
            from autoscaler.adapters.plot import plot_backtest

            plot_backtest(result, plot)
    except InputError as error:
        fail(error)
    if as_json:
        doc = result.as_json()
        if plot is not None:
            doc["plot"] = str(plot)
        typer.echo(json.dumps(doc, indent=2))
        return
    _print_table(result, plot)


@app.command()
def render(
    stack: Annotated[str, typer.Option(help="Stack whose Pulumi.<stack>.yaml config to use (dev, prod, ...).")] = "dev",
    out: Annotated[Path, typer.Option(help="Folder for the YAML files, one per object.")] = Path("rendered"),
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary instead of the table.")] = False,
) -> None:
    """Preview, offline, every Kubernetes object `pulumi up` would declare for a stack.

    This is a PREVIEW, NOT A DEPLOYMENT: the Pulumi program runs in-process under the official mocks, with no engine, no provider and no cluster, and writes what it asks for as YAML (<namespace>/<kind>-<name>.yaml, secrets redacted) plus _stack.yaml with the stack outputs and the non-Kubernetes resources (Helm releases, generated passwords). Review it or diff it before `pulumi up`.

    Examples:

    peakscale render --stack prod --out /tmp/r

    diff -ru rendered-before/ rendered/
    """
    from stacks.config import ConfigError
    from stacks.render import load_stack_file, render as run_render, write

    repo = Path.cwd() if (Path.cwd() / "Pulumi.yaml").is_file() else Path(__file__).resolve().parent.parent
    try:
        config = load_stack_file(repo, stack)
        rendered = run_render(config, stack)
        paths = write(rendered, out)
    except ConfigError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    except OSError as error:
        err_console.print(f"[bold red]error:[/] --out: cannot write {str(out)!r} ({error.strerror or error})", highlight=False)
        raise typer.Exit(2)
    objects = rendered.objects
    if as_json:
        typer.echo(json.dumps({"stack": stack, "out": str(out), "objects": len(objects), "files": [str(p) for p in paths]}, indent=2))
        return
    table = Table(title=f"stack {stack}: {len(objects)} Kubernetes objects written to {out} (preview, not deployed)", title_justify="left")
    for col in ("namespace", "kind", "name"):
        table.add_column(col)
    for obj in objects:
        meta = obj.get("metadata") or {}
        table.add_row(meta.get("namespace") or "-", obj.get("kind", "?"), meta.get("name", "?"))
    (Console() if Console().is_terminal else Console(width=150)).print(table)


@app.command()
def controller(
    prometheus_url: Annotated[str, typer.Option(help="Prometheus base URL, e.g. http://prometheus-operated.monitoring:9090.")],
    kubeconfig: Annotated[Optional[Path], typer.Option(help="Kubeconfig file. Default: in-cluster service account, else ~/.kube/config.")] = None,
    context: Annotated[Optional[str], typer.Option(help="Kubeconfig context.")] = None,
    namespace: Annotated[Optional[list[str]], typer.Option("--namespace", "-n", help="Namespace to watch (repeatable). Default: all.")] = None,
    interval: Annotated[str, typer.Option(help="Time between reconcile cycles.")] = "30s",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan, write status and Events, but never change an HPA or a replica count.")] = False,
    prometheus_token_file: Annotated[Optional[Path], typer.Option(help="File holding a bearer token for Prometheus.")] = None,
    prometheus_ca: Annotated[Optional[Path], typer.Option(help="CA bundle to verify Prometheus' TLS certificate.")] = None,
    prometheus_insecure: Annotated[bool, typer.Option("--prometheus-insecure-skip-verify", help="Do not verify Prometheus' TLS certificate.")] = False,
    prometheus_timeout: Annotated[str, typer.Option(help="Timeout of one Prometheus query.")] = "10s",
    metrics_port: Annotated[int, typer.Option(help="Port of /metrics, /healthz and /readyz.")] = 8080,
    lease_namespace: Annotated[str, typer.Option(envvar="POD_NAMESPACE", help="Namespace of the leader-election Lease.")] = "peakscale-system",
    lease_name: Annotated[str, typer.Option(help="Name of the leader-election Lease.")] = "peakscale-controller",
    headroom_namespace: Annotated[Optional[str], typer.Option(help="Namespace of the node-headroom placeholder Deployments. Default: the Lease's (the controller's own).")] = None,
    calendar: Annotated[Optional[Path], typer.Option("--calendar", help="Also read promotions from this YAML calendar (e.g. a ConfigMap mount; for clusters without the CRDs). Re-read every cycle; a PromotionEvent of the same name wins.")] = None,
    preflight_ahead: Annotated[str, typer.Option(help="Run the preflight checks for each promotion starting within this long, as its Preflight condition (0: never).")] = "24h",
    preflight_every: Annotated[str, typer.Option(help="Run them again this often until the promotion starts.")] = "1h",
    identity: Annotated[Optional[str], typer.Option(envvar="POD_NAME", help="This instance's name in the Lease. Default: hostname.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Run one cycle, print its report and exit.")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    lease_duration: Annotated[str, typer.Option(help="How long a Lease not renewed stays held (a standby waits this long after it last saw the Lease change).")] = "15s",
    renew_deadline: Annotated[str, typer.Option(help="The leader stops writing when it could not renew for this long (below --lease-duration).")] = "10s",
    retry_period: Annotated[str, typer.Option(help="How often the Lease is renewed or tried, on its own thread.")] = "2s",
    unready_after: Annotated[int, typer.Option(help="/readyz answers 503 after this many cycles failed in a row.")] = 3,
) -> None:
    """Run the controller: pre-scale the cluster's tiers from Prometheus and the PromotionEvents.

    Every --interval it reads the ScalingPolicies and PromotionEvents, fetches each policy's demand history from Prometheus (incrementally), forecasts, and decides each policy's cycle in one place (the function the backtest and plan replay): hpa-floor policies get their HPA's minReplicas kept at the plan (the seasonal forecast, and each promotion's whole plan from one interval before start - leadTime to end + cooldown), scale policies get their scale subresource written, observe policies only get status. After each promotion it records what each policy saw into the PromotionEvent's status (memory for next year). Only the holder of the Lease writes. Missing or stale metrics never lower capacity.

    Examples:

    peakscale controller --prometheus-url http://127.0.0.1:9090 --kubeconfig ~/.kube/config --dry-run --once

    peakscale controller --prometheus-url https://prometheus.monitoring:9090 --prometheus-token-file /var/run/secrets/prom/token -n live
    """
    import logging
    import socket
    import threading

    from autoscaler.controller.reconcile import Controller, ControllerOptions
    from autoscaler.core.durations import parse_duration_s
    from autoscaler.adapters.kube import Kube, api_client
    from autoscaler.adapters.prometheus import HistoryCache
    from autoscaler.controller.telemetry import Telemetry, serve

    # every option is checked before any work starts
    try:
        levels = ("debug", "info", "warning", "error")
        if log_level.lower() not in levels:
            raise InputError("--log-level", f"unknown level {log_level!r}", f"use {', '.join(levels)}")
        if not 1 <= metrics_port <= 65535:
            raise InputError("--metrics-port", f"{metrics_port} is not a TCP port", "give 1-65535, e.g. 8080")
        if unready_after < 1:
            raise InputError("--unready-after", f"{unready_after} must be at least 1", "e.g. 3")
        interval_s = parse_duration_s(interval, field="--interval")
        timeout_s = parse_duration_s(prometheus_timeout, field="--prometheus-timeout")
        lease_s = parse_duration_s(lease_duration, field="--lease-duration")
        renew_s = parse_duration_s(renew_deadline, field="--renew-deadline")
        retry_s = parse_duration_s(retry_period, field="--retry-period")
        preflight_ahead_s = parse_duration_s(preflight_ahead, field="--preflight-ahead", allow_zero=True)
        preflight_every_s = parse_duration_s(preflight_every, field="--preflight-every")
        if not 0 < retry_s < renew_s < lease_s:
            raise InputError("--renew-deadline", f"need --retry-period ({retry_s}s) < --renew-deadline ({renew_s}s) < --lease-duration ({lease_s}s)", "e.g. 2s, 10s, 15s")
        if not prometheus_url.startswith(("http://", "https://")) or len(prometheus_url) < 10:
            raise InputError("--prometheus-url", f"{prometheus_url!r} is not an http(s) URL", "e.g. http://prometheus:9090")
        if calendar is not None:  # checked before any work starts: a bad entry is named now
            from autoscaler.adapters import yamlsafe
            from autoscaler.core.calendar import read_entries

            if not calendar.is_file():
                raise InputError("--calendar", f"no such file {str(calendar)!r}", "give the YAML calendar to read (e.g. a ConfigMap mount)")
            read_entries(yamlsafe.read(calendar, f"--calendar {calendar.name}"), None, f"--calendar {calendar.name}")
        token = None
        if prometheus_token_file is not None:
            try:
                token = prometheus_token_file.read_text().strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError("--prometheus-token-file", f"cannot read {str(prometheus_token_file)!r} ({getattr(exc, 'strerror', None) or exc})", "give a readable text file") from None
        if prometheus_ca is not None:
            try:
                prometheus_ca.read_bytes()
            except OSError as exc:
                raise InputError("--prometheus-ca", f"cannot read {str(prometheus_ca)!r} ({exc.strerror or exc})", "give a readable PEM bundle") from None
        name = identity or socket.gethostname()
        api = api_client(str(kubeconfig) if kubeconfig is not None else None, context)
        api.user_agent = f"peakscale-controller/{name}"
        telemetry = Telemetry()
        server = None
        if not once:
            try:
                server = serve(telemetry, metrics_port, interval_s)
            except OSError as exc:
                raise InputError("--metrics-port", f"cannot listen on {metrics_port} ({exc.strerror or exc})", "give a free port") from None
    except InputError as error:
        fail(error)
    logging.basicConfig(level=getattr(logging, log_level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    verify: bool | str = False if prometheus_insecure else (str(prometheus_ca) if prometheus_ca else True)
    kube = Kube(api)
    history = HistoryCache(prometheus_url, token=token, verify_tls=verify, timeout_s=timeout_s)
    options = ControllerOptions(
        identity=name,
        namespaces=list(namespace) if namespace else None,
        interval_s=interval_s,
        dry_run=dry_run,
        lease_namespace=lease_namespace,
        lease_name=lease_name,
        headroom_namespace=headroom_namespace or lease_namespace,
        calendar_file=str(calendar) if calendar is not None else None,
        preflight_ahead_s=preflight_ahead_s,
        preflight_every_s=preflight_every_s,
        lease_duration_s=lease_s,
        renew_deadline_s=renew_s,
        retry_period_s=retry_s,
        unready_after=unready_after,
    )
    ctl = Controller(kube, history, options, telemetry=telemetry)
    if once:
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            report = ctl.run_cycle()
        except (ApiException, HTTPError, OSError) as exc:
            err_console.print(f"[bold red]error:[/] cannot reach the Kubernetes API ({type(exc).__name__}: {clip(str(getattr(exc, 'reason', None) or exc), 200)})", highlight=False)
            raise typer.Exit(1)
        except Exception as exc:  # noqa: BLE001 (one line, never a traceback)
            err_console.print(f"[bold red]error:[/] the cycle failed ({type(exc).__name__}: {clip(str(exc), 200)})", highlight=False)
            raise typer.Exit(1)
        doc = {
            "leader": report.leader,
            "policies": report.policies,
            "prometheus_queries": report.queries,
            "duration_s": round(report.duration_s, 4),
            "outcomes": [o.__dict__ for o in report.outcomes],
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    stop = threading.Event()
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ctl.run_forever(stop)
    if server is not None:
        server.shutdown()


@app.command()
def plan(
    start: Annotated[str, typer.Option("--from", help="Start of the plan: now, a local time in --tz, or +2h from now. With --trace: the trace's start.")] = "now",
    end: Annotated[str, typer.Option("--to", help="End: +48h (from --from) or a local time in --tz. With --trace: the trace's end.")] = "+48h",
    tz: Annotated[str, typer.Option("--tz", help="Zone of the times given and shown. Default Asia/Shanghai: the operators' wall clock, as in promo.")] = "Asia/Shanghai",
    trace: Annotated[Optional[Path], typer.Option(help="Offline history instead of Prometheus: a timestamp,value CSV.")] = None,
    trace_tz: Annotated[str, typer.Option(help="Zone of the trace's naive timestamps (and of --events).")] = "UTC",
    prometheus_url: Annotated[Optional[str], typer.Option(help="Prometheus to read each policy's history from.")] = None,
    events: Annotated[Optional[Path], typer.Option(help="A calendar file (CSV or YAML) instead of the promo store.")] = None,
    kinds: Annotated[Optional[list[str]], typer.Option("--kinds", help="With --events: the kinds that count (default: all but data kinds).")] = None,
    policies: Annotated[Optional[Path], typer.Option(help="YAML file of ScalingPolicy resources. Default: the cluster's (when promotions come from it and no --capacity-per-replica is given), else one policy from the options below.")] = None,
    policy: Annotated[Optional[list[str]], typer.Option("--policy", help="Only these policies (repeatable).")] = None,
    capacity_per_replica: Annotated[Optional[float], typer.Option(help="Without --policies: demand one replica serves.")] = None,
    lead_time: Annotated[str, typer.Option(help="Without --policies: how long new capacity takes to serve.")] = "10m",
    min_replicas: Annotated[int, typer.Option(help="Without --policies: the usual floor.")] = 2,
    max_replicas: Annotated[int, typer.Option(help="Without --policies: never more.")] = 200,
    store: Annotated[str, typer.Option("--store", help="Promotions from: kube (PromotionEvents), file (a YAML calendar), or auto: kube when a kubeconfig context or in-cluster config is found and no --calendar is given, else file.")] = "auto",
    calendar: Annotated[Optional[Path], typer.Option("--calendar", envvar="PEAKSCALE_CALENDAR", help="Calendar file for --store file (default ~/.config/peakscale/calendar.yaml).")] = None,
    kubeconfig: Annotated[Optional[Path], typer.Option(help="Kubeconfig for --store kube.")] = None,
    context: Annotated[Optional[str], typer.Option(help="Kubeconfig context.")] = None,
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the PromotionEvents for --store kube.")] = "default",
    output: Annotated[str, typer.Option("--output", "-o", help="table, json or yaml.")] = "table",
    timeline: Annotated[bool, typer.Option("--timeline/--no-timeline", help="Show a compact timeline of the planned floor per target.")] = True,
    interval: Annotated[str, typer.Option(help="The controller's interval (its --interval): plan decides at the same instants.")] = "30s",
    strict: Annotated[bool, typer.Option("--strict", help="Refuse a --trace with gaps or empty values (by default they are missing samples).")] = False,
) -> None:
    """Show what will scale when: every write the controller would make, per target, with its reason.

    The controller's own cycle function runs at the instants the controller would (every --interval from --from), each cycle seeing the history up to that instant only: in hpa-floor mode the floor follows the seasonal forecast (less the HPA's tolerance) and rises to the whole plan from one interval before each promotion's start minus the lead time until its end plus the cool-down; in scale mode the replica count follows the plan. With a policy's nodeHeadroom, the placeholder pods are shown too (create, resize, delete headroom), counting the floor's pods ready a lead time after each raise. Beyond the newest sample the history is carried forward by the seasonal forecast. A --trace is read like a backtest's (each value the demand of the period starting at its timestamp); Prometheus history as the controller reads it.

    Examples:

    peakscale plan --prometheus-url http://127.0.0.1:9090 --policies policies.yaml --to +48h

    peakscale plan --trace traffic.csv --events promos.csv --capacity-per-replica 2000 -o json
    """
    import time as _time

    import yaml as _yaml

    from autoscaler.core.calendar import select_kinds
    from autoscaler.adapters.calendar_files import load_calendar
    from autoscaler.core.durations import parse_duration_s
    from autoscaler.adapters.inputs import HistoryUnavailable, load_policies, policies_of, prometheus_history, trace_history
    from autoscaler.core.schedule import Plan, PolicyInput, plan_target
    from autoscaler.cli.promo import Failed, _read, _read_policies, open_store, parse_time
    from autoscaler.adapters.store import KubeStore
    from autoscaler.core.resources import LabelSelector
    from autoscaler.core.timezones import aware, get_zone, shown, wall_seconds

    try:
        if output not in ("table", "json", "yaml"):
            raise InputError("--output", f"unknown format {output!r}", "use table, json or yaml")
        show_zone = get_zone(tz)
        if (trace is None) == (prometheus_url is None):
            raise InputError("--trace", "give --trace FILE or --prometheus-url URL (one of them)", "e.g. --trace traffic.csv")
        clock_zone = get_zone(trace_tz if trace is not None else "UTC")

        def to_clock(stamp) -> int:
            return wall_seconds(stamp.astimezone(clock_zone).replace(tzinfo=None))

        def fmt(seconds: float) -> str:
            return shown(aware(seconds, clock_zone), show_zone)

        # calendar
        selectors: dict[str, LabelSelector] = {}
        st = None
        if events is not None:
            calendar_events = select_kinds(load_calendar(events, clock_zone), _split_list(kinds))
        else:
            st = open_store(store, calendar, kubeconfig, context, namespace)
            calendar_events = []
            for promo in _read(st):
                calendar_events.append(promo.event(clock_zone))
                selectors[promo.name] = promo.parsed.targets
        # policies: a file, the cluster's (beside its promotions), or one from the options
        if policies is None and capacity_per_replica is None and isinstance(st, KubeStore):
            docs = policies_of(_read_policies(st), policy)
        else:
            docs = load_policies(
                policies, only=policy, capacity_per_replica=capacity_per_replica, lead_time=lead_time, min_replicas=min_replicas, max_replicas=max_replicas
            )
        parsed = [(d.name, d.namespace, d.labels, d.spec) for d in docs]
        # history
        histories = {}
        interval_s = parse_duration_s(interval, field="--interval")
        if trace is not None:
            seen_times, seen_values, first, last = trace_history(trace, clock_zone, strict=strict)
            for name, ns, labels, spec in parsed:
                histories[name] = (seen_times, seen_values)
            from_s = first if start == "now" else None
            default_to = last
        else:
            now_s = _time.time()
            for doc in docs:
                histories[doc.name] = prometheus_history(prometheus_url, doc, now_s=now_s)
            from_s = int(now_s) if start == "now" else None
            default_to = None
        if from_s is None:
            if start.startswith("+"):
                base = int(_time.time()) if trace is None else first
                from_s = base + parse_duration_s(start[1:], field="--from")
            else:
                from_s = to_clock(parse_time(start, tz, "--from"))
        if end.startswith("+"):
            to_s = (default_to if (trace is not None and end == "+48h") else from_s + parse_duration_s(end[1:], field="--to"))
        else:
            to_s = to_clock(parse_time(end, tz, "--to"))
        if to_s <= from_s:
            raise InputError("--to", "is not after --from", "e.g. --to +48h")
        targets = []
        for name, ns, labels, spec in parsed:
            times, values = histories[name]
            entry = PolicyInput(
                name=name, namespace=ns, labels=labels, spec=spec,
                targets_of=lambda ev, labels=labels: selectors[ev].matches(labels) if ev in selectors else True,
            )
            targets.append(plan_target(entry, times, values, calendar_events, from_s, to_s, interval_s=interval_s, fmt=fmt))
        selecting = {e for t in targets for e in t.events}
        unmatched = sorted(e.name for e in calendar_events if e.name not in selecting and from_s - 86400 <= e.end_s and e.start_s <= to_s)
        result = Plan(start=fmt(from_s), end=fmt(to_s), tz=tz, targets=targets, unmatched=unmatched)
    except InputError as error:
        fail(error)
    except (Failed, HistoryUnavailable) as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    labels = sorted({f"{k}={v}" for _, _, lab, _ in parsed for k, v in lab.items()})
    for name in result.unmatched:
        there = f"the policies carry {', '.join(labels[:8])}" if labels else "the policies carry no labels"
        err_console.print(f"warning: promotion {name!r} selects no policy: nothing is raised for it ({there}; see its targets)", highlight=False, soft_wrap=True)
    if output == "json":
        typer.echo(result.model_dump_json(indent=2))
        return
    if output == "yaml":
        typer.echo(_yaml.safe_dump(result.model_dump(), sort_keys=False, allow_unicode=True).rstrip())
        return
    console = Console() if Console().is_terminal else Console(width=160, no_color=True)
    for target in result.targets:
        table = Table(
            title=f"{target.namespace}/{target.policy} -> {target.target} ({target.mode}, {target.min_replicas}-{target.max_replicas}, lead {target.lead_time_s // 60} min), {result.start} to {result.end}",
            title_justify="left",
        )
        for col in ("when", "action", "replicas", "for", "why"):
            table.add_column(col)
        for a in target.actions:
            table.add_row(a.at, a.action.replace("-", " "), f"{a.from_replicas} -> {a.to_replicas}", a.title or "-", a.reason)
        if not target.actions:
            table.add_row("-", "none", "-", "-", "nothing to write in this window: the plan stays at the floor it starts from")
        console.print(table)
        if timeline:
            console.print(f"  timeline ({target.timeline_step_s // 60} min per mark, floor {target.min_replicas}..{target.max_replicas}): {target.timeline}", highlight=False)


from autoscaler.cli.preflight import preflight as _preflight  # noqa: E402

app.command("preflight")(_preflight)


class _progress:
    """A progress display on stderr for the strategies of a backtest (terminal only)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and err_console.is_terminal
        self._progress = None
        self._tasks: dict[str, int] = {}

    def __enter__(self):
        if not self.enabled:
            return lambda stage, fraction: None
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description:>10}"), BarColumn(), TimeElapsedColumn(), console=err_console, transient=True
        )
        self._progress.__enter__()

        def report(stage: str, fraction: float) -> None:
            if stage not in self._tasks:
                self._tasks[stage] = self._progress.add_task(stage, total=1.0)
            self._progress.update(self._tasks[stage], completed=fraction)

        return report

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_table(result, plot: Path | None) -> None:
    doc = result.as_json()
    sc = doc["scenario"]
    console = Console() if Console().is_terminal else Console(width=150)
    title = (
        f"{doc['trace']}: {sc['samples']:,} samples, {sc['calendar_events']} calendar events "
        f"({sc['event_minutes']:,.0f} min; kinds: {', '.join(sc['event_kinds']) or 'none'}), "
        f"lead time {sc['lead_time_s'] / 60:g} min, {sc['capacity_per_replica']:g}/replica at {sc['target_utilization']:.0%}"
    )
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
    if sc["missing_minutes"]:
        console.print(f"{sc['missing_minutes']:,.0f} minutes of the trace have no data: every strategy held through them, and no figure counts them.")
    if plot is not None:
        console.print(f"plot written to {plot}")


def _verbatim_examples(typer_app: typer.Typer) -> None:
    """Help is plain text rewrapped to the terminal (80 columns too, never cutting an option name);
    the example command lines after "Examples:" are kept whole (click's ``\\b`` marker)."""
    for info in typer_app.registered_commands:
        doc = info.callback.__doc__ if info.callback is not None else None
        if not doc or "Examples:" not in doc or "\b" in doc:
            continue
        head, _, tail = doc.partition("Examples:")
        paragraphs = tail.split("\n\n")
        for k, para in enumerate(paragraphs):
            lines = [line for line in para.split("\n") if line.strip()]
            if lines:
                indent = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
                paragraphs[k] = f"{indent}\b\n" + para.lstrip("\n")
        info.callback.__doc__ = head + "Examples:" + "\n\n".join(paragraphs)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _verbatim_examples(group.typer_instance)


_verbatim_examples(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except InputError as error:  # raised outside a command body (e.g. while parsing)
        err_console.print(f"error: {error}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
