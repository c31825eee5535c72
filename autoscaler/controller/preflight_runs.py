"""Preflight in the controller: the checks of ``controller.preflight`` run for each promotion due
(starting within ``preflight_ahead_s``), a few policies per cycle within a time budget, so they
never hold up the cycle's own work; once a run is done, its Preflight condition for the event."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autoscaler.core.calendar import PromotionEvent
from autoscaler.errors import HistoryUnavailable, InputError
from autoscaler.adapters.inputs import PolicyDoc
from autoscaler.adapters.kube import Kube
from autoscaler.controller.model import ControllerOptions
from autoscaler.controller.observe import Observer
from autoscaler.controller.preflight_model import FAIL, WARN, Check
from autoscaler.controller.promotions import EventIndex, ParsedEvent
from autoscaler.controller.report import Reporter
from autoscaler.controller.resource import Resource
from autoscaler.controller.status import Condition, ConditionType, Reason, condition


@dataclass
class PreflightRun:
    """The preflight of one promotion, run a few policies per cycle."""

    event: ParsedEvent
    #: the policies still to check
    todo: list[PolicyDoc]
    checks: list[Check] = field(default_factory=list)
    #: what the checks read once per run (nodes, the Lease, ...)
    cache: dict[str, Any] = field(default_factory=dict)


class PreflightRuns:
    def __init__(self, kube: Kube, options: ControllerOptions, reporter: Reporter, observer: Observer) -> None:
        self.kube, self.options, self.reporter, self.observer = kube, options, reporter, observer
        #: per promotion: when next due, the condition to report, the failures already said
        self._due: dict[tuple[str, str], float] = {}
        self.conditions: dict[tuple[str, str], Condition] = {}
        self._said: set[tuple[str, str, str]] = set()
        self._run: PreflightRun | None = None

    def abandon(self) -> None:
        """A run that failed is started again when next due."""
        self._run = None

    def step(self, policies: list[Resource], events: list[ParsedEvent], index: EventIndex, now: float) -> None:
        """The next checks of the run under way, or of the promotion due first."""
        from autoscaler.controller.preflight import run_checks

        opts = self.options
        if opts.preflight_ahead_s <= 0:
            return
        started = time.perf_counter()
        run = self._run
        if run is None:
            due = [p for p in events if not p.from_file and now < p.event.start_s <= now + opts.preflight_ahead_s and self._due.get(p.key, 0.0) <= now]
            if not due:
                return  # nothing to check: the policies are not even read
        docs = self._docs(policies)
        if run is None:
            first = min(due, key=lambda p: p.event.start_s)
            run = self._run = PreflightRun(first, [d for d, _ in docs if first.selects(d.namespace, d.labels)])

        def history(policy: PolicyDoc) -> tuple[np.ndarray, np.ndarray]:
            series = self.observer.series_for(policy.spec, policy.namespace, policy.name)
            if series is None:
                raise HistoryUnavailable(f"Prometheus gave no history for {policy.namespace}/{policy.name}")
            return series.times_s, series.values

        def calendar_for(policy: PolicyDoc) -> list[PromotionEvent]:
            return [p.for_policy(policy.name) for p in index.applying(policy.namespace, policy.labels)]

        while run.todo and (time.perf_counter() - started < opts.preflight_budget_s or not run.checks):
            policy = run.todo.pop(0)
            run.checks += run_checks(
                self.kube, docs, [(run.event.event, [policy])], calendar_for, history, now_s=now, interval_s=opts.interval_s,
                lease_namespace=opts.lease_namespace, lease_name=opts.lease_name, cache=run.cache,
            )  # fmt: skip
        if not run.todo:
            self._run = None
            self._done(run, now)

    def _docs(self, policies: list[Resource]) -> list[tuple[PolicyDoc, dict]]:
        """The policies that parse, as the checks read them (with the object: its spec and status)."""
        docs = []
        for policy in policies:
            try:
                docs.append((PolicyDoc(policy.name, policy.namespace, policy.labels, self.observer.parse(policy)), policy.raw))
            except InputError:
                continue
        return docs

    def _done(self, run: PreflightRun, now: float) -> None:
        """The run's Preflight condition (the event's status shows it), a Warning Event per failure."""
        parsed, checks = run.event, run.checks
        self._due[parsed.key] = now + self.options.preflight_every_s
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
        self.conditions[parsed.key] = condition(ConditionType.PREFLIGHT, not fails, reason, text, now, parsed.resource.conditions)
        for c in fails:
            said = (*parsed.key, c.message)
            if said not in self._said:
                self._said.add(said)
                self.reporter.event(parsed.resource.raw, "PreflightFailed", f"{c.check} {c.object}: {c.message} (fix: {c.fix})", warning=True, now=now)
