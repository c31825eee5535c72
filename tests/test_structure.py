"""The shape of the code: a pure core, packages without cycles, no private names across modules,
and a base install (what the controller image gets) without Pulumi or matplotlib."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("autoscaler", "stacks")
#: what the pure core must never load: I/O libraries and the shells around it
FORBIDDEN_IN_CORE = ("kubernetes", "prometheus_api_client", "pulumi", "yaml", "csv", "typer", "matplotlib", "rich")


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports_of(path: Path, module: str) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import in the file, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x: the package, one level up per extra dot
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            out.append((base, [alias.name for alias in node.names]))
    return out


def test_the_core_loads_no_io_library_and_no_shell_around_it():
    # pydantic (a core dependency) loads importlib.metadata, which loads csv: it is loaded first and
    # allowed; then every other forbidden name is made unimportable and the whole core imported
    core = sorted(name for name in modules() if name.startswith("autoscaler.core"))
    script = f"""
import sys, importlib, json
import numpy, pydantic
import importlib.metadata  # pydantic's plugin loader reads entry points through it, and it loads csv
before = set(sys.modules)
FORBIDDEN = {FORBIDDEN_IN_CORE!r}
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN and name not in before:
            raise ImportError("the core imported " + name)
        return None
sys.meta_path.insert(0, Refuse())
for name in {core!r}:
    importlib.import_module(name)
loaded = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in FORBIDDEN)
print(json.dumps(loaded))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []
    # and no core module names one of them in its own imports
    for name, path in modules().items():
        if name.startswith("autoscaler.core"):
            named = {imported.split(".")[0] for imported, _ in imports_of(path, name)}
            assert not named & set(FORBIDDEN_IN_CORE), f"{path.relative_to(REPO)} imports {sorted(named & set(FORBIDDEN_IN_CORE))}"


def package_of(module: str) -> str:
    """The node of the package graph a module belongs to: ``stacks``, a subpackage of
    ``autoscaler`` (``autoscaler.core``), or a top module of it (``autoscaler.errors``)."""
    parts = module.split(".")
    if parts[0] == "stacks":
        return "stacks"
    return ".".join(parts[:2])


def test_the_package_graph_has_no_cycle():
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        source = package_of(name)
        for imported, _ in imports_of(path, name):
            if imported.split(".")[0] in PACKAGES:
                target = package_of(imported)
                if target != source and target in {package_of(m) for m in known}:
                    graph.setdefault(source, set()).add(target)
    # autoscaler never imports stacks: the stacks build on it, not the other way round
    assert not any(t == "stacks" for s, ts in graph.items() if s.startswith("autoscaler") for t in ts), graph
    # the core imports nothing around it
    assert graph.get("autoscaler.core", set()) <= {"autoscaler.errors"}, graph.get("autoscaler.core")
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("package cycle: " + " -> ".join(trail[trail.index(nxt):] + [node, nxt]) if nxt in trail else f"package cycle through {node} -> {nxt}")
            if not state.get(nxt):
                visit(nxt, trail + [node])
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node, [])


def test_no_private_name_is_imported_across_modules():
    offenders = []
    for name, path in modules().items():
        for imported, names in imports_of(path, name):
            if imported.split(".")[0] in PACKAGES:
                offenders.extend(f"{path.relative_to(REPO)}: {imported}.{n}" for n in names if n.startswith("_") and not n.startswith("__"))
    assert offenders == []


def test_the_public_api_is_reexported_from_the_package():
    import autoscaler

    assert autoscaler.__all__
    for name in autoscaler.__all__:
        assert getattr(autoscaler, name) is not None, name


@pytest.mark.skipif(shutil.which("uv") is None and not os.environ.get("UV"), reason="uv installs the base into a fresh venv")
def test_the_base_install_has_no_pulumi_grpc_or_matplotlib_and_runs_the_controller_and_a_backtest(tmp_path):
    uv = shutil.which("uv") or os.environ["UV"]
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), str(REPO)], check=True, timeout=600, cwd=tmp_path)
    listed = subprocess.run([uv, "pip", "list", "--python", str(python), "--format", "json"], check=True, capture_output=True, text=True).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert not {n for n in names if n.startswith(("pulumi", "grpc", "matplotlib"))}, sorted(names)
    peakscale = venv / "bin" / "peakscale"
    helped = subprocess.run([str(peakscale), "controller", "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert helped.returncode == 0 and "--prometheus-url" in helped.stdout, helped.stderr
    run = subprocess.run([str(peakscale), "backtest", "--json", "-q"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    doc = json.loads(run.stdout)
    assert doc["strategies"]["peakscale"]["events"]["unserved_fraction"] < doc["strategies"]["reactive"]["events"]["unserved_fraction"]
    render = subprocess.run([str(peakscale), "render"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert render.returncode == 1 and "peakscale[stacks]" in render.stderr and "Traceback" not in render.stderr


def test_the_kubernetes_clients_exceptions_stop_at_the_adapters():
    """Errors at the boundary, as kopf keeps them: only ``autoscaler/adapters`` sees the official
    client's ``ApiException`` (and its exceptions module) and the HTTP libraries Prometheus is read
    with (their failures are ``MetricsUnavailable``/``HistoryUnavailable`` outside); everything else catches the project's
    ``KubeApiError``s (``KubeNotFound``, ``KubeConflict``, ``KubeForbidden``, ``KubeInvalid``,
    ``KubeUnavailable``), which the adapters' ``Translating`` raise instead."""
    leaks = []
    for name, path in modules().items():
        if name.startswith("autoscaler.adapters"):
            continue
        for module, names in imports_of(path, name):
            # and the HTTP libraries under the Prometheus adapter: MetricsUnavailable / HistoryUnavailable outside
            if module.startswith(("kubernetes.client.exceptions", "kubernetes.client.rest", "requests", "urllib3", "prometheus_api_client")) or "ApiException" in names or (module == "kubernetes.client" and "exceptions" in names):
                leaks.append(f"{path.relative_to(REPO)} imports {', '.join(names) or module}")
    assert leaks == []


def test_a_translated_error_says_what_the_server_said_and_is_the_projects_own():
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import MaxRetryError

    from autoscaler.adapters.kube_errors import Translating, translated
    from autoscaler.errors import KubeApiError, KubeConflict, KubeForbidden, KubeInvalid, KubeNotFound, KubeUnavailable, KubeUnreachable, Unavailable

    for status, kind in ((404, KubeNotFound), (409, KubeConflict), (403, KubeForbidden), (401, KubeForbidden), (422, KubeInvalid), (503, KubeUnavailable), (429, KubeUnavailable), (418, KubeApiError)):
        error = translated(ApiException(status=status, reason="Because"))
        assert type(error) is kind and error.status == status and str(error) == f"HTTP {status} Because" and isinstance(error, Unavailable)

    class Api:
        def read(self):
            raise MaxRetryError(None, "/x", "connection refused")

    with pytest.raises(KubeUnavailable) as caught:
        Translating(Api()).read()
    assert type(caught.value) is KubeUnreachable and caught.value.status is None and "MaxRetryError" in str(caught.value)


def test_no_test_module_imports_another():
    """What tests share lives in modules of its own (tests/builders.py, tests/schemas.py, the conftests,
    tests/controller/world.py), never in another test module."""
    borrowed = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[-1].startswith("test_"):
                borrowed.append(f"{path.relative_to(REPO)} imports {node.module}")
    assert borrowed == []


def test_the_core_names_fields_never_command_line_options():
    """Errors name the field as the user wrote it: the core says ``spec.maxReplicas`` (what a policy's
    status shows), and a command that took the value from an option maps it (``cli.output.as_options``)."""
    import re

    from autoscaler.core.plan import PlanPolicy
    from autoscaler.errors import InputError

    flags = [f"{p.relative_to(REPO)}: {m.group(0)}" for p in sorted((REPO / "autoscaler" / "core").rglob("*.py")) for m in re.finditer(r"InputError\(\s*f?\"--[a-z-]+", p.read_text())]
    assert flags == []
    with pytest.raises(InputError) as refused:
        PlanPolicy(capacity_per_replica=10, lead_time_s=60, min_replicas=5, max_replicas=3)
    assert refused.value.where == "spec.minReplicas" and "spec.maxReplicas 3" in refused.value.problem


def test_the_controller_is_collaborators_not_a_chain_of_mixins():
    """Issue 24: no controller class extends another of the project's own classes (the loop holds
    its collaborators), and custom resources are read through ``resource.Resource``, never as raw
    metadata dicts of a policy or a promotion."""
    import re

    import dataclasses
    import importlib
    import inspect

    from pydantic import BaseModel

    folder = REPO / "autoscaler" / "controller"
    extends = []
    for path in sorted(folder.glob("*.py")):
        module = importlib.import_module(f"autoscaler.controller.{path.stem}")
        for cls in (c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__):
            if issubclass(cls, (BaseModel, BaseException)) or dataclasses.is_dataclass(cls):
                continue  # a record, a status model, an error: data, not steps
            extends += [f"{path.name}: {cls.__name__}({b.__name__})" for b in cls.__mro__[1:] if b.__module__.startswith("autoscaler.")]
    assert extends == []
    raw = [f"{p.name}: {m.group(0)}" for p in (folder / n for n in ("reconcile.py", "observe.py", "act.py", "report.py", "events.py", "preflight_runs.py")) for m in re.finditer(r"\bobj(\.get\(\"metadata\"\)|\[\"metadata\"\])", p.read_text())]
    assert raw == []
