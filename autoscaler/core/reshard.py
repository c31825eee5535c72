"""Redis Cluster resharding, the pure part: which slots move where, and how long it takes.

A cluster-mode cache scales by shards (a primary and its replicas): writes scale only with
primaries, and a new primary serves nothing until slots move to it. ``plan_moves`` balances the
16,384 slots by count over the primaries that stay (the ``redis-cli --cluster rebalance`` rule):
each primary ends with ``16384 // n`` slots, the first ``16384 % n`` of them (by node id) one more;
slots leave the primaries with the most surplus, highest slots first, and go to those with the
largest deficit, so that each primary keeps contiguous ranges. Primaries leaving the cluster (a
scale-in) give away every slot. The plan is a function of the cluster's current ownership only: a
reshard interrupted anywhere (a controller restart, a new leader) is planned again from what the
cluster says and never moves a slot twice.

The lead time of a resharding tier is the pod start plus the resharding time: the bytes that move
(the dataset's share that changes owner) over the migration throughput measured last time, with a
margin (``reshard_seconds``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

SLOTS = 16384
#: the margin on a measured throughput: a reshard under a peak's load is slower than one measured idle
THROUGHPUT_MARGIN = 1.5


@dataclass(frozen=True)
class Move:
    slot: int
    source: str
    target: str


def targets(primaries: Iterable[str]) -> dict[str, int]:
    """How many slots each primary holds once balanced (node ids sorted: the extra slots go to the first)."""
    ids = sorted(primaries)
    if not ids:
        raise ValueError("a cluster needs at least one primary to hold the slots")
    base, extra = divmod(SLOTS, len(ids))
    return {node: base + (1 if k < extra else 0) for k, node in enumerate(ids)}


def plan_moves(owners: Mapping[str, Iterable[int]], keep: Iterable[str]) -> list[Move]:
    """The slot moves that balance the slots over the primaries ``keep`` (new, empty ones included;
    primaries in ``owners`` but not in ``keep`` give everything away). Slots nobody owns are not
    moves: a cluster with unassigned slots is refused."""
    held = {node: sorted(slots) for node, slots in owners.items()}
    if sum(len(s) for s in held.values()) != SLOTS or len({s for v in held.values() for s in v}) != SLOTS:
        raise ValueError("the slots are not all assigned exactly once: the cluster is not healthy enough to reshard")
    goal = targets(keep)
    # surplus: the highest slots a primary holds beyond its goal (all of them for one that leaves)
    surplus = {node: sorted(held[node])[goal[node] :] if node in goal else held[node] for node in held}
    giving = [(node, slot) for node in sorted(surplus, key=lambda n: (-len(surplus[n]), n)) for slot in surplus[node]]
    needs = sorted(((goal[node] - len(held.get(node, ())), node) for node in goal if goal[node] > len(held.get(node, ()))), key=lambda x: (-x[0], x[1]))
    moves: list[Move] = []
    k = 0
    for need, node in needs:
        for _ in range(need):
            source, slot = giving[k]
            moves.append(Move(slot=slot, source=source, target=node))
            k += 1
    return sorted(moves, key=lambda m: (m.source, m.slot))


def reshard_seconds(moves: int, dataset_bytes: float, throughput_bytes_s: float, margin: float = THROUGHPUT_MARGIN) -> float:
    """How long ``moves`` slots take to move, the dataset spread evenly over the slots, at a measured
    throughput with ``margin`` (seconds; the time of a reshard with no data is the slots' own
    bookkeeping, about a millisecond each)."""
    if throughput_bytes_s <= 0:
        raise ValueError("a throughput must be positive")
    moved = dataset_bytes * moves / SLOTS
    return math.ceil(margin * moved / throughput_bytes_s + 0.001 * moves)


def describe(moves: int, dataset_bytes: float, throughput_bytes_s: float, *, measured: bool = True) -> str:
    """The estimate in words, as preflight shows it; ``measured``: the throughput is the last reshard's,
    not the one the policy assumes."""
    seconds = reshard_seconds(moves, dataset_bytes, throughput_bytes_s)
    moved = dataset_bytes * moves / SLOTS
    source = "the last measured" if measured else "an assumed (spec.reshard.throughput; never measured)"
    return f"resharding {moves:,} of {SLOTS:,} slots, ~{_size(moved)}, ~{max(1, round(seconds / 60))} min at {source} {_size(throughput_bytes_s)}/s (x{THROUGHPUT_MARGIN:g} margin)"


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def raise_seconds(before: int, after: int, dataset_bytes: float, throughput_bytes_s: float) -> float:
    """How long a raise from ``before`` to ``after`` shards takes to reshard: the new primaries take
    ``(after - before) / after`` of the slots (none for a lowering)."""
    if after <= before or after <= 0:
        return 0.0
    return reshard_seconds(round(SLOTS * (after - before) / after), dataset_bytes, throughput_bytes_s)


def ready_resharding(desired: np.ndarray, lead_steps: int, step_s: int, dataset_bytes: float, throughput_bytes_s: float, initial: int) -> np.ndarray:
    """Shards serving at each step when each raise serves only once its pods are up (``lead_steps``)
    and its slots have moved (``raise_seconds``), one reshard at a time; a lowering takes effect at
    once (its slots move back while the old shards still serve)."""
    out = np.empty(len(desired), dtype=np.int64)
    level = asked = int(initial)
    free_at = 0
    queue: deque[tuple[int, int]] = deque()
    for t, want in enumerate(np.asarray(desired, dtype=np.int64).tolist()):
        if want > asked:
            start = max(t + lead_steps, free_at)
            free_at = start + math.ceil(raise_seconds(asked, want, dataset_bytes, throughput_bytes_s) / step_s)
            queue.append((free_at, want))
            asked = want
        elif want < asked:
            level, asked = min(level, want), want
            queue = deque((at, min(w, want)) for at, w in queue)
        while queue and queue[0][0] <= t:
            level = max(level, queue.popleft()[1])
        out[t] = min(level, want)
    return out


_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12, "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3, "ti": 1024**4, "tib": 1024**4}


def parse_size(text: str, *, field: str, per_second: bool = False) -> float:
    """``20GB``, ``512Mi``, ``6MB/s`` as bytes (per second with ``per_second``); a clear error naming
    ``field`` otherwise."""
    from autoscaler.errors import InputError

    raw = str(text).strip().lower().replace(" ", "")
    if per_second:
        raw = raw.removesuffix("/s").removesuffix("ps")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(number) :]
    example = "e.g. 6MB/s" if per_second else "e.g. 20GB or 512Mi"
    try:
        value = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        raise InputError(field, f"cannot read {text!r} as a size", example) from None
    if not value > 0 or not math.isfinite(value):
        raise InputError(field, f"{text!r} is not a positive size", example)
    return value
