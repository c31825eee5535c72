"""Load traces: a CSV of ``timestamp,value`` samples at a regular step.

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
import math
from datetime import datetime
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


def load_trace(path: str | Path, zone: ZoneInfo, *, strict: bool = False) -> Trace:
    """Read and validate a trace file; raise ``InputError`` naming the row at fault.

    Missing rows and empty or NaN values become missing samples (``strict``: refused)."""
    path = Path(path)
    label = f"trace {path.name}"
    if not path.is_file():
        raise InputError("--trace", f"no such file {str(path)!r}", "give the path of a timestamp,value CSV")
    samples = _Samples()
    with open_text(path) as handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise InputError(label, "file is empty", "expected a header timestamp,value and rows") from None
        except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
            raise InputError(label, f"cannot read file ({exc})", "expected a CSV text file, or a .csv.gz of one") from None
        if "timestamp" not in header or "value" not in header:
            raise InputError(f"{label} header", f"columns {header!r} lack timestamp and value", "first line must be timestamp,value")
        t_col, v_col = header.index("timestamp"), header.index("value")
        try:
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                where = f"{label} line {reader.line_num}"
                if len(row) <= max(t_col, v_col):
                    raise InputError(where, f"expected {len(header)} columns, got {len(row)}", "each row is timestamp,value")
                local = parse_aware(row[t_col], zone, field=f"{where} timestamp").astimezone(zone)
                samples.add(local, _value(row[v_col], where, strict), reader.line_num, where, row[t_col])
        except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
            raise InputError(f"{label} line {reader.line_num}", f"cannot read row ({exc})", "expected a CSV text file, or a .csv.gz of one") from None
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
