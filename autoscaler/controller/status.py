"""The status peakscale writes on its resources, typed.

Condition types and reasons are constants here: their strings are an API (``kubectl wait
--for=condition=Ready``, alerts on a reason), so they are spelled once. ``PolicyStatus`` and
``EventStatus`` mirror the status schemas of the two CRDs in ``charts/peakscale/crds/``, field for
field; a test holds them to both. The controller builds them with the small functions below and
writes ``as_status()``: camelCase keys, unset fields left out.

Statuses are written only when they change (``Kube.update_status`` compares), so nothing here
changes every cycle on its own: no timestamps but a condition's last transition, and rounded
forecasts (``significant``). The controller's liveness is on /metrics, not in 1,000 statuses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Literal

from pydantic.alias_generators import to_camel

from autoscaler.adapters.kube import now_rfc3339
from autoscaler.core.cycle_types import EventPhase, Phase
from autoscaler.errors import clip

ConditionStatus = Literal["True", "False", "Unknown"]
#: a ScalingPolicy's phase (``cycle.decide`` names all but Error, which is the controller's)
PolicyPhase = Phase | Literal["Error"]

#: a message is cut to this many characters (the API server's limit is 32 KiB; people read one line)
MESSAGE_CHARS = 512


class ConditionType(StrEnum):
    #: ScalingPolicy: everything below is True (PromotionEvent: never written)
    READY = "Ready"
    #: ScalingPolicy: the target and, in hpa-floor mode, its HPA exist
    TARGET_FOUND = "TargetFound"
    #: ScalingPolicy: Prometheus answered with fresh samples
    METRICS_AVAILABLE = "MetricsAvailable"
    #: ScalingPolicy: the last write failed (written only then)
    WRITTEN = "Written"
    #: ScalingPolicy with nodeHeadroom: placeholders can be shaped like the target's pods
    NODE_HEADROOM = "NodeHeadroom"
    #: PromotionEvent: its spec parses
    VALID = "Valid"
    #: PromotionEvent: the preflight checks a day ahead
    PREFLIGHT = "Preflight"
    #: PromotionEvent: every floor it raised is back (written only while one is not)
    RESTORED = "Restored"


class Reason(StrEnum):
    RECONCILED = "Reconciled"
    DEGRADED = "Degraded"
    INVALID_SPEC = "InvalidSpec"
    #: a --calendar file entry skipped (an Event on the controller's Lease)
    INVALID_CALENDAR_ENTRY = "InvalidCalendarEntry"
    RECONCILE_FAILED = "ReconcileFailed"
    FOUND = "Found"
    NO_HPA = "NoHPA"
    HPA_OWNS_TARGET = "HPAOwnsTarget"
    FRESH = "Fresh"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    LAST_KNOWN_LEVEL = "LastKnownLevel"
    WRITE_FAILED = "WriteFailed"
    HEADROOM_READY = "Ready"
    NO_POD_TEMPLATE = "NoPodTemplate"
    NO_REQUESTS = "NoRequests"
    PRIORITY_CLASS_REFUSED = "PriorityClassRefused"
    PARSED = "Parsed"
    PREFLIGHT_PASSED = "Passed"
    PREFLIGHT_WARNINGS = "Warnings"
    PREFLIGHT_FAILED = "Failed"


def _plain(value: Any) -> Any:
    if isinstance(value, _Status):
        return {key: _plain(v) for name, key in _keys(type(value)) if (v := getattr(value, name)) is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return str(value)
    return value


_KEYS: dict[type, tuple[tuple[str, str], ...]] = {}


def _keys(cls: type) -> tuple[tuple[str, str], ...]:
    """(field, key as the CRD spells it) of a status model, worked out once per model: the controller
    writes a thousand statuses a cycle."""
    keys = _KEYS.get(cls)
    if keys is None:
        keys = _KEYS[cls] = tuple((f.name, to_camel(f.name)) for f in fields(cls))
    return keys


class _Status:
    def as_status(self) -> dict[str, Any]:
        """As the CRD spells it: camelCase keys, unset (None) fields left out."""
        out: dict[str, Any] = _plain(self)
        return out


@dataclass(frozen=True, slots=True)
class Condition(_Status):
    type: ConditionType
    status: ConditionStatus
    reason: Reason
    message: str
    last_transition_time: str

    @property
    def ok(self) -> bool:
        return self.status == "True"


def condition(kind: ConditionType, ok: bool, reason: Reason, message: str, now_s: float, previous: Sequence[Mapping[str, Any]]) -> Condition:
    """A condition; its last transition stays that of ``previous`` (as read from the object) while its status holds."""
    status: ConditionStatus = "True" if ok else "False"
    old = next((c for c in previous if c.get("type") == kind), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status and old.get("lastTransitionTime") else now_rfc3339(now_s)
    return Condition(kind, status, reason, clip(message, MESSAGE_CHARS), since)


def conditions_of(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The conditions an object's status holds now (what ``condition`` keeps transitions from)."""
    status = obj.get("status")
    found = status.get("conditions") if isinstance(status, dict) else None
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def ready(conditions: list[Condition], now_s: float, previous: Sequence[Mapping[str, Any]]) -> Condition:
    """Ready: True when every other condition is."""
    ok = all(c.ok for c in conditions)
    if ok:
        return condition(ConditionType.READY, True, Reason.RECONCILED, "planned and acted", now_s, previous)
    return condition(ConditionType.READY, False, Reason.DEGRADED, "see other conditions", now_s, previous)


def significant(value: float, digits: int = 2) -> float:
    """Round to two significant digits, so that noise does not rewrite 1,000 statuses every
    cycle; /metrics carries the exact values."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


@dataclass(slots=True)
class HeadroomStatus(_Status):
    #: replicas the plan needs within the node lead time (None: no forecast to size it)
    planned_replicas: int | None
    placeholders: int
    ready_placeholders: int
    event: str


@dataclass(frozen=True, slots=True)
class ReshardStatus(_Status):
    """The last reshard of a Redis Cluster tier, as its reshard step reports it (the controller
    carries it from one status to the next: it never measures it itself)."""

    throughput_bytes_per_second: float | None = None
    measured_at: str | None = None
    slots_total: int | None = None
    slots_moved: int | None = None
    keys_moved: int | None = None
    bytes_moved: int | None = None
    eta_seconds: float | None = None

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ReshardStatus | None:
        """What ``obj``'s status says of its last reshard (None: nothing, or nothing readable)."""
        found = ((obj.get("status") or {}).get("reshard")) or None
        if not isinstance(found, Mapping):
            return None
        known = dict(_keys(cls))
        by_key = {key: name for name, key in known.items()}
        values: dict[str, Any] = {by_key[k]: v for k, v in found.items() if k in by_key and isinstance(v, (int, float, str)) and not isinstance(v, bool)}
        return cls(**values)


@dataclass(slots=True)
class PolicyStatus(_Status):
    """A ScalingPolicy's status (``.status`` of ``scalingpolicies.peakscale.io``)."""

    phase: PolicyPhase
    #: the cycle's reason code (``cycle_types``), or the fault's message in phase Error
    reason: str
    conditions: list[Condition]
    observed_generation: int | None = None
    #: events whose action window is open, by name
    active_events: list[str] | None = None
    #: the central forecast's peak over the lead time (two significant digits)
    forecast_peak: float | None = None
    current_replicas: int | None = None
    #: hpa-floor: the HPA's minReplicas in effect, and the one the operator had set
    floor_replicas: int | None = None
    original_min_replicas: int | None = None
    planned_replicas: int | None = None
    headroom: HeadroomStatus | None = None
    next_action: str | None = None
    #: the mean demand of the last hour with fresh metrics, and its last sample's time: what a
    #: restarted controller raises from while Prometheus is down
    last_known_level: float | None = None
    last_known_at_seconds: int | None = None
    #: the Prometheus range queries this policy's history cost in the last cycle (its share of
    #: the controller's per-cycle budget)
    history_queries: int | None = None
    #: a resharding tier's last reshard (written by its reshard step, carried forward)
    reshard: ReshardStatus | None = None


def fault_status(kind: ConditionType, reason: Reason, message: str, now_s: float, previous: Sequence[Mapping[str, Any]]) -> PolicyStatus:
    """Phase Error: one condition says what is wrong and how to fix it."""
    return PolicyStatus(phase="Error", reason=clip(message, MESSAGE_CHARS), conditions=[condition(kind, False, reason, message, now_s, previous)])


@dataclass(slots=True)
class EventStatus(_Status):
    """A PromotionEvent's status (``.status`` of ``promotionevents.peakscale.io``)."""

    conditions: list[Condition]
    phase: EventPhase | None = None
    #: the ScalingPolicies it selects, by name
    policies: list[str] | None = None
    observed_generation: int | None = None
    #: the largest peak the selected policies are sized for
    planned_peak: float | None = None
    #: what each policy saw of it, once over (``resources.memory_status``)
    memory: list[dict[str, Any]] | None = field(default=None)
