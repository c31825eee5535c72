"""The two custom resources (group ``peakscale.io``, ``v1alpha1``) as Python models.

The models mirror the CRDs in ``charts/peakscale/crds/`` (a test checks both accept and refuse the
same documents). ``parse_policy`` and ``parse_event`` turn a custom object from the API into
the planner's and forecaster's inputs, or raise ``InputError`` naming the field, so that one
malformed resource gets a condition and the others carry on.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from autoscaler.core.calendar import MAX_MULTIPLIER, EventProfile, PromotionEvent
from autoscaler.core.cycle_types import CyclePolicy
from autoscaler.core.defaults import DEFAULT_MAX_PLACEHOLDERS, MAX_COVERAGE, MIN_COVERAGE
from autoscaler.core.durations import parse_duration_s
from autoscaler.errors import InputError, validation_problem
from autoscaler.core.plan import MAX_CAPACITY, MAX_REPLICAS, PlanPolicy

if TYPE_CHECKING:
    from autoscaler.core.baseline import ForecastSettings

GROUP = "peakscale.io"
VERSION = "v1alpha1"
POLICY_PLURAL = "scalingpolicies"
EVENT_PLURAL = "promotionevents"


#: a Kubernetes object name (RFC 1123 subdomain)
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        # true is not 1: the CRD's number and integer types refuse a boolean, and so does the model
        if isinstance(value, bool) and info.field_name is not None:
            annotation = str(cls.model_fields[info.field_name].annotation)
            if "float" in annotation or "int" in annotation:
                raise ValueError(f"{value!r} is not a number")
        return value


def duration_field(value: str, field: str, *, allow_zero: bool = True) -> str:
    """A duration field checked by the one duration parser (its problem becomes pydantic's):
    for validators, here and in the stack config."""
    try:
        parse_duration_s(value, field=field, allow_zero=allow_zero)
    except InputError as exc:
        raise ValueError(exc.problem) from None
    return value


class TargetRef(_Spec):
    api_version: str = "apps/v1"
    kind: str = Field(min_length=1)
    name: str = Field(min_length=1)


class Metric(_Spec):
    query: str = Field(min_length=1)
    capacity_per_replica: float = Field(gt=0, le=MAX_CAPACITY)
    target_utilization: float = Field(default=0.7, gt=0, le=1)


#: a sample above this many times what maxReplicas serve is implausible (``plausible_demand``)
PLAUSIBLE_FACTOR = 10
#: the most samples one policy's forecast history may hold (60 days at 1 min is 86,400)
MAX_HISTORY_POINTS = 100_000


class ForecastSpec(_Spec):
    history: str = "14d"
    step: str = "1m"

    @field_validator("history", "step")
    @classmethod
    def _durations(cls, value: str, info: ValidationInfo) -> str:
        return duration_field(value, str(info.field_name))

    @field_validator("step")
    @classmethod
    def _a_usable_step(cls, value: str) -> str:
        step = parse_duration_s(value, field="step", allow_zero=True)
        if not 1 <= step <= 3600 or 86400 % step:
            raise ValueError(f"step {value!r} must be between 1s and 1h and divide a day (e.g. 30s, 1m, 5m)")
        return value

    @field_validator("history")
    @classmethod
    def _a_day_at_least(cls, value: str) -> str:
        # the daily profile needs a day, and fits are refitted every few hours within the window
        if parse_duration_s(value, field="history", allow_zero=True) < 86400:
            raise ValueError(f"history {value!r} is shorter than a day (the daily profile needs one; e.g. 14d)")
        return value

    @model_validator(mode="after")
    def _bounded(self) -> ForecastSpec:
        # one policy's history is fetched in range queries of at most 11,000 points: bounded so
        # that its first cycle costs at most ten of them (one per cycle after), whatever a tenant asks
        points = parse_duration_s(self.history) // parse_duration_s(self.step)
        if points > MAX_HISTORY_POINTS:
            raise ValueError(f"history {self.history} at step {self.step} is {points:,} samples, over {MAX_HISTORY_POINTS:,}: use a longer step or a shorter history (e.g. 14d at 1m, 60d at 5m)")
        return self


DEFAULT_PRIORITY_CLASS = "peakscale-headroom"


class NodeHeadroom(_Spec):
    """Placeholder pods that hold node room ahead of a raise (off by default)."""

    enabled: bool = False
    #: how long the cluster takes to add a node (cluster autoscaler or Karpenter, plus image pulls)
    lead_time: str = "5m"
    #: a PriorityClass with a negative value, so that real pods preempt the placeholders
    priority_class_name: str = Field(default=DEFAULT_PRIORITY_CLASS, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)

    @field_validator("lead_time")
    @classmethod
    def _durations(cls, value: str) -> str:
        return duration_field(value, "leadTime")

    @property
    def lead_time_s(self) -> int:
        return parse_duration_s(self.lead_time, allow_zero=True)


class SecretKey(_Spec):
    """A key of a Secret in the policy's namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class Reshard(_Spec):
    """A Redis Cluster cache scaled by shards: a raise serves once its slots have moved."""

    #: the dataset the cluster holds (e.g. 20Gi): a raise from n to m shards moves (m-n)/m of it
    dataset_size: str = Field(min_length=1, max_length=32)
    #: the migration throughput assumed until a reshard has measured one (status.reshard)
    throughput: str = Field(default="5MB/s", min_length=1, max_length=32)
    #: each shard is a primary and this many replicas: the StatefulSet's pods in ordinal order
    replicas_per_shard: int = Field(default=1, ge=0, le=5)
    #: the Redis port of every pod (reached as <pod>.<the StatefulSet's serviceName>)
    port: int = Field(default=6379, ge=1, le=65535)
    #: the Secret (in the policy's namespace) whose key holds the Redis password, given to the reshard
    #: step as REDISCLI_AUTH; None: Redis without a password
    password_secret: SecretKey | None = None
    #: the ServiceAccount (in the policy's namespace) the reshard Job runs as: it may patch this
    #: policy's status.reshard and nothing the namespace did not grant it (never the controller's)
    service_account_name: str = Field(default="peakscale-reshard", min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    #: a TLS cluster: the Secret (tls.crt, tls.key, ca.crt) whose CA the reshard step verifies the nodes with
    tls_secret: str | None = Field(default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)

    @field_validator("dataset_size", "throughput")
    @classmethod
    def _sizes(cls, value: str, info: ValidationInfo) -> str:
        from autoscaler.core.reshard import parse_size

        parse_size(value, field=to_camel(str(info.field_name)), per_second=info.field_name == "throughput")
        return value


class ScalingPolicySpec(_Spec):
    target_ref: TargetRef
    mode: Literal["hpa-floor", "scale", "observe"] = "hpa-floor"
    metric: Metric
    lead_time: str
    min_replicas: int = Field(default=1, ge=0, le=MAX_REPLICAS)
    max_replicas: int = Field(ge=1, le=MAX_REPLICAS)
    max_scale_up_per_minute: int | None = Field(default=None, ge=1)
    scale_down_stabilization: str = "5m"
    freeze_during_events: bool = True
    max_freeze: str = "6h"
    #: hpa-floor: ``plan`` (the floor follows the plan at all times) or ``events-only``
    floor: Literal["plan", "events-only"] = "plan"
    cooldown: str = "30m"
    #: the share of demand inside promotion windows the plan is sized to serve (the upper
    #: forecast's split-conformal level there: ``ForecastSettings.coverage``)
    coverage: float = Field(default=0.99, ge=MIN_COVERAGE, le=MAX_COVERAGE)
    forecast: ForecastSpec = ForecastSpec()
    node_headroom: NodeHeadroom = NodeHeadroom()
    #: a resharding tier (Redis Cluster, mode scale, replicas are shards); None: replicas start alone
    reshard: Reshard | None = None
    # derived once: the controller asks for them several times per policy per cycle
    _plan: PlanPolicy | None = PrivateAttr(default=None)
    _settings: ForecastSettings | None = PrivateAttr(default=None)

    @field_validator("lead_time", "scale_down_stabilization", "cooldown", "max_freeze")
    @classmethod
    def _durations(cls, value: str, info: ValidationInfo) -> str:
        return duration_field(value, to_camel(str(info.field_name)))

    @model_validator(mode="after")
    def _bounds(self) -> ScalingPolicySpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas {self.min_replicas} is above maxReplicas {self.max_replicas}")
        lead = parse_duration_s(self.lead_time, allow_zero=True)
        history = parse_duration_s(self.forecast.history)
        if lead >= history:
            raise ValueError(f"leadTime {self.lead_time} is not shorter than the forecast history {self.forecast.history} (nothing could be learned that far ahead)")
        if self.node_headroom.enabled and lead + self.node_headroom.lead_time_s >= history:
            raise ValueError(f"leadTime plus nodeHeadroom.leadTime is not shorter than the forecast history {self.forecast.history}")
        return self

    @property
    def plausible_demand(self) -> float:
        """The most demand the policy's metric can plausibly report: ten times what its
        maxReplicas serve at full capacity. A sample above it is an absurd spike (a unit mix-up, a
        counter reset read as a rate), held as missing so that it never sends a policy to its max."""
        return PLAUSIBLE_FACTOR * self.max_replicas * self.metric.capacity_per_replica

    def plan_policy(self) -> PlanPolicy:
        if self._plan is None:
            self._plan = self._build_plan_policy()
        return self._plan

    def _build_plan_policy(self) -> PlanPolicy:
        return PlanPolicy(
            capacity_per_replica=self.metric.capacity_per_replica,
            target_utilization=self.metric.target_utilization,
            lead_time_s=parse_duration_s(self.lead_time, allow_zero=True),
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            max_scale_up_per_minute=self.max_scale_up_per_minute,
            scale_down_stabilization_s=parse_duration_s(self.scale_down_stabilization, allow_zero=True),
            freeze_during_events=self.freeze_during_events,
            max_freeze_s=parse_duration_s(self.max_freeze, allow_zero=True),
        )

    def cycle_policy(self, interval_s: int, max_placeholders: int = DEFAULT_MAX_PLACEHOLDERS) -> CyclePolicy:
        """What one controller cycle needs of this policy (``cycle.decide``); ``max_placeholders`` is
        the controller's cap on its placeholder pods."""
        headroom = self.node_headroom.lead_time_s if self.node_headroom.enabled else None
        return CyclePolicy(
            plan=self.plan_policy(), mode=self.mode, floor=self.floor, cooldown_s=self.cooldown_s, interval_s=interval_s,
            headroom_lead_s=headroom, max_placeholders=max_placeholders,
        )  # fmt: skip

    def forecast_settings(self) -> ForecastSettings:
        if self._settings is None:
            from autoscaler.core.baseline import ForecastSettings  # numpy's weight only where a forecast is made

            self._settings = ForecastSettings(history_s=parse_duration_s(self.forecast.history), coverage=self.coverage)
        return self._settings

    @property
    def step_s(self) -> int:
        return max(1, parse_duration_s(self.forecast.step))

    @property
    def cooldown_s(self) -> int:
        return parse_duration_s(self.cooldown, allow_zero=True)


def policy_fields() -> list[str]:
    """Every ScalingPolicy spec field this version knows, nested ones dotted (``nodeHeadroom.leadTime``)."""
    out = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            key = prefix + (info.alias or to_camel(name))
            out.append(key)
            kind = info.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                walk(kind, key + ".")

    walk(ScalingPolicySpec, "")
    return sorted(out)


def fields_used(spec: dict[str, Any], prefix: str = "") -> list[str]:
    """The spec fields a ScalingPolicy document sets, dotted like ``policy_fields``."""
    out = []
    for key, value in (spec or {}).items():
        out.append(prefix + key)
        if isinstance(value, dict) and key in ("nodeHeadroom", "forecast", "metric"):
            out += fields_used(value, prefix + key + ".")
    return out


#: the operators of a label selector's requirement; node-selector terms also take Gt and Lt
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
NODE_OPERATORS = (*SELECTOR_OPERATORS, "Gt", "Lt")


def _requirement_holds(op: Any, value: str | None, values: list[str]) -> bool:
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            left, right = int(value), int(values[0])
        except ValueError:
            return False
        return left > right if op == "Gt" else left < right
    return False  # an operator nobody defined selects nothing, never everything


def expressions_match(expressions: list[dict[str, Any]], labels: dict[str, str]) -> bool:
    """Kubernetes' set-based requirements (In, NotIn, Exists, DoesNotExist; Gt and Lt of node terms)
    against labels: the one matcher for label selectors and node-selector terms."""
    return all(_requirement_holds(e.get("operator"), labels.get(e.get("key") or ""), list(e.get("values") or [])) for e in expressions)


class Requirement(_Spec):
    """One ``matchExpressions`` requirement, checked as kube-apiserver checks a label selector."""

    key: str = Field(min_length=1, max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = []

    @model_validator(mode="after")
    def _values(self) -> Requirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self


class LabelSelector(_Spec):
    match_labels: dict[str, str] = {}
    match_expressions: list[Requirement] = []

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        return all(_requirement_holds(r.operator, labels.get(r.key), r.values) for r in self.match_expressions)


def applies(selector: LabelSelector, event_namespace: str | None, namespace: str, labels: dict[str, str]) -> bool:
    """The one rule of which promotions apply to a policy, for the controller, ``plan``,
    ``promo review`` and ``preflight``: a PromotionEvent applies to the policies of its own
    namespace that its targets match; an entry of a calendar file (``event_namespace`` None) to
    the matching policies of every namespace."""
    return (event_namespace is None or event_namespace == namespace) and selector.matches(labels)


def event_applies(event: PromotionEvent, namespace: str, labels: dict[str, str]) -> bool:
    """``applies`` for a calendar event (its targets as the stores keep them)."""
    return applies(selector_of(event), event.namespace, namespace, labels)


def selector_of(event: PromotionEvent) -> LabelSelector:
    """The event's targets as a selector (none: every policy)."""
    return _selector(json.dumps(event.targets, sort_keys=True)) if event.targets else LabelSelector()


@functools.lru_cache(maxsize=4096)
def _selector(targets: str) -> LabelSelector:
    return LabelSelector.model_validate(json.loads(targets))


class PromotionEventSpec(_Spec):
    # the CRD's bounds, field by field: what one store accepts the other accepts
    title: str = Field(default="", max_length=256)
    start: datetime
    end: datetime
    kind: str = Field(min_length=1, max_length=63)
    expected_multiplier: float | None = Field(default=None, gt=0, le=MAX_MULTIPLIER)
    expected_peak: float | None = Field(default=None, gt=0)
    like: list[Annotated[str, Field(min_length=1)]] = Field(default=[], max_length=20)
    targets: LabelSelector = LabelSelector()

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime, info: ValidationInfo) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs an offset (RFC 3339, e.g. 2026-11-11T20:00:00+08:00)")
        return value

    @model_validator(mode="after")
    def _window(self) -> PromotionEventSpec:
        if self.end <= self.start:
            raise ValueError("end is not after start")
        return self

    def event(self, name: str, zone: tzinfo = UTC, memories: tuple[EventProfile, ...] = (), namespace: str | None = None) -> PromotionEvent:
        """The calendar event in wall-clock time of ``zone`` (what the planner uses), with the
        profiles recorded of it: the one conversion from a spec to an event. ``namespace`` is the
        PromotionEvent's (None: an entry of a calendar file, for every namespace)."""
        return PromotionEvent(
            name=name,
            namespace=namespace,
            targets=self.targets.model_dump(by_alias=True, exclude_defaults=True) or None,
            title=self.title,
            start=self.start.astimezone(zone).replace(tzinfo=None),
            end=self.end.astimezone(zone).replace(tzinfo=None),
            kind=self.kind,
            expected_multiplier=self.expected_multiplier,
            expected_peak=self.expected_peak,
            like=tuple(self.like),
            memories=memories,
            memory=memories[0] if memories else None,
        )


def spec_error(exc: ValidationError, where: str, model: type | None = None) -> InputError:
    """A spec's validation error as ``InputError`` naming ``<where>.spec.<field>`` (a key ``model``
    does not know: with the closest one it does)."""
    loc, msg = validation_problem(exc.errors(), model)
    field = ".".join(str(p) for p in loc)
    return InputError(f"{where}.spec{('.' + field) if field else ''}", msg)


def parse_policy(obj: dict[str, Any]) -> ScalingPolicySpec:
    meta = obj.get("metadata") or {}
    try:
        spec = ScalingPolicySpec.model_validate(obj.get("spec") or {})
        spec.plan_policy()  # the planner's own checks (utilization, bounds)
        return spec
    except ValidationError as exc:
        raise spec_error(exc, f"ScalingPolicy {meta.get('namespace')}/{meta.get('name')}", ScalingPolicySpec) from None


def parse_memory(obj: dict[str, Any]) -> dict[str, EventProfile]:
    """What the controller recorded of a past event, per policy (``status.memory``); entries that do
    not parse are left out (the event stays usable without them)."""
    out: dict[str, EventProfile] = {}
    for item in (obj.get("status") or {}).get("memory") or []:
        try:
            profile = EventProfile.model_validate(item)
        except ValidationError:
            continue
        out[profile.policy] = profile
    return out


def memory_status(profiles: list[EventProfile]) -> list[dict[str, Any]]:
    """``status.memory`` as the CRD spells it."""
    return [p.model_dump(by_alias=True) for p in profiles]


def parse_event(obj: dict[str, Any], memories: tuple[EventProfile, ...] = ()) -> tuple[PromotionEventSpec, PromotionEvent]:
    """The spec, and the calendar event in UTC wall-clock seconds (what the controller plans in),
    with what was recorded of it (``memories``)."""
    meta = obj.get("metadata") or {}
    spec = event_spec(obj.get("spec") or {}, f"PromotionEvent {meta.get('namespace')}/{meta.get('name')}")
    return spec, spec.event(meta.get("name", "?"), memories=memories, namespace=meta.get("namespace") or None)


def event_spec(spec: dict[str, Any], where: str) -> PromotionEventSpec:
    """A PromotionEvent's spec (camelCase, as the CRD spells it), checked; ``InputError`` naming
    ``<where>.spec.<field>``."""
    try:
        return PromotionEventSpec.model_validate(spec)
    except ValidationError as exc:
        raise spec_error(exc, where, PromotionEventSpec) from None


def event_of(spec: dict[str, Any], name: str, zone: tzinfo = UTC, memories: tuple[EventProfile, ...] = (), namespace: str | None = None, *, where: str = "") -> PromotionEvent:
    """The calendar event a spec states, in wall-clock time of ``zone``: the one conversion from a
    spec to an event, for a PromotionEvent, a stored promotion and a calendar file's entry."""
    return event_spec(spec, where or f"promotion {name!r}").event(name, zone, memories, namespace)
