"""streamnorm: streaming, mergeable normalization statistics over Apache Arrow data.

Per-feature (BatchNorm-style) statistics with :class:`FeatureStats` / :func:`feature_stats`,
per-sample (LayerNorm-style) statistics with :func:`row_stats`.
"""

from __future__ import annotations

from .errors import InputError, SchemaError, StreamnormError
from .normalize import Normalizer, inverse_file, normalize_file
from .grouped import GroupedFeatureStats
from .running import RunningStats
from .stats import FeatureStats, feature_stats, row_stats

__version__ = "0.1.0"

__all__ = [
    "FeatureStats",
    "GroupedFeatureStats",
    "InputError",
    "Normalizer",
    "RunningStats",
    "SchemaError",
    "StreamnormError",
    "feature_stats",
    "inverse_file",
    "normalize_file",
    "row_stats",
    "__version__",
]
