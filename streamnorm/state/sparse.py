"""Column statistics of a sparse matrix from its structure, without densifying it.

A compressed-sparse-column matrix stores, per column, some values (``data[indptr[j]:
indptr[j+1]]``); every other row of the column is an implicit zero, and it counts. The state of
a column is therefore the merge of two exact states: the moments of its stored values
(a shifted two-pass, as the kernels do per block: shift by the column's first stored finite
value, mean, then the squared deviations) and the state of ``k`` zeros (count ``k``, mean 0,
m2 0), merged with the one Chan merge of :mod:`~streamnorm.state.merge`. No term of that merge
cancels (``m2 = m2_stored + d²·n_s·k/n``), so a column of mostly zeros is as accurate as its
stored values are.

NaN stored values are skipped and counted (``nan_count``); explicit zeros are values like the
implicit ones. Only numpy: the caller (``StreamScaler``) holds the scipy matrix.
"""

from __future__ import annotations

import numpy as np

from .merge import Moments, merge_moment_arrays


def csc_moments(
    data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_rows: int,
    weights: np.ndarray | None = None,
) -> Moments:
    """The two-moment state (one entry per column) of a CSC matrix with ``n_rows`` rows.

    ``data``/``indices``/``indptr`` are the CSC arrays (no duplicate entries: call
    ``sum_duplicates`` first); ``data`` any float or int dtype, accumulated in float64.
    ``weights`` (float64, shape (n_rows,), finite and >= 0): frequency weights per row; the
    state's counts are then sums of weights (float64) and a zero weight drops the row.

    Returns a :class:`Moments` of shape ``(n_columns,)``: count (values, implicit zeros
    included, NaN excluded), nan_count, shift, shifted_mean, m2, min, max.
    """
    k = len(indptr) - 1
    col = np.repeat(np.arange(k), np.diff(indptr))
    x = np.asarray(data, dtype=np.float64)
    nan = np.isnan(x)
    state = Moments((k,), 2, weighted=weights is not None)
    state.nan_count = np.bincount(col[nan], minlength=k).astype(np.int64)
    state.inf_count = np.bincount(col[np.isinf(x)], minlength=k).astype(np.int64)
    if weights is None:
        w_stored = None
        keep = ~nan
        zeros: np.ndarray = n_rows - np.diff(indptr)  # rows with no stored value
    else:
        w_all = np.asarray(weights, dtype=np.float64)[np.asarray(indices)]
        keep = ~nan & (w_all > 0)
        w_stored = w_all[keep]
        stored_weight = np.bincount(col, weights=w_all, minlength=k)
        zeros = np.maximum(float(np.sum(weights)) - stored_weight, 0.0)
    col, x = col[keep], x[keep]
    count = np.bincount(col, weights=w_stored, minlength=k)
    has = count > 0
    # each column's shift: its first stored finite value (0 for a column of zeros only)
    finite = np.isfinite(x)
    first_cols, first_at = np.unique(col[finite], return_index=True)
    shift = np.zeros(k)
    shift[first_cols] = x[finite][first_at]
    d = x - shift[col]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(has, np.bincount(col, weights=d if w_stored is None else w_stored * d,
                                         minlength=k) / count, 0.0)
        e = d - mean[col]
        ee = e * e if w_stored is None else w_stored * e * e
        m2 = np.bincount(col, weights=ee, minlength=k)
    lo = np.full(k, np.inf)
    hi = np.full(k, -np.inf)
    np.minimum.at(lo, col, x)
    np.maximum.at(hi, col, x)
    if weights is None:
        count = count.astype(np.int64)
        zeros = zeros.astype(np.int64)
    zero_state = (zeros, np.zeros(k), np.zeros(k), np.zeros(k))
    (state.count, state.shift, state.shifted_mean, state.m2), _ = merge_moment_arrays(
        (count, shift, mean, m2), zero_state)
    any_zero = zeros > 0
    lo = np.where(any_zero, np.minimum(lo, 0.0), lo)
    hi = np.where(any_zero, np.maximum(hi, 0.0), hi)
    seen = has | any_zero
    state.min = np.where(seen, lo, np.nan)
    state.max = np.where(seen, hi, np.nan)
    state.shift = np.where(seen, state.shift, np.nan)
    return state
