"""Numba CPU kernels: plain loops over numpy arrays and Arrow validity bitmaps.

No Arrow objects and no classes here (DESIGN §2). Every kernel accumulates in float64
whatever the input dtype. Validity is passed as Arrow's packed bitmap (LSB first) plus the
bit offset of the first value, so null bitmaps are read in place and never unpacked into a
filled copy of the column.

Per-feature moments (DESIGN §4): each value is shifted by ``shift`` (the column's first
finite value), then processed in blocks of ``BLOCK`` values with a two-pass (block mean, then
sum of squared deviations). Blocks merge into fixed chunks of ``CHUNK`` values with Chan's
formula; chunks are processed in parallel with ``prange`` and merged serially in chunk order,
so the result does not depend on the number of threads.

A moment state in these kernels is the tuple ``(count, shifted_mean, m2, minimum, maximum)``
with ``count`` a float64 (Chan's formula needs it as a float anyway).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: Values per two-pass block: small enough to stay in L1 between the two passes.
BLOCK = 2048
#: Values per parallel chunk: a fixed size, so results do not depend on the thread count.
CHUNK = 16 * BLOCK

# Only the flags that reorder a block-local sum (no compensation lives there) are allowed:
# never nnan/ninf, which would break NaN and inf handling (DESIGN §4).
_BLOCK_MATH = {"reassoc", "contract"}


@njit(cache=True, inline="always")
def _bit_is_set(bitmap, bit_index):
    """Whether bit ``bit_index`` of an Arrow LSB-first packed bitmap is set."""
    return (bitmap[bit_index >> 3] >> (bit_index & 7)) & 1


@njit(cache=True, inline="always")
def chan_merge(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Chan et al. pairwise merge of two (count, mean, m2) states with the same shift."""
    if n_b == 0.0:
        return n_a, mean_a, m2_a
    if n_a == 0.0:
        return n_b, mean_b, m2_b
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta * delta * (n_a * n_b / n)
    return n, mean, m2


@njit(cache=True, fastmath=_BLOCK_MATH)
def _dense_block_sum(values, start, stop, shift):
    total = 0.0
    for i in range(start, stop):
        total += float(values[i]) - shift
    return total


@njit(cache=True, fastmath=_BLOCK_MATH)
def _dense_block_m2(values, start, stop, shift, block_mean):
    m2 = 0.0
    for i in range(start, stop):
        d = (float(values[i]) - shift) - block_mean
        m2 += d * d
    return m2


@njit(cache=True)
def _dense_block_min_max(values, start, stop):
    lo = np.inf
    hi = -np.inf
    for i in range(start, stop):
        x = float(values[i])
        if x < lo:
            lo = x
        if x > hi:
            hi = x
    return lo, hi


@njit(cache=True)
def _checked_block(values, validity, bit_offset, has_validity, start, stop, shift):
    """Block moments skipping nulls and NaN: (count, nan_count, mean, m2, min, max)."""
    count = 0
    nan_count = 0
    total = 0.0
    lo = np.inf
    hi = -np.inf
    for i in range(start, stop):
        if has_validity and not _bit_is_set(validity, bit_offset + i):
            continue
        x = float(values[i])
        if x != x:
            nan_count += 1
            continue
        count += 1
        total += x - shift
        if x < lo:
            lo = x
        if x > hi:
            hi = x
    if count == 0:
        return 0, nan_count, 0.0, 0.0, np.nan, np.nan
    block_mean = total / count
    m2 = 0.0
    for i in range(start, stop):
        if has_validity and not _bit_is_set(validity, bit_offset + i):
            continue
        x = float(values[i])
        if x != x:
            continue
        d = (x - shift) - block_mean
        m2 += d * d
    return count, nan_count, block_mean, m2, lo, hi


@njit(cache=True)
def _block_moments(values, validity, bit_offset, has_validity, start, stop, shift):
    """Moments of ``values[start:stop]``: (count, nan_count, shifted mean, m2, min, max)."""
    if not has_validity:
        # Fast path: a vectorised sum tells whether the block holds any NaN or inf;
        # only then do we pay for the per-value checks.
        total = _dense_block_sum(values, start, stop, shift)
        if np.isfinite(total):
            n = stop - start
            block_mean = total / n
            m2 = _dense_block_m2(values, start, stop, shift, block_mean)
            lo, hi = _dense_block_min_max(values, start, stop)
            return n, 0, block_mean, m2, lo, hi
    return _checked_block(values, validity, bit_offset, has_validity, start, stop, shift)


@njit(cache=True)
def _chunk_moments(values, validity, bit_offset, has_validity, start, stop, shift):
    count = 0.0
    mean = 0.0
    m2 = 0.0
    nan_count = 0
    lo = np.inf
    hi = -np.inf
    for block_start in range(start, stop, BLOCK):
        block_stop = min(block_start + BLOCK, stop)
        n_b, nan_b, mean_b, m2_b, lo_b, hi_b = _block_moments(
            values, validity, bit_offset, has_validity, block_start, block_stop, shift
        )
        nan_count += nan_b
        if n_b > 0:
            count, mean, m2 = chan_merge(count, mean, m2, float(n_b), mean_b, m2_b)
            lo = min(lo, lo_b)
            hi = max(hi, hi_b)
    return count, nan_count, mean, m2, lo, hi


@njit(cache=True, parallel=True)
def column_moments(values, validity, bit_offset, has_validity, shift):
    """Moments of one column of any numeric dtype, nulls and NaN skipped.

    Parameters
    ----------
    values : 1-D numpy array, shape (n,), any int/uint/float32/float64 dtype.
    validity : uint8 array, Arrow packed validity bitmap (ignored unless ``has_validity``).
    bit_offset : int, bit index of ``values[0]`` in ``validity``.
    has_validity : bool, whether to honour ``validity``.
    shift : float64, subtracted from every value before accumulation (the column's shift).

    Returns
    -------
    (count, nan_count, shifted_mean, m2, minimum, maximum)
        ``count`` and ``nan_count`` as int64; ``shifted_mean`` is the mean of ``x - shift``;
        ``m2`` the sum of squared deviations from the mean; min/max NaN when count is 0.
    """
    n = values.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    counts = np.zeros(n_chunks)
    nan_counts = np.zeros(n_chunks, dtype=np.int64)
    means = np.zeros(n_chunks)
    m2s = np.zeros(n_chunks)
    los = np.full(n_chunks, np.inf)
    his = np.full(n_chunks, -np.inf)
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        cnt, nan_c, mean_c, m2_c, lo_c, hi_c = _chunk_moments(
            values, validity, bit_offset, has_validity, start, stop, shift
        )
        counts[c] = cnt
        nan_counts[c] = nan_c
        means[c] = mean_c
        m2s[c] = m2_c
        los[c] = lo_c
        his[c] = hi_c
    count = 0.0
    mean = 0.0
    m2 = 0.0
    nan_count = 0
    lo = np.inf
    hi = -np.inf
    for c in range(n_chunks):  # serial, in chunk order: thread-count independent
        nan_count += nan_counts[c]
        if counts[c] > 0:
            count, mean, m2 = chan_merge(count, mean, m2, counts[c], means[c], m2s[c])
            lo = min(lo, los[c])
            hi = max(hi, his[c])
    if count == 0:
        return np.int64(0), nan_count, 0.0, 0.0, np.nan, np.nan
    return np.int64(count), nan_count, mean, m2, lo, hi


@njit(cache=True)
def first_finite(values, validity, bit_offset, has_validity):
    """The first valid, finite value of a column (used as its shift), or NaN if none."""
    for i in range(values.shape[0]):
        if has_validity and not _bit_is_set(validity, bit_offset + i):
            continue
        x = float(values[i])
        if np.isfinite(x):
            return x
    return np.nan


@njit(cache=True)
def merge_states(count_a, shift_a, mean_a, m2_a, count_b, shift_b, mean_b, m2_b):
    """Merge per-column states that may carry different shifts (arrays of equal shape).

    The result keeps side a's shift where a has data, else b's. Returns
    (count, shift, shifted_mean, m2) as new arrays.
    """
    k = count_a.shape[0]
    count = np.empty(k)
    shift = np.empty(k)
    mean = np.empty(k)
    m2 = np.empty(k)
    for j in range(k):
        if count_a[j] == 0:
            count[j] = count_b[j]
            shift[j] = shift_b[j] if count_b[j] > 0 else shift_a[j]
            mean[j] = mean_b[j]
            m2[j] = m2_b[j]
            continue
        shift[j] = shift_a[j]
        # Re-express b's shifted mean in a's shift (DESIGN §4).
        mean_b_in_a = mean_b[j] + (shift_b[j] - shift_a[j]) if count_b[j] > 0 else 0.0
        n, mu, q = chan_merge(count_a[j], mean_a[j], m2_a[j], count_b[j], mean_b_in_a, m2_b[j])
        count[j] = n
        mean[j] = mu
        m2[j] = q
    return count, shift, mean, m2


# --------------------------------------------------------------------------- per-row moments


@njit(cache=True, parallel=True)
def row_moments_matrix(values, validity, bit_offset, has_validity):
    """Per-row moments of a row-major (n_rows, width) matrix (a FixedSizeList's values).

    ``validity`` describes the flattened values (bit ``bit_offset + r*width + j``). Nulls and
    NaN are skipped. Returns ``(count int64[n], mean float64[n], m2 float64[n])``; rows with
    no valid value get count 0 and mean/m2 NaN.
    """
    n_rows, width = values.shape
    count = np.zeros(n_rows, dtype=np.int64)
    mean = np.empty(n_rows)
    m2 = np.empty(n_rows)
    for r in prange(n_rows):
        base = bit_offset + r * width
        c = 0
        total = 0.0
        for j in range(width):
            if has_validity and not _bit_is_set(validity, base + j):
                continue
            x = float(values[r, j])
            if x == x:
                c += 1
                total += x
        if c == 0:
            mean[r] = np.nan
            m2[r] = np.nan
            continue
        mu = total / c
        q = 0.0
        for j in range(width):
            if has_validity and not _bit_is_set(validity, base + j):
                continue
            x = float(values[r, j])
            if x == x:
                d = x - mu
                q += d * d
        count[r] = c
        mean[r] = mu
        m2[r] = q
    return count, mean, m2


#: Rows per parallel block when row moments run across separate column arrays.
ROW_BLOCK = 512


@njit(cache=True, parallel=True)
def row_moments_columns(columns, validities, bit_offsets, has_validity):
    """Per-row moments across a list of same-dtype 1-D column arrays of equal length.

    ``columns`` is a numba typed List of arrays; ``validities[k]``/``bit_offsets[k]``/
    ``has_validity[k]`` describe column k. Two-pass per block of ``ROW_BLOCK`` rows, column by
    column, so each column is read contiguously. Returns ``(count, mean, m2)`` as in
    :func:`row_moments_matrix` (mean/m2 NaN where count is 0).
    """
    n_cols = len(columns)
    n_rows = columns[0].shape[0] if n_cols > 0 else 0
    count = np.zeros(n_rows, dtype=np.int64)
    mean = np.zeros(n_rows)
    m2 = np.zeros(n_rows)
    n_blocks = (n_rows + ROW_BLOCK - 1) // ROW_BLOCK
    for b in prange(n_blocks):
        start = b * ROW_BLOCK
        stop = min(start + ROW_BLOCK, n_rows)
        for k in range(n_cols):
            col = columns[k]
            check = has_validity[k]
            bitmap = validities[k]
            off = bit_offsets[k]
            for r in range(start, stop):
                if check and not _bit_is_set(bitmap, off + r):
                    continue
                x = float(col[r])
                if x == x:
                    count[r] += 1
                    mean[r] += x
        for r in range(start, stop):
            mean[r] = mean[r] / count[r] if count[r] > 0 else np.nan
        for k in range(n_cols):
            col = columns[k]
            check = has_validity[k]
            bitmap = validities[k]
            off = bit_offsets[k]
            for r in range(start, stop):
                if check and not _bit_is_set(bitmap, off + r):
                    continue
                x = float(col[r])
                if x == x:
                    d = x - mean[r]
                    m2[r] += d * d
        for r in range(start, stop):
            if count[r] == 0:
                m2[r] = np.nan
    return count, mean, m2


# --------------------------------------------------------------------------- normalization


@njit(cache=True, parallel=True)
def normalize_column(values, center, scale, out):
    """``out[i] = (values[i] - center) / scale`` in float64, rounded once to out's dtype.

    Null slots are computed too (their values are undefined and masked by the caller).
    """
    n = values.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        for i in range(c * CHUNK, min((c + 1) * CHUNK, n)):
            out[i] = (float(values[i]) - center) / scale


@njit(cache=True, parallel=True)
def normalize_rows_matrix(values, center, scale, out):
    """Row-wise ``out[r, j] = (values[r, j] - center[r]) / scale[r]`` for an (n, width) matrix."""
    n_rows, width = values.shape
    for r in prange(n_rows):
        mu = center[r]
        s = scale[r]
        for j in range(width):
            out[r, j] = (float(values[r, j]) - mu) / s


@njit(cache=True, parallel=True)
def normalize_rows_columns(columns, center, scale, outs):
    """Row-wise normalization across a typed List of same-dtype columns into ``outs``."""
    n_cols = len(columns)
    n_rows = center.shape[0]
    n_blocks = (n_rows + ROW_BLOCK - 1) // ROW_BLOCK
    for b in prange(n_blocks):
        start = b * ROW_BLOCK
        stop = min(start + ROW_BLOCK, n_rows)
        for k in range(n_cols):
            col = columns[k]
            out = outs[k]
            for r in range(start, stop):
                out[r] = (float(col[r]) - center[r]) / scale[r]


@njit(cache=True, parallel=True)
def denormalize_column(values, center, scale, out):
    """``out[i] = values[i] * scale + center`` in float64, rounded once to out's dtype.

    The inverse of :func:`normalize_column` (no fused multiply-add, so results match numpy).
    Null slots are computed too (their values are undefined and masked by the caller).
    """
    n = values.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        for i in range(c * CHUNK, min((c + 1) * CHUNK, n)):
            out[i] = float(values[i]) * scale + center
