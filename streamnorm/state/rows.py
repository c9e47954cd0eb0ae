"""Per-row (LayerNorm-style) statistics: :func:`row_stats`, and the row moments the layer and
rms normalizations use (:func:`scalar_row_moments`, :func:`vector_row_moments`).

Row statistics run over several scalar numeric columns taken together or within one
FixedSizeList column; :func:`choose_row_columns` is the one place that picks which.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from .. import columns as cols
from ..arrow.open import Source, schema_and_batches
from ..kernels import Backend, backend
from .merge import merge_row_moments

#: The schema of :func:`row_stats` results.
ROW_STATS_SCHEMA = pa.schema([("count", pa.int64()), ("mean", pa.float64()),
                              ("var", pa.float64())])


def choose_row_columns(
    schema: pa.Schema, columns: Sequence[str] | None
) -> tuple[list[str], str | None]:
    """Pick what row statistics run over: (scalar numeric columns, vector column or None).

    With ``columns=None``: every scalar numeric column, or the one FixedSizeList column. Asking
    for both kinds at once, or several vector columns, is a ``ValueError`` naming ``columns=``.
    """
    if columns is None:
        scalars = cols.numeric_column_names(schema)
        vectors = [f.name for f in schema if cols.is_vector(f.type)]
    else:
        scalars, vectors = [], []
        for name in columns:
            field_type = cols.field_type(schema, name)
            if cols.is_vector(field_type):
                vectors.append(name)
            else:
                cols.check_numeric(name, field_type)
                scalars.append(name)
    if scalars and vectors:
        raise ValueError(
            f"row statistics over both scalar columns {scalars} and vector columns {vectors}: "
            "choose one kind with columns=[...]"
        )
    if len(vectors) > 1:
        raise ValueError(
            f"row statistics over several vector columns {vectors}: choose one with columns=[...]"
        )
    if not scalars and not vectors:
        raise ValueError("no numeric column to compute row statistics over; pass columns=[...]")
    return scalars, (vectors[0] if vectors else None)


def _single_view(column: pa.Array | pa.ChunkedArray) -> cols.ColumnView:
    """One view over a whole column (chunks combined); an empty float64 view for no rows."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    for view in cols.column_views(column):
        return view
    return cols.ColumnView(np.zeros(0), np.zeros(0, dtype=np.uint8), 0, 0)


def scalar_row_moments(
    batch: pa.RecordBatch, names: Sequence[str], kernels: Backend
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row (count int64, mean, m2) across scalar columns ``names`` of one batch, each of
    shape (batch.num_rows,).

    Columns of one dtype go through one kernel call; dtype groups are merged per row
    (:func:`~streamnorm.state.merge.merge_row_moments`). Rows with no valid value get count 0
    and NaN mean/m2.
    """
    groups: dict[np.dtype, list[cols.ColumnView]] = {}
    for name in names:
        view = _single_view(batch.column(name))
        groups.setdefault(view.values.dtype, []).append(view)
    merged: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    for group in groups.values():
        moments = kernels.row_moments_columns(
            [v.values for v in group],
            [v.validity for v in group],
            np.array([v.bit_offset for v in group], dtype=np.int64),
            np.array([v.has_validity for v in group], dtype=np.bool_),
        )
        merged = moments if merged is None else merge_row_moments(merged, moments)
    assert merged is not None
    return merged


def vector_row_moments(
    column: pa.Array | pa.ChunkedArray, kernels: Backend
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row (count int64, mean, m2) within a FixedSizeList column; null rows count 0."""
    counts, means, m2s = [], [], []
    for view in cols.vector_views(column):
        count, mean, m2 = kernels.row_moments_matrix(
            view.values, view.value_validity, view.value_bit_offset, view.has_value_validity
        )
        if not view.row_valid.all():
            count[~view.row_valid] = 0
            mean[~view.row_valid] = np.nan
            m2[~view.row_valid] = np.nan
        counts.append(count)
        means.append(mean)
        m2s.append(m2)
    if not counts:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    return np.concatenate(counts), np.concatenate(means), np.concatenate(m2s)


def _row_stats_batch(
    batch: pa.RecordBatch, scalars: list[str], vector: str | None, kernels: Backend
) -> pa.RecordBatch:
    if vector is not None:
        count, mean, m2 = vector_row_moments(batch.column(vector), kernels)
    else:
        count, mean, m2 = scalar_row_moments(batch, scalars, kernels)
    empty = count == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        var = m2 / count
    return pa.RecordBatch.from_arrays(
        [
            pa.array(count, pa.int64()),
            pa.array(mean, pa.float64(), mask=empty),
            pa.array(var, pa.float64(), mask=empty),
        ],
        names=["count", "mean", "var"],
    )


def row_stats(
    data: Source,
    columns: Sequence[str] | None = None,
    *,
    target: str | None = None,
) -> pa.Table:
    """Per-row (LayerNorm-style) count, mean and variance (ddof=0), one output row per input row.

    Over several numeric scalar columns taken together, or within one FixedSizeList column
    (a vector per row). Nulls and NaN are skipped per row; a row with no valid value gets
    count 0 and null mean/var.

    Returns
    -------
    pa.Table with columns ``count`` (int64), ``mean`` (float64), ``var`` (float64).

    Examples
    --------
    >>> import pyarrow as pa, streamnorm as sn
    >>> sn.row_stats(pa.table({"a": [1.0, 5.0], "b": [3.0, None]})).to_pylist()
    [{'count': 2, 'mean': 2.0, 'var': 1.0}, {'count': 1, 'mean': 5.0, 'var': 0.0}]
    """
    if isinstance(columns, str):
        columns = [columns]
    kernels = backend(target)
    schema, batches = schema_and_batches(data)
    out: list[pa.RecordBatch] = []
    chosen: tuple[list[str], str | None] | None = None
    for batch in batches:
        if chosen is None:
            chosen = choose_row_columns(batch.schema, columns)
        out.append(_row_stats_batch(batch, chosen[0], chosen[1], kernels))
    if schema is not None and chosen is None:
        choose_row_columns(schema, columns)  # validate even when there are no batches
    return pa.Table.from_batches(out, schema=ROW_STATS_SCHEMA)
