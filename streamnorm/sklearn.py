"""A scikit-learn transformer on streamnorm statistics: :class:`StreamScaler`.

Needs the optional extra ``pip install 'streamnorm[sklearn]'``. ``StreamScaler`` is a drop-in
for ``sklearn.preprocessing.StandardScaler`` on dense data: the same parameters
(``with_mean``, ``with_std``, ``copy``), attributes (``mean_``, ``var_``, ``scale_``,
``n_samples_seen_``, ``n_features_in_``, ``feature_names_in_``) and NaN handling (NaN is
ignored in ``fit`` and kept in ``transform``), with the statistics kept in a
:class:`~streamnorm.FeatureStats` (``stats_``): shifted, exactly mergeable moments, accurate
on data far from zero, and ``partial_fit`` over any number of batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from .state.features import FeatureStats

_WEIGHT_COLUMN = "__streamnorm_sample_weight__"


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
    ``set_output(transform="pandas" | "polars")`` works.

    Parameters
    ----------
    with_mean : bool, default True. Center the data.
    with_std : bool, default True. Scale to unit variance (``scale_`` is None otherwise).
    copy : bool, default True. If False, transform float64 input in place where possible.

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
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
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
        X = validate_data(self, _as_input(X), dtype=[np.float64, np.float32],
                          ensure_all_finite="allow-nan", reset=first)
        names = [str(j) for j in range(X.shape[1])]
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
    def _prepare(self, X: Any, copy: bool | None) -> np.ndarray:
        check_is_fitted(self, "stats_")
        copy = self.copy if copy is None else copy
        return validate_data(self, _as_input(X), dtype=[np.float64, np.float32], copy=copy,
                             ensure_all_finite="allow-nan", reset=False)

    def transform(self, X: Any, copy: bool | None = None) -> np.ndarray:
        """``(X - mean_) / scale_`` in float64, returned in X's float dtype; NaN stays NaN."""
        X = self._prepare(X, copy)
        out = X.astype(np.float64, copy=False)
        if self.with_mean:
            out = out - self.mean_
        if self.with_std:
            out = out / self.scale_
        return out.astype(X.dtype, copy=False)

    def inverse_transform(self, X: Any, copy: bool | None = None) -> np.ndarray:
        """``X * scale_ + mean_``: back to the original units."""
        X = self._prepare(X, copy)
        out = X.astype(np.float64, copy=False)
        if self.with_std:
            out = out * self.scale_
        if self.with_mean:
            out = out + self.mean_
        return out.astype(X.dtype, copy=False)
