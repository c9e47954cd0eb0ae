"""streamnorm: streaming, mergeable normalization statistics over Apache Arrow data.

Per-feature (BatchNorm-style) statistics with :class:`FeatureStats` / :func:`feature_stats`,
per-sample (LayerNorm-style) statistics with :func:`row_stats`.
"""

from __future__ import annotations

from ._version import __version__
from .arrow import DataSource, open_source
from .errors import (
    InputError,
    NonFiniteError,
    SchemaError,
    StatsFileError,
    StreamnormError,
)
from .normalize import Normalizer
from .pipeline import inverse_file, normalize_dataset, normalize_file
from .selection import inspect, select_columns
from .state.features import FeatureStats, feature_stats
from .state.grouped import GroupedFeatureStats
from .state.rows import row_stats
from .state.running import RunningStats

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
