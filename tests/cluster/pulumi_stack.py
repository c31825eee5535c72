"""The real Pulumi engine, offline, against the local control plane.

The Pulumi CLI and the Kubernetes provider are built from their Go modules (``tools/build.sh``) and
found on PATH (``$PEAKSCALE_CACHE/bin``). State lives in a file backend in a directory of the
caller's (``pulumi login --local``'s kind), secrets under a passphrase, and the engine neither
checks for updates nor downloads plugins.

The Python language host's Go module is not served by the module proxy, so the program runs the
Automation API's way: an inline program, ``stacks.program.main``, served to the CLI by this Python
process. The CLI, the engine, the provider and the state are the same as ``pulumi up`` uses.

The dev stack runs with two local overrides (``LOCAL_CONFIG``), because this machine reaches no
chart repository and no provider registry:

* ``database.installOperator: false``: the CloudNativePG operator's chart is not downloaded;
  its CRDs, generated from CloudNativePG's Go API by controller-gen, are installed beforehand
  (``install_cnpg_crds``), so the Cluster and Pooler meet the real schema.
* ``cachePassword``, ``cacheAppPassword``, ``cacheExporterPassword`` (secrets): the Redis users'
  passwords come from config instead of pulumi-random, whose provider module the proxy does not serve.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from tests.cluster.controlplane import BIN, binary
from tests.cluster.objects import apply

REPO = Path(__file__).resolve().parents[2]
PROJECT = "peakscale"
PASSPHRASE = "local-cluster-only"
LOCAL_CONFIG = {"database.installOperator": False}


def engine_env(kubeconfig: Path, state: Path) -> dict[str, str]:
    return {
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_BACKEND_URL": f"file://{state}",
        "KUBECONFIG": str(kubeconfig),
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }


def install_cnpg_crds(api: Any) -> list[str]:
    """CloudNativePG's CRDs, as controller-gen generated them from its API types."""
    crds = sorted((binary("controller-gen").resolve().parent / "crds").glob("*.yaml"))
    docs = [yaml.safe_load(p.read_text()) for p in crds]
    apply(api, docs)
    return [d["metadata"]["name"] for d in docs]


def make_room(api: Any, prefix: str) -> str:
    """What a `pulumi up` of a stack needs on this worker's control plane: CloudNativePG's CRDs, no
    PriorityClass of the controller tests' RBAC-only installs (Helm adopts nothing it did not make),
    and three nodes of a pool of its own (returned, for ``delete_nodes``)."""
    from kubernetes import client

    from tests.cluster.objects import add_nodes, unique

    install_cnpg_crds(api)
    try:
        client.SchedulingV1Api(api).delete_priority_class("peakscale-headroom")
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    pool = unique(prefix)
    add_nodes(api, 3, pool=pool, cpu="16", memory="64Gi")
    return pool


def dev_stack(work: Path, kubeconfig: Path, *, stack: str = "dev", config: dict[str, Any] | None = None) -> auto.Stack:
    """The repository's stack ``stack`` (its Pulumi.<stack>.yaml), in a workspace under ``work``,
    with the local overrides and ``config`` (dotted paths) set."""
    from stacks.program import main

    work.mkdir(parents=True, exist_ok=True)
    state = work / "state"
    state.mkdir(exist_ok=True)
    env = engine_env(kubeconfig, state)
    # the Automation API finds the CLI on this process's PATH
    os.environ["PATH"] = env["PATH"]
    shutil.copy(REPO / f"Pulumi.{stack}.yaml", work / f"Pulumi.{stack}.yaml")
    settings = auto.ProjectSettings(name=PROJECT, runtime="python", backend=auto.ProjectBackend(url=env["PULUMI_BACKEND_URL"]))
    options = auto.LocalWorkspaceOptions(work_dir=str(work), pulumi_home=str(work / "home"), env_vars=env, project_settings=settings, secrets_provider="passphrase")
    result = auto.create_or_select_stack(stack_name=stack, project_name=PROJECT, program=main, opts=options)
    values = {**LOCAL_CONFIG, **(config or {})}
    result.set_all_config({k: auto.ConfigValue(value=v if isinstance(v, str) else json.dumps(v)) for k, v in values.items()}, path=True)
    for setting in ("cachePassword", "cacheAppPassword", "cacheExporterPassword"):
        if result.get_all_config().get(f"{PROJECT}:{setting}") is None:
            result.set_config(setting, auto.ConfigValue(value=secrets.token_urlsafe(24), secret=True))
    return result
