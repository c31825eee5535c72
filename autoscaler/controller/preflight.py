"""Preflight: can every planned raise actually happen? Checked the day before, not at 19:58.

For each promotion in scope and each ScalingPolicy it targets, the planned raise is what
``peakscale plan`` shows (the controller's own cycles replayed, ``plan_report.replay_target``): the
highest floor or replica count in the promotion's action window, and the node-headroom
placeholders ahead of it. Against the cluster and Prometheus it checks:

* the target exists and can be scaled (its HPA in hpa-floor mode, its scale subresource otherwise);
* the HPA's ``maxReplicas`` is at least the planned floor (else the raise is silently clipped);
* the namespace's ResourceQuotas have room for the extra pods times their requests;
* the nodes the target's pods can land on (nodeSelector, required node affinity, taints) have room
  for them, counting what headroom placeholders hold as room; what is missing, in cores and GiB;
* no PodDisruptionBudget blocks draining the nodes added for the peak;
* Prometheus answers the policy's query with the history its forecast learns from;
* a controller holds the Lease, renewed it recently, and knows every field the policy sets;
* with node headroom, its PriorityClass exists and is negative.

Each check is PASS, WARN or FAIL with the fix. ``peakscale preflight`` prints them and exits 0
(all pass), 3 (warnings only) or 1 (a failure); the controller runs the same checks for each
promotion a day ahead and reports them as a ``Preflight`` condition.
"""

from __future__ import annotations

import math
from datetime import datetime, UTC
from collections.abc import Callable

import numpy as np

from autoscaler.core.resources import expressions_match
from autoscaler.core.calendar import PromotionEvent
from autoscaler.errors import InputError
from autoscaler.controller.headroom import COMPONENT, MANAGED_BY, PodShape, quantity, shape_of
from autoscaler.adapters.inputs import PolicyDoc
from autoscaler.controller.preflight_model import FAIL, PASS, WARN, Check, ClusterFacts, PlannedRaise, TargetFacts, planned_raise, policy_field_fix
from autoscaler.controller.preflight_reshard import check_reshard

#: exit code of ``peakscale preflight`` by the worst status
GIB = 1024**3


def _obj(kind: str, ns: str, name: str) -> str:
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"


# --- the checks (pure) ----------------------------------------------------------------------------


def check_target(r: PlannedRaise, t: TargetFacts) -> Check:
    spec, ns = r.policy.spec, r.policy.namespace
    ref = spec.target_ref
    if t.missing:
        return Check(status=FAIL, check="target", object=_obj(ref.kind, ns, ref.name), message=t.missing, fix=_target_fix(spec.mode, ref.kind, ref.name))
    if spec.mode == "hpa-floor":
        return Check(status=PASS, check="target", object=_obj("HorizontalPodAutoscaler", ns, t.hpa.name if t.hpa else ref.name), message=f"owns {ref.kind} {ref.name} ({t.current} replicas)")
    return Check(status=PASS, check="target", object=_obj(ref.kind, ns, ref.name), message=f"has a scale subresource ({t.current} replicas)")


def _target_fix(mode: str, kind: str, name: str) -> str:
    if mode == "hpa-floor":
        return f"create an HPA for {kind} {name}, or use mode: scale"
    return f"create {kind} {name}, or point targetRef at a Deployment, StatefulSet or CloudNativePG Cluster"


def check_hpa_max(r: PlannedRaise, t: TargetFacts) -> Check | None:
    if r.policy.spec.mode != "hpa-floor" or t.hpa is None:
        return None
    hpa, ns = t.hpa, r.policy.namespace
    what = _obj("HorizontalPodAutoscaler", ns, hpa.name)
    if hpa.max_replicas < r.planned:
        kubectl = f"kubectl -n {ns} patch hpa {hpa.name} -p '{{\"spec\":{{\"maxReplicas\":{r.planned}}}}}'"
        return Check(
            status=FAIL, check="hpa-max", object=what,
            message=f"maxReplicas {hpa.max_replicas} clips the planned floor of {r.planned}: the raise stops at {hpa.max_replicas}",
            fix=owner_fix(hpa.raw.get("metadata") or {}, r.policy, "scaling.maxReplicas", r.planned, kubectl),
        )  # fmt: skip
    return Check(status=PASS, check="hpa-max", object=what, message=f"maxReplicas {hpa.max_replicas} >= planned floor {r.planned}")


def owner_fix(meta: dict, policy: PolicyDoc, path: str, value: int, kubectl: str) -> str:
    """The fix of a field where its owner keeps it: the stack's config when Pulumi manages the
    object (a kubectl patch would be reverted by the next pulumi up), the release's values when
    Helm does, else ``kubectl``."""
    managers = {str(m.get("manager", "")) for m in meta.get("managedFields") or []}
    tier = policy.labels.get("peakscale.io/tier")
    if any(m.startswith("pulumi") for m in managers):
        where = f"peakscale:{tier}.{path}" if tier else f"the stack config of this tier ({path})"
        return f"pulumi config set --path {where} {value} && pulumi up (Pulumi owns it: a kubectl patch would be reverted)"
    if (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") == "Helm":
        return f"set it to {value} in the values of Helm release {(meta.get('annotations') or {}).get('meta.helm.sh/release-name', '?')} and helm upgrade (Helm owns it)"
    return kubectl


def check_policy_max(r: PlannedRaise) -> Check | None:
    """The policy's own maxReplicas caps what the forecast needs: what plan says, said here too."""
    if r.capped_need is None:
        return None
    what = _obj("ScalingPolicy", r.policy.namespace, r.policy.name)
    fix = policy_field_fix(r.policy, "maxReplicas", r.capped_need)
    return Check(status=WARN, check="policy-max", object=what, message=f"maxReplicas {r.policy.spec.max_replicas} caps the plan at {r.planned}: the forecast needs {r.capped_need}", fix=fix)


def check_spread(r: PlannedRaise, t: TargetFacts, c: ClusterFacts) -> list[Check]:
    """Required pod anti-affinity allows one pod per topology domain among the nodes its pods may
    use: fewer domains than the planned count is a raise that cannot happen. A hard spread
    constraint needs nodes that carry its key."""
    if t.shape is None:
        return []
    eligible = [(n.get("metadata") or {}).get("labels") or {} for n in c.nodes if _node_allows(n, t.shape)]
    what = _obj(t.shape.kind, t.shape.namespace, t.shape.name)
    out = []
    if t.anti_affinity_key is not None:
        key = t.anti_affinity_key
        domains = sorted({labels[key] for labels in eligible if key in labels})
        shown = ", ".join(domains[:6]) + (" ..." if len(domains) > 6 else "")
        if r.planned > len(domains):
            kubectl = f"kubectl -n {t.shape.namespace} edit {t.shape.kind.lower()} {t.shape.name} (make the anti-affinity preferred), or add nodes in more {key} domains"
            fix = owner_fix(t.meta, r.policy, "scaling.maxReplicas", len(domains), kubectl)
            message = f"required pod anti-affinity on {key}: at most {len(domains)} pods fit ({shown or 'no node carries the key'}), the plan needs {r.planned}"
            out.append(Check(status=FAIL, check="spread", object=what, message=message, fix=fix))
        else:
            out.append(Check(status=PASS, check="spread", object=what, message=f"required pod anti-affinity on {key}: {len(domains)} domains hold the planned {r.planned}"))
    for key in t.spread_keys:
        if not any(key in labels for labels in eligible):
            out.append(Check(status=FAIL, check="spread", object=what, message=f"a DoNotSchedule spread constraint on {key}, and no node its pods may use carries {key}", fix=f"label the nodes with {key}, or make the constraint ScheduleAnyway"))
    return out


def _extra(r: PlannedRaise, t: TargetFacts) -> int:
    return max(0, r.planned - (t.current or 0))


def check_quota(r: PlannedRaise, t: TargetFacts) -> list[Check]:
    extra, shape, ns = _extra(r, t), t.shape, r.policy.namespace
    out = []
    for quota in t.quotas:
        name = quota["metadata"]["name"]
        hard = (quota.get("status") or {}).get("hard") or (quota.get("spec") or {}).get("hard") or {}
        used = (quota.get("status") or {}).get("used") or {}
        per_pod = {"pods": 1.0, "count/pods": 1.0}
        if shape is not None:
            per_pod.update({"requests.cpu": shape.cpu, "cpu": shape.cpu, "requests.memory": shape.memory, "memory": shape.memory})
        short = []
        for resource, limit in hard.items():
            if resource not in per_pod:
                continue
            cap, now_used = quantity(limit, f"ResourceQuota {name} {resource}"), quantity(used.get(resource, 0), f"ResourceQuota {name} {resource}")
            after = now_used + extra * per_pod[resource]
            if after > cap + 1e-9:
                short.append((resource, cap, now_used, after))
        what = _obj("ResourceQuota", ns, name)
        if short:
            text = "; ".join(f"{res} {_fmt(res, u)} of {_fmt(res, c)} used, the raise needs {_fmt(res, a)}" for res, c, u, a in short)
            res, _, _, after = short[0]
            out.append(Check(status=FAIL, check="quota", object=what, message=f"{extra} more pods do not fit: {text}", fix=f"raise spec.hard.{res} of {name} to at least {_fmt(res, after)}, or lower maxReplicas"))
        else:
            out.append(Check(status=PASS, check="quota", object=what, message=f"room for {extra} more pods"))
    return out


def _fmt(resource: str, value: float) -> str:
    if "memory" in resource:
        return f"{value / GIB:.1f}Gi"
    if "cpu" in resource:
        return f"{value:g}"
    return f"{value:g}"


def _node_allows(node: dict, pod: PodShape) -> bool:
    meta, spec = node.get("metadata") or {}, node.get("spec") or {}
    if spec.get("unschedulable"):
        return False
    labels = meta.get("labels") or {}
    if any(labels.get(k) != v for k, v in pod.node_selector.items()):
        return False
    for taint in spec.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(taint, pod.tolerations):
            return False
    terms = (((pod.affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")) or []
    return not terms or any(expressions_match(term.get("matchExpressions") or [], labels) for term in terms)


def _tolerated(taint: dict, tolerations: list[dict]) -> bool:
    for t in tolerations:
        if t.get("effect") not in (None, "", taint.get("effect")):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _pod_requests(pod: dict) -> tuple[float, float]:
    spec = pod.get("spec") or {}
    shape = shape_of("Pod", {"spec": {"template": {"spec": spec}}})
    return shape.cpu, shape.memory


def _placeholder(pod: dict) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY) == "peakscale" and labels.get(COMPONENT) == "node-headroom"


def check_nodes(r: PlannedRaise, t: TargetFacts, c: ClusterFacts) -> Check | None:
    shape, extra = t.shape, _extra(r, t)
    if shape is None:
        return None
    pool = "nodes the target can land on"
    if shape.cpu <= 0 and shape.memory <= 0:
        return Check(status=WARN, check="nodes", object=_obj(shape.kind, shape.namespace, shape.name), message="its pods request no CPU or memory: node room cannot be checked", fix="set resources.requests on its containers")
    used: dict[str, list[float]] = {}
    for pod in c.pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or _placeholder(pod) or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue  # a placeholder's room is room for the real pods
        cpu, mem = _pod_requests(pod)
        u = used.setdefault(node, [0.0, 0.0])
        u[0] += cpu
        u[1] += mem
    fit, free_cpu, free_mem, nodes = 0, 0.0, 0.0, 0
    for node in c.nodes:
        if not _node_allows(node, shape):
            continue
        nodes += 1
        alloc = (node.get("status") or {}).get("allocatable") or {}
        name = node["metadata"]["name"]
        cpu = quantity(alloc.get("cpu"), f"Node {name} allocatable.cpu") - used.get(name, [0.0, 0.0])[0]
        mem = quantity(alloc.get("memory"), f"Node {name} allocatable.memory") - used.get(name, [0.0, 0.0])[1]
        free_cpu, free_mem = free_cpu + max(cpu, 0.0), free_mem + max(mem, 0.0)
        counts = [math.floor(cpu / shape.cpu + 1e-9) if shape.cpu > 0 else 10**9, math.floor(mem / shape.memory + 1e-9) if shape.memory > 0 else 10**9]
        fit += max(0, min(counts))
    what = f"Nodes for {shape.kind} {shape.namespace}/{shape.name}"
    if fit >= extra:
        return Check(status=PASS, check="nodes", object=what, message=f"{nodes} {pool} have room for {fit} more pods; the raise adds {extra}")
    missing = extra - fit
    gap = f"{missing * shape.cpu:g} cores and {missing * shape.memory / GIB:.1f} GiB missing"
    message = f"{nodes} {pool} have room for {fit} more pods, the raise adds {extra}: {gap} ({shape.requests} per pod)"
    headroom = r.policy.spec.node_headroom
    if headroom.enabled:
        when = datetime.fromtimestamp(r.at_s, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return Check(status=WARN, check="nodes", object=what, message=message + f"; node headroom asks for them from {when} (node lead {headroom.lead_time})", fix="make sure the cluster autoscaler may add these nodes (pool max size, cloud quota)")
    return Check(status=FAIL, check="nodes", object=what, message=message, fix="enable nodeHeadroom on the policy (nodes come up before the raise), or add nodes to the pool")


def _resolve(value, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = float(value[:-1]) / 100 * total
        return math.ceil(share - 1e-9) if round_up else math.floor(share + 1e-9)
    return int(value)


def check_pdbs(r: PlannedRaise, t: TargetFacts) -> list[Check]:
    out = []
    ns = r.policy.namespace
    for pdb in t.pdbs:
        selector = (pdb.get("spec") or {}).get("selector") or {}
        wanted = selector.get("matchLabels") or {}
        if not t.pod_labels or not wanted or any(t.pod_labels.get(k) != v for k, v in wanted.items()):
            continue
        spec = pdb["spec"]
        if "maxUnavailable" in spec:
            allowed = _resolve(spec["maxUnavailable"], r.planned, round_up=True)
        else:
            allowed = r.planned - _resolve(spec.get("minAvailable", 1), r.planned, round_up=True)
        what = _obj("PodDisruptionBudget", ns, pdb["metadata"]["name"])
        if allowed <= 0:
            out.append(Check(status=FAIL, check="pdb", object=what, message=f"allows no disruption at {r.planned} pods: the nodes added for the peak cannot be drained after it", fix="use maxUnavailable: 1 (or a minAvailable below the planned count)"))
        else:
            out.append(Check(status=PASS, check="pdb", object=what, message=f"allows {allowed} disruption(s) at {r.planned} pods"))
    return out


def check_history(policy: PolicyDoc, depth_s: float | None, error: str = "") -> Check:
    spec = policy.spec
    wanted = spec.forecast_settings().history_s
    what = f"Prometheus history of {policy.namespace}/{policy.name}"
    if depth_s is None:
        return Check(status=FAIL, check="prometheus", object=what, message=error or "no answer to the policy's query", fix="check metric.query in Prometheus (it must return one series)")
    have = f"{depth_s / 86400:.1f} days"
    if depth_s + spec.step_s + 3600 < wanted:
        return Check(
            status=FAIL, check="prometheus", object=what,
            message=f"holds {have} of the policy's query; its forecast learns from {spec.forecast.history}",
            fix=f"keep {spec.forecast.history} in Prometheus (--storage.tsdb.retention.time), or set forecast.history to {max(1, int(depth_s // 86400))}d",
        )  # fmt: skip
    return Check(status=PASS, check="prometheus", object=what, message=f"holds {have}; the forecast learns from {spec.forecast.history}")


def _time_s(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def check_controller(policy: PolicyDoc, raw_spec: dict, c: ClusterFacts) -> Check:
    from autoscaler.controller.leader import FIELDS_ANNOTATION, VERSION_ANNOTATION
    from autoscaler.core.resources import fields_used

    what = f"Lease {c.lease_name}"
    fix = "check the peakscale controller (kubectl -n <its namespace> get pods,lease)"
    if c.lease is None:
        return Check(status=FAIL, check="controller", object=what, message="no controller has ever led (no Lease)", fix=fix)
    spec = c.lease.get("spec") or {}
    holder, renewed = spec.get("holderIdentity") or "", _time_s(spec.get("renewTime"))
    duration = float(spec.get("leaseDurationSeconds") or 15)
    if not holder or renewed is None or c.now_s - renewed > duration + 5:
        ago = f"last renewed {c.now_s - renewed:,.0f} s ago" if renewed is not None else "never renewed"
        return Check(status=FAIL, check="controller", object=what, message=f"no controller holds it ({ago}{' by ' + holder if holder else ''})", fix=fix)
    annotations = (c.lease.get("metadata") or {}).get("annotations") or {}
    version = annotations.get(VERSION_ANNOTATION, "unknown")
    known = annotations.get(FIELDS_ANNOTATION)
    if known is None:
        return Check(status=WARN, check="controller", object=what, message=f"held by {holder}, at a version that does not say which fields it knows", fix="upgrade the controller")
    unknown = sorted(set(fields_used(raw_spec)) - set(known.split(",")))
    if unknown:
        return Check(status=FAIL, check="controller", object=what, message=f"{holder} (version {version}) does not know {', '.join(unknown)}: it would ignore them", fix="upgrade the controller (helm upgrade peakscale charts/peakscale)")
    return Check(status=PASS, check="controller", object=what, message=f"held by {holder} (version {version}), renewed {c.now_s - renewed:,.0f} s ago")


def check_priority_class(policy: PolicyDoc, c: ClusterFacts) -> Check | None:
    headroom = policy.spec.node_headroom
    if not headroom.enabled:
        return None
    name = headroom.priority_class_name
    found = c.priority_classes.get(name)
    what = _obj("PriorityClass", "", name)
    if found is None:
        return Check(status=FAIL, check="priority-class", object=what, message="missing: the headroom placeholders cannot be created", fix="install the chart with nodeHeadroom.priorityClass.create=true, or name an existing negative PriorityClass")
    if int(found.get("value", 0)) >= 0:
        return Check(status=FAIL, check="priority-class", object=what, message=f"value {found.get('value')} is not negative: real pods would not preempt the placeholders", fix="use a PriorityClass with a negative value (the chart's is -10)")
    return Check(status=PASS, check="priority-class", object=what, message=f"value {found.get('value')}")


def checks_for(r: PlannedRaise, raw_spec: dict, t: TargetFacts, c: ClusterFacts, status: dict | None = None) -> list[Check]:
    """Every check of one planned raise, tagged with its policy and event (``status``: the policy's
    as read, for what its reshard step measured)."""
    out: list[Check] = [check_target(r, t)]
    if not t.missing:
        out += [x for x in (check_hpa_max(r, t), check_reshard(r, t, status or {})) if x is not None]
        out += check_quota(r, t)
        out += [x for x in (check_nodes(r, t, c),) if x is not None]
        out += check_spread(r, t, c)
        out += check_pdbs(r, t)
    out += [x for x in (check_policy_max(r),) if x is not None]
    out += [x for x in (check_priority_class(r.policy, c), check_controller(r.policy, raw_spec, c)) if x is not None]
    for check in out:
        check.policy, check.event = f"{r.policy.namespace}/{r.policy.name}", r.event.name
    return out


# --- gathering (the cluster through kube.Kube) ---------------------------------------------------


def target_facts(kube, policy: PolicyDoc, hpas: dict, quotas: dict, pdbs: dict) -> TargetFacts:
    """What the cluster says about the policy's target; ``hpas``, ``quotas`` and ``pdbs`` cache
    per-namespace lists across policies."""
    from autoscaler.errors import KubeApiError, KubeError, KubeNotFound

    ns, spec = policy.namespace, policy.spec
    ref = spec.target_ref
    facts = TargetFacts()
    if ns not in hpas:
        hpas[ns] = kube.hpas_by_target(ns)
    if ns not in quotas:
        quotas[ns] = kube.list_quotas(ns)
    if ns not in pdbs:
        pdbs[ns] = kube.list_pdbs(ns)
    facts.quotas, facts.pdbs = quotas[ns], pdbs[ns]
    kind, name = ref.kind, ref.name
    if spec.mode == "hpa-floor":
        facts.hpa = next((h for h in hpas[ns].values() if h.name == name), None) if kind == "HorizontalPodAutoscaler" else hpas[ns].get((kind, name))
        if facts.hpa is None:
            facts.missing = f"no HorizontalPodAutoscaler targets {kind} {name}: the floor has nothing to raise"
            return facts
        kind, name = facts.hpa.target_kind, facts.hpa.target_name
    try:
        facts.current = kube.get_replicas(ns, kind, name)
        raw = kube.get_workload(ns, kind, name)
    except KubeApiError as exc:
        facts.missing = f"{kind} {name} not found" if isinstance(exc, KubeNotFound) else f"cannot read {kind} {name} ({exc})"
        return facts
    except KubeError as exc:
        facts.missing = str(exc)
        return facts
    try:
        facts.shape = shape_of(kind, raw)
    except InputError:
        facts.shape = None
    template = ((raw.get("spec") or {}).get("template") or {}).get("metadata") or {}
    facts.pod_labels = dict(template.get("labels") or ({"cnpg.io/cluster": name} if kind == "Cluster" else {}))
    facts.meta = raw.get("metadata") or {}
    facts.anti_affinity_key, facts.spread_keys = placement(kind, raw, facts.pod_labels)
    return facts


def placement(kind: str, raw: dict, pod_labels: dict[str, str]) -> tuple[str | None, list[str]]:
    """The topology key of a required anti-affinity of the workload's pods against each other
    (CloudNativePG: ``affinity.podAntiAffinityType: required`` over ``topologyKey``), and the keys
    of its DoNotSchedule topology spread constraints."""
    spec = raw.get("spec") or {}
    if kind == "Cluster":
        aff = spec.get("affinity") or {}
        required = aff.get("enablePodAntiAffinity", True) and aff.get("podAntiAffinityType", "preferred") == "required"
        constraints = spec.get("topologySpreadConstraints") or []
        key = (aff.get("topologyKey") or "kubernetes.io/hostname") if required else None
    else:
        pod = (spec.get("template") or {}).get("spec") or {}
        terms = ((pod.get("affinity") or {}).get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []
        mine = [t for t in terms if _selects(t.get("labelSelector") or {}, pod_labels) and t.get("topologyKey")]
        key = mine[0]["topologyKey"] if mine else None
        constraints = pod.get("topologySpreadConstraints") or []
    spread = [c["topologyKey"] for c in constraints if c.get("whenUnsatisfiable") == "DoNotSchedule" and c.get("topologyKey")]
    return key, spread


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    """A pod-affinity term's label selector (empty: no pod) against the workload's pod labels."""
    if not selector:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return expressions_match(selector.get("matchExpressions") or [], labels)


def cluster_facts(kube, policies: list[PolicyDoc], *, lease_namespace: str, lease_name: str, now_s: float) -> ClusterFacts:
    facts = ClusterFacts(nodes=kube.list_nodes(), pods=kube.list_pods(), lease=kube.read_lease(lease_namespace, lease_name), lease_name=f"{lease_namespace}/{lease_name}", now_s=now_s)
    for p in policies:
        name = p.spec.node_headroom.priority_class_name
        if p.spec.node_headroom.enabled and name not in facts.priority_classes:
            facts.priority_classes[name] = kube.get_priority_class(name)
    return facts


def run_checks(
    kube,
    policies: list[tuple[PolicyDoc, dict]],
    pairs: list[tuple[PromotionEvent, list[PolicyDoc]]],
    calendar_for: Callable[[PolicyDoc], list[PromotionEvent]],
    history: Callable[[PolicyDoc], tuple[np.ndarray, np.ndarray]],
    *,
    now_s: float,
    interval_s: int,
    lease_namespace: str,
    lease_name: str,
    cache: dict | None = None,
) -> list[Check]:
    """Every check for each (promotion, the policies it targets). ``calendar_for(policy)`` gives
    every promotion that targets it (past ones teach), ``history(policy)`` its samples (raising
    ``errors.HistoryUnavailable`` when Prometheus does not). ``cache`` keeps what was read of
    the cluster across calls (the controller checks a few policies per cycle)."""
    from autoscaler.errors import HistoryUnavailable

    objects = {(p.namespace, p.name): obj for p, obj in policies}
    docs = [p for p, _ in policies]
    cache = {} if cache is None else cache
    if "cluster" not in cache:
        cache["cluster"] = cluster_facts(kube, docs, lease_namespace=lease_namespace, lease_name=lease_name, now_s=now_s)
    cluster = cache["cluster"]
    hpas, quotas, pdbs = cache.setdefault("hpas", {}), cache.setdefault("quotas", {}), cache.setdefault("pdbs", {})
    histories: dict = {}
    out: list[Check] = []
    for event, targeted in pairs:
        for policy in targeted:
            key = (policy.namespace, policy.name)
            if key not in histories:
                try:
                    times, values = history(policy)
                    histories[key] = (times, values, None)
                except HistoryUnavailable as exc:
                    histories[key] = (None, None, str(exc))
            times, values, error = histories[key]
            depth = None if times is None else float(now_s - times[0])
            prom = check_history(policy, depth, error or "")
            prom.policy, prom.event = f"{policy.namespace}/{policy.name}", event.name
            out.append(prom)
            if times is None:
                continue
            raised = planned_raise(policy, times, values, calendar_for(policy), event, int(now_s), interval_s)
            obj = objects.get(key, {})
            out += checks_for(raised, obj.get("spec") or {}, target_facts(kube, policy, hpas, quotas, pdbs), cluster, status=obj.get("status") or {})
    return out
