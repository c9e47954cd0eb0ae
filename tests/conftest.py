"""Shared fixtures and exact references for the test suite."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


@pytest.fixture(scope="session")
def client():
    """A real distributed.LocalCluster (2 worker processes, 1 thread each) and its Client,
    started for the first test that asks for it and shared by the Dask test modules (starting
    one costs a few CPU-seconds: its processes import Dask and streamnorm), closed at the end
    of the session (of each pytest-xdist worker); skipped without Dask."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
    ) as cluster, distributed.Client(cluster) as dask_client:
        yield dask_client
