"""The controller tests' world: one web tier and one promotion (tests.builders, seeded here),
and the controller as the chart's ServiceAccount, with a clock the test moves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autoscaler.adapters.kube import Kube
from autoscaler.adapters.prometheus import HistoryCache
from autoscaler.controller.model import ControllerOptions
from autoscaler.controller.reconcile import Controller
from tests.builders import QUERY, hpa, iso, policy_spec, web_tier  # noqa: F401 (the controller tests import them from here)

LEAD = 600
COOLDOWN = 1200


class Clock:
    def __init__(self, now: float) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now


def seed(kube: Any, *, event_start: float, expected_peak: float = 50_000, hpa_max: int = 100, policy_max: int = 80, mode: str = "hpa-floor", extra_spec: dict[str, Any] | None = None) -> None:
    for obj in web_tier(kube.ns, event_start=event_start, expected_peak=expected_peak, hpa_max=hpa_max, policy_max=policy_max, mode=mode, extra_spec=extra_spec):
        kube.put_object(obj)


def controller(kube: Any, prometheus: Any, clock: Clock, identity: str = "a", **options: Any) -> Controller:
    """The controller, as it runs in the cluster: the chart's ServiceAccount, the test's namespace
    watched, its Lease and headroom placeholders in that namespace (the release's)."""
    ns = kube.ns
    opts = ControllerOptions(identity=identity, namespaces=[ns], interval_s=60, lease_namespace=ns, **options)
    return Controller(Kube(kube.controller_api(identity)), HistoryCache(prometheus.url, timeout_s=5), opts, clock=clock)


def hpa_min(kube: Any, name: str = "web") -> int:
    return int(kube.get("autoscaling/v2", "horizontalpodautoscalers", kube.ns, name)["spec"]["minReplicas"])


def status_of(kube: Any, plural: str, name: str) -> dict[str, Any]:
    return dict(kube.get("peakscale.io/v1alpha1", plural, kube.ns, name).get("status") or {})


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions") or []}


def raised(kube: Any, prometheus: Any, start: float) -> tuple[Controller, Clock, float]:
    """The web tier seeded with a promotion at ``start`` + 1 h (returned as ``t``), and a first
    cycle five minutes before it that raised the floor to the promotion's size."""
    t = start + 3600
    seed(kube, event_start=t)
    clock = Clock(t - 300)
    ctl = controller(kube, prometheus, clock)
    ctl.run_cycle()
    assert hpa_min(kube) == 72
    return ctl, clock, t


def assert_web_acted_each_cycle(ctl: Controller, clock: Clock, floor: Callable[[], int], cycles: int = 3) -> None:
    """Beside whatever else is broken, the good policy ``web`` is planned and acted on every cycle."""
    for _ in range(cycles):
        report = ctl.run_cycle()
        assert report.leader and {o.name: o.error for o in report.outcomes}["web"] is None
        assert floor() == 72
        clock.now += 60


def floors_until(ctl: Controller, clock: Clock, kube: Any, t: float, end_s: float, step_s: int = 60) -> dict[float, int]:
    """A cycle every ``step_s`` until ``end_s``: the HPA's floor after each, by the time relative to ``t``."""
    floors = {}
    while clock.now <= end_s:
        ctl.run_cycle()
        floors[clock.now - t] = hpa_min(kube)
        clock.now += step_s
    return floors
