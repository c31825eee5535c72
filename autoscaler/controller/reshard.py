"""The reshard step of a resharding tier, as the controller drives it.

A ScalingPolicy with ``spec.reshard`` scales a Redis Cluster cache by shards (mode scale): its
replicas are shards, each a primary and ``replicasPerShard`` replicas, the StatefulSet's pods in
ordinal order. The cycle decides a shard count as for any tier; this module carries it out:

* up: the StatefulSet grows by whole shards at once, then a Job runs ``peakscale reshard`` (join the
  new shards, move slots to them, report into ``status.reshard``);
* down: a Job moves the slots off the shards that go and lets them go first; the StatefulSet shrinks
  only once the latest Job succeeded for that count, so a pod is never removed while it holds slots;
* one Job at a time: while one runs, nothing else starts (a restart, or a new leader, finds it by its
  label and waits for it); a failed one is followed by a new one, which resumes from the cluster's own
  state (``ClusterAdmin.reshard``); Jobs are numbered, the latest is the record.

The Job runs in the policy's namespace as the ServiceAccount its spec names (the stack's: it may patch
this policy's status and nothing else), never as the controller; its image is the controller's own
(``--reshard-image``), never one a tenant picks; the password reaches it as ``REDISCLI_AUTH`` from the
Secret the spec names, never on a command line. ``next_step`` decides from what it reads; it is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from autoscaler.core.resources import ScalingPolicySpec

#: the label a reshard Job carries: the policy it serves
POLICY_LABEL = "peakscale.io/reshard-for"
#: its annotations: its number (the latest is the record) and the shard count it reshards to
SEQ_ANNOTATION = "peakscale.io/reshard-seq"
SHARDS_ANNOTATION = "peakscale.io/shards"
#: and the shard count the cluster served when it started
FROM_ANNOTATION = "peakscale.io/from-shards"
#: a finished Job is kept this long for `kubectl logs` and its status
JOB_TTL_S = 86400
#: where a TLS cluster's Secret is mounted in the Job
TLS_DIR = "/tls"


@dataclass(frozen=True)
class Step:
    """What to do for a shard count: ``hold`` (nothing), ``grow`` (the StatefulSet to ``nodes``, then
    a Job), ``start`` (a Job only) or ``shrink`` (the StatefulSet to ``nodes``)."""

    what: Literal["hold", "grow", "start", "shrink"]
    why: str
    nodes: int | None = None
    #: the Job to create: the shard count it reshards to, the pods it lists, its number
    shards: int | None = None
    listed: int | None = None
    seq: int = 0
    #: the shards serving when the Job starts
    serving: int = 0


def finished(job: dict[str, Any]) -> str | None:
    """'Complete' or 'Failed' once a Job is over (its conditions), else None."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


def _number(job: dict[str, Any] | None, annotation: str) -> int:
    try:
        return int((((job or {}).get("metadata") or {}).get("annotations") or {}).get(annotation, "0"))
    except ValueError:
        return 0


def _seq(job: dict[str, Any]) -> int:
    return _number(job, SEQ_ANNOTATION)


def serving(nodes: int, per_shard: int, jobs: list[dict[str, Any]]) -> int:
    """The shards that serve: the StatefulSet's whole shards, but while the latest Job that grows the
    cluster has not completed, the count it started from (new pods hold no slots until it has)."""
    latest = max(jobs, key=_seq, default=None)
    present = nodes // (per_shard + 1)
    if latest is not None and finished(latest) != "Complete" and _number(latest, SHARDS_ANNOTATION) > _number(latest, FROM_ANNOTATION):
        return min(present, _number(latest, FROM_ANNOTATION))
    return present


def next_step(nodes: int, per_shard: int, target: int, jobs: list[dict[str, Any]]) -> Step:
    """The step toward ``target`` shards from a StatefulSet of ``nodes`` pods and the policy's Jobs."""
    size = per_shard + 1
    current = nodes // size
    latest = max(jobs, key=_seq, default=None)
    seq = _seq(latest) + 1 if latest is not None else 1
    shards = _number(latest, SHARDS_ANNOTATION)
    state = finished(latest) if latest is not None else None
    name = (latest or {}).get("metadata", {}).get("name")
    if latest is not None and state is None:
        if shards * size > nodes:  # a grow whose pods were not asked for yet (the write failed)
            return Step("grow", f"reshard Job {name} waits for the pods of {shards} shard(s)", nodes=shards * size)
        return Step("hold", f"reshard Job {name} is still running (status.reshard has its progress)")
    if state == "Failed" and shards == target and (target != current or target * size >= nodes):
        # a grow's pods asked for again where that write was lost; a lower's stay until it succeeds
        room = max(nodes, target * size)
        return Step("start", f"reshard Job {name} failed: a new one resumes from the cluster's own state", nodes=room, shards=target, listed=room, seq=seq, serving=_number(latest, FROM_ANNOTATION))
    if target > current:
        return Step("grow", f"{target * size - nodes} pod(s) for {target - current} new shard(s), joined and given slots by a reshard Job", nodes=target * size, shards=target, listed=target * size, seq=seq, serving=current)
    if target == current:
        return Step("hold", f"{current} shard(s) already")
    if state == "Complete" and shards == target:
        return Step("shrink", f"reshard Job {name} moved the slots off {current - target} shard(s): their pods go", nodes=target * size)
    return Step("start", f"a reshard Job moves the slots off {current - target} shard(s) before their pods go", shards=target, listed=nodes, seq=seq, serving=current)


def job_manifest(*, namespace: str, policy: str, spec: ScalingPolicySpec, statefulset: str, service: str, step: Step, image: str) -> dict[str, Any]:
    """The Job that runs ``peakscale reshard`` for ``step`` (its shards, the pods it lists)."""
    reshard = spec.reshard
    assert reshard is not None and step.shards is not None and step.listed is not None
    pods = ",".join(f"{statefulset}-{i}.{service}.{namespace}.svc:{reshard.port}" for i in range(step.listed))
    command = ["peakscale", "reshard", "--nodes", pods, "--shards", str(step.shards), "--replicas-per-shard", str(reshard.replicas_per_shard), "--policy", f"{namespace}/{policy}"]
    if reshard.tls_secret is not None:
        command += ["--tls-ca-file", f"{TLS_DIR}/ca.crt"]
    env = []
    if reshard.password_secret is not None:
        env.append({"name": "REDISCLI_AUTH", "valueFrom": {"secretKeyRef": {"name": reshard.password_secret.name, "key": reshard.password_secret.key}}})
    labels = {"app.kubernetes.io/managed-by": "peakscale", "app.kubernetes.io/component": "reshard", POLICY_LABEL: policy}
    container = {
        "name": "reshard", "image": image, "command": command, "env": env,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
    }  # fmt: skip
    volumes = []
    if reshard.tls_secret is not None:
        container["volumeMounts"] = [{"name": "tls", "mountPath": TLS_DIR, "readOnly": True}]
        volumes = [{"name": "tls", "secret": {"secretName": reshard.tls_secret, "defaultMode": 0o440}}]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{policy}-reshard-{step.seq}"[:63].rstrip("-."),
            "namespace": namespace,
            "labels": labels,
            "annotations": {SEQ_ANNOTATION: str(step.seq), SHARDS_ANNOTATION: str(step.shards), FROM_ANNOTATION: str(step.serving)},
        },
        "spec": {
            "backoffLimit": 6,
            "ttlSecondsAfterFinished": JOB_TTL_S,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": reshard.service_account_name,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def carry_out(kube: Any, *, namespace: str, policy: str, spec: ScalingPolicySpec, target: int, image: str | None, jobs: list[dict[str, Any]] | None = None) -> Step:
    """Read the StatefulSet (and the policy's Jobs, unless this cycle's observation listed them:
    ``jobs``), take the next step toward ``target`` shards, and return it (``hold``: nothing
    written). A Job another leader created first is left to run."""
    from autoscaler.adapters.kube_jobs import create_job, list_jobs
    from autoscaler.errors import KubeError

    assert spec.reshard is not None
    ref = spec.target_ref
    if ref.kind != "StatefulSet":
        raise KubeError(f"spec.reshard needs a StatefulSet target, not {ref.kind}")
    statefulset = kube.get_workload(namespace, ref.kind, ref.name)
    nodes = int((statefulset.get("spec") or {}).get("replicas") or 0)
    jobs = list_jobs(kube, namespace, f"{POLICY_LABEL}={policy}") if jobs is None else jobs
    step = next_step(nodes, spec.reshard.replicas_per_shard, target, jobs)
    if step.what in ("grow", "start") and not image:
        raise KubeError("a resharding policy needs the controller's --reshard-image (the chart sets it to the controller's own image)")
    # the Job first: a grow whose StatefulSet write fails is finished by the next cycle (the running
    # Job names its shards), where pods asked for without their Job would never be joined
    if step.shards is not None:
        assert image is not None
        service = (statefulset.get("spec") or {}).get("serviceName") or ref.name
        create_job(kube, job_manifest(namespace=namespace, policy=policy, spec=spec, statefulset=ref.name, service=service, step=step, image=image))
    if step.nodes is not None and step.nodes != nodes:
        kube.set_replicas(namespace, ref.kind, ref.name, step.nodes)
    return step
