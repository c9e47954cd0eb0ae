"""Column statistics of a sparse matrix from its structure, without densifying it.

A sparse matrix stores some values of each column (CSR: ``data`` with the column of each
in ``indices``); every other row of the column is an implicit zero, and it counts. The state of
a column is therefore the merge of two exact states: the moments of its stored values
(a shifted two-pass, as the kernels do per block: shift by one of the column's stored finite
values, mean, then the squared deviations) and the state of ``k`` zeros (count ``k``, mean 0,
m2 0), merged with the one Chan merge of :mod:`~streamnorm.state.merge`. No term of that merge
cancels (``m2 = m2_stored + d²·n_s·k/n``), so a column of mostly zeros is as accurate as its
stored values are.

NaN stored values are skipped and counted (``nan_count``); explicit zeros are values like the
implicit ones. Only numpy: the caller (``StreamScaler``) holds the scipy matrix.
"""

from __future__ import annotations

import numpy as np

from .merge import Moments, merge_moment_arrays


def sparse_moments(
    data: np.ndarray, column: np.ndarray, n_columns: int, n_rows: int,
    row: np.ndarray | None = None, weights: np.ndarray | None = None,
) -> Moments:
    """The two-moment state (one entry per column) of a sparse ``n_rows`` x ``n_columns``
    matrix given by its stored values ``data`` and the column of each, ``column`` (any order:
    CSR's ``indices``, or CSC's column runs; no duplicate entries — call ``sum_duplicates``
    first). ``data`` of any float or int dtype, accumulated in float64.

    ``weights`` (float64, shape (n_rows,), finite and >= 0): frequency weights per row, with
    ``row`` the row of each stored value; the counts are then sums of weights (float64) and
    a zero weight drops the row.

    Returns a :class:`Moments` of shape ``(n_columns,)``: count (values, implicit zeros
    included, NaN excluded), nan_count, inf_count, shift, shifted_mean, m2, min, max.
    """
    k = n_columns
    col = np.asarray(column, dtype=np.intp)
    x = np.asarray(data, dtype=np.float64)
    nan = np.isnan(x)
    state = Moments((k,), 2, weighted=weights is not None)
    stored = np.bincount(col, minlength=k)
    state.nan_count = np.bincount(col[nan], minlength=k).astype(np.int64)
    state.inf_count = np.bincount(col[np.isinf(x)], minlength=k).astype(np.int64)
    if weights is None:
        w_stored = None
        keep = ~nan
        zeros: np.ndarray = n_rows - stored  # rows with no stored value
    else:
        w_all = np.asarray(weights, dtype=np.float64)[np.asarray(row)]
        keep = ~nan & (w_all > 0)
        w_stored = w_all[keep]
        stored_weight = np.bincount(col, weights=w_all, minlength=k)
        zeros = np.maximum(float(np.sum(weights)) - stored_weight, 0.0)
    if not keep.all():
        col, x = col[keep], x[keep]
    count = np.bincount(col, weights=w_stored, minlength=k)
    has = count > 0
    # each column's shift: one of its stored finite values (0 for a column of zeros only)
    finite = np.isfinite(x)
    shift = np.zeros(k)
    shift[col[finite]] = x[finite]
    d = x - shift[col]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(has, np.bincount(col, weights=d if w_stored is None else w_stored * d,
                                         minlength=k) / count, 0.0)
        e = d - mean[col]
        e *= e
        m2 = np.bincount(col, weights=e if w_stored is None else w_stored * e, minlength=k)
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
