"""`peakscale promo` and `peakscale plan`, in-process and as a subprocess, against both stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, UTC
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st
from typer.testing import CliRunner

from autoscaler.cli import app
from autoscaler.errors import InputError
from autoscaler.core.plan_report import Plan
from autoscaler.cli.promo import import_rows as _import_rows
from autoscaler.cli.promo_store import parse_time
from autoscaler.core.durations import parse_duration_s
from tests.builders import edge_policy, scaling_policy
from tests.fakes.kube import write_kubeconfig

runner = CliRunner()
#: next year: promotions are scheduled in the future (a past start needs --allow-past)
Y = datetime.now().year + 1


def cli(*args, calendar: Path):
    return runner.invoke(app, list(args), env={"PEAKSCALE_CALENDAR": str(calendar)})


def sub(*args, calendar: Path | None = None):
    env = {**os.environ}
    if calendar is not None:
        env["PEAKSCALE_CALENDAR"] = str(calendar)
    return subprocess.run([sys.executable, "-m", "autoscaler.cli", *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def cal(tmp_path):
    path = tmp_path / "calendar.yaml"
    result = cli("promo", "add", "kol-live-1111", "--start", f"{Y}-11-11 20:00", "--duration", "3h", "--kind", "kol-live", "--multiplier", "6", "--targets", "tier=edge", calendar=path)
    assert result.exit_code == 0, result.output
    return path


def names(path: Path) -> list[str]:
    return [e["name"] for e in yaml.safe_load(path.read_text())["events"]]


def test_add_reads_local_time_in_the_zone_and_prints_it_back(cal):
    event = yaml.safe_load(cal.read_text())["events"][0]
    assert event["start"] == f"{Y}-11-11T20:00:00+08:00" and event["end"] == f"{Y}-11-11T23:00:00+08:00"
    assert event["expectedMultiplier"] == 6 and event["targets"] == {"matchLabels": {"tier": "edge"}}
    done = sub("promo", "add", "flash", "--start", f"{Y}-11-11 12:00", "--end", f"{Y}-11-11 13:00", "--kind", "flash-sale", "--tz", "Europe/Paris", calendar=cal)
    # printed back with the offset (CET would be ambiguous), and where it went, with a note
    assert done.returncode == 0 and f"{Y}-11-11 12:00 +01:00" in done.stdout and str(cal.name) in done.stdout
    assert "the controller does not read" in done.stderr and "--store kube" in done.stderr
    stored = {e["name"]: e for e in yaml.safe_load(cal.read_text())["events"]}
    assert stored["flash"]["start"] == f"{Y}-11-11T12:00:00+01:00"
    assert names(cal) == ["flash", "kol-live-1111"]  # kept in time order: 11:00Z before 12:00Z


def test_list_show_edit_delete_export_import_round_trip(cal, tmp_path):
    assert "kol-live-1111" in cli("promo", "list", calendar=cal).stdout
    listed = json.loads(cli("promo", "list", "-o", "json", calendar=cal).stdout)
    assert listed["events"][0]["name"] == "kol-live-1111"
    # one shape for scripts: YAML says what JSON says
    assert yaml.safe_load(cli("promo", "list", "-o", "yaml", calendar=cal).stdout) == listed
    shown = yaml.safe_load(cli("promo", "show", "kol-live-1111", "-o", "yaml", calendar=cal).stdout)
    assert shown["kind"] == "kol-live"
    assert cli("promo", "edit", "kol-live-1111", "--duration", "4h", "--multiplier", "8", calendar=cal).exit_code == 0
    edited = yaml.safe_load(cal.read_text())["events"][0]
    assert edited["end"] == f"{Y}-11-12T00:00:00+08:00" and edited["expectedMultiplier"] == 8
    exported = sub("promo", "export", calendar=cal)
    assert exported.returncode == 0
    backup = tmp_path / "backup.yaml"
    backup.write_text(exported.stdout)
    assert sub("promo", "delete", "kol-live-1111", calendar=cal).returncode == 0
    assert names(cal) == []
    assert sub("promo", "import", str(backup), calendar=cal).returncode == 0
    assert yaml.safe_load(cal.read_text())["events"][0] == edited


def test_import_csv_with_the_trace_calendar_columns(tmp_path, shared_traces):
    store = tmp_path / "wc.yaml"
    done = sub("promo", "import", str(shared_traces / "worldcup98_requests_1min.events.csv"), "--tz", "UTC", calendar=store)
    assert done.returncode == 2 and "in the past" in done.stderr and "--allow-past" in done.stderr
    done = sub("promo", "import", str(shared_traces / "worldcup98_requests_1min.events.csv"), "--tz", "UTC", "--allow-past", calendar=store)
    assert done.returncode == 0, done.stderr
    events = yaml.safe_load(store.read_text())["events"]
    assert len(events) == 66 and any(e["name"] == "final-brazil-france" for e in events)


def bad(args, calendar, words, code=2):
    before = calendar.read_bytes()
    result = cli(*args, calendar=calendar)
    assert result.exit_code == code, result.output
    assert words in result.stderr and "Traceback" not in result.output
    done = sub(*args, calendar=calendar)
    assert done.returncode == code and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr
    assert calendar.read_bytes() == before  # the store is unchanged


ADD = ["promo", "add", "x", "--kind", "flash-sale"]


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--start", f"{Y}-11-11 20:00", "--end", f"{Y}-11-11 19:00"], "--end"),
        (["--start", f"{Y}-11-11 20:00", "--duration", "0s"], "--duration"),
        (["--start", f"{Y}-11-11 20:00", "--duration", "-2h"], "--duration"),
        (["--start", f"{Y}-11-11 20:00", "--duration", "1h", "--tz", "Mars/Olympus"], "--tz"),
        (["--start", "next friday", "--duration", "1h"], "--start"),
        (["--start", f"{Y}-11-11 20:00", "--duration", "1h", "--multiplier", "0"], "--multiplier"),
        (["--start", f"{Y}-11-11 20:00", "--duration", "1h", "--multiplier", "5000"], "--multiplier"),
        (["--start", f"{Y}-11-11 20:00", "--duration", "1h", "--like", "ghost"], "--like"),
        (["--start", f"{Y}-11-11 20:00", "--duration", "1h", "--like", "x"], "--like"),
    ],
)
def test_bad_add_exits_2_naming_the_field_and_changes_nothing(cal, extra, words):
    bad(ADD + extra, cal, words)


def test_duplicate_name_is_refused(cal):
    bad(["promo", "add", "kol-live-1111", "--start", f"{Y}-12-12 20:00", "--duration", "1h", "--kind", "kol-live"], cal, "already exists")


def test_overlap_of_the_same_kind_warns_but_is_kept(cal):
    done = sub("promo", "add", "kol-2", "--start", f"{Y}-11-11 21:00", "--duration", "1h", "--kind", "kol-live", "--targets", "tier=edge", calendar=cal)
    assert done.returncode == 0 and "overlaps 'kol-live-1111'" in done.stderr
    assert names(cal) == ["kol-live-1111", "kol-2"]


def test_unknown_name_on_show_edit_delete(cal):
    for args in (["promo", "show", "nope"], ["promo", "edit", "nope", "--multiplier", "2"], ["promo", "delete", "nope"]):
        bad(args, cal, "no promotion named")


@pytest.mark.parametrize(
    "name, text, extra, words",
    [
        ("bad.yaml", "events:\n  - name: a\n    start: [unclosed\n", [], "line"),
        ("garbled-tz.csv", f"start,end,name,kind\n{Y}-11-11 20:00,{Y}-11-11 21:00,ok,k\n", ["--tz", "Mars/Olympus"], "unknown time zone"),
        ("bad.csv", f"start,end,name,kind\n{Y}-11-11 20:00,{Y}-11-11 21:00,ok,k\n{Y}-11-11 22:00,later?,broken,k\n", ["--tz", "UTC"], "line 3"),
        ("short.csv", f"start,name\n{Y}-11-11 20:00,a\n", ["--tz", "UTC"], "missing column"),
    ],
)
def test_malformed_import_imports_nothing_and_names_the_row(cal, tmp_path, name, text, extra, words):
    path = tmp_path / name
    path.write_text(text)
    bad(["promo", "import", str(path), *extra], cal, words)


def test_naive_times_import_in_the_default_zone_as_promo_add_reads_them(cal, tmp_path):
    """One --tz rule: import, like add, reads naive times in Asia/Shanghai unless told otherwise."""
    path = tmp_path / "naive.csv"
    path.write_text(f"start,end,name,kind\n{Y}-11-11 20:00,{Y}-11-11 21:00,ok,k\n")
    assert cli("promo", "import", str(path), calendar=cal).exit_code == 0
    stored = {e["name"]: e for e in yaml.safe_load(cal.read_text())["events"]}
    assert stored["ok"]["start"] == f"{Y}-11-11T20:00:00+08:00"


def test_naive_import_is_fine_with_a_zone(cal, tmp_path):
    path = tmp_path / "zoned.yaml"
    path.write_text(f"timezone: Asia/Shanghai\nevents:\n  - {{name: a, start: '{Y}-11-12 20:00', end: '{Y}-11-12 21:00', kind: k}}\n")
    assert cli("promo", "import", str(path), calendar=cal).exit_code == 0
    assert yaml.safe_load(cal.read_text())["events"][1]["start"] == f"{Y}-11-12T20:00:00+08:00"


def test_unreachable_cluster_is_one_clear_line(tmp_path):
    from tests.prometheus_server import free_port

    kubeconfig = write_kubeconfig(f"http://127.0.0.1:{free_port()}", tmp_path / "kc")
    done = sub("promo", "list", "--store", "kube", "--kubeconfig", str(kubeconfig))
    assert done.returncode == 1 and "cannot read PromotionEvents" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_unreachable_prometheus_is_one_clear_line(tmp_path):
    from tests.prometheus_server import free_port

    done = sub("plan", "--prometheus-url", f"http://127.0.0.1:{free_port()}", "--capacity-per-replica", "100", calendar=tmp_path / "c.yaml")
    assert done.returncode == 1 and "Prometheus query failed" in done.stderr and "Traceback" not in done.stderr


def test_plan_prescales_before_each_world_cup_match_and_json_round_trips(shared_traces, tmp_path):
    # the group stage's first ten days, after a month of history
    window = ("--from", "1998-06-10 00:00", "--to", "1998-06-20 00:00")
    done = sub(
        "plan",
        "--trace", str(shared_traces / "worldcup98_requests_1min.csv"),
        "--events", str(shared_traces / "worldcup98_requests_1min.events.csv"),
        "--kinds", "sports match (scheduled)",
        "--capacity-per-replica", "2000", "--lead-time", "10m", "--tz", "UTC", "-o", "json", *window,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = Plan.model_validate_json(done.stdout)
    assert json.loads(plan.model_dump_json()) == json.loads(done.stdout)
    target = plan.targets[0]
    from autoscaler.core.calendar import select_kinds
    from autoscaler.adapters.calendar_files import load_calendar
    from autoscaler.core.timezones import get_zone

    events = select_kinds(load_calendar(shared_traces / "worldcup98_requests_1min.events.csv", get_zone("UTC")), ["sports match (scheduled)"])
    assert len(events) == 64
    starts = {e.name: e.start_s for e in events}
    # every kick-off (simultaneous matches share one) gets a raise tied to a match once its action
    # window is open (a lead time + one cycle before it); the forecast may see a match's run-up
    # earlier, but never more than two of its horizons ahead
    in_window = sorted({s for s in starts.values() if plan_start(window) <= s < plan_start(window[2:])})
    assert len(in_window) >= 20
    for kickoff in in_window:
        assert any(a.action == "raise-floor" and a.event and kickoff - 630 <= a.at_s <= kickoff for a in target.actions)
    for a in target.actions:
        if a.action == "raise-floor" and a.event:
            assert a.at_s >= starts[a.event] - 2 * 630 - 60 and a.to_replicas > a.from_replicas
    # between matches the floor follows the seasonal forecast, down as well as up
    assert {"raise-floor", "lower-floor"} <= {a.action for a in target.actions if not a.event}
    table = sub(
        "plan", "--trace", str(shared_traces / "worldcup98_requests_1min.csv"), "--events", str(shared_traces / "worldcup98_requests_1min.events.csv"),
        "--kinds", "sports match (scheduled)", "--capacity-per-replica", "2000", "--tz", "UTC", "--from", "1998-07-12 00:00", "--to", "1998-07-13 00:00",
    )  # fmt: skip
    assert "raise floor" in table.stdout and "Final: Brazil-France" in table.stdout and "timeline" in table.stdout
    # the timeline: in JSON a list of (time, replicas), in the table a time axis under the marks
    points = target.timeline
    assert points and all(b.at_s - a.at_s == target.timeline_step_s for a, b in zip(points, points[1:]))
    assert max(p.replicas for p in points) == max(a.to_replicas for a in target.actions if "headroom" not in a.action)
    axis = table.stdout.split("timeline (", 1)[1].splitlines()[1]
    assert axis.strip().startswith("00:00")


def plan_start(window: tuple[str, ...]) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(window[1]).replace(tzinfo=UTC).timestamp())


def test_plan_from_the_promo_store(cal, tmp_path):
    trace = tmp_path / "t.csv"
    lines = ["timestamp,value"] + [f"{Y}-11-{d:02d} {h:02d}:{m:02d}:00,{1000 + 10 * h}" for d in range(1, 12) for h in range(24) for m in range(0, 60, 5)]
    trace.write_text("\n".join(lines) + "\n")
    policies = tmp_path / "policies.yaml"
    policies.write_text(
        yaml.safe_dump_all(
            [
                edge_policy({"tier": "edge"}),
                scaling_policy(
                    "cache", "live", {"tier": "cache"},
                    targetRef={"kind": "StatefulSet", "name": "cache"}, mode="scale", metric={"query": "x", "capacityPerReplica": 100}, leadTime="10m", maxReplicas=300,
                ),
            ]
        )  # fmt: skip
    )
    done = sub("plan", "--trace", str(trace), "--trace-tz", "Asia/Shanghai", "--policies", str(policies), "--from", f"{Y}-11-11 00:00", "--to", "+2d", "-o", "json", calendar=cal)
    assert done.returncode == 0, done.stderr
    plan = Plan.model_validate_json(done.stdout)
    edge, cache = plan.targets
    for_promo = [a for a in edge.actions if a.event == "kol-live-1111"]
    raise_at = [a for a in for_promo if a.action == "raise-floor"]
    # the window opens one cycle before 20:00 - 10 min; x6 over about 1,200 needs ~103 replicas
    assert raise_at[0].at.startswith(f"{Y}-11-11 19:49") and max(a.to_replicas for a in raise_at) > 4 * 18
    assert all(a.at >= f"{Y}-11-11 19:49" and a.at < f"{Y}-11-11 23:30" for a in for_promo)  # to end + cool-down
    seasonal = [a for a in edge.actions if not a.event]
    assert seasonal and all(a.to_replicas < 30 for a in seasonal)  # around 1,200 / (100 x 0.7 x 1.1)
    assert all(a.event == "" for a in cache.actions)  # the promotion targets tier=edge only
    assert edge.events == ["kol-live-1111"] and cache.events == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["UTC", "Asia/Shanghai", "Nope/Zone", ""]))
def test_random_text_to_the_time_parser(text, zone):
    try:
        stamp = parse_time(text, zone, "--start")
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert stamp.tzinfo is not None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_random_text_to_the_duration_parser(text):
    try:
        assert parse_duration_s(text) > 0
    except InputError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200), st.sampled_from([".csv", ".yaml"]))
def test_random_text_to_the_calendar_parsers(tmp_path_factory, text, suffix):
    path = tmp_path_factory.mktemp("cal") / f"c{suffix}"
    path.write_text(text)
    try:
        promos = _import_rows(path, "UTC")
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(p.name for p in promos)
