"""The CRDs and the Python models accept and refuse the same documents."""

from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from autoscaler.errors import InputError
from autoscaler.core.resources import parse_event, parse_policy

CRDS = Path(__file__).resolve().parents[2] / "charts" / "peakscale" / "crds"


def crd(name):
    return yaml.safe_load((CRDS / f"{name}.peakscale.io.yaml").read_text())


@pytest.mark.parametrize("name", ["scalingpolicies", "promotionevents"])
def test_crds_validate_as_custom_resource_definitions(name):
    doc = crd(name)
    kubernetes_validate.validate(doc, "1.31", strict=True)
    version = doc["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert version["additionalPrinterColumns"]


# the API server checks date-time (RFC 3339 with an offset); jsonschema only does with extras
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value) -> bool:
    from datetime import datetime

    return not isinstance(value, str) or datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


def schema_accepts(name, obj) -> bool:
    schema = crd(name)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    validator = jsonschema.Draft4Validator(schema, format_checker=FORMATS)
    return not list(validator.iter_errors(obj))


GOOD_POLICY = {
    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "edge"},
    "mode": "hpa-floor",
    "metric": {"query": "sum(srs_clients)", "capacityPerReplica": 1500, "targetUtilization": 0.7},
    "leadTime": "5m",
    "minReplicas": 6,
    "maxReplicas": 120,
    "coverage": 0.999,
    "forecast": {"history": "14d", "step": "1m"},
}


@pytest.mark.parametrize(
    "change, ok",
    [
        ({}, True),
        ({"mode": "yolo"}, False),
        ({"leadTime": "soon"}, False),
        ({"maxReplicas": 0}, False),
        ({"metric": {"query": "up", "capacityPerReplica": 0}}, False),
        ({"metric": {"query": "up", "capacityPerReplica": 10, "targetUtilization": 1.5}}, False),
        ({"coverage": 0.2}, False),
        ({"coverage": 1}, False),
        ({"minReplicas": -1}, False),
        ({"targetRef": {"kind": "Deployment"}}, False),
    ],
)
def test_policy_model_matches_the_crd(change, ok):
    spec = {**GOOD_POLICY, **change}
    obj = {"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "p", "namespace": "n"}, "spec": spec}
    assert schema_accepts("scalingpolicies", obj) is ok
    if ok:
        parse_policy(obj)
    else:
        with pytest.raises(InputError, match="spec"):
            parse_policy(obj)


GOOD_EVENT = {"title": "11.11", "start": "2026-11-10T23:30:00+08:00", "end": "2026-11-11T02:00:00+08:00", "kind": "double11", "expectedMultiplier": 8}


@pytest.mark.parametrize(
    "change, ok",
    [
        ({}, True),
        ({"expectedMultiplier": 0}, False),
        ({"expectedMultiplier": 5000}, False),
        ({"kind": ""}, False),
        ({"start": "tomorrow"}, False),
        ({"targets": {"matchLabels": {"tier": "edge"}}}, True),
    ],
)
def test_event_model_matches_the_crd(change, ok):
    obj = {"apiVersion": "peakscale.io/v1alpha1", "kind": "PromotionEvent", "metadata": {"name": "e", "namespace": "n"}, "spec": {**GOOD_EVENT, **change}}
    assert schema_accepts("promotionevents", obj) is ok
    if ok:
        _, event = parse_event(obj)
        assert event.start.hour == 15 and event.start.day == 10  # 23:30 in Shanghai is 15:30 UTC
    else:
        with pytest.raises(InputError):
            parse_event(obj)


def test_the_model_also_checks_what_a_schema_cannot():
    obj = {"metadata": {"name": "e", "namespace": "n"}, "spec": {**GOOD_EVENT, "end": "2026-11-10T20:00:00+08:00"}}
    with pytest.raises(InputError, match="end is not after start"):
        parse_event(obj)
    policy = {"metadata": {"name": "p", "namespace": "n"}, "spec": {**GOOD_POLICY, "minReplicas": 200}}
    with pytest.raises(InputError, match="minReplicas 200 is above maxReplicas 120"):
        parse_policy(policy)
