"""Traces read as they come: Grafana's CSV export, a hand-made ``time,viewers``, epoch seconds or
milliseconds, a Prometheus ``query_range`` answer saved as JSON, columns named by option; and
``peakscale trace pull`` writing a trace from a real Prometheus that reads back as its samples."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from typer.testing import CliRunner

from autoscaler.adapters.trace_files import TraceFormat, load_trace
from autoscaler.cli import app
from autoscaler.core.timezones import get_zone
from autoscaler.errors import InputError
from tests.conftest import METRIC, STEP, demand_at

UTC_ZONE = get_zone("UTC")
T0 = 1_780_000_000 // 60 * 60  # a minute boundary in 2026
VALUES = [5.0, 7.0, 6.5, 9.0]


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def reference():
    """The same four minutes as the project's own timestamp,value."""
    return [(iso(T0 + 60 * k), v) for k, v in enumerate(VALUES)]


@pytest.mark.parametrize(
    "name, text, fmt",
    [
        ("grafana.csv", 'sep=,\n"Time","sum(srs_clients)"\n' + "".join(f"{(T0 + 60 * k) * 1000},{v}\n" for k, v in enumerate(VALUES)), TraceFormat()),
        ("viewers.csv", "time,viewers\n" + "".join(f"{iso(T0 + 60 * k)},{v}\n" for k, v in enumerate(VALUES)), TraceFormat()),
        ("epoch-s.csv", "ts,value\n" + "".join(f"{T0 + 60 * k},{v}\n" for k, v in enumerate(VALUES)), TraceFormat()),
        ("named.csv", "when,host,qps\n" + "".join(f"{T0 + 60 * k},a,{v}\n" for k, v in enumerate(VALUES)), TraceFormat(time_column="when", value_column="qps", epoch="s")),
    ],
)
def test_an_export_reads_as_the_same_trace(tmp_path, name, text, fmt):
    mine = tmp_path / "mine.csv"
    mine.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in reference()))
    path = tmp_path / name
    path.write_text(text)
    got, want = load_trace(path, UTC_ZONE, fmt=fmt), load_trace(mine, UTC_ZONE)
    assert got.step_s == want.step_s == 60
    assert np.array_equal(got.times_s, want.times_s) and np.array_equal(got.values, want.values)


def test_a_prometheus_range_answer_is_its_series_summed(tmp_path):
    series = [{"metric": {"pod": p}, "values": [[T0 + 60 * k, str(v / 2)] for k, v in enumerate(VALUES)]} for p in ("a", "b")]
    path = tmp_path / "answer.json"
    path.write_text(json.dumps({"status": "success", "data": {"resultType": "matrix", "result": series}}))
    trace = load_trace(path, UTC_ZONE)
    assert trace.values.tolist() == VALUES and int(trace.times_s[0]) == T0


@pytest.mark.parametrize(
    "text, fmt, words",
    [
        ("time,a,b\n", TraceFormat(), "which of 'a', 'b' is the demand?"),
        ("when,value\n", TraceFormat(), "no time column among 'when', 'value'"),
        ("time,value\n", TraceFormat(time_column="at"), "--time-column: no column 'at'"),
        ("time,value\n", TraceFormat(value_column="qps"), "--value-column: no column 'qps'"),
    ],
)
def test_a_column_that_is_not_there_is_named_with_the_columns_that_are(tmp_path, text, fmt, words):
    path = tmp_path / "t.csv"
    path.write_text(text + f"{T0},1\n")
    with pytest.raises(InputError, match=words.replace("?", r"\?")):
        load_trace(path, UTC_ZONE, fmt=fmt)


def test_an_unknown_epoch_unit_is_refused():
    with pytest.raises(InputError, match="--epoch"):
        TraceFormat(epoch="us")


def test_backtest_takes_the_column_options(tmp_path):
    path = tmp_path / "named.csv"
    rows = [(T0 + 60 * k, 1000 + 200 * np.sin(k / 60)) for k in range(3 * 1440)]
    path.write_text("when,qps\n" + "".join(f"{t},{v:.2f}\n" for t, v in rows))
    args = ["backtest", "--trace", str(path), "--capacity-per-replica", "100", "--lead-time", "2m", "--history-window", "1d", "--strategies", "reactive", "-o", "json"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "no time column among 'when', 'qps'" in refused.output
    done = CliRunner().invoke(app, [*args, "--time-column", "when", "--value-column", "qps"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["trace"] == "named.csv"


def test_trace_pull_writes_what_prometheus_holds(prometheus, history_window, tmp_path):
    start, end = history_window
    out = tmp_path / "pulled.csv"
    frm, to = datetime.fromtimestamp(end - 86400, UTC), datetime.fromtimestamp(end, UTC)
    run = CliRunner().invoke(
        app,
        ["trace", "pull", "--prometheus-url", prometheus.url, "--query", f"sum({METRIC})", "--from", f"{frm:%Y-%m-%d %H:%M}", "--to", f"{to:%Y-%m-%d %H:%M}", "--tz", "UTC", "--out", str(out)],
    )
    assert run.exit_code == 0, run.output
    trace = load_trace(out, UTC_ZONE)
    assert trace.step_s == STEP and len(trace.values) >= 1439
    # each row is the period that starts at its timestamp: Prometheus' sample at its end
    expected = np.array([round(demand_at(int(t) + STEP), 3) for t in trace.times_s])
    assert np.allclose(trace.values, expected)
    assert f"wrote {out}" in run.stdout
