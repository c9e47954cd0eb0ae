"""Statistics as a fitted scikit-learn scaler (:meth:`FeatureStats.to_sklearn`), and the
optional-import helper the exports share (:mod:`streamnorm.normalize.exports` builds on it).

scikit-learn stays optional: it is imported only when a scaler is built, and a missing one is
an ``ImportError`` naming the extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np


def require(module: str, extra: str, what: str) -> Any:
    """Import ``module`` or raise an ``ImportError`` naming the extra that installs it."""
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        name = "scikit-learn" if package == "sklearn" else package
        raise ImportError(f"{what} needs {name}: pip install 'streamnorm[{extra}]' (or "
                          f"pip install {name})") from err


def set_seen(scaler: Any, names: Sequence[str] | np.ndarray,
             count: Sequence[float] | np.ndarray) -> None:
    """Set scikit-learn's fit bookkeeping on ``scaler``: ``n_features_in_``,
    ``feature_names_in_`` (object array of the names) and ``n_samples_seen_`` (a number when
    every feature counts the same values, else an array; int64 unless weighted)."""
    count = np.asarray(count)
    scaler.n_features_in_ = len(names)
    scaler.feature_names_in_ = np.asarray(list(names), dtype=object)
    whole = bool(np.all(count == np.floor(count)))
    if len(count) and np.all(count == count[0]):
        scaler.n_samples_seen_ = int(count[0]) if whole else float(count[0])
    else:
        scaler.n_samples_seen_ = count.astype(np.int64) if whole else count.astype(np.float64)


def standard_scaler(names: Sequence[str], count: Sequence[float] | np.ndarray,
                    mean: np.ndarray, var: np.ndarray, scale: np.ndarray) -> Any:
    """A fitted ``sklearn.preprocessing.StandardScaler`` with these attributes (arrays of
    shape (n_features,), float64): ``mean_``, ``var_``, ``scale_`` (a NaN scale, from a
    feature with no value, becomes 1 as in scikit-learn), and :func:`set_seen`'s."""
    preprocessing = require("sklearn.preprocessing", "sklearn", "to_sklearn()")
    scaler = preprocessing.StandardScaler()
    scaler.mean_ = np.array(mean, dtype=np.float64)
    scaler.var_ = np.array(var, dtype=np.float64)
    scale = np.array(scale, dtype=np.float64)
    scale[np.isnan(scale)] = 1.0
    scaler.scale_ = scale
    set_seen(scaler, names, count)
    return scaler
