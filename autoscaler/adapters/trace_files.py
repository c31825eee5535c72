"""Load traces: a CSV of ``timestamp,value`` samples at a regular step, or an export as it comes.

Besides ``timestamp,value``: any header with a time column (``timestamp``, ``time``, ``ts``, ``date``,
``datetime``, or ``--time-column``) and a value column (``value``, the only other column, or
``--value-column``), as Grafana's CSV export (``"Time","sum(srs_clients)"``, an optional
``sep=,`` line) and hand-made files (``time,viewers``) have them; timestamps as dates or as epoch
seconds or milliseconds (told apart by their size, or ``--epoch s|ms``); and a Prometheus
``query_range`` answer saved as JSON (``.json``: its series summed, as the controller sums them).

Owns the validation of trace files (one error naming the row for unparseable lines, timestamps
that go back or repeat, negative values, an irregular step). Real exports have gaps: missing rows,
empty values, ``NaN``. They are read as *missing* samples (NaN on the regular grid), never as
zeros and never filled in: every strategy holds through them as the controller does on missing
metrics, and the figures count only the minutes with data. ``strict=True`` refuses them instead.
Timestamps with an offset or ``Z`` are converted to the zone's wall clock; the hour a DST
fall-back repeats holds the mean of both passes (a rate measured over two real hours shown as
one), not a false "goes back in time". Never reorders data silently.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from autoscaler.core.timezones import parse_aware, wall_seconds
from autoscaler.core.trace import MAX_SAMPLES, MAX_VALUE, Trace
from autoscaler.errors import InputError


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file, transparently gunzipping ``*.gz``; a UTF-8 byte-order mark (spreadsheets
    write one) is read as nothing, never as part of the first column's name."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


_MISSING = {"", "nan", "na", "null", "none"}

#: the names a time column goes by when --time-column does not name it
TIME_NAMES = ("timestamp", "time", "ts", "date", "datetime")
_EPOCH = re.compile(r"\d+(\.\d+)?")
#: an epoch timestamp above this is in milliseconds (1e11 s is the year 5138; 1e11 ms is 1973)
_MS_ABOVE = 1e11


@dataclass(frozen=True)
class TraceFormat:
    """How to read a trace's columns: by name (None: found by ``TIME_NAMES`` / ``value`` / the other
    column), and the unit of epoch timestamps (``auto``: by their size)."""

    time_column: str | None = None
    value_column: str | None = None
    epoch: str = "auto"

    def __post_init__(self) -> None:
        if self.epoch not in ("auto", "s", "ms"):
            raise InputError("--epoch", f"unknown unit {self.epoch!r}", "use auto, s or ms")

    def columns(self, header: list[str], label: str) -> tuple[int, int]:
        """The time column's index and the value column's, or the header named with the fix."""
        names = ", ".join(map(repr, header))
        if self.time_column is not None:
            if self.time_column.lower() not in header:
                raise InputError("--time-column", f"no column {self.time_column!r} in {label}", f"its columns: {names}")
            t_col = header.index(self.time_column.lower())
        else:
            found = [header.index(n) for n in TIME_NAMES if n in header]
            if not found:
                raise InputError(f"{label} header", f"no time column among {names}", "name it with --time-column (or call it timestamp)")
            t_col = found[0]
        if self.value_column is not None:
            if self.value_column.lower() not in header:
                raise InputError("--value-column", f"no column {self.value_column!r} in {label}", f"its columns: {names}")
            return t_col, header.index(self.value_column.lower())
        if "value" in header:
            return t_col, header.index("value")
        others = [i for i, h in enumerate(header) if i != t_col]
        if len(others) != 1:
            raise InputError(f"{label} header", f"which of {', '.join(repr(header[i]) for i in others)} is the demand?", "name it with --value-column")
        return t_col, others[0]

    def stamp(self, text: str, zone: ZoneInfo, field: str) -> datetime:
        """A timestamp: epoch seconds or milliseconds, or a date (``parse_aware``), in ``zone``."""
        raw = text.strip()
        if _EPOCH.fullmatch(raw):
            value = float(raw)
            millis = self.epoch == "ms" or (self.epoch == "auto" and value > _MS_ABOVE)
            try:
                return datetime.fromtimestamp(value / 1000 if millis else value, UTC).astimezone(zone)
            except (OverflowError, OSError, ValueError):
                raise InputError(field, f"{raw!r} is not an epoch time", "seconds or milliseconds since 1970 (--epoch s|ms)") from None
        return parse_aware(raw, zone, field=field).astimezone(zone)


def load_trace(path: str | Path, zone: ZoneInfo, *, strict: bool = False, fmt: TraceFormat = TraceFormat()) -> Trace:
    """Read and validate a trace file; raise ``InputError`` naming the row at fault.

    Missing rows and empty or NaN values become missing samples (``strict``: refused)."""
    path = Path(path)
    label = f"trace {path.name}"
    if not path.is_file():
        raise InputError("--trace", f"no such file {str(path)!r}", "give the path of a timestamp,value CSV")
    if path.name.removesuffix(".gz").endswith(".json"):
        return _prometheus_json(path, zone, label, strict)
    samples = _Samples()
    with open_text(path) as handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip().lower() for h in next(reader)]
            if header and header[0].startswith("sep="):  # Grafana's hint to spreadsheets
                header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise InputError(label, "file is empty", "expected a header timestamp,value and rows") from None
        except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
            raise InputError(label, f"cannot read file ({exc})", "expected a CSV text file, or a .csv.gz of one") from None
        t_col, v_col = fmt.columns(header, label)
        try:
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                where = f"{label} line {reader.line_num}"
                if len(row) <= max(t_col, v_col):
                    raise InputError(where, f"expected {len(header)} columns, got {len(row)}", f"each row has the header's columns: {', '.join(header)}")
                local = fmt.stamp(row[t_col], zone, f"{where} timestamp")
                samples.add(local, _value(row[v_col], where, strict), reader.line_num, where, row[t_col])
        except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
            raise InputError(f"{label} line {reader.line_num}", f"cannot read row ({exc})", "expected a CSV text file, or a .csv.gz of one") from None
    return samples.on_grid(path.name, label, strict)


def _prometheus_json(path: Path, zone: ZoneInfo, label: str, strict: bool) -> Trace:
    """A Prometheus ``query_range`` answer (``curl .../api/v1/query_range?...``, saved whole, or its
    ``data``): a matrix whose series are summed per timestamp."""
    from autoscaler.adapters import yamlsafe

    try:
        with open_text(path) as handle:
            doc = json.loads(handle.read(yamlsafe.MAX_BYTES + 1))
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(label, f"cannot read JSON ({exc})", "save the query_range answer as it comes") from None
    data = doc.get("data", doc) if isinstance(doc, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list) or (isinstance(data, dict) and data.get("resultType", "matrix") != "matrix"):
        raise InputError(label, "is not a Prometheus range answer (data.resultType matrix, data.result)", "save what /api/v1/query_range answers")
    summed: dict[float, float] = {}
    for k, item in enumerate(result):
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list):
            raise InputError(f"{label} result[{k}]", "has no values", "a range answer's series carry values")
        for pair in values:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise InputError(f"{label} result[{k}]", f"{pair!r} is not [time, value]", "save the answer as Prometheus gives it")
            value = _value(str(pair[1]), f"{label} result[{k}] at {pair[0]}", strict)
            summed[float(pair[0])] = summed.get(float(pair[0]), 0.0) + value
    samples = _Samples()
    for n, ts in enumerate(sorted(summed)):
        samples.add(datetime.fromtimestamp(ts, UTC).astimezone(zone), summed[ts], n + 1, f"{label} time {ts:g}", f"{ts:g}")
    return samples.on_grid(path.name, label, strict)


def _value(raw: str, where: str, strict: bool) -> float:
    """A sample's value: a number >= 0, or NaN where it is missing (``strict``: refused)."""
    text = raw.strip()
    if text.lower() in _MISSING:
        if strict:
            raise InputError(f"{where} value", f"missing value {text!r}", "fill the gap, or drop --strict to read it as missing")
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where} value", f"not a number: {raw!r}", "values are numbers >= 0 (or empty where missing)") from None
    if not math.isfinite(value) or value < 0 or value > MAX_VALUE:
        raise InputError(f"{where} value", f"{raw!r} is negative, not finite or above {MAX_VALUE:g}", "values are numbers >= 0")
    return value


class _Samples:
    """The samples read so far, in wall-clock seconds of the trace's zone, with the file line of each."""

    def __init__(self) -> None:
        self.times: list[int] = []
        self.values: list[float] = []
        self.lines: list[int] = []
        self.folded: dict[int, int] = {}  # wall second -> count of samples merged into it (DST fall-back)

    def add(self, local: datetime, value: float, line: int, where: str, stamp: str) -> None:
        times, values = self.times, self.values
        seconds = wall_seconds(local.replace(tzinfo=None))
        if times and seconds <= times[-1] and local.fold and seconds in self.folded:
            # the second pass through the hour a DST fall-back repeats: one wall-clock slot
            k = times.index(seconds, max(0, len(times) - 400))
            n = self.folded[seconds]
            if math.isfinite(value):
                values[k] = value if math.isnan(values[k]) else (values[k] * n + value) / (n + 1)
            self.folded[seconds] = n + 1
            return
        if times and seconds == times[-1]:
            raise InputError(f"{where} timestamp", f"duplicate timestamp {stamp!r}", "keep one sample per timestamp")
        if times and seconds < times[-1]:
            raise InputError(f"{where} timestamp", f"{stamp!r} goes back in time", "sort the trace by timestamp")
        times.append(seconds)
        self.lines.append(line)
        values.append(value)
        self.folded[seconds] = 1

    def on_grid(self, name: str, label: str, strict: bool) -> Trace:
        """The samples on their regular step (the median one), NaN where a row is missing."""
        times, lines = self.times, self.lines
        if len(times) < 3:
            raise InputError(label, f"only {len(times)} samples", "a backtest needs at least three samples")
        times_s = np.asarray(times, dtype=np.int64)
        deltas = np.diff(times_s)
        step_s = int(np.median(deltas))
        if step_s <= 0:
            raise InputError(label, "timestamps do not advance", "one sample per step")
        off_grid = np.flatnonzero(deltas % step_s != 0)
        if off_grid.size:
            i = int(off_grid[0])
            problem = f"irregular step: {deltas[i]} s after the previous sample, the trace's step is {step_s} s"
            raise InputError(f"{label} line {lines[i + 1]}", problem, "resample the trace to a regular step")
        gaps = np.flatnonzero(deltas != step_s)
        if gaps.size and strict:
            i = int(gaps[0])
            problem = f"gap: {deltas[i]} s after the previous sample, the trace's step is {step_s} s"
            raise InputError(f"{label} line {lines[i + 1]}", problem, "fill or cut the gap, or drop --strict to read it as missing samples")
        steps = int((times_s[-1] - times_s[0]) // step_s) + 1
        if steps > MAX_SAMPLES:  # counted before anything is allocated for it
            raise InputError(label, f"spans {steps:,} steps of {step_s} s", f"at most {MAX_SAMPLES:,}: resample to a coarser step or cut the trace")
        grid = np.arange(times_s[0], times_s[-1] + step_s, step_s, dtype=np.int64)
        out = np.full(len(grid), np.nan)
        out[(times_s - times_s[0]) // step_s] = self.values
        if not np.isfinite(out).any():
            raise InputError(label, "has no value at all", "a trace needs numbers")
        return Trace(name=name, times_s=grid, values=out, step_s=step_s)
