"""Where promotions are kept: a YAML calendar file, or PromotionEvent resources in the cluster.

Both stores hold the same thing, a promotion as the PromotionEvent spec says it (RFC 3339 times
with offsets), keyed by name, behind one interface. The file store writes atomically (a temporary
file in the same folder, fsync, rename), so a crash never leaves half a calendar; every change is
validated whole before anything is written, so bad input loses nothing already stored.
"""

from __future__ import annotations

import fcntl
import json
import io
import os
import re
import stat
import tempfile
from dataclasses import dataclass, replace
from functools import cached_property
from datetime import datetime, UTC
from pathlib import Path
from typing import Any, Protocol


from autoscaler.adapters import yamlsafe
from autoscaler.core.calendar import MAX_EVENTS, PromotionEvent, check_names, not_itself, parse_memories, read_entries
from autoscaler.errors import InputError, StoreConflict
from autoscaler.core.resources import EVENT_PLURAL, GROUP, POLICY_PLURAL, VERSION, PromotionEventSpec, spec_error


@dataclass(frozen=True)
class Promo:
    """One stored promotion: its name, its spec (camelCase, as in the CRD), and what was recorded
    of it once it was over (as in the CRD's status.memory)."""

    name: str
    spec: dict[str, Any]
    memory: tuple[dict[str, Any], ...] = ()
    #: the stored version this promotion was read at (a resourceVersion, or a digest of the file
    #: entry); a write of it is refused if the stored one moved on meanwhile (no lost update)
    version: str | None = None
    #: the PromotionEvent's namespace (None: an entry of a calendar file, for every namespace)
    namespace: str | None = None

    @cached_property
    def parsed(self) -> PromotionEventSpec:
        return PromotionEventSpec.model_validate(self.spec)

    def event(self, zone=UTC) -> PromotionEvent:
        """The calendar event in wall-clock time of ``zone`` (what the planner uses)."""
        return self.parsed.event(self.name, zone, parse_memories(list(self.memory), f"promotion {self.name!r} memory"), namespace=self.namespace)

    def replacing(self, read: Promo) -> Promo:
        """This promotion as the new version of ``read``: written only over what was read."""
        return replace(self, version=read.version, namespace=read.namespace)

    def as_entry(self) -> dict[str, Any]:
        """The promotion as a calendar entry (name, spec fields, memory)."""
        entry = {"name": self.name, **self.spec}
        if self.memory:
            entry["memory"] = [dict(m) for m in self.memory]
        return entry


def validate_promo(promo: Promo) -> Promo:
    """Check one promotion the way the CRD and the controller will; raise ``InputError``."""
    from pydantic import ValidationError

    if not is_object_name(promo.name):
        raise InputError("NAME", f"{promo.name!r} is not a Kubernetes object name (RFC 1123)", "use lowercase a-z, 0-9, '-' and '.', starting and ending with a letter or digit, at most 253")
    not_itself(promo.name, promo.spec.get("like") or [], f"promotion {promo.name!r} like")
    try:
        promo.parsed  # noqa: B018 (parsing is the check: a cached property that validates)
    except ValidationError as exc:
        raise spec_error(exc, f"promotion {promo.name!r}", PromotionEventSpec) from None
    return promo


_RFC1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def is_object_name(name: str) -> bool:
    """An RFC 1123 subdomain: what a PromotionEvent's name must be."""
    return 0 < len(name) <= 253 and _RFC1123.fullmatch(name) is not None


def check_references(promos: list[Promo]) -> None:
    """The store as one calendar: ``calendar.check_names``."""
    check_names([(p.name, p.spec.get("like") or []) for p in promos], where=lambda n: f"promotion {n!r}", known="the store (see promo list)")


def overlaps(promos: list[Promo], candidate: Promo) -> list[str]:
    """Names of promotions of the same kind on the same targets whose window overlaps."""
    return overlapping(promos, [candidate.name] if any(p.name == candidate.name for p in promos) else [], extra=candidate).get(candidate.name, [])


def overlapping(promos: list[Promo], names: list[str], *, extra: Promo | None = None) -> dict[str, list[str]]:
    """For each of ``names`` (and ``extra``), the promotions of its kind on its targets whose window
    overlaps it. A sweep in time order per (kind, targets): linear in the calendar, so importing
    10,000 rows stays quick."""
    wanted = set(names) | ({extra.name} if extra is not None else set())
    pool = [p for p in promos if extra is None or p.name != extra.name] + ([extra] if extra is not None else [])
    groups: dict[tuple[str, str], list[Promo]] = {}
    for p in pool:
        key = (p.parsed.kind, json.dumps(p.spec.get("targets") or {}, sort_keys=True))
        groups.setdefault(key, []).append(p)
    out: dict[str, list[str]] = {}
    for group in groups.values():
        group.sort(key=lambda p: p.parsed.start)
        running: list[Promo] = []  # still open at the current start, by end
        for p in group:
            start = p.parsed.start
            running = [q for q in running if q.parsed.end > start]
            if running:
                if p.name in wanted:
                    out.setdefault(p.name, []).extend(q.name for q in running)
                for q in running:
                    if q.name in wanted:
                        out.setdefault(q.name, []).append(p.name)
            running.append(p)
    return out


class Store(Protocol):
    def promos(self) -> list[Promo]: ...

    def save(self, promos: list[Promo], *, changed: list[str], deleted: list[str], created: list[str] | None = None) -> None: ...

    def describe(self) -> str: ...


class FileStore:
    """A YAML calendar file, shared safely by concurrent writers.

    Every write locks a lock file beside the calendar (``fcntl``), re-reads the calendar under
    the lock and applies only its own changes to what it finds, so concurrent ``promo add`` runs
    all land. The file is edited round-trip (ruamel.yaml): comments, the order of entries, other
    top-level keys and untouched entries stay as they were. The new text goes to a temporary
    file beside the target (through a symlink, to the file it points at), with the target's mode
    and owner, fsynced, then renamed over it: a crash never leaves half a calendar.
    """

    HEADER = "peakscale promotion calendar (written by `peakscale promo`; times are RFC 3339 with offsets)"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        #: the bytes last read and what they held (``save`` reuses them when the file is unchanged)
        self._read: tuple[bytes, list[Promo]] | None = None

    def describe(self) -> str:
        return f"calendar file {self.path}"

    def _target(self) -> Path:
        """The file the calendar is (through symlinks); a symlink loop or a read-only calendar is
        refused, never replaced by a plain file."""
        if self.path.is_symlink():
            try:
                os.stat(self.path)  # follows the link: a loop (ELOOP) or a missing target fails
            except OSError:
                raise InputError(str(self.path), "is a symlink that leads nowhere (a loop, or a missing target)", "point it at the calendar file") from None
        return Path(os.path.realpath(self.path))

    def promos(self) -> list[Promo]:
        target = self._target()
        if not target.exists():
            return []
        raw = yamlsafe.read_bytes(target, str(self.path))
        self._read = (raw, self._promos(yamlsafe.load(raw, str(self.path))))
        return self._read[1]

    def _promos(self, doc: Any) -> list[Promo]:
        entries = read_entries(doc, None, str(self.path))
        promos = [Promo(name=e.name, spec=e.spec, memory=tuple(m.model_dump(by_alias=True) for m in e.memory)) for e in entries]
        return [replace(p, version=_digest(p)) for p in promos]

    def save(self, promos: list[Promo], *, changed: list[str], deleted: list[str], created: list[str] | None = None) -> None:
        """Apply the changes to the calendar as it is on disk. The slow part (parsing and writing
        a long calendar round-trip takes seconds) runs outside the lock; under it, the file is
        only compared with what was parsed and replaced, so the lock is held for milliseconds. When
        another writer landed meanwhile, this one starts over holding the lock throughout (as all
        writers did before), so that every writer makes progress."""
        target = self._target()
        if target.exists() and not target.stat().st_mode & 0o222:
            raise InputError(str(self.path), "is read-only", "make it writable (chmod u+w) to change it, or use another --calendar")
        target.parent.mkdir(parents=True, exist_ok=True)
        raw = target.read_bytes() if target.exists() else b""
        text = self._apply(raw, promos, changed=changed, deleted=deleted, created=created or [])
        with _locked(target):
            now = target.read_bytes() if target.exists() else b""
            if now != raw:
                text = self._apply(now, promos, changed=changed, deleted=deleted, created=created or [])
            _replace(target, text)

    def _apply(self, raw: bytes, promos: list[Promo], *, changed: list[str], deleted: list[str], created: list[str]) -> str:
        """The calendar text ``raw`` with the changes made (round-trip: comments and order kept)."""
        by_name = {p.name: p for p in promos}
        # the calendar as this command read it needs no second parse
        stored = self._read[1] if self._read is not None and self._read[0] == raw else self._promos(yamlsafe.load(raw, str(self.path)))
        versions = {p.name: p.version for p in stored}
        for name in created:
            if name in versions:
                raise InputError("NAME", f"a promotion named {name!r} was added meanwhile", "pick another name, or use promo edit")
        for name in [*changed, *deleted]:
            read = by_name[name].version if name in by_name else None
            if name not in created and read is not None and versions.get(name) != read:
                raise StoreConflict(f"promotion {name!r} changed in {self.path} since it was read: nothing written over it")
        from ruamel.yaml.comments import CommentedMap, CommentedSeq  # the round trip: only to write

        rt = _round_trip()
        doc = rt.load(raw.decode("utf-8")) if raw.strip() else None
        if doc is None:
            doc = CommentedMap()
            doc.yaml_set_start_comment(self.HEADER)
        if isinstance(doc, list):
            doc = CommentedMap([("events", doc)])
        events = doc.get("events")
        if events is None:
            events = doc["events"] = CommentedSeq()
        gone = set(deleted)
        if gone:
            keep = [e for e in events if not (isinstance(e, dict) and e.get("name") in gone)]
            del events[:]
            events.extend(keep)
        index = {e.get("name"): e for e in events if isinstance(e, dict)}
        new = []
        for name in changed:
            fresh = by_name[name].as_entry()
            found = index.get(name)
            if found is not None:
                for key in [k for k in found if k not in fresh]:
                    del found[key]
                for key, value in fresh.items():
                    if found.get(key) != value:
                        found[key] = value
            else:
                new.append(by_name[name])
        if len(new) <= 20:
            for promo in new:  # a few: each in time order among the others
                events.insert(_position(events, promo), CommentedMap(promo.as_entry()))
        else:  # a bulk import: its rows, in time order, after the others
            events.extend(CommentedMap(p.as_entry()) for p in sorted(new, key=lambda p: (p.parsed.start, p.name)))
        if len(events) > MAX_EVENTS:
            raise InputError(str(self.path), f"would hold {len(events):,} promotions, over {MAX_EVENTS:,}", "split the calendar, or keep promotions in the cluster (--store kube)")
        buffer = io.StringIO()
        rt.dump(doc, buffer)
        text = buffer.getvalue()
        if len(text.encode()) > yamlsafe.MAX_BYTES:
            # never write a calendar no command could read back
            raise InputError(
                str(self.path), f"would be {len(text.encode()):,} bytes, over the {yamlsafe.MAX_BYTES:,} a calendar may hold", "split the calendar, or keep promotions in the cluster (--store kube)"
            )
        return text


def _digest(promo: Promo) -> str:
    """A file entry's version: a digest of what it says."""
    import hashlib

    return hashlib.sha256(json.dumps(promo.as_entry(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _round_trip():
    from ruamel.yaml import YAML

    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096
    return rt


class _locked:
    """An exclusive ``fcntl`` lock on ``.<calendar>.lock`` beside the calendar."""

    def __init__(self, target: Path) -> None:
        self.path = target.with_name(f".{target.name}.lock")

    def __enter__(self) -> None:
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        self.handle.close()


def _position(events: list, promo: Promo) -> int:
    """Where a new entry goes to keep the calendar in time order (the end if it is not)."""
    start = promo.parsed.start
    for i, e in enumerate(events):
        try:
            other = datetime.fromisoformat(str(e.get("start"))) if isinstance(e, dict) else None
        except ValueError:
            other = None
        if other is not None and other.tzinfo is not None and other > start:
            return i
    return len(events)


def _replace(target: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``target`` with its mode and owner, then rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            st = target.stat()
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            try:
                os.chown(tmp, st.st_uid, st.st_gid)
            except PermissionError:
                pass  # not ours to give away: the mode is kept
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class KubeStore:
    """PromotionEvent resources in one namespace (or, to read, in all: ``namespace`` None),
    through the official client."""

    def __init__(self, api, namespace: str | None, where: str | None = None) -> None:
        from kubernetes import client

        from autoscaler.adapters.kube_errors import Translating

        self.custom = Translating(client.CustomObjectsApi(api))
        self.namespace = namespace
        #: the kubeconfig context (None: in-cluster or unknown)
        self.where = where

    def describe(self) -> str:
        where = "all namespaces" if self.namespace is None else f"namespace {self.namespace}"
        return f"PromotionEvents in {where}" + (f" (context {self.where})" if self.where else "")

    def _list(self, plural: str) -> list[dict]:
        if self.namespace is None:
            return self.custom.list_cluster_custom_object(GROUP, VERSION, plural).get("items", [])
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural).get("items", [])

    def policies(self) -> list[dict]:
        """The ScalingPolicies of the namespace, or of all (for ``plan`` and ``promo review``)."""
        return self._list(POLICY_PLURAL)

    def promos(self) -> list[Promo]:
        return [
            Promo(
                name=o["metadata"]["name"],
                spec=dict(o.get("spec") or {}),
                memory=tuple((o.get("status") or {}).get("memory") or []),
                version=o["metadata"].get("resourceVersion"),
                namespace=o["metadata"].get("namespace") or self.namespace,
            )
            for o in self._list(EVENT_PLURAL)
        ]

    def save(self, promos: list[Promo], *, changed: list[str], deleted: list[str], created: list[str] | None = None) -> None:
        """Create the ``created`` promotions (create-only: a name taken meanwhile is refused), replace
        the others at the version they were read at (a 409 is ``StoreConflict``), delete with that
        precondition. A batch of creations is all or none: on a failure the ones made are deleted."""
        from autoscaler.adapters.kube_errors import refusal
        from autoscaler.errors import KubeApiError

        if self.namespace is None:
            raise InputError("--all-namespaces", "a write goes to one namespace", "give -n NAMESPACE instead of -A")
        by_name = {p.name: p for p in promos}
        fresh = set(created or [])
        made: list[str] = []
        try:
            for name in changed:
                try:
                    self._write(name, by_name[name], create=name in fresh)
                except KubeApiError as exc:
                    refused = refusal(exc, f"PromotionEvent {self.namespace}/{name}")
                    if refused is not None:
                        raise refused from None
                    if exc.status == 409 and name in fresh:
                        raise InputError("NAME", f"a promotion named {name!r} was added meanwhile", "pick another name, or use promo edit") from None
                    if exc.status == 409:
                        raise StoreConflict(f"PromotionEvent {self.namespace}/{name} changed since it was read: nothing written over it") from None
                    raise
                if name in fresh:
                    made.append(name)
        except BaseException:
            self._undo(made)
            raise
        for name in deleted:
            self._delete(name, next((p.version for p in promos if p.name == name), None))

    def _undo(self, made: list[str]) -> None:
        """All or none: delete what this save created before it failed."""
        for name in made:
            try:
                self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, EVENT_PLURAL, name)
            except Exception:  # noqa: BLE001 (the failure that brought us here is the one to report)
                pass

    def _delete(self, name: str, version: str | None) -> None:
        from autoscaler.errors import KubeConflict, KubeNotFound

        body = {"preconditions": {"resourceVersion": version}} if version else None
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, EVENT_PLURAL, name, body=body)
        except KubeConflict:
            raise StoreConflict(f"PromotionEvent {self.namespace}/{name} changed since it was read: not deleted") from None
        except KubeNotFound:
            pass

    def _write(self, name: str, promo: Promo, *, create: bool) -> None:
        """Create (only) or replace (at the version read) one PromotionEvent, and the memory it
        brings in its status."""
        body: dict[str, Any] = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PromotionEvent", "metadata": {"name": name, "namespace": self.namespace}, "spec": promo.spec}
        if create or promo.version is None:
            current = self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, EVENT_PLURAL, body)
        else:
            body["metadata"]["resourceVersion"] = promo.version
            current = self.custom.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, EVENT_PLURAL, name, body)
        memory = list(promo.memory)
        if memory and (current.get("status") or {}).get("memory") != memory:
            # last year's memory brought along (promo import): the status the controller keeps
            current["status"] = {**(current.get("status") or {}), "memory": memory}
            self.custom.replace_namespaced_custom_object_status(GROUP, VERSION, self.namespace, EVENT_PLURAL, name, current)
