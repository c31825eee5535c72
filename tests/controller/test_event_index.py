"""The controller's index of promotions finds exactly what the one rule (``ParsedEvent.selects``)
finds, in the same order, for any promotions and policies."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from autoscaler.controller.promotions import EventIndex, ParsedEvent
from autoscaler.controller.resource import Resource
from autoscaler.core.resources import parse_event

NAMESPACES = ["a", "b"]
KEYS, VALUES = ["tier", "team"], ["x", "y"]
labels = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2)
requirement = st.fixed_dictionaries({"key": st.sampled_from(KEYS), "operator": st.sampled_from(["In", "NotIn"]), "values": st.lists(st.sampled_from(VALUES), min_size=1, max_size=2)})
selector = st.fixed_dictionaries({}, optional={"matchLabels": labels, "matchExpressions": st.lists(requirement, max_size=2)})
promotion = st.tuples(st.sampled_from(NAMESPACES), selector, st.booleans())


def parsed(i: int, ns: str, targets: dict, from_file: bool) -> ParsedEvent:
    obj = {"metadata": {"name": f"e{i}", "namespace": ns}, "spec": {"start": "2030-11-11T20:00:00Z", "end": "2030-11-11T21:00:00Z", "kind": "k", "targets": targets}}
    spec, event = parse_event(obj)
    return ParsedEvent(Resource.of(obj), spec, event, from_file=from_file)


@settings(max_examples=200, deadline=None)
@given(st.lists(promotion, max_size=12), st.sampled_from(NAMESPACES), labels)
def test_the_index_finds_what_the_rule_finds(promotions, namespace, policy_labels):
    events = [parsed(i, ns, targets, from_file) for i, (ns, targets, from_file) in enumerate(promotions)]
    by_rule = [e for e in events if e.selects(namespace, policy_labels)]
    assert EventIndex(events).applying(namespace, policy_labels) == by_rule
