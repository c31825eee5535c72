"""When the controller acts for a promotion: each policy's action window (from one interval
before start - leadTime, plus the node lead with headroom, to end + cooldown), a promotion's span
over the policies it applies to, and its phase. Pure and light (no numpy): ``cycle.decide`` uses
them, and so do the controller's PromotionEvent status, ``preflight`` and ``promo list``."""

from __future__ import annotations

from collections.abc import Iterable

from autoscaler.core.calendar import PromotionEvent
from autoscaler.core.cycle_types import CyclePolicy, EventPhase


def action_offsets(policy: CyclePolicy) -> tuple[int, int]:
    """How long before an event's start its action window opens, and after its end it closes."""
    return policy.plan.lead_time_s + policy.interval_s, policy.cooldown_s


def action_window(policy: CyclePolicy, event: PromotionEvent) -> tuple[int, int]:
    """``[start - lead - interval, end + cooldown)``: from the last cycle whose capacity is ready by
    the start, to the end of the cool-down."""
    before, after = action_offsets(policy)
    return event.start_s - before, event.end_s + after


def headroom_window(policy: CyclePolicy, event: PromotionEvent) -> tuple[int, int]:
    """``[start - lead - nodeLead - interval, end + cooldown)``: nodes asked for at its start are up
    by the cycle that raises for the event."""
    lo, hi = action_window(policy, event)
    return lo - (policy.headroom_lead_s or 0), hi


def event_span(event: PromotionEvent, offsets: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """From the earliest opening to the latest close of the action windows of the policies an
    event applies to (``action_offsets`` of each: ``action_window``); the event's own times when
    it applies to none."""
    pairs = list(offsets)
    return min((event.start_s - before for before, _ in pairs), default=event.start_s), max((event.end_s + after for _, after in pairs), default=event.end_s)


def event_phase(now_s: float, opens_s: int, start_s: int, end_s: int, closes_s: int, *, pending: bool) -> EventPhase:
    """Scheduled until the first action window opens, PreScaling until the start, Active until the
    end, Cooling until the last window closes and every floor it raised is back (``pending``: a
    write has not landed), then Done."""
    if now_s < opens_s:
        return "Scheduled"
    if now_s < start_s:
        return "PreScaling"
    if now_s < end_s:
        return "Active"
    if now_s < closes_s or pending:
        return "Cooling"
    return "Done"
