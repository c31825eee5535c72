"""Controller cycle time for 1,000 ScalingPolicies against a local Prometheus, and at scale:
5,000 policies beside 10,000 PromotionEvents (the controller's memory too).

A real Prometheus (backfilled with promtool, 100 series x 1 day at 1 min) and the Kubernetes API
double from the tests, in its own process (seeding 25,000 objects into the real control plane
would take longer than the cycles measured); hpa-floor policies, each with its own query,
Deployment and HPA, and promotion events. The first cycle fetches every history; the following
ones extend them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client
from rich.console import Console
from rich.table import Table

from autoscaler.controller.reconcile import Controller
from autoscaler.controller.model import ControllerOptions
from autoscaler.adapters.kube import Kube
from autoscaler.adapters.prometheus import HistoryCache
from tests.prometheus_server import PrometheusServer, backfill, write_openmetrics

POLICIES = 1000
CONCURRENCY = int(os.environ.get("PEAKSCALE_BENCH_CONCURRENCY", "2"))
SERIES = 100
NS = "bench"


class _Remote:
    """Seeds the out-of-process double through its API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def put_object(self, obj: dict[str, Any]) -> None:
        api = obj["apiVersion"]
        plural = {"Deployment": "deployments", "HorizontalPodAutoscaler": "horizontalpodautoscalers", "ScalingPolicy": "scalingpolicies", "PromotionEvent": "promotionevents"}[obj["kind"]]
        prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
        request = urllib.request.Request(
            f"{self.url}{prefix}/namespaces/{obj['metadata']['namespace']}/{plural}", data=json.dumps(obj).encode(), method="POST", headers={"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=10).read()


def _objects(i: int, ns: str = NS, tiers: int = 10) -> list[dict[str, Any]]:
    """Policy ``svc-<i>``: its Deployment, its HPA and the ScalingPolicy that raises the HPA's floor."""
    name = f"svc-{i}"
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns}, "spec": {"replicas": 3}},
        {
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name, "namespace": ns},
            "spec": {"scaleTargetRef": target, "minReplicas": 3, "maxReplicas": 50}, "status": {"currentReplicas": 3, "desiredReplicas": 3},
        },
        {
            "apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": name, "namespace": ns, "labels": {"group": f"g{i % tiers}"}},
            "spec": {
                "targetRef": target, "metric": {"query": f'sum(bench_demand{{app="svc-{i % SERIES}"}}) * {1 + i / 10000:.4f}', "capacityPerReplica": 100},
                "leadTime": "10m", "minReplicas": 3, "maxReplicas": 50, "forecast": {"history": "1d", "step": "1m"},
            },
        },
    ]  # fmt: skip


def _promotion(g: int, now: float, groups: int = 10, ns: str = NS) -> dict[str, Any]:
    """Promotion ``promo-<g>``: group ``g<g % groups>``'s policies; the first ten start ``11 + g``
    minutes after ``now``, the others an hour apart over the year after."""
    stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))  # noqa: E731
    begin = now + 660 + 60 * g if g < 10 else now + 86400 + 3600 * (g % 8000)
    return {
        "apiVersion": "peakscale.io/v1alpha1", "kind": "PromotionEvent", "metadata": {"name": f"promo-{g}", "namespace": ns},
        "spec": {
            "start": stamp(begin), "end": stamp(begin + 3600), "kind": "flash-sale", "expectedMultiplier": 3,
            "targets": {"matchLabels": {"group": f"g{g % groups}"}},
        },
    }  # fmt: skip


def _cycles(fake_url: str, prometheus_url: str, now: float, count: int = 6, namespaces: list[str] | None = None) -> list[tuple[int, float, int, int, float]]:
    """Cycles a minute apart: (cycle, wall s, range queries, actions, preflight s) each."""
    config = client.Configuration()
    config.host = fake_url
    clock = [now]
    ctl = Controller(
        Kube(client.ApiClient(config)),
        HistoryCache(prometheus_url),
        ControllerOptions(identity="bench", namespaces=namespaces or [NS], interval_s=60, lease_namespace=NS, fetch_concurrency=CONCURRENCY),
        clock=lambda: clock[0],
    )
    rows = []
    for cycle in range(count):
        report = ctl.run_cycle()
        rows.append((cycle + 1, report.duration_s, report.queries, sum(o.action != "none" for o in report.outcomes), report.preflight_s))
        clock[0] += 60
    return rows


def _in_child(fake_url: str, prom_url: str, now: float, cycles: int, spaces: list[str]) -> list[tuple[int, float, int, int, float]]:
    """The cycles, in a process of their own: its peak memory is the controller's, not this
    benchmark's (which seeded 25,000 objects)."""
    args = [sys.executable, "-m", "bench.controller_cycle", fake_url, prom_url, str(now), str(cycles), *spaces]
    done = subprocess.run(args, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, check=True)
    result = json.loads(done.stdout)
    global CHILD_PEAK_MB
    CHILD_PEAK_MB = max(CHILD_PEAK_MB, result["peak_mb"])
    return [tuple(r) for r in result["rows"]]


#: the highest peak RSS of the processes that ran the cycles
CHILD_PEAK_MB = 0.0


def _seeded(policies: int, promotions: int, prom_url: str, now: float, cycles: int, tenants: int = 1) -> list[tuple[int, float, int, int, float]]:
    """Start the double, seed it (``tenants`` namespaces, policies and promotions spread over
    them, four tiers each when there are several), run the cycles over every namespace."""
    # the API double runs in its own process, as an API server would: not on the controller's GIL
    fake_proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.kube"], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    assert fake_proc.stdout is not None
    fake = _Remote(fake_proc.stdout.readline().strip())
    try:
        spaces = [NS] if tenants == 1 else [f"tenant-{t}" for t in range(tenants)]
        tiers = 10 if tenants == 1 else 4
        for i in range(policies):
            for obj in _objects(i, spaces[i % len(spaces)], tiers):
                fake.put_object(obj)
        for g in range(promotions):
            fake.put_object(_promotion(g, now, tiers, spaces[g % len(spaces)]))
        return _in_child(fake.url, prom_url, now, cycles, spaces)
    finally:
        fake_proc.terminate()
        fake_proc.wait()


def run(console: Console) -> None:
    end = (int(time.time()) - 3 * 3600) // 60 * 60
    start = end - 86400
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        om = tmp / "history.om"
        write_openmetrics(om, {f'bench_demand{{app="svc-{k}"}}': [(ts, 1000 + 10 * k + (ts // 60) % 37) for ts in range(start, end + 60, 60)] for k in range(SERIES)})
        t0 = time.perf_counter()
        backfill(om, tmp / "blocks")
        backfill_s = time.perf_counter() - t0
        prom = PrometheusServer(tmp / "blocks", tmp)
        now = float(end - 3600)
        try:
            rows = _seeded(POLICIES, 10, prom.url, now, 6)
            big = _seeded(5000, 10_000, prom.url, now, 3, tenants=50)
        finally:
            prom.stop()
    table = Table(title=f"controller cycle: {POLICIES:,} ScalingPolicies, local Prometheus ({SERIES} series x 1 day backfilled in {backfill_s:.1f} s)", title_justify="left")
    for col in ("cycle", "wall s", "of which preflight s", "Prometheus range queries", "actions", "budget"):
        table.add_column(col, justify="right")
    for cycle, wall, queries, actions, checks in rows:
        table.add_row(str(cycle), f"{wall:.2f}", f"{checks:.2f}", f"{queries:,}", f"{actions:,}", "" if cycle == 1 else "< 2 s")
    console.print(table)
    steady = [r[1] for r in rows[1:]]
    console.print(f"steady-state cycle: median {statistics.median(steady):.2f} s, max {max(steady):.2f} s; queries per policy per cycle after the first: {rows[-1][2] / POLICIES:.2f}")
    scale = Table(title="controller cycle at scale: 5,000 ScalingPolicies and 10,000 PromotionEvents over 50 tenant namespaces (4 tiers each)", title_justify="left")
    for col in ("cycle", "wall s", "Prometheus range queries", "actions", "budget"):
        scale.add_column(col, justify="right")
    for cycle, wall, queries, actions, _ in big:
        scale.add_row(str(cycle), f"{wall:.2f}", f"{queries:,}", f"{actions:,}", "< 30 s (the interval)")
    console.print(scale)
    console.print(f"peak RSS of the process that ran the controller's cycles: {CHILD_PEAK_MB:.0f} MB, against the chart's 512Mi limit")
    console.print(
        "each cycle raises the floor of 100 policies (a new promotion group starts every minute) and spends up to "
        "0.3 s on the preflight checks of the promotions due within a day; Prometheus, the API "
        "double (its own process) and the controller share this machine's cores",
        style="dim",
    )


def _child() -> None:
    """``python -m bench.controller_cycle FAKE_URL PROMETHEUS_URL NOW CYCLES NAMESPACE...``"""
    fake_url, prom_url, now, cycles, *spaces = sys.argv[1:]
    rows = _cycles(fake_url, prom_url, float(now), int(cycles), spaces)
    peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(json.dumps({"rows": rows, "peak_mb": peak_kb / 1024}))


if __name__ == "__main__":
    _child()
