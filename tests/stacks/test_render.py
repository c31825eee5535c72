"""Every object the program declares, for dev, prod and a cluster-mode cache, as Kubernetes sees it."""

import json
import math
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from autoscaler.errors import ConfigError
from stacks.config import parse_stack_config
from stacks.crossguard import check_pdb_per_tier
from stacks.render import REPO
from stacks.render import MOCK_PASSWORD, REDACTED, render, write

KUBERNETES = "1.31"
STACKS = ("dev", "prod", "cluster", "tls")
CUSTOM_KINDS = {"Cluster", "Pooler", "ScheduledBackup", "ServiceMonitor", "ScalingPolicy"}


def builtin_objects(rendered):
    return [o for o in rendered.objects if o["kind"] not in CUSTOM_KINDS]


@pytest.mark.parametrize("stack", STACKS)
def test_every_builtin_object_validates_strictly(rendered, stack):
    objects = builtin_objects(rendered[stack])
    assert len(objects) >= 8
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")
    assert errors == []


def test_validator_is_strict_about_unknown_fields(rendered):
    sts = next(o for o in rendered["prod"].objects if o["kind"] == "StatefulSet")
    broken = json.loads(json.dumps(sts))
    broken["spec"]["replicaz"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def required(obj, *path):
    node = obj
    for key in path:
        assert isinstance(node, dict) and key in node, f"{obj['kind']}/{obj['metadata']['name']} lacks {'.'.join(path)}"
        node = node[key]
    return node


@pytest.mark.parametrize("stack", ("dev", "prod"))
def test_custom_resources_carry_what_their_operators_require(rendered, stack):
    objects = rendered[stack].objects
    kinds = {o["kind"] for o in objects}
    assert {"Cluster", "Pooler"} <= kinds
    for obj in objects:
        if obj["kind"] == "Cluster":
            assert obj["apiVersion"] == "postgresql.cnpg.io/v1"
            assert required(obj, "spec", "instances") >= 1
            assert required(obj, "spec", "storage", "size").endswith("Gi")
            assert ":" in required(obj, "spec", "imageName")
        elif obj["kind"] == "Pooler":
            assert required(obj, "spec", "cluster", "name") in {o["metadata"]["name"] for o in objects if o["kind"] == "Cluster"}
            assert required(obj, "spec", "type") in ("rw", "ro", "r")
            assert required(obj, "spec", "pgbouncer", "poolMode") in ("session", "transaction")
            assert required(obj, "spec", "instances") >= 1
        elif obj["kind"] == "ServiceMonitor":
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            assert required(obj, "spec", "selector", "matchLabels")
            for endpoint in required(obj, "spec", "endpoints"):
                assert endpoint["port"]
        elif obj["kind"] == "ScheduledBackup":
            assert len(required(obj, "spec", "schedule").split()) == 6
            assert required(obj, "spec", "cluster", "name")


def test_service_monitors_select_a_metrics_service(rendered):
    objects = rendered["prod"].objects
    services = [o for o in objects if o["kind"] == "Service"]
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert len(monitors) == 3
    for monitor in monitors:
        selector = monitor["spec"]["selector"]["matchLabels"]
        port = monitor["spec"]["endpoints"][0]["port"]
        assert any(
            all(s["metadata"].get("labels", {}).get(k) == v for k, v in selector.items()) and port in [p["name"] for p in s["spec"]["ports"]]
            for s in services
        )


@pytest.mark.parametrize("stack", STACKS)
def test_redis_password_is_never_in_clear(rendered, stack, tmp_path):
    r = rendered[stack]
    # it does reach the Secret the pods read
    secret = next(o for o in r.objects_with_secrets() if o["kind"] == "Secret")
    assert secret["stringData"]["redis-password"] == MOCK_PASSWORD
    # and nowhere else: no ConfigMap, no output, no rendered file
    for obj in r.objects_with_secrets():
        if obj["kind"] != "Secret":
            assert MOCK_PASSWORD not in json.dumps(obj), f"{obj['kind']}/{obj['metadata']['name']}"
    assert MOCK_PASSWORD not in json.dumps(r.outputs)
    files = write(r, tmp_path)
    for path in files:
        assert MOCK_PASSWORD not in path.read_text(), path
    secret_file = next(p for p in files if p.name.startswith("secret-"))
    assert yaml.safe_load(secret_file.read_text())["stringData"]["redis-password"] == REDACTED


def test_prod_tiers_carry_pdbs_and_zone_spread(rendered):
    objects = rendered["prod"].objects
    assert check_pdb_per_tier(objects) == []
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert sorted(w["metadata"]["name"] for w in workloads) == ["cache-node", "cache-sentinel", "live-edge", "live-origin"]
    for w in workloads:
        constraints = w["spec"]["template"]["spec"]["topologySpreadConstraints"]
        zone = [c for c in constraints if c["topologyKey"] == "topology.kubernetes.io/zone"]
        assert zone and zone[0]["whenUnsatisfiable"] == "DoNotSchedule", w["metadata"]["name"]
        assert "podAntiAffinity" in w["spec"]["template"]["spec"]["affinity"]
    cluster = next(o for o in objects if o["kind"] == "Cluster")
    assert [c["topologyKey"] for c in cluster["spec"]["topologySpreadConstraints"]] == ["topology.kubernetes.io/zone"]


@pytest.mark.parametrize("stack", STACKS)
def test_autoscaled_replicas_are_never_fought_by_pulumi_up(rendered, stack):
    r = rendered[stack]
    objects = {(o["kind"], o["metadata"]["name"]): o for o in r.objects}
    declared = {(d.inputs.get("kind"), (d.inputs.get("metadata") or {}).get("name")): d for d in r.resources if d.is_kubernetes_object}
    # every HPA's target ignores spec.replicas, and the HPA ignores the floor peakscale patches
    for (kind, name), hpa in [(k, o) for k, o in objects.items() if k[0] == "HorizontalPodAutoscaler"]:
        ref = hpa["spec"]["scaleTargetRef"]
        assert "spec.replicas" in declared[(ref["kind"], ref["name"])].ignore_changes
        assert "spec.minReplicas" in declared[(kind, name)].ignore_changes
    # every target peakscale scales directly ignores its replica field
    for contract in r.outputs["scaleContracts"].values():
        target = contract["targetRef"]
        entry = declared[(target["kind"], target["name"])]
        if contract["method"] == "scale":
            field = "spec.instances" if target["kind"] == "Cluster" else "spec.replicas"
            assert field in entry.ignore_changes
        elif contract["method"] == "observe":
            assert entry.ignore_changes == []


def test_scale_contracts_name_the_right_target_and_method(rendered):
    prod = rendered["prod"].outputs["scaleContracts"]
    assert prod["cache"]["targetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "cache-node", "namespace": "live"}
    assert prod["cache"]["method"] == "scale"
    assert prod["edge"]["targetRef"]["kind"] == "Deployment" and prod["edge"]["targetRef"]["name"] == "live-edge"
    assert prod["edge"]["method"] == "hpa-floor" and prod["edge"]["hpa"] == "live-edge"
    assert prod["database"]["targetRef"] == {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "name": "pg", "namespace": "live"}
    assert prod["database"]["method"] == "scale"
    # the pod start plus the clone of 200Gi at 200 MB/s, x1.5
    assert prod["database"]["leadTimeSeconds"] == 5 * 60 + math.ceil(1.5 * 200 * 2**30 / 200e6)
    assert "cnpg_pg_replication_in_recovery" in prod["database"]["metric"]["query"] and "== 1" in prod["database"]["metric"]["query"]
    assert (prod["edge"]["minReplicas"], prod["edge"]["maxReplicas"]) == (6, 120)
    # a tier's coverage reaches its ScalingPolicy; a tier that names none keeps the CRD's default
    assert (prod["cache"]["coverage"], prod["edge"]["coverage"]) == (0.999, None)



def test_a_cluster_mode_cache_scales_by_shards_and_its_reshard_job_gets_an_account_of_its_own(rendered):
    """Replicas are shards; the lead time is the pod start plus moving the whole dataset (maxmemory on
    each of the fewest shards) at the assumed throughput; the reshard step's ServiceAccount may patch
    its ScalingPolicy's status and nothing else."""
    from autoscaler.core.reshard import SLOTS, reshard_seconds

    r = rendered["cluster"]
    cluster = r.outputs["scaleContracts"]["cache"]
    assert cluster["method"] == "scale" and cluster["targetRef"]["name"] == "sessions-node"
    assert (cluster["minReplicas"], cluster["maxReplicas"]) == (3, 9)
    dataset = 3 * 2 * 2**30  # 2gb, Redis' binary unit, on each of 3 shards
    assert cluster["leadTimeSeconds"] == 45 * 60 + reshard_seconds(SLOTS, dataset, 5e6)
    assert cluster["reshard"] == {
        "datasetSize": "6144Mi", "throughput": "5MB/s", "replicasPerShard": 1, "port": 6379,
        "passwordSecret": {"name": "sessions-auth", "key": "redis-password"}, "serviceAccountName": "sessions-reshard",
    }  # fmt: skip
    objects = {(o["kind"], o["metadata"]["name"]): o for o in r.objects}
    assert ("ServiceAccount", "sessions-reshard") in objects
    assert objects[("Role", "sessions-reshard")]["rules"] == [
        {"apiGroups": ["peakscale.io"], "resources": ["scalingpolicies/status"], "resourceNames": ["cache-sessions-node"], "verbs": ["get", "patch"]}
    ]
    binding = objects[("RoleBinding", "sessions-reshard")]
    assert binding["roleRef"]["name"] == "sessions-reshard" and binding["subjects"] == [{"kind": "ServiceAccount", "name": "sessions-reshard", "namespace": "live-cluster"}]
    assert objects[("StatefulSet", "sessions-node")]["spec"]["replicas"] == 6


def test_operator_is_ordered_before_its_resources_and_data_is_protected(rendered):
    r = rendered["prod"]
    cluster = r.by_name("pg-cluster")
    assert cluster.protect
    assert "pg-operator" in cluster.depends_on
    assert r.by_name("pg-operator").type == "kubernetes:helm.sh/v3:Release"
    assert r.by_name("pg-operator").inputs["version"] == "0.22.1"
    assert r.by_name("pg-pooler").depends_on == ["pg-cluster"]


def test_children_are_parented_to_their_tier(rendered):
    for d in rendered["prod"].resources:
        if d.type.startswith(("kubernetes:", "random:")) and d.name != "namespace":
            assert d.parent in ("cache", "live", "pg", "peakscale"), d.name


def test_stack_exports_endpoints_and_secret_names(rendered):
    out = rendered["prod"].outputs
    assert out["sentinelAddress"] == "cache.live.svc.cluster.local:26379"
    assert out["databaseReadWrite"].startswith("pg-rw.live.svc")
    assert out["databaseReadOnly"].startswith("pg-ro.live.svc")
    assert out["edgeIngestUrl"].startswith("rtmp://live-origin.live.svc")
    assert "pending" in out["edgePlaybackUrl"]  # no LoadBalancer address under mocks
    assert out["cacheSecretName"] == "cache-auth" and out["databaseSecretName"] == "pg-app"


def test_edges_drain_before_they_stop(rendered):
    edge = next(o for o in rendered["prod"].objects if o["kind"] == "Deployment")
    pod = edge["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 15 * 60
    assert pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    conf = next(o for o in rendered["prod"].objects if o["kind"] == "ConfigMap" and "edge.conf" in o["data"])["data"]["edge.conf"]
    assert "force_grace_quit on;" in conf and "mode remote;" in conf
    assert conf.count("live-origin-headless") == 3  # pulls from every origin


@pytest.mark.parametrize(
    "raw, path",
    [
        ({"cache": {"redis": {"maxmemory": "lots"}}}, "peakscale:cache.redis.maxmemory"),
        ({"cache": {"image": {"repository": "redis", "tag": "latest"}}}, "peakscale:cache.image.tag"),
        ({"edge": {"scaling": {"minReplicas": 9, "maxReplicas": 3}}}, "peakscale:edge.scaling"),
        ({"database": {"instances": 0}}, "peakscale:database.instances"),
        ({"namespace": "Not_A_Name"}, "peakscale:namespace"),
        ({"cache": {"resources": {"requests": {"cpu": "lots", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}}, "peakscale:cache.resources.requests"),
        ({"cahce": {}}, "peakscale:cahce"),
    ],
)
def test_bad_config_fails_naming_the_config_path(raw, path):
    with pytest.raises(ConfigError) as info:
        parse_stack_config(raw)
    assert str(info.value).startswith(path)
    with pytest.raises(ConfigError):
        render(raw, "broken")


def test_render_command_writes_one_file_per_object(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "render", "--stack", "prod", "--out", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    yaml_files = [p for p in tmp_path.rglob("*.yaml") if p.name != "_stack.yaml"]
    assert len(yaml_files) == summary["objects"] >= 25
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in yaml_files}
    assert {"StatefulSet", "Deployment", "HorizontalPodAutoscaler", "Cluster", "Pooler", "PodDisruptionBudget"} <= kinds


def test_render_checks_the_policy_pack_on_what_it_rendered(tmp_path):
    """The repository's stacks pass every rule of the pack; a stack that breaks one (a prod cache of one
    node) is rendered, and the command exits 1 naming the rule, as `pulumi preview --policy-pack` would."""
    from stacks.crossguard import RESOURCE_RULES, STACK_RULES

    assert json.loads(subprocess.run([sys.executable, "-m", "autoscaler.cli", "render", "--stack", "prod", "--out", str(tmp_path / "prod"), "--json"], capture_output=True, text=True, timeout=120).stdout)["policy"] == {"rules": len(RESOURCE_RULES) + len(STACK_RULES), "violations": []}
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    prod = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    prod["config"]["peakscale:cache"].update({"replicas": 1, "scaling": {**prod["config"]["peakscale:cache"]["scaling"], "minReplicas": 1}})
    (repo / "Pulumi.lone.yaml").write_text(yaml.safe_dump(prod))
    done = subprocess.run([sys.executable, "-m", "autoscaler.cli", "render", "--stack", "lone", "--out", str(tmp_path / "lone")], capture_output=True, text=True, timeout=120, cwd=repo)
    assert done.returncode == 1 and "policy prod-tiers-run-two-replicas: StatefulSet live/cache-node runs 1 replica(s) in prod" in done.stdout, done.stdout + done.stderr
    assert "would refuse this stack" in done.stderr and "Traceback" not in done.stderr


def test_render_command_refuses_an_unknown_stack(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "render", "--stack", "nope", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "Pulumi.nope.yaml" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_program_is_hermetic(rendered, stack):
    # no data-source lookups against a cluster or a cloud, and only the resource types we expect
    assert rendered[stack].calls == []
    allowed = ("kubernetes:", "random:index/randomPassword:", "peakscale:stacks:")
    assert all(d.type.startswith(allowed) for d in rendered[stack].resources)


def pod_specs(objects):
    for obj in objects:
        spec = obj.get("spec") or {}
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield obj, spec["template"]["spec"]
        elif obj["kind"] == "CronJob":
            yield obj, spec["jobTemplate"]["spec"]["template"]["spec"]


@pytest.mark.parametrize("stack", STACKS)
def test_no_password_is_ever_on_a_command_line(rendered, stack):
    """ps shows every process's arguments to everyone on the node: no password goes there."""
    words = ("PASSWORD", "requirepass", "masterauth", "auth-pass", MOCK_PASSWORD, "-a ")
    objects = rendered[stack].objects_with_secrets()
    found = 0
    for obj, pod in pod_specs(objects):
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            line = " ".join(container.get("command", []) + container.get("args", []))
            found += 1
            assert not any(w in line for w in words), f"{obj['kind']}/{obj['metadata']['name']} {container['name']}: {line}"
    assert found >= 3
    # nor in the scripts the containers run: the password reaches Redis through a 0600 fragment
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            for key, text in (obj.get("data") or {}).items():
                if key.endswith(".sh"):
                    assert "--requirepass" not in text and "--masterauth" not in text, f"{obj['metadata']['name']}/{key}"
                    assert "redis-server" not in text or "umask 077" in text


def test_srs_runs_on_a_read_only_root_and_the_pooler_has_resources(rendered):
    objects = rendered["prod"].objects
    for obj, pod in pod_specs(objects):
        for container in pod["containers"]:
            assert container.get("securityContext", {}).get("readOnlyRootFilesystem") is True, f"{obj['metadata']['name']}/{container['name']}"
    pooler = next(o for o in objects if o["kind"] == "Pooler")
    resources = pooler["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] and resources["limits"]


def test_prod_pins_every_third_party_image_by_digest(rendered):
    images = {c["image"] for obj, pod in pod_specs(rendered["prod"].objects) for c in pod["containers"]}
    images |= {o["spec"]["imageName"] for o in rendered["prod"].objects if o["kind"] == "Cluster"}
    # peakscale's own image (the role-label sidecar) is tagged by the release that builds it
    third_party = {i for i in images if "/peakscale/peakscale:" not in i}
    assert third_party and len(third_party) < len(images) and all("@sha256:" in i for i in third_party), sorted(i for i in third_party if "@sha256:" not in i)


def test_rendered_output_carries_no_local_absolute_path(rendered, tmp_path):
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[2])
    files = write(rendered["prod"], tmp_path / "out")
    for path in files:
        assert repo not in path.read_text(), path
    release = yaml.safe_load((tmp_path / "out" / "_stack.yaml").read_text())
    charts = [r["inputs"].get("chart") for r in release["other_resources"] if "helm" in r["type"]]
    assert "./charts/peakscale" in charts


def test_render_out_keeps_a_manifest_removes_its_stale_files_and_refuses_a_foreign_folder(rendered, tmp_path):
    out = tmp_path / "r"
    prod = write(rendered["prod"], out)
    dev = write(rendered["dev"], out)  # a dev render into the prod folder
    on_disk = sorted(p for p in out.rglob("*") if p.is_file() and p.name != ".peakscale-render.json")
    assert on_disk == sorted(dev) and len(prod) > len(dev)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        write(rendered["dev"], foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "raw, where, says",
    [
        ({"cache": {"scaling": {"maxReplica": 6}}}, "peakscale:cache.scaling.maxReplica", "unknown key (did you mean 'maxReplicas'?)"),
        ({"edge": {"edgeResource": {}}}, "peakscale:edge.edgeResource", "unknown key (did you mean 'edgeResources'?)"),
        ({"edge": {"zzz": 3}}, "peakscale:edge.zzz", "unknown key (known: name, origins, image, originResources, edgeResources, drain, targetConnectionsPerPod, loadBalancerAnnotations, publicAddress, onPublish, metricsAdapter, metrics, scaling)"),
    ],
)
def test_a_config_typo_names_the_key_it_meant(raw, where, says):
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    assert caught.value.where == where and caught.value.problem == says


def test_the_database_backs_up_at_its_zones_quiet_hour_and_pools_reads_too(rendered):
    """prod's backup runs at 04:00 in Shanghai (20:00 UTC the day before), not 03:00 UTC (11:00 in
    Shanghai, mid-morning trade); the replicas peakscale adds serve pooled reads through an ro Pooler."""
    from stacks.config import Backup

    objects = rendered["prod"].objects
    backup = next(o for o in objects if o["kind"] == "ScheduledBackup")
    assert backup["spec"]["schedule"] == "0 0 20 * * *"
    assert Backup(at="02:30", timezone="America/New_York").cron_utc() == "0 30 7 * * *"
    poolers = {o["spec"]["type"]: o for o in objects if o["kind"] == "Pooler"}
    assert set(poolers) == {"rw", "ro"} and poolers["ro"]["metadata"]["name"] == "pg-pooler-ro"


def test_a_redis_pod_is_ready_only_once_it_serves_the_data(rendered):
    """Every Redis container's readiness is the script that waits out a replica's full sync (held
    to real servers in test_redis_conf), shipped in the tier's ConfigMap."""
    from stacks.redis_conf import READY

    for stack in ("dev", "prod", "cluster"):
        objects = rendered[stack].objects
        node = next(o for o in objects if o["kind"] == "StatefulSet" and o["metadata"]["name"].endswith("-node"))
        redis_container = next(c for c in node["spec"]["template"]["spec"]["containers"] if c["name"] == "redis")
        assert redis_container["readinessProbe"]["exec"]["command"] == ["/bin/sh", "/etc/redis/ready.sh"]
        config = next(o for o in objects if o["kind"] == "ConfigMap" and "ready.sh" in (o.get("data") or {}))
        assert config["data"]["ready.sh"] == READY
        # Sentinel mode: a terminating primary hands over first (held to real Sentinels in test_redis_conf)
        sentinel = "sentinel.conf" in config["data"]
        assert ("lifecycle" in redis_container) == sentinel
        if sentinel:
            assert redis_container["lifecycle"]["preStop"]["exec"]["command"] == ["/bin/sh", "/etc/redis/pre-stop.sh"] and "pre-stop.sh" in config["data"]


def test_the_prod_database_spreads_over_its_zones_so_its_raises_can_land(rendered):
    """Six instances (the policy's maxReplicas) over three zones: never two on a node, an even
    spread over the declared zones, no zone anti-affinity capping it at three."""
    r = rendered["prod"]
    cluster = next(o for o in r.objects if o["kind"] == "Cluster")
    affinity = cluster["spec"]["affinity"]
    assert (affinity["topologyKey"], affinity["podAntiAffinityType"]) == ("kubernetes.io/hostname", "required")
    zones = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert zones["values"] == ["cn-shanghai-a", "cn-shanghai-b", "cn-shanghai-c"]
    (spread,) = cluster["spec"]["topologySpreadConstraints"]
    assert (spread["topologyKey"], spread["whenUnsatisfiable"], spread["maxSkew"]) == ("topology.kubernetes.io/zone", "DoNotSchedule", 1)
    policy = next(o for o in r.objects if o["kind"] == "ScalingPolicy" and o["spec"]["targetRef"]["kind"] == "Cluster")
    assert policy["spec"]["maxReplicas"] == 6


def test_the_live_edge_is_reachable_served_and_guarded(rendered):
    """prod's edges: the WebRTC candidate and the LoadBalancer's IP are the reserved address (not a
    pod IP behind the LB); publishing asks the on_publish hook; HLS has a Service on the origins;
    prometheus-adapter is installed with the rule that serves the HPA's srs_clients."""
    from stacks.edge import ADAPTER_RULE

    r = rendered["prod"]
    objects = r.objects
    edge = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "live-edge")
    env = edge["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "CANDIDATE", "value": "203.0.113.10"} in env
    lb = next(o for o in objects if o["kind"] == "Service" and o["spec"].get("type") == "LoadBalancer")
    assert lb["spec"]["loadBalancerIP"] == "203.0.113.10"
    origin_conf = next(o for o in objects if o["kind"] == "ConfigMap" and "origin.conf" in o.get("data", {}))["data"]["origin.conf"]
    assert "http_hooks { enabled on; on_publish http://publish-auth.live.svc.cluster.local:8085/api/v1/streams; }" in origin_conf
    hls = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "live-origin-hls")
    origin = next(o for o in objects if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "live-origin")
    assert hls["spec"]["type"] == "ClusterIP" and hls["spec"]["selector"] == origin["spec"]["selector"]["matchLabels"]
    adapter = r.by_name("live-metrics-adapter")
    assert adapter.type == "kubernetes:helm.sh/v3:Release" and adapter.inputs["values"]["rules"]["custom"] == [ADAPTER_RULE]
    hpa = next(o for o in objects if o["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == ADAPTER_RULE["name"]["as"]
    # dev keeps the pod IP and installs no adapter
    dev_edge = next(o for o in rendered["dev"].objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-edge"))
    assert dev_edge["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_sentinels_are_a_fixed_set_of_three_apart_from_the_data_nodes_peakscale_scales(rendered):
    """The quorum (2 of 3) never moves with a raise or a lower; the client Service reaches the
    Sentinels, reads reach the data nodes; the Sentinels' sidecar forgets replicas that went."""
    from stacks.redis_conf import QUORUM, RESET_DEPARTED, SENTINEL_PORT

    objects = {(o["kind"], o["metadata"]["name"]): o for o in rendered["prod"].objects}
    sentinels, nodes = objects[("StatefulSet", "cache-sentinel")], objects[("StatefulSet", "cache-node")]
    assert sentinels["spec"]["replicas"] == 3 and QUORUM == 2
    assert f"sentinel monitor mymaster cache-node-0.cache-headless.live.svc.cluster.local 6379 {QUORUM}" in objects[("ConfigMap", "cache-config")]["data"]["sentinel.conf"]
    assert objects[("ConfigMap", "cache-config")]["data"]["reset-departed.sh"] == RESET_DEPARTED
    assert [c["name"] for c in sentinels["spec"]["template"]["spec"]["containers"]] == ["sentinel", "reset-departed"]
    assert [c["name"] for c in nodes["spec"]["template"]["spec"]["containers"]] == ["redis", "role-label", "exporter"]
    sentinel_labels = sentinels["spec"]["template"]["metadata"]["labels"]
    client = objects[("Service", "cache")]
    assert client["spec"]["ports"] == [{"name": "sentinel", "port": SENTINEL_PORT, "targetPort": "sentinel"}]
    assert all(sentinel_labels[k] == v for k, v in client["spec"]["selector"].items())
    read = objects[("Service", "cache-read")]
    assert all(nodes["spec"]["template"]["metadata"]["labels"][k] == v for k, v in read["spec"]["selector"].items())
    assert not all(sentinel_labels.get(k) == v for k, v in read["spec"]["selector"].items())
    assert objects[("PodDisruptionBudget", "cache-sentinel")]["spec"]["maxUnavailable"] == 1
    # the data nodes' StatefulSet is what the policy scales; the Sentinels' is not in any contract
    assert rendered["prod"].outputs["scaleContracts"]["cache"]["targetRef"]["name"] == "cache-node"


def test_a_tls_cache_mounts_its_secret_where_redis_its_sentinels_and_their_scripts_read_it(rendered):
    """Every container that speaks to Redis gets the Secret at /tls and the scripts' REDIS_CLI_TLS; the
    exporter reaches Redis as rediss://; held to real servers in test_redis_conf."""
    from stacks.redis_conf import REDIS_CLI_TLS, TLS_DIR

    objects = {(o["kind"], o["metadata"]["name"]): o for o in rendered["tls"].objects}
    assert "tls-port 6379" in objects[("ConfigMap", "secure-config")]["data"]["redis.conf"]
    assert "tls-port 26379" in objects[("ConfigMap", "secure-config")]["data"]["sentinel.conf"]
    for name in ("secure-node", "secure-sentinel"):
        pod = objects[("StatefulSet", name)]["spec"]["template"]["spec"]
        assert {"name": "tls", "secret": {"secretName": "secure-tls", "defaultMode": 0o440}} in pod["volumes"], name
        for container in pod["containers"]:
            if container["name"] == "exporter":
                env = {e["name"]: e.get("value") for e in container["env"]}
                assert env["REDIS_ADDR"] == "rediss://127.0.0.1:6379", env
                continue
            if container["name"] == "role-label":
                assert container["command"][-2:] == ["--tls-ca-file", f"{TLS_DIR}/ca.crt"]
                assert {"name": "tls", "mountPath": TLS_DIR, "readOnly": True} in container["volumeMounts"]
                continue
            assert {"name": "tls", "mountPath": TLS_DIR, "readOnly": True} in container["volumeMounts"], (name, container["name"])
            assert {"name": "REDIS_CLI_TLS", "value": REDIS_CLI_TLS} in container["env"], (name, container["name"])
    plain = {(o["kind"], o["metadata"]["name"]): o for o in rendered["prod"].objects}
    assert "tls-port" not in plain[("ConfigMap", "cache-config")]["data"]["redis.conf"]


def test_a_primary_only_service_follows_the_label_its_pods_keep_and_their_account_can_only_label_them(rendered):
    """cache-primary selects the pod labelled primary by its role-label sidecar (peakscale redis-role,
    held to a real Redis and the real API server in tests/controller/test_redis_role.py); the data
    pods run as an account that may get and patch the StatefulSet's own pods, by name, and nothing else."""
    from autoscaler.adapters.redis_role import ROLE_LABEL

    objects = {(o["kind"], o["metadata"]["name"]): o for o in rendered["prod"].objects}
    nodes = objects[("StatefulSet", "cache-node")]["spec"]["template"]
    primary = objects[("Service", "cache-primary")]["spec"]
    assert primary["selector"][ROLE_LABEL] == "primary" and primary["ports"][0]["port"] == 6379
    assert all(nodes["metadata"]["labels"][k] == v for k, v in primary["selector"].items() if k != ROLE_LABEL)
    assert nodes["spec"]["serviceAccountName"] == "cache-node"
    sidecar = next(c for c in nodes["spec"]["containers"] if c["name"] == "role-label")
    assert sidecar["command"] == ["peakscale", "redis-role"] and {"name": "REDISCLI_AUTH", "valueFrom": {"secretKeyRef": {"name": "cache-auth", "key": "redis-password"}}} in sidecar["env"]
    assert objects[("Role", "cache-node")]["rules"] == [{"apiGroups": [""], "resources": ["pods"], "resourceNames": [f"cache-node-{i}" for i in range(9)], "verbs": ["get", "patch"]}]
    # cluster mode has no primary to follow: no sidecar, and its pods get no API token at all
    cluster = {(o["kind"], o["metadata"]["name"]): o for o in rendered["cluster"].objects}
    assert ("Service", "sessions-primary") not in cluster
    assert cluster[("StatefulSet", "sessions-node")]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
