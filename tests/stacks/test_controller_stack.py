"""The Controller component: the chart, and one ScalingPolicy per enabled tier from its contract."""

from pathlib import Path

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from autoscaler.core.durations import parse_duration_s
from autoscaler.core.resources import parse_policy
from stacks.controller import CHART_DIR

CRD = yaml.safe_load((CHART_DIR / "crds" / "scalingpolicies.peakscale.io.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def policies(rendered):
    return [o for o in rendered.objects if o["kind"] == "ScalingPolicy"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_one_scaling_policy_per_enabled_tier_from_its_contract(rendered, stack):
    r = rendered[stack]
    contracts = r.outputs["scaleContracts"]
    made = {p["metadata"]["labels"]["peakscale.io/tier"]: p for p in policies(r)}
    assert set(made) == set(contracts) == {"cache", "edge", "database"}
    for tier, contract in contracts.items():
        spec = made[tier]["spec"]
        assert spec["targetRef"] == {k: contract["targetRef"][k] for k in ("apiVersion", "kind", "name")}
        assert made[tier]["metadata"]["namespace"] == contract["targetRef"]["namespace"]
        assert spec["mode"] == contract["method"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (contract["minReplicas"], contract["maxReplicas"])
        assert parse_duration_s(spec["leadTime"]) == contract["leadTimeSeconds"]
        assert spec["metric"] == {"query": contract["metric"]["query"], "capacityPerReplica": contract["metric"]["capacityPerReplica"]}
        # the CRD's schema and the controller's own parser both accept it
        assert not list(jsonschema.Draft4Validator(SCHEMA).iter_errors(made[tier]))
        parsed = parse_policy(made[tier])
        # prod keeps node headroom ahead of each raise; dev does not
        assert spec.get("nodeHeadroom") == contract["nodeHeadroom"]
        assert spec.get("coverage") == contract["coverage"] and parsed.coverage == (contract["coverage"] or 0.99)
        assert parsed.node_headroom.enabled == (stack == "prod")
    assert sorted(r.outputs["scalingPolicies"]) == sorted(p["metadata"]["name"] for p in made.values())


def test_no_controller_no_policies(rendered):
    assert policies(rendered["cluster"]) == []


def test_the_chart_is_installed_before_the_policies(rendered):
    r = rendered["prod"]
    release = r.by_name("peakscale-chart")
    assert release.type == "kubernetes:helm.sh/v3:Release"
    assert Path(release.inputs["chart"]) == CHART_DIR
    assert release.inputs["namespace"] == "peakscale-system"
    for d in r.resources:
        if d.type.endswith(":ScalingPolicy"):
            assert d.depends_on == ["peakscale-chart"] and d.parent == "peakscale"


def test_the_stack_values_render_a_valid_chart(rendered):
    values = rendered["prod"].by_name("peakscale-chart").inputs["values"]
    assert values["watchNamespaces"] == ["live"] and values["serviceMonitor"] == {"enabled": True}
    assert values["prometheus"]["auth"]["existingSecret"] == "prometheus-reader-token"
    with helm_python.Chart.load(str(CHART_DIR)) as chart:
        files = chart.render(values, name="peakscale", namespace="peakscale-system")
    objects = [d for path, text in files.items() if path.endswith(".yaml") for d in yaml.safe_load_all(text) if d]
    assert any(o["kind"] == "Role" and o["metadata"]["namespace"] == "live" for o in objects)
    for obj in objects:
        if obj["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(obj, "1.31", strict=True)
    deploy = next(o for o in objects if o["kind"] == "Deployment")
    assert "--namespace=live" in deploy["spec"]["template"]["spec"]["containers"][0]["args"]


def test_dev_controller_runs_dry(rendered):
    values = rendered["dev"].by_name("peakscale-chart").inputs["values"]
    assert values["dryRun"] is True and values["watchNamespaces"] == ["live-dev"]
