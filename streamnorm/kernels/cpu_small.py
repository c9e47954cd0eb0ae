"""Numba CPU kernels for small batches: a record batch's columns located, their moments taken
serially and merged into the state arrays in place, in one or two calls (issue 14).

For a 1-row batch the work itself takes nanoseconds; what costs is the calls around it (a
numpy temporary per term of the merge, one call per step). These kernels do the steps of
:func:`streamnorm.state.ingest.add_batch` in compiled code:

* :func:`update_at`: locate, serial moments (:func:`.cpu_moments.serial_columns_moments_at`)
  and merge, one call for the plain statistics;
* :func:`ext_moments_at` then :func:`merge_into`: the weighted and ``moments=4`` statistics
  (:func:`.cpu_ext.serial_columns_moments_ext_at`), the batch's weights read by address.

The merge, :func:`merge_into`, repeats :func:`streamnorm.state.merge.merge_moment_arrays`
operation for operation (same formulas, same order, no fused multiply-add), so it gives the
same bits. It only takes the common case: an entry whose state has a scale exponent, whose
partial result is not finite or whose merged mean or m2 is not finite is left untouched and
reported, for the general merge (which is elementwise, so merging those entries alone gives
the same bits as merging all). ``d_n**3`` of the four-moment merge is the one term taken
outside: numpy may compute a power differently from libm (SIMD builds), so the caller passes
``cube = d_n ** 3`` computed by numpy from :func:`ext_moments_at`'s ``d_n``, as the general
merge does.

Status codes per column: :data:`MERGED`, :data:`GENERAL` (left for the general merge),
:data:`CAREFUL` (partial result not finite: left for the careful path).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .cpu_ext import serial_columns_moments_ext_at
from .cpu_moments import serial_columns_moments_at
from .memory import array_at, locate_children

#: Status of a column after a small-batch call: merged in place.
MERGED = 0
#: Not merged: the state has a scale exponent, or the merged mean or m2 is not finite.
GENERAL = 1
#: Not merged: the batch's partial result is not finite (±inf or overflow).
CAREFUL = 2


@njit(cache=True, inline="always")
def _is_finite(x):
    return np.isfinite(x)


@njit(cache=True)
def finite_status(count, mean, m2, lo, hi):
    """:data:`CAREFUL` where a partial result cannot merge as it is (non-empty and a field
    not finite), else :data:`MERGED` (``finite_results`` of the ingest layer)."""
    k = count.shape[0]
    status = np.zeros(k, dtype=np.int8)
    for i in range(k):
        ok = (_is_finite(mean[i]) and _is_finite(m2[i]) and _is_finite(lo[i])
              and _is_finite(hi[i]))
        if not ok and count[i] != 0:
            status[i] = CAREFUL
    return status


@njit(cache=True)
def merge_into(count, shift, mean, m2, m3, m4, lo, hi, scale_exp, positions, p_count, p_shift,
               p_mean, p_m2, p_m3, p_m4, p_lo, p_hi, cube, higher, status):
    """Merge partial states (``p_*``, shape (k,)) into the state entries ``positions`` in
    place, where ``status`` is :data:`MERGED`; sets :data:`GENERAL` where the general merge
    must do it (nothing of that entry written).

    The state arrays are a :class:`streamnorm.state.merge.Moments`' (``m3``/``m4``/``p_m3``/
    ``p_m4``/``cube`` read only when ``higher``); ``cube`` is numpy's ``d_n ** 3`` per entry.
    """
    for i in range(positions.shape[0]):
        if status[i] != MERGED:
            continue
        j = positions[i]
        if scale_exp[j] != 0:
            status[i] = GENERAL
            continue
        n_a, k_a, mean_a, m2_a = count[j], shift[j], mean[j], m2[j]
        n_b, k_b, mean_b, m2_b = p_count[i], p_shift[i], p_mean[i], p_m2[i]
        m3_a = m4_a = m3_b = m4_b = 0.0
        if higher:
            m3_a, m4_a, m3_b, m4_b = m3[j], m4[j], p_m3[i], p_m4[i]
        na, nb = float(n_a), float(n_b)
        if nb == 0.0:  # an empty side leaves the other as it is
            k, mu, s2, s3, s4 = k_a, mean_a, m2_a, m3_a, m4_a
        elif na == 0.0:
            k, mu, s2, s3, s4 = k_b, mean_b, m2_b, m3_b, m4_b
        else:
            k = k_a
            mb = mean_b + (k_b - k_a)
            n = na + nb
            delta = mb - mean_a
            mu = mean_a + delta * (nb / n)
            s2 = m2_a + (m2_b + delta * delta * (na * nb / n))
            s3 = s4 = 0.0
            if higher:
                d_n = delta / n
                ab = na * nb
                s3 = (m3_a + m3_b + delta * d_n * d_n * ab * (na - nb)
                      + 3.0 * d_n * (na * m2_b - nb * m2_a))
                s4 = (m4_a + m4_b + delta * cube[i] * ab * (na * na - ab + nb * nb)
                      + 6.0 * d_n * d_n * (na * na * m2_b + nb * nb * m2_a)
                      + 4.0 * d_n * (na * m3_b - nb * m3_a))
            if not (_is_finite(mb) and _is_finite(mean_a)):
                mu = mean_a + mb
                s2 = s3 = s4 = np.nan
        if not (_is_finite(mu) and _is_finite(s2)):
            status[i] = GENERAL
            continue
        count[j] = n_a + n_b
        shift[j], mean[j], m2[j] = k, mu, s2
        if higher:
            m3[j], m4[j] = s3, s4
        # np.fmin / np.fmax: a NaN side gives the other
        if not np.isnan(p_lo[i]) and (np.isnan(lo[j]) or p_lo[i] < lo[j]):
            lo[j] = p_lo[i]
        if not np.isnan(p_hi[i]) and (np.isnan(hi[j]) or p_hi[i] > hi[j]):
            hi[j] = p_hi[i]
    return status


@njit(cache=True)
def update_at(struct, children, positions, like, null_count, nan_count, count, shift, mean, m2,
              lo, hi, scale_exp, status, partial):
    """Plain statistics of a small batch, merged into the state in place: the columns
    ``children`` (int64[k], child indexes) of the exported record batch at ``struct`` (see
    :func:`.memory.locate_children`), all of ``like``'s dtype, into entries ``positions``.

    Returns -1 when a buffer cannot be read by address (nothing done: use the general path),
    else the number of columns left unmerged. ``status`` (int8[k]) receives each column's
    status and ``partial`` (float64[6, k]) the batch's partial results (count, shift,
    shifted_mean, m2, min, max) for the columns the general merge or the careful path must
    take: both are scratch arrays the caller allocates once. Null and NaN counts are taken
    for every column.
    """
    addresses, lengths, validity_addresses, bit_offsets, has_validity, usable = (
        locate_children(struct, children, like.itemsize))
    if not usable:
        return -1
    result = serial_columns_moments_at(like, addresses, lengths, validity_addresses,
                                       bit_offsets, has_validity, shift[positions])
    return merge_batch(result, lengths, positions, null_count, nan_count, count, shift, mean,
                       m2, lo, hi, scale_exp, status, partial)


@njit(cache=True)
def merge_batch(result, lengths, positions, null_count, nan_count, count, shift, mean, m2, lo,
                hi, scale_exp, status, partial):
    """The merge step of :func:`update_at` (and of
    :func:`.cpu_update.parallel_update_at`): ``result``, the seven arrays of
    :func:`.cpu_moments.columns_moments_at` for columns of ``lengths`` values, into the
    state entries ``positions`` in place; ``status``/``partial`` and the return value as
    :func:`update_at`'s."""
    p_count, p_nan, p_mean, p_m2, p_lo, p_hi, p_shift = result
    for i in range(positions.shape[0]):
        null_count[positions[i]] += lengths[i] - p_count[i] - p_nan[i]
        nan_count[positions[i]] += p_nan[i]
    status[:] = finite_status(p_count, p_mean, p_m2, p_lo, p_hi)
    nothing = np.zeros(0)
    merge_into(count, shift, mean, m2, nothing, nothing, lo, hi, scale_exp, positions, p_count,
               p_shift, p_mean, p_m2, nothing, nothing, p_lo, p_hi, nothing, False, status)
    left = 0
    for i in range(positions.shape[0]):
        if status[i] != MERGED:
            left += 1
            partial[0, i], partial[1, i], partial[2, i] = p_count[i], p_shift[i], p_mean[i]
            partial[3, i], partial[4, i], partial[5, i] = p_m2[i], p_lo[i], p_hi[i]
    return left


@njit(cache=True)
def ext_moments_at(struct, children, like, weights_child, higher, count, shift, mean,
                   positions, partial, d_n):
    """Weighted and/or higher moments of a small batch's columns (located as by
    :func:`update_at`) with the state's shifts (all finite), and ``d_n``; nothing written to
    the state (see :func:`merge_ext_into`).

    ``weights_child`` is the child index of a float64 weights column (-1: unweighted); its
    values must have no nulls and be finite and >= 0. Returns False when a buffer cannot be
    read by address or a weight is not as required (use the general path, which reports bad
    weights). Else ``partial`` (float64[9, k], scratch) receives the nine results of
    :func:`.cpu_ext.columns_moments_ext_at` per column and ``d_n`` (float64[k]) the merge's
    ``delta / n`` against the state entries ``positions`` (count, shift, mean).
    """
    located = locate_children(struct, children, like.itemsize)
    addresses, lengths, validity_addresses, bit_offsets, has_validity, usable = located
    weights = np.zeros(0)
    has_weights = weights_child >= 0
    if usable and has_weights:
        w_at = locate_children(struct, np.full(1, weights_child, dtype=np.int64), 8)
        usable = w_at[5] and not w_at[4][0]
        if usable:
            weights = array_at(w_at[0][0], w_at[1][0], weights)
            for r in range(weights.shape[0]):
                if not (np.isfinite(weights[r]) and weights[r] >= 0.0):
                    usable = False
                    break
    if not usable:
        return False
    shifts = shift[positions]
    result = serial_columns_moments_ext_at(like, addresses, lengths, validity_addresses,
                                           bit_offsets, has_validity, weights, has_weights,
                                           higher, shifts)
    wsum, nan_c, null_c, p_mean, p_m2, p_m3, p_m4, p_lo, p_hi = result
    for i in range(children.shape[0]):
        partial[0, i], partial[1, i], partial[2, i] = wsum[i], nan_c[i], null_c[i]
        partial[3, i], partial[4, i], partial[5, i] = p_mean[i], p_m2[i], p_m3[i]
        partial[6, i], partial[7, i], partial[8, i] = p_m4[i], p_lo[i], p_hi[i]
        j = positions[i]
        delta = (p_mean[i] + (shifts[i] - shift[j])) - mean[j]
        d_n[i] = delta / (float(count[j]) + wsum[i])
    return True


@njit(cache=True)
def merge_ext_into(null_count, nan_count, count, shift, mean, m2, m3, m4, lo, hi, scale_exp,
                   positions, partial, cube, higher, status):
    """Merge :func:`ext_moments_at`'s ``partial`` into the state entries ``positions``: null
    and NaN counts for every column, then :func:`merge_into` where the partial result is
    finite (``cube``: numpy's ``d_n ** 3``, read when ``higher``). ``status`` (int8[k],
    scratch) receives each column's status; returns the number of columns left."""
    k = positions.shape[0]
    for i in range(k):
        null_count[positions[i]] += np.int64(partial[2, i])
        nan_count[positions[i]] += np.int64(partial[1, i])
    wsum, p_mean, p_m2, p_m3, p_m4, p_lo, p_hi = (partial[0], partial[3], partial[4],
                                                  partial[5], partial[6], partial[7],
                                                  partial[8])
    status[:] = finite_status(wsum, p_mean, p_m2, p_lo, p_hi)
    merge_into(count, shift, mean, m2, m3, m4, lo, hi, scale_exp, positions, wsum,
               shift[positions], p_mean, p_m2, p_m3, p_m4, p_lo, p_hi, cube, higher, status)
    left = 0
    for i in range(k):
        if status[i] != MERGED:
            left += 1
    return left
