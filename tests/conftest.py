"""Shared fixtures: paths to the real traces, and the real local control plane."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.objects import delete_namespace, ensure_namespace, unique

REPO = Path(__file__).resolve().parent.parent
SHARED_TRACES = REPO.parent / "shared" / "data" / "traces"


@pytest.fixture
def shared_traces() -> Path:
    if not SHARED_TRACES.is_dir():
        pytest.skip(f"real traces not found at {SHARED_TRACES} (the project's shared data sits beside the repo)")
    return SHARED_TRACES


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok, on 127.0.0.1: one
    per xdist worker, started on first use (`tools/build.sh` builds them; `make test` runs it)."""
    plane = ControlPlane(tmp_path_factory.mktemp("cluster")).start()
    yield plane
    plane.stop()


@pytest.fixture
def namespace(cluster):
    """A namespace of this test's own (a uuid in its name), deleted after it."""
    name = unique("t")
    api = cluster.api()
    ensure_namespace(api, name)
    yield name
    delete_namespace(api, name)
