"""A real Prometheus (Debian package) on 127.0.0.1, with history backfilled by promtool."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.processes import stop_process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_openmetrics(path: Path, series: dict[str, list[tuple[int, float]]]) -> None:
    """``series``: {'name{labels}': [(unix seconds, value), ...]} -> OpenMetrics text (seconds!)."""
    lines = []
    names = sorted({key.split("{")[0] for key in series})
    for name in names:
        lines.append(f"# TYPE {name} gauge")
        for key, points in series.items():
            if key.split("{")[0] == name:
                lines.extend(f"{key} {value} {ts}" for ts, value in points)
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n")


def backfill(openmetrics: Path, tsdb: Path) -> None:
    tsdb.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(tsdb)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"promtool backfill failed: {done.stderr[-2000:]}")


def trace_and_prometheus(tmp: Path, metric: str, times: list[int], values: list[float], step_s: int) -> tuple[Path, PrometheusServer]:
    """One demand history two ways: ``tmp/trace.csv`` as a backtest or ``plan --trace`` reads it
    (each value the demand of the period that starts at its timestamp, UTC), and a Prometheus
    holding it as a rate over each period, labeled at the period's end."""
    from datetime import UTC, datetime

    trace = tmp / "trace.csv"
    trace.write_text("timestamp,value\n" + "".join(f"{datetime.fromtimestamp(t, UTC):%Y-%m-%d %H:%M:%S},{v!r}\n" for t, v in zip(times, values)))
    om = tmp / "history.om"
    write_openmetrics(om, {metric: [(t + step_s, v) for t, v in zip(times, values)]})
    backfill(om, tmp / "blocks")
    return trace, PrometheusServer(tmp / "blocks", tmp / "prom")


class PrometheusServer:
    """Started on a free port over a copy of a backfilled TSDB; stopped by pid."""

    def __init__(self, tsdb_template: Path, workdir: Path) -> None:
        if shutil.which("prometheus") is None:
            raise RuntimeError("prometheus is not installed: `make test` installs the Debian package")
        self.workdir = workdir
        self.tsdb = workdir / "tsdb"
        shutil.copytree(tsdb_template, self.tsdb)
        config = workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={self.tsdb}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=100y",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(workdir / 'prometheus.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("prometheus did not become ready in 60 s")

    def stop(self) -> None:
        stop_process(self.proc, 20)
        self.log.close()
