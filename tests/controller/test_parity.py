"""One decision path: the controller, the backtest and `peakscale plan` make the same writes.

The real controller runs its reconcile loop with an injected clock against a real Prometheus
(backfilled with a synthetic trace: a daily ramp plus two events of one kind, one sized with an
``expectedMultiplier``, the other learned from it) and the real control plane, as the chart's
ServiceAccount, for an ``hpa-floor`` policy and a ``scale`` policy. The second event starts 26 hours after the first ends
and the policies keep one day of history, so it learns from the profile the controller recorded
of the first in its status (event memory), never from raw samples. After every cycle the HPAs'
floors, the StatefulSet's replicas and the placeholder are read back from kube-apiserver, and
every change is recorded with its time. The backtest's ``peakscale`` and ``peakscale-scale`` strategies and ``peakscale
plan`` on the same trace and calendar must decide the same values at the same instants.

A third policy keeps node headroom: its placeholder writes (create, resize, delete) must be the
ones ``peakscale plan`` shows, with the target's pods becoming ready a lead time after each
raise, as ``plan`` counts them; its floor writes must be the backtest's with a node lead time.
The test plays the kubelets' readiness probes: edge pods are held not ready (kwok waits for the
``peakscale.test/hold-ready`` annotation to go) and released, or restarted, so that the real
Deployment controller counts as many ready as ``plan`` does.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from datetime import datetime, UTC

import numpy as np
import pytest
import yaml
from kubernetes import client
from typer.testing import CliRunner

from autoscaler.core.backtest import Scenario, run_backtest
from autoscaler.adapters.calendar_files import load_calendar
from autoscaler.cli import app
from autoscaler.controller.reconcile import Controller
from autoscaler.controller.model import ControllerOptions
from autoscaler.adapters.kube import Kube
from autoscaler.adapters.prometheus import HistoryCache
from autoscaler.core.resources import parse_policy
from autoscaler.core.timezones import get_zone
from autoscaler.adapters.trace_files import load_trace
from autoscaler.controller.headroom import placeholder_name
from tests.cluster.controlplane import wait_for
from tests.cluster.facade import ClusterKube, pod_template
from tests.cluster.objects import add_nodes, delete_namespace, delete_nodes, ensure_namespace, unique
from tests.controller.world import Clock, hpa, iso
from tests.prometheus_server import trace_and_prometheus

NS = "parity"
STEP = 60
INTERVAL = 300
HOURS = 42
METRIC = 'parity_demand{app="shop"}'


def demand(times: np.ndarray, events: list[tuple[int, int]]) -> np.ndarray:
    hour = (times % 86400) / 3600
    rng = np.random.default_rng(11)
    values = 1000 * (1 + 0.5 * np.sin((hour - 8) / 24 * 2 * np.pi)) * (1 + 0.02 * rng.standard_normal(len(times)))
    for start, end in events:
        ramp = np.clip((times - start) / 900, 0, 1)
        inside = (times >= start) & (times < end)
        values[inside] *= 1 + 2 * ramp[inside]
    return np.round(values, 3)


POLICY_SPEC = {
    "metric": {"query": "sum(parity_demand{app=\"shop\"})", "capacityPerReplica": 200, "targetUtilization": 0.7},
    "leadTime": "10m",
    "minReplicas": 5,
    "maxReplicas": 80,
    "cooldown": "20m",
    "forecast": {"history": "1d", "step": "1m"},
}


def policies() -> list[dict]:
    return [
        {
            "apiVersion": "peakscale.io/v1alpha1",
            "kind": "ScalingPolicy",
            "metadata": {"name": "web", "namespace": NS, "labels": {"peakscale.io/tier": "web"}},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "mode": "hpa-floor", **POLICY_SPEC},
        },
        {
            "apiVersion": "peakscale.io/v1alpha1",
            "kind": "ScalingPolicy",
            "metadata": {"name": "cache", "namespace": NS, "labels": {"peakscale.io/tier": "cache"}},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "cache"}, "mode": "scale", **POLICY_SPEC},
        },
        {
            "apiVersion": "peakscale.io/v1alpha1",
            "kind": "ScalingPolicy",
            "metadata": {"name": "edge", "namespace": NS, "labels": {"peakscale.io/tier": "edge"}},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "edge"}, "mode": "hpa-floor", **POLICY_SPEC,
                "nodeHeadroom": {"enabled": True, "leadTime": f"{NODE_LEAD}s"},
            },
        },
    ]


NODE_LEAD = 600


def in_effect(writes: list[tuple[int, int]], initial: int, at: float) -> int:
    value = initial
    for t, v in writes:
        if t <= at:
            value = v
    return value


def ready_now(writes: list[tuple[int, int]], initial: int, now: float, lead: int = 600) -> int:
    """The pods the floor kept over the whole lead time before ``now`` (what plan counts ready)."""
    values = [in_effect(writes, initial, now - lead)] + [v for t, v in writes if now - lead < t < now]
    return min(values)


HOLD = "peakscale.test/hold-ready"


class EdgeReadiness:
    """The kubelets' readiness probes for the edge pods: exactly ``count`` of them ready."""

    def __init__(self, kube) -> None:
        self.kube, self.core, self.count = kube, client.CoreV1Api(kube.api), 5

    def pods(self) -> list[client.V1Pod]:
        return [p for p in self.core.list_namespaced_pod(self.kube.ns, label_selector="app=edge").items if not p.metadata.deletion_timestamp]

    def ready(self) -> int:
        status = client.AppsV1Api(self.kube.api).read_namespaced_deployment_status("edge", self.kube.ns).status
        return int(status.ready_replicas or 0)

    def set(self, count: int) -> None:
        if count == self.count:
            return
        self.count = count
        wait_for("edge pods bound", lambda: len([p for p in self.pods() if p.spec.node_name]) >= count, 120)
        ready = [p for p in self.pods() if HOLD not in (p.metadata.annotations or {})]
        held = [p for p in self.pods() if HOLD in (p.metadata.annotations or {}) and p.spec.node_name]
        for pod in held[: max(0, count - len(ready))]:
            self.core.patch_namespaced_pod(pod.metadata.name, self.kube.ns, {"metadata": {"annotations": {HOLD: None}}})
        for pod in ready[: max(0, len(ready) - count)]:  # restarted: its replacement starts not ready
            self.core.delete_namespaced_pod(pod.metadata.name, self.kube.ns, grace_period_seconds=0)
        wait_for(f"{count} edge pods ready", lambda: self.ready() == count, 120)


def seed(kube, rows, pool: str) -> None:
    kube.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}})
    kube.put_object({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "cache"}, "spec": {"replicas": 5}})
    template = pod_template("edge", pool=pool, cpu="500m", memory="1Gi")
    template["metadata"]["annotations"] = {HOLD: "true"}
    kube.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "edge"}, "spec": {"replicas": 5, "template": template}})
    for name in ("edge", "web"):
        kube.put_object(hpa(kube.ns, name, minimum=5))
    for doc in policies():
        doc["metadata"]["namespace"] = kube.ns
        kube.put_object(doc)
    for (a, b), name, multiplier in rows:
        spec = {"start": iso(a), "end": iso(b), "kind": "kol-live"}
        if multiplier:
            spec["expectedMultiplier"] = float(multiplier)
        kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "PromotionEvent", "metadata": {"name": name}, "spec": spec})


class Recorder:
    """What the cluster holds after each cycle; a change is recorded with the cycle's time."""

    def __init__(self, kube) -> None:
        self.kube = kube
        self.writes: dict[str, list[tuple[int, int]]] = {"web": [], "cache": [], "edge": []}
        self.headroom: list[tuple[int, int | None]] = []
        self.last: dict[str, int | None] = {"web": 5, "cache": 5, "edge": 5, "headroom": None}

    def _note(self, key: str, value: int | None, now: int, into: list) -> None:
        if value != self.last[key]:
            into.append((now, value))
            self.last[key] = value

    def read(self, now: int) -> None:
        get = self.kube.get
        self._note("web", get("autoscaling/v2", "horizontalpodautoscalers", self.kube.ns, "web")["spec"]["minReplicas"], now, self.writes["web"])
        self._note("edge", get("autoscaling/v2", "horizontalpodautoscalers", self.kube.ns, "edge")["spec"]["minReplicas"], now, self.writes["edge"])
        self._note("cache", get("apps/v1", "statefulsets", self.kube.ns, "cache")["spec"]["replicas"], now, self.writes["cache"])
        holder = get("apps/v1", "deployments", self.kube.ns, placeholder_name(self.kube.ns, "edge"))
        self._note("headroom", holder["spec"]["replicas"] if holder else None, now, self.headroom)


@pytest.fixture(scope="module")
def world(tmp_path_factory, cluster):
    """The trace, its calendar, and what the real controller wrote over it."""
    tmp = tmp_path_factory.mktemp("parity")
    t0 = (int(time.time()) // 86400 - 3) * 86400  # three days ago, midnight UTC: old enough for promtool
    times = t0 + np.arange(HOURS * 3600 // STEP, dtype=np.int64) * STEP
    first = (t0 + 10 * 3600, t0 + 12 * 3600)
    second = (t0 + 38 * 3600, t0 + 40 * 3600)
    values = demand(times, [first, second])
    # the trace (each value the demand of the minute that starts at its timestamp), and Prometheus holding it as a rate over each minute, labeled at the minute's end
    trace, prometheus = trace_and_prometheus(tmp, METRIC, times.tolist(), values.tolist(), STEP)
    calendar = tmp / "calendar.csv"
    rows = [(first, "evening-live", "3"), (second, "afternoon-live", "")]
    calendar.write_text(
        "start,end,name,kind,expected_multiplier\n"
        + "".join(f"{datetime.fromtimestamp(a, UTC):%Y-%m-%d %H:%M},{datetime.fromtimestamp(b, UTC):%Y-%m-%d %H:%M},{n},kol-live,{m}\n" for (a, b), n, m in rows)
    )
    (tmp / "policies.yaml").write_text(yaml.safe_dump_all(policies()))
    api = cluster.api()
    namespace, pool = unique("parity"), unique("edge")
    ensure_namespace(api, namespace)
    add_nodes(api, 4, pool=pool, cpu="32", memory="128Gi")
    try:
        kube = ClusterKube(cluster, namespace)
        seed(kube, rows, pool)
        edge = EdgeReadiness(kube)
        wait_for("5 edge pods bound", lambda: len([p for p in edge.pods() if p.spec.node_name]) == 5, 120)
        edge.count = 0
        edge.set(5)
        clock = Clock(t0)
        recorder = Recorder(kube)
        options = ControllerOptions(identity="parity", namespaces=[namespace], interval_s=INTERVAL, lease_namespace=namespace)
        ctl = Controller(Kube(kube.controller_api("parity")), HistoryCache(prometheus.url), options, clock=clock)
        end = t0 + HOURS * 3600
        while clock.now < end:
            # the cluster's part: the edge pods serve a lead time after the floor asked for them
            edge.set(ready_now(recorder.writes["edge"], 5, clock.now))
            ctl.run_cycle()
            recorder.read(int(clock.now))
            clock.now += INTERVAL
        first_status = kube.get("peakscale.io/v1alpha1", "promotionevents", namespace, "evening-live")["status"]
        recorded_events = kube.events("ProfileRecorded")
        assert kube.refused() == [], f"the chart's RBAC refused the controller: {kube.refused()}"
    finally:
        prometheus.stop()
        delete_nodes(api, pool)
        delete_namespace(api, namespace)
    return {
        "t0": t0, "end": end, "trace": trace, "calendar": calendar, "policies": tmp / "policies.yaml", "writes": recorder.writes,
        "first": first, "second": second, "first_status": first_status, "recorded_events": recorded_events, "headroom": recorder.headroom,
    }  # fmt: skip


def backtest_writes(world, memory: bool = True) -> dict[str, list[tuple[int, int]]]:
    spec = parse_policy(policies()[0])
    scenario = Scenario(policy=spec.plan_policy(), forecast=spec.forecast_settings(), interval_s=INTERVAL, cooldown_s=spec.cooldown_s, floor=spec.floor, memory=memory)
    zone = get_zone("UTC")
    trace, calendar = load_trace(world["trace"], zone), load_calendar(world["calendar"], zone)
    result = run_backtest(trace, calendar, scenario, ("peakscale", "peakscale-scale"))
    # the headroom policy: the same, with nodes that take NODE_LEAD to come up
    with_nodes = run_backtest(trace, calendar, replace(scenario, node_lead_s=NODE_LEAD), ("peakscale",))
    return {"web": result.runs["peakscale"].writes, "cache": result.runs["peakscale-scale"].writes, "edge": with_nodes.runs["peakscale"].writes}


def plan_writes(world, *extra: str) -> dict[str, list[tuple[int, int]]]:
    result = CliRunner().invoke(
        app,
        [
            "plan", "--trace", str(world["trace"]), "--trace-tz", "UTC", "--events", str(world["calendar"]), "--policies", str(world["policies"]),
            "--from", iso(world["t0"]), "--to", iso(world["end"]), "--interval", f"{INTERVAL}s", "--tz", "UTC", "-o", "json", *extra,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    targets = json.loads(result.stdout)["targets"]
    out = {t["policy"]: [(a["at_s"], a["to_replicas"]) for a in t["actions"] if "headroom" not in a["action"]] for t in targets}
    out["headroom"] = [
        (a["at_s"], a["to_replicas"] if a["action"] != "delete-headroom" else None) for t in targets for a in t["actions"] if "headroom" in a["action"]
    ]
    return out


def test_the_controller_acts_on_the_seasonal_forecast_and_on_both_events(world):
    web = world["writes"]["web"]
    lead_and_interval = 600 + INTERVAL
    first_start = world["first"][0]
    # the sized event (x3 over the usual 1,250 at 10:00): raised to its size by the cycle at which
    # its action window opens
    usual = 1000 * (1 + 0.5 * math.sin((10 - 8) / 24 * 2 * math.pi))
    at_open = [v for t, v in web if t == first_start - lead_and_interval]
    assert len(at_open) == 1 and 0.9 * 3 * usual / (200 * 0.7) <= at_open[0] <= 1.1 * 3 * usual / (200 * 0.7) + 1
    for start, _ in (world["first"], world["second"]):
        # the run-up of each event, sized or learned, lifts the floor above the seasonal plan
        run_up = [v for t, v in web if start - lead_and_interval <= t <= start]
        before = [v for t, v in web if start - 6 * 3600 < t < start - lead_and_interval]
        assert run_up and max(run_up) > max(before, default=0), f"no raise ahead of the event at {iso(start)}"
    # the seasonal forecast moves the floor outside the events too, down as well as up
    night = [v for t, v in web if t < world["first"][0] - 3600]
    assert len(set(night)) > 2
    assert world["writes"]["cache"], "the scale-mode policy wrote nothing"


def test_backtest_decides_the_same_floors_and_replicas_at_the_same_instants(world):
    assert backtest_writes(world) == world["writes"]


def test_the_headroom_placeholder_comes_and_goes_as_plan_shows(world):
    headroom = world["headroom"]
    # created at the first event's headroom window: one interval before start - lead - node lead
    first_start = world["first"][0]
    assert headroom[0][0] == first_start - 600 - NODE_LEAD - INTERVAL and headroom[0][1] > 0
    # shrinks once the raised floor's pods are ready, deleted after the event and its cool-down
    assert any(v == 0 for _, v in headroom) and (world["first"][1] + 20 * 60, None) in headroom
    assert plan_writes(world)["headroom"] == headroom


def test_the_first_events_profile_is_recorded_and_teaches_the_second(world):
    memory = {m["policy"]: m for m in world["first_status"]["memory"]}
    assert set(memory) == {"web", "cache", "edge"}
    web = memory["web"]
    assert web["offsetSeconds"] < 0 and len(web["uplift"]) <= 240 and web["stepSeconds"] == STEP
    # its shape: about x3 over the minutes before the start once the 15-minute ramp is done (the
    # level of the day-0 baseline, fitted from six night hours, cancels out; its slope does not quite)
    points = web["uplift"]
    before = points[: -web["offsetSeconds"] // STEP]
    plateau = points[-web["offsetSeconds"] // STEP + 30 :]
    assert 2.5 <= (sum(plateau) / len(plateau)) / (sum(before) / len(before)) <= 4.0
    assert web["peakUplift"] == max(points) and 15 <= web["minutesToPeak"] <= 120
    assert web["recordedAtSeconds"] == world["first"][1] + 20 * 60  # end + cool-down
    first_events = [e for e in world["recorded_events"] if e["involvedObject"]["name"] == "evening-live"]
    assert len(first_events) == 3 and all("peak x" in e["message"] for e in first_events)  # one per policy
    # the second event's raw samples are outside the one-day window: without the recorded profile
    # the controller would have decided otherwise around it
    forgetful = backtest_writes(world, memory=False)
    around = lambda writes: [(t, v) for t, v in writes if world["second"][0] - 3600 <= t <= world["second"][1]]  # noqa: E731
    assert around(forgetful["web"]) != around(world["writes"]["web"])


def test_plan_shows_the_same_raises_and_restores_as_the_controller_wrote(world):
    planned = plan_writes(world)
    planned.pop("headroom")
    assert planned == world["writes"]


def test_parity_fails_when_a_caller_changes_its_timing(world):
    """The check can fail: plan at another interval does not match what the controller wrote."""
    shifted = plan_writes(world, "--interval", f"{INTERVAL // 2}s")
    assert shifted.pop("headroom") != world["headroom"]
    assert shifted != world["writes"]
