"""Shared fixtures: paths to the real traces, a real Prometheus with backfilled history, and the
real local control plane."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.objects import delete_namespace, ensure_namespace, unique
from tests.prometheus_server import PrometheusServer, backfill, write_openmetrics

REPO = Path(__file__).resolve().parent.parent
SHARED_TRACES = REPO.parent / "shared" / "data" / "traces"


STEP = 60
#: backfilled data ends this long before the real now (Prometheus wants it a few hours old)
DATA_END_AGO = 3 * 3600
DAYS = 3
METRIC = 'shop_demand{app="web"}'
BASE_DEMAND = 10_000.0


def demand_at(ts: int) -> float:
    hour = (ts % 86400) / 3600
    return BASE_DEMAND * (1 + 0.2 * math.sin(hour / 24 * 2 * math.pi))


@pytest.fixture(scope="session")
def history_window():
    end = (int(time.time()) - DATA_END_AGO) // STEP * STEP
    start = end - DAYS * 86400
    return start, end


@pytest.fixture(scope="session")
def tsdb_template(tmp_path_factory, history_window):
    start, end = history_window
    work = tmp_path_factory.mktemp("tsdb")
    points = [(ts, round(demand_at(ts), 3)) for ts in range(start, end + STEP, STEP)]
    path = work / "history.om"
    write_openmetrics(path, {METRIC: points})
    backfill(path, work / "blocks")
    return work / "blocks"


@pytest.fixture(scope="session")
def prometheus(tsdb_template, tmp_path_factory):
    server = PrometheusServer(tsdb_template, tmp_path_factory.mktemp("prom"))
    yield server
    server.stop()


@pytest.fixture
def own_prometheus(tsdb_template, tmp_path):
    """A Prometheus of this test's own, which the test may kill."""
    server = PrometheusServer(tsdb_template, tmp_path)
    yield server
    server.stop()


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


@pytest.fixture(scope="session")
def metrics_adapter(cluster):
    """The External metrics API (what prometheus-adapter serves), on this worker's control plane."""
    from tests.cluster.metrics_adapter import MetricsAdapter

    adapter = MetricsAdapter(cluster).start()
    yield adapter
    adapter.stop()
