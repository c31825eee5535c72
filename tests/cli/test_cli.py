"""The CLI as users meet it: in-process for speed, as a subprocess for exit codes and streams."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from autoscaler.cli import app

runner = CliRunner()
GOOD_TRACE = "timestamp,value\n" + "".join(f"2026-11-11 00:{m:02d}:00,{100 + 10 * m}\n" for m in range(40))


def peakscale(*args):
    return subprocess.run([sys.executable, "-m", "autoscaler.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def trace_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(GOOD_TRACE)
    return path


def test_backtest_json_on_a_small_trace(trace_file):
    result = runner.invoke(app, ["backtest", "--trace", str(trace_file), "--capacity-per-replica", "50", "--lead-time", "2m", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["trace"] == "t.csv"
    assert doc["scenario"]["lead_time_s"] == 120
    assert set(doc["strategies"]) == {"reactive", "schedule", "history", "peakscale", "peakscale-scale", "oracle"}
    assert doc["strategies"]["oracle"]["all"]["unserved_fraction"] == 0.0


def test_strategies_can_be_chosen(trace_file):
    result = runner.invoke(app, ["backtest", "--trace", str(trace_file), "--capacity-per-replica", "50", "--strategies", "reactive,oracle", "--json"])
    assert set(json.loads(result.stdout)["strategies"]) == {"reactive", "oracle"}


def test_table_names_every_strategy_and_plot_is_a_png(trace_file, tmp_path):
    plot = tmp_path / "out.png"
    result = runner.invoke(app, ["backtest", "--trace", str(trace_file), "--capacity-per-replica", "50", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    for name in ("reactive", "schedule", "history", "peakscale", "oracle"):
        assert name in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


BAD_OPTIONS = [
    (["--capacity-per-replica", "0"], "--capacity-per-replica"),
    (["--capacity-per-replica", "50", "--min-replicas", "9", "--max-replicas", "3"], "--min-replicas"),
    (["--capacity-per-replica", "50", "--target-utilization", "1.5"], "--target-utilization"),
    (["--capacity-per-replica", "50", "--target-utilization", "0"], "--target-utilization"),
    (["--capacity-per-replica", "50", "--tz", "Mars/Olympus"], "--tz"),
    (["--capacity-per-replica", "50", "--lead-time", "soon"], "--lead-time"),
    (["--capacity-per-replica", "50", "--strategies", "magic"], "--strategies"),
    (["--capacity-per-replica", "50", "--kinds", "nonexistent"], "--kinds"),
    (["--capacity-per-replica", "50", "--plot", "out.jpg"], "--plot"),
    ([], "--capacity-per-replica"),
]


@pytest.mark.parametrize("extra, field", BAD_OPTIONS)
def test_nonsensical_options_exit_2_naming_the_field(trace_file, tmp_path, extra, field):
    events = tmp_path / "t.events.csv"
    events.write_text("start,end,name,kind\n2026-11-11 00:10,2026-11-11 00:20,promo,flash-sale\n")
    result = runner.invoke(app, ["backtest", "--trace", str(trace_file), *extra])
    assert result.exit_code == 2
    assert field in result.stderr
    assert "Traceback" not in result.output


BAD_FILES = [
    ("timestamp,value\n2026-11-11 00:00,1\nnope,2\n2026-11-11 00:02,3\n", None, "line 3"),
    ("timestamp,value\n2026-11-11 00:00,1\n2026-11-11 00:00,2\n2026-11-11 00:01,3\n", None, "duplicate"),
    ("timestamp,value\n2026-11-11 00:01,1\n2026-11-11 00:00,2\n2026-11-11 00:02,3\n", None, "back in time"),
    ("timestamp,value\n2026-11-11 00:00,1\n2026-11-11 00:01,-2\n2026-11-11 00:02,3\n", None, "negative"),
    ("timestamp,value\n2026-11-11 00:00,1\n2026-11-11 00:01,2\n2026-11-11 00:02,2\n2026-11-11 00:02:30,3\n", None, "irregular step"),
    (GOOD_TRACE, "start,end,name,kind\n2026-11-11 00:20,2026-11-11 00:10,p,flash\n", "not after start"),
    (GOOD_TRACE, "start,end,name,kind\n2026-11-11 00:20,next tuesday,p,flash\n", "line 2 end"),
]


@pytest.mark.parametrize("trace_text, events_text, words", BAD_FILES)
def test_bad_files_exit_2_with_one_line_on_stderr(tmp_path, trace_text, events_text, words):
    trace = tmp_path / "t.csv"
    trace.write_text(trace_text)
    args = ["backtest", "--trace", str(trace), "--capacity-per-replica", "50"]
    if events_text is not None:
        events = tmp_path / "e.csv"
        events.write_text(events_text)
        args += ["--events", str(events)]
    done = peakscale(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and lines[0].startswith("error:")


def test_help_teaches_with_examples():
    result = runner.invoke(app, ["backtest", "--help"])
    assert result.exit_code == 0
    assert "--lead-time" in result.stdout and "Examples" in result.stdout


def acceptance_run(*args):
    done = peakscale(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["strategies"]


def worldcup_args(traces) -> list[str]:
    """The World Cup acceptance scenario: its trace, its matches, 2,000 requests a replica."""
    return [
        "--trace", str(traces / "worldcup98_requests_1min.csv"), "--events", str(traces / "worldcup98_requests_1min.events.csv"),
        "--kinds", "sports match (scheduled)",
        "--capacity-per-replica", "2000", "--lead-time", "10m", "--min-replicas", "2", "--max-replicas", "200",
    ]  # fmt: skip


def test_worldcup_peakscale_cuts_event_unserved_tenfold_within_the_cost_budget(shared_traces):
    """Tenfold less event demand unserved than reactive scaling, for at most 1.02x the larger of
    the hand schedule's and perfect foresight's replica-hours (the budget the coverage default is
    held to; at 70 % utilization reactive is the cheapest and worst-served point of its frontier)."""
    s = acceptance_run("backtest", *worldcup_args(shared_traces))
    reactive, ours = s["reactive"], s["peakscale"]
    assert ours["events"]["unserved_fraction"] <= 0.1 * reactive["events"]["unserved_fraction"]
    assert ours["all"]["replica_hours"] <= 1.02 * max(s["schedule"]["all"]["replica_hours"], s["oracle"]["all"]["replica_hours"])


def test_worldcup_with_slow_nodes_node_headroom_keeps_events_served(shared_traces):
    """Nodes take 3 minutes: reactive pays them on every scale-up; peakscale's headroom holds
    node room ahead of each raise, so its replicas serve after the pod lead time alone."""
    s = acceptance_run("backtest", "--quiet", *worldcup_args(shared_traces), "--node-lead-time", "3m", "--strategies", "reactive,peakscale")
    reactive, ours = s["reactive"], s["peakscale"]
    assert ours["events"]["unserved_fraction"] <= 0.1 * reactive["events"]["unserved_fraction"]


def test_nyc_taxi_calendar_of_dips_does_not_inflate_capacity(shared_traces):
    s = acceptance_run(
        "backtest",
        "--trace", str(shared_traces / "nyc_taxi_nab_30min.csv"),
        "--events", str(shared_traces / "nyc_taxi_nab_30min.events.csv"),
        "--tz", "America/New_York",
        "--capacity-per-replica", "500", "--lead-time", "30m", "--min-replicas", "2", "--max-replicas", "200",
    )  # fmt: skip
    reactive, ours = s["reactive"], s["peakscale"]
    assert ours["all"]["unserved_fraction"] <= 0.5 * reactive["all"]["unserved_fraction"]
    assert ours["all"]["replica_hours_vs_oracle"] <= 1.10


BUNDLED = {
    "worldcup": ("worldcup98_requests_1min", "UTC", ["--kinds", "sports match (scheduled)", "--capacity-per-replica", "2000", "--lead-time", "10m"]),
    "nyc-taxi": ("nyc_taxi_nab_30min", "America/New_York", ["--capacity-per-replica", "500", "--lead-time", "30m"]),
}


@pytest.mark.parametrize("trace", sorted(BUNDLED))
def test_the_default_beats_the_hand_schedule_on_every_bundled_trace(shared_traces, trace):
    """Switching from a hand schedule never serves an event worse (within 0.005 percentage points
    of event demand), serves the whole trace at least as well as reactive scaling, and costs at most
    1.02x the larger of the schedule's and perfect foresight's replica-hours (ratios of one run)."""
    stem, tz, args = BUNDLED[trace]
    s = acceptance_run(
        "backtest", "--quiet", "--trace", str(shared_traces / f"{stem}.csv"), "--events", str(shared_traces / f"{stem}.events.csv"), "--tz", tz,
        *args, "--min-replicas", "2", "--max-replicas", "200", "--strategies", "reactive,schedule,peakscale,oracle",
    )  # fmt: skip
    ours, schedule, reactive, oracle = (s[k] for k in ("peakscale", "schedule", "reactive", "oracle"))
    assert ours["events"]["unserved_fraction"] <= schedule["events"]["unserved_fraction"] + 0.00005
    assert ours["all"]["unserved_fraction"] <= reactive["all"]["unserved_fraction"]
    assert ours["all"]["replica_hours"] <= 1.02 * max(schedule["all"]["replica_hours"], oracle["all"]["replica_hours"])


def test_backtest_speaks_o_json_and_yaml_like_every_command(trace_file):
    import yaml as yaml_lib

    args = ["backtest", "--trace", str(trace_file), "--capacity-per-replica", "50", "--lead-time", "2m", "--strategies", "reactive,oracle"]
    as_json = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert json.loads(runner.invoke(app, [*args, "-o", "json"]).stdout) == as_json
    assert yaml_lib.safe_load(runner.invoke(app, [*args, "-o", "yaml"]).stdout) == as_json
    wrong = runner.invoke(app, [*args, "-o", "xml"])
    assert wrong.exit_code == 2 and "--output" in wrong.output
