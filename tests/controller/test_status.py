"""The typed status models and both CRDs' status schemas say the same thing: every field the
controller writes is declared (with its type and enum), and every declared field is written."""

from __future__ import annotations

import dataclasses
import types
import typing

import pytest
from hypothesis import given, settings, strategies as st

from autoscaler.controller.status import (
    Condition,
    ReshardStatus,
    ConditionStatus,
    ConditionType,
    EventPhase,
    EventStatus,
    HeadroomStatus,
    PolicyPhase,
    PolicyStatus,
    Reason,
    condition,
    fault_status,
)
from autoscaler.core.windows import event_phase
from tests.schemas import EVENT, JSON_TYPES, POLICY, refused

def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def json_type(hint) -> str:
    """The JSON Schema type of a field's annotation (None stripped from optionals)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = {json_type(a) for a in args}
        assert len(kinds) == 1, f"{hint} is more than one JSON type"
        return kinds.pop()
    if typing.get_origin(hint) is typing.Literal or isinstance(hint, type) and issubclass(hint, str):
        return "string"
    if typing.get_origin(hint) is list:
        return "array"
    if typing.get_origin(hint) is dict or dataclasses.is_dataclass(hint):
        return "object"
    return JSON_TYPES[hint]


def literal_values(hint) -> set[str]:
    if typing.get_origin(hint) is typing.Literal:
        return set(typing.get_args(hint))
    return set().union(*(literal_values(a) for a in typing.get_args(hint)))


@pytest.mark.parametrize(
    "model, schema",
    [
        (PolicyStatus, POLICY),
        (HeadroomStatus, POLICY["properties"]["headroom"]),
        (ReshardStatus, POLICY["properties"]["reshard"]),
        (Condition, POLICY["properties"]["conditions"]["items"]),
        (EventStatus, EVENT),
        (Condition, EVENT["properties"]["conditions"]["items"]),
    ],
    ids=["ScalingPolicy", "ScalingPolicy.headroom", "ScalingPolicy.reshard", "ScalingPolicy.conditions", "PromotionEvent", "PromotionEvent.conditions"],
)
def test_every_field_is_declared_with_its_type_and_every_declared_field_is_written(model, schema):
    hints = typing.get_type_hints(model)
    fields = {camel(f.name): hints[f.name] for f in dataclasses.fields(model)}
    declared = schema["properties"]
    assert sorted(fields) == sorted(declared), "the model and the CRD's status schema differ in their fields"
    for name, hint in fields.items():
        assert json_type(hint) == declared[name]["type"], f"{model.__name__}.{name}: {hint} against {declared[name]['type']}"
    for required in schema.get("required", []):
        assert typing.get_args(fields[required]) == () or type(None) not in typing.get_args(fields[required]), f"{required} is required by the CRD"


def test_phases_and_condition_statuses_are_the_crds_enums():
    assert literal_values(PolicyPhase) == set(POLICY["properties"]["phase"]["enum"])
    assert literal_values(EventPhase) == set(EVENT["properties"]["phase"]["enum"])
    for schema in (POLICY, EVENT):
        assert literal_values(ConditionStatus) == set(schema["properties"]["conditions"]["items"]["properties"]["status"]["enum"])


NOW = 1_794_384_000.0
conditions = st.lists(
    st.builds(
        condition,
        st.sampled_from(list(ConditionType)),
        st.booleans(),
        st.sampled_from(list(Reason)),
        st.text(max_size=700),
        st.floats(min_value=0, max_value=4e9),
        st.just([]),
    ),
    max_size=5,
)
maybe_int = st.none() | st.integers(min_value=0, max_value=10**6)
headrooms = st.none() | st.builds(HeadroomStatus, maybe_int, st.integers(0, 1000), st.integers(0, 1000), st.text(max_size=40))
policy_statuses = st.builds(
    PolicyStatus,
    phase=st.sampled_from(sorted(literal_values(PolicyPhase))),
    reason=st.text(max_size=60),
    conditions=conditions,
    observed_generation=maybe_int,
    active_events=st.none() | st.lists(st.text(max_size=20), max_size=3),
    forecast_peak=st.none() | st.floats(min_value=0, max_value=1e12),
    current_replicas=maybe_int,
    floor_replicas=maybe_int,
    original_min_replicas=maybe_int,
    planned_replicas=maybe_int,
    headroom=headrooms,
    next_action=st.none() | st.text(max_size=80),
)
event_statuses = st.builds(
    EventStatus,
    conditions=conditions,
    phase=st.none() | st.sampled_from(sorted(literal_values(EventPhase))),
    policies=st.none() | st.lists(st.text(max_size=20), max_size=3),
    observed_generation=maybe_int,
    planned_peak=st.none() | st.floats(min_value=0, max_value=1e12),
)


@settings(max_examples=200, deadline=None)
@given(policy_statuses)
def test_any_policy_status_is_one_the_crd_accepts(status):
    assert refused(POLICY, status.as_status()) == []


@settings(max_examples=200, deadline=None)
@given(event_statuses)
def test_any_event_status_is_one_the_crd_accepts(status):
    assert refused(EVENT, status.as_status()) == []


def test_a_written_status_leaves_unset_fields_out_and_spells_them_as_the_crd():
    status = PolicyStatus(phase="Holding", reason="forecast", conditions=[], floor_replicas=12, headroom=HeadroomStatus(None, 3, 1, "d11"))
    assert status.as_status() == {
        "phase": "Holding",
        "reason": "forecast",
        "conditions": [],
        "floorReplicas": 12,
        "headroom": {"placeholders": 3, "readyPlaceholders": 1, "event": "d11"},
    }


def test_a_condition_keeps_its_last_transition_while_its_status_holds():
    first = condition(ConditionType.METRICS_AVAILABLE, True, Reason.FRESH, "samples are fresh", NOW, [])
    again = condition(ConditionType.METRICS_AVAILABLE, True, Reason.FRESH, "samples are fresh", NOW + 600, [first.as_status()])
    flipped = condition(ConditionType.METRICS_AVAILABLE, False, Reason.METRICS_UNAVAILABLE, "down", NOW + 900, [again.as_status()])
    assert again.last_transition_time == first.last_transition_time
    assert flipped.last_transition_time != first.last_transition_time and flipped.status == "False"
    assert refused(POLICY, {"conditions": [first.as_status(), flipped.as_status()]}) == []


def test_a_fault_is_phase_error_with_one_condition_and_a_clipped_reason():
    status = fault_status(ConditionType.TARGET_FOUND, Reason.NO_HPA, "x" * 2000, NOW, []).as_status()
    assert status["phase"] == "Error" and len(status["reason"]) <= 512
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [("TargetFound", "False", "NoHPA")]
    assert refused(POLICY, status) == []


@given(st.integers(-10_000, 10_000), st.booleans())
def test_an_event_phase_moves_forward_only_and_is_done_only_once_its_writes_landed(now, pending):
    opens, start, end, closes = -600, 0, 3600, 5400
    phases = ["Scheduled", "PreScaling", "Active", "Cooling", "Done"]
    here = event_phase(now, opens, start, end, closes, pending=pending)
    later = event_phase(now + 1, opens, start, end, closes, pending=pending)
    assert phases.index(later) >= phases.index(here)
    assert (here == "Done") == (now >= closes and not pending)
