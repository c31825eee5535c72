"""redis.conf and sentinel.conf, rendered from validated settings.

The files never hold the password, and no command line does either (``ps`` shows command lines
to every process on the node). At start the scripts write it, from the Secret in the environment,
into a 0600 fragment on an in-memory ``emptyDir`` that redis.conf includes (``AUTH_FRAGMENT``);
Sentinel gets ``sentinel auth-pass`` appended to its own 0600 writable copy. Every file rendered
here is started by a real redis-server in the tests.
"""

from __future__ import annotations

from stacks.config import RedisSettings

HEADER = "# rendered by peakscale from the stack config: edit the config, not this file\n"
MASTER_NAME = "mymaster"
REDIS_PORT = 6379
SENTINEL_PORT = 26379
BUS_PORT = 16379
#: the 0600 fragment holding the default user and masterauth, written at start (an emptyDir in memory)
AUTH_DIR = "/run/redis-auth"
AUTH_FRAGMENT = f"{AUTH_DIR}/auth.conf"
#: commands no client of a cache needs and one slip turns into an outage: emptying the dataset,
#: blocking it on a scan of every key, crashing or freezing it (off for the default user, which
#: Sentinel, the replicas and the probes use; SCAN and CLUSTER stay)
DANGEROUS = ("flushall", "flushdb", "keys", "debug")
#: the app's user: every data command, no administration (CONFIG, SHUTDOWN, REPLICAOF, MONITOR ...)
#: and nothing dangerous (FLUSHALL, KEYS, DEBUG, MIGRATE ...), but the INFO and CLIENT naming
#: that client libraries send
APP_ACL = "~* &* +@all -@admin -@dangerous +info +client|setname +client|getname +client|id"
#: the exporter's user: what redis_exporter reads, no key and no write
EXPORTER_ACL = "resetkeys -@all +@connection +info +config|get +client|list +slowlog|get +slowlog|len +latency|latest +latency|histogram +cluster|info +dbsize +select +memory|stats"
#: the users' passwords as SHA-256 (any character works, and the fragment holds no plain password);
#: masterauth must be the password itself (the replica sends it). APP_PASSWORD and
#: EXPORTER_PASSWORD, when set, add those users (each its own key of the Secret)
WRITE_AUTH = f"""umask 077
sha() {{ printf %s "$1" | sha256sum | cut -d' ' -f1; }}
{{
  printf 'user default on #%s ~* &* +@all {" ".join("-" + c for c in DANGEROUS)}\\n' "$(sha "$REDIS_PASSWORD")"
  [ -z "${{APP_PASSWORD:-}}" ] || printf 'user app on #%s {APP_ACL}\\n' "$(sha "$APP_PASSWORD")"
  [ -z "${{EXPORTER_PASSWORD:-}}" ] || printf 'user exporter on #%s {EXPORTER_ACL}\\n' "$(sha "$EXPORTER_PASSWORD")"
  printf 'masterauth "%s"\\n' "$REDIS_PASSWORD"
}} > {AUTH_FRAGMENT}
"""


#: where a TLS stack mounts its Secret (cert-manager's keys: tls.crt, tls.key, ca.crt)
TLS_DIR = "/tls"
#: what every script's redis-cli adds on a TLS stack (the containers' REDIS_CLI_TLS)
REDIS_CLI_TLS = f"--tls --cacert {TLS_DIR}/ca.crt"


def tls_lines(port: int, *, replication: bool = True, cluster: bool = False) -> list[str]:
    """TLS only, on the usual port: no plain listener; clients need no certificate of their own (they
    authenticate with their user's password), replication and the cluster bus speak TLS too."""
    lines = [
        "port 0",
        f"tls-port {port}",
        f"tls-cert-file {TLS_DIR}/tls.crt",
        f"tls-key-file {TLS_DIR}/tls.key",
        f"tls-ca-cert-file {TLS_DIR}/ca.crt",
        "tls-auth-clients no",
    ]
    if replication:
        lines.append("tls-replication yes")
    if cluster:
        lines.append("tls-cluster yes")
    return lines


def render_redis_conf(settings: RedisSettings, *, mode: str, persistence: bool, tls: bool = False) -> str:
    lines = [
        "bind * -::*",
        # every client must authenticate (the default user's password is in the fragment written at start); the
        # NetworkPolicy limits who can connect
        "protected-mode no",
        *(tls_lines(REDIS_PORT, cluster=mode == "cluster") if tls else [f"port {REDIS_PORT}"]),
        f"tcp-keepalive {settings.tcp_keepalive_s}",
        f"timeout {settings.timeout_s}",
        "dir /data",
        f"maxmemory {settings.maxmemory}",
        f"maxmemory-policy {settings.maxmemory_policy}",
        f"io-threads {settings.io_threads}",
        "replica-read-only yes",
        "replica-serve-stale-data yes",
        "repl-diskless-sync yes",
        # sized from the dataset: a full sync of a big primary under a peak's writes outgrows the
        # defaults (256mb/64mb, a 1mb backlog) and starts over forever
        f"client-output-buffer-limit replica {_mb(buffer_hard(settings))} {_mb(buffer_hard(settings) // 4)} 60",
        f"repl-backlog-size {_mb(backlog(settings))}",
    ]
    if persistence:
        lines += [
            f"appendonly {'yes' if settings.appendonly else 'no'}",
            f"appendfsync {settings.appendfsync}",
            "save " + " ".join(f"{s} {c}" for s, c in settings.save) if settings.save else 'save ""',
        ]
    else:
        lines += ["appendonly no", 'save ""']
    if mode == "cluster":
        lines += [
            "cluster-enabled yes",
            "cluster-config-file /data/nodes.conf",
            "cluster-node-timeout 15000",
            # serve the slots that are up while a shard fails over
            "cluster-require-full-coverage no",
            "cluster-allow-reads-when-down no",
            "cluster-preferred-endpoint-type hostname",
        ]
    lines.append(f"include {AUTH_FRAGMENT}")
    return HEADER + "\n".join(lines) + "\n"


def buffer_hard(settings: RedisSettings) -> int:
    """A replica's output buffer hard limit: the writes a full sync may queue, an eighth of the
    dataset, at least Redis's default 256mb."""
    return max(256 * 2**20, settings.maxmemory_bytes // 8)


def backlog(settings: RedisSettings) -> int:
    """The replication backlog: a replica that reconnects within it resyncs partially; 1 % of the
    dataset, at least 16mb."""
    return max(16 * 2**20, settings.maxmemory_bytes // 100)


def _mb(n: int) -> str:
    return f"{max(1, n // 2**20)}mb"


def render_sentinel_conf(*, primary_host: str, quorum: int, tls: bool = False) -> str:
    lines = [
        *(tls_lines(SENTINEL_PORT) if tls else [f"port {SENTINEL_PORT}"]),
        "dir /tmp",
        "sentinel resolve-hostnames yes",
        "sentinel announce-hostnames yes",
        f"sentinel monitor {MASTER_NAME} {primary_host} {REDIS_PORT} {quorum}",
        f"sentinel down-after-milliseconds {MASTER_NAME} 5000",
        f"sentinel failover-timeout {MASTER_NAME} 60000",
        f"sentinel parallel-syncs {MASTER_NAME} 1",
    ]
    return HEADER + "\n".join(lines) + "\n"


START_REDIS_SENTINEL_MODE = """#!/bin/sh
# Start one node of a Sentinel-managed Redis. The password comes from the environment only.
set -eu
primary="$PRIMARY_FQDN"
# after a failover the primary is no longer node-0: ask the Sentinels first
if current=$(redis-cli ${REDIS_CLI_TLS:-} -h "$SENTINEL_SERVICE" -p %(sentinel_port)d sentinel get-master-addr-by-name %(master)s 2>/dev/null | head -n 1) && [ -n "$current" ]; then
  primary="$current"
fi
%(write_auth)sset -- /etc/redis/redis.conf \\
  --replica-announce-ip "$POD_FQDN"
if [ "$POD_FQDN" != "$primary" ]; then
  set -- "$@" --replicaof "$primary" %(port)d
fi
exec redis-server "$@"
""" % {"sentinel_port": SENTINEL_PORT, "master": MASTER_NAME, "port": REDIS_PORT, "write_auth": WRITE_AUTH}

#: seconds a terminating primary waits for Sentinel to promote a replica
FAILOVER_WAIT_S = 20

PRE_STOP_FAILOVER = """#!/bin/sh
# A terminating primary hands over before it stops: Sentinel promotes a replica now (a planned
# failover, no writes lost to a timeout) instead of after down-after-milliseconds of errors.
# Replicas and a lone primary just stop. SENTINEL_TARGET/REDIS_TARGET: where redis-cli reaches them.
set -u
export REDISCLI_AUTH="$REDIS_PASSWORD"
role=$(redis-cli ${REDIS_CLI_TLS:-} ${REDIS_TARGET:--h 127.0.0.1 -p %(port)d} role 2>/dev/null | head -n 1)
[ "$role" = "master" ] || exit 0
sentinel="${SENTINEL_TARGET:--h $SENTINEL_SERVICE -p %(sentinel_port)d}"
asked=""
i=0
while [ "$i" -lt %(wait)d ]; do
  role=$(redis-cli ${REDIS_CLI_TLS:-} ${REDIS_TARGET:--h 127.0.0.1 -p %(port)d} role 2>/dev/null | head -n 1)
  [ "$role" = "slave" ] && exit 0
  # asked again until Sentinel takes it (NOGOODSLAVE while it has not yet heard from a replica)
  if [ -z "$asked" ]; then
    reply=$(redis-cli ${REDIS_CLI_TLS:-} $sentinel sentinel failover %(master)s 2>/dev/null | tail -n 1)
    case "$reply" in OK|*INPROG*) asked=yes ;; esac
  fi
  sleep 1
  i=$((i + 1))
done
echo "no replica took over within %(wait)d s"
""" % {"port": REDIS_PORT, "sentinel_port": SENTINEL_PORT, "master": MASTER_NAME, "wait": FAILOVER_WAIT_S}

#: Sentinels are a fixed set of their own, apart from the data nodes peakscale scales: scaling
#: the data never moves the quorum, and a Sentinel that restarts keeps its id (from its pod name)
SENTINELS = 3
QUORUM = SENTINELS // 2 + 1

START_SENTINEL = """#!/bin/sh
# Sentinel rewrites its config: start from a writable copy (0600), add the password from the
# environment. It monitors the primary the other Sentinels know (after a failover, not node-0),
# and keeps one id across restarts (from its pod name), so a restart leaves no stale Sentinel behind.
set -eu
umask 077
primary="$PRIMARY_FQDN"
if current=$(redis-cli ${REDIS_CLI_TLS:-} -h "$SENTINEL_SERVICE" -p %(sentinel_port)d sentinel get-master-addr-by-name %(master)s 2>/dev/null | head -n 1) && [ -n "$current" ]; then
  primary="$current"
fi
sed "s/^sentinel monitor %(master)s [^ ]* /sentinel monitor %(master)s $primary /" /etc/redis/sentinel.conf > /sentinel/sentinel.conf
myid=$(printf %%s "$POD_NAME" | sha1sum | cut -c1-40)
printf 'sentinel auth-pass %(master)s %%s\\nsentinel announce-ip %%s\\nsentinel myid %%s\\n' "$REDIS_PASSWORD" "$POD_FQDN" "$myid" >> /sentinel/sentinel.conf
exec redis-server /sentinel/sentinel.conf --sentinel
""" % {"master": MASTER_NAME, "sentinel_port": SENTINEL_PORT}

#: seconds between two looks at the replicas Sentinel lists, by the reset sidecar
RESET_EVERY_S = 60

RESET_DEPARTED = """#!/bin/sh
# After a scale-in the replicas that went stay listed by Sentinel, down, until told: a replica
# that is down and does not answer at two looks in a row, while the primary is up and no failover
# runs, makes this Sentinel forget what it knows of the primary's replicas (SENTINEL RESET), and
# rediscover the live ones from the primary within seconds. Each Sentinel looks at its own time
# (its ordinal x 20 s apart), never all at once. SENTINEL_TARGET: where redis-cli reaches it.
set -u
sentinel="${SENTINEL_TARGET:--h 127.0.0.1 -p %(sentinel_port)d}"
every="${RESET_EVERY_S:-%(every)d}"
name="${POD_NAME:-sentinel-0}"
ordinal="${name##*-}"
case "$ordinal" in *[!0-9]*|"") ordinal=0 ;; esac
sleep $((ordinal * 20))
suspects=""
while :; do
  sleep "$every"
  master=$(redis-cli ${REDIS_CLI_TLS:-} $sentinel sentinel master %(master)s 2>/dev/null | tr '\\n' ' ')
  case "$master" in ""|*failover_in_progress*|*s_down*|*o_down*) suspects=""; continue ;; esac
  down=$(redis-cli ${REDIS_CLI_TLS:-} $sentinel sentinel replicas %(master)s 2>/dev/null | awk 'NR %% 2 == 1 { k = $0; next } k == "ip" { ip = $0 } k == "port" { port = $0 } k == "flags" && /s_down/ { print ip ":" port }')
  gone=""
  for replica in $down; do
    REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ${REDIS_CLI_TLS:-} -h "${replica%%%%:*}" -p "${replica##*:}" ping 2>/dev/null | grep -q PONG && continue
    case " $suspects " in *" $replica "*) gone="$gone $replica" ;; esac
  done
  suspects="$down"
  if [ -n "$gone" ]; then
    echo "replicas gone:$gone; SENTINEL RESET %(master)s"
    redis-cli ${REDIS_CLI_TLS:-} $sentinel sentinel reset %(master)s >/dev/null
    suspects=""
  fi
done
""" % {"master": MASTER_NAME, "sentinel_port": SENTINEL_PORT, "every": RESET_EVERY_S}

START_REDIS_CLUSTER_MODE = """#!/bin/sh
# Start one node of a Redis Cluster. The password comes from the environment only.
set -eu
%(write_auth)sexec redis-server /etc/redis/redis.conf --cluster-announce-hostname "$POD_FQDN"
""" % {"write_auth": WRITE_AUTH}

BOOTSTRAP_CLUSTER = """#!/bin/sh
# Form the cluster once every node answers; do nothing if it is already formed.
set -eu
export REDISCLI_AUTH="$REDIS_PASSWORD"
hosts=""
i=0
while [ "$i" -lt "$NODES" ]; do
  host="$STATEFULSET-$i.$HEADLESS"
  until redis-cli ${REDIS_CLI_TLS:-} -h "$host" -p %(port)d ping >/dev/null 2>&1; do echo "waiting for $host"; sleep 3; done
  hosts="$hosts $host:%(port)d"
  i=$((i + 1))
done
if redis-cli ${REDIS_CLI_TLS:-} -h "$STATEFULSET-0.$HEADLESS" -p %(port)d cluster info | grep -q 'cluster_state:ok'; then
  echo "cluster already formed"; exit 0
fi
redis-cli ${REDIS_CLI_TLS:-} --cluster create $hosts --cluster-replicas "$REPLICAS_PER_SHARD" --cluster-yes
""" % {"port": REDIS_PORT}

READY = """#!/bin/sh
# Ready = serving the data: a primary once its dataset is loaded; a replica only once linked to
# its primary, past its full sync and done loading what it received (a replica still loading the
# RDB is not capacity yet, and a pre-scale for 20:00 must not count it). REDIS_TARGET: where redis-cli reaches this pod's Redis.
set -eu
export REDISCLI_AUTH="$REDIS_PASSWORD"
info=$(redis-cli ${REDIS_CLI_TLS:-} ${REDIS_TARGET:--h 127.0.0.1 -p %(port)d} info | tr -d '\\r')
case "$info" in
  *role:master*|*role:slave*) ;;
  *) echo "no answer from redis"; exit 1 ;;
esac
if echo "$info" | grep -q '^loading:1$'; then echo "loading its dataset"; exit 1; fi
case "$info" in *role:master*) exit 0 ;; esac
if echo "$info" | grep -q '^master_sync_in_progress:1$'; then echo "full sync in progress"; exit 1; fi
echo "$info" | grep -q '^master_link_status:up$' || { echo "not linked to its primary"; exit 1; }
exit 0
""" % {"port": REDIS_PORT}
