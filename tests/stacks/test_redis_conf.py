"""Every redis.conf and sentinel.conf the stacks generate, started by a real redis-server."""

from __future__ import annotations

import re

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from stacks.config import CacheConfig, RedisSettings, parse_stack_config
from stacks.redis_conf import AUTH_FRAGMENT, DANGEROUS, WRITE_AUTH, render_redis_conf, render_sentinel_conf
from tests.processes import stop_process, unique_ports

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is installed by `make test` (Debian package redis-server)")


PASSWORD = "from-the-secret"
APP_PASSWORD = "the-app's own, with $ and spaces"
EXPORTER_PASSWORD = "the-exporter's-own"


def command(sock: Path, cmd: str, password: str | None = PASSWORD, user: str | None = None) -> str:
    """One command over the unix socket, after AUTH when a password is given (as ``user``, else the
    default user; the reply to the command itself is returned)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(sock))
        if password:
            auth = ["AUTH", *([user] if user else []), password]
            s.sendall(("*%d\r\n" % len(auth) + "".join(f"${len(p)}\r\n{p}\r\n" for p in auth)).encode())
            reply = s.recv(1024)
            assert user is None or b"+OK" in reply, f"AUTH as {user} refused"
        parts = cmd.split()
        s.sendall(("*%d\r\n" % len(parts) + "".join(f"${len(p)}\r\n{p}\r\n" for p in parts)).encode())
        return s.recv(65536).decode(errors="replace")


class RedisProcess:
    """redis-server on a unix socket (no TCP port), stopped by pid."""

    def __init__(self, conf: Path, workdir: Path, *extra: str) -> None:
        self.sock = workdir / "redis.sock"
        self.log = workdir / "redis.log"
        args = [REDIS, str(conf), *extra, "--port", "0", "--unixsocket", str(self.sock), "--daemonize", "no", "--dir", str(workdir)]
        self.proc = subprocess.Popen(args, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.sock.exists():
                try:
                    if "PONG" in command(self.sock, "PING"):
                        return True
                except OSError:
                    pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        stop_process(self.proc)


def with_certificates(conf_text: str, work: Path) -> str:
    """A TLS stack's config with its Secret (tls.crt, tls.key, ca.crt from a test CA) in ``work/tls``
    and a TLS port of its own; any other config as it is."""
    from stacks.redis_conf import TLS_DIR
    from tests.cluster.pki import CA

    if f" {TLS_DIR}/" not in conf_text:  # no TLS, or its certificates given already
        return conf_text
    certs = work / "tls"
    certs.mkdir(exist_ok=True)
    ca = CA(certs, "ca")
    pair = ca.issue("server", cn="redis", hosts=("127.0.0.1", "localhost"), server=True)
    for src, dst in ((pair.cert, "tls.crt"), (pair.key, "tls.key"), (ca.pair.cert, "ca.crt")):
        (certs / dst).write_bytes(src.read_bytes())
    return re.sub(r"^tls-port [0-9]+$", f"tls-port {unique_ports(1)[0]}", conf_text.replace(f"{TLS_DIR}/", f"{certs}/"), flags=re.M)


def localize(conf_text: str, work: Path) -> str:
    """The pod's /data volume is this test's folder, and its password fragment one written here by
    the start scripts' own lines (``WRITE_AUTH``, 0600); nothing else in the file changes."""
    fragment = work / "auth.conf"
    users = {"REDIS_PASSWORD": PASSWORD, "APP_PASSWORD": APP_PASSWORD, "EXPORTER_PASSWORD": EXPORTER_PASSWORD}
    subprocess.run(["/bin/sh", "-c", WRITE_AUTH.replace(AUTH_FRAGMENT, str(fragment))], env={**os.environ, **users}, check=True)
    assert fragment.stat().st_mode & 0o777 == 0o600
    text = with_certificates(conf_text, work).replace("dir /data\n", f"dir {work}\n").replace("/data/nodes.conf", str(work / "nodes.conf"))
    return text.replace(f"include {AUTH_FRAGMENT}\n", f"include {fragment}\n")


def start(conf_text: str, tmp_path: Path, *extra: str) -> RedisProcess:
    conf = tmp_path / "redis.conf"
    conf.write_text(localize(conf_text, tmp_path))
    return RedisProcess(conf, tmp_path, *extra)


def generated_configs(rendered):
    """(label, kind, text) of every config file any stack renders."""
    out = []
    for stack, r in rendered.items():
        for obj in r.objects:
            if obj["kind"] == "ConfigMap":
                for key in ("redis.conf", "sentinel.conf"):
                    if key in obj.get("data", {}):
                        out.append((f"{stack}/{key}", key, obj["data"][key]))
    return out


def test_every_stack_generates_configs(rendered):
    labels = [label for label, _, _ in generated_configs(rendered)]
    assert {"dev/redis.conf", "dev/sentinel.conf", "prod/redis.conf", "prod/sentinel.conf", "cluster/redis.conf", "tls/redis.conf", "tls/sentinel.conf"} <= set(labels)


def test_every_generated_redis_conf_comes_up(rendered, tmp_path):
    for label, kind, text in generated_configs(rendered):
        if kind != "redis.conf":
            continue
        work = tmp_path / label.replace("/", "-")
        work.mkdir()
        server = start(text, work)
        try:
            assert server.wait_ready(), f"{label} did not come up:\n{server.log.read_text()}"
            policy = next(line.split()[1] for line in text.splitlines() if line.startswith("maxmemory-policy"))
            assert policy in command(server.sock, "CONFIG GET maxmemory-policy")
            if "cluster-enabled yes" in text:
                assert "cluster_enabled:1" in command(server.sock, "INFO cluster")
            # the password came from the included fragment: without it nothing is served
            assert f"include {AUTH_FRAGMENT}" in text
            assert "NOAUTH" in command(server.sock, "GET x", password=None)
        finally:
            server.stop()


def test_every_generated_sentinel_conf_comes_up(rendered, tmp_path):
    found = 0
    for label, kind, text in generated_configs(rendered):
        if kind != "sentinel.conf":
            continue
        found += 1
        work = tmp_path / label.replace("/", "-")
        work.mkdir()
        # sentinel rewrites its file, as in the pod where it starts from a writable copy
        conf = work / "sentinel.conf"
        conf.write_text(with_certificates(text, work) + f"sentinel auth-pass mymaster {PASSWORD}\n")
        server = RedisProcess(conf, work, "--sentinel")
        try:
            assert server.wait_ready(), f"{label} did not come up:\n{server.log.read_text()}"
            assert "mymaster" in command(server.sock, "SENTINEL MASTERS")
        finally:
            server.stop()
    assert found >= 2


def test_maxmemory_reaches_redis_in_bytes(tmp_path):
    server = start(render_redis_conf(RedisSettings(maxmemory="64mb"), mode="sentinel", persistence=False), tmp_path)
    try:
        assert server.wait_ready()
        assert str(64 * 1024 * 1024) in command(server.sock, "CONFIG GET maxmemory")
        assert "no" in command(server.sock, "CONFIG GET appendonly")
    finally:
        server.stop()


@pytest.mark.parametrize(
    "settings",
    [{"maxmemory": "lots"}, {"maxmemoryPolicy": "sometimes-lru"}, {"appendfsync": "sometimes"}, {"ioThreads": 0}],
)
def test_broken_settings_are_rejected_before_redis_sees_them(settings):
    with pytest.raises(ValidationError):
        RedisSettings.model_validate(settings)
    with pytest.raises(Exception) as info:
        parse_stack_config({"cache": {"redis": settings}})
    assert "peakscale:cache.redis" in str(info.value)


def test_redis_itself_would_refuse_what_the_component_rejects(tmp_path):
    # bypass validation to show the check matters: Redis dies on the same value
    broken = RedisSettings.model_construct(**{**RedisSettings().model_dump(), "maxmemory": "lots"})
    server = start(render_redis_conf(broken, mode="sentinel", persistence=False), tmp_path)
    try:
        assert not server.wait_ready(timeout_s=5)
        assert server.proc.wait(timeout=5) == 1
        assert "FATAL CONFIG FILE ERROR" in server.log.read_text()
    finally:
        server.stop()


def test_sentinel_conf_monitors_the_first_node_with_a_quorum():
    text = render_sentinel_conf(primary_host="cache-node-0.cache-headless.live.svc.cluster.local", quorum=2)
    assert "sentinel monitor mymaster cache-node-0.cache-headless.live.svc.cluster.local 6379 2" in text
    assert "auth-pass" not in text  # added from the environment at start


def test_cluster_mode_needs_three_shards():
    with pytest.raises(ValidationError):
        CacheConfig(mode="cluster", shards=2)


@pytest.mark.parametrize(
    "scaling, shards, words",
    [({"minReplicas": 1, "maxReplicas": 9}, 3, "keeps at least 3 primaries"), ({"minReplicas": 3, "maxReplicas": 4}, 5, "shards 5 is outside scaling's [3, 4]")],
)
def test_in_cluster_mode_the_scaling_bounds_are_shards_a_cluster_can_keep(scaling, shards, words):
    from stacks.config import Scaling

    with pytest.raises(ValidationError, match=re.escape(words)):
        CacheConfig(mode="cluster", shards=shards, scaling=Scaling(**scaling, capacity_per_replica=1000))
    assert CacheConfig(mode="cluster", shards=3).scaling.min_replicas == 3


def test_a_replica_in_full_sync_is_not_ready_and_is_once_linked(tmp_path):
    """The readiness script on real servers: while its primary holds the replica in a full sync
    (diskless, delayed 5 s: the primary lists it as wait_bgsave), the replica is not ready; once
    the sync is done (online) it is; the primary is ready throughout."""
    import redis

    from stacks.redis_conf import READY

    script = tmp_path / "ready.sh"
    script.write_text(READY)
    primary_port, replica_port = unique_ports(2)
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", PASSWORD, "--masterauth", PASSWORD, "--daemonize", "no"]
    procs = []
    for port, extra in ((primary_port, ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "5"]), (replica_port, ["--replicaof", "127.0.0.1", str(primary_port)])):
        folder = tmp_path / str(port)
        folder.mkdir()
        procs.append(subprocess.Popen([REDIS, "--port", str(port), "--dir", str(folder), *extra, *common], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    primary = redis.Redis(host="127.0.0.1", port=primary_port, password=PASSWORD, decode_responses=True)

    def ready(port: int) -> subprocess.CompletedProcess:
        env = {**os.environ, "REDIS_PASSWORD": PASSWORD, "REDIS_TARGET": f"-h 127.0.0.1 -p {port}"}
        return subprocess.run(["/bin/sh", str(script)], env=env, capture_output=True, text=True, timeout=30)

    def replica_state() -> str:
        try:
            return str((primary.info("replication").get("slave0") or {}).get("state", ""))
        except redis.RedisError:
            return ""

    try:
        deadline = time.monotonic() + 30
        while replica_state() not in ("wait_bgsave", "send_bulk"):
            assert time.monotonic() < deadline, "the primary never started the replica's full sync"
            time.sleep(0.02)
        during = ready(replica_port)
        assert replica_state() in ("wait_bgsave", "send_bulk"), "the sync ended before the check: no evidence"
        assert during.returncode == 1 and during.stdout.strip() in ("not linked to its primary", "full sync in progress"), during
        assert ready(primary_port).returncode == 0
        while replica_state() != "online":
            assert time.monotonic() < deadline + 30, "the replica never came online"
            time.sleep(0.05)
        assert ready(replica_port).returncode == 0
    finally:
        for p in procs:
            stop_process(p)


def test_a_memory_limit_without_room_to_fork_is_refused():
    with pytest.raises(ValidationError, match=r"resources.limits.memory 2Gi leaves no room to fork: give at least 3072Mi"):
        CacheConfig.model_validate({"redis": {"maxmemory": "2gb"}, "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}})
    conf = render_redis_conf(RedisSettings(maxmemory="16gb"), mode="sentinel", persistence=False)
    assert "client-output-buffer-limit replica 2048mb 512mb 60" in conf and "repl-backlog-size 163mb" in conf


def test_the_default_user_cannot_run_the_commands_that_empty_or_freeze_a_cache(tmp_path):
    """The fragment the start scripts write: the password works (as a SHA-256: the user line holds
    no plain password), FLUSHALL, FLUSHDB, KEYS and DEBUG are refused, the rest answers."""
    server = start(render_redis_conf(RedisSettings(), mode="sentinel", persistence=False), tmp_path)
    try:
        assert server.wait_ready(), server.log.read_text()
        assert "+OK" in command(server.sock, "SET k v") and "v" in command(server.sock, "GET k")
        calls = {"flushall": "FLUSHALL", "flushdb": "FLUSHDB", "keys": "KEYS *", "debug": "DEBUG SLEEP 0"}
        for name in DANGEROUS:  # DEBUG is also off by Redis 7's own default (enable-debug-command no)
            reply = command(server.sock, calls[name])
            assert "NOPERM" in reply or (name == "debug" and "not allowed" in reply), (name, reply)
        assert "v" in command(server.sock, "GET k")  # nothing was emptied
        assert command(server.sock, "SCAN 0").startswith("*2")
        user_line = next(line for line in (tmp_path / "auth.conf").read_text().splitlines() if line.startswith("user default"))
        assert PASSWORD not in user_line
        assert "NOAUTH" in command(server.sock, "GET k", password=None)
    finally:
        server.stop()


def test_the_app_and_the_exporter_each_have_a_user_that_does_its_job_and_nothing_more(tmp_path):
    """Each user with its own password (stored as a SHA-256): the app reads and writes but cannot
    administer or empty the cache; the exporter reads INFO and CONFIG GET but no key, and writes nothing."""
    server = start(render_redis_conf(RedisSettings(), mode="sentinel", persistence=False), tmp_path)
    try:
        assert server.wait_ready(), server.log.read_text()
        fragment = (tmp_path / "auth.conf").read_text()
        assert APP_PASSWORD not in fragment and EXPORTER_PASSWORD not in fragment
        as_app = lambda cmd: command(server.sock, cmd, APP_PASSWORD, user="app")  # noqa: E731
        as_exporter = lambda cmd: command(server.sock, cmd, EXPORTER_PASSWORD, user="exporter")  # noqa: E731
        assert "+OK" in as_app("SET cart:1 3") and "3" in as_app("GET cart:1") and ":4" in as_app("INCR cart:1")
        assert "role:master" in as_app("INFO replication") and as_app("SCAN 0").startswith("*2")
        for refused in ("FLUSHALL", "KEYS *", "CONFIG SET maxmemory 1", "SHUTDOWN", "REPLICAOF 127.0.0.1 1", "MONITOR", "ACL LIST"):
            assert "NOPERM" in as_app(refused), refused
        assert "used_memory" in as_exporter("INFO memory") and "maxmemory" in as_exporter("CONFIG GET maxmemory")
        for refused in ("GET cart:1", "SET x 1", "CONFIG SET maxmemory 1", "FLUSHALL", "SCAN 0"):
            assert "NOPERM" in as_exporter(refused), refused
        assert "4" in command(server.sock, "GET cart:1")  # nothing was emptied
        with pytest.raises(AssertionError, match="refused"):
            command(server.sock, "PING", PASSWORD, user="app")  # the default user's password is not the app's
    finally:
        server.stop()


def test_a_terminating_primary_hands_over_to_a_replica_through_sentinel(tmp_path):
    """The primary's preStop on real servers (a primary, a replica, three Sentinels): run on the
    replica it does nothing; run on the primary it asks Sentinel for a failover and returns once the
    replica is the primary and the old one follows it."""
    import redis

    from stacks.redis_conf import MASTER_NAME, PRE_STOP_FAILOVER

    script = tmp_path / "pre-stop.sh"
    script.write_text(PRE_STOP_FAILOVER)
    primary_port, replica_port, *sentinel_ports = unique_ports(5)
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", PASSWORD, "--masterauth", PASSWORD, "--daemonize", "no"]
    procs = []

    def spawn(args: list[str], name: str) -> None:
        folder = tmp_path / name
        folder.mkdir()
        procs.append(subprocess.Popen([REDIS, *args, "--dir", str(folder)], stdout=open(folder / "log", "w"), stderr=subprocess.STDOUT))

    def role(port: int) -> str:
        try:
            return str(redis.Redis(host="127.0.0.1", port=port, password=PASSWORD, decode_responses=True).execute_command("ROLE")[0])
        except redis.RedisError:
            return ""

    def run(port: int) -> subprocess.CompletedProcess:
        env = {**os.environ, "REDIS_PASSWORD": PASSWORD, "REDIS_TARGET": f"-h 127.0.0.1 -p {port}", "SENTINEL_TARGET": f"-h 127.0.0.1 -p {sentinel_ports[0]}"}
        return subprocess.run(["/bin/sh", str(script)], env=env, capture_output=True, text=True, timeout=60)

    def wait(condition, what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(0.1)

    try:
        spawn(["--port", str(primary_port), *common], "primary")
        spawn(["--port", str(replica_port), "--replicaof", "127.0.0.1", str(primary_port), *common], "replica")
        wait(lambda: role(replica_port) == "slave" and redis.Redis(host="127.0.0.1", port=replica_port, password=PASSWORD, decode_responses=True).info("replication").get("master_link_status") == "up", "the replica to link")
        for k, port in enumerate(sentinel_ports):
            conf = tmp_path / f"sentinel-{k}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\nsentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\nsentinel auth-pass {MASTER_NAME} {PASSWORD}\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 5000\nsentinel failover-timeout {MASTER_NAME} 10000\n"
            )
            spawn([str(conf), "--sentinel"], f"sentinel-{k}")
        sentinel = redis.Redis(host="127.0.0.1", port=sentinel_ports[0], decode_responses=True)

        def knows_the_replica() -> bool:
            try:
                return any(str(r.get("port")) == str(replica_port) and "s_down" not in str(r.get("flags")) and r.get("master-link-status") == "ok" for r in sentinel.sentinel_slaves(MASTER_NAME))
            except redis.RedisError:
                return False

        wait(knows_the_replica, "Sentinel to discover the replica")
        on_replica = run(replica_port)
        assert on_replica.returncode == 0 and role(replica_port) == "slave" and role(primary_port) == "master"
        on_primary = run(primary_port)
        assert on_primary.returncode == 0, on_primary.stdout + on_primary.stderr
        assert "no replica took over" not in on_primary.stdout
        assert role(replica_port) == "master"
        wait(lambda: role(primary_port) == "slave", "the old primary to follow the new one")
    finally:
        for p in procs:
            stop_process(p)


def _wait(condition, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_sentinel_forgets_a_replica_that_went_and_keeps_the_live_one(tmp_path):
    """The Sentinels' reset sidecar on real servers (a primary, two replicas, a Sentinel): after one
    replica stops for good (a scale-in), it is down and does not answer at two looks in a row, so the
    Sentinel is reset and lists only the live replica, the primary unchanged."""
    import redis

    from stacks.redis_conf import MASTER_NAME, RESET_DEPARTED

    script = tmp_path / "reset.sh"
    script.write_text(RESET_DEPARTED)
    primary, kept, gone, sentinel_port = unique_ports(4)
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", PASSWORD, "--masterauth", PASSWORD, "--daemonize", "no"]
    procs: dict[str, subprocess.Popen] = {}

    def spawn(name: str, args: list[str]) -> None:
        folder = tmp_path / name
        folder.mkdir()
        procs[name] = subprocess.Popen([REDIS, *args, "--dir", str(folder)], stdout=open(folder / "log", "w"), stderr=subprocess.STDOUT)

    try:
        spawn("primary", ["--port", str(primary), *common])
        for name, port in (("kept", kept), ("gone", gone)):
            spawn(name, ["--port", str(port), "--replicaof", "127.0.0.1", str(primary), *common])
        conf = tmp_path / "sentinel.conf"
        conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\nsentinel monitor {MASTER_NAME} 127.0.0.1 {primary} 1\nsentinel auth-pass {MASTER_NAME} {PASSWORD}\nsentinel down-after-milliseconds {MASTER_NAME} 1000\n")
        spawn("sentinel", [str(conf), "--sentinel"])
        sentinel = redis.Redis(host="127.0.0.1", port=sentinel_port, decode_responses=True)

        def listed() -> dict[int, str]:
            try:
                return {int(r["port"]): str(r["flags"]) for r in sentinel.sentinel_slaves(MASTER_NAME)}
            except redis.RedisError:
                return {}

        _wait(lambda: set(listed()) == {kept, gone}, "Sentinel to discover both replicas")
        stop_process(procs.pop("gone"))
        _wait(lambda: "s_down" in listed().get(gone, ""), "Sentinel to see the replica down")
        env = {**os.environ, "REDIS_PASSWORD": PASSWORD, "SENTINEL_TARGET": f"-h 127.0.0.1 -p {sentinel_port}", "RESET_EVERY_S": "1"}
        procs["reset"] = subprocess.Popen(["/bin/sh", str(script)], env=env, stdout=open(tmp_path / "reset.log", "w"), stderr=subprocess.STDOUT)
        _wait(lambda: set(listed()) == {kept} and "s_down" not in listed()[kept], "Sentinel to list only the live replica")
        assert "replicas gone: 127.0.0.1:" in (tmp_path / "reset.log").read_text()
        assert sentinel.sentinel_get_master_addr_by_name(MASTER_NAME) == ("127.0.0.1", primary)
    finally:
        for p in procs.values():
            stop_process(p)


def test_a_restarted_sentinel_keeps_its_id_and_monitors_the_primary_the_others_know(tmp_path):
    """The Sentinel's start script (its paths in this folder): its id comes from its pod name, so a
    restart is the same Sentinel; with no other Sentinel answering it monitors node-0."""
    import hashlib

    import redis

    from stacks.redis_conf import MASTER_NAME, START_SENTINEL

    sentinel_port, nobody = unique_ports(2)
    conf = tmp_path / "sentinel.conf"
    conf.write_text(render_sentinel_conf(primary_host="node-0.example", quorum=2).replace("port 26379", f"port {sentinel_port}\nbind 127.0.0.1"))
    (tmp_path / "run").mkdir()
    script = tmp_path / "start.sh"
    script.write_text(START_SENTINEL.replace("/etc/redis/sentinel.conf", str(conf)).replace("/sentinel/", f"{tmp_path}/run/"))
    env = {**os.environ, "REDIS_PASSWORD": PASSWORD, "PRIMARY_FQDN": "127.0.0.1", "SENTINEL_SERVICE": f"127.0.0.1 -p {nobody}", "POD_NAME": "cache-sentinel-1", "POD_FQDN": "127.0.0.1"}
    ids = []
    for _ in range(2):
        proc = subprocess.Popen(["/bin/sh", str(script)], env=env, stdout=open(tmp_path / "sentinel.log", "a"), stderr=subprocess.STDOUT)
        try:
            sentinel = redis.Redis(host="127.0.0.1", port=sentinel_port, decode_responses=True)
            _wait(lambda s=sentinel: _answers(s), "the Sentinel to start")
            ids.append(sentinel.execute_command("SENTINEL", "MYID"))
            assert sentinel.sentinel_get_master_addr_by_name(MASTER_NAME)[0] == "127.0.0.1"  # node-0 replaced by the primary known
        finally:
            stop_process(proc)
    assert (tmp_path / "run" / "sentinel.conf").stat().st_mode & 0o777 == 0o600
    assert ids[0] == ids[1] == hashlib.sha1(b"cache-sentinel-1").hexdigest()


def _answers(client) -> bool:
    import redis

    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_a_tls_stack_serves_only_tls_to_its_clients_its_replicas_its_sentinels_and_its_scripts(tmp_path):
    """The TLS option on real servers (certificates from a test CA, in the Secret's shape): no plain
    listener; the app's user over TLS; a replica syncs over TLS; a Sentinel speaking TLS monitors the
    primary; the readiness script's redis-cli speaks TLS with the containers' REDIS_CLI_TLS."""
    import redis

    from stacks.redis_conf import MASTER_NAME, READY, REDIS_PORT, SENTINEL_PORT, TLS_DIR
    from tests.cluster.pki import CA

    certs = tmp_path / "tls"
    certs.mkdir()
    ca = CA(certs, "redis-ca")
    pair = ca.issue("server", cn="cache", hosts=("127.0.0.1", "localhost"), server=True)
    for src, dst in ((pair.cert, "tls.crt"), (pair.key, "tls.key"), (ca.pair.cert, "ca.crt")):
        (certs / dst).write_bytes(src.read_bytes())
    primary_port, replica_port, sentinel_port = unique_ports(3)
    conf = render_redis_conf(RedisSettings(), mode="sentinel", persistence=False, tls=True).replace(f"{TLS_DIR}/", f"{certs}/")
    assert f"tls-port {REDIS_PORT}" in conf and "tls-replication yes" in conf
    servers = []
    try:
        for name, extra in (("primary", []), ("replica", ["--replicaof", "127.0.0.1", str(primary_port)])):
            work = tmp_path / name
            work.mkdir()
            servers.append(start(conf, work, "--tls-port", str(primary_port if name == "primary" else replica_port), *extra))
            assert servers[-1].wait_ready(), servers[-1].log.read_text()
        tls = {"ssl": True, "ssl_ca_certs": str(certs / "ca.crt")}
        app = redis.Redis(host="127.0.0.1", port=primary_port, username="app", password=APP_PASSWORD, decode_responses=True, **tls)
        assert app.set("stock:1", 5) and app.get("stock:1") == "5"
        with pytest.raises(redis.ConnectionError):
            redis.Redis(host="127.0.0.1", port=primary_port, username="app", password=APP_PASSWORD, socket_timeout=2).ping()
        replica = redis.Redis(host="127.0.0.1", port=replica_port, password=PASSWORD, decode_responses=True, **tls)
        _wait(lambda: replica.info("replication").get("master_link_status") == "up" and replica.get("stock:1") == "5", "the replica to sync over TLS")
        script = tmp_path / "ready.sh"
        script.write_text(READY)
        for port in (primary_port, replica_port):
            env = {**os.environ, "REDIS_PASSWORD": PASSWORD, "REDIS_TARGET": f"-h 127.0.0.1 -p {port}", "REDIS_CLI_TLS": f"--tls --cacert {certs}/ca.crt"}
            ready = subprocess.run(["/bin/sh", str(script)], env=env, capture_output=True, text=True, timeout=30)
            assert ready.returncode == 0, ready.stdout + ready.stderr
        sentinel_conf = render_sentinel_conf(primary_host="127.0.0.1", quorum=1, tls=True).replace(f"{TLS_DIR}/", f"{certs}/")
        sentinel_conf = sentinel_conf.replace(f"tls-port {SENTINEL_PORT}", f"tls-port {sentinel_port}\nbind 127.0.0.1").replace(f"127.0.0.1 {REDIS_PORT} 1", f"127.0.0.1 {primary_port} 1")
        (tmp_path / "sentinel.conf").write_text(sentinel_conf + f"sentinel auth-pass {MASTER_NAME} {PASSWORD}\n")
        sentinel = subprocess.Popen([REDIS, str(tmp_path / "sentinel.conf"), "--sentinel"], stdout=open(tmp_path / "sentinel.log", "w"), stderr=subprocess.STDOUT)
        try:
            client = redis.Redis(host="127.0.0.1", port=sentinel_port, decode_responses=True, **tls)

            def watching() -> bool:
                try:
                    master = client.sentinel_master(MASTER_NAME)
                except redis.RedisError:
                    return False
                return bool(master.get("is_master")) and not master.get("is_sdown") and int(master.get("num-slaves", 0)) == 1

            _wait(watching, "the TLS Sentinel to monitor the primary and see its replica")
        finally:
            stop_process(sentinel)
    finally:
        for server in servers:
            server.stop()
