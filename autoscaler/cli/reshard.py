"""``peakscale reshard``: the reshard step of a Redis Cluster tier (what a Job runs after its
StatefulSet grew by whole shards, or before it shrinks). The pods of the StatefulSet are shards in
ordinal order: with ``--replicas-per-shard R``, pod ``i`` belongs to shard ``i // (R + 1)`` and is its
primary when ``i % (R + 1) == 0``. The step joins the shards below ``--shards`` that are not in the
cluster yet, balances the slots over their primaries, and lets the shards above go; with
``--policy`` it reports progress and the measured throughput into the ScalingPolicy's
``status.reshard``, which preflight's next estimate uses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from autoscaler.cli.app import app
from autoscaler.cli.output import host_port, split_list, table_console
from autoscaler.errors import InputError

if TYPE_CHECKING:
    from autoscaler.adapters.redis_cluster import Progress


def _address(text: str) -> tuple[str, int]:
    return host_port(text, "--nodes", "e.g. --nodes cache-node-0.cache-headless.live.svc:6379,cache-node-1...")


@app.command("reshard")
def reshard(
    nodes: Annotated[list[str], typer.Option("--nodes", help="Every pod of the StatefulSet as host:port, in ordinal order (repeatable or comma-separated).")],
    shards: Annotated[int, typer.Option(help="How many shards the cluster has once done (the first ones in ordinal order).", min=1)],
    replicas_per_shard: Annotated[int, typer.Option(help="Replicas of each shard's primary.", min=0)] = 1,
    policy: Annotated[Optional[str], typer.Option(help="namespace/name of the ScalingPolicy to report into (status.reshard).")] = None,
    kubeconfig: Annotated[Optional[Path], typer.Option(help="Kubeconfig for --policy (in a pod: its ServiceAccount).")] = None,
    context: Annotated[Optional[str], typer.Option(help="Kubeconfig context.")] = None,
    batch: Annotated[int, typer.Option(help="Keys per MIGRATE.", min=1)] = 200,
    wait: Annotated[str, typer.Option(help="How long to wait for the new shards' pods to answer (the StatefulSet grew just before).")] = "15m",
    tls_ca_file: Annotated[Optional[Path], typer.Option(help="A TLS cluster: the CA file the nodes' certificates are verified with (the stack's Secret's ca.crt).")] = None,
) -> None:
    """Move a Redis Cluster's slots to its shards: join the new ones, balance the slots by count, let the surplus ones go.

    The password comes from REDISCLI_AUTH (as redis-cli reads it), never from the command line. One slot moves at a time; run again after any interruption and it resumes from the cluster's own MIGRATING/IMPORTING state.

    Example: peakscale reshard --nodes cache-node-0.cache-headless:6379,cache-node-1.cache-headless:6379,... --shards 5 --replicas-per-shard 1 --policy live/cache-cache-node
    """
    import redis

    from autoscaler.errors import CommandFailed

    from autoscaler.core.durations import parse_duration_s

    wait_s = parse_duration_s(wait, field="--wait", allow_zero=True)
    try:
        _reshard(split_list(nodes), shards, replicas_per_shard, policy, kubeconfig, context, batch, wait_s, tls_ca_file)
    except (redis.RedisError, TimeoutError) as exc:
        raise CommandFailed(f"the reshard stopped: {exc} (run it again: it resumes from the cluster's own state)") from None


def _reshard(nodes: list[str], shards: int, replicas_per_shard: int, policy: str | None, kubeconfig: Path | None, context: str | None, batch: int, wait_s: float = 0, tls_ca: Path | None = None) -> None:
    from autoscaler.adapters.redis_cluster import ClusterAdmin

    pods = [_address(n) for n in nodes]
    size = replicas_per_shard + 1
    if len(pods) < shards * size:
        raise InputError("--nodes", f"{len(pods)} pods for {shards} shards of {size}", f"list every pod of the StatefulSet, at least {shards * size}")
    groups = [pods[k : k + size] for k in range(0, len(pods) - len(pods) % size, size)]
    keep, leaving = groups[:shards], groups[shards:]
    if tls_ca is not None and not tls_ca.is_file():
        raise InputError("--tls-ca-file", f"{str(tls_ca)!r} is not a readable file", "give the CA bundle of the cluster's certificates (its Secret's ca.crt)")
    admin = ClusterAdmin([g[0] for g in keep], os.environ.get("REDISCLI_AUTH") or None, batch=batch, tls_ca=str(tls_ca) if tls_ca else None)
    known = {n.address for n in admin.nodes()}
    joining = [g for g in keep if g[0] not in known]
    new_pods = [a for g in joining for a in g]
    if new_pods:
        admin.wait(lambda: all(admin.answers(a) for a in new_pods), f"bring up the {len(new_pods)} pod(s) of its new shards", timeout_s=max(wait_s, 1))
    admin.join([g[0] for g in joining], [(r, g[0]) for g in joining for r in g[1:]])
    report = _reporter(policy, kubeconfig, context)
    done = admin.reshard([g[0] for g in keep], progress=report)
    if report is not None:
        report(done)
    present = {n.address for n in admin.nodes()}
    admin.release([a for g in leaving for a in g if a in present])
    table_console(150).print(
        f"{shards} shards: {done.slots_moved:,} slots, {done.keys_moved:,} keys, {done.bytes_moved / 1e6:,.1f} MB moved in {done.seconds:,.0f} s "
        f"({done.throughput / 1e6:.2f} MB/s); {len(joining)} shard(s) joined, {len(leaving)} let go", highlight=False,
    )  # fmt: skip


def _reporter(policy: str | None, kubeconfig: Path | None, context: str | None):
    """A progress callback writing ``status.reshard`` of ``policy`` (every 256 slots and at the end)."""
    if policy is None:
        return None
    from autoscaler.adapters.kube import Kube, api_client

    namespace, _, name = policy.partition("/")
    if not namespace or not name:
        raise InputError("--policy", f"{policy!r} is not namespace/name", "e.g. --policy live/cache-cache-node")
    kube = Kube(api_client(str(kubeconfig) if kubeconfig else None, context))

    def report(progress: Progress) -> None:
        if progress.ended is None and progress.slots_moved % 256:
            return
        report_reshard(kube, namespace, name, progress)

    return report


def report_reshard(kube, namespace: str, name: str, progress: Progress) -> None:
    """Merge a reshard's progress into the policy's ``status.reshard`` (the throughput once measured)."""
    from datetime import UTC, datetime

    from autoscaler.core.resources import POLICY_PLURAL

    figures: dict[str, int | float | str] = {"slotsTotal": progress.slots_total, "slotsMoved": progress.slots_moved, "keysMoved": progress.keys_moved, "bytesMoved": progress.bytes_moved}
    if progress.eta_s is not None:
        figures["etaSeconds"] = round(progress.eta_s, 1)
    if progress.ended is not None and progress.throughput > 0:
        figures["throughputBytesPerSecond"] = round(progress.throughput, 1)
        figures["measuredAt"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    kube.patch_status(POLICY_PLURAL, namespace, name, {"reshard": figures})
