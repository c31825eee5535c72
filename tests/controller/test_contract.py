"""The API double cannot drift from kube-apiserver: one scenario, run on both, ends the same.

``tests/fakes/kube.py`` stays for what the real control plane cannot do on cue (injected 409/5xx
storms, a racing writer, a status the schema would refuse). Its answers are only worth something
while they are kube-apiserver's: here a promotion is run through a controller against each, and
the writes it made, the floors, the phases, the conditions and the Events must be the same.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from autoscaler.adapters.kube import Kube
from autoscaler.adapters.prometheus import HistoryCache
from autoscaler.controller.model import ControllerOptions
from autoscaler.controller.reconcile import Controller
from tests.cluster.facade import ClusterKube, complete
from tests.controller.world import COOLDOWN, LEAD, Clock, conditions, hpa_min, seed, status_of
from tests.fakes.kube import FakeKube

WRITES = ("POST", "PUT", "PATCH", "DELETE")


class DoubleKube:
    """The double behind the facade's surface (a namespace, events, the controller's client)."""

    def __init__(self, fake: FakeKube, namespace: str) -> None:
        self.fake, self.ns = fake, namespace

    def put_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = complete(obj)  # the same objects as the real one gets
        obj["metadata"].setdefault("namespace", self.ns)
        return self.fake.put_object(obj)

    def get(self, *args: str) -> dict[str, Any] | None:
        return self.fake.get(*args)

    def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.fake.list("v1", "events", self.ns) if reason is None or e.get("reason") == reason]

    def writes(self) -> list[tuple[str, str]]:
        return self.fake.writes()

    def controller_api(self, identity: str = "test") -> Any:
        from kubernetes import client

        config = client.Configuration()
        config.host = self.fake.url
        api = client.ApiClient(config)
        api.user_agent = f"peakscale-controller/{identity}"
        return api


@pytest.fixture
def double(namespace):
    fake = FakeKube()
    fake.url = fake.start()
    yield DoubleKube(fake, namespace)
    fake.stop()


def run(kube, prometheus, start: float) -> dict[str, Any]:
    """A promotion from half an hour before to after its cool-down; what the cluster said."""
    t = start + 3600
    seed(kube, event_start=t, extra_spec={"floor": "events-only"})
    clock = Clock(t - 1800)
    opts = ControllerOptions(identity="contract", namespaces=[kube.ns], interval_s=60, lease_namespace=kube.ns)
    ctl = Controller(Kube(kube.controller_api("contract")), HistoryCache(prometheus.url, timeout_s=5), opts, clock=clock)
    floors, phases = [], []
    for now in (t - 1800, t - LEAD - 60, t + 60, t + 3600 + 60, t + 3600 + COOLDOWN):
        clock.now = now
        ctl.run_cycle()
        policy, event = status_of(kube, "scalingpolicies", "web"), status_of(kube, "promotionevents", "flash-sale")
        floors.append(hpa_min(kube))
        phases.append((policy["phase"], event["phase"], sorted((c["type"], c["status"], c["reason"]) for c in conditions(policy).values())))
    hpa = kube.get("autoscaling/v2", "horizontalpodautoscalers", kube.ns, "web")
    writes = [(m, re.sub(r"/namespaces/[^/]+/", "/namespaces/NS/", p)) for m, p in kube.writes() if m in WRITES and "/leases" not in p]
    return {
        "floors": floors,
        "phases": phases,
        "annotations": {k: v for k, v in (hpa["metadata"].get("annotations") or {}).items() if k.startswith("peakscale.io/")},
        "finalizers": kube.get("peakscale.io/v1alpha1", "scalingpolicies", kube.ns, "web")["metadata"].get("finalizers"),
        "events": sorted((e["reason"], e["type"], e["involvedObject"]["kind"]) for e in kube.events()),
        "writes": writes,
    }


def test_a_promotion_ends_the_same_on_the_double_and_on_kube_apiserver(cluster, namespace, double, prometheus, history_window):
    start = float(history_window[1] - 6 * 3600)
    on_double = run(double, prometheus, start)
    real = ClusterKube(cluster, namespace)
    on_real = run(real, prometheus, start)
    assert on_real["floors"] == [3, 72, 72, 72, 3]
    for key in on_real:
        assert on_double[key] == on_real[key], (key, on_double[key], on_real[key])
    assert real.refused() == []
