"""Synthetic series for tests: a daily pattern plus events of one kind that triple the load."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from autoscaler.core.calendar import PromotionEvent
from autoscaler.core.timezones import wall_seconds

START = datetime(2026, 10, 1)


def daily_series(days: int, step_s: int = 60, base: float = 1000.0, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = days * 86400 // step_s
    times = wall_seconds(START) + np.arange(n, dtype=np.int64) * step_s
    hour = (times % 86400) / 3600
    shape = 1.0 + 0.6 * np.sin((hour - 8) / 24 * 2 * np.pi)
    values = base * shape * (1 + 0.03 * rng.standard_normal(n))
    return times, np.maximum(values, 0)


#: event hours vary from day to day, so daily seasonality alone cannot learn them
HOURS = (20, 11, 15, 21, 13, 19, 10, 16, 12, 17, 14, 18)


def nightly_events(days: int, minutes: int = 120, kind: str = "kol-live") -> list[PromotionEvent]:
    """One event a day, at a different hour each day (the last at an hour never seen before)."""
    return [
        PromotionEvent(
            name=f"{kind}-{d}",
            start=START + timedelta(days=d, hours=HOURS[d % len(HOURS)]),
            end=START + timedelta(days=d, hours=HOURS[d % len(HOURS)], minutes=minutes),
            kind=kind,
        )
        for d in range(days)
    ]


def add_surges(times: np.ndarray, values: np.ndarray, events: list[PromotionEvent], factor: float = 3.0, ramp_s: int = 300) -> np.ndarray:
    """Multiply the load inside each event window, ramping up over ``ramp_s`` from the start."""
    out = values.copy()
    for e in events:
        inside = (times >= e.start_s) & (times < e.end_s)
        ramp = np.clip((times - e.start_s) / ramp_s, 0, 1)
        out[inside] *= 1 + (factor - 1) * ramp[inside]
    return out
