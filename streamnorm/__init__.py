"""streamnorm: streaming, mergeable normalization statistics over Apache Arrow data.

Per-feature (BatchNorm-style) statistics with :class:`FeatureStats` / :func:`feature_stats`,
per-sample (LayerNorm-style) statistics with :func:`row_stats`.
"""

from __future__ import annotations

from ._version import __version__
from .arrow import DataSource, open_source
from .errors import InputError, NonFiniteError, SchemaError, StatsFileError, StreamnormError
from .normalize import Normalizer
from .pipeline import inverse_file, normalize_dataset, normalize_file
from .grouped import GroupedFeatureStats
from .running import RunningStats
from .selection import inspect, select_columns
from .stats import FeatureStats, feature_stats, row_stats


__all__ = [
    "DataSource",
    "FeatureStats",
    "GroupedFeatureStats",
    "InputError",
    "NonFiniteError",
    "Normalizer",
    "RunningStats",
    "SchemaError",
    "StatsFileError",
    "StreamnormError",
    "feature_stats",
    "inspect",
    "inverse_file",
    "normalize_dataset",
    "normalize_file",
    "open_source",
    "row_stats",
    "select_columns",
    "__version__",
]
