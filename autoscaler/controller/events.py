"""Promotions in the controller: reading PromotionEvents (and the --calendar file), their status
and phase, the memory recorded once an event is over, the preflight a day ahead, and Events."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from autoscaler.core.calendar import PromotionEvent
from autoscaler.core.cycle import CalendarIndex, next_action
from autoscaler.core.windows import action_offsets, event_phase, event_span
from autoscaler.core.cycle_types import CyclePolicy
from autoscaler.core.replay import record_event
from autoscaler.core.resources import EVENT_PLURAL, ScalingPolicySpec, memory_status, parse_event, parse_memory
from autoscaler.errors import InputError, printable
from autoscaler.adapters.inputs import PolicyDoc
from autoscaler.adapters.kube import HpaView, now_rfc3339
from autoscaler.adapters.prometheus import Series
from autoscaler.controller.base import ParsedEvent, PreflightRun
from autoscaler.controller.observe import ObserveSteps
from autoscaler.controller.status import ConditionType, EventStatus, Reason, condition, conditions_of, significant

log = logging.getLogger("peakscale.controller")


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


class EventSteps(ObserveSteps):
    def _preflight(self, policies: list[dict[str, Any]], events: list[ParsedEvent], now: float) -> None:
        """Run ``preflight`` for each promotion due (starting within ``preflight_ahead_s``), a few
        policies per cycle within the time budget; report a Preflight condition once it is done."""
        from autoscaler.errors import HistoryUnavailable
        from autoscaler.controller.preflight import run_checks
        from autoscaler.controller.preflight_model import FAIL, WARN

        opts = self.options
        if opts.preflight_ahead_s <= 0:
            return
        started = time.perf_counter()
        run = self._preflight_run
        due = []
        if run is None:
            due = [
                p for p in events
                if not p.from_file and now < p.event.start_s <= now + opts.preflight_ahead_s and self._preflight_due.get(self._event_key(p), 0.0) <= now
            ]  # fmt: skip
            if not due:
                return  # nothing to check: the policies are not even listed
        docs = []
        for obj in policies:
            meta = obj.get("metadata") or {}
            try:
                docs.append((PolicyDoc(meta["name"], meta["namespace"], meta.get("labels") or {}, self._parse(obj)), obj))
            except (InputError, KeyError):
                continue
        if run is None:
            parsed = min(due, key=lambda p: p.event.start_s)
            run = self._preflight_run = PreflightRun(parsed, [d for d, _ in docs if parsed.selects(d.namespace, d.labels)])

        def history(policy: PolicyDoc) -> tuple[np.ndarray, np.ndarray]:
            query = self._query(policy.spec, policy.namespace, policy.name)
            found = self._prefetched.get((query, policy.spec.step_s))
            series = found.result() if found is not None else None
            if series is None or isinstance(series, Exception):
                series = self.history.last_known(query, policy.spec.step_s)  # stale is still history
            if series is None:
                raise HistoryUnavailable(f"Prometheus gave no history for {policy.namespace}/{policy.name}")
            return series.times_s, series.values

        def calendar_for(policy: PolicyDoc) -> list[PromotionEvent]:
            return [p.for_policy(policy.name) for p in self._event_index.applying(policy.namespace, policy.labels)]

        parsed = run.event
        while run.todo and (time.perf_counter() - started < opts.preflight_budget_s or not run.checks):
            policy = run.todo.pop(0)
            run.checks += run_checks(
                self.kube, docs, [(parsed.event, [policy])], calendar_for, history, now_s=now, interval_s=opts.interval_s,
                lease_namespace=opts.lease_namespace, lease_name=opts.lease_name, cache=run.cache,
            )  # fmt: skip
        if run.todo:
            return
        self._preflight_run = None
        key = self._event_key(parsed)
        self._preflight_due[key] = now + opts.preflight_every_s
        checks = run.checks
        fails = [c for c in checks if c.status == FAIL]
        warns = [c for c in checks if c.status == WARN]
        if fails:
            text = "; ".join(f"FAIL {c.check} {c.object}: {c.message} (fix: {c.fix})" for c in fails)
            reason = Reason.PREFLIGHT_FAILED
        elif warns:
            text = "; ".join(f"WARN {c.check} {c.object}: {c.message}" for c in warns)
            reason = Reason.PREFLIGHT_WARNINGS
        else:
            text, reason = f"{len(checks)} checks passed", Reason.PREFLIGHT_PASSED
        self._preflight_conditions[key] = condition(ConditionType.PREFLIGHT, not fails, reason, text, now, conditions_of(parsed.obj))
        for c in fails:
            said = (*key, c.message)
            if said not in self._preflight_said:
                self._preflight_said.add(said)
                self._emit(parsed.obj, "PreflightFailed", f"{c.check} {c.object}: {c.message} (fix: {c.fix})", warning=True, now=now)

    @staticmethod
    def _event_key(parsed: ParsedEvent) -> tuple[str, str]:
        return parsed.namespace, parsed.event.name

    # ------------------------------------------------------------------------------------------
    def _events(self, objs: list[dict[str, Any]], now: float) -> list[ParsedEvent]:
        out = []
        for obj in objs:
            try:
                memory = parse_memory(obj)
                spec, event = parse_event(obj, tuple(memory[p] for p in sorted(memory)))
                out.append(ParsedEvent(obj, spec, event, memory))
            except (InputError, ValueError, TypeError, KeyError) as exc:
                self.telemetry.errors.labels("invalid-event").inc()
                invalid = condition(ConditionType.VALID, False, Reason.INVALID_SPEC, str(exc), now, conditions_of(obj))
                self._write_status(obj, EventStatus(conditions=[invalid]), plural=EVENT_PLURAL)
                self._event_once(obj, Reason.INVALID_SPEC, str(exc), warning=True, now=now)
        return out

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
        try:
            entries, bad = read_entries_isolated(yamlsafe.read(Path(path), path), None, path)
        except (InputError, OSError) as exc:
            self.telemetry.errors.labels("calendar-file").inc()
            log.warning("calendar file %s: %s (keeping the %d promotion(s) read before)", path, printable(exc), len(self._file_last))
            return [p for p in self._file_last if p.event.name not in {c.event.name for c in crs}]
        out: list[ParsedEvent] = []
        names: set[str] = set()
        for e in entries:
            obj = {"metadata": {"name": e.name}, "spec": e.spec}
            try:
                if e.name in names:
                    raise InputError(f"{path} {e.name}", "a second promotion of that name", "give every promotion a unique name")
                spec, event = parse_event(obj, tuple(e.memory))
            except (InputError, ValueError, TypeError, KeyError) as exc:
                bad.append(exc if isinstance(exc, InputError) else InputError(f"{path} {e.name}", str(exc)))
                continue
            names.add(e.name)
            out.append(ParsedEvent(obj, spec, event, {m.policy: m for m in e.memory}, from_file=True))
        for problem in bad:
            self._calendar_problem(str(problem), now)
        self._file_last = out
        taken = {p.event.name for p in crs}
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
        self._emit(lease, Reason.INVALID_CALENDAR_ENTRY, f"skipped: {message}", warning=True, now=now)

    def _remember(
        self, name: str, spec: ScalingPolicySpec, policy: CyclePolicy, mine: list[ParsedEvent], calendar: list[PromotionEvent], series: Series, now: float
    ) -> None:
        """Record what this policy saw of each event whose window and cool-down have passed and
        that has no profile for it yet; ``_event_statuses`` writes them to the events' status."""
        first_s = int(series.times_s[0]) - spec.step_s  # the oldest period the cache holds
        for parsed in mine:
            e = parsed.event
            key = self._event_key(parsed)
            if parsed.from_file or now < e.end_s + policy.cooldown_s or name in parsed.memory or name in self._recorded.get(key, {}):
                continue
            if e.start_s - policy.reach_s < first_s:
                continue  # its samples are gone (the controller was not running then)
            recorded = record_event(series.times_s, series.values, calendar, e, policy, spec.forecast_settings(), spec.step_s, policy_name=name)
            if recorded is not None:
                self._recorded.setdefault(key, {})[name] = recorded

    def _next_action(self, policy: CyclePolicy, index: CalendarIndex, now: float, hpa: HpaView | None) -> str:
        if policy.mode == "observe":
            return "observe only"
        upcoming = next_action(policy, index, int(now))
        if upcoming is None:
            return "follow the forecast" if policy.mode == "scale" or policy.floor == "plan" else "none planned"
        at, event = upcoming
        verb = f"raise HPA {hpa.name} floor" if hpa is not None else "scale"
        text = f"{verb} at {now_rfc3339(at)} for {event.label!r} (lead {policy.plan.lead_time_s // 60} min)"
        if policy.headroom:
            ahead = index.ahead_openings
            first = next(((t, e) for t, e in ahead if t > now), None)
            if first is not None and first[0] <= at:
                text = f"node headroom at {now_rfc3339(first[0])}, then {text}"
        return text

    def _event_statuses(self, events: list[ParsedEvent], plans: dict[tuple[str, str], tuple[ScalingPolicySpec, float | None, dict[str, str]]], now: float) -> None:
        """Each PromotionEvent's status: its phase over the windows of the policies it selects, their
        planned peak, what they recorded of it, and its conditions."""
        # which policies each promotion selects, from the index: policies of one namespace labelled
        # alike form one group, and a promotion is matched against groups, never against every policy
        groups: dict[tuple[str, frozenset[tuple[str, str]]], _Group] = {}
        for key, (spec, peak, labels) in plans.items():
            group = groups.setdefault((key[0], frozenset(labels.items())), _Group())
            group.add(key, spec.cycle_policy(self.options.interval_s, self.options.headroom_max_pods), peak)
        selecting: dict[int, list[_Group]] = {}
        for (ns_of, labels_of), group in groups.items():
            for applying in self._event_index.applying(ns_of, dict(labels_of)):
                selecting.setdefault(id(applying), []).append(group)
        for parsed in events:
            if parsed.from_file:
                continue  # a file entry has no status to write
            meta = parsed.obj.get("metadata") or {}
            ns = self._event_key(parsed)[0]
            chosen = selecting.get(id(parsed), [])
            e = parsed.event
            # the windows of every selected policy: from the earliest start - lead - interval to the
            # latest end + cooldown
            opens, closes = event_span(e, ((g.reach_s, g.cooldown_s) for g in chosen))
            keys = [k for g in chosen for k in g.keys]
            pending = sorted(k[1] for k in keys if k in self._write_failed)
            previous = conditions_of(parsed.obj)
            status = EventStatus(
                conditions=[condition(ConditionType.VALID, True, Reason.PARSED, "spec is valid", now, previous)],
                phase=event_phase(now, opens, e.start_s, e.end_s, closes, pending=bool(pending)),  # Done once every raised floor is back
                policies=sorted(k[1] for k in keys), observed_generation=meta.get("generation", 1),
            )  # fmt: skip
            peaks = [g.peak for g in chosen if g.peak is not None]
            if peaks and now >= opens - self.options.interval_s:
                # the peak planned for this promotion: only once its window is about to open (before
                # that, the policies' forecasts are of the days before it, not of it)
                status.planned_peak = significant(max(peaks))
            new = self._recorded.pop((ns, e.name), {})
            memory = {**parsed.memory, **new}
            if memory:
                status.memory = memory_status([memory[p] for p in sorted(memory)])
            for policy_name, profile in sorted(new.items()):
                self._emit(parsed.obj, "ProfileRecorded", f"recorded what ScalingPolicy {policy_name} saw: {profile.summary()}", warning=False, now=now)
            preflight = self._preflight_conditions.get((ns, e.name))
            if preflight is not None:
                status.conditions.append(preflight)
            if pending:
                waiting = f"waiting for the write of {', '.join(pending)} to land"
                status.conditions.append(condition(ConditionType.RESTORED, False, Reason.WRITE_FAILED, waiting, now, previous))
            self._write_status(parsed.obj, status, plural=EVENT_PLURAL)
