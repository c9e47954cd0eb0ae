"""Temporary re-exports for the issue-13 merge; removed when the layers are joined."""

from .state.statsfile import decode_ipc, encode_ipc, is_int, names_problem, parse_json, show

__all__ = ["decode_ipc", "encode_ipc", "is_int", "names_problem", "parse_json", "show"]
