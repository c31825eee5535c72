"""The Helm chart, rendered and linted in-process (helm-python-sdk), validated like the stacks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import helm_python
import kubernetes_validate
import pytest
import yaml

from autoscaler.adapters.kube import API_PERMISSIONS
from autoscaler.controller.telemetry import METRIC_NAMES

CHART = Path(__file__).resolve().parents[2] / "charts" / "peakscale"
KUBERNETES = "1.31"
NAMESPACED = {"watchNamespaces": ["live", "shop"], "serviceMonitor": {"enabled": True}, "dryRun": True}


def render(values: dict) -> list[dict]:
    with helm_python.Chart.load(str(CHART)) as chart:
        files = chart.render(values, name="peakscale", namespace="peakscale-system")
    docs = []
    for path, text in files.items():
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


@pytest.fixture(scope="module", params=["default", "namespaced"])
def objects(request):
    return render({} if request.param == "default" else NAMESPACED)


def test_lint_is_clean():
    for values in ({}, NAMESPACED):
        result = helm_python.lint(str(CHART), values, strict=True)
        assert result["errors"] == [] and result["messages"] == []


def test_every_rendered_object_validates_strictly(objects):
    errors = []
    for obj in objects:
        if obj["kind"] == "ServiceMonitor":
            assert obj["spec"]["endpoints"][0]["port"] == "http-metrics"
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")
    assert errors == []


def test_crds_validate_as_custom_resource_definitions():
    for path in (CHART / "crds").glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        assert doc["kind"] == "CustomResourceDefinition"
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def kinds(objects):
    return {o["kind"] for o in objects}


def test_default_install_watches_its_own_namespace_with_a_role_and_is_hardened():
    objects = render({})
    assert {"Role", "RoleBinding", "Deployment", "ServiceAccount", "Service", "PodDisruptionBudget", "NetworkPolicy", "ConfigMap"} <= kinds(objects)
    assert only_read_cluster_wide(objects)
    assert "ServiceMonitor" not in kinds(objects)
    deploy = next(o for o in objects if o["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert container["image"] == "ghcr.io/peakscale/peakscale:0.1.0"
    assert [a for a in container["args"] if a.startswith("--namespace")] == ["--namespace=peakscale-system"] and "--dry-run" not in container["args"]


def only_read_cluster_wide(objects) -> bool:
    """The one ClusterRole of a namespaced install reads nodes, pods and PriorityClasses, nothing else."""
    cluster_roles = [o for o in objects if o["kind"] == "ClusterRole"]
    return [r["metadata"]["name"] for r in cluster_roles] == ["peakscale-cluster-read"] and all(
        set(rule["verbs"]) <= {"get", "list"} for r in cluster_roles for rule in r["rules"]
    )


def test_cluster_wide_needs_an_explicit_value():
    objects = render({"clusterWide": True})
    assert "ClusterRole" in kinds(objects)
    args = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--namespace") for a in args)


def test_leader_election_values_match_the_controllers_defaults():
    from autoscaler.core.durations import parse_duration_s
    from autoscaler.controller.leader import LEASE_DURATION_S, RENEW_DEADLINE_S, RETRY_PERIOD_S

    values = yaml.safe_load((CHART / "values.yaml").read_text())["leaderElection"]
    assert (parse_duration_s(values["leaseDuration"]), parse_duration_s(values["renewDeadline"]), parse_duration_s(values["retryPeriod"])) == (LEASE_DURATION_S, RENEW_DEADLINE_S, RETRY_PERIOD_S)
    args = next(o for o in render({}) if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--lease-duration=15s", "--renew-deadline=10s", "--retry-period=2s"} <= set(args)


def test_namespaced_dry_run_with_service_monitor():
    objects = render(NAMESPACED)
    assert only_read_cluster_wide(objects) and "ServiceMonitor" in kinds(objects)
    roles = [o for o in objects if o["kind"] == "Role"]
    assert {r["metadata"]["namespace"] for r in roles} == {"live", "shop", "peakscale-system"}
    args = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=live" in args and "--namespace=shop" in args and "--dry-run" in args


def test_image_digest_pins_the_image():
    deploy = next(o for o in render({"image": {"digest": "sha256:" + "a" * 64}}) if o["kind"] == "Deployment")
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"].endswith("@sha256:" + "a" * 64)


def test_prometheus_token_comes_from_a_secret_file():
    deploy = next(o for o in render({"prometheus": {"auth": {"existingSecret": "prom-token"}}}) if o["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert "--prometheus-token-file=/var/run/secrets/prometheus/token" in pod["containers"][0]["args"]
    assert any(v.get("secret", {}).get("secretName") == "prom-token" for v in pod["volumes"])


@pytest.mark.parametrize("values", [{}, NAMESPACED, {"clusterWide": True}], ids=["default", "namespaced", "cluster"])
def test_rbac_grants_exactly_what_the_controller_calls(values):
    """Per scope: a Role in each watched namespace (or the ClusterRole with clusterWide), Roles in
    the release's namespace (the Lease, the headroom placeholders), a read-only ClusterRole."""
    granted: dict[str, set] = {"watched": set(), "release": set(), "cluster": set()}
    watched = set(values.get("watchNamespaces") or ["peakscale-system"])
    for obj in render(values):
        if obj["kind"] not in ("Role", "ClusterRole"):
            continue
        name = obj["metadata"]["name"]
        if obj["kind"] == "ClusterRole":
            scope = "cluster" if name.endswith("-cluster-read") else "watched"
        elif name.endswith(("-leader-election", "-headroom")):
            scope = "release"
            assert obj["metadata"]["namespace"] == "peakscale-system"
        else:
            scope = "watched"
            assert obj["metadata"]["namespace"] in watched
        for rule in obj["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert "*" not in (group, resource, verb)
                        granted[scope].add((group, resource, verb))
    for scope in granted:
        needed = {(g, r, v) for sc, g, r, verbs in API_PERMISSIONS if sc == scope for v in verbs}
        assert granted[scope] == needed, scope


def test_the_headroom_priority_class_is_negative_and_never_preempts():
    from autoscaler.core.resources import DEFAULT_PRIORITY_CLASS

    pc = next(o for o in render({}) if o["kind"] == "PriorityClass")
    assert pc["metadata"]["name"] == DEFAULT_PRIORITY_CLASS and pc["value"] < 0
    assert pc["preemptionPolicy"] == "Never" and pc["globalDefault"] is False
    assert not any(o["kind"] == "PriorityClass" for o in render({"nodeHeadroom": {"priorityClass": {"create": False}}}))
    with pytest.raises(Exception, match="priorityClass/value"):
        render({"nodeHeadroom": {"priorityClass": {"value": 5}}})


def test_lease_rights_stay_in_the_release_namespace():
    for values in ({}, NAMESPACED):
        for obj in render(values):
            if obj["kind"] in ("Role", "ClusterRole"):
                has_lease = any("leases" in rule["resources"] for rule in obj["rules"])
                assert has_lease == (obj["kind"] == "Role" and obj["metadata"]["namespace"] == "peakscale-system" and obj["metadata"]["name"].endswith("leader-election"))


def test_dashboard_is_a_grafana_model_over_metrics_the_controller_exports():
    dashboard = json.loads((CHART / "dashboards" / "peakscale.json").read_text())
    for key in ("uid", "title", "panels", "schemaVersion", "templating", "annotations"):
        assert key in dashboard
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]] + [a["expr"] for a in dashboard["annotations"]["list"]]
    for p in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]) and p["targets"] and p["type"] in ("timeseries", "stat")
    used = {m for e in exprs for m in re.findall(r"\bpeakscale_[a-z_]+", e)}
    exported = set(METRIC_NAMES)
    histogram = {f"{n}_{s}" for n in exported if n.endswith("_seconds") for s in ("bucket", "count", "sum")}
    assert used and used <= exported | histogram
    wanted = {"peakscale_forecast_demand", "peakscale_planned_replicas", "peakscale_actual_replicas", "peakscale_errors_total", "peakscale_actions_total", "peakscale_headroom_pods"}
    assert wanted <= used
    # and the ConfigMap ships exactly this file
    cm = next(o for o in render({}) if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard"))
    assert json.loads(cm["data"]["peakscale.json"]) == dashboard


def test_the_controller_exports_the_metrics_the_dashboard_names():
    from autoscaler.controller.telemetry import Telemetry

    body = Telemetry()
    body.planned.labels("ns", "p").set(1)
    body.forecast.labels("ns", "p").set(1)
    body.actual.labels("ns", "p").set(1)
    body.floor.labels("ns", "p").set(1)
    body.errors.labels("x").inc()
    body.actions.labels("scale").inc()
    body.headroom.labels("ns", "p", "planned").set(1)
    text = body.render().decode()
    for name in METRIC_NAMES:
        assert f"\n{name}" in text or text.startswith(name) or f"# TYPE {name.removesuffix('_total')}" in text, name


def test_chart_readme_is_generated_from_values():
    done = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'charts/peakscale'); import generate_readme; print(generate_readme.render(), end='')"], capture_output=True, text=True, cwd=CHART.parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout == (CHART / "README.md").read_text(), "run: python charts/peakscale/generate_readme.py"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert "`prometheus.url`" in done.stdout and values["replicaCount"] == 2


def test_a_calendar_configmap_is_mounted_and_read():
    deploy = next(o for o in render({"calendar": {"fromConfigMap": "promos"}}) if o["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert "--calendar=/etc/peakscale/calendar/calendar.yaml" in pod["containers"][0]["args"]
    assert {"name": "calendar", "configMap": {"name": "promos"}} in pod["volumes"]
    assert any(m["mountPath"] == "/etc/peakscale/calendar" and m["readOnly"] for m in pod["containers"][0]["volumeMounts"])
    plain = next(o for o in render({}) if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert not any(a.startswith("--calendar") for a in plain["containers"][0]["args"])


def render_as(release: str, values: dict | None = None) -> list[dict]:
    with helm_python.Chart.load(str(CHART)) as chart:
        files = chart.render(values or {}, name=release, namespace="peakscale-system")
    return [d for path, text in files.items() if path.endswith(".yaml") for d in yaml.safe_load_all(text) if d]


def args_of(objects: list[dict]) -> list[str]:
    return next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]


def test_two_releases_share_no_cluster_wide_name_and_no_lease():
    from autoscaler.core.defaults import DEFAULT_LEASE_NAME
    from autoscaler.core.resources import DEFAULT_PRIORITY_CLASS

    a, b = render_as("shop-a"), render_as("shop-b")
    cluster_scoped = ("PriorityClass", "ClusterRole", "ClusterRoleBinding")
    names_a = {(o["kind"], o["metadata"]["name"]) for o in a if o["kind"] in cluster_scoped}
    names_b = {(o["kind"], o["metadata"]["name"]) for o in b if o["kind"] in cluster_scoped}
    assert names_a and not names_a & names_b
    leases = {[x for x in args_of(objs) if x.startswith("--lease-name=")][0] for objs in (a, b)}
    assert len(leases) == 2
    # each controller allows exactly the class its release made
    for objs in (a, b):
        pc = next(o for o in objs if o["kind"] == "PriorityClass")["metadata"]["name"]
        assert f"--headroom-priority-class={pc}" in args_of(objs)
    # the release the README installs keeps the names the policy's and the controller's defaults use
    default = render_as("peakscale")
    assert next(o for o in default if o["kind"] == "PriorityClass")["metadata"]["name"] == DEFAULT_PRIORITY_CLASS
    assert f"--lease-name={DEFAULT_LEASE_NAME}" in args_of(default)


@pytest.mark.parametrize(
    "values, named",
    [
        ({"watchNamespace": ["live"]}, "watchNamespace"),  # a typo of watchNamespaces
        ({"nodeHeadroom": {"maxpods": 10}}, "maxpods"),
        ({"logLevel": "loud"}, "logLevel"),
        ({"prometheus": {"url": "prometheus:9090"}}, "prometheus/url"),
        ({"interval": "30 sec"}, "interval"),
    ],
)
def test_the_values_schema_refuses_unknown_or_wrong_values(values, named):
    with pytest.raises(Exception, match=named):
        render(values)


def test_the_notes_say_what_the_default_install_watches():
    with helm_python.Chart.load(str(CHART)) as chart:
        notes = chart.render({}, name="peakscale", namespace="live")["peakscale/templates/NOTES.txt"]
        wide = chart.render({"clusterWide": True}, name="peakscale", namespace="live")["peakscale/templates/NOTES.txt"]
    watched = [x.split("=", 1)[1] for x in args_of(render_as("peakscale")) if x.startswith("--namespace=")]
    assert watched == ["peakscale-system"]
    assert "namespace(s) live" in notes and "all namespaces" not in notes
    assert "all namespaces" in wide and "--all-namespaces" in args_of(render_as("peakscale", {"clusterWide": True}))
