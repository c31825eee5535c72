"""The load an HPA sees, served the way prometheus-adapter serves it: an extension API server for
``external.metrics.k8s.io/v1beta1``, registered with the real aggregation layer.

The real HPA controller reads an External metric through kube-apiserver, which forwards the
request (with its front-proxy client certificate) to this server on 127.0.0.1. A test sets what
each metric reads with ``set(namespace, name, value)``: that is the test's input, as the demand a
trace holds is a backtest's. Without a metric an HPA can scale up to its floor but never back
down, which is why a test of "back to the original after the cool-down" needs one.

The APIService points at a Service of type ExternalName (``localhost``): the aggregator resolves
a Service to its cluster IP or, for ExternalName, its name, and this control plane has no service
network, while Endpoints may not hold loopback addresses.
"""

from __future__ import annotations

import json
import ssl
import threading
from datetime import datetime, UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

from kubernetes import client

from tests.cluster.controlplane import ControlPlane, wait_for
from tests.cluster.objects import apply
from tests.cluster.pki import CA

GROUP, VERSION = "external.metrics.k8s.io", "v1beta1"


class MetricsAdapter:
    def __init__(self, cluster: ControlPlane) -> None:
        self.cluster = cluster
        self.values: dict[tuple[str, str], float] = {}
        self.requests = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def set(self, namespace: str, metric: str, value: float) -> None:
        with self._lock:
            self.values[(namespace, metric)] = float(value)

    def _answer(self, path: str) -> tuple[int, dict[str, Any]]:
        parts = urlparse(path).path.strip("/").split("/")
        if parts == ["apis", GROUP, VERSION]:
            resources = [{"name": "*", "singularName": "", "namespaced": True, "kind": "ExternalMetricValueList", "verbs": ["get"]}]
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}", "resources": resources}
        if len(parts) == 6 and parts[:3] == ["apis", GROUP, VERSION] and parts[3] == "namespaces":
            namespace, metric = parts[4], parts[5]
            with self._lock:
                self.requests += 1
                value = self.values.get((namespace, metric))
            if value is None:
                return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": f"no metric {metric}"}
            item = {
                "metricName": metric,
                "metricLabels": {},
                "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "value": f"{round(value * 1000)}m",
            }
            return 200, {"kind": "ExternalMetricValueList", "apiVersion": f"{GROUP}/{VERSION}", "metadata": {}, "items": [item]}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": path}

    def start(self) -> MetricsAdapter:
        adapter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                status, body = adapter._answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return None

        workdir = self.cluster.workdir / "metrics-adapter"
        workdir.mkdir(exist_ok=True)
        serving = CA(workdir, "adapter-ca").issue("adapter", cn="metrics-adapter", hosts=("localhost", "127.0.0.1"), server=True)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(serving.cert), str(serving.key))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self._register(int(self._server.server_address[1]))
        return self

    def _register(self, port: int) -> None:
        api = self.cluster.api()
        apply(
            api,
            [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "peakscale-test-metrics", "namespace": "kube-system"},
                    "spec": {"type": "ExternalName", "externalName": "localhost", "ports": [{"name": "https", "port": port}]},
                },
                {
                    "apiVersion": "apiregistration.k8s.io/v1",
                    "kind": "APIService",
                    "metadata": {"name": f"{VERSION}.{GROUP}"},
                    "spec": {
                        "group": GROUP,
                        "version": VERSION,
                        "service": {"name": "peakscale-test-metrics", "namespace": "kube-system", "port": port},
                        # a test server on loopback with a certificate of its own
                        "insecureSkipTLSVerify": True,
                        "groupPriorityMinimum": 100,
                        "versionPriority": 100,
                    },
                },
            ],
        )
        registration = client.ApiregistrationV1Api(api)

        def available() -> bool:
            status = registration.read_api_service(f"{VERSION}.{GROUP}").status
            return any(c.type == "Available" and c.status == "True" for c in (status.conditions or []))

        wait_for("the external metrics APIService Available", available, 60)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
