"""Offline preview: run the Pulumi program under the official mocks and collect what it declares.

No engine, no provider, no cluster: ``pulumi.runtime.set_mocks`` answers every resource
registration in-process. What comes out is what the program *asks for* (its inputs), not what a
cluster would hold after ``pulumi up``: a preview for review and diffs, not a deployment.
Secret values are redacted wherever they appear.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autoscaler.errors import ConfigError
from stacks.config import parse_stack_config

SECRET_SIG = "4dabf18193072939515e22adb298388d"
REDACTED = "<redacted>"
#: the value the mocks hand out as every generated password, so tests can look for leaks
MOCK_PASSWORD = "mock-P4ssw0rd-9f2c7e1d4b"
K8S_TYPE = re.compile(r"^kubernetes:(?P<group>[^:]+):(?P<kind>[A-Za-z0-9]+)$")


@dataclass
class Declared:
    """One resource the program registered."""

    type: str
    name: str
    inputs: dict
    ignore_changes: list[str] = field(default_factory=list)
    protect: bool = False
    depends_on: list[str] = field(default_factory=list)
    parent: str | None = None

    @property
    def is_kubernetes_object(self) -> bool:
        return bool(K8S_TYPE.match(self.type)) and not self.type.startswith("kubernetes:helm.sh/")


@dataclass
class Rendered:
    stack: str
    resources: list[Declared]
    outputs: dict
    #: provider functions the program invoked (data sources); a hermetic program calls none
    calls: list[str] = field(default_factory=list)

    @property
    def objects(self) -> list[dict]:
        """The Kubernetes objects, as they would be applied (secrets redacted)."""
        return [redact(r.inputs) for r in self.resources if r.is_kubernetes_object]

    def objects_with_secrets(self) -> list[dict]:
        return [reveal(r.inputs) for r in self.resources if r.is_kubernetes_object]

    def by_name(self, name: str, type_suffix: str = "") -> Declared:
        for r in self.resources:
            if r.name == name and r.type.endswith(type_suffix):
                return r
        raise KeyError(name)


def _tidy(value: Any) -> Any:
    """Mocks hand numbers back as floats; Kubernetes wants integers where they are whole."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _tidy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tidy(v) for v in value]
    return value


def _walk(value: Any, on_secret) -> Any:
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            return on_secret(value.get("value"))
        return {k: _walk(v, on_secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, on_secret) for v in value]
    return value


def reveal(value: Any) -> Any:
    return _walk(value, lambda inner: reveal(inner))


def _redacted(inner: Any) -> Any:
    """Keep the shape (a secret map stays a map) so the redacted object still validates."""
    if isinstance(inner, dict):
        return {k: REDACTED for k in inner}
    if isinstance(inner, list):
        return [REDACTED for _ in inner]
    return REDACTED


def redact(value: Any) -> Any:
    out = _walk(value, _redacted)
    if isinstance(out, dict) and out.get("kind") == "Secret":
        for key in ("data", "stringData"):
            if isinstance(out.get(key), dict):
                out[key] = {k: REDACTED for k in out[key]}
    return out


def stack_file(repo: Path, stack: str) -> Path:
    """The stack's config file, ``Pulumi.<stack>.yaml`` beside ``Pulumi.yaml``."""
    return repo / f"Pulumi.{stack}.yaml"


def load_stack_file(repo: Path, stack: str) -> dict[str, Any]:
    """The ``peakscale:*`` values of ``Pulumi.<stack>.yaml``."""
    path = stack_file(repo, stack)
    if not path.is_file():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in repo.glob("Pulumi.*.yaml"))
        raise ConfigError("--stack", f"no Pulumi.{stack}.yaml", f"stacks here: {', '.join(known) or 'none'}")
    from autoscaler.adapters import yamlsafe

    doc = yamlsafe.read(path, path.name) or {}  # InputError naming the file, like every config error
    if not isinstance(doc, dict):
        raise ConfigError(path.name, "not a Pulumi stack config", "a mapping with config:")
    raw = {}
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path.name} config", "must be a mapping of keys to values")
    for key, value in config.items():
        project, _, name = str(key).partition(":")
        if project == "peakscale":
            raw[name] = value
    return raw


_RECORDER = None
_REGISTERED = False


def _dispatch(args):
    return _RECORDER(args) if _RECORDER is not None else None


def _ensure_transformation() -> None:
    """Stack transformations outlive one run: register one dispatcher, point it at each run."""
    import pulumi

    global _REGISTERED
    if not _REGISTERED:
        pulumi.runtime.register_stack_transformation(_dispatch)
        _REGISTERED = True


def render(config: dict[str, Any], stack: str = "dev") -> Rendered:
    """Run the program under mocks with ``config`` (peakscale:* keys without the prefix)."""
    parse_stack_config(config)  # fail with the config path before touching the runtime
    import pulumi

    declared: list[Declared] = []
    by_urn_name: dict[str, Declared] = {}
    calls: list[str] = []

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            inputs = _tidy(dict(args.inputs))
            key = f"{args.typ}::{args.name}"
            record = by_urn_name.get(key)
            if record is None:
                record = Declared(type=args.typ, name=args.name, inputs=inputs)
                declared.append(record)
                by_urn_name[key] = record
            record.type, record.inputs = args.typ, inputs
            state = dict(args.inputs)
            if args.typ == "random:index/randomPassword:RandomPassword":
                state["result"] = MOCK_PASSWORD
            return [f"{args.name}-id", state]

        def call(self, args: pulumi.runtime.MockCallArgs):
            calls.append(args.token)
            return {}

    def record_options(args: pulumi.ResourceTransformationArgs):
        key = f"{args.type_}::{args.name}"
        record = by_urn_name.get(key)
        if record is None:
            record = Declared(type=args.type_, name=args.name, inputs={})
            declared.append(record)
            by_urn_name[key] = record
        opts = args.opts
        record.ignore_changes = list(opts.ignore_changes or [])
        record.protect = bool(opts.protect)
        record.depends_on = [getattr(d, "_name", str(d)) for d in (opts.depends_on or []) if hasattr(d, "_name")]
        parent = getattr(args.resource, "_parent", None) or opts.parent
        record.parent = getattr(parent, "_name", None) if parent is not None else None
        return None

    pulumi.runtime.set_mocks(Mocks(), project="peakscale", stack=stack, preview=False)
    pulumi.runtime.set_all_config({f"peakscale:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
    _ensure_transformation()
    global _RECORDER
    _RECORDER = record_options

    from stacks import program

    exported: dict[str, Any] = {}

    def run():
        program.main()

    pulumi.runtime.test(run)()
    from pulumi.runtime.settings import get_root_resource
    from pulumi.runtime.sync_await import _sync_await

    root = get_root_resource()
    for key, value in (getattr(root, "outputs", None) or {}).items():
        exported[key] = _sync_await(pulumi.Output.from_input(value).future())
    declared = [d for d in declared if d.type and (d.inputs or not d.is_kubernetes_object)]
    return Rendered(stack=stack, resources=declared, outputs=_tidy(exported), calls=calls)


#: the list of files a render wrote, kept in the output folder
MANIFEST = ".peakscale-render.json"
REPO = Path(__file__).resolve().parent.parent


def _relative(value: Any) -> Any:
    """Paths inside the project written relative to it: a render shows no local folder."""
    if isinstance(value, str) and value.startswith(str(REPO)):
        return "." + value[len(str(REPO)) :]
    if isinstance(value, dict):
        return {k: _relative(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v) for v in value]
    return value


def write(rendered: Rendered, out: Path) -> list[Path]:
    """One YAML file per Kubernetes object (``<namespace>/<kind>-<name>.yaml``), plus the
    stack outputs and the other declared resources (Helm releases, passwords) as a summary.

    The folder keeps a manifest of what was written: a new render removes the files an earlier
    one wrote and this one did not (a dev render into a prod folder leaves no prod file behind),
    and a non-empty folder without a manifest is refused rather than mixed with."""
    manifest = out / MANIFEST
    previous: list[str] = []
    if out.exists():
        if not out.is_dir():
            raise ConfigError("--out", f"{str(out)!r} is a file", "give a folder")
        if manifest.is_file():
            try:
                files = json.loads(manifest.read_text()).get("files", [])
                if not isinstance(files, list) or not all(isinstance(p, str) and "\x00" not in p for p in files):
                    raise ValueError("files must be a list of paths")
                previous = files
            except (ValueError, AttributeError, UnicodeDecodeError):
                raise ConfigError("--out", f"{str(manifest)!r} is not a render manifest", "remove it, or give another folder") from None
        elif any(out.iterdir()):
            raise ConfigError("--out", f"{str(out)!r} is not empty and was not written by peakscale render", "give an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for obj in rendered.objects:
        meta = obj.get("metadata") or {}
        folder = out / (meta.get("namespace") or "_cluster")
        folder.mkdir(exist_ok=True)
        path = folder / f"{obj.get('kind', 'Object').lower()}-{meta.get('name', 'unnamed')}.yaml"
        path.write_text(yaml.safe_dump(_relative(obj), sort_keys=False))
        written.append(path)
    others = [
        {"type": r.type, "name": r.name, "inputs": _relative(redact(r.inputs))}
        for r in rendered.resources
        if not r.is_kubernetes_object and not r.type.startswith("peakscale:") and r.type != "pulumi:pulumi:Stack"
    ]
    summary = out / "_stack.yaml"
    summary.write_text(
        yaml.safe_dump({"stack": rendered.stack, "outputs": _relative(redact(rendered.outputs)), "other_resources": others}, sort_keys=False)
    )
    written.append(summary)
    names = sorted(str(p.relative_to(out)) for p in written)
    for stale in sorted(set(previous) - set(names)):
        target = (out / stale).resolve()
        # only ever a YAML file of ours, inside the folder, whatever a forged manifest lists
        if target.is_file() and target.suffix == ".yaml" and out.resolve() in target.parents:
            target.unlink()
            if target.parent != out.resolve() and not any(target.parent.iterdir()):
                target.parent.rmdir()
    manifest.write_text(json.dumps({"stack": rendered.stack, "files": names}, indent=1) + "\n")
    return written
