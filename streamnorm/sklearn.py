"""A scikit-learn transformer on streamnorm statistics: :class:`StreamScaler`.

Needs the optional extra ``pip install 'streamnorm[sklearn]'``. ``StreamScaler`` is a drop-in
for ``sklearn.preprocessing.StandardScaler`` on dense and sparse (CSR / CSC) data: the same
parameters (``with_mean``, ``with_std``, ``copy``), attributes (``mean_``, ``var_``, ``scale_``,
``n_samples_seen_``, ``n_features_in_``, ``feature_names_in_``) and NaN handling (NaN is
ignored in ``fit`` and kept in ``transform``), with the statistics kept in a
:class:`~streamnorm.FeatureStats` (``stats_``): shifted, exactly mergeable moments, accurate
on data far from zero, and ``partial_fit`` over any number of batches (of any mix of dtypes
and of dense and sparse batches). Sparse input needs ``with_mean=False`` (a ``ValueError``
otherwise, as scikit-learn); its statistics are taken from the stored values and the implicit
zeros without densifying (:mod:`streamnorm.state.sparse`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from scipy import sparse
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from .state.features import FeatureStats
from .state.sparse import sparse_moments

_WEIGHT_COLUMN = "__streamnorm_sample_weight__"
#: The float dtypes kept as they are (scikit-learn's FLOAT_DTYPES); anything else becomes float64.
_FLOAT_DTYPES = [np.float64, np.float32, np.float16]
#: scikit-learn's message for centering sparse input, word for word.
_SPARSE_CENTER = ("Cannot center sparse matrices: pass `with_mean=False` instead. See docstring "
                  "for motivation and alternatives.")


def _as_input(X: Any) -> Any:
    """Arrow-exporting objects scikit-learn cannot read (a RecordBatchReader, a duckdb
    relation, …) become a ``pyarrow.Table``; everything else is left to ``validate_data``."""
    if hasattr(X, "__arrow_c_stream__") and not hasattr(X, "__array__"):
        return pa.table(X)
    return X


class StreamScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Standardize features to zero mean and unit variance, fitted batch by batch.

    ``z = (x - mean_) / scale_`` with ``scale_ = sqrt(var_)`` (ddof=0), and a column of zero
    variance scaled by 1, as ``StandardScaler``. Accepts numpy arrays, pandas / polars
    DataFrames and pyarrow Tables (anything scikit-learn's ``validate_data`` takes);
    ``set_output(transform="pandas" | "polars")`` works. ``scipy.sparse`` CSR / CSC input
    with ``with_mean=False`` (other sparse formats become CSR): statistics from the stored
    values plus the implicit zeros, transforms that scale the stored values and keep the format.
    float64, float32 and float16 input keeps its dtype; ``copy=False`` transforms a writeable
    float numpy array in place.

    Parameters
    ----------
    with_mean : bool, default True. Center the data.
    with_std : bool, default True. Scale to unit variance (``scale_`` is None otherwise).
    copy : bool, default True. If False, transform and inverse_transform write into X when
        it is a writeable float64 / float32 / float16 array or CSR / CSC matrix.

    Attributes
    ----------
    stats_ : FeatureStats, the statistics (columns named "0", "1", …).
    mean_, var_ : ndarray (n_features,), float64 (``mean_`` None without ``with_mean`` and
        ``with_std``, as sklearn).
    scale_ : ndarray (n_features,) or None.
    n_samples_seen_ : int, or an int64 array per feature when the counts differ (NaN);
        float (sum of weights) when fitted with ``sample_weight``.

    Examples
    --------
    >>> import numpy as np
    >>> from streamnorm.sklearn import StreamScaler
    >>> X = np.array([[0.0, 1e9], [2.0, 1e9 + 2], [4.0, 1e9 + 4]])
    >>> scaler = StreamScaler().partial_fit(X[:1]).partial_fit(X[1:])
    >>> scaler.mean_.tolist(), scaler.var_.tolist()
    ([2.0, 1000000002.0], [2.6666666666666665, 2.6666666666666665])
    >>> scaler.transform(X)[:, 1].round(6).tolist()
    [-1.224745, 0.0, 1.224745]
    """

    def __init__(self, *, copy: bool = True, with_mean: bool = True, with_std: bool = True):
        self.copy = copy
        self.with_mean = with_mean
        self.with_std = with_std

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = not self.with_mean
        tags.transformer_tags.preserves_dtype = ["float64", "float32", "float16"]
        return tags

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> StreamScaler:
        """Compute the mean and variance of ``X`` (n_samples, n_features) from scratch."""
        for attr in ("stats_", "n_features_in_", "feature_names_in_", "n_samples_seen_",
                     "mean_", "var_", "scale_"):
            if hasattr(self, attr):
                delattr(self, attr)
        return self.partial_fit(X, y, sample_weight)

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> StreamScaler:
        """Add the rows of ``X`` to the statistics (merged exactly with earlier batches)."""
        first = not hasattr(self, "stats_")
        X = validate_data(self, _as_input(X), accept_sparse=("csr", "csc"), dtype=_FLOAT_DTYPES,
                          ensure_all_finite="allow-nan", reset=first)
        names = [str(j) for j in range(X.shape[1])]
        if sparse.issparse(X):
            self._fit_sparse(X, names, sample_weight, first)
            return self
        if X.dtype == np.float16:
            X = X.astype(np.float32)  # exact; the statistics are float64 anyway
        arrays = [pa.array(np.ascontiguousarray(X[:, j])) for j in range(X.shape[1])]
        weights = None
        if sample_weight is not None:
            w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
            arrays.append(pa.array(w))
            weights = _WEIGHT_COLUMN
        batch = pa.RecordBatch.from_arrays(arrays, names=[*names, *([weights] if weights else [])])
        if first:
            self.stats_ = FeatureStats(names)
        self.stats_.update(batch, weights=weights)
        self._refresh()
        return self

    def _fit_sparse(self, X: Any, names: list[str], sample_weight: Any, first: bool) -> None:
        """Add a CSR / CSC matrix: statistics from its stored values and implicit zeros
        (:func:`~streamnorm.state.sparse.sparse_moments`), never densified."""
        if self.with_mean:
            raise ValueError(_SPARSE_CENTER)
        if not X.has_canonical_format:  # duplicate entries add up, as in scipy
            X = X.copy()
            X.sum_duplicates()
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                           ensure_non_negative=True)
        csr = X.format == "csr"
        runs = None  # the row (CSR) or column (CSC) of each stored value, when needed
        if weights is not None or not csr:
            runs = np.repeat(np.arange(len(X.indptr) - 1), np.diff(X.indptr))
        column, row = (X.indices, runs) if csr else (runs, X.indices)
        part = FeatureStats.from_moments(names, sparse_moments(
            X.data, column, X.shape[1], X.shape[0], row, weights))
        if first:
            self.stats_ = FeatureStats(names)
        self.stats_.merge(part)
        self._refresh()

    def _refresh(self) -> None:
        """Derive the sklearn attributes from ``stats_``."""
        stats = self.stats_
        count = stats.count
        if len(count) and np.all(count == count[0]):
            self.n_samples_seen_ = count[0].item()
        else:
            self.n_samples_seen_ = count
        self.mean_ = stats.mean if (self.with_mean or self.with_std) else None
        self.var_ = stats.var() if self.with_std else None
        if self.with_std:
            # FeatureStats.scale: constant and near-constant features (sklearn's rule) are
            # scaled by 1, and the scale is finite even where var_ overflows; all-NaN features
            # (NaN scale) are scaled by 1 too, as sklearn does.
            scale = stats.scale()
            scale[np.isnan(scale)] = 1.0
            self.scale_ = scale
        else:
            self.scale_ = None

    # ------------------------------------------------------------------ transforming
    def _prepare(self, X: Any, copy: bool | None) -> Any:
        """X validated: a float numpy array or a CSR / CSC matrix, copied unless ``copy`` is
        False (then the input itself where it is already a writeable float array)."""
        check_is_fitted(self, "stats_")
        copy = self.copy if copy is None else copy
        X = validate_data(self, _as_input(X), accept_sparse=("csr", "csc"), copy=copy,
                          dtype=_FLOAT_DTYPES, ensure_all_finite="allow-nan", reset=False)
        if sparse.issparse(X):
            if self.with_mean:
                raise ValueError(_SPARSE_CENTER)
            if not X.data.flags.writeable:
                X = X.copy()
        elif not X.flags.writeable:
            X = X.copy()
        return X

    def _map(self, X: Any, copy: bool | None, inverse: bool) -> Any:
        """``(X - mean_) / scale_`` (or its inverse) computed in float64 and written into
        the validated X (a copy unless ``copy`` is False), so X keeps its float dtype.
        Sparse X: only its stored values, scaled by their column's ``scale_``."""
        X = self._prepare(X, copy)
        values = X.data if sparse.issparse(X) else X
        if sparse.issparse(X):
            if not self.with_std:
                return X
            columns = X.indices if X.format == "csr" else np.repeat(np.arange(X.shape[1]),
                                                                     np.diff(X.indptr))
            scale, mean = self.scale_[columns], None
        else:
            scale = self.scale_ if self.with_std else None
            mean = self.mean_ if self.with_mean else None
        work = values if values.dtype == np.float64 else values.astype(np.float64)
        if inverse:
            if scale is not None:
                np.multiply(work, scale, out=work)
            if mean is not None:
                np.add(work, mean, out=work)
        else:
            if mean is not None:
                np.subtract(work, mean, out=work)
            if scale is not None:
                np.divide(work, scale, out=work)
        if work is not values:
            values[...] = work  # rounded once to X's dtype
        return X

    def transform(self, X: Any, copy: bool | None = None) -> Any:
        """``(X - mean_) / scale_`` in float64, returned in X's float dtype (float64, float32
        or float16; others become float64); NaN stays NaN. ``copy=False`` writes into X
        itself when it is a writeable float numpy array (the result ``is`` X). A CSR / CSC
        matrix (``with_mean=False`` only) comes back in its format, each stored value divided
        by its column's ``scale_``."""
        return self._map(X, copy, inverse=False)

    def inverse_transform(self, X: Any, copy: bool | None = None) -> Any:
        """``X * scale_ + mean_``: back to the original units (same dtypes, ``copy`` and
        sparse rules as :meth:`transform`)."""
        return self._map(X, copy, inverse=True)
