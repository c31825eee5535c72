"""``peakscale controller``: run the in-cluster controller (or one cycle of it with ``--once``).

Every option is checked before any work starts, each named when wrong; then the controller is
wired from its adapters (the Kubernetes client, the Prometheus history cache, telemetry)."""

from __future__ import annotations

import json
import re
import signal
import uuid
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from autoscaler.adapters.kubeconfig import resolve_namespaces
from autoscaler.cli.app import app
from autoscaler.cli.output import PROMETHEUS_ENV, prometheus_base
from autoscaler.core.defaults import DEFAULT_LEASE_NAME, DEFAULT_MAX_PLACEHOLDERS
from autoscaler.core.durations import parse_duration_s
from autoscaler.core.timezones import get_zone
from autoscaler.errors import CommandFailed, InputError, clip

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from autoscaler.controller.telemetry import Telemetry
    from autoscaler.controller.reconcile import Controller


@app.command()
def controller(
    prometheus_url: Annotated[str, typer.Option(envvar=PROMETHEUS_ENV, help="Prometheus base URL, e.g. http://prometheus-operated.monitoring:9090.")],
    kubeconfig: Annotated[Optional[Path], typer.Option(help="Kubeconfig file. Default: in-cluster service account, else ~/.kube/config.")] = None,
    context: Annotated[Optional[str], typer.Option(help="Kubeconfig context.")] = None,
    namespace: Annotated[Optional[list[str]], typer.Option("--namespace", "-n", help="Namespace to watch (repeatable). Default, as kubectl: the kubeconfig context's namespace (in a pod: its own), else default.")] = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Watch every namespace (needs cluster-wide rights: the chart's clusterWide).")] = False,
    interval: Annotated[str, typer.Option(help="Time between reconcile cycles.")] = "30s",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan, write status and Events, but never change an HPA or a replica count.")] = False,
    prometheus_token_file: Annotated[Optional[Path], typer.Option(help="File holding a bearer token for Prometheus.")] = None,
    prometheus_ca: Annotated[Optional[Path], typer.Option(help="CA bundle to verify Prometheus' TLS certificate.")] = None,
    prometheus_insecure: Annotated[bool, typer.Option("--prometheus-insecure-skip-verify", help="Do not verify Prometheus' TLS certificate.")] = False,
    prometheus_timeout: Annotated[str, typer.Option(help="Timeout of one Prometheus query.")] = "10s",
    metrics_port: Annotated[int, typer.Option(help="Port of /metrics, /healthz and /readyz.")] = 8080,
    metrics_address: Annotated[str, typer.Option(help="Address /metrics, /healthz and /readyz listen on (0.0.0.0 in a pod, for the kubelet's probes; 127.0.0.1 on a workstation).")] = "0.0.0.0",
    lease_namespace: Annotated[str, typer.Option(envvar="POD_NAMESPACE", help="Namespace of the leader-election Lease.")] = "peakscale-system",
    lease_name: Annotated[str, typer.Option(help="Name of the leader-election Lease (the chart: <release>-controller).")] = DEFAULT_LEASE_NAME,
    headroom_priority_class: Annotated[Optional[list[str]], typer.Option("--headroom-priority-class", help="A PriorityClass node-headroom placeholders may run at (repeatable; each must have a negative value). A policy naming another gets no placeholders. Default: peakscale-headroom, the chart's.")] = None,
    headroom_max_pods: Annotated[int, typer.Option(help="At most this many placeholder pods per policy, whatever its plan or maxReplicas say.")] = DEFAULT_MAX_PLACEHOLDERS,
    max_queries_per_cycle: Annotated[int, typer.Option(help="Prometheus range queries one cycle may send, shared fairly among the policies (a history left out goes first next cycle): at least the number of policies, one each once their histories are cached.")] = 10_000,
    headroom_copy_scheduling: Annotated[bool, typer.Option("--headroom-copy-scheduling/--no-headroom-copy-scheduling", help="Copy the target's nodeSelector, affinity and tolerations onto its placeholders (they run in the target's namespace, charged to its quota).")] = True,
    calendar: Annotated[Optional[Path], typer.Option("--calendar", help="Also read promotions from this YAML calendar (e.g. a ConfigMap mount; for clusters without the CRDs). Re-read every cycle; a PromotionEvent of the same name wins.")] = None,
    preflight_ahead: Annotated[str, typer.Option(help="Run the preflight checks for each promotion starting within this long, as its Preflight condition (0: never).")] = "24h",
    preflight_every: Annotated[str, typer.Option(help="Run them again this often until the promotion starts.")] = "1h",
    reshard_image: Annotated[Optional[str], typer.Option(envvar="PEAKSCALE_IMAGE", help="The image of a resharding tier's reshard Job (peakscale reshard): the controller's own (the chart sets it). Without it such a policy's raises fail, saying so.")] = None,
    identity: Annotated[Optional[str], typer.Option(envvar="POD_NAME", help="This instance's name in the Lease. Default: hostname.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Run one cycle, print its report and exit.")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error. At info, one line per write: the policy, from -> to, the promotion, the reason, the local time.")] = "info",
    tz: Annotated[str, typer.Option("--tz", help="Zone of the local times in log lines (the operators' wall clock).")] = "Asia/Shanghai",
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

    from autoscaler.adapters.kube import Kube
    from autoscaler.adapters.prometheus import HistoryCache
    from autoscaler.controller.reconcile import Controller
    from autoscaler.controller.model import ControllerOptions
    from autoscaler.controller.telemetry import Telemetry

    # every option is checked before any work starts
    base_url = _checked_flags(log_level, metrics_port, unready_after, prometheus_url, headroom_max_pods, max_queries_per_cycle, namespace=namespace or [], lease_namespace=lease_namespace, lease_name=lease_name, metrics_address=metrics_address)
    times = _durations(interval=interval, prometheus_timeout=prometheus_timeout, lease_duration=lease_duration, renew_deadline=renew_deadline, retry_period=retry_period, preflight_ahead=preflight_ahead, preflight_every=preflight_every)
    _check_calendar(calendar, tz)
    token = _read_token(prometheus_token_file)
    _check_ca(prometheus_ca)
    name = identity or socket.gethostname()
    watched = resolve_namespaces(namespace, all_namespaces, kubeconfig, context)
    api = _api(kubeconfig, context, name)
    telemetry = Telemetry()
    server = None if once else _serve(telemetry, metrics_address, metrics_port, times["interval"])
    _start_log(log_level, watched, lease_namespace, lease_name)
    history = HistoryCache(base_url, token=token, verify_tls=False if prometheus_insecure else (str(prometheus_ca) if prometheus_ca else True), timeout_s=times["prometheus_timeout"])
    options = ControllerOptions(
        # the Lease's holder is this process: two started with one --identity never both lead
        identity=f"{name}_{uuid.uuid4().hex[:8]}", namespaces=watched, interval_s=times["interval"], dry_run=dry_run,
        lease_namespace=lease_namespace, lease_name=lease_name, lease_duration_s=times["lease_duration"],
        renew_deadline_s=times["renew_deadline"], retry_period_s=times["retry_period"], unready_after=unready_after,
        headroom_priority_classes=tuple(headroom_priority_class or ControllerOptions.headroom_priority_classes), headroom_max_pods=headroom_max_pods,
        headroom_copy_scheduling=headroom_copy_scheduling, max_queries_per_cycle=max_queries_per_cycle, calendar_file=str(calendar) if calendar is not None else None,
        preflight_ahead_s=times["preflight_ahead"], preflight_every_s=times["preflight_every"], tz=tz, reshard_image=reshard_image,
    )  # fmt: skip
    ctl = Controller(Kube(api), history, options, telemetry=telemetry)
    if once:
        _run_once(ctl)
        return
    _run_until_signalled(ctl)
    if server is not None:
        server.shutdown()


def _start_log(log_level: str, watched: list[str] | None, lease_namespace: str, lease_name: str) -> None:
    import logging

    logging.basicConfig(level=getattr(logging, log_level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("peakscale.controller").info("watching %s; Lease %s/%s", "all namespaces" if watched is None else "namespace(s) " + ", ".join(watched), lease_namespace, lease_name)


def _api(kubeconfig: Path | None, context: str | None, name: str):
    from autoscaler.adapters.kube import api_client

    api = api_client(str(kubeconfig) if kubeconfig is not None else None, context)
    api.user_agent = f"peakscale-controller/{name}"
    return api


def _serve(telemetry: Telemetry, address: str, port: int, interval_s: int) -> ThreadingHTTPServer:
    from autoscaler.controller.telemetry import serve

    try:
        return serve(telemetry, port, interval_s, host=address)
    except OSError as exc:
        raise InputError("--metrics-port", f"cannot listen on {address}:{port} ({exc.strerror or exc})", "give a free port and an address of this host") from None


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def _check_names(*, namespace: list[str], lease_namespace: str, lease_name: str, metrics_address: str) -> None:
    """Names the API server would refuse are refused now, naming the flag, not at the first write."""
    import ipaddress

    for ns in namespace:
        if not _DNS_LABEL.fullmatch(ns):
            raise InputError("--namespace", f"{ns!r} is not a namespace name", "lowercase letters, digits and '-', at most 63")
    if not _DNS_LABEL.fullmatch(lease_namespace):
        raise InputError("--lease-namespace", f"{lease_namespace!r} is not a namespace name", "lowercase letters, digits and '-', at most 63")
    if not _DNS_NAME.fullmatch(lease_name):
        raise InputError("--lease-name", f"{lease_name!r} is not an object name", "lowercase letters, digits, '-' and '.', at most 253")
    try:
        ipaddress.ip_address(metrics_address)
    except ValueError:
        raise InputError("--metrics-address", f"{metrics_address!r} is not an IP address", "e.g. 0.0.0.0 or 127.0.0.1") from None


def _checked_flags(
    log_level: str, metrics_port: int, unready_after: int, prometheus_url: str, headroom_max_pods: int, max_queries_per_cycle: int, *, namespace: list[str], lease_namespace: str, lease_name: str, metrics_address: str
) -> str:
    """Every flag checked before any work starts; the Prometheus base URL (``prometheus_base``)."""
    _check_names(namespace=namespace, lease_namespace=lease_namespace, lease_name=lease_name, metrics_address=metrics_address)
    levels = ("debug", "info", "warning", "error")
    if log_level.lower() not in levels:
        raise InputError("--log-level", f"unknown level {log_level!r}", f"use {', '.join(levels)}")
    if not 1 <= metrics_port <= 65535:
        raise InputError("--metrics-port", f"{metrics_port} is not a TCP port", "give 1-65535, e.g. 8080")
    if unready_after < 1:
        raise InputError("--unready-after", f"{unready_after} must be at least 1", "e.g. 3")
    if not 1 <= max_queries_per_cycle <= 1_000_000:
        raise InputError("--max-queries-per-cycle", f"{max_queries_per_cycle} is not a query count", "give at least 1, e.g. 500")
    if not 0 <= headroom_max_pods <= 10_000:
        raise InputError("--headroom-max-pods", f"{headroom_max_pods} is not a pod count", "give 0-10000, e.g. 100")
    return prometheus_base(prometheus_url)


def _durations(**given: str) -> dict[str, int]:
    """Each duration option in seconds (named ``--<option>`` when wrong), the Lease's checked as
    client-go requires: retry period < renew deadline < lease duration."""
    zero_ok = {"preflight_ahead"}
    out = {key: parse_duration_s(text, field="--" + key.replace("_", "-"), allow_zero=key in zero_ok) for key, text in given.items()}
    retry_s, renew_s, lease_s = out["retry_period"], out["renew_deadline"], out["lease_duration"]
    if not 0 < retry_s < renew_s < lease_s:
        raise InputError("--renew-deadline", f"need --retry-period ({retry_s}s) < --renew-deadline ({renew_s}s) < --lease-duration ({lease_s}s)", "e.g. 2s, 10s, 15s")
    return out


def _check_calendar(calendar: Path | None, tz: str) -> None:
    """A bad entry of --calendar is named now, with the rules each cycle applies (a cycle skips a
    bad entry and reports it; at the start someone is there to fix it); and the zone of the log."""
    get_zone(tz, field="--tz")
    if calendar is None:
        return
    from autoscaler.adapters import yamlsafe
    from autoscaler.core.resources import parse_event
    from autoscaler.core.calendar import read_entries

    if not calendar.is_file():
        raise InputError("--calendar", f"no such file {str(calendar)!r}", "give the YAML calendar to read (e.g. a ConfigMap mount)")
    label = f"--calendar {calendar.name}"
    for e in read_entries(yamlsafe.read(calendar, label), None, label):
        try:
            parse_event({"metadata": {"name": e.name}, "spec": e.spec}, tuple(e.memory))
        except InputError as exc:
            raise InputError(f"{label} {e.name}", exc.problem, exc.fix) from None
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(f"{label} {e.name}", str(exc), "fix the entry") from None


def _read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("--prometheus-token-file", f"cannot read {str(path)!r} ({getattr(exc, 'strerror', None) or exc})", "give a readable text file") from None


def _check_ca(path: Path | None) -> None:
    if path is None:
        return
    try:
        path.read_bytes()
    except OSError as exc:
        raise InputError("--prometheus-ca", f"cannot read {str(path)!r} ({exc.strerror or exc})", "give a readable PEM bundle") from None


def _run_once(ctl: Controller) -> None:
    """One cycle, its report as JSON; a cycle that cannot reach the API fails on one line."""
    from autoscaler.errors import KubeError

    try:
        report = ctl.run_cycle()
    except (KubeError, OSError) as exc:
        raise CommandFailed(f"cannot reach the Kubernetes API ({type(exc).__name__}: {clip(str(exc), 200)})") from None
    except Exception as exc:  # noqa: BLE001 (one line, never a traceback)
        raise CommandFailed(f"the cycle failed ({type(exc).__name__}: {clip(str(exc), 200)})") from None
    doc = {
        "leader": report.leader,
        "policies": report.policies,
        "prometheus_queries": report.queries,
        "duration_s": round(report.duration_s, 4),
        # each policy's outcome; a null "planned" comes with "why" (no fresh metrics, say)
        "outcomes": [o.__dict__ for o in report.outcomes],
    }
    typer.echo(json.dumps(doc, indent=2))


def _run_until_signalled(ctl: Controller) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ctl.run_forever(stop)
