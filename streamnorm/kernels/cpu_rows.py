"""Numba CPU kernels per row: moments and normalization across the columns of each row.

A row is either a vector (a row of a row-major matrix, a FixedSizeList's values) or the
values of several same-dtype columns at one index; columns are given by address (see
:mod:`streamnorm.kernels.memory`). Each row is independent and its columns are added in
order, so results do not depend on the thread count. Plain loops, float64 accumulation,
NaN and nulls skipped (docs/design.md §4).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .cpu_moments import BLOCK_MATH, valid_bit
from .memory import array_at, bitmap_at


@njit(cache=True, inline="always")
def _segment(like, addresses, n_rows, k, start, stop):
    """Rows ``start:stop`` of column ``k`` (``n_rows`` values of ``like``'s dtype at
    ``addresses[k]``)."""
    return array_at(addresses[k], n_rows, like)[start:stop]


@njit(cache=True, inline="always")
def _bitmap(validity_addresses, bit_offsets, has_validity, n_rows, k, empty):
    """Column ``k``'s validity bitmap (``empty`` when it has none)."""
    return bitmap_at(validity_addresses[k], bit_offsets[k], n_rows, has_validity[k], empty)


# --------------------------------------------------------------------------- per-row moments


#: Rows per parallel block for per-row kernels: a block of rows across all columns should
#: stay in L2 between the two passes.
ROW_BLOCK = 256


@njit(cache=True, fastmath=BLOCK_MATH)
def _row_moments(row, validity, first_bit, has_validity):
    """Two-pass (count, mean, m2) of one row vector, nulls and NaN skipped (branch-free)."""
    c = 0
    total = 0.0
    for j in range(row.shape[0]):
        x = float(row[j])
        ok = x == x
        if has_validity:
            ok = ok and valid_bit(validity, first_bit + j) != 0
        c += 1 if ok else 0
        total += x if ok else 0.0
    if c == 0:
        return 0, np.nan, np.nan
    mu = total / c
    q = 0.0
    for j in range(row.shape[0]):
        x = float(row[j])
        ok = x == x
        if has_validity:
            ok = ok and valid_bit(validity, first_bit + j) != 0
        d = (x - mu) if ok else 0.0
        q += d * d
    return c, mu, q


@njit(cache=True, parallel=True)
def row_moments_matrix(values, validity, bit_offset, has_validity):
    """Per-row moments of a row-major (n_rows, width) matrix (a FixedSizeList's values).

    ``validity`` describes the flattened values (bit ``bit_offset + r*width + j``). Nulls and
    NaN are skipped. Returns ``(count int64[n], mean float64[n], m2 float64[n])``; rows with
    no valid value get count 0 and mean/m2 NaN. Each row is independent, so the result does
    not depend on the thread count.
    """
    n_rows, width = values.shape
    count = np.zeros(n_rows, dtype=np.int64)
    mean = np.empty(n_rows)
    m2 = np.empty(n_rows)
    n_blocks = (n_rows + ROW_BLOCK - 1) // ROW_BLOCK
    for b in prange(n_blocks):
        for r in range(b * ROW_BLOCK, min((b + 1) * ROW_BLOCK, n_rows)):
            c, mu, q = _row_moments(values[r], validity, bit_offset + r * width, has_validity)
            count[r] = c
            mean[r] = mu
            m2[r] = q
    return count, mean, m2


@njit(cache=True, fastmath=BLOCK_MATH)
def _accumulate_rows(col, validity, first_bit, has_validity, count, total):
    """count[i] += valid; total[i] += x  for one column segment (NaN and nulls skipped)."""
    for i in range(col.shape[0]):
        x = float(col[i])
        ok = x == x
        if has_validity:
            ok = ok and valid_bit(validity, first_bit + i) != 0
        count[i] += 1 if ok else 0
        total[i] += x if ok else 0.0


@njit(cache=True, fastmath=BLOCK_MATH)
def _accumulate_row_m2(col, validity, first_bit, has_validity, mean, m2):
    for i in range(col.shape[0]):
        x = float(col[i])
        ok = x == x
        if has_validity:
            ok = ok and valid_bit(validity, first_bit + i) != 0
        d = (x - mean[i]) if ok else 0.0
        m2[i] += d * d


@njit(cache=True, parallel=True)
def row_moments_columns_at(like, addresses, n_rows, validity_addresses, bit_offsets,
                           has_validity):
    """Per-row moments across same-dtype columns of ``n_rows`` values, given by address.

    ``like``: any array of the values dtype (only its type is used); ``addresses`` int64[k]:
    each column's first value; ``validity_addresses``/``bit_offsets`` int64[k] and
    ``has_validity`` bool[k] describe column k's Arrow validity bitmap (read only where
    ``has_validity``). The caller keeps the memory alive. Two-pass per block of
    ``ROW_BLOCK`` rows, column by column, so each column is read contiguously. Returns
    ``(count, mean, m2)`` as :func:`row_moments_matrix` (mean/m2 NaN where count is 0).
    Row blocks are independent and columns are added in order, so the result does not
    depend on the thread count.
    """
    n_cols = addresses.shape[0]
    empty = np.empty(0, dtype=np.uint8)
    count = np.zeros(n_rows, dtype=np.int64)
    mean = np.zeros(n_rows)
    m2 = np.zeros(n_rows)
    n_blocks = (n_rows + ROW_BLOCK - 1) // ROW_BLOCK
    for b in prange(n_blocks):
        start = b * ROW_BLOCK
        stop = min(start + ROW_BLOCK, n_rows)
        count_b = count[start:stop]
        mean_b = mean[start:stop]
        m2_b = m2[start:stop]
        for k in range(n_cols):
            seg = _segment(like, addresses, n_rows, k, start, stop)
            bits = _bitmap(validity_addresses, bit_offsets, has_validity, n_rows, k, empty)
            _accumulate_rows(seg, bits, bit_offsets[k] + start, has_validity[k], count_b, mean_b)
        for i in range(stop - start):
            mean_b[i] = mean_b[i] / count_b[i] if count_b[i] > 0 else np.nan
        for k in range(n_cols):
            seg = _segment(like, addresses, n_rows, k, start, stop)
            bits = _bitmap(validity_addresses, bit_offsets, has_validity, n_rows, k, empty)
            _accumulate_row_m2(seg, bits, bit_offsets[k] + start, has_validity[k], mean_b, m2_b)
        for i in range(stop - start):
            if count_b[i] == 0:
                m2_b[i] = np.nan
    return count, mean, m2


@njit(cache=True)
def _normalize_row(row, center, scale, out):
    for j in range(row.shape[0]):
        out[j] = (float(row[j]) - center) / scale


@njit(cache=True, parallel=True)
def normalize_rows_matrix(values, center, scale, out):
    """Row-wise ``out[r, j] = (values[r, j] - center[r]) / scale[r]`` for an (n, width) matrix."""
    n_rows = values.shape[0]
    n_blocks = (n_rows + ROW_BLOCK - 1) // ROW_BLOCK
    for b in prange(n_blocks):
        for r in range(b * ROW_BLOCK, min((b + 1) * ROW_BLOCK, n_rows)):
            _normalize_row(values[r], center[r], scale[r], out[r])


@njit(cache=True)
def _normalize_rows_segment(col, center, scale, out):
    for i in range(col.shape[0]):
        out[i] = (float(col[i]) - center[i]) / scale[i]


@njit(cache=True, parallel=True)
def normalize_rows_columns_at(like, addresses, center, scale, out_like, out_addresses):
    """Row-wise ``out_k[r] = (column_k[r] - center[r]) / scale[r]`` across same-dtype columns
    of ``len(center)`` values given by address (``like``/``addresses`` as in
    :func:`row_moments_columns_at`), into outputs of ``out_like``'s dtype at
    ``out_addresses`` int64[k]."""
    n_cols = addresses.shape[0]
    n_rows = center.shape[0]
    n_blocks = (n_rows + ROW_BLOCK - 1) // ROW_BLOCK
    for b in prange(n_blocks):
        start = b * ROW_BLOCK
        stop = min(start + ROW_BLOCK, n_rows)
        center_b = center[start:stop]
        scale_b = scale[start:stop]
        for k in range(n_cols):
            seg = _segment(like, addresses, n_rows, k, start, stop)
            _normalize_rows_segment(seg, center_b, scale_b,
                                    _segment(out_like, out_addresses, n_rows, k, start, stop))


#: Bytes of a row tile of :func:`layer_norm_columns_at` (every column, some rows): it stays in
#: L2 for the second and third pass. Rows are independent, so the tile size never changes a result.
LAYER_TILE_BYTES = 1 << 19


@njit(cache=True, fastmath=BLOCK_MATH)
def _accumulate_rows_dense(col, total):
    """total[i] += x  for one column segment without nulls (NaN checked afterwards)."""
    for i in range(col.shape[0]):
        total[i] += float(col[i])


@njit(cache=True)
def _tile_center_scale(count, mean, m2, rms, eps, ddof, center, scale):
    """normalize.mappers.row_center_scale, value for value, on one tile's rows."""
    for i in range(count.shape[0]):
        if count[i] == 0:
            m2[i] = np.nan
        if rms:
            center[i] = 0.0 if count[i] > 0 else np.nan
            mean_square = m2[i] / count[i] if count[i] > 0 else np.nan  # numba: no NaN for x/0
            scale[i] = np.sqrt(mean_square + mean[i] * mean[i] + eps)
        else:
            denominator = float(count[i] - ddof)
            var = m2[i] / denominator if denominator > 0 else np.nan
            center[i] = mean[i]
            scale[i] = np.sqrt(var + eps)
        if scale[i] == 0.0:
            scale[i] = 1.0


@njit(cache=True)
def _layer_tile(like, addresses, validity_addresses, bit_offsets, has_validity, rms, eps, ddof,
                propagate, out, start, stop):
    """:func:`layer_norm_columns_at` on rows ``start:stop``: moments, center/scale, output."""
    n = stop - start
    n_cols = addresses.shape[0]
    n_rows = out.shape[1]
    empty = np.empty(0, dtype=np.uint8)
    count = np.zeros(n, dtype=np.int64)
    mean = np.zeros(n)
    dense = True
    for k in range(n_cols):
        dense = dense and not has_validity[k]
    if dense:
        # No nulls: a plain sum; a finite sum proves the row holds no NaN (or inf), and then
        # it is exactly the sum the checked helper gives (every value taking part).
        for k in range(n_cols):
            _accumulate_rows_dense(_segment(like, addresses, n_rows, k, start, stop), mean)
        for i in range(n):
            if not np.isfinite(mean[i]):
                dense = False
                break
        if dense:
            count[:] = n_cols
        else:
            mean[:] = 0.0
    if not dense:  # the same helpers, in the same order, as row_moments_columns_at
        for k in range(n_cols):
            seg = _segment(like, addresses, n_rows, k, start, stop)
            bits = _bitmap(validity_addresses, bit_offsets, has_validity, n_rows, k, empty)
            _accumulate_rows(seg, bits, bit_offsets[k] + start, has_validity[k], count, mean)
    for i in range(n):
        mean[i] = mean[i] / count[i] if count[i] > 0 else np.nan
    m2 = np.zeros(n)
    for k in range(n_cols):
        seg = _segment(like, addresses, n_rows, k, start, stop)
        bits = _bitmap(validity_addresses, bit_offsets, has_validity, n_rows, k, empty)
        _accumulate_row_m2(seg, bits, bit_offsets[k] + start, has_validity[k] and not dense,
                           mean, m2)
    center = np.empty(n)
    scale = np.empty(n)
    _tile_center_scale(count, mean, m2, rms, eps, ddof, center, scale)
    if propagate and not dense:
        for k in range(n_cols):
            col = _segment(like, addresses, n_rows, k, start, stop)
            bits = _bitmap(validity_addresses, bit_offsets, has_validity, n_rows, k, empty)
            for i in range(n):
                x = float(col[i])
                if x != x and (not has_validity[k]
                               or valid_bit(bits, bit_offsets[k] + start + i) != 0):
                    center[i] = np.nan
    if out.itemsize == 4:
        # float32 output: multiply by the float64 reciprocal (a division costs as much as the
        # rest of the kernel). The float64 product is within 2^-52 (relative) of the quotient,
        # so the float32 result is the correctly rounded quotient except when the quotient
        # lies that close to a float32 rounding boundary (odds ~2^-28 per value; then 1 ulp).
        for i in range(n):
            scale[i] = 1.0 / scale[i]
        for k in range(n_cols):
            seg = _segment(like, addresses, n_rows, k, start, stop)
            _scale_rows_segment(seg, center, scale, out[k, start:stop])
    else:
        for k in range(n_cols):
            seg = _segment(like, addresses, n_rows, k, start, stop)
            _normalize_rows_segment(seg, center, scale, out[k, start:stop])


@njit(cache=True)
def _scale_rows_segment(col, center, inverse_scale, out):
    for i in range(col.shape[0]):
        out[i] = (float(col[i]) - center[i]) * inverse_scale[i]


@njit(cache=True, parallel=True)
def layer_norm_columns_at(like, addresses, validity_addresses, bit_offsets, has_validity, rms,
                          eps, ddof, propagate, out):
    """Per-row LayerNorm / RMSNorm across same-dtype columns, fused: one read from memory.

    Parameters
    ----------
    like, addresses, validity_addresses, bit_offsets, has_validity : as in
        :func:`row_moments_columns_at` (equal-length columns of one dtype, ``out.shape[1]``
        values each, and their validity bitmaps).
    rms : bool; False: ``(x - mean_r) / sqrt(m2_r / (count_r - ddof) + eps)``, True:
        ``x / sqrt(m2_r / count_r + mean_r**2 + eps)``. A zero scale becomes 1; a row with no
        valid value (or, layer, ``count_r <= ddof``) gives NaN.
    eps : float64; ddof : int (layer only).
    propagate : bool; True: a row holding a (valid) NaN gives NaN everywhere.
    out : float32 or float64 array, shape (n_columns, n_rows), C order; ``out[k]`` receives
        column k normalized (null slots computed too; the caller masks them). One 2-D
        allocation rather than one per column: large enough for transparent huge pages, it
        costs a fraction of the page faults of many separate arrays.

    Each tile of rows (:data:`LAYER_TILE_BYTES` of input) gets its moments (the arithmetic
    of :func:`row_moments_columns_at`, NaN and nulls skipped) and is normalized while still in
    cache. The moments, centers and scales equal those of ``row_moments_columns_at`` bit for bit;
    float64 output equals :func:`normalize_rows_columns_at`'s bit for bit, float32 output is
    computed with the reciprocal of the scale (see :func:`_layer_tile`). Rows are
    independent: the result does not depend on the thread count.
    """
    n_cols = addresses.shape[0]
    n_rows = out.shape[1]
    if n_cols == 0 or n_rows == 0:
        return
    row_bytes = n_cols * like.itemsize
    tile = min(1024, max(64, LAYER_TILE_BYTES // row_bytes // 64 * 64))
    n_tiles = (n_rows + tile - 1) // tile
    for t in prange(n_tiles):
        start = t * tile
        _layer_tile(like, addresses, validity_addresses, bit_offsets, has_validity, rms, eps,
                    ddof, propagate, out, start, min(start + tile, n_rows))

