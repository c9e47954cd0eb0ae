"""The CUDA kernel tests: run only where numba.cuda is set up for them.

They need the simulator enabled before numba.cuda is first imported, so the main test run
starts them in subprocesses (``tests/test_cuda.py``, in shards) with
``NUMBA_ENABLE_CUDASIM=1``. On a machine with a GPU, ``STREAMNORM_TEST_CUDA=1`` runs the same
tests on the device. Otherwise nothing in this folder is collected (not even imported).
"""

from __future__ import annotations

import os
import sys

_ENABLED = (
    os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or os.environ.get("STREAMNORM_TEST_CUDA") == "1"
)

if not _ENABLED:
    collect_ignore_glob = ["*.py"]
elif os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    # The simulator runs each CUDA thread as a Python thread, and its block manager polls them
    # in a loop that holds the GIL until the interpreter's switch interval (5 ms) runs out:
    # with a shorter one the simulated threads get the GIL sooner (the same tests in about
    # 0.6x the time on a loaded 2-core machine). Only the time changes, not what runs.
    sys.setswitchinterval(1e-4)


def pytest_collection_modifyitems(config, items) -> None:
    """``STREAMNORM_CUDA_SHARD=K/N``: keep every N-th test from the K-th (0-based), so that
    ``tests/test_cuda.py`` can run the simulator tests in N processes, spread over the
    pytest-xdist workers; the N shards together run every test once."""
    shard = os.environ.get("STREAMNORM_CUDA_SHARD")
    if not shard:
        return
    k, n = map(int, shard.split("/"))
    keep = [item for i, item in enumerate(items) if i % n == k]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep
