import json
import math
from datetime import datetime, UTC

import numpy as np
import pytest
from typer.testing import CliRunner

from autoscaler.cli import app

from autoscaler.core.backtest import STRATEGIES, Scenario, run_backtest, schedule_floor
from autoscaler.errors import InputError
from autoscaler.core.plan import PlanPolicy
from autoscaler.core.trace import Trace
from tests.builders import add_surges, daily_series, nightly_events

DAYS = 10


def make_trace(days=DAYS, step_s=60):
    times, values = daily_series(days, step_s=step_s)
    events = nightly_events(days)
    return Trace(name="synthetic", times_s=times, values=add_surges(times, values, events, factor=4.0, ramp_s=600), step_s=step_s), events


def scenario(**kw):
    args = dict(capacity_per_replica=100.0, lead_time_s=900, min_replicas=2, max_replicas=500)
    args.update(kw)
    return Scenario(policy=PlanPolicy(**args))


@pytest.fixture(scope="module")
def result():
    trace, events = make_trace()
    return run_backtest(trace, events, scenario())


def test_every_strategy_is_measured_against_the_oracle(result):
    assert list(result.runs) == list(STRATEGIES)
    oracle = result.runs["oracle"]
    assert oracle.all.unserved_fraction == 0.0
    # every ratio is to the oracle's replica-hours, counted as everyone's: the replicas asked for
    # over the known minutes
    oracle_rh = float(oracle.desired[np.isfinite(result.demand)].sum()) * result.step_s / 3600
    for run in result.runs.values():
        assert (run.desired >= 2).all() and (run.desired <= 500).all()
        assert run.all.replica_hours_vs_oracle == pytest.approx(run.all.replica_hours / oracle_rh)


def test_peakscale_serves_event_surges_that_reactive_scaling_drops(result):
    reactive, peakscale = result.runs["reactive"], result.runs["peakscale"]
    assert reactive.events.unserved_fraction > 0.005
    assert peakscale.events.unserved_fraction < 0.25 * reactive.events.unserved_fraction
    assert peakscale.all.replica_hours_vs_oracle < 1.15


def test_calendar_beats_history_alone_when_events_move(result):
    assert result.runs["peakscale"].events.unserved_fraction < result.runs["history"].events.unserved_fraction


def test_json_has_the_documented_shape(result):
    doc = result.as_json()
    assert doc["trace"] == "synthetic"
    assert set(doc["strategies"]) == set(STRATEGIES)
    for figs in doc["strategies"].values():
        for part in ("all", "events"):
            assert set(figs[part]) == {
                "unserved_fraction",
                "underprovisioned_minutes",
                "replica_hours",
                "replica_hours_vs_oracle",
                "scale_actions",
            }


def test_no_look_ahead_plan_up_to_t_is_identical_whatever_comes_after():
    trace, events = make_trace()
    cut = 7 * 1440 + 613
    rng = np.random.default_rng(3)
    tampered_values = trace.values.copy()
    tampered_values[cut:] = rng.uniform(0, 50000, len(trace.values) - cut)
    tampered = Trace(name="t", times_s=trace.times_s, values=tampered_values, step_s=60)
    truncated = Trace(name="t", times_s=trace.times_s[:cut], values=trace.values[:cut], step_s=60)
    strategies = ("history", "peakscale")
    full = run_backtest(trace, events, scenario(), strategies)
    other = run_backtest(tampered, events, scenario(), strategies)
    short = run_backtest(truncated, events, scenario(), strategies)
    for name in strategies:
        # a decision at t sees samples up to t - 60 s: the plan up to the cut is fixed
        np.testing.assert_array_equal(full.runs[name].desired[:cut], other.runs[name].desired[:cut])
        np.testing.assert_array_equal(full.runs[name].desired[:cut], short.runs[name].desired[:cut])
    assert not np.array_equal(full.runs["peakscale"].desired[cut + 60 :], other.runs["peakscale"].desired[cut + 60 :])


def test_coarse_traces_are_simulated_minute_by_minute():
    trace, events = make_trace(step_s=1800)
    out = run_backtest(trace, events, scenario(lead_time_s=1800), ("reactive", "peakscale"))
    assert out.step_s == 60 and len(out.demand) == len(trace) * 30


def test_unknown_strategy_is_refused():
    trace, events = make_trace(days=2)
    with pytest.raises(InputError, match="^strategies: unknown strategy 'magic'"):
        run_backtest(trace, events, scenario(), ("reactive", "magic"))


def gappy_trace(tmp_path):
    """Six days of the synthetic series with a two-day hole and a few empty values, as a CSV."""
    trace, events = make_trace(days=6)
    lines = ["timestamp,value"]
    for k, (t, v) in enumerate(zip(trace.times_s.tolist(), trace.values.tolist())):
        if 2 * 1440 <= k < 4 * 1440:
            continue  # the rows of two whole days are missing
        stamp = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{stamp},{'' if k % 500 == 7 else v}")
    path = tmp_path / "gappy.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, events


def test_a_trace_with_gaps_backtests_and_the_figures_report_the_missing_minutes(tmp_path):
    path, _ = gappy_trace(tmp_path)
    result = CliRunner().invoke(app, ["backtest", "--trace", str(path), "--capacity-per-replica", "100", "--lead-time", "15m", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    empty = sum(1 for k in range(6 * 1440) if k % 500 == 7 and not 2 * 1440 <= k < 4 * 1440)
    assert doc["scenario"]["missing_minutes"] == 2 * 1440 + empty
    for name, figs in doc["strategies"].items():
        assert all(math.isfinite(v) for v in figs["all"].values()), name
        assert figs["events"]["replica_hours_vs_oracle"] is None  # no calendar: nothing to compare
    # the oracle is measured over the same known minutes as everyone else: each ratio is the
    # strategy's replica-hours over the oracle's as reported
    oracle_rh = doc["strategies"]["oracle"]["all"]["replica_hours"]
    for name, figs in doc["strategies"].items():
        assert figs["all"]["replica_hours_vs_oracle"] == pytest.approx(figs["all"]["replica_hours"] / oracle_rh), name


def test_every_strategy_holds_through_a_gap(tmp_path):
    path, events = gappy_trace(tmp_path)
    from autoscaler.core.timezones import get_zone
    from autoscaler.adapters.trace_files import load_trace

    trace = load_trace(path, get_zone("UTC"))
    result = run_backtest(trace, events, scenario())
    inside = slice(2 * 1440 + 30, 4 * 1440)  # from half an hour into the hole
    sc = scenario()
    floor = schedule_floor(result.times_s, result.demand, events, sc.policy, sc.metric_lag_s)[inside]
    for name, run in result.runs.items():
        held = run.desired[inside]
        if name == "schedule":
            # a clock schedule moves only with its floors (the HPA above them sees no metrics)
            assert ((np.diff(held) == 0) | (np.diff(floor) != 0)).all() and (held >= np.minimum(floor, sc.policy.max_replicas)).all(), name
        elif name in ("peakscale", "peakscale-scale"):
            # the controller still raises for an event from the last known level; nothing goes
            # down without metrics
            assert (np.diff(held) >= 0).all(), name
        else:
            assert len(set(held.tolist())) == 1, name
    assert result.runs["schedule"].desired[inside].max() > result.runs["schedule"].desired[inside].min()  # its floor did rise in the hole


def test_strict_refuses_the_gap(tmp_path):
    path, _ = gappy_trace(tmp_path)
    result = CliRunner().invoke(app, ["backtest", "--trace", str(path), "--capacity-per-replica", "100", "--strict"])
    assert result.exit_code == 2 and "--strict" in result.output
