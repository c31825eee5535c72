"""The cycle's promotions: each PromotionEvent (or ``--calendar`` entry) parsed, and indexed so
that finding the ones that apply to a policy never walks every promotion."""

from __future__ import annotations

from dataclasses import dataclass, field

from autoscaler.core.calendar import EventProfile, PromotionEvent
from autoscaler.core.resources import PromotionEventSpec, applies
from autoscaler.controller.resource import Resource


@dataclass
class ParsedEvent:
    """One promotion as the cycle reads it: the object (a file entry's stands in for it), its spec,
    and the event it states."""

    resource: Resource
    spec: PromotionEventSpec
    event: PromotionEvent
    #: what was recorded of it once it was over, per policy (status.memory)
    memory: dict[str, EventProfile] = field(default_factory=dict)
    #: from the controller's --calendar file: no object to report on, any namespace
    from_file: bool = False

    def for_policy(self, policy: str) -> PromotionEvent:
        return self.event.for_policy(policy)

    @property
    def namespace(self) -> str:
        """The PromotionEvent's namespace ('' for a --calendar entry)."""
        return self.resource.namespace

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name): what its preflight and recorded profiles are kept by."""
        return self.namespace, self.event.name

    def selects(self, namespace: str, labels: dict[str, str]) -> bool:
        """Whether it applies to the policy of ``namespace`` with ``labels``: a PromotionEvent to
        those of its own namespace that its targets match, a --calendar entry in every namespace.
        The one rule for the cycle, preflight and the events' status."""
        return applies(self.spec.targets, None if self.from_file else self.namespace, namespace, labels)


class EventIndex:
    """The cycle's promotions indexed by namespace and by a label their selector requires, so that
    finding the ones that apply to a policy never walks every promotion (5,000 policies and 10,000
    promotions would be fifty million selector matches a cycle). What it finds is exactly what
    ``ParsedEvent.selects`` says, in the promotions' own order."""

    def __init__(self, events: list[ParsedEvent]) -> None:
        self._position = {id(e): i for i, e in enumerate(events)}
        #: policies of one namespace with the same labels share one answer (tiers label alike)
        self._memo: dict[tuple[str, frozenset[tuple[str, str]]], list[ParsedEvent]] = {}
        self._reach: dict[tuple[str, frozenset[tuple[str, str]], int, int, int, int], list[ParsedEvent]] = {}
        #: per namespace ('' for the --calendar file's, which apply in every namespace): the ones
        #: any policy may match, and those that require a label, by one (key, value) they require
        self._open: dict[str, list[ParsedEvent]] = {}
        self._by_label: dict[str, dict[tuple[str, str], list[ParsedEvent]]] = {}
        for e in events:
            ns = "" if e.from_file else e.namespace
            required = e.spec.targets.match_labels
            if required:
                key = min(required.items())
                self._by_label.setdefault(ns, {}).setdefault(key, []).append(e)
            else:
                self._open.setdefault(ns, []).append(e)

    def applying(self, namespace: str, labels: dict[str, str]) -> list[ParsedEvent]:
        """The promotions that apply to the policy of ``namespace`` with ``labels``."""
        key = (namespace, frozenset(labels.items()))
        if key not in self._memo:
            self._memo[key] = self._applying(namespace, labels)
        return self._memo[key]

    def in_reach(self, namespace: str, labels: dict[str, str], now: float, *, history_s: int, ahead_s: int, cooldown_s: int) -> list[ParsedEvent]:
        """``in_reach`` of what applies, shared by the policies that label and plan alike."""
        key = (namespace, frozenset(labels.items()), int(now), history_s, ahead_s, cooldown_s)
        if key not in self._reach:
            self._reach[key] = in_reach(self.applying(namespace, labels), now, history_s=history_s, ahead_s=ahead_s, cooldown_s=cooldown_s)
        return self._reach[key]

    def _applying(self, namespace: str, labels: dict[str, str]) -> list[ParsedEvent]:
        found: list[ParsedEvent] = []
        for ns in {namespace, ""}:
            found += self._open.get(ns, [])
            by_label = self._by_label.get(ns, {})
            if by_label:
                for pair in labels.items():
                    found += by_label.get(pair, [])
        found = [e for e in found if e.selects(namespace, labels)]
        return sorted(found, key=lambda e: self._position[id(e)])


def in_reach(events: list[ParsedEvent], now: float, *, history_s: int, ahead_s: int, cooldown_s: int) -> list[ParsedEvent]:
    """The promotions that can bear on this cycle of a policy: those whose windows reach the history
    it learns from or the horizon it plans (and what they name in ``like``), those that carry what
    was recorded of them, and the first one beyond the horizon (the status's next action). A
    promotion a year ahead or long gone changes nothing now, and 5,000 policies each carrying
    thousands of them would not fit the cycle, nor the chart's memory limit."""
    past, horizon = now - history_s - ahead_s - cooldown_s, now + ahead_s + cooldown_s
    kept = [e for e in events if e.memory or (e.event.end_s >= past and e.event.start_s <= horizon)]
    later = [e for e in events if e.event.start_s > horizon]
    if later:
        kept.append(min(later, key=lambda e: e.event.start_s))
    named = {n for e in kept for n in e.spec.like}
    if named:
        kept += [e for e in events if e.event.name in named and e not in kept]
    position = {id(e): i for i, e in enumerate(events)}
    return sorted({id(e): e for e in kept}.values(), key=lambda e: position[id(e)])
