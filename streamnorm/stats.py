"""Streaming statistics: :class:`FeatureStats` (per column) and :func:`row_stats` (per row).

The state of each column is (count, null_count, nan_count, shift, shifted_mean, m2, min, max):
``shift`` is the first finite value the column saw, ``shifted_mean`` the mean of ``x - shift``
and ``m2`` the sum of squared deviations from the mean (DESIGN §4). States merge exactly and
associatively, whatever produced them (batches, threads, files, workers, CPU or GPU).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from . import columns as cols
from . import io
from .errors import InputError, SchemaError
from .kernels import backend

NanPolicy = Literal["skip", "propagate"]
_NAN_POLICIES = ("skip", "propagate")
_FORMAT_VERSION = 1
_METADATA_KEY = b"streamnorm"

#: Fields of the saved state, in order, after the ``column`` name.
_STATE_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("count", pa.int64()),
    ("null_count", pa.int64()),
    ("nan_count", pa.int64()),
    ("mean", pa.float64()),
    ("m2", pa.float64()),
    ("min", pa.float64()),
    ("max", pa.float64()),
    ("shift", pa.float64()),
    ("shifted_mean", pa.float64()),
)


#: The arrays that hold a FeatureStats state, one entry per column.
_STATE_ARRAYS = ("_count", "_null_count", "_nan_count", "_shift", "_shifted_mean", "_m2", "_min",
                 "_max")


def _check_nan_policy(nan: str) -> str:
    if nan not in _NAN_POLICIES:
        raise ValueError(f"nan must be one of {_NAN_POLICIES}, got {nan!r}")
    return nan


class FeatureStats:
    """Per-column count, mean, variance, min and max over every row seen (BatchNorm-style).

    Parameters
    ----------
    columns : list of column names, or None for every scalar numeric column of the first
        batch (bool, decimal, string, temporal and list columns are skipped).
    nan : ``"skip"`` (default) skips NaN and counts it in ``nan_count``; ``"propagate"`` makes
        the mean, variance, min and max of a column with any NaN be NaN.
    target : ``"cpu"`` or ``"cuda"``; default ``$STREAMNORM_TARGET`` or ``"cpu"``.

    Examples
    --------
    >>> import pyarrow as pa, streamnorm as sn
    >>> fs = sn.FeatureStats()
    >>> _ = fs.update(pa.table({"a": [1.0, 2.0, None], "b": [10, 20, 30]}))
    >>> fs.columns, fs.count.tolist(), fs.null_count.tolist()
    (['a', 'b'], [2, 3], [1, 0])
    >>> fs.mean.tolist(), fs.var(ddof=1).tolist()
    ([1.5, 20.0], [0.5, 100.0])
    """

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        *,
        nan: NanPolicy = "skip",
        target: str | None = None,
    ) -> None:
        if isinstance(columns, str):
            columns = [columns]
        self._requested = list(columns) if columns is not None else None
        self.nan = _check_nan_policy(nan)
        self.target = target
        self._columns: list[str] | None = None
        self._types: dict[str, pa.DataType | None] = {}
        self._allocate(0)

    # ------------------------------------------------------------------ state
    def _allocate(self, k: int) -> None:
        self._count = np.zeros(k, dtype=np.int64)
        self._null_count = np.zeros(k, dtype=np.int64)
        self._nan_count = np.zeros(k, dtype=np.int64)
        self._shift = np.full(k, np.nan)
        self._shifted_mean = np.zeros(k)
        self._m2 = np.zeros(k)
        self._min = np.full(k, np.nan)
        self._max = np.full(k, np.nan)

    def _bind(self, schema: pa.Schema) -> None:
        """Choose and check the tracked columns from the first schema seen."""
        if self._requested is None:
            names = cols.numeric_column_names(schema)
        else:
            names = self._requested
            for name in names:
                if schema.get_field_index(name) < 0:
                    raise SchemaError(
                        f"column {name!r} is not in the data (its columns: "
                        f"{', '.join(schema.names) or 'none'}); fix columns=[...] / -c"
                    )
                cols.check_numeric(name, schema.field(name).type)
        self._columns = list(names)
        self._types = {name: schema.field(name).type for name in names}
        self._allocate(len(names))

    def _check_schema(self, schema: pa.Schema) -> None:
        assert self._columns is not None
        for name in self._columns:
            index = schema.get_field_index(name)
            if index < 0:
                raise SchemaError(
                    f"column {name!r} is missing from this batch (it has: "
                    f"{', '.join(schema.names)}); every batch must carry the tracked columns"
                )
            new_type = schema.field(index).type
            known = self._types.get(name)
            if known is not None and new_type != known:
                raise SchemaError(
                    f"column {name!r} changed type from {self._types[name]} to {new_type}; "
                    "cast the batches to one schema first"
                )

    # ------------------------------------------------------------------ update
    def update(self, data: io.Source) -> FeatureStats:
        """Add the rows of ``data`` (any source, see :mod:`streamnorm.io`); returns self."""
        return self._update_from(data, None)

    def _update_from(self, data: io.Source, batch_size: int | None) -> FeatureStats:
        schema, batches = io.schema_and_batches(data, self._requested, batch_size)
        if self._columns is None and schema is not None:
            self._bind(schema)  # so a source without rows still fixes the columns
        for batch in batches:
            self._update_batch(batch)
        return self

    def _update_batch(self, batch: pa.RecordBatch) -> None:
        if self._columns is None:
            self._bind(batch.schema)
        else:
            self._check_schema(batch.schema)
        kernels = backend(self.target)
        for j, name in enumerate(self._columns):  # type: ignore[arg-type]
            for view in cols.column_views(batch.column(name)):
                self._null_count[j] += view.null_count
                self._add_view(j, view, kernels)

    def _add_view(self, j: int, view: cols.ColumnView, kernels: Any) -> None:
        shift = self._shift[j]
        if math.isnan(shift):
            shift = kernels.first_finite(
                view.values, view.validity, view.bit_offset, view.has_validity
            )
            if math.isnan(shift):
                shift = 0.0  # no finite value here: only nulls, NaN or ±inf
        count, nan_count, shifted_mean, m2, lo, hi = kernels.column_moments(
            view.values, view.validity, view.bit_offset, view.has_validity, shift
        )
        self._nan_count[j] += nan_count
        self._merge_column(j, int(count), shift, shifted_mean, m2, lo, hi)

    def _merge_column(
        self, j: int, count: int, shift: float, shifted_mean: float, m2: float, lo: float, hi: float
    ) -> None:
        """Chan-merge one partial state (with its own shift) into column ``j``."""
        if count == 0:
            return
        n_a = int(self._count[j])
        if n_a == 0:
            self._count[j] = count
            self._shift[j] = shift
            self._shifted_mean[j] = shifted_mean
            self._m2[j] = m2
            self._min[j] = lo
            self._max[j] = hi
            return
        mean_b = shifted_mean + (shift - self._shift[j])  # b's mean in a's shift
        n = n_a + count
        delta = mean_b - self._shifted_mean[j]
        self._shifted_mean[j] += delta * (count / n)
        self._m2[j] += m2 + delta * delta * (n_a * count / n)
        self._count[j] = n
        self._min[j] = np.fmin(self._min[j], lo)
        self._max[j] = np.fmax(self._max[j], hi)

    # ------------------------------------------------------------------ merge
    def merge(self, other: FeatureStats) -> FeatureStats:
        """Merge ``other`` into this state, in place; returns self. Exact and associative."""
        if not isinstance(other, FeatureStats):
            raise TypeError(f"can only merge FeatureStats, not {type(other).__name__}")
        if other.nan != self.nan:
            raise ValueError(f"cannot merge nan={self.nan!r} with nan={other.nan!r} statistics")
        if other._columns is None:
            return self
        if self._columns is None:
            self._copy_state_from(other)
            return self
        if other._columns != self._columns:
            raise SchemaError(
                f"cannot merge statistics of columns {other._columns} into {self._columns}; "
                "fit both on the same columns"
            )
        for j in range(len(self._columns)):
            self._null_count[j] += other._null_count[j]
            self._nan_count[j] += other._nan_count[j]
            self._merge_column(
                j,
                int(other._count[j]),
                float(other._shift[j]),
                float(other._shifted_mean[j]),
                float(other._m2[j]),
                float(other._min[j]),
                float(other._max[j]),
            )
        return self

    def _copy_state_from(self, other: FeatureStats) -> None:
        self._columns = list(other._columns or [])
        self._types = dict(other._types)
        for attr in _STATE_ARRAYS:
            setattr(self, attr, getattr(other, attr).copy())

    def copy(self) -> FeatureStats:
        """An independent copy of this state."""
        twin = FeatureStats(self._requested, nan=self.nan, target=self.target)  # type: ignore[arg-type]
        if self._columns is not None:
            twin._copy_state_from(self)
        return twin

    def __add__(self, other: FeatureStats) -> FeatureStats:
        return self.copy().merge(other)

    # ------------------------------------------------------------------ results
    @property
    def columns(self) -> list[str]:
        """Names of the tracked columns (empty before the first update)."""
        return list(self._columns or [])

    @property
    def count(self) -> np.ndarray:
        """Valid values per column (nulls and NaN excluded), int64, shape (n_columns,)."""
        return self._count.copy()

    @property
    def null_count(self) -> np.ndarray:
        """Arrow nulls per column, int64, shape (n_columns,)."""
        return self._null_count.copy()

    @property
    def nan_count(self) -> np.ndarray:
        """NaN values per column, int64, shape (n_columns,)."""
        return self._nan_count.copy()

    def _poisoned(self) -> np.ndarray:
        """Columns whose results are NaN: no value, or NaN under ``nan="propagate"``."""
        empty = self._count == 0
        if self.nan == "propagate":
            return empty | (self._nan_count > 0)
        return empty

    @property
    def mean(self) -> np.ndarray:
        """Mean per column, float64 (NaN for a column with no valid value)."""
        out = self._shift + self._shifted_mean
        out[self._poisoned()] = np.nan
        return out

    @property
    def min(self) -> np.ndarray:
        """Minimum per column, float64 (NaN for a column with no valid value)."""
        out = self._min.copy()
        out[self._poisoned()] = np.nan
        return out

    @property
    def max(self) -> np.ndarray:
        """Maximum per column, float64 (NaN for a column with no valid value)."""
        out = self._max.copy()
        out[self._poisoned()] = np.nan
        return out

    @property
    def m2(self) -> np.ndarray:
        """Sum of squared deviations from the mean per column, float64."""
        out = self._m2.copy()
        out[self._poisoned()] = np.nan
        return out

    def var(self, ddof: int = 0) -> np.ndarray:
        """Variance per column, ``m2 / (count - ddof)``; NaN where ``count <= ddof``."""
        denominator = (self._count - ddof).astype(np.float64)
        out = np.full(len(self._count), np.nan)
        ok = denominator > 0
        out[ok] = self._m2[ok] / denominator[ok]
        out[self._poisoned()] = np.nan
        return out

    def std(self, ddof: int = 0) -> np.ndarray:
        """Standard deviation per column, ``sqrt(var(ddof))``."""
        return np.sqrt(self.var(ddof))

    # ------------------------------------------------------------------ persistence
    def to_arrow(self) -> pa.Table:
        """The state as a table, one row per column (see ``_STATE_FIELDS``); reloads exactly."""
        values: dict[str, Any] = {"column": pa.array(self.columns, pa.string())}
        raw = {
            "count": self._count, "null_count": self._null_count, "nan_count": self._nan_count,
            "mean": self.mean, "m2": self._m2, "min": self._min, "max": self._max,
            "shift": self._shift, "shifted_mean": self._shifted_mean,
        }
        for name, arrow_type in _STATE_FIELDS:
            values[name] = pa.array(raw[name], arrow_type)
        types = [self._types.get(c) for c in self.columns]
        values["type"] = pa.array([str(t) if t is not None else None for t in types], pa.string())
        meta = {"version": _FORMAT_VERSION, "kind": "FeatureStats", "nan": self.nan}
        return pa.table(values).replace_schema_metadata({_METADATA_KEY: json.dumps(meta)})

    @classmethod
    def from_arrow(cls, table: pa.Table) -> FeatureStats:
        """Rebuild a state saved by :meth:`to_arrow`."""
        meta = _read_metadata(table.schema.metadata)
        missing = [n for n, _ in _STATE_FIELDS if n not in table.column_names]
        if "column" not in table.column_names or missing:
            raise InputError(
                f"not a streamnorm statistics table (missing {missing or ['column']}); "
                "create it with FeatureStats.save or `streamnorm stats -o`"
            )
        names = table.column("column").to_pylist()
        stats = cls(names, nan=meta.get("nan", "skip"))
        stats._columns = names
        type_names = table.column("type").to_pylist() if "type" in table.column_names else None
        stats._types = {
            name: _parse_type(type_names[i]) if type_names else None for i, name in enumerate(names)
        }
        stats._allocate(len(names))
        for attr in ("count", "null_count", "nan_count", "shift", "shifted_mean", "m2", "min",
                     "max"):
            column = table.column(attr).to_numpy(zero_copy_only=False)
            getattr(stats, "_" + attr)[:] = column
        return stats

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the state; floats as exact decimal strings for non-finite ones."""
        table = self.to_arrow()
        rows = []
        for row in table.to_pylist():
            rows.append({k: _json_float(v) if isinstance(v, float) else v for k, v in row.items()})
        meta = _read_metadata(table.schema.metadata)
        return {**meta, "columns": rows}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> FeatureStats:
        """Rebuild a state from :meth:`to_dict` output."""
        if state.get("kind") != "FeatureStats" or "columns" not in state:
            raise InputError(
                "not a streamnorm statistics file (no FeatureStats state in it); create it with "
                "FeatureStats.save or `streamnorm stats -o`"
            )
        rows = [
            {k: _unjson_float(v) if k in _FLOAT_FIELDS else v for k, v in row.items()}
            for row in state["columns"]
        ]
        schema = pa.schema(
            [("column", pa.string()), *_STATE_FIELDS, ("type", pa.string())],
            metadata={_METADATA_KEY: json.dumps({k: v for k, v in state.items() if k != "columns"})},
        )
        return cls.from_arrow(pa.Table.from_pylist(rows, schema=schema))

    def save(self, path: str | os.PathLike) -> None:
        """Write the state atomically: ``.json``, or Arrow IPC / Parquet by suffix."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            text = json.dumps(self.to_dict(), indent=1)
            with io.atomic_path(path) as tmp:
                tmp.write_text(text + "\n")
        else:
            io.write_table(self.to_arrow(), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStats:
        """Read a state written by :meth:`save` (``.json``, Arrow IPC or Parquet)."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            if not path.exists():
                raise InputError(f"{path}: no such statistics file; check the path")
            try:
                state = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"{path}: not valid JSON ({exc}); re-create the file") from None
            return cls.from_dict(state)
        return cls.from_arrow(io.read_table(path))

    # ------------------------------------------------------------------ display
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureStats):
            return NotImplemented
        if (self.columns, self.nan) != (other.columns, other.nan):
            return False
        return all(
            np.array_equal(getattr(self, attr), getattr(other, attr), equal_nan=True)
            for attr in _STATE_ARRAYS
        )

    def __repr__(self) -> str:
        return f"FeatureStats(columns={self.columns}, nan={self.nan!r})"

    def summary(self) -> pa.Table:
        """A readable table: column, count, null_count, nan_count, mean, std, min, max."""
        return pa.table(
            {
                "column": self.columns,
                "count": self.count,
                "null_count": self.null_count,
                "nan_count": self.nan_count,
                "mean": self.mean,
                "std": self.std(),
                "min": self.min,
                "max": self.max,
            }
        )


_FLOAT_FIELDS = {name for name, t in _STATE_FIELDS if pa.types.is_floating(t)}


def _json_float(value: float) -> float | str:
    """Finite floats stay numbers (Python's repr round-trips exactly); others become strings."""
    return value if math.isfinite(value) else repr(value)


def _unjson_float(value: Any) -> float:
    return float(value) if value is not None else math.nan


def _read_metadata(metadata: dict[bytes, bytes] | None) -> dict[str, Any]:
    if not metadata or _METADATA_KEY not in metadata:
        return {"version": _FORMAT_VERSION, "kind": "FeatureStats", "nan": "skip"}
    meta = json.loads(metadata[_METADATA_KEY])
    if meta.get("version", 0) > _FORMAT_VERSION:
        raise InputError(
            f"statistics saved by a newer streamnorm (format {meta['version']}); upgrade streamnorm"
        )
    return meta


def _parse_type(name: str | None) -> pa.DataType | None:
    """Arrow type from its saved string form; None (type not checked) when it has no alias."""
    try:
        return pa.type_for_alias(name) if name else None
    except ValueError:
        return None


def feature_stats(
    source: io.Source,
    columns: Sequence[str] | None = None,
    batch_size: int | None = None,
    *,
    nan: NanPolicy = "skip",
    target: str | None = None,
) -> FeatureStats:
    """Per-column statistics of a whole source (a path or any in-memory source), streamed.

    Files are read one IPC batch or Parquet row group at a time, so memory is bounded by the
    batch, not the file.
    """
    stats = FeatureStats(columns, nan=nan, target=target)
    return stats._update_from(source, batch_size)


# --------------------------------------------------------------------------- per-row statistics


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
            if schema.get_field_index(name) < 0:
                raise SchemaError(
                    f"column {name!r} is not in the data (its columns: "
                    f"{', '.join(schema.names)}); fix columns=[...] / -c"
                )
            field_type = schema.field(name).type
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


def _group_by_dtype(views: list[cols.ColumnView]) -> dict[np.dtype, list[cols.ColumnView]]:
    groups: dict[np.dtype, list[cols.ColumnView]] = {}
    for view in views:
        groups.setdefault(view.values.dtype, []).append(view)
    return groups


def scalar_row_moments(
    batch: pa.RecordBatch, names: Sequence[str], kernels: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row (count int64, mean, m2) across scalar columns ``names`` of one batch.

    Columns of one dtype go through one kernel call; dtype groups are Chan-merged per row.
    Rows with no valid value get count 0 and NaN mean/m2.
    """
    from numba.typed import List

    views = [_single_view(batch.column(name)) for name in names]
    count = mean = m2 = None
    for group in _group_by_dtype(views).values():
        g_count, g_mean, g_m2 = kernels.row_moments_columns(
            List([v.values for v in group]),
            List([v.validity for v in group]),
            np.array([v.bit_offset for v in group], dtype=np.int64),
            np.array([v.has_validity for v in group], dtype=np.bool_),
        )
        if count is None:
            count, mean, m2 = g_count, g_mean, g_m2
        else:
            count, mean, m2 = _chan_rows(count, mean, m2, g_count, g_mean, g_m2)
    return count, mean, m2  # type: ignore[return-value]


def _chan_rows(n_a, mean_a, m2_a, n_b, mean_b, m2_b):  # type: ignore[no-untyped-def]
    """Vectorised Chan merge of per-row states; NaN mean/m2 where the merged count is 0."""
    n = n_a + n_b
    with np.errstate(invalid="ignore", divide="ignore"):
        fa = np.where(n_a > 0, 1.0, 0.0)
        fb = np.where(n_b > 0, 1.0, 0.0)
        ma = np.where(n_a > 0, mean_a, 0.0)
        mb = np.where(n_b > 0, mean_b, 0.0)
        delta = mb - ma
        mean = np.where(n_a == 0, mb, np.where(n_b == 0, ma, ma + delta * (n_b / n)))
        m2 = (
            np.where(n_a > 0, m2_a, 0.0) * fa
            + np.where(n_b > 0, m2_b, 0.0) * fb
            + np.where(n > 0, delta * delta * (n_a * n_b / n), 0.0)
        )
        mean = np.where(n > 0, mean, np.nan)
        m2 = np.where(n > 0, m2, np.nan)
    return n, mean, m2


def _single_view(column: pa.Array | pa.ChunkedArray) -> cols.ColumnView:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    views = list(cols.column_views(column))
    if views:
        return views[0]
    empty = cols._primitive_view(column)
    return empty


def vector_row_moments(
    column: pa.Array | pa.ChunkedArray, kernels: Any
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
    batch: pa.RecordBatch, scalars: list[str], vector: str | None, kernels: Any
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
    data: io.Source,
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
    schema, batches = io.schema_and_batches(data)
    out: list[pa.RecordBatch] = []
    chosen: tuple[list[str], str | None] | None = None
    for batch in batches:
        if chosen is None:
            chosen = choose_row_columns(batch.schema, columns)
        out.append(_row_stats_batch(batch, chosen[0], chosen[1], kernels))
    result_schema = pa.schema(
        [("count", pa.int64()), ("mean", pa.float64()), ("var", pa.float64())]
    )
    if schema is not None and chosen is None:
        choose_row_columns(schema, columns)  # validate even when there are no batches
    return pa.Table.from_batches(out, schema=result_schema)
