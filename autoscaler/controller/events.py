"""Promotions in the controller: reading PromotionEvents (and the ``--calendar`` file), the
profiles recorded once an event is over, and each event's status (its phase over the windows of the
policies it selects, their planned peak, its preflight)."""

from __future__ import annotations

import logging

from autoscaler.core.calendar import EventProfile
from autoscaler.core.windows import action_offsets, event_phase, event_span
from autoscaler.core.cycle_types import CyclePolicy
from autoscaler.core.replay import record_event, recordable
from autoscaler.core.resources import memory_status, parse_event, parse_memory
from autoscaler.errors import InputError, printable
from autoscaler.controller.model import ControllerOptions, Observation
from autoscaler.controller.promotions import EventIndex, ParsedEvent
from autoscaler.controller.report import Reporter
from autoscaler.controller.resource import Resource
from autoscaler.controller.status import ConditionType, Condition, EventStatus, Reason, condition, significant

log = logging.getLogger("peakscale.controller")

#: what the loop hands the events' statuses of each policy it planned: what its cycle planned by,
#: the peak it sized for, its labels
Planned = dict[tuple[str, str], tuple[CyclePolicy, float | None, dict[str, str]]]


class _Group:
    """The policies of one namespace with the same labels, as promotions see them: their names, the
    widest of their action windows, their largest planned peak."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []
        self.reach_s = 0
        self.cooldown_s = 0
        self.peak: float | None = None

    def add(self, key: tuple[str, str], policy: CyclePolicy, peak: float | None) -> None:
        self.keys.append(key)
        before, after = action_offsets(policy)
        self.reach_s, self.cooldown_s = max(self.reach_s, before), max(self.cooldown_s, after)
        if peak is not None:
            self.peak = peak if self.peak is None else max(self.peak, peak)


class Promotions:
    """Reads the promotions each cycle and writes their statuses; keeps the profiles recorded this
    cycle until they are written, and the ``--calendar`` file's entries last read whole."""

    def __init__(self, options: ControllerOptions, reporter: Reporter) -> None:
        self.options, self.reporter = options, reporter
        self.telemetry = reporter.telemetry
        #: profiles recorded this cycle, per (namespace, event), per policy, not yet in status
        self._recorded: dict[tuple[str, str], dict[str, EventProfile]] = {}
        self._file_last: list[ParsedEvent] = []
        self._calendar_said: set[str] = set()

    def read(self, objs: list[dict], now: float) -> list[ParsedEvent]:
        """The cycle's promotions: the PromotionEvents that parse (a bad one gets a condition naming
        the field, the others carry on), then the file's entries no PromotionEvent names."""
        out = []
        for obj in objs:
            resource = Resource.of(obj)
            try:
                memory = parse_memory(obj)
                spec, event = parse_event(obj, tuple(memory[p] for p in sorted(memory)))
                out.append(ParsedEvent(resource, spec, event, memory))
            except (InputError, ValueError, TypeError, KeyError) as exc:
                self.telemetry.errors.labels("invalid-event").inc()
                invalid = condition(ConditionType.VALID, False, Reason.INVALID_SPEC, str(exc), now, resource.conditions)
                self.reporter.status(resource, EventStatus(conditions=[invalid]))
                self.reporter.event_once(resource, Reason.INVALID_SPEC, str(exc), warning=True, now=now)
        return out + self._file_events(out, now)

    def _file_events(self, crs: list[ParsedEvent], now: float) -> list[ParsedEvent]:
        """The promotions of ``--calendar`` (a ConfigMap mount, for clusters without the CRDs): they
        select policies in every watched namespace; a name a PromotionEvent already has is left
        out. Each entry is isolated as an object is: a bad one is skipped and reported (a log line
        and a Warning Event on the controller's Lease, once each), the others apply. A file that
        does not read at all (a half-written mount) keeps the entries last read from it."""
        from pathlib import Path

        from autoscaler.adapters import yamlsafe
        from autoscaler.core.calendar import read_entries_isolated

        path = self.options.calendar_file
        if not path:
            return []
        taken = {p.event.name for p in crs}
        try:
            entries, bad = read_entries_isolated(yamlsafe.read(Path(path), path), None, path)
        except (InputError, OSError) as exc:
            self.telemetry.errors.labels("calendar-file").inc()
            log.warning("calendar file %s: %s (keeping the %d promotion(s) read before)", path, printable(exc), len(self._file_last))
            return [p for p in self._file_last if p.event.name not in taken]
        out: list[ParsedEvent] = []
        names: set[str] = set()
        for e in entries:
            obj = {"metadata": {"name": e.name}, "spec": e.spec}
            try:
                if e.name in names:  # isolated: the second is skipped, the first applies
                    raise InputError(f"{path} {e.name}", "a second promotion of that name", "give every promotion a unique name")
                spec, event = parse_event(obj, tuple(e.memory))
            except (InputError, ValueError, TypeError, KeyError) as exc:
                bad.append(exc if isinstance(exc, InputError) else InputError(f"{path} {e.name}", str(exc)))
                continue
            names.add(e.name)
            out.append(ParsedEvent(Resource.of(obj), spec, event, {m.policy: m for m in e.memory}, from_file=True))
        for problem in bad:
            self._calendar_problem(str(problem), now)
        self._file_last = out
        clash = sorted(p.event.name for p in out if p.event.name in taken)
        if clash:
            log.warning("calendar file %s: %s also PromotionEvent(s): the resources win", path, ", ".join(clash[:5]))
        return [p for p in out if p.event.name not in taken]

    def _calendar_problem(self, message: str, now: float) -> None:
        """One bad ``--calendar`` entry: counted every cycle, said once (log and Event)."""
        self.telemetry.errors.labels("calendar-entry").inc()
        if message in self._calendar_said:
            return
        self._calendar_said.add(message)
        log.warning("calendar entry skipped: %s", message)
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": self.options.lease_name, "namespace": self.options.lease_namespace}}
        self.reporter.event(lease, Reason.INVALID_CALENDAR_ENTRY, f"skipped: {message}", warning=True, now=now)

    def remember(self, seen: Observation, mine: list[ParsedEvent], now: float) -> None:
        """Record what this policy saw of each event whose window and cool-down have passed and
        that has no profile for it yet (``replay.recordable``); ``write_statuses`` writes them."""
        series, name, spec = seen.series, seen.key[1], seen.spec
        if series is None or seen.deleting:
            return
        first_s = int(series.times_s[0]) - spec.step_s  # the oldest period the cache holds
        for parsed in mine:
            if parsed.from_file or name in parsed.memory or name in self._recorded.get(parsed.key, {}):
                continue
            if not recordable(parsed.event, seen.policy, first_s, now):
                continue  # not over yet, or its samples are gone (the controller was not running then)
            recorded = record_event(series.times_s, series.values, seen.calendar, parsed.event, seen.policy, spec.forecast_settings(), spec.step_s, policy_name=name)
            if recorded is not None:
                self._recorded.setdefault(parsed.key, {})[name] = recorded

    def write_statuses(
        self, events: list[ParsedEvent], index: EventIndex, planned: Planned, pending: set[tuple[str, str]], preflight: dict[tuple[str, str], Condition], now: float
    ) -> None:
        """Each PromotionEvent's status: its phase over the windows of the policies it selects
        (Done once every write they wait for has landed: ``pending``), their planned peak, what they
        recorded of it, its preflight, and its conditions."""
        selecting = self._selecting(index, planned)
        for parsed in events:
            if parsed.from_file:
                continue  # a file entry has no status to write
            chosen, e, previous = selecting.get(id(parsed), []), parsed.event, parsed.resource.conditions
            # the windows of every selected policy: from the earliest start - lead - interval to the
            # latest end + cooldown
            opens, closes = event_span(e, ((g.reach_s, g.cooldown_s) for g in chosen))
            keys = [k for g in chosen for k in g.keys]
            waiting = sorted(k[1] for k in keys if k in pending)
            status = EventStatus(
                conditions=[condition(ConditionType.VALID, True, Reason.PARSED, "spec is valid", now, previous)],
                phase=event_phase(now, opens, e.start_s, e.end_s, closes, pending=bool(waiting)),
                policies=sorted(k[1] for k in keys), observed_generation=parsed.resource.observed_generation,
            )  # fmt: skip
            peaks = [g.peak for g in chosen if g.peak is not None]
            if peaks and now >= opens - self.options.interval_s:
                # the peak planned for this promotion: only once its window is about to open (before
                # that, the policies' forecasts are of the days before it, not of it)
                status.planned_peak = significant(max(peaks))
            new = self._recorded.pop(parsed.key, {})
            memory = {**parsed.memory, **new}
            if memory:
                status.memory = memory_status([memory[p] for p in sorted(memory)])
            for policy_name, profile in sorted(new.items()):
                self.reporter.event(parsed.resource.raw, "ProfileRecorded", f"recorded what ScalingPolicy {policy_name} saw: {profile.summary()}", warning=False, now=now)
            if parsed.key in preflight:
                status.conditions.append(preflight[parsed.key])
            if waiting:
                message = f"waiting for the write of {', '.join(waiting)} to land"
                status.conditions.append(condition(ConditionType.RESTORED, False, Reason.WRITE_FAILED, message, now, previous))
            self.reporter.status(parsed.resource, status)

    def _selecting(self, index: EventIndex, planned: Planned) -> dict[int, list[_Group]]:
        """Which policies each promotion selects, from the index: policies of one namespace labelled
        alike form one group, and a promotion is matched against groups, never every policy."""
        groups: dict[tuple[str, frozenset[tuple[str, str]]], _Group] = {}
        for key, (cycle_policy, peak, labels) in planned.items():
            group = groups.setdefault((key[0], frozenset(labels.items())), _Group())
            group.add(key, cycle_policy, peak)
        selecting: dict[int, list[_Group]] = {}
        for (ns_of, labels_of), group in groups.items():
            for applying in index.applying(ns_of, dict(labels_of)):
                selecting.setdefault(id(applying), []).append(group)
        return selecting
