"""One home per bound and default: the ScalingPolicy and PromotionEvent models, their CRDs and the
planner agree field by field (issue 24, item 2)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st
from pydantic import BaseModel

from autoscaler.core.durations import parse_duration_s
from autoscaler.core.plan import MAX_CAPACITY, MAX_REPLICAS, validate_policy
from autoscaler.core.resources import PromotionEventSpec, ScalingPolicySpec
from autoscaler.errors import InputError

CRDS = Path(__file__).resolve().parents[2] / "charts" / "peakscale" / "crds"
DURATION = r"^([0-9]+(\.[0-9]+)?[smhdw])+$"
BOUNDS = {"ge": "minimum", "gt": "minimum", "le": "maximum", "lt": "maximum", "min_length": "minLength", "max_length": "maxLength", "pattern": "pattern"}


def spec_schema(plural: str) -> dict:
    return yaml.safe_load((CRDS / f"{plural}.peakscale.io.yaml").read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def nested(annotation: typing.Any) -> type[BaseModel] | None:
    for arg in (annotation, *typing.get_args(annotation), *(a for x in typing.get_args(annotation) for a in typing.get_args(x))):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def pairs(model: type[BaseModel], schema: dict, path: str = ""):
    """(dotted field, pydantic FieldInfo, its CRD schema) for every field, nested ones included."""
    props = schema.get("properties") or (schema.get("items") or {}).get("properties") or {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        yield path + key, info, props.get(key)
        sub = nested(info.annotation)
        if sub is not None and props.get(key) is not None:
            yield from pairs(sub, props[key], f"{path}{key}.")


ALL = [(f, i, s) for plural, model in (("scalingpolicies", ScalingPolicySpec), ("promotionevents", PromotionEventSpec)) for f, i, s in pairs(model, spec_schema(plural))]


@pytest.mark.parametrize("field, info, schema", ALL, ids=[f for f, _, _ in ALL])
def test_every_field_has_the_same_bounds_and_default_in_the_model_and_the_crd(field, info, schema):
    assert schema is not None, f"{field} is in the model, not in the CRD"
    model: dict[str, typing.Any] = {}
    for meta in info.metadata:
        for attr, key in BOUNDS.items():
            if getattr(meta, attr, None) is not None:
                model[key] = getattr(meta, attr)
    is_list = schema.get("type") == "array"
    crd = {key: schema[key] for key in ("minimum", "maximum", "minLength", "maxLength", "pattern") if key in schema}
    if is_list:
        crd.update({"minLength": schema["minItems"]} if "minItems" in schema else {})
        crd.update({"maxLength": schema["maxItems"]} if "maxItems" in schema else {})
    if crd.get("pattern") == DURATION:
        crd.pop("pattern")  # the model checks durations with the one parser: see the property below
    assert model == crd, f"{field}: model {model}, CRD {crd}"
    assert any(getattr(m, "gt", None) is not None for m in info.metadata) == bool(schema.get("exclusiveMinimum")), f"{field}: exclusive minimum"
    default = info.default
    if "default" in schema:
        assert not info.is_required() and schema["default"] == (default.model_dump(by_alias=True) if isinstance(default, BaseModel) else default), field
    elif not info.is_required() and default not in (None, "", [], {}, ()) and not isinstance(default, BaseModel):
        pytest.fail(f"{field}: the model defaults to {default!r}, the CRD declares no default")


@pytest.mark.parametrize("plural, model", [("scalingpolicies", ScalingPolicySpec), ("promotionevents", PromotionEventSpec)])
def test_the_crd_has_no_field_the_model_does_not_read(plural, model):
    def keys(schema: dict, path: str = "") -> set[str]:
        props = schema.get("properties") or (schema.get("items") or {}).get("properties") or {}
        return {path + k for k in props} | {x for k, v in props.items() for x in keys(v, f"{path}{k}.")}

    assert keys(spec_schema(plural)) == {f for f, _, _ in pairs(model, spec_schema(plural))}


@settings(max_examples=300, deadline=None)
@given(st.from_regex(DURATION, fullmatch=True))
def test_every_duration_the_crd_admits_the_parser_reads_or_refuses_for_its_size(text):
    try:
        parse_duration_s(text, field="x", allow_zero=True)
    except InputError as exc:
        assert re.search(r"under a second|longer than ten years", exc.problem), exc.problem


@pytest.mark.parametrize("replicas, capacity", [(MAX_REPLICAS, MAX_CAPACITY), (1, 1e-9)])
def test_the_models_bounds_are_ones_the_planner_takes(replicas, capacity):
    """A policy at the edge of the model's bounds plans; one past them is refused by the model (so no
    planner message, with its CLI flags, ever reaches a status)."""
    spec = {"targetRef": {"kind": "Deployment", "name": "w"}, "metric": {"query": "q", "capacityPerReplica": capacity}, "leadTime": "5m", "minReplicas": 0, "maxReplicas": replicas}
    validate_policy(ScalingPolicySpec.model_validate(spec).plan_policy())
    for past in ({"maxReplicas": MAX_REPLICAS + 1}, {"metric": {"query": "q", "capacityPerReplica": MAX_CAPACITY * 10}}):
        with pytest.raises(ValueError):
            ScalingPolicySpec.model_validate({**spec, **past})


def test_the_controller_and_every_replay_call_metrics_stale_by_one_rule():
    """One staleness rule: the controller's default and a replay's (plan, backtest, review) are
    core.defaults.stale_after; a policy with a coarse step gets three of its steps."""
    import inspect

    from autoscaler.controller import observe
    from autoscaler.controller.model import ControllerOptions
    from autoscaler.core import replay
    from autoscaler.core.defaults import STALE_AFTER_S, stale_after

    assert ControllerOptions(identity="x").stale_after_s == STALE_AFTER_S
    assert (stale_after(60), stale_after(1800)) == (STALE_AFTER_S, 5400)
    for module in (observe, replay):
        assert "stale_after(" in inspect.getsource(module) and "300" not in inspect.getsource(module), module.__name__


def test_the_multiplier_has_one_bound_everywhere():
    from typer.testing import CliRunner

    from autoscaler.cli import app
    from autoscaler.core.calendar import MAX_MULTIPLIER

    schema = yaml.safe_load((CRDS / "promotionevents.peakscale.io.yaml").read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["expectedMultiplier"]
    assert schema["maximum"] == MAX_MULTIPLIER
    from datetime import UTC, datetime, timedelta

    start = f"{datetime.now(UTC) + timedelta(days=2):%Y-%m-%d %H:%M}"
    args = ["promo", "add", "x", "--start", start, "--tz", "UTC", "--duration", "1h", "--kind", "k", "--multiplier", str(MAX_MULTIPLIER * 2), "--store", "file"]
    refused = CliRunner().invoke(app, args, env={"PEAKSCALE_CALENDAR": "/nonexistent/never-written.yaml"})
    assert refused.exit_code == 2 and f"(0, {MAX_MULTIPLIER:g}]" in refused.output
