"""Temporary re-exports for the issue-13 merge; removed when the layers are joined."""

from .state.running import RunningStats

__all__ = ["RunningStats"]
