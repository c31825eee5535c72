"""Bad metric data is flagged and held as missing, never acted on: negative demand, samples
stamped after the range asked for, and spikes beyond what the policy could ever serve. The
answers are injected (a broken exporter, a wrong clock, a unit mix-up) through the client's seam."""

from __future__ import annotations

import math

import numpy as np

from autoscaler.adapters.prometheus import HistoryCache

STEP = 60
END = 1_800_000_000 // STEP * STEP


class Answers:
    """What a broken Prometheus answers to every range query."""

    def __init__(self, **_: object) -> None:
        self._session = type("Session", (), {"verify": True, "trust_env": True})()

    def custom_query_range(self, query, start_time, end_time, step):
        lo, hi = int(start_time.timestamp()), int(end_time.timestamp())
        values = []
        for ts in range(lo, hi + 1, STEP):
            value = 1000.0
            if ts == hi - 10 * STEP:
                value = -5000.0  # a negative rate: a counter reset read wrong
            if ts == hi - 5 * STEP:
                value = 1e12  # a unit mix-up
            values.append([ts, str(value)])
        values.append([hi + 86400 * 365 * 30, "1000"])  # stamped thirty years ahead
        return [{"metric": {}, "values": values}]


def test_negative_future_and_absurd_samples_are_held_as_missing_and_counted():
    cache = HistoryCache("http://127.0.0.1:1", connect=Answers)
    series = cache.history("q", now_s=END, history_s=86400, step_s=STEP, stale_after_s=300, ceiling=10 * 80 * 1000)
    assert series.dropped == {"negative": 1, "future": 1, "implausible": 1}
    assert series.last_s == END  # the sample thirty years ahead did not make the history "fresh"
    held = series.values[np.isin(series.times_s, [END - 10 * STEP, END - 5 * STEP])]
    assert all(math.isnan(v) for v in held)
    known = series.values[~np.isnan(series.values)]
    assert known.min() >= 0 and known.max() == 1000.0
