"""Redis Cluster resharding against the real thing: join shards, move slots, let shards go.

The moves come from ``core.reshard.plan_moves``; this module carries each out the way Redis
documents it (and ``redis-cli --cluster reshard`` does): the target marks the slot IMPORTING, the
source MIGRATING, the source's keys in the slot go over in batches with ``MIGRATE ... KEYS`` (clients
that ask for a key already moved get ``ASK`` and follow it), then every primary learns the new owner
(``CLUSTER SETSLOT <slot> NODE``), the target first. One slot at a time, so at most one migration is
ever in flight, and a reshard that stops anywhere (a crash, a controller restart, a new leader)
resumes from the cluster's own state: a slot flagged MIGRATING/IMPORTING is finished first, towards
the node it was going to, and the rest is planned again from who owns what.

The password reaches Redis through the client's protocol (``AUTH``, and ``MIGRATE ... AUTH`` between
nodes), never a command line: the reshard step reads it from ``REDISCLI_AUTH`` like redis-cli.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from autoscaler.core.reshard import Move, plan_moves
from autoscaler.errors import Unavailable

Address = tuple[str, int]


@dataclass
class Node:
    id: str
    host: str
    port: int
    primary: bool
    primary_id: str | None
    #: the cluster bus port (port + 10000 unless the node says otherwise)
    bus_port: int = 0
    #: this is the node that answered
    myself: bool = False
    slots: list[int] = field(default_factory=list)
    #: slot -> node id: slots this node is sending away (MIGRATING) or receiving (IMPORTING)
    migrating: dict[int, str] = field(default_factory=dict)
    importing: dict[int, str] = field(default_factory=dict)

    @property
    def address(self) -> Address:
        return self.host, self.port


@dataclass
class Progress:
    """How far a reshard is: what ``status.reshard`` and the log report."""

    slots_total: int
    slots_moved: int = 0
    keys_moved: int = 0
    bytes_moved: int = 0
    started: float = field(default_factory=time.monotonic)
    #: when the reshard returned (None while it runs)
    ended: float | None = None
    #: slots finished that an interrupted reshard had left in flight
    resumed: int = 0
    #: keys moved of the slot in flight
    slot_keys: int = 0

    @property
    def seconds(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    @property
    def throughput(self) -> float:
        """Bytes per second moved so far (0 before any)."""
        return self.bytes_moved / self.seconds if self.bytes_moved and self.seconds > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (None before the first slot)."""
        if not self.slots_moved:
            return None
        return self.seconds / self.slots_moved * (self.slots_total - self.slots_moved)


def parse_nodes(text: str) -> list[Node]:
    """``CLUSTER NODES`` as nodes (handshaking and failed ones left out)."""
    nodes = []
    for line in text.strip().splitlines():
        parts = line.split()
        if len(parts) < 8 or "handshake" in parts[2] or "noaddr" in parts[2]:
            continue
        address, _, bus = parts[1].partition("@")
        host, port = address.rsplit(":", 1)
        flags = parts[2].split(",")
        node = Node(
            id=parts[0], host=host, port=int(port), primary="master" in flags, primary_id=None if parts[3] == "-" else parts[3],
            bus_port=int(bus.split(",", 1)[0]) if bus else int(port) + 10000, myself="myself" in flags,
        )  # fmt: skip
        for item in parts[8:]:
            if item.startswith("["):
                slot, arrow, other = item.strip("[]").partition("->-") if "->-" in item else item.strip("[]").partition("-<-")
                (node.migrating if arrow == "->-" else node.importing)[int(slot)] = other
            elif "-" in item:
                lo, hi = item.split("-")
                node.slots.extend(range(int(lo), int(hi) + 1))
            else:
                node.slots.append(int(item))
        nodes.append(node)
    return nodes


def tls_options(ca_file: str | None) -> dict[str, Any]:
    """redis-py's options for a TLS Redis whose certificate ``ca_file`` verifies (the pods' names are
    not the addresses dialled, so the chain is checked, not the host name); none without TLS."""
    return {"ssl": True, "ssl_ca_certs": ca_file, "ssl_check_hostname": False} if ca_file else {}


class ClusterAdmin:
    """One Redis Cluster, reached through any of ``seeds``; a client per node, made on first use."""

    def __init__(self, seeds: Iterable[Address], password: str | None = None, *, timeout_s: float = 10.0, batch: int = 200, tls_ca: str | None = None) -> None:
        self.seeds = list(seeds)
        self.password = password
        #: a TLS cluster: the CA file the nodes' certificates are verified with (None: plain TCP)
        self.tls_ca = tls_ca
        self.timeout_s = timeout_s
        self.batch = batch
        self._clients: dict[Address, redis.Redis] = {}

    def client(self, address: Address) -> redis.Redis:
        if address not in self._clients:
            self._clients[address] = redis.Redis(host=address[0], port=address[1], password=self.password, decode_responses=True, socket_timeout=self.timeout_s, **tls_options(self.tls_ca))
        return self._clients[address]

    def nodes(self) -> list[Node]:
        """The cluster as the first seed that answers sees it."""
        last: Exception | None = None
        for seed in self.seeds:
            try:
                return parse_nodes(self.client(seed).execute_command("CLUSTER", "NODES"))
            except redis.RedisError as exc:
                last = exc
        raise Unavailable(f"no node of the cluster answers at {', '.join(f'{h}:{p}' for h, p in self.seeds)} ({last})")

    def myself(self, address: Address) -> Node:
        """The node at ``address`` as it sees itself (its bus port, its MIGRATING/IMPORTING slots)."""
        return next(n for n in parse_nodes(self.client(address).execute_command("CLUSTER", "NODES")) if n.myself)

    def with_flags(self) -> list[Node]:
        """The cluster with each primary's MIGRATING/IMPORTING slots, which a node shows only in its
        own line: each primary is asked for itself."""
        nodes = self.nodes()
        for node in nodes:
            if node.primary:
                me = self.myself(node.address)
                node.migrating, node.importing = me.migrating, me.importing
        return nodes

    def wait(self, condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster did not {what} within {timeout_s:g} s")
            time.sleep(0.05)

    def join(self, primaries: Iterable[Address], replicas: Iterable[tuple[Address, Address]] = ()) -> None:
        """New shards in: ``CLUSTER MEET`` each new node, wait until every node knows every other,
        then each replica follows its primary (``(replica, primary)`` addresses)."""
        replicas = list(replicas)
        known = {n.address for n in self.nodes()}
        seed = self.client(self.seeds[0])
        for address in [*primaries, *(r for r, _ in replicas)]:
            if address not in known:
                seed.execute_command("CLUSTER", "MEET", address[0], address[1], self.myself(address).bus_port)
        everyone = {n.address for n in self.nodes()} | set(primaries) | {r for r, _ in replicas}
        self.wait(lambda: all({n.address for n in parse_nodes(self.client(a).execute_command("CLUSTER", "NODES"))} >= everyone for a in everyone), "learn of its new nodes")
        by_address = {n.address: n for n in self.nodes()}
        for replica, primary in replicas:
            if by_address[replica].primary_id != by_address[primary].id:
                self.client(replica).execute_command("CLUSTER", "REPLICATE", by_address[primary].id)
        # a node serves (and takes migrated keys) once it knows who owns every slot
        self.wait(lambda: all(self.healthy(a) for a in everyone), "reach cluster_state:ok on its new nodes")

    def answers(self, address: Address) -> bool:
        """The node at ``address`` is up and answers (a pod just asked for may not be yet)."""
        try:
            return bool(self.client(address).ping())
        except redis.RedisError:
            return False

    def healthy(self, address: Address) -> bool:
        """``cluster_state:ok`` on the node at ``address``."""
        try:
            return "cluster_state:ok" in self.client(address).execute_command("CLUSTER", "INFO")
        except redis.RedisError:
            return False

    def reshard(self, keep: Iterable[Address], progress: Callable[[Progress], None] | None = None, stop: Callable[[Progress], bool] | None = None) -> Progress:
        """Balance the slots over the primaries at ``keep`` (the others give theirs away): first any
        slot an interrupted reshard left in flight, then the planned moves, one slot at a time.
        ``stop`` (tests, a shutting-down worker) ends the reshard between batches, mid-slot."""
        nodes = self.with_flags()
        by_id = {n.id: n for n in nodes}
        in_flight = [(slot, n.id, target) for n in nodes if n.primary for slot, target in n.migrating.items()]
        half = [(slot, n.id) for n in nodes if n.primary for slot in n.importing if not any(s == slot for s, _, _ in in_flight)]
        for slot, node_id in half:  # IMPORTING set, MIGRATING never was: no key moved, undo it
            self.client(by_id[node_id].address).execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
        keep_ids = {n.id for n in nodes if n.address in set(keep)}
        owners = {n.id: n.slots for n in nodes if n.primary}
        for slot, source, target in in_flight:
            owners[source] = [s for s in owners[source] if s != slot]
            owners.setdefault(target, []).append(slot)
        moves = [Move(slot, source, target) for slot, source, target in in_flight] + plan_moves(owners, keep_ids)
        done = Progress(slots_total=len(moves), resumed=len(in_flight))
        for move in moves:
            if not self._move(move, by_id, done, stop):
                break
            done.slots_moved += 1
            if progress is not None:
                progress(done)
        done.ended = time.monotonic()
        return done

    def _move(self, move: Move, by_id: dict[str, Node], done: Progress, stop: Callable[[Progress], bool] | None) -> bool:
        """One slot from ``move.source`` to ``move.target``; False when ``stop`` ended it midway."""
        source, target = self.client(by_id[move.source].address), self.client(by_id[move.target].address)
        target.execute_command("CLUSTER", "SETSLOT", move.slot, "IMPORTING", move.source)
        source.execute_command("CLUSTER", "SETSLOT", move.slot, "MIGRATING", move.target)
        host, port = by_id[move.target].address
        auth = ["AUTH", self.password] if self.password else []
        done.slot_keys = 0
        while keys := source.execute_command("CLUSTER", "GETKEYSINSLOT", move.slot, self.batch):
            if stop is not None and stop(done):
                return False
            sizes = source.pipeline(transaction=False)
            for key in keys:
                sizes.execute_command("MEMORY", "USAGE", key)
            done.bytes_moved += sum(int(b or 0) for b in sizes.execute())
            source.execute_command("MIGRATE", host, port, "", 0, int(self.timeout_s * 1000), *auth, "KEYS", *keys)
            done.keys_moved += len(keys)
            done.slot_keys += len(keys)
        # the new owner first: it must not answer MOVED back to the source, which now answers ASK
        target.execute_command("CLUSTER", "SETSLOT", move.slot, "NODE", move.target)
        for node in [by_id[move.source], *(n for n in by_id.values() if n.primary and n.id not in (move.source, move.target))]:
            try:
                self.client(node.address).execute_command("CLUSTER", "SETSLOT", move.slot, "NODE", move.target)
            except redis.ResponseError as exc:
                # heard through the bus already: a primary that gave away its last slot has become
                # a replica of the new owner (Redis 7's replica migration) and takes no SETSLOT; the
                # others learn the owner through the bus whatever they answer
                if node.id == move.source and "only with masters" not in str(exc):
                    raise
        return True

    def release(self, leaving: Iterable[Address]) -> None:
        """Shards out, once they hold no slot: every other node forgets them (replicas first), and
        each leaving node forgets the cluster (``CLUSTER RESET``), as ``redis-cli --cluster del-node``."""
        nodes = self.nodes()
        gone = [n for n in nodes if n.address in set(leaving)]
        if busy := [n for n in gone if n.slots]:
            raise ValueError(f"{busy[0].host}:{busy[0].port} still holds {len(busy[0].slots)} slots: reshard them away first")
        staying = [n for n in nodes if n not in gone]
        for node in sorted(gone, key=lambda n: n.primary):
            for other in staying:
                self.client(other.address).execute_command("CLUSTER", "FORGET", node.id)
        for node in gone:
            self.client(node.address).execute_command("CLUSTER", "RESET", "HARD")
        self.wait(lambda: not {n.id for n in self.nodes()} & {n.id for n in gone}, "forget its old nodes")
