"""What the controller tells Prometheus and the kubelet: /metrics, /healthz, /readyz.

Metric names are listed in ``METRIC_NAMES`` (the Grafana dashboard is checked against them).
Each controller owns its registry, so several can live in one process (tests, benchmarks).
"""

from __future__ import annotations

import threading
from typing import Any
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

METRIC_NAMES = (
    "peakscale_forecast_demand",
    "peakscale_planned_replicas",
    "peakscale_actual_replicas",
    "peakscale_floor_replicas",
    "peakscale_cycle_duration_seconds",
    "peakscale_errors_total",
    "peakscale_prometheus_queries_total",
    "peakscale_actions_total",
    "peakscale_is_leader",
    "peakscale_headroom_pods",
)


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("namespace", "policy")
        self.forecast = Gauge("peakscale_forecast_demand", "Forecast peak demand within the lead time", labels, registry=self.registry)
        self.planned = Gauge("peakscale_planned_replicas", "Replicas the plan asks for", labels, registry=self.registry)
        self.actual = Gauge("peakscale_actual_replicas", "Replicas the target runs now", labels, registry=self.registry)
        self.floor = Gauge("peakscale_floor_replicas", "HPA minReplicas (hpa-floor mode)", labels, registry=self.registry)
        self.cycle = Histogram(
            "peakscale_cycle_duration_seconds",
            "Duration of one reconcile cycle",
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )
        self.errors = Counter("peakscale_errors", "Errors by kind", ("kind",), registry=self.registry)
        self.queries = Counter("peakscale_prometheus_queries", "Range queries sent to Prometheus", registry=self.registry)
        self.actions = Counter("peakscale_actions", "Actions taken, by kind", ("action",), registry=self.registry)
        self.leader = Gauge("peakscale_is_leader", "1 while this instance holds the Lease", registry=self.registry)
        self.headroom = Gauge("peakscale_headroom_pods", "Node-headroom placeholder pods, planned or running", labels + ("state",), registry=self.registry)
        self.last_cycle_s: float | None = None
        #: when the cycle loop last made progress (a cycle began, its histories came or timed out)
        self.heartbeat_s: float | None = None
        self.ready = False
        #: the policies whose series this cycle's report carries
        self._reported: set[tuple[str, str]] = set()

    def beat(self) -> None:
        self.heartbeat_s = time.time()

    def forget_except(self, alive: set[tuple[str, str]]) -> int:
        """Drop the series of policies that are gone (a deleted policy's gauges must not stay in
        /metrics forever); returns how many policies were forgotten."""
        gone = self._reported - alive
        for key in gone:
            for gauge in (self.forecast, self.planned, self.actual, self.floor):
                try:
                    gauge.remove(*key)
                except KeyError:
                    pass
            for state in ("planned", "running"):
                try:
                    self.headroom.remove(*key, state)
                except KeyError:
                    pass
        self._reported = set(alive)
        return len(gone)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def serve(telemetry: Telemetry, port: int, interval_s: float, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Start the /metrics, /healthz and /readyz server in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True
        #: an idle or slow client is dropped after this long (it must not hold a thread)
        timeout = 5

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.startswith("/metrics"):
                body, status, kind = telemetry.render(), 200, CONTENT_TYPE_LATEST
            elif self.path.startswith("/healthz"):
                # liveness: the loop is alive (it made progress lately), not "Prometheus answered"
                last = telemetry.heartbeat_s
                alive = last is None or time.time() - last < max(60.0, 5 * interval_s)
                body, status, kind = (b"ok\n" if alive else b"cycle loop stalled\n"), (200 if alive else 503), "text/plain"
            elif self.path.startswith("/readyz"):
                # readiness: a leader's cycles succeed, a standby reaches the API and reads the Lease
                body, status, kind = (b"ok\n" if telemetry.ready else b"not ready: no cycle or Lease read succeeded lately\n"), (200 if telemetry.ready else 503), "text/plain"
            else:
                body, status, kind = b"not found\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            return None

    server = _Bounded((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="peakscale-telemetry", daemon=True).start()
    return server


class _Bounded(ThreadingHTTPServer):
    """At most ``MAX_CONNECTIONS`` requests served at once, each on its own thread; a connection
    beyond that is closed at once (a scraper and two probes need three, a flood gets none)."""

    daemon_threads = True
    MAX_CONNECTIONS = 32

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(self.MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
