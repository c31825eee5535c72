"""The README's commands run as written: every ``peakscale`` command in its ``sh`` blocks, in the
order a reader meets them, against a real Prometheus, the real local control plane (found through
the kubeconfig of a temporary HOME, as kubectl would find it, with the admin's credentials as an
SRE's own) and the files the README names (a trace, a
calendar, policies), written here. Each must exit 0, as the README implies. Only the placeholders
change: the Prometheus URL, ``~``, and ``/tmp`` paths. The test fails when the README and the CLI
drift apart.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from autoscaler.adapters.kube import now_micro
from autoscaler.controller.leader import lease_annotations
import pytest

from tests.cluster.facade import ClusterKube, pod_template
from tests.cluster.objects import add_nodes, delete_namespace, delete_nodes, ensure_namespace, unique
from tests.controller.world import iso

REPO = Path(__file__).resolve().parents[2]
QUERY = 'sum(shop_demand{app="web"})'  # the fixture Prometheus' series
NS = "live"
#: the synthetic trace: 18 days at 1 min, two flash sales at 12:00 (20:00 in Shanghai)
TRACE_START = datetime(2026, 6, 4)
FLASHES = (datetime(2026, 6, 8, 12), datetime(2026, 6, 18, 12))


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            if line.strip().startswith("peakscale "):
                commands.append(line.strip())
    return commands


def write_trace(path: Path) -> None:
    rows = ["timestamp,value"]
    for minute in range(18 * 1440):
        at = TRACE_START + timedelta(minutes=minute)
        value = 1000 * (1 + 0.3 * math.sin((at.hour * 60 + at.minute) / 1440 * 2 * math.pi))
        if any(start <= at < start + timedelta(hours=2) for start in FLASHES):
            value *= 4
        rows.append(f"{at:%Y-%m-%d %H:%M:%S},{value:.1f}")
    path.write_text("\n".join(rows) + "\n")


def policy(name: str, tier: str, target: dict, mode: str, namespace: str = NS, query: str = QUERY) -> dict:
    return {
        "apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": {"peakscale.io/tier": tier}},
        "spec": {
            "targetRef": target, "mode": mode, "metric": {"query": query, "capacityPerReplica": 500}, "leadTime": "30m",
            "minReplicas": 2, "maxReplicas": 200, "forecast": {"history": "2d", "step": "1m"},
        },
    }  # fmt: skip


@pytest.fixture
def kube(cluster):
    """Namespaces live and peakscale-system (the README's), and nodes with room for its tiers."""
    api = cluster.api()
    pool = unique("readme")
    ensure_namespace(api, "peakscale-system")
    add_nodes(api, 6, pool=pool, cpu="32", memory="128Gi")
    view = ClusterKube(cluster, NS)
    view.pool = pool
    yield view
    delete_nodes(api, pool)
    for namespace in (NS, "peakscale-system"):
        delete_namespace(api, namespace)


def seed_cluster(kube, history_window) -> None:
    """Namespace live as `pulumi up` leaves it (a cache and an edge tier with their policies), nodes
    with room, a controller holding the Lease, and last 11.11's PromotionEvent within the history."""
    template = pod_template("x", pool=kube.pool, cpu="500m", memory="1Gi")
    kube.put_object({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "cache-node", "namespace": NS}, "spec": {"replicas": 2, "template": template}})
    kube.put_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "live-edge", "namespace": NS}, "spec": {"replicas": 2, "template": template}})
    edge = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "live-edge"}
    kube.put_object({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "live-edge", "namespace": NS}, "spec": {"scaleTargetRef": edge, "minReplicas": 2, "maxReplicas": 100}})
    kube.put_object(policy("cache-cache-node", "cache", {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "cache-node"}, "scale"))
    kube.put_object(policy("edge-live-edge", "edge", edge, "hpa-floor"))
    start = history_window[1] - 30 * 3600
    kube.put_object(
        {
            "apiVersion": "peakscale.io/v1alpha1", "kind": "PromotionEvent", "metadata": {"name": "double11-2026", "namespace": NS},
            "spec": {"start": iso(start), "end": iso(start + 3 * 3600), "kind": "double11", "expectedMultiplier": 3, "targets": {"matchLabels": {"peakscale.io/tier": "cache"}}},
        }
    )  # fmt: skip


def fresh_lease(kube) -> None:
    """A controller holding the Lease now (what preflight's controller check reads)."""
    kube.put_object(
        {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "peakscale-controller", "namespace": "peakscale-system", "annotations": lease_annotations()},
            "spec": {"holderIdentity": "peakscale-0", "leaseDurationSeconds": 15, "renewTime": now_micro(time.time())},
        }
    )  # fmt: skip


def write_files(work: Path, home: Path) -> None:
    """The repository's examples/ as the README names them; only the policy's query is the
    fixture Prometheus' series."""
    import shutil

    shutil.copytree(REPO / "examples", work / "examples")
    policies = work / "examples" / "policies.yaml"
    docs = list(yaml.safe_load_all(policies.read_text()))
    assert docs == [policy("cache-cache-node", "cache", {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "cache-node"}, "scale", query=docs[0]["spec"]["metric"]["query"])]
    for doc in docs:
        doc["spec"]["metric"]["query"] = QUERY
    policies.write_text(yaml.safe_dump_all(docs))
    # the file store of `promo review ... --store file`: the sale of 06-18, in the trace
    calendar = home / ".config" / "peakscale" / "calendar.yaml"
    calendar.parent.mkdir(parents=True)
    start = FLASHES[1].replace(tzinfo=UTC)
    entry = {"name": "flash-0618", "kind": "flash-sale", "start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat(), "expectedMultiplier": 4}
    calendar.write_text(yaml.safe_dump({"events": [entry]}))


def argv(command: str, *, prometheus_url: str, home: Path, tmp: Path) -> tuple[list[str], str]:
    """The command's arguments with the placeholders filled in, and what it is piped into."""
    words = shlex.split(command, comments=True)
    pipe = ""
    if "|" in words:
        at = words.index("|")
        words, pipe = words[:at], " ".join(words[at + 1 :])
    out = []
    for i, word in enumerate(words[1:], start=1):
        if words[i - 1] == "--prometheus-url":
            word = prometheus_url
        elif word.startswith("~/"):
            word = str(home / word[2:])
        elif word.startswith("/tmp/"):
            word = str(tmp / word[5:])
        out.append(word)
    return out, pipe


def test_the_examples_are_the_trace_the_test_writes():
    """examples/traffic.csv is the synthetic trace described in its README (two sales, 18 days)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_trace(Path(tmp) / "traffic.csv")
        assert (Path(tmp) / "traffic.csv").read_text() == (REPO / "examples" / "traffic.csv").read_text()


def test_every_peakscale_command_in_the_readme_runs_as_written(kube, prometheus, history_window, tmp_path):
    commands = readme_commands()
    assert len(commands) >= 15 and any("promo add" in c for c in commands)
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".kube").mkdir(parents=True)
    work.mkdir()
    (home / ".kube" / "config").write_text(kube.cluster.kubeconfig.read_text())
    seed_cluster(kube, history_window)
    write_files(work, home)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "PEAKSCALE_", "XDG_"))}
    env.update(HOME=str(home), COLUMNS="150", PYTHONPATH=str(REPO))
    ran = []
    outputs: dict[str, subprocess.CompletedProcess] = {}
    for command in commands:
        args, pipe = argv(command, prometheus_url=prometheus.url, home=home, tmp=tmp_path)
        if args[0] == "preflight":
            fresh_lease(kube)
        done = subprocess.run([sys.executable, "-m", "autoscaler.cli", *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, command
        if pipe.startswith("jq "):
            value = json.loads(done.stdout)
            for key in pipe[3:].strip(". ").split("."):
                value = value[key]  # the path the README pipes into jq is there
        ran.append(args[0])
        outputs[" ".join(args[:3])] = done
    # what the commands left behind is what the README says they do
    assert (work / "out.png").stat().st_size > 10_000
    assert any((tmp_path / "r").rglob("statefulset-*.yaml"))
    stored = kube.get("peakscale.io/v1alpha1", "promotionevents", NS, "double11")
    assert stored is not None and stored["spec"]["targets"] == {"matchLabels": {"peakscale.io/tier": "cache"}}
    assert "memory" in (yaml.safe_load((home / ".config" / "peakscale" / "calendar.yaml").read_text())["events"][0])
    assert {"backtest", "promo", "plan", "preflight", "render", "controller"} <= set(ran)
    # "Your first promotion": stored where the controller looks, the cache tier selected, its raise planned
    assert "targets 1 ScalingPolicy(ies) in live: cache-cache-node" in outputs["promo add double11"].stdout
    assert re.search(r"19:29 \+08:00 .*double11", outputs["plan -n live"].stdout)
    # the tour's promotion selects nothing in its namespace: said on stderr, with the fix
    assert "selects no ScalingPolicy" in outputs["promo add kol-live-1111"].stderr
