"""Hostile and random input to every parser and every command: never a traceback.

Every refusal is one line naming the field and the fix, with exit 2 (bad input) or 1 (a failed
operation). The hostile cases found by hand (alias bombs, deep nesting, binary files, false or
truncated gzip, huge numbers, years past 9999, names that are not object names, typos in keys,
booleans as numbers, numbers as times, ...) are here as explicit examples beside the random ones.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from typer.testing import CliRunner

from autoscaler.adapters import yamlsafe
from autoscaler.core.calendar import read_entries
from autoscaler.cli import app
from autoscaler.core.durations import parse_duration_s
from autoscaler.errors import InputError
from autoscaler.cli.promo_store import parse_targets, parse_time
from autoscaler.core.resources import parse_event, parse_policy
from autoscaler.adapters.store import FileStore
from autoscaler.core.timezones import get_zone
from autoscaler.adapters.trace_files import load_trace

runner = CliRunner()
UTC = get_zone("UTC")
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

GOOD_TRACE = "timestamp,value\n" + "".join(f"2026-11-11 {h:02d}:{m:02d}:00,{100 + m + 10 * h}\n" for h in range(2) for m in range(60))
ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
HOSTILE_TEXTS = [
    ALIAS_BOMB,
    "events: " + "[" * 300 + "]" * 300,
    "timezone: 8\nevents:\n  - {name: a, start: 2026-12-11 20:00, end: 2026-12-11 21:00, kind: k, like: 5}\n",
    "timezone: UTC\nevents:\n  - {name: a, sart: 2026-12-11 20:00, end: 2026-12-11 21:00, kind: k}\n",
    "timezone: UTC\nevents:\n  - {name: a, start: 2026-12-11 20:00, end: 2026-12-11 21:00, kind: k, expectedMultiplier: true}\n",
    "timezone: UTC\nevents:\n  - {name: a, start: 12345, end: 2026-12-11 21:00, kind: k}\n",
    "timezone: UTC\nevents:\n  - {name: a, start: 2026-12-11 20:00, end: 2026-12-11 21:00, kind: k, expectedPeak: 1e300}\n",
    "timezone: UTC\nevents:\n  - {name: a, start: 9999-12-31 23:00, end: 9999-12-31 23:59, kind: k}\n",
    "timezone: UTC\nevents:\n  - {name: a, start: 2026-12-11 20:00, end: 2026-12-11 21:00, kind: k, like: [a]}\n",
    "timezone: UTC\nevents:\n  - {name: a, start: 2026-12-11 20:00, end: 2026-12-11 21:00, kind: k, memory: [{policy: 5}]}\n",
    "timestamp,value\n2026-11-11 00:00,1e308\n2026-11-11 00:01,1e308\n2026-11-11 00:02,1\n",
    "timestamp,value\n2026-11-11 00:00:00,1\n2026-11-11 00:00:01,2\n2026-11-11 00:00:02,3\n2026-11-11 00:00:03,4\n",
    "start,end,name,kind\n2026-11-11 00:00,2026-11-11 01:00,kölive,k\n",
    "\x00\x01\x02\xff",
]


def no_traceback(result) -> None:
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), f"{type(exc).__name__}: {exc}"
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1, 2)
    if result.exit_code:
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.output[-2000:]


# --- parsers ----------------------------------------------------------------------------------

texts = st.one_of(st.text(max_size=300), st.sampled_from(HOSTILE_TEXTS))
blobs = st.one_of(st.binary(max_size=300), st.sampled_from([t.encode("utf-8", "replace") for t in HOSTILE_TEXTS]))


@settings(max_examples=200, **SETTINGS)
@given(data=st.one_of(texts, blobs))
def test_yaml_loader(data):
    try:
        yamlsafe.load(data, "f.yaml")
    except InputError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=150, **SETTINGS)
@given(text=texts, gz=st.sampled_from(["plain", "gzip", "truncated", "false"]))
def test_trace_reader(tmp_path_factory, text, gz):
    folder = tmp_path_factory.mktemp("trace")
    data = text.encode("utf-8", "replace")
    path = folder / ("t.csv.gz" if gz != "plain" else "t.csv")
    path.write_bytes({"plain": data, "gzip": gzip.compress(data), "truncated": gzip.compress(data)[:15], "false": data}[gz])
    try:
        trace = load_trace(path, UTC)
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert len(trace) >= 3 and trace.step_s >= 1


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=5)),
    max_leaves=25,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values, "start": st.one_of(json_values, st.just("2026-12-11 20:00")), "end": st.one_of(json_values, st.just("2026-12-11 21:00")),
        "kind": json_values, "title": json_values, "expectedMultiplier": json_values, "expectedPeak": json_values, "like": json_values,
        "targets": json_values, "memory": json_values, "sart": json_values,
    },
)  # fmt: skip


@settings(max_examples=200, **SETTINGS)
@given(doc=st.one_of(json_values, st.fixed_dictionaries({"events": st.lists(event_like, max_size=3)}, optional={"timezone": json_values})))
def test_calendar_entries(doc):
    try:
        read_entries(doc, UTC, "c.yaml")
    except InputError as exc:
        assert "\n" not in str(exc)


policy_like = st.fixed_dictionaries(
    {},
    optional={
        "targetRef": json_values, "mode": json_values, "metric": json_values, "leadTime": json_values, "minReplicas": json_values,
        "maxReplicas": json_values, "forecast": json_values, "floor": json_values, "maxFreeze": json_values, "cooldown": json_values,
    },
)  # fmt: skip


@settings(max_examples=200, **SETTINGS)
@given(spec=st.one_of(json_values, policy_like, event_like), meta=json_values, status=json_values)
def test_custom_resources(spec, meta, status):
    obj = {"metadata": meta if isinstance(meta, dict) else {}, "spec": spec, "status": status}
    for parse in (parse_policy, parse_event):
        try:
            parse(obj)
        except InputError as exc:
            assert "\n" not in str(exc)


@settings(max_examples=300, **SETTINGS)
@given(text=st.text(max_size=40), zone=st.sampled_from(["UTC", "Asia/Shanghai", "Nope/Zone", ""]))
def test_small_parsers(text, zone):
    for parse in (lambda: parse_duration_s(text), lambda: parse_time(text, zone, "--start"), lambda: parse_targets(text)):
        try:
            parse()
        except InputError as exc:
            assert "\n" not in str(exc)


@settings(max_examples=100, **SETTINGS)
@given(data=st.one_of(texts, blobs))
def test_file_store(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("store") / "c.yaml"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "replace"))
    before = path.read_bytes()
    try:
        FileStore(path).promos()
    except InputError as exc:
        assert "\n" not in str(exc)
    assert path.read_bytes() == before  # reading never rewrites


# --- every command ------------------------------------------------------------------------------

values = st.one_of(
    st.text(alphabet=string.printable, max_size=12),
    st.sampled_from(["0", "-1", "inf", "nan", "1e308", "1e-308", "true", "3650d", "0s", "0.4s", "9999-12-31 23:00", "kölive", "名字", "a..b", "trailing-", "a b=c", "a=1,a=2", "70000", ""]),
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzzfiles")
    (folder / "good.csv").write_text(GOOD_TRACE)
    (folder / "bomb.yaml").write_text(ALIAS_BOMB)
    (folder / "binary.yaml").write_bytes(os.urandom(500))
    (folder / "binary.csv").write_bytes(os.urandom(500))
    (folder / "fake.csv.gz").write_bytes(b"not gzip")
    (folder / "trunc.csv.gz").write_bytes(gzip.compress(GOOD_TRACE.encode())[:40])
    (folder / "kc").write_bytes(os.urandom(300))
    from tests.fakes.kube import write_kubeconfig

    write_kubeconfig("http://127.0.0.1:1", folder / "unreachable-kc")  # nothing listens there
    for i, text in enumerate(HOSTILE_TEXTS):
        (folder / f"hostile{i}.yaml").write_text(text, encoding="utf-8", errors="replace")
        (folder / f"hostile{i}.csv").write_text(text, encoding="utf-8", errors="replace")
    return folder


def file_choices(files: Path) -> list[str]:
    names = ["good.csv", "bomb.yaml", "binary.yaml", "binary.csv", "fake.csv.gz", "trunc.csv.gz", "missing.csv", "kc", "unreachable-kc"]
    names += [f"hostile{i}.{ext}" for i in range(len(HOSTILE_TEXTS)) for ext in ("yaml", "csv")]
    return [str(files / n) for n in names]


OPTIONS = {
    "backtest": ["--node-lead-time", "--capacity-per-replica", "--lead-time", "--min-replicas", "--max-replicas", "--target-utilization", "--interval", "--cooldown", "--metric-lag", "--max-freeze", "--history-window", "--kinds", "--strategies", "--floor", "--tz", "--scale-down-stabilization"],
    "plan": ["--capacity-per-replica", "--lead-time", "--min-replicas", "--max-replicas", "--from", "--to", "--tz", "--trace-tz", "--interval", "--policy", "-o", "--kinds"],
    "promo add": ["--start", "--end", "--duration", "--kind", "--tz", "--title", "--multiplier", "--expected-peak", "--like", "--targets"],
    "promo edit": ["--start", "--end", "--duration", "--kind", "--tz", "--multiplier", "--expected-peak", "--like", "--targets"],
    "promo list": ["--tz", "-o"],
    "promo export": ["-o"],
    "controller": ["--prometheus-url", "--interval", "--metrics-port", "--log-level", "--lease-duration", "--renew-deadline", "--retry-period", "--unready-after", "--prometheus-timeout", "--preflight-ahead", "--preflight-every"],
    "preflight": ["--prometheus-url", "--event", "--at", "--within", "--interval", "--tz", "-o", "--lease-name", "-n"],
}
FILE_OPTIONS = {
    "backtest": ["--trace", "--events"], "plan": ["--trace", "--events", "--policies"], "controller": ["--kubeconfig", "--prometheus-ca", "--prometheus-token-file"],
    "preflight": ["--kubeconfig"],
}  # fmt: skip


@settings(max_examples=120, **SETTINGS)
@given(data=st.data(), command=st.sampled_from(sorted(OPTIONS)))
def test_random_options_to_every_command(files, tmp_path_factory, data, command):
    calendar = tmp_path_factory.mktemp("cal") / "calendar.yaml"
    args = command.split()
    if command in ("promo add", "promo edit"):
        args.append(data.draw(st.sampled_from(["d11", "kölive", "a..b", "x" * 300])))
    for option in data.draw(st.lists(st.sampled_from(OPTIONS[command]), max_size=5, unique=True)):
        args += [option, data.draw(values)]
    for option in data.draw(st.lists(st.sampled_from(FILE_OPTIONS.get(command, ["--calendar"])), max_size=2, unique=True)):
        args += [option, data.draw(st.sampled_from(file_choices(files)))]
    if command == "backtest" and "--trace" not in args:
        args += ["--trace", str(files / "good.csv")]
    if command == "controller":
        args += ["--once"] if "--kubeconfig" in args else ["--kubeconfig", str(files / "kc")]
    if command == "preflight":
        if "--prometheus-url" not in args:
            args += ["--prometheus-url", "http://127.0.0.1:1"]
        if "--kubeconfig" not in args:
            args += ["--kubeconfig", str(files / "kc")]
    if command.startswith("promo"):
        args += ["--calendar", str(calendar)]
    no_traceback(runner.invoke(app, args))


@settings(max_examples=60, **SETTINGS)
@example(name="hostile2.yaml")
@example(name="bomb.yaml")
@example(name="binary.csv")
@given(name=st.sampled_from(["good.csv", "bomb.yaml", "binary.yaml", "binary.csv", "fake.csv.gz", "missing.csv"] + [f"hostile{i}.{e}" for i in range(14) for e in ("yaml", "csv")]))
def test_promo_import_and_review_of_any_file(files, tmp_path_factory, name):
    calendar = tmp_path_factory.mktemp("cal") / "calendar.yaml"
    no_traceback(runner.invoke(app, ["promo", "import", str(files / name), "--tz", "UTC", "--calendar", str(calendar)]))
    no_traceback(runner.invoke(app, ["promo", "review", "d11", "--trace", str(files / name), "--capacity-per-replica", "10", "--calendar", str(calendar)]))
    no_traceback(runner.invoke(app, ["promo", "list", "--calendar", str(files / name)]))


def test_a_binary_kubeconfig_is_refused_on_one_line(files):
    result = runner.invoke(app, ["controller", "--prometheus-url", "http://127.0.0.1:9", "--kubeconfig", str(files / "kc"), "--metrics-port", "18080"])
    no_traceback(result)
    assert result.exit_code == 2 and "--kubeconfig" in result.output


def test_a_metrics_port_in_use_is_refused_on_one_line(files):
    """A readable kubeconfig (nothing listens behind it: the port is checked first) and a port
    another process holds: the controller cannot listen, and says which option to change."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        args = ["controller", "--prometheus-url", "http://127.0.0.1:9", "--kubeconfig", str(files / "unreachable-kc"), "--metrics-address", "127.0.0.1", "--metrics-port", str(port)]
        # a process with a deadline: were the port not refused, the controller would run on
        done = subprocess.run([sys.executable, "-m", "autoscaler.cli", *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "--metrics-port" in done.stderr and f"cannot listen on 127.0.0.1:{port}" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    finally:
        busy.close()


def test_render_of_any_stack_name():
    for name in ("../../etc/passwd", "nope", "", "dev\x00"):
        no_traceback(runner.invoke(app, ["render", "--stack", name, "--out", "/tmp/peakscale-render-fuzz", "--json"]))


def test_backtest_json_is_strict_json(files):
    result = runner.invoke(app, ["backtest", "--trace", str(files / "good.csv"), "--capacity-per-replica", "10", "--lead-time", "2m", "--json"])
    assert result.exit_code == 0
    json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


# --- the hostile families found by attacking the controller and the CLI (issue: tenancy and faults) ---

HANG_S = 20


def run_bounded(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command that must answer in one line, quickly: a hang fails the test (it never passes)."""
    return subprocess.run([sys.executable, "-m", "autoscaler.cli", *args], capture_output=True, text=True, timeout=HANG_S, cwd=cwd)


HOSTILE_COMMANDS = {
    "a plan of a century at 1 s": ["plan", "--trace", "ok.csv", "--capacity-per-replica", "10", "--interval", "1s", "--from", "2026-11-11", "--to", "2126-11-11"],
    "a trace spanning centuries": ["backtest", "--trace", "centuries.csv", "--capacity-per-replica", "10"],
    "a calendar that is a FIFO": ["promo", "list", "--calendar", "fifo.yaml"],
    "a calendar that is /dev/zero": ["promo", "list", "--calendar", "/dev/zero"],
    "a key given twice": ["promo", "list", "--calendar", "dup.yaml"],
    "a key given twice, as --events": ["plan", "--trace", "ok.csv", "--capacity-per-replica", "10", "--events", "dup.yaml"],
    "a title the CRD refuses": ["promo", "add", "long", "--title", "t" * 300, "--start", "2030-11-11 20:00", "--duration", "1h", "--kind", "k", "--calendar", "c.yaml"],
    "more like than the CRD takes": ["promo", "import", "likes.yaml", "--calendar", "c.yaml", "--allow-past"],
    "a boolean for a number": ["plan", "--trace", "ok.csv", "--policies", "boolean.yaml"],
    "a policies file of the wrong type": ["plan", "--trace", "ok.csv", "--policies", "wrongtype.yaml"],
    "a forged render manifest": ["render", "--out", "forged"],
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "ok.csv").write_text(GOOD_TRACE)
    (folder / "centuries.csv").write_text("timestamp,value\n1200-01-01 00:00:00,1\n1200-01-01 00:01:00,1\n1200-01-01 00:02:00,1\n2990-01-01 00:00:00,2\n")
    os.mkfifo(folder / "fifo.yaml")
    (folder / "dup.yaml").write_text("timezone: UTC\nevents:\n  - {name: a, name: b, start: 2030-01-01 10:00, end: 2030-01-01 11:00, kind: k}\n")
    likes = ", ".join(f"p{i}" for i in range(21))
    (folder / "likes.yaml").write_text(f"timezone: UTC\nevents:\n  - {{name: a, start: 2030-01-01 10:00, end: 2030-01-01 11:00, kind: k, like: [{likes}]}}\n")
    policy = "apiVersion: peakscale.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: a}\nspec: {targetRef: {kind: Deployment, name: w}, metric: {query: q, capacityPerReplica: true}, leadTime: 1m, maxReplicas: 5}\n"
    (folder / "boolean.yaml").write_text(policy)
    (folder / "wrongtype.yaml").write_text("apiVersion: peakscale.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: a}\nspec: 5\n")
    forged = folder / "forged"
    forged.mkdir()
    (folder / "outside.yaml").write_text("keep me\n")
    (forged / ".peakscale-render.json").write_text(json.dumps({"files": ["../outside.yaml", "x\u0000y", 5]}))
    return folder


@pytest.mark.parametrize("case", sorted(HOSTILE_COMMANDS))
def test_every_hostile_family_is_refused_in_one_line_without_a_hang(hostile, case):
    done = run_bounded(*HOSTILE_COMMANDS[case], cwd=hostile)
    assert done.returncode == 2, (case, done.returncode, done.stderr[-800:])
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert (hostile / "outside.yaml").read_text() == "keep me\n"


def test_a_csv_a_spreadsheet_saved_with_a_byte_order_mark_reads_as_written(tmp_path):
    trace = tmp_path / "bom.csv"
    trace.write_bytes(b"\xef\xbb\xbf" + GOOD_TRACE.encode())
    assert load_trace(trace, UTC).values[0] == 100.0
