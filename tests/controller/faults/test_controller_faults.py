"""The controller against the Kubernetes API double, for what the real control plane cannot be
made to do on cue (everything else runs on the real one, in ``tests/controller/``):

* injected 409s, 500s and 503s on a chosen request, and a second writer racing between the
  controller's read and its write (``fail_next``, a wrapped ``handle``);
* a status the API server's schema would refuse (a hand-edited etcd, an older CRD): the double
  stores it as written, so the controller's defence against it is exercised;
* no cluster at all, and a Prometheus that never answers (no Kubernetes needed).

``tests/controller/test_contract.py`` runs one scenario on both, so the double cannot drift.
"""

from __future__ import annotations

import subprocess
import sys


import pytest
from kubernetes import client

from autoscaler.controller.reconcile import Controller
from autoscaler.controller.model import ControllerOptions
from autoscaler.adapters.kube import Kube
from autoscaler.adapters.prometheus import HistoryCache, escape_label_value, render_query
from tests.fakes.kube import write_kubeconfig
from tests.builders import iso, web_tier
from tests.controller.world import COOLDOWN, LEAD, Clock, assert_web_acted_each_cycle
from tests.prometheus_server import free_port

NS = "shop"


def api_for(fake) -> client.ApiClient:
    config = client.Configuration()
    config.host = fake.url
    return client.ApiClient(config)


def seed(fake, *, event_start: float, expected_peak: float = 50_000, hpa_max: int = 100, policy_max: int = 80, mode: str = "hpa-floor", extra_spec=None):
    # the double runs no controllers: the objects carry the status theirs would write
    for obj in web_tier(NS, event_start=event_start, expected_peak=expected_peak, hpa_max=hpa_max, policy_max=policy_max, mode=mode, extra_spec=extra_spec, status=True):
        fake.put_object(obj)


def controller(fake, prometheus, clock, identity="a", **options):
    opts = ControllerOptions(identity=identity, namespaces=[NS], interval_s=60, lease_namespace=NS, **options)
    return Controller(Kube(api_for(fake)), HistoryCache(prometheus.url, timeout_s=5), opts, clock=clock)


def hpa_min(fake) -> int:
    return fake.get("autoscaling/v2", "horizontalpodautoscalers", NS, "web")["spec"]["minReplicas"]


def events_with(fake, reason: str) -> list[dict]:
    return [e for e in fake.list("v1", "events", NS) if e.get("reason") == reason]


@pytest.fixture
def start(history_window):
    """A simulated 'now' well inside the backfilled history."""
    return float(history_window[1] - 6 * 3600)


def test_injected_conflicts_are_retried_to_success(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    kube.fail_next("PUT", "/horizontalpodautoscalers/web", status=409, times=2)
    ctl = controller(kube, prometheus, Clock(t - 300))
    ctl.run_cycle()
    assert hpa_min(kube) == 72
    puts = [p for m, p in kube.requests if m == "PUT" and p.endswith("/horizontalpodautoscalers/web")]
    assert len(puts) == 3


def test_concurrent_writer_conflict_is_resolved_with_a_fresh_read(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    # someone else bumps the HPA between the controller's read and write: a real 409
    original = kube.handle

    def racing(method, path, body, content_type):
        if method == "PUT" and path.split("?")[0].endswith("/horizontalpodautoscalers/web") and not racing.done:
            racing.done = True
            hpa = kube.get("autoscaling/v2", "horizontalpodautoscalers", NS, "web")
            hpa["spec"]["maxReplicas"] = 90
            original("PUT", path, hpa, "application/json")
        return original(method, path, body, content_type)

    racing.done = False
    kube.handle = racing
    controller(kube, prometheus, Clock(t - 300)).run_cycle()
    hpa = kube.get("autoscaling/v2", "horizontalpodautoscalers", NS, "web")
    assert hpa["spec"]["minReplicas"] == 72 and hpa["spec"]["maxReplicas"] == 90  # neither update lost


def test_label_values_reaching_promql_are_escaped():
    assert escape_label_value('a"b\\c') == 'a\\"b\\\\c'
    query = render_query('sum(rate(http_requests_total{namespace="${namespace}",deployment="${target}"}[1m]))', namespace='x"} or vector(1e9) #', target="web")
    assert query == 'sum(rate(http_requests_total{namespace="x\\"} or vector(1e9) #",deployment="web"}[1m]))'


def kubeconfig_for(fake, path):
    return write_kubeconfig(fake.url, path)


def test_controller_command_reports_an_unreachable_cluster(tmp_path, prometheus):
    class Nowhere:
        url = f"http://127.0.0.1:{free_port()}"

    done = subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "controller", "--prometheus-url", prometheus.url, "--kubeconfig", str(kubeconfig_for(Nowhere, tmp_path / "kc")), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "cannot reach the Kubernetes API" in done.stderr and "Traceback" not in done.stderr


def test_a_slow_prometheus_times_out_instead_of_stalling_the_cycle():
    import socket
    import threading
    import time

    from autoscaler.errors import MetricsUnavailable

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    held = []
    threading.Thread(target=lambda: [held.append(listener.accept()) for _ in range(5)], daemon=True).start()
    cache = HistoryCache(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout_s=1)
    # the server accepts and never answers: the query must fail (and the policy hold), not hang
    with pytest.raises(MetricsUnavailable, match="ReadTimeout|timed out|Timeout"):
        cache.history("up", now_s=time.time(), history_s=3600, step_s=60, stale_after_s=300)
    listener.close()


def test_a_status_the_schema_would_refuse_is_rewritten_while_the_policy_is_acted_on(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t)
    kube.put_object(
        {
            "apiVersion": "peakscale.io/v1alpha1",
            "kind": "PromotionEvent",
            "metadata": {"name": "garbled", "namespace": NS},
            "spec": {"start": iso(t), "end": iso(t + 600), "kind": "x"},
            "status": {"conditions": "not a list", "memory": [{"policy": 5}]},
        }
    )
    clock = Clock(t - LEAD - 60)
    ctl = controller(kube, prometheus, clock)
    assert_web_acted_each_cycle(ctl, clock, lambda: hpa_min(kube))
    garbled = kube.get("peakscale.io/v1alpha1", "promotionevents", NS, "garbled")["status"]
    assert garbled["phase"] in ("PreScaling", "Active") and isinstance(garbled["conditions"], list)


def fake_events(kube) -> list[dict]:
    return kube.list("v1", "events", NS)


def test_a_failing_write_is_retried_and_a_promotion_is_done_only_once_the_floor_is_back(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, extra_spec={"floor": "events-only"})
    clock = Clock(t - LEAD - 60)
    ctl = controller(kube, prometheus, clock)
    kube.fail_next("PUT", "/horizontalpodautoscalers/web", status=500, times=2)
    ctl.run_cycle()
    assert hpa_min(kube) == 72  # two 500s, then the write landed: retried with backoff
    clock.now = t + 3600 + COOLDOWN + 60
    kube.fail_next("PUT", "/horizontalpodautoscalers/web", status=503, times=100)
    ctl.run_cycle()
    assert hpa_min(kube) == 72
    event = kube.get("peakscale.io/v1alpha1", "promotionevents", NS, "flash-sale")["status"]
    assert event["phase"] == "Cooling" and {c["type"]: c["status"] for c in event["conditions"]}["Restored"] == "False"
    policy = kube.get("peakscale.io/v1alpha1", "scalingpolicies", NS, "web")["status"]
    assert {c["type"]: c["reason"] for c in policy["conditions"]}["Written"] == "WriteFailed"
    assert [e for e in fake_events(kube) if e["reason"] == "WriteFailed"]
    kube._faults.clear()
    clock.now += 60
    ctl.run_cycle()
    assert hpa_min(kube) == 3
    assert kube.get("peakscale.io/v1alpha1", "promotionevents", NS, "flash-sale")["status"]["phase"] == "Done"


def test_a_cycle_that_fails_as_a_whole_logs_one_line_and_readyz_turns_503(kube, prometheus, start, caplog):
    t = start + 3600
    seed(kube, event_start=t)
    ctl = controller(kube, prometheus, Clock(t - 1800), unready_after=2)
    assert ctl.run_guarded() is not None and ctl.telemetry.ready
    kube.fail_next("GET", "/scalingpolicies", status=500, times=100)
    caplog.clear()
    assert ctl.run_guarded() is None and ctl.telemetry.ready  # one failure: still ready
    assert ctl.run_guarded() is None and not ctl.telemetry.ready  # two in a row: not ready
    failures = [r for r in caplog.records if "cycle failed" in r.getMessage() and r.levelname == "ERROR"]
    assert len(failures) == 2 and all(r.exc_info is None for r in failures)  # one line each, no traceback
    assert "500" in failures[0].getMessage() or "InternalError" in failures[0].getMessage()
    kube._faults.clear()
    assert ctl.run_guarded() is not None and ctl.telemetry.ready


