"""streamnorm: streaming, mergeable normalization statistics over Apache Arrow data.

Per-feature (BatchNorm-style) statistics with :class:`FeatureStats` / :func:`feature_stats`,
per-sample (LayerNorm-style) statistics with :func:`row_stats`.
"""

from __future__ import annotations

from .errors import InputError, SchemaError, StreamnormError
from .normalize import Normalizer, inverse_file, normalize_file
from .stats import FeatureStats, feature_stats, row_stats

__version__ = "0.1.0"

__all__ = [
    "FeatureStats",
    "InputError",
    "Normalizer",
    "SchemaError",
    "StreamnormError",
    "feature_stats",
    "inverse_file",
    "normalize_file",
    "row_stats",
    "__version__",
]
