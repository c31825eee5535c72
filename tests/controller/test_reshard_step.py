"""The reshard step the controller drives (controller.reshard): what it does next from the StatefulSet
and the policy's Jobs, and the Job it creates. The Jobs' own work is tests/adapters/test_reshard.py
(real redis-server); the controller creating them on a real API server is tests/controller."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from autoscaler.controller.reshard import FROM_ANNOTATION, SEQ_ANNOTATION, SHARDS_ANNOTATION, job_manifest, next_step, serving
from autoscaler.core.resources import ScalingPolicySpec


def job(seq: int, shards: int, start: int, state: str | None = None) -> dict:
    conditions = [{"type": state, "status": "True"}] if state else []
    return {
        "metadata": {"name": f"cache-reshard-{seq}", "annotations": {SEQ_ANNOTATION: str(seq), SHARDS_ANNOTATION: str(shards), FROM_ANNOTATION: str(start)}},
        "status": {"conditions": conditions},
    }


def test_a_raise_grows_the_statefulset_by_whole_shards_and_starts_one_job():
    step = next_step(nodes=6, per_shard=1, target=5, jobs=[])
    assert (step.what, step.nodes, step.shards, step.listed, step.serving, step.seq) == ("grow", 10, 5, 10, 3, 1)


def test_while_a_job_runs_nothing_else_starts_and_its_new_shards_do_not_serve_yet():
    running = [job(1, 5, 3)]
    assert next_step(nodes=10, per_shard=1, target=5, jobs=running).what == "hold"
    assert next_step(nodes=10, per_shard=1, target=2, jobs=running).what == "hold"
    assert serving(10, 1, running) == 3
    assert serving(10, 1, [job(1, 5, 3, "Complete")]) == 5
    # a grow whose StatefulSet write failed: the next cycle asks for the pods, starts no second Job
    step = next_step(nodes=6, per_shard=1, target=5, jobs=running)
    assert (step.what, step.nodes, step.shards) == ("grow", 10, None)


def test_a_lower_moves_the_slots_first_and_removes_pods_only_after_its_job_succeeded():
    done_grow = [job(1, 5, 3, "Complete")]
    step = next_step(nodes=10, per_shard=1, target=3, jobs=done_grow)
    assert (step.what, step.nodes, step.shards, step.listed) == ("start", None, 3, 10)
    moving = [*done_grow, job(2, 3, 5)]
    assert next_step(nodes=10, per_shard=1, target=3, jobs=moving).what == "hold"
    assert serving(10, 1, moving) == 5  # the shards that go still serve until their slots moved
    step = next_step(nodes=10, per_shard=1, target=3, jobs=[*done_grow, job(2, 3, 5, "Complete")])
    assert (step.what, step.nodes, step.shards) == ("shrink", 6, None)


def test_an_old_job_that_reshard_to_the_same_count_never_lets_pods_go():
    """3 -> 5 -> 3 -> 5 -> 3: the first shrink's Job (to 3) is older than the grow after it."""
    history = [job(1, 3, 5, "Complete"), job(2, 5, 3, "Complete")]
    assert next_step(nodes=10, per_shard=1, target=3, jobs=history).what == "start"


def test_a_failed_job_is_followed_by_one_that_resumes():
    step = next_step(nodes=10, per_shard=1, target=5, jobs=[job(1, 5, 3, "Failed")])
    assert (step.what, step.shards, step.serving, step.seq) == ("start", 5, 3, 2)
    assert serving(10, 1, [job(1, 5, 3, "Failed")]) == 3


@settings(max_examples=200, deadline=None)
@given(per_shard=st.integers(0, 2), moves=st.lists(st.tuples(st.integers(1, 8), st.sampled_from(["run", "Complete", "Failed"])), min_size=1, max_size=30))
def test_no_pod_that_holds_slots_is_ever_removed_and_one_job_runs_at_a_time(per_shard, moves):
    """A world where Jobs finish or fail at random: the slots sit on the shards of the last Job that
    completed (a failed one may leave them anywhere it reached); a shard's pods never go while it
    holds slots, and the step never starts a Job while one runs."""
    size = per_shard + 1
    nodes, jobs, holders = 3 * size, [], 3  # shards 0..holders-1 hold slots
    for target, fate in moves:
        step = next_step(nodes, per_shard, target, jobs)
        if step.shards is not None:
            assert all(j["status"]["conditions"] for j in jobs), "a second Job while one runs"
            jobs.append(job(step.seq, step.shards, step.serving))
        if step.nodes is not None:
            nodes = step.nodes
        assert holders * size <= nodes, f"pods of a shard that holds slots removed ({holders} shards hold, {nodes} pods)"
        running = [j for j in jobs if not j["status"]["conditions"]]
        if running and fate != "run":
            shards = int(running[0]["metadata"]["annotations"][SHARDS_ANNOTATION])
            ok = fate == "Complete" and shards * size <= nodes
            running[0]["status"]["conditions"] = [{"type": "Complete" if ok else "Failed", "status": "True"}]
            holders = shards if ok else max(holders, min(shards, nodes // size))
        assert serving(nodes, per_shard, jobs) <= nodes // size


def test_the_job_runs_the_step_as_the_policys_account_with_the_password_from_its_secret():
    spec = ScalingPolicySpec.model_validate(
        {
            "targetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "cache-node"}, "mode": "scale",
            "metric": {"query": "q", "capacityPerReplica": 1000}, "leadTime": "20m", "maxReplicas": 8,
            "reshard": {"datasetSize": "8Gi", "replicasPerShard": 1, "passwordSecret": {"name": "cache-auth", "key": "redis-password"}, "serviceAccountName": "cache-reshard"},
        }
    )  # fmt: skip
    body = job_manifest(namespace="live", policy="cache", spec=spec, statefulset="cache-node", service="cache-headless", step=next_step(6, 1, 5, []), image="registry.example/peakscale:1.2")
    pod = body["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["serviceAccountName"] == "cache-reshard" and container["image"] == "registry.example/peakscale:1.2"
    assert container["command"][:2] == ["peakscale", "reshard"]
    nodes = container["command"][container["command"].index("--nodes") + 1].split(",")
    assert nodes == [f"cache-node-{i}.cache-headless.live.svc:6379" for i in range(10)]
    assert container["command"][container["command"].index("--policy") + 1] == "live/cache"
    assert container["env"] == [{"name": "REDISCLI_AUTH", "valueFrom": {"secretKeyRef": {"name": "cache-auth", "key": "redis-password"}}}]
    assert not any("password" in arg.lower() for arg in container["command"])
    assert body["metadata"]["annotations"] == {SEQ_ANNOTATION: "1", SHARDS_ANNOTATION: "5", FROM_ANNOTATION: "3"}


def test_on_a_tls_cluster_the_job_verifies_the_nodes_with_the_secrets_ca():
    spec = ScalingPolicySpec.model_validate(
        {
            "targetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "cache-node"}, "mode": "scale",
            "metric": {"query": "q", "capacityPerReplica": 1000}, "leadTime": "20m", "maxReplicas": 8,
            "reshard": {"datasetSize": "8Gi", "tlsSecret": "cache-tls"},
        }
    )  # fmt: skip
    body = job_manifest(namespace="live", policy="cache", spec=spec, statefulset="cache-node", service="cache-headless", step=next_step(6, 1, 5, []), image="i")
    pod = body["spec"]["template"]["spec"]
    command = pod["containers"][0]["command"]
    assert command[command.index("--tls-ca-file") + 1] == "/tls/ca.crt"
    assert pod["volumes"] == [{"name": "tls", "secret": {"secretName": "cache-tls", "defaultMode": 0o440}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "tls", "mountPath": "/tls", "readOnly": True}]
    plain = job_manifest(namespace="live", policy="cache", spec=spec.model_copy(update={"reshard": spec.reshard.model_copy(update={"tls_secret": None})}), statefulset="cache-node", service="cache-headless", step=next_step(6, 1, 5, []), image="i")
    assert "--tls-ca-file" not in plain["spec"]["template"]["spec"]["containers"][0]["command"] and plain["spec"]["template"]["spec"]["volumes"] == []
