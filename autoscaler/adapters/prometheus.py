"""Prometheus adapter: the demand history of each policy, cached and extended incrementally.

The first cycle fetches the whole history window (in chunks: a range query over 11,000 points is
refused); every later cycle asks only for the samples after the last one it has, so a cycle costs
at most one range query per policy. The series is kept on a regular grid (a point Prometheus did
not return is NaN: missing, never the previous value held) because the forecaster wants one.

It must never make a bad answer look like data: an unreachable or slow server, an error, an empty
result or a series whose newest sample is too old all surface as ``MetricsUnavailable``, and
the controller then holds capacity where it is.

Label values that come from custom resources are escaped before they reach PromQL
(``render_query``).
"""

from __future__ import annotations

from autoscaler.errors import MetricsUnavailable, clip

import math
import threading
from datetime import datetime, UTC
from collections.abc import Callable

import numpy as np

MAX_POINTS = 10_000


def escape_label_value(value: str) -> str:
    """Escape a value for a PromQL double-quoted string."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_query(template: str, **values: str) -> str:
    """Replace ``${name}`` placeholders with escaped label values."""
    out = template
    for key, value in values.items():
        out = out.replace("${" + key + "}", escape_label_value(value))
    return out


class Series:
    """A history on a regular grid. Its times are kept as a start and a count, not an array: a
    controller caching 5,000 policies' histories would otherwise hold 60 MB of timestamps."""

    def __init__(self, step_s: int, times_s: np.ndarray | None = None, values: np.ndarray | None = None, dropped: dict[str, int] | None = None) -> None:
        self.step_s = step_s
        self.values = values if values is not None else np.zeros(0)
        self.times_s = times_s if times_s is not None else np.zeros(0, dtype=np.int64)
        #: samples the last fetch held as missing, by why (negative, future, implausible)
        self.dropped: dict[str, int] = dropped or {}

    @property
    def times_s(self) -> np.ndarray:
        if self._irregular is not None:
            return self._irregular
        return self._start + np.arange(self._count, dtype=np.int64) * self.step_s

    @times_s.setter
    def times_s(self, times: np.ndarray) -> None:
        times = np.asarray(times, dtype=np.int64)
        self._count = len(times)
        self._start = int(times[0]) if len(times) else 0
        regular = len(times) < 2 or int(times[-1]) - self._start == (len(times) - 1) * self.step_s
        self._irregular = None if regular else times

    @property
    def last_s(self) -> int | None:
        return self._start + (self._count - 1) * self.step_s if self._count and self._irregular is None else (int(self._irregular[-1]) if self._irregular is not None and len(self._irregular) else None)


def _why(exc: Exception) -> str:
    """What went wrong with a query, in a few words (the transport's own text runs long)."""
    text = str(exc)
    for needle, said in (("timed out", "timed out"), ("Timeout", "timed out"), ("Connection refused", "connection refused"), ("Name or service not known", "unknown host"), ("NameResolution", "unknown host")):
        if needle in text:
            return f"{said} ({type(exc).__name__})"
    return f"{type(exc).__name__}: {clip(text, 200)}"


class HistoryCache:
    """Per-query history from one Prometheus server."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        verify_tls: bool | str = True,
        timeout_s: float = 10.0,
        connect: Callable | None = None,
    ) -> None:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        # small incremental answers: gzip costs both ends more than it saves in-cluster (measured
        # 1.7 ms vs 1.0 ms per query against a local Prometheus)
        headers = {"Accept-Encoding": "identity"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # one quick retry: a down Prometheus must not stall the cycle (the policy holds instead)
        retry = Retry(total=1, backoff_factor=0.1, status_forcelist=[502, 503, 504], allowed_methods=["GET", "POST"])
        self._prom = (connect or PrometheusConnect)(
            url=url, headers=headers, disable_ssl=verify_tls is False, timeout=timeout_s, retry=retry
        )
        if isinstance(verify_tls, str):
            self._prom._session.verify = verify_tls
        # no proxy or netrc lookups from the environment on every request (measured: a fifth of
        # the client's time per query); the CA is given explicitly with --prometheus-ca
        self._prom._session.trust_env = False
        self._series: dict[tuple[str, int], Series] = {}
        self.queries = 0
        self._lock = threading.Lock()

    def reset_count(self) -> None:
        self.queries = 0

    def _range(self, query: str, start_s: int, end_s: int, step_s: int, dropped: dict[str, int]) -> dict[int, float]:
        with self._lock:
            self.queries += 1
        try:
            result = self._prom.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(start_s, tz=UTC),
                end_time=datetime.fromtimestamp(end_s, tz=UTC),
                step=f"{step_s}s",
            )
        except Exception as exc:  # connection refused, timeout, HTTP 4xx/5xx from the library
            raise MetricsUnavailable(f"Prometheus query failed: {_why(exc)}") from None
        points: dict[int, float] = {}
        for series in result or []:
            for ts, raw in series.get("values", []):
                try:
                    value = float(raw)
                except (TypeError, ValueError):
                    continue
                if not math.isfinite(value):
                    continue
                key = int(round(float(ts)))
                # demand is never negative and never stamped after the range asked for: such a
                # sample is a broken exporter or a wrong clock, held as missing, never acted on
                if value < 0 or key > end_s:
                    why = "negative" if value < 0 else "future"
                    dropped[why] = dropped.get(why, 0) + 1
                    continue
                points[key] = points.get(key, 0.0) + value  # several series: their sum
        return points

    def last_known(self, query: str, step_s: int) -> Series | None:
        """What the cache holds for a query, however old (None when it never got a sample)."""
        series = self._series.get((query, step_s))
        return series if series is not None and series.last_s is not None else None

    @staticmethod
    def _first_missing(series: Series | None, end: int, history_s: int, step_s: int) -> int:
        """The first sample to fetch: after the newest cached one, never before the window."""
        window = end - history_s // step_s * step_s
        return window if series is None or series.last_s is None else max(series.last_s + step_s, window)

    def cost(self, query: str, *, now_s: float, history_s: int, step_s: int) -> int:
        """The range queries ``history`` would send now (0 when the cache is current)."""
        end = int(now_s) // step_s * step_s
        start = self._first_missing(self._series.get((query, step_s)), end, history_s, step_s)
        return 0 if start > end else -(-((end - start) // step_s + 1) // MAX_POINTS)

    def history(
        self, query: str, *, now_s: float, history_s: int, step_s: int, stale_after_s: int, ceiling: float | None = None, progress: Callable[[float], None] | None = None
    ) -> Series:
        """The series up to ``now_s``; raises ``MetricsUnavailable`` when it is missing or stale.

        Data sanity: a negative sample, one stamped in the future, and one above ``ceiling`` (what
        the policy could ever serve, many times over: an absurd spike) are held as missing and
        counted in ``Series.dropped``. ``progress`` hears the share fetched after each range query."""
        key = (query, step_s)
        end = int(now_s) // step_s * step_s
        series = self._series.get(key)
        start = self._first_missing(series, end, history_s, step_s)
        points: dict[int, float] = {}
        dropped: dict[str, int] = {}
        if start <= end:
            chunk = MAX_POINTS * step_s
            lo = start
            while lo <= end:
                hi = min(end, lo + chunk - step_s)
                points.update(self._range(query, lo, hi, step_s, dropped))
                lo = hi + step_s
                if progress is not None:
                    progress(min(1.0, (lo - start) / (end - start + step_s)))
        if ceiling is not None:
            spikes = [t for t, v in points.items() if v > ceiling]
            for t in spikes:
                del points[t]
            if spikes:
                dropped["implausible"] = len(spikes)
        if series is None:
            series = Series(step_s=step_s)
            self._series[key] = series
        series.dropped = dropped
        if points:
            new_times = np.array(sorted(points), dtype=np.int64)
            new_values = np.array([points[t] for t in new_times])
            times = np.concatenate([series.times_s, new_times])
            values = np.concatenate([series.values, new_values])
            grid = np.arange(times[0], times[-1] + step_s, step_s, dtype=np.int64)
            idx = np.searchsorted(times, grid, side="right") - 1
            # a point Prometheus did not return is missing, never the previous value held
            series.times_s, series.values = grid, np.where(times[idx] == grid, values[idx], np.nan)
            keep = series.times_s > end - history_s
            series.values = series.values[keep]
            series.times_s = grid[keep]
        if series.last_s is None:
            raise MetricsUnavailable("Prometheus returned no samples for the query")
        if now_s - series.last_s > stale_after_s:
            raise MetricsUnavailable(f"newest sample is {int(now_s - series.last_s)} s old (stale after {stale_after_s} s)")
        return series
