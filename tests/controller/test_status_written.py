"""Every status the controller writes through an event is one kube-apiserver stores as written:
nothing refused, nothing pruned by the CRD's structural schema."""

from __future__ import annotations

import json

from autoscaler.adapters.kube import Kube
from tests.autoscaler.test_status import EVENT, POLICY, refused
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
