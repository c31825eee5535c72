"""``peakscale trace``: the demand history a backtest replays, from where an SRE's history is.

``trace pull`` asks Prometheus for a query's range, in range queries of at most 10,000 points each
(a progress bar on a terminal), and writes the ``timestamp,value`` CSV that ``backtest --trace``
and ``plan --trace`` read: each value the demand of the period that starts at its timestamp
(Prometheus labels a rate at the end of the period it measures), a missing sample an empty value.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from autoscaler.cli.app import app
from autoscaler.cli.output import PROMETHEUS_ENV, Progress, prometheus_base
from autoscaler.core.durations import parse_duration_s
from autoscaler.errors import InputError

trace_app = typer.Typer(help="Traces: the demand history a backtest replays.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(trace_app, name="trace")


@trace_app.command("pull")
def pull(
    query: Annotated[str, typer.Option(help="The PromQL of the demand, e.g. 'sum(rate(http_requests_total{app=\"shop\"}[1m]))'.")],
    out: Annotated[Path, typer.Option("--out", help="The CSV to write (timestamp,value).")],
    prometheus_url: Annotated[Optional[str], typer.Option(envvar=PROMETHEUS_ENV, help="Prometheus' base URL.")] = None,
    start: Annotated[str, typer.Option("--from", help="Start: -14d (back from --to), or a local time in --tz.")] = "-14d",
    end: Annotated[str, typer.Option("--to", help="End: now, or a local time in --tz.")] = "now",
    step: Annotated[str, typer.Option(help="The trace's step (the resolution the backtest replays).")] = "1m",
    tz: Annotated[str, typer.Option("--tz", help="Zone of --from and --to when they are local times.")] = "Asia/Shanghai",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")] = False,
) -> None:
    """Write a trace from a Prometheus range query, for backtest --trace and plan --trace.

    Examples:

    peakscale trace pull --prometheus-url http://127.0.0.1:9090 --query 'sum(srs_clients)' --from -14d --out edge.csv

    peakscale trace pull --query 'sum(rate(redis_commands_processed_total[1m]))' --from '2026-11-01 00:00' --to '2026-11-12 00:00' --step 5m --out cache.csv
    """
    from autoscaler.adapters.prometheus import HistoryCache
    from autoscaler.cli.promo_store import parse_time
    from autoscaler.core.trace import MAX_SAMPLES
    from autoscaler.errors import MetricsUnavailable, Unavailable

    if prometheus_url is None:
        raise InputError("--prometheus-url", "no Prometheus to pull from", f"give --prometheus-url URL (or set {PROMETHEUS_ENV})")
    base = prometheus_base(prometheus_url)
    step_s = parse_duration_s(step, field="--step")
    to_s = int(time.time()) if end == "now" else int(parse_time(end, tz, "--to").timestamp())
    from_s = to_s - parse_duration_s(start[1:], field="--from") if start.startswith("-") else int(parse_time(start, tz, "--from").timestamp())
    if from_s >= to_s:
        raise InputError("--from", "is not before --to", "e.g. --from -14d")
    if (to_s - from_s) // step_s > MAX_SAMPLES:
        raise InputError("--step", f"{(to_s - from_s) // step_s:,} samples from --from to --to, over {MAX_SAMPLES:,}", "a longer --step or a shorter range")
    with Progress(enabled=not quiet) as report:
        try:
            series = HistoryCache(base, timeout_s=60).history(query, now_s=to_s, history_s=to_s - from_s, step_s=step_s, stale_after_s=10**12, progress=lambda f: report("pull", f))
        except MetricsUnavailable as exc:
            raise Unavailable(f"Prometheus at {base} gave nothing for {query!r} from --from to --to: {exc}") from None
    rows = ["timestamp,value"]
    for t, v in zip(series.times_s.tolist(), series.values.tolist()):
        # labeled at the end of the period it measures: the trace names the period's start
        rows.append(f"{datetime.fromtimestamp(t - step_s, UTC):%Y-%m-%dT%H:%M:%S+00:00},{'' if v != v else repr(v)}")
    try:
        out.write_text("\n".join(rows) + "\n")
    except OSError as exc:
        raise InputError("--out", f"cannot write {str(out)!r} ({exc.strerror or exc})", "give a writable path") from None
    if not quiet:
        missing = sum(1 for v in series.values.tolist() if v != v)
        typer.echo(f"wrote {out}: {len(rows) - 1:,} samples at {step} ({missing:,} missing), {datetime.fromtimestamp(from_s, UTC):%Y-%m-%d %H:%M} to {datetime.fromtimestamp(to_s, UTC):%Y-%m-%d %H:%M} UTC")
