"""Namespaces as kubectl has them, one selector syntax, and histories keyed by namespace and name.

- ``-n`` wins, then the kubeconfig context's namespace, then ``default``; ``-A`` is every namespace;
  a ``--context`` the kubeconfig lacks is named with the ones it has.
- ``--targets``, the CSV calendar's ``targets`` column and a YAML calendar's ``targets:`` take
  kubectl's ``-l`` syntax, ``in (...)`` included; a CSV column nobody reads is refused.
- ``plan`` keeps one history per (namespace, name): two policies called ``web`` in two namespaces
  are planned from their own demand.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from hypothesis import given, settings, strategies as st
from typer.testing import CliRunner

from autoscaler.adapters.kubeconfig import check_context, resolve_namespace
from autoscaler.cli import app
from autoscaler.core.resources import LabelSelector
from autoscaler.core.selectors import format_selector, parse_selector
from autoscaler.errors import InputError


def kubeconfig(path, contexts: dict[str, str | None], current: str):
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": n, "context": {"cluster": "c", "user": "u", **({"namespace": ns} if ns else {})}} for n, ns in contexts.items()],
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_namespace_is_kubectls(tmp_path, monkeypatch):
    config = kubeconfig(tmp_path / "config", {"prod-sh": "live", "other": None}, "prod-sh")
    assert resolve_namespace(None, False, config, None) == "live"  # the context's
    assert resolve_namespace("shop", False, config, None) == "shop"  # -n wins
    assert resolve_namespace(None, False, config, "other") == "default"  # a context without one
    assert resolve_namespace(None, True, config, None) is None  # -A
    with pytest.raises(InputError, match="--all-namespaces"):
        resolve_namespace("shop", True, config, None)
    # KUBECONFIG lists files; the first current-context wins, contexts merge
    extra = kubeconfig(tmp_path / "extra", {"staging": "stage"}, "staging")
    monkeypatch.setenv("KUBECONFIG", f"{config}:{extra}")
    assert resolve_namespace(None, False, None, None) == "live"
    assert resolve_namespace(None, False, None, "staging") == "stage"


def test_a_context_typo_names_the_contexts_there(tmp_path):
    config = kubeconfig(tmp_path / "config", {"prod-sh": "live", "other": None}, "prod-sh")
    check_context(config, "prod-sh")
    with pytest.raises(InputError) as caught:
        check_context(config, "prod")
    assert str(caught.value) == "--context: no context 'prod'; contexts: other, prod-sh (did you mean 'prod-sh'? see kubectl config get-contexts)"
    result = CliRunner().invoke(app, ["promo", "list", "--store", "kube", "--kubeconfig", str(config), "--context", "prod"])
    assert result.exit_code == 2 and "no context 'prod'" in result.output and "Traceback" not in result.output


def test_export_writes_manifests_in_the_contexts_namespace(tmp_path, monkeypatch):
    config = kubeconfig(tmp_path / "config", {"prod-sh": "live"}, "prod-sh")
    monkeypatch.setenv("KUBECONFIG", str(config))
    cal = tmp_path / "cal.yaml"
    run = CliRunner().invoke(app, ["promo", "add", "kol", "--start", "2031-11-11 20:00", "--duration", "2h", "--kind", "kol-live", "--store", "file", "--calendar", str(cal)])
    assert run.exit_code == 0, run.output
    out = CliRunner().invoke(app, ["promo", "export", "-o", "manifests", "--store", "file", "--calendar", str(cal)])
    assert out.exit_code == 0, out.output
    assert [d["metadata"]["namespace"] for d in yaml.safe_load_all(out.stdout) if d] == ["live"]


@pytest.mark.parametrize(
    "text, matching, not_matching",
    [
        ("peakscale.io/tier in (cache,database)", [{"peakscale.io/tier": "cache"}, {"peakscale.io/tier": "database"}], [{"peakscale.io/tier": "edge"}, {}]),
        ("tier=edge,env!=staging", [{"tier": "edge"}, {"tier": "edge", "env": "prod"}], [{"tier": "edge", "env": "staging"}, {"tier": "cache"}]),
        ("tier notin (cache), !canary", [{"tier": "edge"}, {}], [{"tier": "cache"}, {"tier": "edge", "canary": "1"}]),
        ("team", [{"team": ""}, {"team": "a"}], [{}]),
        ("tier==edge", [{"tier": "edge"}], [{"tier": "cache"}]),
    ],
)
def test_selectors_read_as_kubectl_reads_them(text, matching, not_matching):
    selector = LabelSelector.model_validate(parse_selector(text))
    assert all(selector.matches(labels) for labels in matching)
    assert not any(selector.matches(labels) for labels in not_matching)


@pytest.mark.parametrize("text", ["tier=a,tier=a", "tier in (cache", "tier in ()", "tier=a=b", "a b", "tier in (a,,b)", "-bad=x", "tier=edge,,x=y", "tier=" + "v" * 64])
def test_a_selector_that_does_not_read_is_refused_on_one_line(text):
    with pytest.raises(InputError, match="^targets: "):
        parse_selector(text)
    with pytest.raises(InputError, match="^--targets: "):  # as promo's option names it
        parse_selector(text, "--targets")


_key = st.from_regex(r"([a-z]{1,5}\.io/)?[a-z][a-z0-9]{0,6}", fullmatch=True)
_value = st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True)
_requirement = st.one_of(
    st.tuples(_key, _value).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.tuples(_key, _value).map(lambda kv: f"{kv[0]}!={kv[1]}"),
    st.tuples(_key, st.lists(_value, min_size=1, max_size=3)).map(lambda kv: f"{kv[0]} in ({','.join(kv[1])})"),
    st.tuples(_key, st.lists(_value, min_size=2, max_size=3, unique=True)).map(lambda kv: f"{kv[0]} notin ({','.join(kv[1])})"),
    _key,
    _key.map(lambda k: f"!{k}"),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_requirement, min_size=1, max_size=4), st.dictionaries(_key, _value, max_size=4))
def test_a_shown_selector_reads_back_to_the_same_rule(parts, labels):
    text = ",".join(parts)
    try:
        parsed = parse_selector(text)
    except InputError:
        return  # a label given twice with two values
    again = parse_selector(format_selector(parsed))
    assert LabelSelector.model_validate(again).matches(labels) == LabelSelector.model_validate(parsed).matches(labels)
    assert format_selector(again) == format_selector(parsed)


CSV_HEAD = "start,end,name,kind,expected_multiplier,targets\n"


def test_the_csv_calendar_has_a_targets_column_and_import_says_what_each_selects(tmp_path):
    csv = tmp_path / "promos.csv"
    csv.write_text(CSV_HEAD + '2031-11-11 20:00,2031-11-11 23:00,KOL live,kol-live,6,peakscale.io/tier=edge\n2031-11-11 19:00,2031-11-12 01:00,Double 11,double11,8,"peakscale.io/tier in (cache,database)"\n')
    cal = tmp_path / "cal.yaml"
    run = CliRunner().invoke(app, ["promo", "import", str(csv), "--store", "file", "--calendar", str(cal)])
    assert run.exit_code == 0, run.output
    stored = {e["name"]: e for e in yaml.safe_load(cal.read_text())["events"]}
    assert stored["kol-live"]["targets"] == {"matchLabels": {"peakscale.io/tier": "edge"}}
    assert stored["double-11"]["targets"] == {"matchExpressions": [{"key": "peakscale.io/tier", "operator": "In", "values": ["cache", "database"]}]}
    assert "kol-live: targets peakscale.io/tier=edge" in run.stdout and "double-11: targets peakscale.io/tier in (cache,database)" in run.stdout
    shown = CliRunner().invoke(app, ["promo", "show", "double-11", "--store", "file", "--calendar", str(cal)])
    assert "targets: peakscale.io/tier in (cache,database)" in shown.stdout


def test_a_csv_column_nobody_reads_is_refused_naming_the_known_ones(tmp_path):
    csv = tmp_path / "promos.csv"
    csv.write_text("start,end,name,kind,target\n2031-11-11 20:00,2031-11-11 23:00,KOL live,kol-live,peakscale.io/tier=edge\n")
    cal = tmp_path / "cal.yaml"
    run = CliRunner().invoke(app, ["promo", "import", str(csv), "--store", "file", "--calendar", str(cal)])
    assert run.exit_code == 2 and "unknown column(s) 'target'" in run.output and "did you mean 'targets'?" in run.output
    assert not cal.exists()


def test_add_takes_a_set_selector(tmp_path):
    cal = tmp_path / "cal.yaml"
    run = CliRunner().invoke(
        app, ["promo", "add", "d11", "--start", "2031-11-11 20:00", "--duration", "4h", "--kind", "double11", "--targets", "peakscale.io/tier in (cache,database)", "--store", "file", "--calendar", str(cal)]
    )
    assert run.exit_code == 0, run.output
    assert yaml.safe_load(cal.read_text())["events"][0]["targets"]["matchExpressions"][0]["values"] == ["cache", "database"]


def test_plan_keeps_one_history_per_namespace_and_name(tmp_path, monkeypatch):
    policy = {"targetRef": {"kind": "Deployment", "name": "web"}, "metric": {"query": "demand", "capacityPerReplica": 100}, "leadTime": "10m", "minReplicas": 1, "maxReplicas": 500}
    docs = [{"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "web", "namespace": ns}, "spec": policy} for ns in ("small", "big")]
    (tmp_path / "policies.yaml").write_text(yaml.safe_dump_all(docs))
    level = {"small": 1_000.0, "big": 5_000.0}

    def history(url, doc, *, now_s):
        times = np.arange(int(now_s) // 60 * 60 - 2 * 86400, int(now_s) // 60 * 60 + 60, 60, dtype=np.int64)
        return times, np.full(len(times), level[doc.namespace])

    monkeypatch.setattr("autoscaler.adapters.inputs.prometheus_history", history)
    run = CliRunner().invoke(app, ["plan", "--prometheus-url", "http://127.0.0.1:9", "--policies", str(tmp_path / "policies.yaml"), "--store", "file", "--calendar", str(tmp_path / "none.yaml"), "--to", "+1h", "-o", "json"])
    assert run.exit_code == 0, run.output
    floors = {t["namespace"]: max([a["to_replicas"] for a in t["actions"]], default=t["start_replicas"]) for t in json.loads(run.stdout)["targets"]}
    assert floors["big"] >= 4 * floors["small"] > 0


@pytest.mark.parametrize(
    "url, says",
    [
        ("127.0.0.1:9090", "add http://, e.g. http://127.0.0.1:9090"),
        ("http://127.0.0.1:9090/graph", "give http://127.0.0.1:9090"),
        ("http://prometheus:9090/api/v1/query", "give http://prometheus:9090"),
        ("ftp://prometheus", "is not an http(s) URL"),
    ],
)
def test_a_prometheus_url_that_is_not_a_base_url_is_named_with_the_fix(url, says, tmp_path):
    run = CliRunner().invoke(app, ["plan", "--prometheus-url", url, "--capacity-per-replica", "100", "--store", "file", "--calendar", str(tmp_path / "c.yaml")])
    assert run.exit_code == 2 and says in run.output and "Traceback" not in run.output


def test_the_prometheus_url_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PEAKSCALE_PROMETHEUS_URL", "127.0.0.1:9")
    run = CliRunner().invoke(app, ["plan", "--capacity-per-replica", "100", "--store", "file", "--calendar", str(tmp_path / "c.yaml")])
    assert run.exit_code == 2 and "--prometheus-url: '127.0.0.1:9' has no scheme" in run.output
    monkeypatch.delenv("PEAKSCALE_PROMETHEUS_URL")
    missing = CliRunner().invoke(app, ["plan", "--capacity-per-replica", "100", "--store", "file", "--calendar", str(tmp_path / "c.yaml")])
    assert missing.exit_code == 2 and missing.output.startswith("error: --prometheus-url: no history to plan from")


@pytest.mark.parametrize(
    "args, says",
    [
        (["--multiplier", "6x"], "Invalid value for '--multiplier': '6x' is not a number"),
        (["--multiplier=six"], "Invalid value for '--multiplier': 'six' is not a number"),
    ],
)
def test_a_value_of_the_wrong_type_is_quoted_back_in_plain_words(args, says, tmp_path):
    run = CliRunner().invoke(app, ["promo", "add", "x", "--start", "2031-11-11 20:00", "--duration", "1h", "--kind", "k", *args, "--store", "file", "--calendar", str(tmp_path / "c.yaml")])
    assert run.exit_code == 2 and says in run.output and "Input should be" not in run.output


def test_a_policy_file_key_typo_names_the_key_it_meant(tmp_path):
    doc = {"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "web"}, "spec": {"targetRef": {"kind": "Deployment", "name": "web"}, "metric": {"query": "q", "capacityPerReplica": 100}, "leadTime": "10m", "maxReplica": 6}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "cal.csv").write_text("start,end,name,kind\n")
    run = CliRunner().invoke(app, ["plan", "--trace", str(tmp_path / "none.csv"), "--events", str(tmp_path / "cal.csv"), "--policies", str(tmp_path / "p.yaml")])
    assert run.exit_code == 2 and "spec.maxReplica: unknown key (did you mean 'maxReplicas'?)" in run.output
