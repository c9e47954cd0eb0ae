"""Task functions the Dask tests ship to worker processes.

They live in a top-level module of tests/ (on the workers' sys.path through pytest's
``pythonpath`` setting) because dask pickles importable functions by reference, and the test
modules themselves are imported under a package name the workers cannot import.
"""

from __future__ import annotations

import os
import signal

import pyarrow.parquet as pq


def kill_worker_once(path: str, victim: str, marker: str):
    """Read one file; the first time ``victim`` is read, SIGKILL this worker process instead."""
    import pandas as pd

    if path == victim:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
    return pq.read_table(path).to_pandas(types_mapper=pd.ArrowDtype)


def log_error_and_print(message: str) -> None:
    """Log ``message`` as an error on a worker's ``distributed`` logger, as Dask itself does
    for races it recovers from, then print it to the worker's stderr directly."""
    import logging
    import sys

    logging.getLogger("distributed.worker").error("logged: %s", message)
    print(f"printed: {message}", file=sys.stderr, flush=True)
