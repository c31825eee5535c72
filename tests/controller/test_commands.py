"""The commands an SRE runs against the cluster, on the real control plane: `promo add/edit/list/
delete --store kube` (the CRD's real defaults and validation) and `promo review` of what the
controller recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, UTC

from typer.testing import CliRunner

from autoscaler.cli import app
from tests.controller.world import seed

runner = CliRunner()
Y = datetime.now(UTC).year + 1


def cli(*args):
    return runner.invoke(app, list(args))


def sub(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoscaler.cli", *args], capture_output=True, text=True, timeout=120)


def test_kube_store_keeps_promotion_events_with_the_crds_own_defaults(kube):
    fake, live = kube, kube.ns
    opts = ["--store", "kube", "--kubeconfig", str(kube.cluster.kubeconfig), "-n", live]
    add = runner.invoke(app, ["promo", "add", "d11", "--start", f"{Y}-11-10 23:30", "--end", f"{Y}-11-11 02:00", "--kind", "double11", "--multiplier", "8", *opts])
    assert add.exit_code == 0, add.output
    obj = fake.get("peakscale.io/v1alpha1", "promotionevents", live, "d11")
    assert obj["spec"]["start"] == f"{Y}-11-10T23:30:00+08:00" and obj["spec"]["expectedMultiplier"] == 8
    assert sub("promo", "edit", "d11", "--multiplier", "9", *opts).returncode == 0
    assert fake.get("peakscale.io/v1alpha1", "promotionevents", live, "d11")["spec"]["expectedMultiplier"] == 9
    assert json.loads(sub("promo", "list", "-o", "json", *opts).stdout)["events"][0]["name"] == "d11"
    dup = sub("promo", "add", "d11", "--start", f"{Y}-11-12 00:00", "--duration", "1h", "--kind", "double11", *opts)
    assert dup.returncode == 2 and fake.get("peakscale.io/v1alpha1", "promotionevents", live, "d11")["spec"]["expectedMultiplier"] == 9
    assert sub("promo", "delete", "d11", *opts).returncode == 0
    assert fake.list("peakscale.io/v1alpha1", "promotionevents", live) == []
    # what the CRD refuses is refused with the API server's reason, in one line, and nothing stored
    long = sub("promo", "add", "d12", "--title", "x" * 300, "--start", f"{Y}-12-12 20:00", "--duration", "2h", "--kind", "double12", *opts)
    assert long.returncode == 2 and "title" in long.stderr and "Traceback" not in long.stderr, long.stderr
    assert len(long.stderr.strip().splitlines()) == 1
    assert fake.get("peakscale.io/v1alpha1", "promotionevents", live, "d12") is None


def test_review_against_the_cluster_and_prometheus(kube, prometheus, history_window, tmp_path):
    t = history_window[1] - 6 * 3600
    seed(kube, event_start=t)
    args = ["promo", "review", "flash-sale", "--store", "kube", "-n", kube.ns, "--kubeconfig", str(kube.cluster.kubeconfig), "--prometheus-url", prometheus.url, "--interval", "60s", "--tz", "UTC", "-o", "json"]
    done = cli(*args)
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert doc["start"].startswith(datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M"))
    web = doc["policies"][0]
    assert web["policy"] == "web" and web["target"] == "Deployment/web"
    # the expected peak (50,000) sized before the start: 72 replicas at 70 %; the load stayed ~10,000
    assert web["ready_at_start"] == 72 and web["forecast_peak"] >= 50_000
    assert 8_000 <= web["observed_peak"] <= 13_000 and web["short_minutes"] == 0
    assert web["recorded"]["stored"] is False and 0.8 <= web["recorded"]["peak_uplift"] <= 1.3
    # what the controller recorded into the status is what the review shows
    event = kube.get("peakscale.io/v1alpha1", "promotionevents", kube.ns, "flash-sale")
    event["status"] = {"memory": [{"policy": "web", "stepSeconds": 60, "offsetSeconds": -780, "uplift": [1.0, 2.0, 1.5], "peakUplift": 2.0, "minutesToPeak": -12.0, "recordedAtSeconds": int(t + 3600 + 1800)}]}
    kube.put_status(event)
    stored = json.loads(cli(*args).stdout)["policies"][0]["recorded"]
    assert stored == {"step_s": 60, "points": 3, "peak_uplift": 2.0, "minutes_to_peak": -12.0, "stored": True}


def kube_opts(kube) -> list[str]:
    return ["--store", "kube", "--kubeconfig", str(kube.cluster.kubeconfig), "-n", kube.ns]


def run_all(*commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Start the commands at once, as two SREs pressing enter together; wait for all."""
    procs = [subprocess.Popen([sys.executable, "-m", "autoscaler.cli", *c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]


def test_two_adds_of_one_name_at_once_store_one_and_refuse_the_other(kube):
    opts = kube_opts(kube)
    add = ["promo", "add", "race", "--start", f"{Y}-11-11 20:00", "--duration", "2h", "--kind", "flash-sale", *opts]
    done = run_all(add + ["--multiplier", "3"], add + ["--multiplier", "4"])
    assert sorted(d.returncode for d in done) == [0, 2], [d.stderr for d in done]
    loser = next(d for d in done if d.returncode == 2)
    assert "already exists" in loser.stderr or "added meanwhile" in loser.stderr
    winner = next(d for d in done if d.returncode == 0)
    stored = kube.get("peakscale.io/v1alpha1", "promotionevents", kube.ns, "race")["spec"]["expectedMultiplier"]
    assert ("--multiplier" in winner.args and str(int(stored)) in " ".join(winner.args))


def test_edits_of_one_promotion_at_once_all_land(kube):
    opts = kube_opts(kube)
    assert cli("promo", "add", "sale", "--start", f"{Y}-11-11 20:00", "--duration", "2h", "--kind", "flash-sale", *opts).exit_code == 0
    edits = [["promo", "edit", "sale", "--title", "Night sale", *opts], ["promo", "edit", "sale", "--multiplier", "7", *opts], ["promo", "edit", "sale", "--duration", "3h", *opts]]
    done = run_all(*edits)
    assert all(d.returncode == 0 for d in done), [d.stderr for d in done]
    spec = kube.get("peakscale.io/v1alpha1", "promotionevents", kube.ns, "sale")["spec"]
    assert spec["title"] == "Night sale" and spec["expectedMultiplier"] == 7
    assert spec["end"].startswith(f"{Y}-11-11T23:00")


def test_an_import_the_api_server_refuses_part_way_stores_nothing_and_its_retry_is_idempotent(kube, tmp_path):
    rows = [f"{Y}-11-{1 + i // 24:02d} {i % 24:02d}:00,{Y}-11-{1 + i // 24:02d} {i % 24:02d}:30,sale-{i},flash-sale,{'t' * (300 if i == 49 else 5)}" for i in range(60)]
    bad = tmp_path / "promos.csv"
    bad.write_text("start,end,name,kind,title\n" + "\n".join(rows) + "\n")
    failed = sub("promo", "import", str(bad), "--tz", "UTC", *kube_opts(kube))
    assert failed.returncode == 2 and "sale-49" in failed.stderr and "title" in failed.stderr, failed.stderr
    assert kube.list("peakscale.io/v1alpha1", "promotionevents", kube.ns) == []  # all or none
    good = tmp_path / "fixed.csv"
    good.write_text(bad.read_text().replace("t" * 300, "fixed"))
    assert sub("promo", "import", str(good), "--tz", "UTC", *kube_opts(kube)).returncode == 0
    again = sub("promo", "import", str(good), "--tz", "UTC", *kube_opts(kube))
    assert again.returncode == 0 and "imported 0 promotion(s)" in again.stdout
    assert len(kube.list("peakscale.io/v1alpha1", "promotionevents", kube.ns)) == 60


def test_an_object_the_api_server_accepts_but_that_makes_no_sense_is_named_and_the_rest_works(kube, prometheus):
    from tests.controller.world import policy_spec, seed

    opts = kube_opts(kube)
    seed(kube, event_start=datetime.now(UTC).timestamp() + 86400)
    kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "PromotionEvent", "metadata": {"name": "instant"}, "spec": {"start": f"{Y}-11-11T20:00:00Z", "end": f"{Y}-11-11T20:00:00Z", "kind": "x"}})
    kube.put_object({"apiVersion": "peakscale.io/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": "inverted"}, "spec": policy_spec(minReplicas=9, maxReplicas=5)})
    cluster = ["--kubeconfig", str(kube.cluster.kubeconfig), "-n", kube.ns]
    runs = {
        "list": sub("promo", "list", "-o", "json", *opts),
        "export": sub("promo", "export", *opts),
        "add": sub("promo", "add", "next", "--start", f"{Y}-11-12 20:00", "--duration", "1h", "--kind", "x", *opts),
        "plan": sub("plan", "--prometheus-url", prometheus.url, "--to", "+2h", "-o", "json", *cluster),
        "preflight": sub("preflight", "--prometheus-url", prometheus.url, "--within", "48h", "-o", "json", *cluster),
    }
    for name, done in runs.items():
        assert "Traceback" not in done.stderr, (name, done.stderr[-2000:])
        # what the command's own checks say (preflight FAILs a raise no node can hold), never exit 2
        assert done.returncode in ((0, 1, 3) if name == "preflight" else (0,)), (name, done.returncode, done.stderr[-1000:])
    assert "instant" in runs["list"].stderr and "end is not after start" in runs["list"].stderr
    assert {p["name"] for p in json.loads(runs["list"].stdout)["events"]} == {"flash-sale"}
    assert "inverted" in runs["plan"].stderr and "minReplicas 9 is above maxReplicas 5" in runs["plan"].stderr
    assert [t["policy"] for t in json.loads(runs["plan"].stdout)["targets"]] == ["web"]
    assert "inverted" in runs["preflight"].stderr and "instant" in runs["preflight"].stderr
    assert {c["policy"] for c in json.loads(runs["preflight"].stdout)["checks"]} == {f"{kube.ns}/web"}
    # the one that makes no sense can still be deleted
    assert sub("promo", "delete", "instant", *opts).returncode == 0
