"""A real local Kubernetes control plane on 127.0.0.1, started the way envtest and kwok's binary
runtime start theirs: etcd, kube-apiserver (RBAC on, an audit log of every request a
ServiceAccount makes), kube-controller-manager, kube-scheduler, and kwok for the nodes.

Everything but the kubelet and the cloud is the real thing, built from Go modules by
``tools/build.sh``. A small process plays the cloud's one part a cluster needs here (LoadBalancer
addresses, ``tests/cluster/cloud.py``); kwok plays the kubelet only: nodes the tests create become Ready and keep a heartbeat Lease, pods the
real scheduler binds go Running and Ready. The HPA controller, the Deployment and ReplicaSet
controllers, the garbage collector, the scheduler's preemption, admission (priority, quota,
defaults), validation, server-side apply and RBAC are kube-apiserver's and the controllers' own.

Every process is started with its own log file under the work directory and stopped by pid.
Ports are picked free on 127.0.0.1; nothing listens elsewhere.

Hazards:
* kube-apiserver takes 5-20 s to become ready on a loaded 2-core machine; ``start`` waits on
  ``/readyz`` and on the controllers' first results (the ``default`` ServiceAccount), never on a
  sleep.
* Nodes are cluster-scoped and shared by the tests of one worker: a test that schedules pods makes
  nodes of its own, labelled with its own pool, and selects them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any
from collections.abc import Callable

import yaml

from tests.cluster.pki import Pair, Pki, make_pki
from tests.processes import stop_process, unique_ports

CACHE = Path(os.environ.get("PEAKSCALE_CACHE") or Path.home() / ".cache" / "peakscale")
BIN = CACHE / "bin"
SERVICE_CIDR = "10.0.0.0/24"
#: kube-controller-manager's HPA sync period: 15 s in a real cluster, shorter here so tests that
#: wait for the HPA to act wait less (the controller's logic is the same at any period)
HPA_SYNC = "2s"


def binary(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: build the control plane with `tools/build.sh` (`make test` runs it)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, *, poll_s: float = 0.2, alive: Callable[[], None] | None = None) -> Any:
    """Poll ``check`` until it returns something truthy (returned), or fail naming ``what``;
    ``alive`` raises at once when what is awaited can no longer happen (a process exited)."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 (not ready yet: keep polling)
            last = exc
        time.sleep(poll_s)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s" + (f" (last error: {last})" if last else ""))


class Process:
    def __init__(self, name: str, args: list[str], logs: Path, cwd: Path | None = None) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def check(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def stop(self, timeout_s: float = 20) -> None:
        stop_process(self.proc, timeout_s)
        self._log.close()


AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        # the cluster's own controllers (kube-controller-manager runs each as a ServiceAccount
        # of kube-system): not what the tests look at
        {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"]},
        # every request of every other ServiceAccount (the peakscale controller runs as one)
        {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
        {"level": "None"},
    ],
}


def kubeconfig(server: str, ca: Path, *, user: dict[str, str], namespace: str | None = None) -> dict[str, Any]:
    context: dict[str, str] = {"cluster": "local", "user": "user"}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": "local", "context": context}],
        "current-context": "local",
    }


def cert_user(pair: Pair) -> dict[str, str]:
    return {"client-certificate": str(pair.cert), "client-key": str(pair.key)}


class ControlPlane:
    """Start with ``start()``, stop with ``stop()``; ``kubeconfig`` is the admin's (system:masters)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.processes: list[Process] = []
        self.port = 0
        self.url = ""
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.audit_log = self.logs / "audit.log"
        self.pki: Pki | None = None

    # --- start and stop -----------------------------------------------------------------------
    def start(self, *, timeout_s: float = 240) -> ControlPlane:
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            self.pki = make_pki(self.workdir / "pki")
            etcd = self._etcd()
            wait_for("etcd /health", self._etcd_healthy, timeout_s, alive=etcd.check)
            apiserver = self._apiserver()
            wait_for("kube-apiserver /readyz", lambda: self._get("/readyz") == "ok", timeout_s, alive=apiserver.check)
            self._component_kubeconfigs()
            self._controller_manager()
            self._scheduler()
            self._kwok()
            self._cloud()
            # the controllers are up once their first results show: the ServiceAccount
            # controller made the default namespace's ServiceAccount
            wait_for(
                "kube-controller-manager's first ServiceAccount",
                lambda: self._get("/api/v1/namespaces/default/serviceaccounts/default"),
                timeout_s,
                alive=self._check_all,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def _spawn(self, name: str, args: list[str], cwd: Path | None = None) -> Process:
        process = Process(name, args, self.logs, cwd=cwd)
        self.processes.append(process)
        return process

    def _check_all(self) -> None:
        for process in self.processes:
            process.check()

    # --- the parts ----------------------------------------------------------------------------
    def _etcd(self) -> Process:
        self.etcd_port, peer = unique_ports(2)  # two free_port() calls can return one port twice
        data = self.workdir / "etcd"
        return self._spawn(
            "etcd",
            [
                str(binary("etcd")), f"--data-dir={data}", "--name=local",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}", f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=local=http://127.0.0.1:{peer}",
                # a test cluster: no fsync (as envtest), and a generous quota
                "--unsafe-no-fsync", "--quota-backend-bytes=4294967296", "--log-level=warn",
            ],
        )  # fmt: skip

    def _etcd_healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2) as r:
            return bool(json.loads(r.read()).get("health") == "true")

    def _apiserver(self) -> Process:
        assert self.pki is not None
        pki = self.pki
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        return self._spawn(
            "kube-apiserver",
            [
                str(binary("kube-apiserver")),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
                # the `kubernetes` Service's endpoints may not be loopback: nothing reconciles them
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={pki.apiserver.cert}", f"--tls-private-key-file={pki.apiserver.key}",
                f"--client-ca-file={pki.ca.cert}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={self.url}", f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
                # the aggregation layer: extension API servers (a metrics adapter) are reached
                # through it with the front-proxy client certificate
                f"--requestheader-client-ca-file={pki.front_proxy_ca.cert}", "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki.front_proxy_client.cert}", f"--proxy-client-key-file={pki.front_proxy_client.key}",
                f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}", "--audit-log-format=json",
                "--audit-log-maxsize=0", "--profiling=false", "--v=1",
            ],
        )  # fmt: skip

    def _write_kubeconfig(self, name: str, user: dict[str, str]) -> Path:
        assert self.pki is not None
        path = self.workdir / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig(self.url, self.pki.ca.cert, user=user)))
        path.chmod(0o600)
        return path

    def _component_kubeconfigs(self) -> None:
        assert self.pki is not None
        self._write_kubeconfig("admin", cert_user(self.pki.admin))
        self._write_kubeconfig("controller-manager", cert_user(self.pki.controller_manager))
        self._write_kubeconfig("scheduler", cert_user(self.pki.scheduler))
        self._write_kubeconfig("kwok", cert_user(self.pki.kwok))

    def _controller_manager(self) -> Process:
        assert self.pki is not None
        config = self.workdir / "controller-manager.kubeconfig"
        return self._spawn(
            "kube-controller-manager",
            [
                str(binary("kube-controller-manager")), f"--kubeconfig={config}",
                f"--authentication-kubeconfig={config}", f"--authorization-kubeconfig={config}",
                "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.pki.sa_key}", f"--root-ca-file={self.pki.ca.cert}",
                f"--cluster-signing-cert-file={self.pki.ca.cert}", f"--cluster-signing-key-file={self.pki.ca.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}", "--allocate-node-cidrs=false",
                f"--horizontal-pod-autoscaler-sync-period={HPA_SYNC}", "--v=1",
            ],
        )  # fmt: skip

    def _scheduler(self) -> Process:
        config = self.workdir / "scheduler.kubeconfig"
        return self._spawn(
            "kube-scheduler",
            [
                str(binary("kube-scheduler")), f"--kubeconfig={config}",
                f"--authentication-kubeconfig={config}", f"--authorization-kubeconfig={config}",
                "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--leader-elect=false", "--v=1",
            ],
        )  # fmt: skip

    def _kwok(self) -> Process:
        stages = binary("kwok").resolve().parent / "stages.yaml"
        return self._spawn(
            "kwok",
            [
                str(binary("kwok")), f"--kubeconfig={self.workdir / 'kwok.kubeconfig'}", f"--config={stages}",
                "--manage-all-nodes=true", f"--server-address=127.0.0.1:{free_port()}", "--node-ip=127.0.0.1",
                # pod IPs apart from the service range (10.0.0.0/24)
                "--cidr=10.244.0.1/16",
                # nodes renew a Lease as kubelets do, so the node lifecycle controller keeps them Ready
                "--node-lease-duration-seconds=40",
            ],
        )  # fmt: skip

    def _cloud(self) -> Process:
        """LoadBalancer addresses, as a cloud's service controller would (``tests/cluster/cloud.py``)."""
        import sys

        repo = Path(__file__).resolve().parents[2]
        return self._spawn("cloud", [sys.executable, "-m", "tests.cluster.cloud", f"--kubeconfig={self.kubeconfig}"], cwd=repo)

    # --- talking to it --------------------------------------------------------------------------
    def _ssl(self) -> ssl.SSLContext:
        assert self.pki is not None
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        context.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        return context

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5, context=self._ssl()) as r:
            return str(r.read().decode())

    def version(self) -> dict[str, Any]:
        return dict(json.loads(self._get("/version")))

    def api(self) -> Any:
        """The official client, as the admin."""
        from kubernetes import config as kconfig

        return kconfig.new_client_from_config(config_file=str(self.kubeconfig))

    def token_kubeconfig(self, path: Path, token: str, *, namespace: str | None = None) -> Path:
        """A kubeconfig that authenticates with a bearer token (a ServiceAccount's)."""
        assert self.pki is not None
        path.write_text(yaml.safe_dump(kubeconfig(self.url, self.pki.ca.cert, user={"token": token}, namespace=namespace)))
        path.chmod(0o600)
        return path

    def audit(self) -> list[dict[str, Any]]:
        """Every audit event logged so far (the requests ServiceAccounts made)."""
        if not self.audit_log.exists():
            return []
        events = []
        for line in self.audit_log.read_text().splitlines():
            if line.strip():
                events.append(json.loads(line))
        return events

    def logs_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(1500)}" for p in self.processes)


def cluster_available() -> bool:
    return all((BIN / name).exists() for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"))


def copy_kubeconfig(source: Path, target: Path) -> Path:
    shutil.copy(source, target)
    return target
