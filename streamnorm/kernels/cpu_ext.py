"""Numba CPU kernels for the extensions: higher moments (M3, M4), frequency weights and
grouped (per-key) moments (issue 8). They run on the CPU whatever the target.

A state here is ``(weight_sum, shifted_mean, m2, m3, m4)``: ``weight_sum`` is the count (the
sum of the frequency weights, float64), ``m_k`` the weighted sum of the k-th powers of
deviations from the mean. Deviations do not depend on the shift, so m2..m4 are
shift-invariant; only the mean has to be re-expressed when states with different shifts merge.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .cpu_moments import BLOCK, CHUNK, bit_is_set, task_layout
from .memory import array_at, bitmap_at


@njit(cache=True, inline="always")
def pebay_merge(n_a, mean_a, m2_a, m3_a, m4_a, n_b, mean_b, m2_b, m3_b, m4_b):
    """Pébay's pairwise merge of two (count, mean, m2, m3, m4) states with the same shift.

    Counts may be non-integer (sums of frequency weights). Reduces to Chan's merge for m2.
    """
    if n_b == 0.0:
        return n_a, mean_a, m2_a, m3_a, m4_a
    if n_a == 0.0:
        return n_b, mean_b, m2_b, m3_b, m4_b
    n = n_a + n_b
    if not (np.isfinite(mean_a) and np.isfinite(mean_b)):
        return n, mean_a + mean_b, np.nan, np.nan, np.nan  # ±inf: as chan_merge
    delta = mean_b - mean_a
    d_n = delta / n
    ab = n_a * n_b
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta * delta * (ab / n)
    m3 = (m3_a + m3_b + delta * d_n * d_n * ab * (n_a - n_b)
          + 3.0 * d_n * (n_a * m2_b - n_b * m2_a))
    m4 = (m4_a + m4_b + delta * d_n * d_n * d_n * ab * (n_a * n_a - ab + n_b * n_b)
          + 6.0 * d_n * d_n * (n_a * n_a * m2_b + n_b * n_b * m2_a)
          + 4.0 * d_n * (n_a * m3_b - n_b * m3_a))
    return n, mean, m2, m3, m4


@njit(cache=True, inline="always")
def _ext_weight(weights, has_weights, i):
    return weights[i] if has_weights else 1.0


@njit(cache=True)
def _ext_block(values, validity, bit_offset, has_validity, weights, has_weights, higher,
               start, stop, shift):
    """Two-pass moments of ``values[start:stop]`` with optional weights and M3/M4.

    Rows of weight 0 are ignored entirely. Returns (weight_sum, nan_count, null_count,
    shifted_mean, m2, m3, m4, min, max); nan/null counts are of rows with positive weight.
    """
    wsum = 0.0
    total = 0.0
    nan_count = 0
    null_count = 0
    lo = np.inf
    hi = -np.inf
    for i in range(start, stop):
        w = _ext_weight(weights, has_weights, i)
        if w == 0.0:
            continue
        if has_validity and not bit_is_set(validity, bit_offset + i):
            null_count += 1
            continue
        x = float(values[i])
        if x != x:
            nan_count += 1
            continue
        wsum += w
        total += w * (x - shift)
        lo = min(lo, x)
        hi = max(hi, x)
    if wsum == 0.0:
        return 0.0, nan_count, null_count, 0.0, 0.0, 0.0, 0.0, np.nan, np.nan
    mean = total / wsum
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    for i in range(start, stop):
        w = _ext_weight(weights, has_weights, i)
        if w == 0.0 or (has_validity and not bit_is_set(validity, bit_offset + i)):
            continue
        x = float(values[i])
        if x != x:
            continue
        d = (x - shift) - mean
        d2 = d * d
        m2 += w * d2
        if higher:
            m3 += w * d2 * d
            m4 += w * d2 * d2
    return wsum, nan_count, null_count, mean, m2, m3, m4, lo, hi


@njit(cache=True)
def _ext_chunk(values, validity, bit_offset, has_validity, weights, has_weights, higher,
               start, stop, shift):
    """Blocks of ``BLOCK`` values merged in order with :func:`pebay_merge`."""
    n = 0.0
    mean = 0.0
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    nan_count = 0
    null_count = 0
    lo = np.inf
    hi = -np.inf
    for block_start in range(start, stop, BLOCK):
        block_stop = min(block_start + BLOCK, stop)
        n_b, nan_b, null_b, mean_b, m2_b, m3_b, m4_b, lo_b, hi_b = _ext_block(
            values, validity, bit_offset, has_validity, weights, has_weights, higher,
            block_start, block_stop, shift
        )
        nan_count += nan_b
        null_count += null_b
        if n_b > 0.0:
            n, mean, m2, m3, m4 = pebay_merge(n, mean, m2, m3, m4, n_b, mean_b, m2_b, m3_b, m4_b)
            lo = min(lo, lo_b)
            hi = max(hi, hi_b)
    return n, nan_count, null_count, mean, m2, m3, m4, lo, hi


@njit(cache=True, parallel=True)
def column_moments_ext(values, validity, bit_offset, has_validity, weights, has_weights, higher,
                       shift):
    """Moments of one column with optional frequency weights and optional M3/M4.

    Parameters
    ----------
    values, validity, bit_offset, has_validity, shift : as in :func:`column_moments`.
    weights : float64 array, shape (n,), finite and >= 0 (read only if ``has_weights``).
    has_weights : bool; without weights every row has weight 1.
    higher : bool, whether to accumulate m3 and m4 (else they are returned as 0).

    Returns
    -------
    (weight_sum, nan_count, null_count, shifted_mean, m2, m3, m4, minimum, maximum)
        ``weight_sum`` float64; nan/null counts int64, of rows with positive weight;
        min/max NaN when weight_sum is 0. Blocks and chunks merge in a fixed order.
    """
    n = values.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    out = np.zeros((n_chunks, 7))
    nans = np.zeros(n_chunks, dtype=np.int64)
    nulls = np.zeros(n_chunks, dtype=np.int64)
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        w_c, nan_c, null_c, mean_c, m2_c, m3_c, m4_c, lo_c, hi_c = _ext_chunk(
            values, validity, bit_offset, has_validity, weights, has_weights, higher,
            start, stop, shift
        )
        out[c, 0] = w_c
        out[c, 1] = mean_c
        out[c, 2] = m2_c
        out[c, 3] = m3_c
        out[c, 4] = m4_c
        out[c, 5] = lo_c
        out[c, 6] = hi_c
        nans[c] = nan_c
        nulls[c] = null_c
    wsum = 0.0
    mean = 0.0
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    lo = np.inf
    hi = -np.inf
    for c in range(n_chunks):  # serial, in chunk order: thread-count independent
        if out[c, 0] > 0.0:
            wsum, mean, m2, m3, m4 = pebay_merge(
                wsum, mean, m2, m3, m4, out[c, 0], out[c, 1], out[c, 2], out[c, 3], out[c, 4]
            )
            lo = min(lo, out[c, 5])
            hi = max(hi, out[c, 6])
    if wsum == 0.0:
        lo = np.nan
        hi = np.nan
    return wsum, nans.sum(), nulls.sum(), mean, m2, m3, m4, lo, hi


@njit(cache=True)
def _ext_task_at(t, first_task, task_column, like, addresses, lengths, validity_addresses,
                 bit_offsets, has_validity, weights, has_weights, higher, shifts):
    """The chunk state of (column, chunk) task ``t`` (see :func:`.cpu_moments.task_layout`)."""
    j = task_column[t]
    start = (t - first_task[j]) * CHUNK
    stop = min(start + CHUNK, lengths[j])
    values = array_at(addresses[j], lengths[j], like)
    validity = bitmap_at(validity_addresses[j], bit_offsets[j], lengths[j], has_validity[j],
                         np.empty(0, dtype=np.uint8))
    return _ext_chunk(values, validity, bit_offsets[j], has_validity[j], weights, has_weights,
                      higher, start, stop, shifts[j])


@njit(cache=True)
def _merge_ext_tasks(first_task, out, nans, nulls):
    """Each column's task states merged in chunk order, as :func:`column_moments_ext` merges
    its chunks: the nine result arrays of :func:`columns_moments_ext_at`."""
    k = first_task.shape[0] - 1
    res = np.zeros((7, k))
    nan_count = np.zeros(k, dtype=np.int64)
    null_count = np.zeros(k, dtype=np.int64)
    for j in range(k):
        wsum = 0.0
        mean = 0.0
        m2 = 0.0
        m3 = 0.0
        m4 = 0.0
        lo = np.inf
        hi = -np.inf
        for c in range(first_task[j], first_task[j + 1]):
            nan_count[j] += nans[c]
            null_count[j] += nulls[c]
            if out[c, 0] > 0.0:
                wsum, mean, m2, m3, m4 = pebay_merge(
                    wsum, mean, m2, m3, m4, out[c, 0], out[c, 1], out[c, 2], out[c, 3],
                    out[c, 4]
                )
                lo = min(lo, out[c, 5])
                hi = max(hi, out[c, 6])
        if wsum == 0.0:
            lo = np.nan
            hi = np.nan
        res[0, j], res[1, j], res[2, j], res[3, j] = wsum, mean, m2, m3
        res[4, j], res[5, j], res[6, j] = m4, lo, hi
    return (res[0], nan_count, null_count, res[1], res[2], res[3], res[4], res[5], res[6])


@njit(cache=True, parallel=True)
def columns_moments_ext_at(like, addresses, lengths, validity_addresses, bit_offsets,
                           has_validity, weights, has_weights, higher, shifts):
    """:func:`column_moments_ext` of several same-dtype columns of one batch given by buffer
    address (as :func:`.cpu_moments.columns_moments_at`), in one parallel launch over
    (column, chunk) tasks. ``weights`` float64[n] are the batch's, row i of every column;
    ``shifts`` float64[k] are the columns' shifts (no NaN: the caller finds them). Each
    column gives the same bits as :func:`column_moments_ext` on it.

    Returns the nine results of :func:`column_moments_ext` as arrays of shape (k,).
    """
    first_task, task_column = task_layout(lengths)
    n_tasks = task_column.shape[0]
    out = np.zeros((n_tasks, 7))
    nans = np.zeros(n_tasks, dtype=np.int64)
    nulls = np.zeros(n_tasks, dtype=np.int64)
    for t in prange(n_tasks):
        w_c, nans[t], nulls[t], mean_c, m2_c, m3_c, m4_c, lo_c, hi_c = _ext_task_at(
            t, first_task, task_column, like, addresses, lengths, validity_addresses,
            bit_offsets, has_validity, weights, has_weights, higher, shifts
        )
        out[t, 0], out[t, 1], out[t, 2], out[t, 3] = w_c, mean_c, m2_c, m3_c
        out[t, 4], out[t, 5], out[t, 6] = m4_c, lo_c, hi_c
    return _merge_ext_tasks(first_task, out, nans, nulls)


@njit(cache=True)
def serial_columns_moments_ext_at(like, addresses, lengths, validity_addresses, bit_offsets,
                                  has_validity, weights, has_weights, higher, shifts):
    """:func:`columns_moments_ext_at` in the calling thread (for at most
    :data:`.cpu_moments.SERIAL_MAX_VALUES` values): the same tasks and merge order."""
    first_task, task_column = task_layout(lengths)
    n_tasks = task_column.shape[0]
    out = np.zeros((n_tasks, 7))
    nans = np.zeros(n_tasks, dtype=np.int64)
    nulls = np.zeros(n_tasks, dtype=np.int64)
    for t in range(n_tasks):
        w_c, nans[t], nulls[t], mean_c, m2_c, m3_c, m4_c, lo_c, hi_c = _ext_task_at(
            t, first_task, task_column, like, addresses, lengths, validity_addresses,
            bit_offsets, has_validity, weights, has_weights, higher, shifts
        )
        out[t, 0], out[t, 1], out[t, 2], out[t, 3] = w_c, mean_c, m2_c, m3_c
        out[t, 4], out[t, 5], out[t, 6] = m4_c, lo_c, hi_c
    return _merge_ext_tasks(first_task, out, nans, nulls)


@njit(cache=True)
def grouped_moments(values, validity, bit_offset, has_validity, groups, shifts, weights,
                    has_weights, higher):
    """Per-group moments of one column: a two-pass over the rows with one shift per group.

    Parameters
    ----------
    values, validity, bit_offset, has_validity : the column, as in :func:`column_moments`.
    groups : int64 array, shape (n,), the group of each row, in ``[0, n_groups)``.
    shifts : float64 array, shape (n_groups,), each group's shift; NaN entries are set here, in
        place, to the group's first valid finite value of positive weight (0 if none).
    weights, has_weights, higher : as in :func:`column_moments_ext`.

    Returns
    -------
    (weight_sum, nan_count, null_count, shifted_mean, m2, m3, m4, minimum, maximum)
        arrays of shape (n_groups,), float64 except the int64 nan/null counts.
    """
    n_groups = shifts.shape[0]
    n = values.shape[0]
    for i in range(n):  # shifts of groups seen for the first time
        g = groups[i]
        if shifts[g] == shifts[g] or _ext_weight(weights, has_weights, i) == 0.0:
            continue
        if has_validity and not bit_is_set(validity, bit_offset + i):
            continue
        x = float(values[i])
        if np.isfinite(x):
            shifts[g] = x
    for g in range(n_groups):
        if shifts[g] != shifts[g]:
            shifts[g] = 0.0
    wsum = np.zeros(n_groups)
    mean = np.zeros(n_groups)
    nan_count = np.zeros(n_groups, dtype=np.int64)
    null_count = np.zeros(n_groups, dtype=np.int64)
    lo = np.full(n_groups, np.inf)
    hi = np.full(n_groups, -np.inf)
    for i in range(n):
        w = _ext_weight(weights, has_weights, i)
        if w == 0.0:
            continue
        g = groups[i]
        if has_validity and not bit_is_set(validity, bit_offset + i):
            null_count[g] += 1
            continue
        x = float(values[i])
        if x != x:
            nan_count[g] += 1
            continue
        wsum[g] += w
        mean[g] += w * (x - shifts[g])
        lo[g] = min(lo[g], x)
        hi[g] = max(hi[g], x)
    for g in range(n_groups):
        if wsum[g] > 0.0:
            mean[g] /= wsum[g]
        else:
            lo[g] = np.nan
            hi[g] = np.nan
    m2 = np.zeros(n_groups)
    m3 = np.zeros(n_groups)
    m4 = np.zeros(n_groups)
    for i in range(n):
        w = _ext_weight(weights, has_weights, i)
        if w == 0.0 or (has_validity and not bit_is_set(validity, bit_offset + i)):
            continue
        x = float(values[i])
        if x != x:
            continue
        g = groups[i]
        d = (x - shifts[g]) - mean[g]
        d2 = d * d
        m2[g] += w * d2
        if higher:
            m3[g] += w * d2 * d
            m4[g] += w * d2 * d2
    return wsum, nan_count, null_count, mean, m2, m3, m4, lo, hi

