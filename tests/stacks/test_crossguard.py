"""Each platform rule, both ways, and the rendered stacks against all of them."""

import subprocess
from types import SimpleNamespace

import pytest

from stacks.crossguard import (
    RESOURCE_RULES,
    STACK_RULES,
    build_policies,
    check_no_public_database,
    check_no_secrets_in_configmap,
    check_pdb_per_tier,
    check_pinned_images,
    check_prod_replicas,
    check_requests_and_limits,
)
from stacks.render import MOCK_PASSWORD

GOOD_RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}}


def workload(kind="Deployment", name="web", replicas=3, env="prod", tier="edge", image="nginx:1.27", resources=GOOD_RESOURCES):
    labels = {"app.kubernetes.io/name": name, "peakscale.io/tier": tier, "peakscale.io/environment": env}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "live", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": image, "resources": resources}]}},
        },
    }


def pdb(name="web", ns="live"):
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}},
    }


def test_pdb_rule():
    assert check_pdb_per_tier([workload(), pdb()]) == []
    assert "no PodDisruptionBudget" in check_pdb_per_tier([workload()])[0]
    assert check_pdb_per_tier([workload(), pdb(ns="elsewhere")]) != []


def test_prod_replicas_rule():
    assert check_prod_replicas([workload(replicas=2)]) == []
    assert check_prod_replicas([workload(replicas=1, env="dev")]) == []
    assert "at least 2" in check_prod_replicas([workload(replicas=1)])[0]
    hpa = {
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "live"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 9},
    }
    assert check_prod_replicas([workload(replicas=5), hpa]) != []  # the HPA may go down to 1
    cluster = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "pg", "labels": {"peakscale.io/environment": "prod"}}, "spec": {"instances": 1}}
    assert check_prod_replicas([cluster]) != []


def test_max_replicas_fit_the_clusters_zone_anti_affinity():
    """The prod database as it was: required zone anti-affinity over three zones holds three
    instances, while its policy allowed six; a spread over the zones (today's stack) holds them."""
    from stacks.crossguard import check_replicas_fit_placement

    zones = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a", "b", "c"]}]}]}}

    def world(affinity: dict, most: int) -> list[dict]:
        cluster = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "pg", "namespace": "live"}, "spec": {"instances": 3, "affinity": affinity}}
        policy = {"kind": "ScalingPolicy", "metadata": {"name": "database-pg", "namespace": "live"}, "spec": {"targetRef": {"kind": "Cluster", "name": "pg"}, "maxReplicas": most}}
        return [cluster, policy]

    by_zone = {"podAntiAffinityType": "required", "topologyKey": "topology.kubernetes.io/zone", "nodeAffinity": zones}
    assert "lower maxReplicas to 3" in check_replicas_fit_placement(world(by_zone, 6))[0]
    assert check_replicas_fit_placement(world(by_zone, 3)) == []
    assert "does not declare" in check_replicas_fit_placement(world({"podAntiAffinityType": "required", "topologyKey": "topology.kubernetes.io/zone"}, 2))[0]
    assert check_replicas_fit_placement(world({"podAntiAffinityType": "required", "topologyKey": "kubernetes.io/hostname", "nodeAffinity": zones}, 6)) == []


def _redis_world(*, limit: str, sentinels_with_data: bool = False, sentinels: int = 3) -> list[dict]:
    """A Sentinel-mode cache as the stack renders it: the ConfigMap, the data nodes, the Sentinels."""
    volumes = [{"name": "config", "configMap": {"name": "cache-config"}}]
    redis = {"name": "redis", "command": ["/bin/sh", "/etc/redis/start-redis.sh"], "resources": {"limits": {"memory": limit}}}
    sentinel = {"name": "sentinel", "command": ["/bin/sh", "/etc/redis/start-sentinel.sh"]}
    nodes = {"kind": "StatefulSet", "metadata": {"name": "cache-node", "namespace": "live"}, "spec": {"replicas": 3, "template": {"spec": {"containers": [redis, *([sentinel] if sentinels_with_data else [])], "volumes": volumes}}}}
    config = {"kind": "ConfigMap", "metadata": {"name": "cache-config", "namespace": "live"}, "data": {"redis.conf": "maxmemory 6gb\n", "sentinel.conf": "sentinel monitor mymaster x 6379 2\n"}}
    if sentinels_with_data:
        return [config, nodes]
    own = {"kind": "StatefulSet", "metadata": {"name": "cache-sentinel", "namespace": "live"}, "spec": {"replicas": sentinels, "template": {"spec": {"containers": [sentinel], "volumes": volumes}}}}
    return [config, nodes, own]


def test_redis_memory_leaves_room_to_fork_a_full_sync():
    from stacks.crossguard import check_redis_fork_room

    assert check_redis_fork_room(_redis_world(limit="9Gi")) == []
    [problem] = check_redis_fork_room(_redis_world(limit="7Gi"))
    assert "cache-node" in problem and "9216Mi" in problem


def test_sentinels_are_a_set_of_their_own_of_an_odd_number():
    from stacks.crossguard import check_sentinels_apart

    assert check_sentinels_apart(_redis_world(limit="9Gi")) == []
    assert "beside Redis" in check_sentinels_apart(_redis_world(limit="9Gi", sentinels_with_data=True))[0]
    assert "run an odd number" in check_sentinels_apart(_redis_world(limit="9Gi", sentinels=2))[0]


def test_no_loadbalancer_in_front_of_a_database():
    db = workload(name="pg", tier="database")
    lb = {"kind": "Service", "metadata": {"name": "pg"}, "spec": {"type": "LoadBalancer", "selector": {"app.kubernetes.io/name": "pg"}, "ports": [{"port": 80}]}}
    assert check_no_public_database([db, lb]) != []
    by_port = {"kind": "Service", "metadata": {"name": "x"}, "spec": {"type": "LoadBalancer", "selector": {"a": "b"}, "ports": [{"port": 5432}]}}
    assert check_no_public_database([by_port]) != []
    internal = {**lb, "spec": {**lb["spec"], "type": "ClusterIP"}}
    edge_lb = {"kind": "Service", "metadata": {"name": "edge"}, "spec": {"type": "LoadBalancer", "selector": {"app.kubernetes.io/name": "web"}, "ports": [{"port": 1935}]}}
    assert check_no_public_database([db, internal, workload(), edge_lb]) == []


def test_requests_and_limits_rule():
    assert check_requests_and_limits(workload()) == []
    missing = check_requests_and_limits(workload(resources={"requests": {"cpu": "1"}}))
    assert any("limits" in m for m in missing) and any("memory" in m for m in missing)


@pytest.mark.parametrize("image, ok", [("nginx:1.27", True), ("docker.io/library/redis:7.2.5", True), ("redis@sha256:" + "a" * 64, True), ("nginx", False), ("nginx:latest", False), ("registry:5000/app", False)])
def test_pinned_images_rule(image, ok):
    assert (check_pinned_images(workload(image=image)) == []) is ok


@pytest.mark.parametrize(
    "data, ok",
    [
        ({"redis.conf": "maxmemory 1gb\n"}, True),
        ({"start.sh": 'exec redis-server --requirepass "$REDIS_PASSWORD"\n'}, True),
        ({"redis.conf": "requirepass hunter2\n"}, False),
        ({"sentinel.conf": "sentinel auth-pass mymaster hunter2\n"}, False),
        ({"db_password": "hunter2"}, False),
        ({"tls.key": "-----BEGIN RSA PRIVATE KEY-----\nabc\n"}, False),
        ({"app.properties": f"url=redis://cache\nauth={MOCK_PASSWORD}\n"}, False),
    ],
)
def test_no_secrets_in_configmaps_rule(data, ok):
    cm = {"kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "live"}, "data": data}
    assert (check_no_secrets_in_configmap(cm, [MOCK_PASSWORD]) == []) is ok


@pytest.mark.parametrize("stack", ("dev", "prod", "cluster", "tls"))
def test_rendered_stacks_pass_every_rule(rendered, stack):
    objects = rendered[stack].objects
    for name, rule in STACK_RULES.items():
        assert rule(objects) == [], name
    for obj in objects:
        for name, rule in RESOURCE_RULES.items():
            findings = rule(obj, [MOCK_PASSWORD]) if name == "no-secrets-in-configmaps" else rule(obj)
            assert findings == [], (name, obj["kind"], obj["metadata"]["name"])


def test_rendered_shell_scripts_parse(rendered, tmp_path):
    for r in rendered.values():
        for obj in r.objects:
            for key, text in (obj.get("data") or {}).items():
                if key.endswith(".sh"):
                    script = tmp_path / key
                    script.write_text(text)
                    assert subprocess.run(["sh", "-n", str(script)], capture_output=True).returncode == 0, key


def test_policy_pack_reports_through_pulumi_policy():
    policies = {p.name: p for p in build_policies()}
    assert set(policies) == set(RESOURCE_RULES) | set(STACK_RULES)
    seen = []
    bad = workload(image="nginx:latest")
    args = SimpleNamespace(resource_type="kubernetes:apps/v1:Deployment", props=bad, name="web")
    policies["images-pinned"].validate(args, lambda message, urn=None: seen.append(message))
    assert seen and "unpinned" in seen[0]
    seen.clear()
    stack_args = SimpleNamespace(resources=[SimpleNamespace(resource_type="kubernetes:apps/v1:Deployment", props=workload(), name="web")])
    policies["every-tier-has-a-pdb"].validate(stack_args, lambda message, urn=None: seen.append(message))
    assert seen and "PodDisruptionBudget" in seen[0]
    seen.clear()
    policies["every-tier-has-a-pdb"].validate(
        SimpleNamespace(resources=stack_args.resources + [SimpleNamespace(resource_type="kubernetes:policy/v1:PodDisruptionBudget", props=pdb(), name="pdb")]),
        lambda message, urn=None: seen.append(message),
    )
    assert seen == []
