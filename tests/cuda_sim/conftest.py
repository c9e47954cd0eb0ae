"""The CUDA kernel tests: run only where numba.cuda is set up for them.

They need the simulator enabled before numba.cuda is first imported, so the main test run
starts them in a subprocess (``tests/test_cuda.py``) with ``NUMBA_ENABLE_CUDASIM=1``. On a
machine with a GPU, ``STREAMNORM_TEST_CUDA=1`` runs the same tests on the device. Otherwise
nothing in this folder is collected (not even imported).
"""

from __future__ import annotations

import os

_ENABLED = (
    os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or os.environ.get("STREAMNORM_TEST_CUDA") == "1"
)

if not _ENABLED:
    collect_ignore_glob = ["*.py"]
