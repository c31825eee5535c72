import numpy as np

from autoscaler.simulate import figures, ready_replicas, simulate_hpa


def test_new_replicas_serve_only_after_lead_time_and_leave_at_once():
    desired = np.array([2, 2, 10, 10, 10, 10, 10, 3, 3, 3])
    ready = ready_replicas(desired, lead_steps=3)
    assert ready.tolist() == [2, 2, 2, 2, 2, 10, 10, 3, 3, 3]


def test_pods_removed_while_warming_are_the_warming_ones():
    desired = np.array([2, 10, 4, 4, 4, 4])
    assert ready_replicas(desired, lead_steps=2).tolist() == [2, 2, 2, 4, 4, 4]


def hpa(observed, **kw):
    args = dict(step_s=60, capacity_per_replica=100.0, target_utilization=0.5, min_replicas=1, max_replicas=1000, initial=1)
    args.update(kw)
    return simulate_hpa(np.asarray(observed, dtype=float), **args)


def test_hpa_scale_up_is_limited_per_sync_period():
    out = hpa([50, 10000, 10000, 10000])
    # +100 % or +4 pods per 15 s: 1 -> 5 -> 10 -> 20 -> 40 in the first minute, then 80 ... 200
    assert out.tolist()[:2] == [1, 40]
    assert out[-1] == 200


def test_hpa_tolerance_keeps_small_changes():
    out = hpa([1000, 1040, 1040], initial=20)
    assert out.tolist() == [20, 20, 20]


def test_hpa_scale_down_waits_for_stabilization_window():
    out = hpa([1000] + [100] * 7, initial=20)
    assert out.tolist() == [20, 20, 20, 20, 20, 2, 2, 2]


def test_hpa_respects_a_scheduled_floor():
    out = hpa([100] * 4, initial=2, min_replicas=np.array([2, 30, 30, 2]))
    assert out.tolist()[:3] == [2, 30, 30]


def test_figures_count_unserved_demand_against_ready_capacity():
    demand = np.array([100.0, 300.0, 300.0, 100.0])
    desired = np.array([1, 3, 3, 1])
    ready = np.array([1, 1, 3, 1])
    f = figures(demand, desired, ready, capacity_per_replica=100.0, step_s=60, select=None, oracle_replica_hours=8 / 60)
    assert f.unserved_fraction == 200 / 800
    assert f.underprovisioned_minutes == 1
    assert f.replica_hours == 8 / 60
    assert f.replica_hours_vs_oracle == 1.0
    assert f.scale_actions == 2
