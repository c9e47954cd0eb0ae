"""Temporary re-exports for the issue-13 merge; removed when the layers are joined."""

from .state.grouped import GroupedFeatureStats, map_grouped

__all__ = ["GroupedFeatureStats", "map_grouped"]
