"""The rules a platform team enforces on every stack, as a Pulumi CrossGuard policy pack.

Each rule is a pure function over Kubernetes-shaped dicts returning the violations it finds (an
empty list when the stack is fine), so it is unit-tested both ways without an engine. ``POLICIES``
wraps them as ``pulumi_policy`` policies; ``policy/__main__.py`` serves them as the pack
(``pulumi preview --policy-pack policy``).

Rules:
* every tier has a PodDisruptionBudget;
* prod tiers run at least 2 replicas;
* no LoadBalancer in front of a database;
* every container has requests and limits (cpu and memory);
* images pinned by tag or digest, never ``latest``;
* Secrets never in ConfigMaps;
* a ScalingPolicy's maxReplicas fits the zone anti-affinity and the zones of the Cluster it scales.
"""

from __future__ import annotations

import re
from typing import Any
from collections.abc import Iterable

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
DATABASE_PORTS = {5432, 3306, 27017, 6379, 26379}
_SECRET_KEY = re.compile(r"(passw(or)?d|secret|token|api[-_]?key|private[-_]?key|credential)", re.IGNORECASE)
# a directive followed by a literal value (not a $VARIABLE or a placeholder)
_SECRET_DIRECTIVE = re.compile(
    r"^\s*(requirepass|masterauth|sentinel\s+auth-pass\s+\S+|password|passwd)\s*[=:]?\s*(?P<value>[^\s$\"'<{][^\s]*)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _name(obj: dict) -> str:
    meta = _meta(obj)
    return f"{obj.get('kind', '?')} {meta.get('namespace', '-')}/{meta.get('name', '?')}"


def pod_template(obj: dict) -> dict | None:
    spec = obj.get("spec") or {}
    if obj.get("kind") in WORKLOAD_KINDS:
        return spec.get("template") or {}
    if obj.get("kind") == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    if obj.get("kind") == "Pod":
        return obj
    return None


def containers(obj: dict) -> list[dict]:
    template = pod_template(obj)
    if template is None:
        return []
    spec = template.get("spec") or {}
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def _matches(selector: dict | None, labels: dict) -> bool:
    match = (selector or {}).get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def _tier_workloads(objects: Iterable[dict]) -> list[dict]:
    return [
        o
        for o in objects
        if o.get("kind") in ("Deployment", "StatefulSet")
        and "peakscale.io/tier" in ((pod_template(o) or {}).get("metadata") or {}).get("labels", {})
    ]


def check_pdb_per_tier(objects: list[dict]) -> list[str]:
    """Every tier workload is covered by a PodDisruptionBudget in its namespace."""
    pdbs = [o for o in objects if o.get("kind") == "PodDisruptionBudget"]
    out = []
    for workload in _tier_workloads(objects):
        labels = ((pod_template(workload) or {}).get("metadata") or {}).get("labels", {})
        ns = _meta(workload).get("namespace")
        if not any(_meta(p).get("namespace") == ns and _matches((p.get("spec") or {}).get("selector"), labels) for p in pdbs):
            out.append(f"{_name(workload)} has no PodDisruptionBudget: add one selecting its pods")
    # CloudNativePG creates its own PDBs for a Cluster; nothing to check there
    return out


def check_prod_replicas(objects: list[dict], minimum: int = 2) -> list[str]:
    """Tiers labelled ``peakscale.io/environment: prod`` run at least ``minimum`` replicas."""
    out = []
    hpas = {(_meta(h).get("namespace"), ((h.get("spec") or {}).get("scaleTargetRef") or {}).get("name")): h for h in objects if h.get("kind") == "HorizontalPodAutoscaler"}
    for o in objects:
        labels = _meta(o).get("labels") or {}
        if labels.get("peakscale.io/environment") != "prod":
            continue
        spec = o.get("spec") or {}
        if o.get("kind") in ("Deployment", "StatefulSet"):
            hpa = hpas.get((_meta(o).get("namespace"), _meta(o).get("name")))
            count = (hpa.get("spec") or {}).get("minReplicas", 1) if hpa else spec.get("replicas", 1)
            if count < minimum:
                out.append(f"{_name(o)} runs {count} replica(s) in prod: run at least {minimum}")
        elif o.get("kind") == "Cluster" and str(o.get("apiVersion", "")).startswith("postgresql.cnpg.io/"):
            if spec.get("instances", 1) < minimum:
                out.append(f"{_name(o)} runs {spec.get('instances', 1)} instance(s) in prod: run at least {minimum}")
    return out


def check_replicas_fit_placement(objects: list[dict]) -> list[str]:
    """A ScalingPolicy's maxReplicas fits the placement of what it scales: a CloudNativePG Cluster
    with a required anti-affinity over a topology key holds one instance per domain, so over zones
    at most as many instances as the zones its node affinity allows (and they must be declared)."""
    clusters = {(_meta(o).get("namespace"), _meta(o).get("name")): o for o in objects if o.get("kind") == "Cluster" and str(o.get("apiVersion", "")).startswith("postgresql.cnpg.io/")}
    out = []
    for policy in (o for o in objects if o.get("kind") == "ScalingPolicy"):
        spec = policy.get("spec") or {}
        target = spec.get("targetRef") or {}
        cluster = clusters.get((_meta(policy).get("namespace"), target.get("name"))) if target.get("kind") == "Cluster" else None
        affinity = ((cluster or {}).get("spec") or {}).get("affinity") or {}
        if affinity.get("podAntiAffinityType") != "required" or affinity.get("topologyKey") != "topology.kubernetes.io/zone":
            continue
        terms = (((affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")) or []
        zones = {v for t in terms for e in t.get("matchExpressions") or [] if e.get("key") == "topology.kubernetes.io/zone" and e.get("operator") == "In" for v in e.get("values") or []}
        most = spec.get("maxReplicas", 0)
        if not zones:
            out.append(f"{_name(policy)} scales {_name(cluster or {})}, one instance per zone, over zones it does not declare: give its affinity a nodeAffinity on topology.kubernetes.io/zone")
        elif most > len(zones):
            out.append(f"{_name(policy)} allows maxReplicas {most}, but {_name(cluster or {})} holds one instance per zone over {len(zones)} zones: lower maxReplicas to {len(zones)} or spread the instances (topologySpreadConstraints) instead of a zone anti-affinity")
    return out


def _mounting(objects: list[dict], config_map: str | None, namespace: str | None) -> list[dict]:
    """The workloads whose pods mount the ConfigMap ``config_map`` (in ``namespace``)."""
    return [
        o for o in objects
        if o.get("kind") in ("Deployment", "StatefulSet") and _meta(o).get("namespace") == namespace
        and any((v.get("configMap") or {}).get("name") == config_map for v in ((pod_template(o) or {}).get("spec") or {}).get("volumes") or [])
    ]  # fmt: skip


def _starts(workload: dict, script: str) -> bool:
    return any(script in " ".join(c.get("command") or []) for c in containers(workload))


def check_redis_fork_room(objects: list[dict]) -> list[str]:
    """A Redis container's memory limit leaves room to fork a full sync: at least 1.5x the maxmemory of
    the redis.conf its pod mounts (copy-on-write of what is written meanwhile, the replicas' buffers)."""
    from autoscaler.controller.headroom import quantity
    from stacks.config import FORK_ROOM, RedisSettings

    out = []
    for cm in (o for o in objects if o.get("kind") == "ConfigMap" and "redis.conf" in (o.get("data") or {})):
        line = next((ln for ln in cm["data"]["redis.conf"].splitlines() if ln.startswith("maxmemory ")), None)
        if line is None:
            continue
        need = FORK_ROOM * RedisSettings(maxmemory=line.split()[1]).maxmemory_bytes
        for workload in _mounting(objects, _meta(cm).get("name"), _meta(cm).get("namespace")):
            for c in containers(workload):
                limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
                if "start-redis.sh" in " ".join(c.get("command") or []) and (limit is None or quantity(limit, "memory") < need):
                    out.append(f"{_name(workload)} container {c.get('name')} has memory limit {limit} for maxmemory {line.split()[1]}: give at least {need / 2**20:.0f}Mi (1.5x) or lower maxmemory")
    return out


def check_sentinels_apart(objects: list[dict]) -> list[str]:
    """Sentinels run as a set of their own, an odd number of at least three, never beside the data
    nodes peakscale scales (a raise or a lower would move the quorum and leave departed Sentinels)."""
    out = []
    for cm in (o for o in objects if o.get("kind") == "ConfigMap" and "sentinel.conf" in (o.get("data") or {})):
        for workload in _mounting(objects, _meta(cm).get("name"), _meta(cm).get("namespace")):
            if not _starts(workload, "start-sentinel.sh"):
                continue
            replicas = (workload.get("spec") or {}).get("replicas", 1)
            if _starts(workload, "start-redis.sh"):
                out.append(f"{_name(workload)} runs Sentinel beside Redis: give the Sentinels a StatefulSet of their own")
            elif replicas < 3 or replicas % 2 == 0:
                out.append(f"{_name(workload)} runs {replicas} Sentinel(s): run an odd number, at least 3")
    return out


def _is_database_selector(selector: dict, objects: list[dict]) -> bool:
    if not selector:
        return False
    if selector.get("peakscale.io/tier") == "database" or "cnpg.io/cluster" in selector:
        return True
    for o in objects:
        labels = ((pod_template(o) or {}).get("metadata") or {}).get("labels", {})
        if labels.get("peakscale.io/tier") == "database" and all(labels.get(k) == v for k, v in selector.items()):
            return True
    return False


def check_no_public_database(objects: list[dict]) -> list[str]:
    """No Service of type LoadBalancer in front of a database (by selector or by port)."""
    out = []
    for o in objects:
        spec = o.get("spec") or {}
        if o.get("kind") != "Service" or spec.get("type") != "LoadBalancer":
            continue
        ports = {p.get("port") for p in spec.get("ports") or []} | {p.get("targetPort") for p in spec.get("ports") or []}
        if _is_database_selector(spec.get("selector") or {}, objects) or ports & DATABASE_PORTS:
            out.append(f"{_name(o)} is a LoadBalancer in front of a database: use ClusterIP and a private path")
    return out


def check_requests_and_limits(obj: dict) -> list[str]:
    out = []
    for c in containers(obj):
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if r not in (res.get(part) or {})]
            if missing:
                out.append(f"{_name(obj)} container {c.get('name', '?')} has no {part} for {', '.join(missing)}")
    if obj.get("kind") == "Cluster" and str(obj.get("apiVersion", "")).startswith("postgresql.cnpg.io/"):
        res = (obj.get("spec") or {}).get("resources") or {}
        if not (res.get("requests") and res.get("limits")):
            out.append(f"{_name(obj)} has no resources.requests and limits")
    return out


def image_is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.rsplit(":", 1)[1]
    return bool(tag) and tag != "latest"


def check_pinned_images(obj: dict) -> list[str]:
    out = []
    images = [(c.get("name", "?"), c.get("image", "")) for c in containers(obj)]
    if obj.get("kind") == "Cluster" and str(obj.get("apiVersion", "")).startswith("postgresql.cnpg.io/"):
        image = (obj.get("spec") or {}).get("imageName")
        if image:
            images.append(("postgres", image))
    for name, image in images:
        if not image_is_pinned(str(image)):
            out.append(f"{_name(obj)} container {name} uses unpinned image {image!r}: pin a version tag or digest")
    return out


def check_no_secrets_in_configmap(obj: dict, known_secrets: Iterable[str] = ()) -> list[str]:
    if obj.get("kind") != "ConfigMap":
        return []
    out = []
    secrets = [s for s in known_secrets if s]
    for key, value in {**(obj.get("data") or {}), **(obj.get("binaryData") or {})}.items():
        text = str(value)
        if _SECRET_KEY.search(key) and text.strip():
            out.append(f"{_name(obj)} key {key!r} looks like a secret: move it to a Secret")
        match = _SECRET_DIRECTIVE.search(text)
        if match:
            out.append(f"{_name(obj)} key {key!r} sets {match.group(1)} to a literal: pass it from a Secret")
        if _PRIVATE_KEY.search(text):
            out.append(f"{_name(obj)} key {key!r} holds a private key: move it to a Secret")
        if any(s in text for s in secrets):
            out.append(f"{_name(obj)} key {key!r} contains a secret value: move it to a Secret")
    return out


RESOURCE_RULES = {
    "containers-have-requests-and-limits": check_requests_and_limits,
    "images-pinned": check_pinned_images,
    "no-secrets-in-configmaps": check_no_secrets_in_configmap,
}
STACK_RULES = {
    "every-tier-has-a-pdb": check_pdb_per_tier,
    "prod-tiers-run-two-replicas": check_prod_replicas,
    "no-loadbalancer-in-front-of-a-database": check_no_public_database,
    "max-replicas-fit-placement": check_replicas_fit_placement,
    "redis-memory-leaves-fork-room": check_redis_fork_room,
    "sentinels-are-their-own-odd-set": check_sentinels_apart,
}
DESCRIPTIONS = {
    "containers-have-requests-and-limits": "Every container sets cpu and memory requests and limits.",
    "images-pinned": "Images are pinned by a version tag or a digest, never 'latest'.",
    "no-secrets-in-configmaps": "Passwords, tokens and keys live in Secrets, never in ConfigMaps.",
    "every-tier-has-a-pdb": "Every tier's workload is covered by a PodDisruptionBudget.",
    "prod-tiers-run-two-replicas": "Production tiers run at least two replicas.",
    "no-loadbalancer-in-front-of-a-database": "Databases are never exposed through a LoadBalancer Service.",
    "max-replicas-fit-placement": "A ScalingPolicy's maxReplicas fits the anti-affinity and the zones of what it scales.",
    "redis-memory-leaves-fork-room": "A Redis container's memory limit is at least 1.5x its maxmemory: room to fork a full sync.",
    "sentinels-are-their-own-odd-set": "Sentinels run as a set of their own, an odd number of at least three, never beside the data nodes.",
}


def violations(objects: list[dict]) -> list[tuple[str, str]]:
    """(rule, message) for every rule the objects break, as the policy pack would report them at
    ``pulumi preview --policy-pack policy`` (``peakscale render`` checks what it rendered with it)."""
    found = [(name, message) for name, rule in STACK_RULES.items() for message in rule(objects)]
    return found + [(name, message) for obj in objects for name, check in RESOURCE_RULES.items() for message in check(obj)]


def _as_object(resource_type: str, props: dict[str, Any]) -> dict | None:
    if not resource_type.startswith("kubernetes:") or resource_type.startswith("kubernetes:helm.sh/"):
        return None
    obj = dict(props)
    if "kind" not in obj:
        obj["kind"] = resource_type.rsplit(":", 1)[-1]
    return obj


def build_policies() -> list:
    """The rules as ``pulumi_policy`` policies (mandatory)."""
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

    policies = []
    for name, rule in RESOURCE_RULES.items():

        def validate(args, report_violation, rule=rule):
            obj = _as_object(args.resource_type, args.props)
            for message in rule(obj) if obj is not None else []:
                report_violation(message, None)

        policies.append(ResourceValidationPolicy(name=name, description=DESCRIPTIONS[name], validate=validate, enforcement_level=EnforcementLevel.MANDATORY))
    for name, stack_rule in STACK_RULES.items():

        def validate_stack(args, report_violation, rule=stack_rule):
            objects = [o for o in (_as_object(r.resource_type, r.props) for r in args.resources) if o is not None]
            for message in rule(objects):
                report_violation(message, None)

        policies.append(StackValidationPolicy(name=name, description=DESCRIPTIONS[name], validate=validate_stack, enforcement_level=EnforcementLevel.MANDATORY))
    return policies
