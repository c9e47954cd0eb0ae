"""Output buffers for the kernels, taken from Arrow's memory pool.

A numpy allocation of a batch-sized output (hundreds of KB per column) goes to the C library,
which hands pages back to the system when freed and faults them in again, zero-filled, for
the next batch: on some virtual machines those page faults cost more than the arithmetic
(1.5–2.6 s per GB measured on a 2-core EPYC VM, against 0.25 s to write the same bytes into
touched memory). Arrow's pool (mimalloc or jemalloc) keeps freed pages for the next
allocation, so a stream of batches reuses the same memory.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def pooled_empty(length: int, dtype: np.dtype | type) -> np.ndarray:
    """An uninitialized, writable, 64-byte aligned 1-D array of ``length`` values of ``dtype``
    backed by a buffer of Arrow's default memory pool (the buffer lives as long as the array
    or any Arrow array wrapping it)."""
    dtype = np.dtype(dtype)
    buffer = pa.allocate_buffer(max(length, 0) * dtype.itemsize)
    return np.frombuffer(buffer, dtype=dtype, count=length)
