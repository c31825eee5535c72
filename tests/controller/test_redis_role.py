"""The primary-only Service's label on a real Redis and the real API server: ``peakscale redis-role``,
as the data pods' ServiceAccount with the stack's Role (stacks.primary.role_rules), labels its own pod
primary while its Redis is the primary and replica once it follows another, and may label no other pod."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import redis
import yaml
from typer.testing import CliRunner

from autoscaler.adapters.kube import Kube
from autoscaler.adapters.redis_role import ROLE_LABEL, keep_labelled, label
from autoscaler.cli import app
from autoscaler.errors import KubeForbidden
from stacks.primary import role_rules
from tests.cluster.controlplane import kubeconfig, wait_for
from tests.cluster.facade import NO_POOL
from tests.cluster.objects import service_account_token
from tests.processes import stop_process, unique_ports

PASSWORD = "role-test"


@pytest.fixture
def servers(tmp_path):
    """Two redis-server processes on 127.0.0.1, each its own primary to begin with."""
    ports = unique_ports(2)
    procs = [
        subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(p), "--bind", "127.0.0.1", "--requirepass", PASSWORD, "--masterauth", PASSWORD, "--save", "", "--dir", str(tmp_path), "--daemonize", "no"], stdout=subprocess.DEVNULL)
        for p in ports
    ]  # fmt: skip
    clients = [redis.Redis(host="127.0.0.1", port=p, password=PASSWORD, decode_responses=True, socket_timeout=2) for p in ports]

    def answers(c: redis.Redis) -> bool:
        try:
            return bool(c.ping())
        except redis.RedisError:
            return False

    wait_for("redis-server to answer", lambda: all(answers(c) for c in clients), 30)
    yield ports, clients
    for p in procs:
        stop_process(p)


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "cache"}}, "spec": {"nodeSelector": {"pool": NO_POOL}, "containers": [{"name": "redis", "image": "registry.invalid/redis:7"}]}}


def labels_of(kube, name: str) -> dict:
    return dict(kube.get("v1", "pods", kube.ns, name)["metadata"].get("labels") or {})


def test_the_role_label_follows_its_redis_and_its_account_can_label_nothing_else(kube, cluster, servers, tmp_path):
    ports, clients = servers
    meta = {"name": "cache-node"}
    kube.put_object({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
    kube.put_object({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": role_rules("cache-node", 3)})
    binding = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cache-node"}
    kube.put_object({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta, "roleRef": binding, "subjects": [{"kind": "ServiceAccount", "name": "cache-node", "namespace": kube.ns}]})
    for name in ("cache-node-0", "web-0"):
        kube.put_object(pod(name))
    # the sidecar's own credentials: the data pods' ServiceAccount, through the stack's Role
    config = kubeconfig(cluster.url, cluster.pki.ca.cert, user={"token": service_account_token(kube.api, kube.ns, "cache-node")}, namespace=kube.ns)
    path = tmp_path / "pod.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    from autoscaler.adapters.kube import api_client

    as_pod = Kube(api_client(str(path), None))
    assert keep_labelled(as_pod, kube.ns, "cache-node-0", clients[0], every_s=0, looks=1) == "primary"
    assert labels_of(kube, "cache-node-0")[ROLE_LABEL] == "primary" and labels_of(kube, "cache-node-0")["app"] == "cache"
    # Sentinel makes it follow the other one: the label follows at the next look
    clients[0].execute_command("REPLICAOF", "127.0.0.1", str(ports[1]))
    assert keep_labelled(as_pod, kube.ns, "cache-node-0", clients[0], every_s=0, looks=1) == "replica"
    assert labels_of(kube, "cache-node-0")[ROLE_LABEL] == "replica"
    with pytest.raises(KubeForbidden):
        label(as_pod, kube.ns, "web-0", "primary")
    assert ROLE_LABEL not in labels_of(kube, "web-0")
    # the command, as the container runs it: the password from REDISCLI_AUTH only
    done = CliRunner().invoke(app, ["redis-role", "--pod", "cache-node-0", "-n", kube.ns, "--redis", f"127.0.0.1:{ports[1]}", "--once", "--kubeconfig", str(path)], env={**os.environ, "REDISCLI_AUTH": PASSWORD})
    assert done.exit_code == 0, done.output
    assert labels_of(kube, "cache-node-0")[ROLE_LABEL] == "primary"
