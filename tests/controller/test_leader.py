"""Two controller processes, one real Lease: never two writers, failover within a lease and a cycle.

The leader is frozen with SIGSTOP past its renew deadline (a long GC pause, a stalled node), then
resumed. kube-apiserver's audit log (who sent what, when, by the User-Agent each instance sets) is
the evidence. Every step waits on what the log shows, never on a fixed sleep: on a loaded 2-core
machine a process can take seconds to start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime

from tests.cluster.controlplane import free_port, wait_for
from tests.processes import unique_ports

LEASE, RENEW, RETRY, INTERVAL = 5, 3, 1, 1
#: the renewal loop sleeps a retry period plus up to 20 % jitter (client-go's JitterUntil)
JITTER = 1.2


def seed(kube) -> None:
    kube.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}})
    kube.put_object(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": 100},
        }
    )
    # demand that Prometheus computes for any time, switching every 20 s: the leader writes often
    query = "vector(1000 + 900 * (floor(time() / 20) % 2))"
    spec = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "metric": {"query": query, "capacityPerReplica": 100},
        "leadTime": "1m",
        "minReplicas": 3,
        "maxReplicas": 100,
        "scaleDownStabilization": "0s",
        "forecast": {"history": "1d", "step": "10s"},
    }
    kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "web"}, "spec": spec})


def start(identity: str, kubeconfig, prometheus, ns: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "-m", "autoscaler.cli", "controller", "--prometheus-url", prometheus.url, "--kubeconfig", str(kubeconfig),
            "-n", ns, "--lease-namespace", ns, "--identity", identity, "--interval", f"{INTERVAL}s", "--lease-duration", f"{LEASE}s",
            "--renew-deadline", f"{RENEW}s", "--retry-period", f"{RETRY}s", "--metrics-port", str(free_port()), "--log-level", "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def at(event: dict) -> float:
    return datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()


class Log:
    """The controller's requests in the audit log, as (time, instance, verb, path)."""

    def __init__(self, kube) -> None:
        self.kube = kube

    def entries(self) -> list[tuple[float, str, str, str]]:
        return [(at(e), e["userAgent"].split("/")[1].split(" ")[0], e["verb"], e["requestURI"]) for e in self.kube.audit() if e["userAgent"].startswith("peakscale-controller/")]

    def writes(self, who: str, *, leases: bool = False, after: float = 0.0) -> list[float]:
        return [t for t, w, verb, path in self.entries() if w == who and verb in ("create", "update", "patch", "delete") and ("/leases" in path) == leases and t >= after]

    def lease_reads(self, who: str, after: float) -> list[float]:
        return [t for t, w, verb, path in self.entries() if w == who and verb == "get" and "/leases/" in path and t >= after]


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=30)
    return proc.stderr.read() if proc.stderr else ""


def test_a_paused_leader_never_writes_beside_its_successor(kube, prometheus, tmp_path):
    seed(kube)
    kubeconfig = kube.cluster.token_kubeconfig(tmp_path / "kc", kube.token())
    log = Log(kube)
    a = start("alpha", kubeconfig, prometheus, kube.ns)
    b = None
    errors = ""
    try:
        wait_for("alpha to lead and write", lambda: log.writes("alpha"), 120, poll_s=0.5)
        b = start("bravo", kubeconfig, prometheus, kube.ns)
        wait_for("bravo to stand by (it reads the Lease)", lambda: log.lease_reads("bravo", 0), 120, poll_s=0.5)
        paused_at = time.time()
        os.kill(a.pid, signal.SIGSTOP)  # alpha freezes mid-whatever, past its renew deadline
        wait_for("bravo to take over and write", lambda: log.writes("bravo", after=paused_at), 60, poll_s=0.5)
        os.kill(a.pid, signal.SIGCONT)  # alpha wakes up thinking nothing happened
        resumed_at = time.time()
        # alpha looks at the Lease again and finds it held; bravo renews it twice more after that
        wait_for("alpha to see the Lease after waking", lambda: log.lease_reads("alpha", resumed_at), 60, poll_s=0.5)
        seen = log.lease_reads("alpha", resumed_at)[0]
        wait_for("bravo to renew after alpha woke", lambda: len(log.writes("bravo", leases=True, after=seen)) >= 2, 60, poll_s=0.5)
    finally:
        # alpha, the standby, goes first: were bravo stopped first, it would hand the Lease over
        # and alpha would rightly lead again
        errors += stop(a)
        if b is not None:
            errors += stop(b)
    assert "Traceback" not in errors, errors[-3000:]
    alpha, bravo = log.writes("alpha"), log.writes("bravo")
    assert alpha and bravo, "both should have led at some point"
    # a stopped process sends nothing: what the log holds during the pause is at most the one
    # request alpha had already sent when SIGSTOP landed (the documented no-fencing hazard)
    assert len([t for t in alpha if paused_at <= t < resumed_at]) <= 1, "alpha wrote more than one in-flight request while stopped"
    assert all(t < resumed_at for t in alpha), "alpha wrote after it woke up"
    assert max(alpha) < min(bravo), "the two wrote in the same stretch of time"
    # failover: bravo's first write comes at most a lease duration, a jittered retry and a cycle
    # after alpha's last renewal
    last_renewal = max(t for t in log.writes("alpha", leases=True) if t < paused_at)
    bound = LEASE + JITTER * RETRY + INTERVAL + JITTER * RETRY
    assert min(bravo) - last_renewal <= bound, (min(bravo) - last_renewal, bound)


def test_two_controllers_started_with_one_identity_never_both_lead(kube, prometheus, tmp_path):
    import urllib.request

    seed(kube)
    kubeconfig = kube.cluster.token_kubeconfig(tmp_path / "kc", kube.token())
    ports = unique_ports(2)  # distinct: two free_port() calls can return one port twice
    procs = [
        subprocess.Popen(
            [
                sys.executable, "-m", "autoscaler.cli", "controller", "--prometheus-url", prometheus.url, "--kubeconfig", str(kubeconfig),
                "-n", kube.ns, "--lease-namespace", kube.ns, "--identity", "twin", "--interval", "1s", "--lease-duration", f"{LEASE}s",
                "--renew-deadline", f"{RENEW}s", "--retry-period", f"{RETRY}s", "--metrics-port", str(port), "--metrics-address", "127.0.0.1",
                "--log-level", "warning",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for port in ports
    ]

    def leading() -> list[float]:
        out = []
        for port in ports:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            out.append(next(float(line.split()[-1]) for line in body.splitlines() if line.startswith("peakscale_is_leader ")))
        return out

    try:
        wait_for("one of the twins to lead", lambda: sum(leading()) == 1, 120, poll_s=0.5)
        lease = kube.get("coordination.k8s.io/v1", "leases", kube.ns, "peakscale-controller")
        assert lease["spec"]["holderIdentity"].startswith("twin_")
        for _ in range(5):  # and it stays so, renewal after renewal
            renewed = kube.get("coordination.k8s.io/v1", "leases", kube.ns, "peakscale-controller")["spec"]["renewTime"]
            wait_for("the Lease renewed", lambda r=renewed: kube.get("coordination.k8s.io/v1", "leases", kube.ns, "peakscale-controller")["spec"]["renewTime"] != r, 30)
            assert sum(leading()) <= 1
    finally:
        for proc in procs:
            stop(proc)
