"""Temporary re-exports for the issue-13 merge; removed when the layers are joined.

The names moved into :mod:`streamnorm.state`; this module maps old names to their new homes.
"""

from .state.features import FeatureStats, NanPolicy, feature_stats
from .state.merge import BIG_EXPONENT
from .state.persist import naming as _naming
from .state.rows import row_stats, scalar_row_moments, vector_row_moments

__all__ = ["BIG_EXPONENT", "FeatureStats", "NanPolicy", "_naming", "feature_stats", "row_stats",
           "scalar_row_moments", "vector_row_moments"]
