"""Robust scaling (scikit-learn ``RobustScaler`` semantics) from the quantile sketches.

Each column becomes ``(x - median) / (q_hi - q_lo)`` with ``quantile_range = (lo, hi)`` in
percent (default ``(25, 75)``: the interquartile range). The median and the quantiles come from
``FeatureStats(quantiles=True)``: exact (numpy's) up to 1024 values per column, else within
0.5% in rank. A scale below ``10 * eps`` (float64 machine epsilon; a zero IQR) is replaced by 1,
as scikit-learn's ``_handle_zeros_in_scale`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..state.features import FeatureStats

#: scikit-learn's default: the interquartile range, in percent.
DEFAULT_QUANTILE_RANGE: tuple[float, float] = (25.0, 75.0)


def check_quantile_range(quantile_range: Any) -> tuple[float, float]:
    """``(lo, hi)`` as floats when ``0 <= lo <= hi <= 100``, else ``ValueError``."""
    try:
        lo, hi = (float(v) for v in quantile_range)
    except (TypeError, ValueError):
        raise ValueError(f"quantile_range must be two percentages (lo, hi), got "
                         f"{quantile_range!r}") from None
    if not 0.0 <= lo <= hi <= 100.0:
        raise ValueError(f"quantile_range must satisfy 0 <= lo <= hi <= 100, got "
                         f"{quantile_range!r}")
    return lo, hi


def robust_arrays(stats: FeatureStats, quantile_range: tuple[float, float]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(center, scale), float64 arrays (n_columns,) over all of ``stats.columns``: the median
    and ``q_hi - q_lo`` (a scale below ``10 * eps`` becomes 1). Needs the quantile sketches."""
    lo, hi = quantile_range
    center = stats.median()
    bounds = stats.quantile([lo / 100.0, hi / 100.0])
    scale = bounds[1] - bounds[0]
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
    return center, scale
