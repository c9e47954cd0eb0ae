"""Statistics state: per-column (:class:`FeatureStats`), per-key (:class:`GroupedFeatureStats`),
running (:class:`RunningStats`) and per-row (:func:`row_stats`) statistics.

``merge`` holds the one moment merge, ``ingest`` the paths a batch takes into a state,
``persist`` the saved layout and file I/O, ``statsfile`` the checks of loaded states. Importing
this package imports ``grouped``, which registers :class:`GroupedFeatureStats` as the class
``FeatureStats(by=...)`` makes and a saved grouped state loads as.
"""

from .features import FeatureStats, InfPolicy, NanPolicy, feature_stats
from .grouped import GroupedFeatureStats
from .merge import BIG_EXPONENT, merge_moment_arrays
from .rows import row_stats
from .running import RunningStats

__all__ = ["BIG_EXPONENT", "FeatureStats", "GroupedFeatureStats", "InfPolicy", "NanPolicy",
           "RunningStats", "feature_stats", "merge_moment_arrays", "row_stats"]
