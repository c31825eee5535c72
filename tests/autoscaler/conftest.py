"""Fixtures for the controller: a real Prometheus with backfilled history, the Kubernetes double."""

from __future__ import annotations

import math
import time

import pytest

from tests.fakes.kube import FakeKube
from tests.prometheus_server import PrometheusServer, backfill, write_openmetrics

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
def kube():
    fake = FakeKube()
    fake.url = fake.start()
    yield fake
    fake.stop()
