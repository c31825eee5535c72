"""The Kubernetes API double, for what the real control plane cannot do: injected faults."""

from __future__ import annotations

import pytest

from tests.conftest import BASE_DEMAND, DATA_END_AGO, DAYS, METRIC, STEP, demand_at  # noqa: F401 (re-exported for the tests here)
from tests.fakes.kube import FakeKube


@pytest.fixture
def kube():
    fake = FakeKube()
    fake.url = fake.start()
    yield fake
    fake.stop()
