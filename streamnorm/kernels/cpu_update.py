"""Numba CPU kernel for large plain batches: a record batch's columns located, their moments
taken in one parallel launch and merged into the state arrays in place, in one call.

The parallel counterpart of :func:`.cpu_small.update_at` (issue 14, 64k-row batches). Through
:func:`streamnorm.state.ingest.add_batch` a 65,536 x 32 float64 batch paid, besides the moments
kernel, for the columns located in Python, the finiteness check and the numpy merge: about
0.3 ms of numpy and Python per batch, run right after the kernel has streamed 16 MB through
the caches, so with Python's own data cold. Here those steps are compiled around the parallel
loop: locate (:func:`.memory.locate_children`), the (column, chunk) tasks of
:func:`.cpu_moments.columns_moments_at` in a ``prange``, the tasks merged in chunk order, then
:func:`.cpu_small.merge_batch` (the numpy merge repeated operation for operation). The same
tasks, merge order and merge as the general path: the same bits, for any thread count.

This function is parallel and cached; it calls only serial cached functions (a cached function
calling a parallel one crashes on a warm cache, numba issue 8578).
"""

from __future__ import annotations

from numba import njit, prange

from .cpu_moments import (
    empty_chunk_states,
    merge_tasks,
    shifts_at,
    task_layout,
    task_moments_at,
)
from .cpu_small import merge_batch
from .memory import locate_children


@njit(cache=True, parallel=True)
def parallel_update_at(struct, children, positions, like, null_count, nan_count, count, shift,
                       mean, m2, lo, hi, scale_exp, status, partial):
    """:func:`.cpu_small.update_at` with the moments in one parallel launch over (column,
    chunk) tasks: the same arguments, effects and return value (-1: a buffer not readable
    by address, nothing done; else the number of columns left for the general merge or the
    careful path, their partial results in ``partial``)."""
    addresses, lengths, validity_addresses, bit_offsets, has_validity, usable = (
        locate_children(struct, children, like.itemsize))
    if not usable:
        return -1
    shift_used = shifts_at(like, addresses, lengths, validity_addresses, bit_offsets,
                           has_validity, shift[positions])
    first_task, task_column = task_layout(lengths)
    n_tasks = task_column.shape[0]
    counts, nan_counts, means, m2s, los, his = empty_chunk_states(n_tasks)
    for t in prange(n_tasks):
        counts[t], nan_counts[t], means[t], m2s[t], los[t], his[t] = task_moments_at(
            t, first_task, task_column, like, addresses, lengths, validity_addresses,
            bit_offsets, has_validity, shift_used
        )
    p_count, p_nan, p_mean, p_m2, p_lo, p_hi = merge_tasks(
        first_task, counts, nan_counts, means, m2s, los, his
    )
    result = (p_count, p_nan, p_mean, p_m2, p_lo, p_hi, shift_used)
    return merge_batch(result, lengths, positions, null_count, nan_count, count, shift, mean,
                       m2, lo, hi, scale_exp, status, partial)
