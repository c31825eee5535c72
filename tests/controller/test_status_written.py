"""Every status the controller writes through an event is one kube-apiserver stores as written:
nothing refused, nothing pruned by the CRD's structural schema."""

from __future__ import annotations

import json

from autoscaler.adapters.kube import Kube
from tests.schemas import EVENT, POLICY, refused
from tests.controller.world import Clock, controller, seed


def test_the_statuses_a_controller_writes_through_an_event_are_stored_as_written(kube, prometheus, history_window, monkeypatch):
    """A policy with node headroom, from before its event to after the cool-down."""
    written: dict[tuple[str, str], dict] = {}
    original = Kube.update_status

    def recording(self, plural, namespace, name, status, **kwargs):
        written[(plural, name)] = json.loads(json.dumps(status))  # as it goes over the wire
        return original(self, plural, namespace, name, status, **kwargs)

    monkeypatch.setattr(Kube, "update_status", recording)
    t = float(history_window[1] - 6 * 3600) + 3600
    seed(kube, event_start=t, extra_spec={"nodeHeadroom": {"enabled": True, "leadTime": "3m"}})
    clock = Clock(t - 1800)
    ctl = controller(kube, prometheus, clock)
    seen = []
    for now in (t - 1800, t - 600, t + 60, t + 3600 + 600, t + 3600 + 3600):
        clock.now = now
        ctl.run_cycle()
        policy = kube.get("peakscale.io/v1alpha1", "scalingpolicies", kube.ns, "web")["status"]
        event = kube.get("peakscale.io/v1alpha1", "promotionevents", kube.ns, "flash-sale")["status"]
        # stored exactly as the controller wrote it: the API server pruned nothing
        assert policy == written[("scalingpolicies", "web")] and event == written[("promotionevents", "flash-sale")]
        assert refused(POLICY, policy) == [] and refused(EVENT, event) == []
        seen.append((policy["phase"], event["phase"]))
    assert [e for _, e in seen] == ["Scheduled", "PreScaling", "Active", "Cooling", "Done"]
    assert {"Idle", "Holding"} <= {p for p, _ in seen}


def test_a_reshard_report_survives_the_controllers_status_and_the_server_keeps_it(kube, prometheus, history_window):
    """The reshard step merges its figures into status.reshard (a merge patch of the status
    subresource); the controller's next status, which replaces the rest, carries them; the API
    server stores them as the CRD declares them. The controller's RBAC is not widened for it."""
    from autoscaler.adapters.redis_cluster import Progress
    from autoscaler.cli.reshard import report_reshard
    from tests.controller.world import status_of

    t = float(history_window[1] - 6 * 3600) + 3600
    seed(kube, event_start=t, extra_spec={"reshard": {"datasetSize": "20GB"}})
    clock = Clock(t - 1800)
    ctl = controller(kube, prometheus, clock)
    ctl.run_cycle()
    done = Progress(slots_total=6554, slots_moved=6554, keys_moved=41_009, bytes_moved=3_500_000, started=0.0, ended=19.0)
    # the step writes as itself (the test's own credentials stand for its ServiceAccount): the
    # controller's role may replace the status it computes, not patch in others' reports
    report_reshard(Kube(kube.api), kube.ns, "web", done)
    reported = status_of(kube, "scalingpolicies", "web")["reshard"]
    assert reported["throughputBytesPerSecond"] == round(3_500_000 / 19.0, 1) and reported["slotsMoved"] == 6554 and reported["keysMoved"] == 41_009
    clock.now = t - 600
    ctl.run_cycle()
    after = status_of(kube, "scalingpolicies", "web")
    assert after["reshard"] == reported and after["phase"] and refused(POLICY, after) == []
