"""A typed view of a custom resource as the controller lists it: who it is (namespace, name, uid,
generation), its labels and finalizers, its spec and status. The controller reads these, never
``obj["metadata"]``; ``raw`` is the object as listed, what a status write or an Event refers to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autoscaler.controller.status import conditions_of


@dataclass(frozen=True, slots=True)
class Resource:
    raw: dict[str, Any]
    namespace: str
    name: str
    uid: str
    #: the spec's generation (None where the server keeps none) and the object's version
    generation: int | None
    resource_version: str
    labels: dict[str, str]
    finalizers: tuple[str, ...]
    deleting: bool
    spec: dict[str, Any]
    status: dict[str, Any]

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Resource:
        meta = obj.get("metadata") or {}
        return cls(
            raw=obj,
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            generation=meta.get("generation"),
            resource_version=str(meta.get("resourceVersion") or ""),
            labels=dict(meta.get("labels") or {}),
            finalizers=tuple(meta.get("finalizers") or ()),
            deleting=bool(meta.get("deletionTimestamp")),
            spec=obj.get("spec") or {},
            status=obj.get("status") or {},
        )

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    @property
    def spec_version(self) -> tuple[str, str, str, int | str]:
        """What changes when its spec does (a status write does not): one parse per version."""
        return self.namespace, self.name, self.uid, self.generation or self.resource_version

    @property
    def observed_generation(self) -> int:
        """What a status's observedGeneration says of this object (1 where the server keeps none)."""
        return self.generation if isinstance(self.generation, int) else 1

    @property
    def conditions(self) -> list[dict[str, Any]]:
        """The conditions its status holds now (what ``status.condition`` keeps transitions from)."""
        return conditions_of(self.raw)
