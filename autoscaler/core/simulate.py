"""A simulated cluster: replicas asked for at t serve only from t + lead time.

Owns the capacity model shared by every strategy of the backtest and the reactive baseline (a
Kubernetes HPA v2 on a request-rate metric, with its default behaviour). Everything here runs on a
regular simulation grid (one minute, or the trace's step when that is finer).

Capacity model: the pods of a workload form a stack; a scale-down removes the newest pods first
(a ReplicaSet deletes not-ready pods before ready ones), so the pods ready at t are
``min(desired[s] for s in [t - lead, t])``. Replica-hours count every pod asked for, warming
or ready: that is what the tier pays for.

Nodes (``ready_with_nodes``, the backtest's ``--node-lead-time``): a pod runs only on a node slot.
Slots the pods and the headroom placeholders ask for beyond those held arrive a node lead time
later (the cluster autoscaler reacts to pending pods); slots unneeded for ``release`` (its
scale-down-unneeded-time, 10 min) go. Real pods take the slots first (they preempt
placeholders), then serve after the pod lead time. So replicas asked for without headroom serve
after the lead time plus the node lead time, and capacity that headroom placed ahead serves after
the pod lead time alone.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def ready_replicas(desired: np.ndarray, lead_steps: int, initial: int | None = None) -> np.ndarray:
    """Pods ready at each step when each new pod needs ``lead_steps`` steps to serve."""
    desired = np.asarray(desired, dtype=np.int64)
    if lead_steps <= 0:
        return desired.copy()
    first = int(desired[0]) if initial is None else int(initial)
    # before the trace starts the cluster was steady at its first size: it is already warm
    padded = np.concatenate([np.full(lead_steps, first, dtype=np.int64), desired])
    out: np.ndarray = sliding_window_view(padded, lead_steps + 1).min(axis=1)
    return out


#: the cluster autoscaler's default --scale-down-unneeded-time: an unneeded node goes after this
NODE_RELEASE_S = 600


def ready_with_nodes(
    desired: np.ndarray,
    headroom_for: np.ndarray | None,
    *,
    lead_steps: int,
    node_lead_steps: int,
    release_steps: int,
    initial: int,
    placeholders_for: Callable[[int, int], int],
) -> tuple[np.ndarray, np.ndarray]:
    """(ready pods, placeholder pods) at each step when pods also wait for node slots.

    ``headroom_for[t]`` is what the controller's headroom holds room for at ``t`` (0: none); the
    placeholder count is ``placeholders_for(headroom_for, ready)`` with the pods ready at the step
    before (what the controller saw), the controller's own rule."""
    desired_l = np.asarray(desired, dtype=np.int64).tolist()
    n = len(desired_l)
    ahead = np.zeros(n, dtype=np.int64).tolist() if headroom_for is None else np.asarray(headroom_for, dtype=np.int64).tolist()
    ready = np.empty(n, dtype=np.int64)
    holders = np.zeros(n, dtype=np.int64)
    slots, in_flight = int(initial), 0
    arrivals: deque[tuple[int, int]] = deque()
    asked: deque[tuple[int, int]] = deque()  # (step, slots asked): decreasing, for the release window's max
    placed: deque[tuple[int, int]] = deque()  # (step, pods placed): increasing, for the lead window's min
    asked.append((-1, int(initial)))  # the cluster was steady before the trace
    for t in range(-lead_steps, 0):
        placed.append((t, int(initial)))
    ready_before = int(initial)
    for t in range(n):
        while arrivals and arrivals[0][0] <= t:
            slots += arrivals[0][1]
            in_flight -= arrivals.popleft()[1]
        hold = placeholders_for(ahead[t], ready_before) if ahead[t] else 0
        want = desired_l[t] + hold
        if want > slots + in_flight:
            arrivals.append((t + node_lead_steps, want - slots - in_flight))
            in_flight = want - slots
            if node_lead_steps <= 0:
                slots, in_flight = want, 0
                arrivals.clear()
        while asked and asked[-1][1] <= want:
            asked.pop()
        asked.append((t, want))
        while asked[0][0] <= t - release_steps:
            asked.popleft()
        if slots > asked[0][1]:
            slots = asked[0][1]  # nodes unneeded for the whole release window go
        pods = min(desired_l[t], slots)
        holders[t] = min(hold, slots - pods)
        while placed and placed[-1][1] >= pods:
            placed.pop()
        placed.append((t, pods))
        while placed[0][0] < t - lead_steps:
            placed.popleft()
        ready_before = placed[0][1]
        ready[t] = ready_before
    return ready, holders


def need_replicas(demand: np.ndarray, capacity_per_replica: float, target_utilization: float) -> np.ndarray:
    """Replicas each step's demand needs at the target utilization (no bounds); a missing sample
    needs what the last known one did."""
    demand = np.asarray(demand, dtype=np.float64)
    known = np.isfinite(demand)
    if not known.all():
        last = np.maximum.accumulate(np.where(known, np.arange(len(demand)), -1))
        first = int(np.argmax(known)) if known.any() else 0
        demand = demand[np.where(last >= 0, last, first)]
    out: np.ndarray = np.ceil(np.nan_to_num(demand) / (capacity_per_replica * target_utilization) - 1e-9).astype(np.int64)
    return out


@dataclass(frozen=True)
class HpaBehavior:
    """The HPA v2 defaults (autoscaling/v2, kube-controller-manager defaults)."""

    sync_period_s: int = 15
    tolerance: float = 0.1
    scale_up_percent: int = 100
    scale_up_pods: int = 4
    scale_up_period_s: int = 15
    scale_down_stabilization_s: int = 300


def simulate_hpa(
    observed: np.ndarray,
    *,
    step_s: int,
    capacity_per_replica: float,
    target_utilization: float,
    min_replicas: np.ndarray | int,
    max_replicas: int,
    initial: int,
    behavior: HpaBehavior = HpaBehavior(),
) -> np.ndarray:
    """Desired replicas of an HPA whose metric is ``observed`` (demand as the HPA sees it).

    The metric is an ``AverageValue`` target of ``capacity * utilization`` per pod, so the raw
    recommendation is ``ceil(metric / target)``; the 10 % tolerance, the scale-up policy
    (max of +100 % and +4 pods per 15 s) and the 300 s scale-down stabilization (the highest
    recommendation of the window) apply as in the HPA controller. ``min_replicas`` may vary per
    step (a scheduled floor, like KEDA's cron scaler raising the floor).

    As in kube-controller-manager, the stabilization window keeps the metric's own recommendations,
    not clamped to ``minReplicas``: the floor is applied after stabilization, so a floor that goes
    down is followed at once down to what the metric asked for (a lowered floor is not held for
    another window).
    """
    n = len(observed)
    target = capacity_per_replica * target_utilization
    mins = np.broadcast_to(np.asarray(min_replicas, dtype=np.int64), (n,))
    syncs = max(1, step_s // behavior.sync_period_s)
    window = max(1, math.ceil(behavior.scale_down_stabilization_s / step_s))
    out = np.empty(n, dtype=np.int64)
    current = int(initial)
    recent: list[int] = []
    obs = np.asarray(observed, dtype=np.float64).tolist()
    mins_l = mins.tolist()
    for t in range(n):
        metric = obs[t]
        lo = mins_l[t]
        if metric != metric:  # a missing sample: the HPA holds (only a floor moves it)
            current = min(max(current, lo, 1), max_replicas)
            out[t] = current
            continue
        raw = math.ceil(metric / target - 1e-9) if metric > 0 else 0
        if current > 0 and abs(metric / (target * current) - 1.0) <= behavior.tolerance:
            raw = current
        recent.append(raw)
        if len(recent) > window:
            recent.pop(0)
        for _ in range(syncs):
            # stabilized: up at once, down only to the highest recommendation of the window
            wanted = raw if raw > current else min(max(recent), current)
            if wanted > current:
                limit = max(current * (100 + behavior.scale_up_percent) // 100, current + behavior.scale_up_pods)
                wanted = min(wanted, limit)
            # then the bounds: a floor above the rate limit wins, as minReplicas does
            wanted = min(max(wanted, lo, 1), max_replicas)
            if wanted == current:
                break
            current = wanted
        out[t] = current
    return out


@dataclass(frozen=True)
class Figures:
    unserved_fraction: float
    underprovisioned_minutes: float
    replica_hours: float
    #: None where the oracle asked for nothing (no calendar window in the trace)
    replica_hours_vs_oracle: float | None
    scale_actions: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "unserved_fraction": self.unserved_fraction,
            "underprovisioned_minutes": self.underprovisioned_minutes,
            "replica_hours": self.replica_hours,
            "replica_hours_vs_oracle": self.replica_hours_vs_oracle,
            "scale_actions": self.scale_actions,
        }


def figures(
    demand: np.ndarray,
    desired: np.ndarray,
    ready: np.ndarray,
    *,
    capacity_per_replica: float,
    step_s: int,
    select: np.ndarray | None,
    oracle_replica_hours: float | None,
    placeholders: np.ndarray | None = None,
) -> Figures:
    """Quality and cost of one strategy over the steps in ``select`` (all when None), counting
    only the steps whose demand is known; node-headroom placeholder pods count in the cost."""
    known = np.isfinite(demand)
    select = known if select is None else (select & known)
    d = demand[select]
    cap = ready[select] * capacity_per_replica
    short = np.maximum(d - cap, 0.0)
    total = float(d.sum())
    replica_hours = float(desired[select].sum() + (placeholders[select].sum() if placeholders is not None else 0)) * step_s / 3600
    changes = np.zeros(len(desired), dtype=bool)
    changes[1:] = desired[1:] != desired[:-1]
    return Figures(
        unserved_fraction=float(short.sum() / total) if total > 0 else 0.0,
        underprovisioned_minutes=float((short > 0).sum()) * step_s / 60,
        replica_hours=replica_hours,
        replica_hours_vs_oracle=(replica_hours / oracle_replica_hours) if oracle_replica_hours else None,
        scale_actions=int(changes[select].sum()),
    )
