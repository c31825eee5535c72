"""Load traces: a CSV of ``timestamp,value`` samples at a regular step.

Owns the validation of trace files (one error naming the row for unparseable lines, timestamps
that go back or repeat, negative values and gaps). Never fills or reorders data silently: a
backtest on a repaired trace would measure something else than the user thinks.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoscaler.errors import InputError
from autoscaler.timezones import parse_timestamp, wall_seconds
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Trace:
    """A regular series: ``times_s`` in wall-clock seconds, ``values`` >= 0, fixed ``step_s``."""

    name: str
    times_s: np.ndarray
    values: np.ndarray
    step_s: int

    def __len__(self) -> int:
        return len(self.values)


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file, transparently gunzipping ``*.gz``."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def load_trace(path: str | Path, zone: ZoneInfo) -> Trace:
    """Read and validate a trace file; raise ``InputError`` naming the row at fault."""
    path = Path(path)
    label = f"trace {path.name}"
    if not path.is_file():
        raise InputError("--trace", f"no such file {str(path)!r}", "give the path of a timestamp,value CSV")
    times: list[int] = []
    values: list[float] = []
    lines: list[int] = []
    with open_text(path) as handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise InputError(label, "file is empty", "expected a header timestamp,value and rows") from None
        except (UnicodeDecodeError, csv.Error, OSError) as exc:
            raise InputError(label, f"cannot read file ({exc})", "expected a CSV text file") from None
        if "timestamp" not in header or "value" not in header:
            raise InputError(f"{label} header", f"columns {header!r} lack timestamp and value", "first line must be timestamp,value")
        t_col, v_col = header.index("timestamp"), header.index("value")
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                where = f"{label} line {line}"
                if len(row) <= max(t_col, v_col):
                    raise InputError(where, f"expected {len(header)} columns, got {len(row)}", "each row is timestamp,value")
                stamp = parse_timestamp(row[t_col], zone, field=f"{where} timestamp")
                try:
                    value = float(row[v_col])
                except ValueError:
                    raise InputError(f"{where} value", f"not a number: {row[v_col]!r}", "values are numbers >= 0") from None
                if not math.isfinite(value) or value < 0:
                    raise InputError(f"{where} value", f"{row[v_col]!r} is negative or not finite", "values are numbers >= 0")
                seconds = wall_seconds(stamp)
                if times:
                    if seconds == times[-1]:
                        raise InputError(f"{where} timestamp", f"duplicate timestamp {row[t_col]!r}", "keep one sample per timestamp")
                    if seconds < times[-1]:
                        raise InputError(f"{where} timestamp", f"{row[t_col]!r} goes back in time", "sort the trace by timestamp")
                times.append(seconds)
                lines.append(line)
                values.append(value)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"{label} line {reader.line_num}", f"cannot read row ({exc})", "expected a CSV text file") from None
    if len(times) < 3:
        raise InputError(label, f"only {len(times)} samples", "a backtest needs at least three samples")
    times_s = np.asarray(times, dtype=np.int64)
    deltas = np.diff(times_s)
    step_s = int(np.median(deltas))
    bad = np.flatnonzero(deltas != step_s)
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"{label} line {lines[i + 1]}",
            f"gap or irregular step: {deltas[i]} s after the previous sample, the trace's step is {step_s} s",
            "resample the trace to a regular step and fill or cut the gap",
        )
    return Trace(name=path.name, times_s=times_s, values=np.asarray(values, dtype=np.float64), step_s=step_s)
