"""Shared fixtures and exact references for the test suite."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


@pytest.fixture(scope="module")
def client():
    """A real distributed.LocalCluster (2 worker processes, 1 thread each) and its Client, one
    per test module that asks for it, closed after the module; skipped without Dask."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
    ) as cluster, distributed.Client(cluster) as dask_client:
        yield dask_client
