"""Where promotions are kept: a YAML calendar file, or PromotionEvent resources in the cluster.

Both stores hold the same thing, a promotion as the PromotionEvent spec says it (RFC 3339 times
with offsets), keyed by name, behind one interface. The file store writes atomically (a temporary
file in the same folder, fsync, rename), so a crash never leaves half a calendar; every change is
validated whole before anything is written, so bad input loses nothing already stored.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import yaml

from autoscaler.calendar import PromotionEvent, parse_memories
from autoscaler.errors import InputError
from autoscaler.resources import EVENT_PLURAL, GROUP, POLICY_PLURAL, VERSION, PromotionEventSpec, _first_error

DEFAULT_CALENDAR = "peakscale-calendar.yaml"


@dataclass(frozen=True)
class Promo:
    """One stored promotion: its name, its spec (camelCase, as in the CRD), and what was recorded
    of it once it was over (as in the CRD's status.memory)."""

    name: str
    spec: dict[str, Any]
    memory: tuple[dict[str, Any], ...] = ()

    @property
    def parsed(self) -> PromotionEventSpec:
        return PromotionEventSpec.model_validate(self.spec)

    def event(self, zone=timezone.utc) -> PromotionEvent:
        """The calendar event in wall-clock time of ``zone`` (what the planner uses)."""
        spec = self.parsed
        memories = parse_memories(list(self.memory), f"promotion {self.name!r} memory")
        return PromotionEvent(
            name=self.name,
            title=spec.title,
            start=spec.start.astimezone(zone).replace(tzinfo=None),
            end=spec.end.astimezone(zone).replace(tzinfo=None),
            kind=spec.kind,
            expected_multiplier=spec.expected_multiplier,
            expected_peak=spec.expected_peak,
            like=tuple(spec.like),
            memories=memories,
            memory=memories[0] if memories else None,
        )

    def as_entry(self) -> dict[str, Any]:
        """The promotion as a calendar entry (name, spec fields, memory)."""
        entry = {"name": self.name, **self.spec}
        if self.memory:
            entry["memory"] = [dict(m) for m in self.memory]
        return entry


def validate_promo(promo: Promo) -> Promo:
    """Check one promotion the way the CRD and the controller will; raise ``InputError``."""
    from pydantic import ValidationError

    if not promo.name or len(promo.name) > 253 or not all(c.isalnum() or c in "-." for c in promo.name) or promo.name != promo.name.lower():
        raise InputError("NAME", f"{promo.name!r} is not a valid resource name", "use lowercase letters, digits, '-' and '.'")
    try:
        promo.parsed
    except ValidationError as exc:
        raise _first_error(exc, f"promotion {promo.name!r}") from None
    return promo


def check_references(promos: list[Promo]) -> None:
    names = [p.name for p in promos]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError("NAME", f"duplicate name {name!r}", "give every promotion a unique name")
        seen.add(name)
    for p in promos:
        for other in p.spec.get("like") or []:
            if other not in seen:
                raise InputError("--like", f"{p.name!r} names unknown promotion {other!r}", "name a promotion in the store (see promo list)")


def overlaps(promos: list[Promo], candidate: Promo) -> list[str]:
    """Names of promotions of the same kind on the same targets whose window overlaps."""
    c = candidate.parsed
    out = []
    for p in promos:
        if p.name == candidate.name:
            continue
        s = p.parsed
        if s.kind == c.kind and (p.spec.get("targets") or {}) == (candidate.spec.get("targets") or {}) and s.start < c.end and c.start < s.end:
            out.append(p.name)
    return out


class Store(Protocol):
    def list(self) -> list[Promo]: ...

    def save(self, promos: list[Promo], *, changed: list[str], deleted: list[str]) -> None: ...

    def describe(self) -> str: ...


class FileStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return f"calendar file {self.path}"

    def list(self) -> list[Promo]:
        if not self.path.exists():
            return []
        try:
            doc = yaml.safe_load(self.path.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise InputError(f"{self.path}" + (f" line {mark.line + 1}" if mark else ""), "malformed YAML", "fix or remove the calendar file") from None
        except OSError as exc:
            raise InputError(str(self.path), f"cannot read ({exc.strerror})", "check the path and permissions") from None
        items = doc.get("events") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise InputError(str(self.path), "has no 'events' list", "is this a peakscale calendar?")
        promos = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "name" not in item:
                raise InputError(f"{self.path} events[{i}]", "needs a name", "each event has name, start, end, kind")
            spec = {k: _plain(v) for k, v in item.items() if k not in ("name", "memory")}
            memory = item.get("memory") or []
            promos.append(Promo(name=str(item["name"]), spec=spec, memory=tuple(memory) if isinstance(memory, list) else ()))
        return promos

    def save(self, promos: list[Promo], *, changed: list[str], deleted: list[str]) -> None:
        doc = {"events": [p.as_entry() for p in sorted(promos, key=lambda p: (p.parsed.start, p.name))]}
        text = "# peakscale promotion calendar (written by `peakscale promo`; times are RFC 3339 with offsets)\n" + yaml.safe_dump(
            doc, sort_keys=False, allow_unicode=True
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class KubeStore:
    """PromotionEvent resources in one namespace, through the official client."""

    def __init__(self, api, namespace: str) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace

    def describe(self) -> str:
        return f"PromotionEvents in namespace {self.namespace}"

    def policies(self) -> list[dict]:
        """The ScalingPolicies of the namespace (for ``promo review``)."""
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, POLICY_PLURAL).get("items", [])

    def list(self) -> list[Promo]:
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, EVENT_PLURAL).get("items", [])
        return [Promo(name=o["metadata"]["name"], spec=dict(o.get("spec") or {}), memory=tuple((o.get("status") or {}).get("memory") or [])) for o in items]

    def save(self, promos: list[Promo], *, changed: list[str], deleted: list[str]) -> None:
        from kubernetes.client.rest import ApiException

        by_name = {p.name: p for p in promos}
        for name in changed:
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PromotionEvent", "metadata": {"name": name, "namespace": self.namespace}, "spec": by_name[name].spec}
            try:
                current = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, EVENT_PLURAL, name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                current = self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, EVENT_PLURAL, body)
            else:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                current = self.custom.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, EVENT_PLURAL, name, body)
            memory = list(by_name[name].memory)
            if memory and (current.get("status") or {}).get("memory") != memory:
                # last year's memory brought along (promo import): the status the controller keeps
                current["status"] = {**(current.get("status") or {}), "memory": memory}
                self.custom.replace_namespaced_custom_object_status(GROUP, VERSION, self.namespace, EVENT_PLURAL, name, current)
        for name in deleted:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, EVENT_PLURAL, name)
