"""Numba CPU kernels that map each value on its own: ``(x - center) / scale`` and its inverse.

Computed in float64 and rounded once to the output dtype, with no fused multiply-add, so
results match numpy bit for bit. Null slots are computed too (their values are undefined and
masked by the caller). Several columns go by address (see :mod:`streamnorm.kernels.memory`)
in one call; :mod:`streamnorm.kernels.cpu` picks the serial or the parallel kernel in Python
(a cached function calling a parallel one can crash when loaded from the cache, numba issue
8578). Every value is computed independently, so the choice never changes a result.
"""

from __future__ import annotations

from numba import njit, prange

from .cpu_moments import CHUNK, task_layout
from .memory import array_at


@njit(cache=True)
def _normalize_segment(values, center, scale, out):
    for i in range(values.shape[0]):
        out[i] = (float(values[i]) - center) / scale


@njit(cache=True, parallel=True)
def normalize_column(values, center, scale, out):
    """``out[i] = (values[i] - center) / scale`` in float64, rounded once to out's dtype.

    ``values`` 1-D, any numeric dtype; ``out`` float32/float64 of the same length.
    """
    n = values.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        _normalize_segment(values[start:stop], center, scale, out[start:stop])


@njit(cache=True, parallel=True)
def denormalize_column(values, center, scale, out):
    """``out[i] = values[i] * scale + center`` in float64, rounded once to out's dtype.

    The inverse of :func:`normalize_column` (no fused multiply-add, so results match numpy).
    """
    n = values.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        for i in range(c * CHUNK, min((c + 1) * CHUNK, n)):
            out[i] = float(values[i]) * scale + center


@njit(cache=True)
def _map_span(values, center, scale, out, start, stop, inverse):
    """``out[i] = (x - center) / scale`` (or ``x * scale + center`` if ``inverse``) on a span."""
    if inverse:
        for i in range(start, stop):
            out[i] = float(values[i]) * scale + center
    else:
        for i in range(start, stop):
            out[i] = (float(values[i]) - center) / scale


@njit(cache=True)
def map_columns_serial_at(like, addresses, lengths, centers, scales, out_like, out_addresses,
                          inverse):
    """:func:`map_columns_parallel_at` without a parallel launch (for small inputs)."""
    for j in range(addresses.shape[0]):
        values = array_at(addresses[j], lengths[j], like)
        out = array_at(out_addresses[j], lengths[j], out_like)
        _map_span(values, centers[j], scales[j], out, 0, lengths[j], inverse)


@njit(cache=True, parallel=True)
def map_columns_parallel_at(like, addresses, lengths, centers, scales, out_like, out_addresses,
                            inverse):
    """``out_j = (column_j - centers[j]) / scales[j]`` (``inverse``: ``column_j * scales[j] +
    centers[j]``) for same-dtype columns given by address, in one parallel launch.

    ``like``/``out_like``: arrays of the input/output dtype (only their types are used);
    ``addresses``/``out_addresses``/``lengths`` int64[k]; ``centers``/``scales`` float64[k].
    Work items are (column, chunk) pairs, so many short columns still fill every thread.
    """
    first_task, task_column = task_layout(lengths)
    for t in prange(task_column.shape[0]):
        j = task_column[t]
        start = (t - first_task[j]) * CHUNK
        stop = min(start + CHUNK, lengths[j])
        values = array_at(addresses[j], lengths[j], like)
        out = array_at(out_addresses[j], lengths[j], out_like)
        _map_span(values, centers[j], scales[j], out, start, stop, inverse)
