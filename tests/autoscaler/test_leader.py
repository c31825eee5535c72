"""Two controller processes, one Lease: never two writers, failover within a lease and a cycle.

The leader is frozen with SIGSTOP past its renew deadline (a long GC pause, a stalled node), then
resumed. The Kubernetes double's own request log (who wrote what, when) is the evidence.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.autoscaler.test_controller_faults import NS
from tests.fakes.kube import write_kubeconfig
from tests.prometheus_server import free_port

LEASE, RENEW, RETRY, INTERVAL = 5, 3, 1, 1
WRITES = ("PUT", "POST", "PATCH", "DELETE")


def seed(kube) -> None:
    kube.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS}, "spec": {"replicas": 3}})
    kube.put_object(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": 100},
            "status": {"currentReplicas": 3, "desiredReplicas": 3},
        }
    )
    # demand that Prometheus computes for any time, switching every 20 s: the leader writes often
    query = "vector(1000 + 900 * (floor(time() / 20) % 2))"
    kube.put_object(
        {
            "apiVersion": "peakscale.io/v1alpha1",
            "kind": "ScalingPolicy",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "metric": {"query": query, "capacityPerReplica": 100},
                "leadTime": "1m",
                "minReplicas": 3,
                "maxReplicas": 100,
                "scaleDownStabilization": "0s",
                "forecast": {"history": "1d", "step": "10s"},
            },
        }
    )


def start(identity: str, kubeconfig, prometheus) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "-m", "autoscaler.cli", "controller", "--prometheus-url", prometheus.url, "--kubeconfig", str(kubeconfig),
            "-n", NS, "--lease-namespace", NS, "--identity", identity, "--interval", f"{INTERVAL}s", "--lease-duration", f"{LEASE}s",
            "--renew-deadline", f"{RENEW}s", "--retry-period", f"{RETRY}s", "--metrics-port", str(free_port()), "--log-level", "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_a_paused_leader_never_writes_beside_its_successor(kube, prometheus, tmp_path):
    seed(kube)
    kubeconfig = write_kubeconfig(kube.url, tmp_path / "kc")
    a = start("alpha", kubeconfig, prometheus)
    try:
        time.sleep(3)
        b = start("bravo", kubeconfig, prometheus)
        try:
            time.sleep(5)
            paused_at = time.monotonic()
            os.kill(a.pid, signal.SIGSTOP)  # alpha freezes mid-whatever, past its renew deadline
            time.sleep(LEASE * 2)
            os.kill(a.pid, signal.SIGCONT)  # alpha wakes up thinking nothing happened
            resumed_at = time.monotonic()
            time.sleep(6)
        finally:
            b.terminate()
            b.wait(timeout=20)
    finally:
        a.terminate()
        a.wait(timeout=20)
    errors = a.stderr.read() + b.stderr.read()
    assert "Traceback" not in errors, errors[-3000:]
    log = list(kube.timeline)
    writes = [(t, ua.rsplit("/", 1)[-1]) for t, ua, method, path in log if method in WRITES and "/leases" not in path]
    renewals = [(t, ua.rsplit("/", 1)[-1]) for t, ua, method, path in log if method in WRITES and "/leases" in path]
    by = {name: [t for t, who in writes if who == name] for name in ("alpha", "bravo")}
    assert by["alpha"] and by["bravo"], "both should have led at some point"
    # a stopped process sends nothing: what the double logs during the pause is the one request
    # alpha had already sent when SIGSTOP landed (the documented no-fencing hazard)
    assert len([t for t in by["alpha"] if paused_at <= t < resumed_at]) <= 1, "alpha wrote more than one in-flight request while stopped"
    assert all(t < resumed_at for t in by["alpha"]), "alpha wrote after it woke up"
    assert max(by["alpha"]) < min(by["bravo"]), "the two wrote in the same stretch of time"
    # failover: bravo's first write comes at most a lease duration and a cycle after alpha's last renewal
    last_renewal = max(t for t, who in renewals if who == "alpha" and t < paused_at)
    assert min(by["bravo"]) - last_renewal <= LEASE + INTERVAL + 2 * RETRY, min(by["bravo"]) - last_renewal
