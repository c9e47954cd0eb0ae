"""Columns: Arrow types streamnorm normalizes (:mod:`.types`) and the views and buffer
addresses the kernels read (:mod:`.views`). ``from . import columns as cols`` then
``cols.xxx`` reaches every name below."""

from __future__ import annotations

from .arrays import numpy_array, string_array
from .buffers import pooled_empty
from .types import (
    PARTITION_ROLE,
    ROLE_KEY,
    bools_as_uint8,
    check_numeric,
    common_type,
    field_type,
    is_numeric,
    is_partition_key,
    is_vector,
    numeric_column_names,
    plain_type,
    promoted_type,
    why_not_numeric,
)
from .views import (
    BatchPlan,
    BufferGroup,
    ColumnView,
    VectorView,
    column_views,
    exported_batch,
    locate_columns,
    plan_batches,
    primitive_view,
    vector_views,
)

__all__ = [
    "PARTITION_ROLE", "ROLE_KEY", "BatchPlan", "BufferGroup", "ColumnView", "VectorView",
    "bools_as_uint8", "check_numeric", "column_views", "common_type", "exported_batch",
    "field_type", "is_numeric",
    "is_partition_key", "is_vector", "locate_columns", "numeric_column_names", "numpy_array",
    "plain_type", "plan_batches", "pooled_empty", "primitive_view", "promoted_type",
    "string_array", "vector_views", "why_not_numeric",
]
