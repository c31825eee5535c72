"""`peakscale promo review`: after a promotion, plan against what happened, and what was recorded."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import yaml
from typer.testing import CliRunner

from autoscaler.cli import app
from tests.builders import edge_policy

runner = CliRunner()
START = datetime(2026, 11, 8)


def cli(*args, calendar=None):
    env = {"PEAKSCALE_CALENDAR": str(calendar)} if calendar else {}
    return runner.invoke(app, list(args), env=env)


def surging_trace(tmp_path, factor=4.0):
    """Three days at 1 min, 1,000 at night to 2,000 by day, and a x``factor`` surge on day 3 20:00-22:00."""
    times = [START + timedelta(minutes=m) for m in range(3 * 1440)]
    event_start, event_end = START + timedelta(days=2, hours=20), START + timedelta(days=2, hours=22)
    lines = ["timestamp,value"]
    for t in times:
        base = 1500 + 500 * np.sin((t.hour + t.minute / 60 - 8) / 24 * 2 * np.pi)
        ramp = min(1.0, max(0.0, (t - event_start).total_seconds() / 600))
        value = base * (1 + (factor - 1) * ramp) if event_start <= t < event_end else base
        lines.append(f"{t:%Y-%m-%d %H:%M},{value:.1f}")
    path = tmp_path / "trace.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, event_start, event_end


def policies_file(tmp_path):
    path = tmp_path / "policies.yaml"
    path.write_text(
        yaml.safe_dump(edge_policy({"peakscale.io/tier": "edge"}))
    )
    return path


def test_review_offline_from_a_trace_and_record_into_the_file_store(tmp_path):
    trace, start, end = surging_trace(tmp_path)
    cal = tmp_path / "calendar.yaml"
    added = cli("promo", "add", "kol-live", "--allow-past", "--start", f"{start:%Y-%m-%d %H:%M}", "--end", f"{end:%Y-%m-%d %H:%M}", "--tz", "UTC", "--kind", "kol-live", "--multiplier", "3", "--targets", "peakscale.io/tier=edge", calendar=cal)
    assert added.exit_code == 0, added.output
    args = ["promo", "review", "kol-live", "--trace", str(trace), "--policies", str(policies_file(tmp_path)), "--tz", "UTC", "-o", "json"]
    done = cli(*args, calendar=cal)
    assert done.exit_code == 0, done.output
    review = json.loads(done.stdout)["policies"][0]
    # a x3 guess over ~1,500 at 20:00 is ready at the start; the surge (x4) takes the plan above it
    assert review["ready_at_start"] >= 3 * 1500 / 70 * 0.95
    assert review["planned_peak"] > review["ready_at_start"] and review["asked_at"] > f"{start:%Y-%m-%d %H:%M}"
    assert 4 * 1400 <= review["observed_peak"] <= 4 * 2000
    assert review["forecast_peak"] > 3 * 1400
    assert review["short_minutes"] < 30 and review["missing_minutes"] == 0
    assert review["recorded"]["stored"] is False and 3.0 <= review["recorded"]["peak_uplift"] <= 5.0
    # --record keeps it under the promotion in the calendar file; the next review shows it stored
    assert cli(*args, "--record", calendar=cal).exit_code == 0
    stored = yaml.safe_load(cal.read_text())["events"][0]["memory"]
    assert stored[0]["policy"] == "edge" and stored[0]["peakUplift"] == review["recorded"]["peak_uplift"]
    again = json.loads(cli(*args, calendar=cal).stdout)["policies"][0]
    assert again["recorded"]["stored"] is True
    # and promo export carries it, so next year's import brings the memory along
    exported = yaml.safe_load(cli("promo", "export", calendar=cal).stdout)
    assert exported["events"][0]["memory"] == stored


def test_review_names_a_promotion_that_selects_no_policy(tmp_path):
    trace, start, end = surging_trace(tmp_path)
    cal = tmp_path / "calendar.yaml"
    cli("promo", "add", "nobody", "--allow-past", "--start", f"{start:%Y-%m-%d %H:%M}", "--duration", "1h", "--tz", "UTC", "--kind", "x", "--targets", "peakscale.io/tier=cache", calendar=cal)
    done = cli("promo", "review", "nobody", "--trace", str(trace), "--policies", str(policies_file(tmp_path)), calendar=cal)
    assert done.exit_code == 2 and "selects no ScalingPolicy" in done.output and "peakscale.io/tier=edge" in done.output


def test_review_reads_a_trace_as_it_comes_like_plan_and_backtest(tmp_path):
    """A trace with its own column names and epoch milliseconds, named by the same options as
    backtest's and plan's, gives the review the project's own CSV gives."""
    from calendar import timegm

    trace, start, end = surging_trace(tmp_path)
    rows = [line.split(",") for line in trace.read_text().splitlines()[1:]]
    other = tmp_path / "export.csv"
    other.write_text("when,viewers\n" + "".join(f"{timegm(datetime.strptime(t, '%Y-%m-%d %H:%M').timetuple()) * 1000},{v}\n" for t, v in rows))
    cal = tmp_path / "calendar.yaml"
    added = cli("promo", "add", "kol-live", "--allow-past", "--start", f"{start:%Y-%m-%d %H:%M}", "--end", f"{end:%Y-%m-%d %H:%M}", "--tz", "UTC", "--kind", "kol-live", "--multiplier", "3", calendar=cal)
    assert added.exit_code == 0, added.output
    base = ["promo", "review", "kol-live", "--policies", str(policies_file(tmp_path)), "--tz", "UTC", "-o", "json"]
    refused = cli(*base, "--trace", str(other), calendar=cal)
    assert refused.exit_code == 2 and "no time column among 'when', 'viewers'" in refused.output
    done = cli(*base, "--trace", str(other), "--time-column", "when", "--value-column", "viewers", "--epoch", "ms", calendar=cal)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == json.loads(cli(*base, "--trace", str(trace), calendar=cal).stdout)
