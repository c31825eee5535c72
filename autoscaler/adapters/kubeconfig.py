"""What kubectl reads from a kubeconfig before it talks to a cluster: the contexts, the current
one, and its namespace; read as YAML (without importing the Kubernetes client, which costs half a
second at every command's start).

The namespace rule every command follows, as kubectl's does: ``-n`` wins, then the namespace of
the context in use (in a pod: the ServiceAccount's namespace), then ``default``; ``-A`` means all.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from autoscaler.errors import InputError, did_you_mean

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def kubeconfig_files(kubeconfig: Path | str | None) -> list[Path]:
    """The files kubectl merges: ``--kubeconfig``, else ``$KUBECONFIG`` (a ``:`` list), else
    ``~/.kube/config``; only those that exist."""
    if kubeconfig is not None:
        return [Path(kubeconfig)]
    env = os.environ.get("KUBECONFIG")
    paths = [Path(p) for p in env.split(os.pathsep) if p] if env else [Path.home() / ".kube" / "config"]
    return [p for p in paths if p.is_file()]


def _load(path: Path) -> dict[str, Any]:
    """One kubeconfig file, parsed once per version of it (a command asks for its context, its
    namespace and its current context in turn)."""
    try:
        info = path.stat()
    except OSError:
        return {}
    return _parsed(str(path), info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=16)
def _parsed(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    import yaml

    try:
        with open(path, "rb") as handle:
            data = yaml.safe_load(handle.read(4 * 1024 * 1024))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def read(kubeconfig: Path | str | None) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The contexts (name -> context fields) merged over the files, the first of a name winning,
    and the current context (the first file that sets one), as kubectl merges them."""
    contexts: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for path in kubeconfig_files(kubeconfig):
        data = _load(path)
        for item in data.get("contexts") or []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                fields = item.get("context")
                contexts.setdefault(item["name"], fields if isinstance(fields, dict) else {})
        if current is None and isinstance(data.get("current-context"), str) and data["current-context"]:
            current = data["current-context"]
    return contexts, current


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT / "token").exists()


def check_context(kubeconfig: Path | str | None, context: str | None) -> None:
    """A ``--context`` that the kubeconfig does not have is refused, naming the contexts there
    (and the closest one)."""
    if context is None:
        return
    contexts, _ = read(kubeconfig)
    if context in contexts:
        return
    if not contexts:
        files = ", ".join(str(p) for p in kubeconfig_files(kubeconfig)) or "no kubeconfig found"
        raise InputError("--context", f"no context {context!r}: the kubeconfig has no contexts ({files})", "give --kubeconfig, or set KUBECONFIG")
    names = sorted(contexts)
    hint = did_you_mean(context, names)
    raise InputError("--context", f"no context {context!r}; contexts: {', '.join(names[:12])}", f"{hint}see kubectl config get-contexts")


def current_context(kubeconfig: Path | str | None, context: str | None) -> str | None:
    """The context a client would use: ``context``, else the kubeconfig's current one."""
    if context:
        return context
    return read(kubeconfig)[1]


def context_namespace(kubeconfig: Path | str | None, context: str | None) -> str | None:
    """The namespace of the context in use (in a pod without a kubeconfig: its ServiceAccount's)."""
    contexts, current = read(kubeconfig)
    name = context or current
    if name is not None and name in contexts:
        ns = contexts[name].get("namespace")
        return str(ns) if ns else None
    if kubeconfig is None and not contexts and in_cluster():
        try:
            return (SERVICE_ACCOUNT / "namespace").read_text().strip() or None
        except OSError:
            return None
    return None


def resolve_namespace(namespace: str | None, all_namespaces: bool, kubeconfig: Path | str | None, context: str | None) -> str | None:
    """kubectl's rule: ``-n``, else the context's namespace, else ``default``; None with ``-A``
    (every namespace). ``-n`` and ``-A`` together are refused."""
    if all_namespaces:
        if namespace is not None:
            raise InputError("--all-namespaces", "given with --namespace", "give one of -n NAMESPACE or -A")
        return None
    if namespace is not None:
        return namespace
    return context_namespace(kubeconfig, context) or "default"


def resolve_namespaces(namespaces: list[str] | None, all_namespaces: bool, kubeconfig: Path | str | None, context: str | None) -> list[str] | None:
    """``resolve_namespace`` for commands that take ``-n`` more than once (the controller,
    ``preflight``): the namespaces given, else the one of kubectl's rule; None with ``-A``."""
    if namespaces and not all_namespaces:
        return list(dict.fromkeys(namespaces))
    one = resolve_namespace(namespaces[0] if namespaces else None, all_namespaces, kubeconfig, context)
    return None if one is None else [one]
