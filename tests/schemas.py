"""The CRDs' status schemas as the API server holds them, strict: what a status write must satisfy
(shared by the status model tests and the tests that read statuses back from the real API server)."""

from __future__ import annotations

import copy

import jsonschema

from tests.fakes.kube import FORMATS, crd_schema

POLICY = crd_schema("scalingpolicies")["properties"]["status"]
EVENT = crd_schema("promotionevents")["properties"]["status"]
JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


def strict(schema: dict) -> dict:
    """The schema with nothing undeclared allowed, at every level (the API server would prune it)."""
    out = copy.deepcopy(schema)

    def walk(node: dict) -> None:
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
            for child in node["properties"].values():
                walk(child)
        if isinstance(node.get("items"), dict):
            walk(node["items"])

    walk(out)
    return out


def refused(schema: dict, status: dict) -> list[str]:
    validator = jsonschema.Draft4Validator(strict(schema), format_checker=FORMATS)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(status)]
