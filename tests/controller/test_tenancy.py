"""What a tenant (whoever can write a ScalingPolicy or a calendar entry in one namespace) can make
the controller do: never more than that namespace could do itself, and never stop the others."""

from __future__ import annotations

from kubernetes import client

from autoscaler.controller.headroom import placeholder_name
from tests.cluster.controlplane import wait_for
from tests.controller.world import LEAD, Clock, conditions, controller, hpa, hpa_min, iso, policy_spec, seed, status_of


def test_one_bad_calendar_entry_is_skipped_and_reported_and_the_others_raise(kube, prometheus, start, tmp_path):
    t = start + 3600
    seed(kube, event_start=t + 86400, extra_spec={"floor": "events-only"})  # its own promotion is a day away
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text(
        "timezone: UTC\n"
        "events:\n"
        f"  - {{name: instant, start: '{iso(t)}', end: '{iso(t)}', kind: flash-sale, expectedPeak: 90000}}\n"
        f"  - {{name: typo, start: '{iso(t)}', end: '{iso(t + 3600)}', kind: flash-sale, targets: {{matchExpressions: [{{key: tier, operator: 'notin ', values: [web]}}]}}}}\n"
        f"  - {{name: night-sale, title: Night sale, start: '{iso(t)}', end: '{iso(t + 3600)}', kind: flash-sale, expectedPeak: 50000}}\n"
    )
    clock = Clock(t - LEAD - 60)
    ctl = controller(kube, prometheus, clock, calendar_file=str(calendar))
    ctl.run_cycle()
    assert hpa_min(kube) == 72  # the good entry raises: ceil(50,000 / 700); the bad ones do not
    skipped = [e for e in kube.list("v1", "events", kube.ns) if e.get("reason") == "InvalidCalendarEntry"]
    messages = " ".join(e["message"] for e in skipped)
    assert len(skipped) == 2 and "instant" in messages and "typo" in messages and "operator" in messages, messages
    assert all(e["involvedObject"]["kind"] == "Lease" for e in skipped)
    clock.now += 60
    ctl.run_cycle()
    assert len([e for e in kube.list("v1", "events", kube.ns) if e.get("reason") == "InvalidCalendarEntry"]) == 2  # said once
    # a half-written file keeps what was read before
    calendar.write_text("events: [unclosed\n")
    clock.now += 60
    ctl.run_cycle()
    assert hpa_min(kube) == 72


def headroom_world(kube, t: float, *, priority_class: str = "peakscale-headroom", peak: float = 50_000, max_replicas: int = 80) -> None:
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "nodeSelector": {"pool": "gpu"},
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "web", "image": "registry.invalid/web:1", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}],
        },
    }
    kube.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3, "template": template}})
    kube.put_object(hpa(kube.ns, "web", maximum=max_replicas))
    spec = policy_spec(floor="events-only", maxReplicas=max_replicas, nodeHeadroom={"enabled": True, "leadTime": "5m", "priorityClassName": priority_class})
    kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "web"}, "spec": spec})
    kube.put_object(
        {
            "apiVersion": "peakscale.io/v1alpha1", "kind": "PromotionEvent", "metadata": {"name": "sale"},
            "spec": {"start": iso(t), "end": iso(t + 3600), "kind": "flash-sale", "expectedPeak": peak},
        }
    )  # fmt: skip


def headroom_cycle(kube, prometheus, t: float, **options):
    ctl = controller(kube, prometheus, Clock(t - LEAD - 300 - 60), **options)
    ctl.run_cycle()
    return kube.get("apps/v1", "deployments", kube.ns, placeholder_name(kube.ns, "web"))


def test_a_policy_cannot_give_its_placeholders_a_priority_the_admin_did_not_allow(kube, prometheus, start):
    t = start + 3600
    headroom_world(kube, t, priority_class="system-node-critical")
    assert headroom_cycle(kube, prometheus, t) is None
    found = conditions(status_of(kube, "scalingpolicies", "web"))["NodeHeadroom"]
    assert found["status"] == "False" and found["reason"] == "PriorityClassRefused" and "system-node-critical" in found["message"]
    # nor does an allowed name help when the class it names would preempt others
    kube.put_object({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": f"{kube.ns}-high"}, "value": 1000})
    policy = kube.get("peakscale.io/v1alpha1", "scalingpolicies", kube.ns, "web")
    policy["spec"]["nodeHeadroom"]["priorityClassName"] = f"{kube.ns}-high"
    kube.replace(policy)
    assert headroom_cycle(kube, prometheus, t, headroom_priority_classes=("peakscale-headroom", f"{kube.ns}-high")) is None
    assert "must be negative" in conditions(status_of(kube, "scalingpolicies", "web"))["NodeHeadroom"]["message"]
    kube.delete("scheduling.k8s.io/v1", "priorityclasses", "", f"{kube.ns}-high")


def test_placeholders_run_in_the_targets_namespace_bound_by_its_quota_and_capped(kube, prometheus, start):
    t = start + 3600
    # a tenant's maxReplicas asks for a huge raise: the controller's cap bounds the placeholders
    headroom_world(kube, t, peak=5_000_000, max_replicas=100_000)
    kube.put_object({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute"}, "spec": {"hard": {"pods": "20"}}})
    holder = headroom_cycle(kube, prometheus, t, headroom_max_pods=30)
    assert holder is not None and holder["metadata"]["namespace"] == kube.ns
    assert holder["spec"]["replicas"] == 30
    assert holder["spec"]["template"]["spec"]["priorityClassName"] == "peakscale-headroom"
    labels = holder["metadata"]["labels"]
    assert labels["peakscale.io/policy-namespace"] == kube.ns and labels["peakscale.io/policy"] == "web"
    # the namespace's quota (20 pods, the web tier's among them, however many it has by then: its
    # HPA and its own rollout race the placeholders) binds them: the real quota admission
    core = client.CoreV1Api(kube.api)
    wait_for("the quota full", lambda: (core.read_namespaced_resource_quota("compute", kube.ns).status.used or {}).get("pods") == "20", 120)
    pods = [p.metadata.name for p in core.list_namespaced_pod(kube.ns).items if p.status.phase not in ("Succeeded", "Failed")]
    placeholders = [name for name in pods if name.startswith("headroom-")]
    assert len(pods) == 20 and 0 < len(placeholders) < 30


def test_scheduling_constraints_are_copied_only_when_the_admin_allows(kube, prometheus, start):
    t = start + 3600
    headroom_world(kube, t)
    pod = headroom_cycle(kube, prometheus, t, headroom_copy_scheduling=False)["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod and "tolerations" not in pod


def test_a_deployment_of_the_placeholders_name_that_is_not_peakscales_is_left_alone(kube, prometheus, start):
    t = start + 3600
    headroom_world(kube, t)
    name = placeholder_name(kube.ns, "web")
    kube.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {"replicas": 1}})
    before = kube.get("apps/v1", "deployments", kube.ns, name)
    ctl = controller(kube, prometheus, Clock(t - LEAD - 300 - 60))
    report = ctl.run_cycle()
    after = kube.get("apps/v1", "deployments", kube.ns, name)
    assert after["spec"] == before["spec"] and after["metadata"].get("labels") == before["metadata"].get("labels")
    assert "is not this policy's placeholder" in {o.name: o.error for o in report.outcomes}["web"]


def test_placeholder_names_of_two_policies_never_collide():
    assert placeholder_name("a-b", "c") != placeholder_name("a", "b-c")
    long = placeholder_name("n" * 63, "p" * 253)
    assert len(long) <= 63 and long.startswith("headroom-") and long[-1].isalnum()


def test_a_policy_cannot_ask_for_a_history_that_floods_prometheus(kube, prometheus, start):
    t = start + 3600
    seed(kube, event_start=t, extra_spec={"forecast": {"history": "3650d", "step": "1s"}})  # the CRD takes it
    report = controller(kube, prometheus, Clock(t - 1800)).run_cycle()
    assert report.queries == 0
    status = status_of(kube, "scalingpolicies", "web")
    assert conditions(status)["Ready"]["reason"] == "InvalidSpec" and "use a longer step or a shorter history" in status["reason"]


def test_the_cycles_query_budget_is_shared_fairly_and_each_policys_cost_is_in_its_status(kube, prometheus, start):
    t = start + 3600
    fortnight = {"history": "14d", "step": "1m"}  # 20,160 samples: 3 range queries the first time
    seed(kube, event_start=t, extra_spec={"forecast": fortnight})
    other = policy_spec(
        targetRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "other"}, forecast=fortnight,
        metric={"query": 'sum(shop_demand{app="web"}) * 2', "capacityPerReplica": 1000},
    )  # fmt: skip
    kube.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "other"}, "spec": {"replicas": 3}})
    kube.put_object(hpa(kube.ns, "other"))
    kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "other"}, "spec": other})
    clock = Clock(t - 1800)
    ctl = controller(kube, prometheus, clock, max_queries_per_cycle=4)
    first = ctl.run_cycle()
    assert first.queries == 3  # one history fits the budget of 4, the other waits
    waited = [o.name for o in first.outcomes if status_of(kube, "scalingpolicies", o.name).get("historyQueries") == 3]
    assert len(waited) == 1
    held = next(name for name in ("web", "other") if name not in waited)
    assert status_of(kube, "scalingpolicies", held)["historyQueries"] == 0
    assert "needs 3 range queries and this cycle's budget (4) is spent" in conditions(status_of(kube, "scalingpolicies", held))["MetricsAvailable"]["message"]
    clock.now += 60
    second = ctl.run_cycle()
    assert second.queries == 3 + 1  # the one left out goes first; the other is one query behind
    assert status_of(kube, "scalingpolicies", held)["historyQueries"] == 3
    assert status_of(kube, "scalingpolicies", waited[0])["historyQueries"] == 1
