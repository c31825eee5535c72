"""The telemetry endpoint under a flood: idle connections never exhaust threads, and it listens
where it is told."""

from __future__ import annotations

import socket
import threading
import urllib.request

from autoscaler.controller.telemetry import Telemetry, serve
from tests.cluster.controlplane import free_port, wait_for


def test_a_flood_of_idle_connections_holds_no_more_than_the_bound_of_threads():
    port = free_port()
    server = serve(Telemetry(), port, interval_s=30, host="127.0.0.1")
    before = threading.active_count()
    idle = []
    try:
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", port))
            idle.append(sock)
        wait_for("the server to take the connections", lambda: threading.active_count() >= before + 10, 20)
        assert threading.active_count() <= before + 32 + 2
        # a probe still gets its answer once idle clients time out
        wait_for("/healthz to answer", lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200, 30, poll_s=0.5)
    finally:
        for sock in idle:
            sock.close()
        server.shutdown()
        server.server_close()


def test_it_listens_only_where_it_is_told():
    port = free_port()
    server = serve(Telemetry(), port, interval_s=30, host="127.0.0.1")
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()


def test_the_series_of_a_deleted_policy_leave_metrics():
    telemetry = Telemetry()
    for name in ("web", "gone"):
        telemetry.planned.labels("shop", name).set(5)
        telemetry.headroom.labels("shop", name, "planned").set(2)
    telemetry.forget_except({("shop", "web"), ("shop", "gone")})
    assert telemetry.forget_except({("shop", "web")}) == 1
    body = telemetry.render().decode()
    assert 'policy="web"' in body and 'policy="gone"' not in body
