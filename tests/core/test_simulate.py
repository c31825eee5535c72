import numpy as np

from autoscaler.core.simulate import figures, ready_replicas, simulate_hpa


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


# --- nodes ---------------------------------------------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from autoscaler.core.cycle import placeholders_for  # noqa: E402
from autoscaler.core.simulate import ready_with_nodes  # noqa: E402

counts = st.lists(st.integers(0, 40), min_size=1, max_size=80)


def nodes(desired, ahead=None, lead=2, node_lead=3, release=10, initial=None):
    desired = np.asarray(desired)
    return ready_with_nodes(
        desired, None if ahead is None else np.asarray(ahead), lead_steps=lead, node_lead_steps=node_lead,
        release_steps=release, initial=int(desired[0]) if initial is None else initial, placeholders_for=placeholders_for,
    )  # fmt: skip


def test_pods_beyond_the_node_room_serve_after_both_lead_times():
    ready, _ = nodes([2, 2, 10, 10, 10, 10, 10, 10, 10, 10])
    # asked at step 2: nodes at 5, pods ready at 7 (node lead 3 + pod lead 2)
    assert ready.tolist() == [2, 2, 2, 2, 2, 2, 2, 10, 10, 10]


def test_pods_that_take_a_placeholder_s_room_serve_after_the_pod_lead_time_alone():
    # headroom for 10 from step 0: the placeholders' nodes are up at step 3; the raise at step 5
    ready, held = nodes([2, 2, 2, 2, 2, 10, 10, 10, 10, 10, 10], ahead=[10] * 11)
    assert ready.tolist() == [2, 2, 2, 2, 2, 2, 2, 10, 10, 10, 10]
    # 8 placeholders once their nodes are up, fewer as real pods take the room, none once ready
    assert held.tolist()[3:5] == [8, 8] and held[5] == 0 and held[-1] == 0


def test_nodes_unneeded_for_the_release_window_go():
    # 10 pods, down to 2 for 12 steps (past the 10-step release), back to 10: new nodes again
    desired = [10] * 3 + [2] * 12 + [10] * 8
    ready, _ = nodes(desired, initial=10)
    assert ready[15 + 4] == 2 and ready[15 + 5] == 10
    # within the release window the nodes are still there: pod lead time only
    desired = [10] * 3 + [2] * 5 + [10] * 5
    ready, _ = nodes(desired, initial=10)
    assert ready[8 + 1] == 2 and ready[8 + 2] == 10


@settings(max_examples=200, deadline=None)
@given(desired=counts, lead=st.integers(0, 5), node_lead=st.integers(0, 6), release=st.integers(1, 12))
def test_node_room_never_makes_pods_serve_sooner(desired, lead, node_lead, release):
    ready, held = nodes(desired, lead=lead, node_lead=node_lead, release=release)
    plain = ready_replicas(np.asarray(desired), lead)
    assert (ready <= plain).all() and (held == 0).all()
    if node_lead == 0:
        assert ready.tolist() == plain.tolist()


@settings(max_examples=200, deadline=None)
@given(desired=counts, lead=st.integers(0, 5), node_lead=st.integers(1, 6))
def test_headroom_for_every_pod_one_node_lead_ahead_serves_as_if_nodes_were_free(desired, lead, node_lead):
    desired = np.asarray(desired)
    # headroom for the most pods asked within the coming node lead, from the first step
    ahead = np.array([desired[t : t + node_lead + 1].max() for t in range(len(desired))])
    ahead[: node_lead] = desired.max()  # the trace's start: room was made before it
    ready, _ = nodes(desired, ahead=ahead, lead=lead, node_lead=node_lead, release=10**6, initial=int(desired.max()))
    plain = ready_replicas(desired, lead, initial=int(desired.max()))
    assert ready.tolist() == plain.tolist()
