"""A small, faithful Kubernetes API double on 127.0.0.1 for the official client.

It implements what peakscale relies on, with the API's semantics:

* namespaced collections and objects under ``/api/v1`` and ``/apis/<group>/<version>``, listing
  across namespaces, ``labelSelector`` equality;
* ``resourceVersion`` on every object (one counter for the store, as etcd's revision); a PUT whose
  ``metadata.resourceVersion`` is not the stored one gets ``409 Conflict``; POST of an existing
  name gets ``409 AlreadyExists``; unknown names get ``404 NotFound`` as a ``Status`` object;
* ``metadata.finalizers``: DELETE of an object with finalizers only sets its
  ``deletionTimestamp``; it goes when the last finalizer is removed, and none can be added once
  it is being deleted;
* ``generation`` bumped on spec changes; ``/status`` subresources that write only ``status`` (and
  the main resource that ignores ``status``), as CRDs with the status subresource do;
* ``/scale`` subresources (autoscaling/v1 ``Scale``) for Deployments, StatefulSets and
  CloudNativePG Clusters (``spec.instances``);
* peakscale's CRDs as the API server serves them: every write of a ScalingPolicy or a
  PromotionEvent (the main resource and ``/status``) is validated against the chart's
  ``openAPIV3Schema`` (``422 Invalid`` naming the field) and pruned of undeclared fields;
* JSON merge patch and JSON patch;
* ``generateName``;
* fault injection (``fail_next``) and a request log for assertions (``timeline`` also records
  when, and by which client's User-Agent);
* the scheduling side, as small as node headroom and preflight need: Nodes (``status.allocatable``,
  labels, taints), Pods (phase, priority, requests, ``nodeName``), ResourceQuotas (``status.used``
  kept up to date), PriorityClasses, PodDisruptionBudgets. Nothing runs by itself: a test calls
  ``reconcile()`` for one pass of what the cluster's controllers would do (the HPA pulls its
  target into ``[minReplicas, maxReplicas]``, ReplicaSets create or delete pods within the
  namespace's quota, the scheduler binds pending pods by priority to nodes with room that their
  nodeSelector and tolerations allow, and preempts lower-priority pods when that makes room,
  kubelets report bound pods Running and Ready).
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from datetime import datetime, UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jsonschema
import yaml

CRDS = Path(__file__).resolve().parents[2] / "charts" / "peakscale" / "crds"

SCALE_PATHS = {
    ("apps/v1", "deployments"): ("spec", "replicas"),
    ("apps/v1", "statefulsets"): ("spec", "replicas"),
    ("postgresql.cnpg.io/v1", "clusters"): ("spec", "instances"),
}
STATUS_SUBRESOURCE = {"peakscale.io/v1alpha1", "autoscaling/v2", "apps/v1", "postgresql.cnpg.io/v1"}
KINDS = {
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "leases": "Lease",
    "events": "Event",
    "scalingpolicies": "ScalingPolicy",
    "promotionevents": "PromotionEvent",
    "clusters": "Cluster",
    "namespaces": "Namespace",
    "nodes": "Node",
    "pods": "Pod",
    "resourcequotas": "ResourceQuota",
    "priorityclasses": "PriorityClass",
    "poddisruptionbudgets": "PodDisruptionBudget",
}
WORKLOADS = (("apps/v1", "deployments"), ("apps/v1", "statefulsets"))
PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>status|scale))?/?$"
)


def crd_schema(plural: str) -> dict:
    """The ``openAPIV3Schema`` of one of peakscale's CRDs, as the chart ships it."""
    doc = yaml.safe_load((CRDS / f"{plural}.peakscale.io.yaml").read_text())
    return doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


# the API server checks date-time (RFC 3339 with an offset); jsonschema does only with extras
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


def schema_errors(schema: dict | jsonschema.Draft4Validator, obj: dict) -> list[str]:
    """What the API server would refuse, as ``<path>: <problem>`` (a validator built once is faster)."""
    validator = schema if isinstance(schema, jsonschema.Draft4Validator) else jsonschema.Draft4Validator(schema, format_checker=FORMATS)
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in validator.iter_errors(obj)]


def prune(schema: dict, value, dropped: list[str] | None = None, path: str = ""):
    """Drop what the schema does not declare, as a structural schema's pruning does; the dotted
    paths dropped are added to ``dropped``."""
    if isinstance(value, dict) and schema.get("type") == "object" and not schema.get("x-kubernetes-preserve-unknown-fields"):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None and isinstance(extra, dict):
            return {k: prune(extra, v, dropped, f"{path}{k}.") for k, v in value.items()}
        if props is None:
            return value
        kept = {}
        for k, v in value.items():
            if k in props:
                kept[k] = prune(props[k], v, dropped, f"{path}{k}.")
            elif not path and k in ("apiVersion", "kind", "metadata"):
                kept[k] = v
            elif dropped is not None:
                dropped.append(path + k)
        return kept
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(schema["items"], v, dropped, f"{path}[{i}].") for i, v in enumerate(value)]
    return value


def _merge(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def _json_patch(doc, ops):
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1]
        if op["op"] in ("add", "replace"):
            if isinstance(parent, list):
                parent.insert(int(last), op["value"]) if op["op"] == "add" else parent.__setitem__(int(last), op["value"])
            else:
                parent[last] = op["value"]
        elif op["op"] == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        elif op["op"] == "test":
            if (parent[int(last)] if isinstance(parent, list) else parent.get(last)) != op["value"]:
                raise ValueError("test failed")
    return doc


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str], dict] = {}
        self.revision = 0
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str]] = []
        #: (monotonic time, User-Agent, method, path) of every request that reached the server
        self.timeline: list[tuple[float, str, str, str]] = []
        self._faults: list[dict] = []
        self._server: ThreadingHTTPServer | None = None
        #: pods the scheduler evicted to make room (oldest first)
        self.preempted: list[str] = []
        self.serial = 0
        self.schemas = {plural: crd_schema(plural) for plural in ("scalingpolicies", "promotionevents")}
        #: the API server's validation: of the whole object, and of the status subresource alone
        self.validators = {
            (plural, part): jsonschema.Draft4Validator(schema if part == "object" else schema["properties"]["status"], format_checker=FORMATS)
            for plural, schema in self.schemas.items()
            for part in ("object", "status")
        }
        #: fields the CRDs' pruning dropped from writes, as "<plural>/<name>: <path>"
        self.pruned: list[str] = []

    # --- control from tests -----------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms
            disable_nagle_algorithm = True

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                with fake.lock:
                    fake.timeline.append((time.monotonic(), self.headers.get("User-Agent", ""), self.command, urlparse(self.path).path))
                status, payload = fake.handle(self.command, self.path, body, self.headers.get("Content-Type", ""))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def fail_next(self, method: str, path_part: str, status: int = 409, times: int = 1) -> None:
        self._faults.append({"method": method, "part": path_part, "status": status, "times": times})

    def put_object(self, obj: dict) -> dict:
        """Create or overwrite an object directly (test setup)."""
        api = obj["apiVersion"]
        plural = next(p for p, k in KINDS.items() if k == obj["kind"])
        meta = obj.setdefault("metadata", {})
        with self.lock:
            self._stamp(obj, new=True)
            self.objects[(api, plural, meta.get("namespace", ""), meta["name"])] = copy.deepcopy(obj)
        return obj

    def reconcile(self, *, ready: bool = True) -> None:
        """One pass of the cluster's controllers (HPA, ReplicaSets, scheduler, kubelets); with
        ``ready=False`` bound pods run but are not ready yet."""
        with self.lock:
            Cluster(self).run(ready=ready)

    def add_node(self, name: str, cpu: str, memory: str, labels: dict | None = None, taints: list | None = None) -> dict:
        return self.put_object({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"}},
        })  # fmt: skip

    def make_ready(self, namespace: str, prefix: str, count: int) -> int:
        """Mark up to ``count`` running, not-ready pods named ``prefix...`` Ready (their kubelet's
        readiness probe passed); the workloads' ready counts follow. Returns how many."""
        done = 0
        with self.lock:
            for pod in sorted(self.pods(namespace, prefix), key=lambda p: p["metadata"]["name"]):
                if done < count and pod["status"].get("phase") == "Running" and not is_ready(pod):
                    key = ("v1", "pods", namespace, pod["metadata"]["name"])
                    self.objects[key]["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
                    done += 1
        self.reconcile(ready=False)
        return done

    def pods(self, namespace: str | None = None, prefix: str = "") -> list[dict]:
        return [p for p in self.list("v1", "pods", namespace) if p["metadata"]["name"].startswith(prefix)]

    def get(self, api: str, plural: str, namespace: str, name: str) -> dict | None:
        with self.lock:
            obj = self.objects.get((api, plural, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def list(self, api: str, plural: str, namespace: str | None = None) -> list[dict]:
        with self.lock:
            return [copy.deepcopy(o) for (a, p, ns, _), o in self.objects.items() if a == api and p == plural and (namespace is None or ns == namespace)]

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests if m in ("POST", "PUT", "PATCH", "DELETE")]

    # --- the API ------------------------------------------------------------------------------
    def _stamp(self, obj: dict, *, new: bool) -> None:
        self.revision += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self.revision)
        if new:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            meta.setdefault("generation", 1)

    @staticmethod
    def _status(code: int, reason: str, message: str) -> tuple[int, dict]:
        return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code}

    def handle(self, method: str, raw_path: str, body, content_type: str) -> tuple[int, dict]:
        url = urlparse(raw_path)
        path, query = url.path, parse_qs(url.query)
        with self.lock:
            self.requests.append((method, path))
            for fault in self._faults:
                if fault["times"] > 0 and fault["method"] == method and fault["part"] in path:
                    fault["times"] -= 1
                    reason = {409: "Conflict", 500: "InternalError", 503: "ServiceUnavailable"}.get(fault["status"], "Failure")
                    return self._status(fault["status"], reason, "injected fault")
            m = PATH.match(path)
            if not m:
                return self._status(404, "NotFound", f"no route for {path}")
            api = m["core"] or f"{m['group']}/{m['version']}"
            plural, ns, name, sub = m["plural"], m["ns"] or "", m["name"], m["sub"]
            key = (api, plural, ns, name)
            if name is None:
                if method == "GET":
                    # filtered before it is sorted and copied: a list of one kind in one namespace
                    # never costs the whole store (the scale benchmark holds 25,000 objects)
                    found = sorted((k, o) for k, o in self.objects.items() if k[0] == api and k[1] == plural and (not ns or k[2] == ns))
                    items = [copy.deepcopy(o) for _, o in found]
                    selector = (query.get("labelSelector") or [""])[0]
                    if selector:
                        wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
                        items = [o for o in items if all((o["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())]
                    return 200, {"kind": KINDS.get(plural, "Object") + "List", "apiVersion": api, "metadata": {"resourceVersion": str(self.revision)}, "items": items}
                if method == "POST":
                    obj = copy.deepcopy(body)
                    meta = obj.setdefault("metadata", {})
                    if not meta.get("name") and meta.get("generateName"):
                        meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                    meta.setdefault("namespace", ns)
                    k = (api, plural, ns, meta["name"])
                    if k in self.objects:
                        return self._status(409, "AlreadyExists", f'{plural} "{meta["name"]}" already exists')
                    obj, invalid = self._admit(api, plural, meta["name"], obj)
                    if invalid is not None:
                        return invalid
                    obj.setdefault("apiVersion", api)
                    obj.setdefault("kind", KINDS.get(plural, "Object"))
                    self._stamp(obj, new=True)
                    self.objects[k] = obj
                    return 201, copy.deepcopy(obj)
                return self._status(405, "MethodNotAllowed", method)
            current = self.objects.get(key)
            if current is None:
                return self._status(404, "NotFound", f'{plural} "{name}" not found')
            if sub == "scale":
                return self._scale(method, api, plural, key, current, body)
            if method == "GET":
                return 200, copy.deepcopy(current)
            if method == "DELETE":
                if current["metadata"].get("finalizers"):
                    marked = copy.deepcopy(current)
                    marked["metadata"].setdefault("deletionTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
                    self._stamp(marked, new=False)
                    self.objects[key] = marked
                    return 200, copy.deepcopy(marked)
                del self.objects[key]
                return 200, {"kind": "Status", "status": "Success"}
            if method == "PUT":
                sent_rv = (body.get("metadata") or {}).get("resourceVersion")
                if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                    return self._status(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again")
                new = copy.deepcopy(body)
            elif method == "PATCH":
                try:
                    new = _json_patch(current, body) if isinstance(body, list) else _merge(current, body)
                except (KeyError, IndexError, ValueError) as exc:
                    return self._status(422, "Invalid", f"patch: {exc}")
                sent_rv = (new.get("metadata") or {}).get("resourceVersion")
                if isinstance(body, dict) and (body.get("metadata") or {}).get("resourceVersion") not in (None, current["metadata"]["resourceVersion"]):
                    return self._status(409, "Conflict", "resourceVersion mismatch")
            else:
                return self._status(405, "MethodNotAllowed", method)
            return self._write(api, key, current, new, status_only=(sub == "status"))

    def _admit(self, api: str, plural: str, name: str, obj: dict, *, status_only: bool = False) -> tuple[dict, tuple[int, dict] | None]:
        """A custom resource as the API server stores it (pruned), or its 422 when the schema refuses
        it. As with a CRD's status subresource, ``/status`` validates the status alone and the main
        resource everything else."""
        schema = self.schemas.get(plural) if api == "peakscale.io/v1alpha1" else None
        if schema is None:
            return obj, None
        dropped: list[str] = []
        obj = prune(schema, obj, dropped)
        self.pruned += [f"{plural}/{name}: {path}" for path in dropped]
        if status_only:
            problems = [f"status.{p}" for p in schema_errors(self.validators[(plural, "status")], obj.get("status") or {})]
        else:
            problems = schema_errors(self.validators[(plural, "object")], {k: v for k, v in obj.items() if k not in ("metadata", "status")})
        if problems:
            return obj, self._status(422, "Invalid", f"{KINDS.get(plural, plural)} {name!r} is invalid: {'; '.join(problems)}")
        return obj, None

    def _write(self, api: str, key, current: dict, new: dict, *, status_only: bool) -> tuple[int, dict]:
        result = copy.deepcopy(current)
        new, invalid = self._admit(api, key[1], key[3], new, status_only=status_only)
        if invalid is not None:
            return invalid
        if status_only:
            result["status"] = new.get("status")
        else:
            meta = new.get("metadata") or {}
            before = set(current["metadata"].get("finalizers") or [])
            if current["metadata"].get("deletionTimestamp") and set(meta.get("finalizers") or []) - before:
                return self._status(422, "Invalid", "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted")
            for field in ("labels", "annotations", "finalizers"):
                if meta.get(field):
                    result["metadata"][field] = meta[field]
                else:
                    result["metadata"].pop(field, None)
            if result["metadata"].get("deletionTimestamp") and not result["metadata"].get("finalizers"):
                del self.objects[key]
                return 200, copy.deepcopy(result)
            if "spec" in new and new.get("spec") != current.get("spec"):
                result["spec"] = new["spec"]
                result["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
            for field in new:
                if field not in ("metadata", "spec", "status", "apiVersion", "kind"):
                    result[field] = new[field]
            if api not in STATUS_SUBRESOURCE and "status" in new:
                result["status"] = new["status"]
        self._stamp(result, new=False)
        self.objects[key] = result
        return 200, copy.deepcopy(result)

    def _scale(self, method: str, api: str, plural: str, key, current: dict, body) -> tuple[int, dict]:
        if (api, plural) not in SCALE_PATHS:
            return self._status(404, "NotFound", f"{plural} has no scale subresource")
        section, field = SCALE_PATHS[(api, plural)]
        meta = current["metadata"]

        def as_scale(obj):
            return {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {"name": meta["name"], "namespace": meta.get("namespace"), "resourceVersion": obj["metadata"]["resourceVersion"], "uid": meta.get("uid")},
                "spec": {"replicas": obj.get(section, {}).get(field, 0)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", obj.get(section, {}).get(field, 0))},
            }

        if method == "GET":
            return 200, as_scale(current)
        if method == "PUT":
            sent_rv = (body.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != meta["resourceVersion"]:
                return self._status(409, "Conflict", "the object has been modified")
            replicas = (body.get("spec") or {}).get("replicas")
        elif method == "PATCH":
            patched = _json_patch(as_scale(current), body) if isinstance(body, list) else _merge(as_scale(current), body)
            replicas = patched["spec"]["replicas"]
        else:
            return self._status(405, "MethodNotAllowed", method)
        if not isinstance(replicas, int) or replicas < 0:
            return self._status(422, "Invalid", "spec.replicas must be a non-negative integer")
        new = copy.deepcopy(current)
        new.setdefault(section, {})[field] = replicas
        status, obj = self._write(api, key, current, new, status_only=False)
        return status, as_scale(obj)


def _quantity(value) -> float:
    from kubernetes.utils.quantity import parse_quantity

    return float(parse_quantity(str(value))) if value is not None else 0.0


def pod_requests(spec: dict) -> tuple[float, float]:
    """(cores, bytes) a pod asks for: its containers' requests summed (init containers at most)."""
    cpu = mem = 0.0
    for c in spec.get("containers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        cpu, mem = cpu + _quantity(req.get("cpu")), mem + _quantity(req.get("memory"))
    for c in spec.get("initContainers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        cpu, mem = max(cpu, _quantity(req.get("cpu"))), max(mem, _quantity(req.get("memory")))
    return cpu, mem


def is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def _tolerated(taint: dict, tolerations: list[dict]) -> bool:
    for t in tolerations:
        if t.get("effect") not in (None, "", taint.get("effect")):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and t.get("value") == taint.get("value"):
            return True
    return False


class Cluster:
    """One pass of the cluster's own controllers over a ``FakeKube`` (see the module docstring)."""

    def __init__(self, fake: FakeKube) -> None:
        self.fake = fake

    def objects(self, api: str, plural: str) -> list[dict]:
        return [o for (a, p, _, _), o in sorted(self.fake.objects.items()) if a == api and p == plural]

    def priority(self, spec: dict) -> int:
        name = spec.get("priorityClassName")
        found = self.fake.objects.get(("scheduling.k8s.io/v1", "priorityclasses", "", name)) if name else None
        return int(found.get("value", 0)) if found else 0

    def run(self, *, ready: bool = True) -> None:
        self._collect_garbage()
        self._hpas()
        for api, plural in WORKLOADS:
            for obj in self.objects(api, plural):
                self._replicas(api, plural, obj)
        self._schedule()
        for api, plural in WORKLOADS:
            for obj in self.objects(api, plural):
                self._workload_status(api, plural, obj, ready)
        self._quotas()

    def _hpas(self) -> None:
        for hpa in self.objects("autoscaling/v2", "horizontalpodautoscalers"):
            ref = hpa["spec"]["scaleTargetRef"]
            plural = {"Deployment": "deployments", "StatefulSet": "statefulsets"}.get(ref["kind"])
            key = ("apps/v1", plural, hpa["metadata"]["namespace"], ref["name"])
            target = self.fake.objects.get(key)
            if target is None:
                continue
            lo, hi = hpa["spec"].get("minReplicas") or 1, hpa["spec"]["maxReplicas"]
            replicas = min(max(target["spec"].get("replicas", 1), lo), hi)
            if replicas != target["spec"].get("replicas"):
                target["spec"]["replicas"] = replicas
                self.fake._stamp(target, new=False)
            hpa["status"] = {**(hpa.get("status") or {}), "currentReplicas": replicas, "desiredReplicas": replicas}

    def _owned(self, obj: dict) -> list[dict]:
        uid = obj["metadata"]["uid"]
        return [p for p in self.objects("v1", "pods") if (p["metadata"].get("annotations") or {}).get("fake/owner") == uid]

    def _collect_garbage(self) -> None:
        """Pods whose workload is gone go too (the garbage collector)."""
        owners = {o["metadata"]["uid"] for api, plural in WORKLOADS for o in self.objects(api, plural)}
        for pod in self.objects("v1", "pods"):
            owner = (pod["metadata"].get("annotations") or {}).get("fake/owner")
            if owner and owner not in owners:
                del self.fake.objects[("v1", "pods", pod["metadata"]["namespace"], pod["metadata"]["name"])]

    def _quota_allows(self, namespace: str, spec: dict) -> bool:
        cpu, mem = pod_requests(spec)
        for quota in self.objects("v1", "resourcequotas"):
            if quota["metadata"]["namespace"] != namespace:
                continue
            hard, used = quota["spec"].get("hard") or {}, self._used(namespace)
            asks = {"pods": 1.0, "requests.cpu": cpu, "cpu": cpu, "requests.memory": mem, "memory": mem}
            if any(name in hard and used.get(name, 0.0) + asks[name] > _quantity(hard[name]) + 1e-9 for name in asks):
                return False
        return True

    def _used(self, namespace: str) -> dict[str, float]:
        pods = [p for p in self.objects("v1", "pods") if p["metadata"]["namespace"] == namespace and p["status"].get("phase") in ("Pending", "Running")]
        cpu = sum(pod_requests(p["spec"])[0] for p in pods)
        mem = sum(pod_requests(p["spec"])[1] for p in pods)
        return {"pods": float(len(pods)), "requests.cpu": cpu, "cpu": cpu, "requests.memory": mem, "memory": mem}

    def _replicas(self, api: str, plural: str, obj: dict) -> None:
        meta = obj["metadata"]
        pods = sorted(self._owned(obj), key=lambda p: p["metadata"]["name"])
        wanted = int(obj["spec"].get("replicas", 1))
        # scale-down removes unbound pods first, then the newest
        extra = sorted(pods, key=lambda p: (bool(p["spec"].get("nodeName")), p["metadata"]["name"]))[: max(0, len(pods) - wanted)]
        for pod in extra:
            del self.fake.objects[("v1", "pods", meta["namespace"], pod["metadata"]["name"])]
        template = obj["spec"].get("template") or {}
        for _ in range(wanted - len(pods) + len(extra)):
            spec = copy.deepcopy(template.get("spec") or {})
            if not self._quota_allows(meta["namespace"], spec):
                break  # the ReplicaSet's create is refused: exceeded quota
            spec["priority"] = self.priority(spec)
            self.fake.serial += 1
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{meta['name']}-{self.fake.serial:05d}",
                    "namespace": meta["namespace"],
                    "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                    "annotations": {"fake/owner": meta["uid"]},
                },
                "spec": spec,
                "status": {"phase": "Pending"},
            }
            self.fake._stamp(pod, new=True)
            self.fake.objects[("v1", "pods", meta["namespace"], pod["metadata"]["name"])] = pod

    def _free(self, node: dict) -> tuple[float, float]:
        alloc = node["status"].get("allocatable") or {}
        cpu, mem = _quantity(alloc.get("cpu")), _quantity(alloc.get("memory"))
        for pod in self.objects("v1", "pods"):
            if pod["spec"].get("nodeName") == node["metadata"]["name"]:
                c, m = pod_requests(pod["spec"])
                cpu, mem = cpu - c, mem - m
        return cpu, mem

    def _fits_node(self, spec: dict, node: dict) -> bool:
        labels = node["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
            return False
        taints = [t for t in (node["spec"].get("taints") or []) if t.get("effect") in ("NoSchedule", "NoExecute")]
        return all(_tolerated(t, spec.get("tolerations") or []) for t in taints)

    def _schedule(self) -> None:
        pending = [p for p in self.objects("v1", "pods") if not p["spec"].get("nodeName")]
        pending.sort(key=lambda p: (-p["spec"].get("priority", 0), p["metadata"]["name"]))
        nodes = self.objects("v1", "nodes")
        for pod in pending:
            cpu, mem = pod_requests(pod["spec"])
            allowed = [n for n in nodes if self._fits_node(pod["spec"], n)]
            home = next((n for n in allowed if all(f >= need - 1e-9 for f, need in zip(self._free(n), (cpu, mem)))), None)
            if home is None:
                home = self._preempt(pod, allowed, cpu, mem)
            if home is not None:
                pod["spec"]["nodeName"] = home["metadata"]["name"]
                pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
                self.fake._stamp(pod, new=False)

    def _preempt(self, pod: dict, nodes: list[dict], cpu: float, mem: float) -> dict | None:
        """Evict the fewest lower-priority pods from one node to make room (lowest priority first)."""
        best = None
        for node in nodes:
            free_cpu, free_mem = self._free(node)
            victims = sorted(
                (p for p in self.objects("v1", "pods") if p["spec"].get("nodeName") == node["metadata"]["name"] and p["spec"].get("priority", 0) < pod["spec"].get("priority", 0)),
                key=lambda p: (p["spec"].get("priority", 0), p["metadata"]["name"]),
            )
            chosen = []
            for victim in victims:
                if free_cpu >= cpu - 1e-9 and free_mem >= mem - 1e-9:
                    break
                c, m = pod_requests(victim["spec"])
                free_cpu, free_mem = free_cpu + c, free_mem + m
                chosen.append(victim)
            if free_cpu >= cpu - 1e-9 and free_mem >= mem - 1e-9 and (best is None or len(chosen) < len(best[1])):
                best = (node, chosen)
        if best is None:
            return None
        for victim in best[1]:
            del self.fake.objects[("v1", "pods", victim["metadata"]["namespace"], victim["metadata"]["name"])]
            self.fake.preempted.append(victim["metadata"]["name"])
        return best[0]

    def _workload_status(self, api: str, plural: str, obj: dict, ready: bool) -> None:
        pods = self._owned(obj)
        if ready:
            for pod in pods:
                if pod["status"].get("phase") == "Running":
                    pod["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
        count = sum(1 for p in pods if is_ready(p))
        status = {"replicas": len(pods), "readyReplicas": count, "availableReplicas": count}
        if obj.get("status") != status:
            obj["status"] = status
            self.fake._stamp(obj, new=False)

    def _quotas(self) -> None:
        for quota in self.objects("v1", "resourcequotas"):
            used = self._used(quota["metadata"]["namespace"])
            hard = quota["spec"].get("hard") or {}
            quota["status"] = {"hard": dict(hard), "used": {k: _format(k, used.get(k, 0.0)) for k in hard}}


def _format(name: str, value: float) -> str:
    if name in ("requests.cpu", "cpu", "limits.cpu"):
        return f"{round(value * 1000)}m"
    return str(int(round(value)))


def write_kubeconfig(server: str, path):
    """A kubeconfig pointing the official client at ``server`` (the double, or nothing at all)."""
    import yaml

    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


def main() -> None:
    """Serve the double in its own process (benchmarks): prints its URL, runs until killed."""
    import sys
    import time

    fake = FakeKube()
    print(fake.start(), flush=True)
    sys.stdout.close()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
