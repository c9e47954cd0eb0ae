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


# --------------------------------------------------------------------------- extensions
# Higher moments (M3, M4), frequency weights and grouped (per-key) moments (issue 8). A state
# here is ``(weight_sum, shifted_mean, m2, m3, m4)``: ``weight_sum`` is the count (the sum of
# the frequency weights, float64), ``m_k`` the weighted sum of the k-th powers of deviations
# from the mean. Deviations do not depend on the shift, so m2..m4 are shift-invariant; only
# the mean has to be re-expressed when states with different shifts merge.


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
        if has_validity and not _bit_is_set(validity, bit_offset + i):
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
        if w == 0.0 or (has_validity and not _bit_is_set(validity, bit_offset + i)):
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
        if has_validity and not _bit_is_set(validity, bit_offset + i):
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
        if has_validity and not _bit_is_set(validity, bit_offset + i):
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
        if w == 0.0 or (has_validity and not _bit_is_set(validity, bit_offset + i)):
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


# --------------------------------------------------------------------------- batched normalization
# Several columns of one dtype in one call: one parallel launch per record batch instead of one
# per column, and none at all for small batches (a launch costs more than the work there).


@njit(cache=True)
def _map_span(values, center, scale, out, start, stop, inverse):
    """``out[i] = (x - center) / scale`` (or ``x * scale + center`` if ``inverse``) on a span."""
    if inverse:
        for i in range(start, stop):
            out[i] = float(values[i]) * scale + center
    else:
        for i in range(start, stop):
            out[i] = (float(values[i]) - center) / scale


@njit(cache=True, parallel=True)
def _map_columns_parallel(columns, centers, scales, outs, inverse, first_chunk):
    for item in prange(first_chunk[-1]):
        j = np.searchsorted(first_chunk, item, side="right") - 1
        start = (item - first_chunk[j]) * CHUNK
        stop = min(start + CHUNK, columns[j].shape[0])
        _map_span(columns[j], centers[j], scales[j], outs[j], start, stop, inverse)


@njit(cache=True)
def _map_columns(columns, centers, scales, outs, inverse):
    k = len(columns)
    first_chunk = np.zeros(k + 1, dtype=np.int64)
    total = 0
    for j in range(k):
        n = columns[j].shape[0]
        total += n
        first_chunk[j + 1] = first_chunk[j] + (n + CHUNK - 1) // CHUNK
    if total <= CHUNK:
        for j in range(k):
            _map_span(columns[j], centers[j], scales[j], outs[j], 0, columns[j].shape[0], inverse)
    else:
        _map_columns_parallel(columns, centers, scales, outs, inverse, first_chunk)


@njit(cache=True)
def denormalize_columns(columns, centers, scales, outs):
    """:func:`denormalize_column` over several columns: ``outs[j] = columns[j] * scales[j] +
    centers[j]``.

    ``columns``/``outs`` are numba typed Lists of 1-D arrays (one input dtype, one output
    dtype; lengths may differ, ``outs[j]`` as long as ``columns[j]``); ``centers``/``scales``
    float64[k]. Computed in float64 and rounded once; no parallel launch for small inputs.
    """
    _map_columns(columns, centers, scales, outs, True)
