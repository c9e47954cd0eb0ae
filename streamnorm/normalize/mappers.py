"""The mappers: one per mode, each turning the planned columns of one record batch into their
normalized (or restored) arrays. Computation in float64; outputs float32 or float64 as the
plan says; nulls kept by reusing the input's validity bitmap.

* batch mode: :func:`map_batch` (one center and scale per column, from the statistics);
* batch mode with ``by=``: :func:`map_grouped_batch` (each row with its key's statistics);
* layer / rms mode: :func:`map_rows` (each row's own statistics over the scalar columns taken
  together, and over each vector column's vector).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from .. import columns as cols
from ..errors import NonFiniteError
from ..kernels import Backend
from ..state.features import FeatureStats
from ..state.grouped import GroupedFeatureStats
from ..state.rows import scalar_row_moments, vector_row_moments

#: Centers or scales beyond this may make ``x - center`` (``y * scale``) overflow for values
#: of the fitted data: std >= max|x - mean| / sqrt(n), so with n < 2**64 such an overflow
#: needs a scale above 2**(1024 - 32) or a center near float64's limit.
HUGE = 2.0**960


@dataclass(frozen=True)
class RowRule:
    """How layer / rms mode normalizes a row: ``mode`` ("layer" or "rms"), ``eps``, ``ddof``
    and ``nan`` ("skip" or "propagate") as in :class:`~streamnorm.Normalizer`."""

    mode: str
    eps: float
    ddof: int
    nan: str


# --------------------------------------------------------------------------- Arrow output


def validity_buffer(bitmap: np.ndarray, bit_offset: int, length: int) -> pa.Buffer:
    """A validity buffer for ``length`` values starting at bit ``bit_offset`` of ``bitmap``.

    Zero-copy when the offset is a whole number of bytes, else the bits are realigned (one
    pass over ``length / 8`` bytes, never over the bits before the offset).
    """
    first = bit_offset // 8
    shift = bit_offset % 8
    if shift == 0:
        return pa.py_buffer(bitmap[first : first + (length + 7) // 8])
    stop = (bit_offset + length + 7) // 8
    bits = np.unpackbits(bitmap[first:stop], bitorder="little")[shift : shift + length]
    return pa.py_buffer(np.packbits(bits, bitorder="little"))


def float_array(
    values: np.ndarray, arrow_type: pa.DataType, bitmap: np.ndarray, bit_offset: int,
    null_count: int,
) -> pa.Array:
    """Wrap a float32/float64 numpy array (zero-copy) with the given nulls as an Arrow array."""
    length = int(values.shape[0])
    validity = validity_buffer(bitmap, bit_offset, length) if null_count else None
    return pa.Array.from_buffers(
        arrow_type, length, [validity, pa.py_buffer(values)], null_count=null_count
    )


# --------------------------------------------------------------------------- centers and scales


def check_finite_stats(stats: FeatureStats, names: Sequence[str] | None = None) -> None:
    """Raise :class:`NonFiniteError` naming every column (of ``names``, default all) whose
    statistics hold ±inf: normalizing with them would turn every value of the column into NaN.

    Columns whose statistics are NaN for another reason (no value, ``count <= ddof``, NaN
    under ``nan="propagate"``) are not refused: their outputs are NaN by documented choice.
    """
    k = len(stats.columns)

    def per_column(values: np.ndarray) -> np.ndarray:  # (keys, columns): one row ungrouped
        return np.reshape(values, (-1, k))

    counted = per_column(stats.inf_count).sum(axis=0)
    if stats.inf == "skip":
        counted[:] = 0  # skipped: they are not in the statistics
    infinite = np.isinf(per_column(stats.mean)).any(axis=0) | (counted > 0)
    position = {name: j for j, name in enumerate(stats.columns)}
    chosen = stats.columns if names is None else names
    bad = [position[n] for n in chosen if infinite[position[n]]]
    if not bad:
        return
    parts = []
    for j in bad:
        signs = [sign for sign, extreme in (("+inf", per_column(stats.max)[:, j]),
                                            ("-inf", per_column(stats.min)[:, j]))
                 if np.any(extreme == float(sign))]
        held = f"{int(counted[j])} ±inf" if counted[j] else "±inf"
        parts.append(f"{stats.columns[j]!r} ({held}" + (f": {', '.join(signs)})" if signs else ")"))
    raise NonFiniteError(
        f"cannot normalize column(s) {', '.join(parts)}: their statistics are not finite, so "
        "every normalized value would be NaN; skip the infinities with inf='skip' (CLI: "
        "--inf skip; the ±inf then pass through unchanged; statistics given with --stats must "
        "come from `streamnorm stats --inf skip`), or remove them"
    )


def batch_center_scale(
    stats: FeatureStats, names: Sequence[str], eps: float, ddof: int
) -> dict[str, tuple[float, float]]:
    """``{column: (mean, sqrt(var + eps))}``; constant and near-constant columns scaled by 1
    (:meth:`FeatureStats.scale`). Statistics holding ±inf are a :class:`NonFiniteError`."""
    check_finite_stats(stats, names)
    index = {name: j for j, name in enumerate(stats.columns)}
    mean = stats.mean
    scale = stats.scale(ddof, eps)
    return {name: (float(mean[index[name]]), float(scale[index[name]])) for name in names}


def row_center_scale(
    mode: str, count: np.ndarray, mean: np.ndarray, m2: np.ndarray, eps: float, ddof: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (center, scale) arrays, shape (n_rows,), from per-row (count, mean, m2).

    layer: ``(mean, sqrt(m2 / (count - ddof) + eps))``; rms: ``(0, sqrt(mean(x²) + eps))`` with
    ``mean(x²) = m2 / count + mean²`` (a sum of two non-negative terms, so no cancellation).
    A zero scale becomes 1; rows with ``count <= ddof`` (layer) or no value get NaN.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        if mode == "layer":
            denominator = (count - ddof).astype(np.float64)
            var = np.where(denominator > 0, m2 / np.where(denominator > 0, denominator, 1.0),
                           np.nan)
            center = mean.astype(np.float64, copy=True)
            scale = np.sqrt(var + eps)
        else:
            mean_square = m2 / count + mean * mean
            center = np.zeros(len(count))
            center[count == 0] = np.nan
            scale = np.sqrt(mean_square + eps)
    scale[scale == 0.0] = 1.0
    return center, scale


def row_nan_mask(arrays: Iterable[pa.Array], n_rows: int) -> np.ndarray:
    """Rows holding a NaN in any of ``arrays`` (scalar columns), as a bool array (n_rows,)."""
    mask = np.zeros(n_rows, dtype=bool)
    for array in arrays:
        if pat.is_dictionary(array.type):
            array = array.dictionary_decode()
        if pat.is_floating(array.type):
            isnan = np.asarray(array.is_nan().fill_null(False).to_numpy(zero_copy_only=False))
            mask |= isnan
    return mask


def vector_nan_mask(column: pa.Array) -> np.ndarray:
    """Rows of a FixedSizeList column holding a NaN inside their vector."""
    width = column.type.list_size
    flat = column.flatten() if column.null_count == 0 else column.values.slice(
        column.offset * width, len(column) * width
    )
    if not pat.is_floating(flat.type):
        return np.zeros(len(column), dtype=bool)
    isnan = np.asarray(flat.is_nan().fill_null(False).to_numpy(zero_copy_only=False))
    return isnan.reshape(len(column), width).any(axis=1)


# --------------------------------------------------------------------------- batch mode


def map_columns(
    columns: dict[str, pa.Array], plan: dict[str, tuple[float, float]],
    types: dict[str, pa.DataType], kernels: Backend, inverse: bool,
) -> dict[str, pa.Array]:
    """``(x - center) / scale`` (``x * scale + center`` if ``inverse``) per scalar column, nulls
    kept. Columns sharing (input dtype, output type) go through one ``normalize_columns``
    (``denormalize_columns``) call."""
    many = kernels.denormalize_columns if inverse else kernels.normalize_columns
    result: dict[str, pa.Array] = {}
    groups: dict[tuple[np.dtype, pa.DataType], list[tuple[str, cols.ColumnView]]] = {}
    for name, column in columns.items():
        if isinstance(column, pa.ChunkedArray):  # pragma: no cover - batches hold plain arrays
            column = column.combine_chunks()
        if len(column) == 0:
            result[name] = pa.array([], type=types[name])
            continue
        view = next(cols.column_views(column))
        center, scale = plan[name]
        if abs(center) > HUGE or scale > HUGE:
            out = map_halved(view.values, center, scale, inverse)
            out = out.astype(types[name].to_pandas_dtype(), copy=False)
            result[name] = float_array(out, types[name], view.validity, view.bit_offset,
                                       view.null_count)
            continue
        groups.setdefault((view.values.dtype, types[name]), []).append((name, view))
    for (_, arrow_type), members in groups.items():
        # from Arrow's pool: freed batches' pages are reused, not faulted in again
        outs = [cols.pooled_empty(len(v), arrow_type.to_pandas_dtype()) for _, v in members]
        centers = np.array([plan[name][0] for name, _ in members], dtype=np.float64)
        scales = np.array([plan[name][1] for name, _ in members], dtype=np.float64)
        many([v.values for _, v in members], centers, scales, outs)
        for (name, v), out in zip(members, outs):
            result[name] = float_array(out, arrow_type, v.validity, v.bit_offset, v.null_count)
    return result


def map_halved(values: np.ndarray, center: float, scale: float, inverse: bool) -> np.ndarray:
    """:func:`map_columns`'s formula for a column of huge values, in float64: every operand
    halved (exact), so ``x - center`` (``y * scale``) cannot overflow; the same rounding as the
    plain formula wherever that one does not overflow (values below 2**-1021 aside)."""
    x = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if inverse:
            return (x * (scale * 0.5) + center * 0.5) * 2.0
        return (x * 0.5 - center * 0.5) / (scale * 0.5)


def map_batch(
    batch: pa.RecordBatch, out_schema: pa.Schema, plan: dict[str, tuple[float, float]],
    kernels: Backend, inverse: bool,
) -> list[pa.Array]:
    """Batch mode: the arrays of ``out_schema`` for ``batch``, each planned column mapped with
    its ``(center, scale)``, one kernel call per (input, output) dtype pair."""
    # one walk over the schema, by position: a lookup by name per column costs a schema
    # search each, which made wide batches slow
    chosen = [(f, column) for f, column in zip(out_schema, batch.columns) if f.name in plan]
    mapped = map_columns(
        {f.name: column for f, column in chosen}, plan, {f.name: f.type for f, _ in chosen},
        kernels, inverse,
    )
    return [mapped.get(f.name, column) for f, column in zip(out_schema, batch.columns)]


def map_grouped_batch(
    stats: GroupedFeatureStats, batch: pa.RecordBatch, out_schema: pa.Schema, names: list[str],
    eps: float, ddof: int, inverse: bool,
) -> list[pa.Array]:
    """Batch mode with ``by=``: the arrays of ``out_schema`` for ``batch``, each row of the
    columns ``names`` mapped with its own key's statistics.

    ``(x - mean[key]) / sqrt(var[key] + eps)`` (a zero variance is scaled by 1), or
    ``x * scale + mean`` when ``inverse``; computed in float64 and rounded once to the output
    type. Nulls stay null, and so do the rows whose key the statistics never saw (no statistics
    to normalize them with).
    """
    import pyarrow.compute as pc  # loaded on first use (about 0.1 s and 6 MB)

    n = batch.num_rows
    rows = stats.key_rows(batch) if n else np.zeros(0, dtype=np.int64)
    unseen = rows < 0
    rows = np.where(unseen, 0, rows)
    mean = stats.mean
    scale = stats.scale(ddof, eps)
    index = {name: j for j, name in enumerate(stats.columns)}
    mapped: dict[str, pa.Array] = {}
    for name in names:
        out_type = out_schema.field(name).type
        column = batch.column(name)
        x = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        if stats.group_count:
            center, spread = mean[rows, index[name]], scale[rows, index[name]]
        else:
            center, spread = np.zeros(n), np.ones(n)
        y = x * spread + center if inverse else (x - center) / spread
        mask = unseen | column.is_null().to_numpy(zero_copy_only=False)
        mapped[name] = pa.array(y.astype(out_type.to_pandas_dtype()), type=out_type, mask=mask)
    return [mapped.get(f.name, column) for f, column in zip(out_schema, batch.columns)]


# --------------------------------------------------------------------------- layer / rms mode


def map_rows(
    batch: pa.RecordBatch, out_schema: pa.Schema, plan: tuple[list[str], list[str]],
    kernels: Backend, rule: RowRule,
) -> list[pa.Array]:
    """Layer / rms mode: the arrays of ``out_schema`` for ``batch``; ``plan`` is (scalar
    columns normalized together per row, vector columns normalized vector by vector)."""
    scalars, vectors = plan
    replaced: dict[str, pa.Array] = {}
    if scalars and batch.num_rows:
        replaced.update(_row_scalars(batch, scalars, out_schema, kernels, rule))
    for name in vectors:
        column = batch.column(name)
        if len(column):
            replaced[name] = _row_vector(column, out_schema.field(name).type, kernels, rule)
    arrays = []
    for f, column in zip(out_schema, batch.columns):
        if f.name in replaced:
            arrays.append(replaced[f.name])
        elif f.type != column.type:  # a chosen column of an empty batch
            arrays.append(pa.array([], type=f.type))
        else:
            arrays.append(column)
    return arrays


def _row_scalars(
    batch: pa.RecordBatch, names: list[str], out_schema: pa.Schema, kernels: Backend, rule: RowRule
) -> dict[str, pa.Array]:
    """Normalize scalar columns ``names`` of a batch together, row by row."""
    fused = _row_scalars_fused(batch, names, out_schema, kernels, rule)
    if fused is not None:
        return fused
    count, mean, m2 = scalar_row_moments(batch, names, kernels)
    center, scale = row_center_scale(rule.mode, count, mean, m2, rule.eps, rule.ddof)
    if rule.nan == "propagate":
        center[row_nan_mask((batch.column(n) for n in names), batch.num_rows)] = np.nan
    views = {name: next(cols.column_views(batch.column(name))) for name in names}
    groups: dict[tuple[np.dtype, pa.DataType], list[str]] = {}
    for name in names:
        groups.setdefault((views[name].values.dtype, out_schema.field(name).type), []).append(
            name
        )
    result = {}
    for (_, arrow_type), group in groups.items():
        outs = [cols.pooled_empty(batch.num_rows, arrow_type.to_pandas_dtype())
                for _ in group]
        kernels.normalize_rows_columns([views[n].values for n in group], center, scale, outs)
        for name, out in zip(group, outs):
            v = views[name]
            result[name] = float_array(out, arrow_type, v.validity, v.bit_offset, v.null_count)
    return result


def _row_scalars_fused(
    batch: pa.RecordBatch, names: list[str], out_schema: pa.Schema, kernels: Backend, rule: RowRule
) -> dict[str, pa.Array] | None:
    """:func:`_row_scalars` in one fused kernel call (statistics and output per row tile,
    one read of the data) when the columns share one dtype and the backend has the
    kernel; None otherwise. The outputs share one 2-D allocation (huge pages, few faults)."""
    out_types = {out_schema.field(name).type for name in names}
    if not kernels.FUSED_ROW_NORM or len(out_types) != 1:
        return None
    views = [next(cols.column_views(batch.column(name))) for name in names]
    if len({v.values.dtype for v in views}) != 1:
        return None
    arrow_type = out_types.pop()
    out = np.empty((len(names), batch.num_rows), dtype=arrow_type.to_pandas_dtype())
    kernels.layer_norm_columns(
        [v.values for v in views], [v.validity for v in views],
        np.array([v.bit_offset for v in views], dtype=np.int64),
        np.array([v.has_validity for v in views], dtype=np.bool_),
        rule.mode == "rms", rule.eps, rule.ddof, rule.nan == "propagate", out)
    return {name: float_array(out[k], arrow_type, v.validity, v.bit_offset, v.null_count)
            for k, (name, v) in enumerate(zip(names, views))}


def _row_vector(column: pa.Array, out_type: pa.DataType, kernels: Backend, rule: RowRule
                ) -> pa.Array:
    """Normalize each vector of a FixedSizeList array within itself."""
    count, mean, m2 = vector_row_moments(column, kernels)
    center, scale = row_center_scale(rule.mode, count, mean, m2, rule.eps, rule.ddof)
    if rule.nan == "propagate":
        center[vector_nan_mask(column)] = np.nan
    view = next(cols.vector_views(column))
    value_type = out_type.value_type
    out = np.empty(view.values.shape, dtype=value_type.to_pandas_dtype())
    kernels.normalize_rows_matrix(view.values, center, scale, out)
    child = float_array(
        out.reshape(-1), value_type, view.value_validity, view.value_bit_offset,
        view.value_null_count,
    )
    mask = None if view.row_valid.all() else pa.array(~view.row_valid)
    return pa.FixedSizeListArray.from_arrays(child, type=out_type, mask=mask)
