"""The controller against the real control plane and a real Prometheus: a namespace per test,
the chart's RBAC for a release of the test's own, the controller as the chart's ServiceAccount."""

from __future__ import annotations

import pytest

from tests.cluster.facade import ClusterKube


@pytest.fixture
def kube(cluster, namespace):
    """The test's namespace on the real control plane, with the chart's CRDs and RBAC installed."""
    view = ClusterKube(cluster, namespace)
    yield view
    # every request the controller made was one the chart grants (the audit log says so)
    refused = view.refused()
    assert refused == [], f"the chart's RBAC refused the controller: {refused}"


@pytest.fixture
def start(history_window):
    """A simulated 'now' well inside the backfilled history."""
    return float(history_window[1] - 6 * 3600)
