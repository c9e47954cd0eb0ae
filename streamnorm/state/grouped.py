"""Grouped (per-key) statistics: :class:`GroupedFeatureStats`, made by ``FeatureStats(by=...)``.

One state per key and column, with the same fields and merge rules as :class:`FeatureStats`
(a shift per key and column, Chan / Pébay merges). The state arrays have shape
``(n_groups, n_columns)``; groups are numbered in the order their key was first seen.

Per batch, the key column(s) are dictionary-encoded into batch-local group ids (several keys:
the rows of their codes, made unique), each local group is mapped to its global group by its
key value, and one grouped two-pass kernel per column accumulates every group's moments with
that group's own shift, so a group with mean 1e9 and spread 1 is as accurate as ungrouped
statistics. A null key is a key of its own (like polars / pandas ``dropna=False``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from .. import columns as cols
from ..errors import InputError, StatsFileError
from ..kernels import backend
from . import persist, statsfile
from .features import FeatureStats, NanPolicy
from .ingest import valid_and_infinite, weights_array
from .merge import Moments, check_moments


class _NaNKey:
    """Stands for a NaN key value, so that every NaN key falls in one group."""

    def __repr__(self) -> str:
        return "nan"


_NAN_KEY = _NaNKey()


def _freeze(value: Any) -> Hashable:
    """A hashable form of a key value: NaN → one sentinel, lists/dicts → tuples."""
    if isinstance(value, float) and value != value:
        return _NAN_KEY
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _freeze(v)) for k, v in value.items())
    return value


def _key_codes(column: pa.Array) -> np.ndarray:
    """Integer codes of one key column: equal values get equal codes (nulls one code)."""
    import pyarrow.compute as pc  # loaded on first use (about 0.1 s and 6 MB)

    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    try:
        encoded = pc.dictionary_encode(column, null_encoding="encode")
        return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
        seen: dict[Hashable, int] = {}
        return np.array(
            [seen.setdefault(_freeze(v), len(seen)) for v in column.to_pylist()], dtype=np.int64
        )


def key_type(arrow_type: pa.DataType) -> pa.DataType:
    """The type keys are kept in: dictionaries (pandas ``category``, polars ``Categorical``)
    by their values, ``large_string`` / ``string_view`` (polars' strings) as ``string``, and
    ``large_binary`` / ``binary_view`` as ``binary``, so equal keys match whatever the writer
    chose, and string keys save as JSON."""
    if pa.types.is_dictionary(arrow_type):
        return key_type(arrow_type.value_type)
    if pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return pa.string()
    if pa.types.is_large_binary(arrow_type) or pa.types.is_binary_view(arrow_type):
        return pa.binary()
    return arrow_type


def _as_key(column: pa.Array) -> pa.Array:
    """``column`` in its :func:`key_type`. A dictionary's values are cast before they are
    taken (Arrow has no take for ``string_view``, the values of polars' Categorical)."""
    if pa.types.is_dictionary(column.type):
        return _as_key(column.dictionary).take(column.indices)
    wanted = key_type(column.type)
    return column if column.type == wanted else column.cast(wanted)


def key_batch(batch: pa.RecordBatch | pa.Table, keys: Sequence[str]) -> pa.RecordBatch:
    """The key columns of ``batch``, each in its :func:`key_type`."""
    arrays = []
    for name in keys:
        column = batch.column(name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        arrays.append(_as_key(column))
    return pa.RecordBatch.from_arrays(arrays, names=list(keys))


def _key_tuples(batch: pa.RecordBatch | pa.Table, keys: Sequence[str]) -> list[tuple[Any, ...]]:
    """The rows of the key columns of ``batch`` as tuples of Python values."""
    return list(zip(*(batch.column(name).to_pylist() for name in keys)))


def _first_seen_groups(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`batch_groups` of one key column without a sort, when its codes are numbered in
    order of first appearance (as ``dictionary_encode`` numbers them): then ``np.unique``'s
    inverse is the codes themselves, and a code's first row is where the running maximum
    first reaches it. None when the codes are not so numbered."""
    n = len(codes)
    if n == 0:
        return None
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.greater(codes[1:], np.maximum.accumulate(codes[:-1]), out=new[1:])
    first = np.flatnonzero(new)
    if not np.array_equal(codes[first], np.arange(len(first))):
        return None
    return codes, first


def batch_groups(batch: pa.RecordBatch, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Batch-local group ids of each row (int64, shape (n,)) and each group's first row."""
    codes = [_key_codes(batch.column(k)) for k in keys]
    if len(codes) == 1:
        found = _first_seen_groups(codes[0])
        if found is not None:
            return found
    stacked = codes[0] if len(codes) == 1 else np.column_stack(codes)
    _, first, inverse = np.unique(
        stacked, axis=0 if stacked.ndim == 2 else None, return_index=True, return_inverse=True
    )
    return np.ascontiguousarray(inverse.reshape(-1), dtype=np.int64), first


class GroupedFeatureStats(FeatureStats, option="by"):
    """Per-key, per-column statistics: ``FeatureStats(by="key")`` or ``by=["k1", "k2"]``.

    Properties (``count``, ``mean``, ``var()``, ``skew()``, …) have shape
    ``(n_groups, n_columns)``, rows in the order of :attr:`keys`. ``to_arrow()`` gives the key
    column(s) under their own names, then ``column, count, null_count, nan_count, mean, m2,
    min, max, shift, shifted_mean, type`` — one row per key and column. ``merge`` unions the
    keys and merges the states of equal keys. Keys may be of any Arrow type; a null key is a
    group of its own. Weights (``update(data, weights="w")``) and ``moments=4`` work as in
    :class:`FeatureStats`.

    Examples
    --------
    >>> import pyarrow as pa, streamnorm as sn
    >>> fs = sn.FeatureStats(by="k")
    >>> _ = fs.update(pa.table({"k": ["a", "b", "a"], "x": [1.0, 10.0, 3.0]}))
    >>> _ = fs.update(pa.table({"k": ["b", "c"], "x": [20.0, 5.0]}))
    >>> fs.keys.column("k").to_pylist(), fs.columns
    (['a', 'b', 'c'], ['x'])
    >>> fs.mean[:, 0].tolist(), fs.var()[:, 0].tolist()
    ([2.0, 15.0, 5.0], [1.0, 25.0, 0.0])
    >>> fs.to_arrow().select(["k", "column", "count", "mean"]).to_pylist()[1]
    {'k': 'b', 'column': 'x', 'count': 2, 'mean': 15.0}
    """

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        *,
        nan: NanPolicy = "skip",
        target: str | None = None,
        moments: int = 2,
        by: str | Sequence[str] | None = None,
        inf: str = "keep",
        quantiles: bool = False,
    ) -> None:
        if quantiles:
            raise ValueError("quantiles=True is not supported with by= (per-key statistics) "
                             "yet; drop by= or quantiles=True")
        keys = [by] if isinstance(by, str) else list(by or [])
        if not keys:
            raise ValueError("by= needs at least one key column name")
        if inf != "keep":
            raise ValueError(f"inf={inf!r} is not supported with by= (per-key statistics keep "
                             "±inf as values); remove the infinities or drop by=")
        self.by = keys
        self._keys: list[tuple[Any, ...]] = []
        self._index: dict[tuple[Hashable, ...], int] = {}
        self._key_types: list[pa.DataType] | None = None
        super().__init__(columns, nan=nan, target=target, moments=moments)
        self._exclude = tuple(keys)

    # ------------------------------------------------------------------ state
    def _shape(self, k: int) -> tuple[int, ...]:
        return (len(self._keys), k)

    @property
    def group_count(self) -> int:
        """The number of keys seen: the rows of every property."""
        return len(self._keys)

    def _groups_of(self, keys: Sequence[tuple[Any, ...]]) -> np.ndarray:
        """Global groups of ``keys`` (int64 array); new keys get new empty groups, added in
        one growth of the state arrays (so a batch with many new keys stays linear)."""
        start = len(self._keys)
        plain = self._plain_keys()
        if plain:  # the common case in one pass of C loops: distinct keys, none known yet
            fresh = dict(zip(keys, range(start, start + len(keys))))
            if len(fresh) == len(keys) and self._index.keys().isdisjoint(fresh):
                self._index.update(fresh)
                self._keys.extend(keys)
                self._state.add_rows(len(keys))
                return np.arange(start, start + len(keys), dtype=np.int64)
        out = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):
            frozen = key if plain else tuple(_freeze(v) for v in key)
            found = self._index.get(frozen)
            if found is None:
                found = self._index[frozen] = len(self._keys)
                self._keys.append(key)
            out[i] = found
        self._state.add_rows(len(self._keys) - start)
        return out

    def _plain_keys(self) -> bool:
        """Whether every key column's Python values are their own hashable form (no NaN,
        lists or dicts for :func:`_freeze` to fold), so 200k new keys need no freezing."""
        return self._key_types is not None and all(
            pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_binary(t)
            or pa.types.is_boolean(t) or pa.types.is_null(t) or pa.types.is_temporal(t)
            for t in self._key_types
        )

    def _lookup(self, unique: pa.Table | pa.RecordBatch) -> np.ndarray:
        """Global groups of a batch's distinct keys (a batch of the key columns); new keys
        get new groups."""
        glob = self._find(unique)
        new = np.flatnonzero(glob < 0)
        if len(new):
            glob[new] = self._groups_of(_key_tuples(unique.take(pa.array(new)), self.by))
        return glob

    def _find(self, unique: pa.Table | pa.RecordBatch) -> np.ndarray:
        """Groups of distinct keys, -1 where unknown (int64 array).

        One key column: a vectorised ``index_in`` against the known keys. Several key columns
        (or a type Arrow cannot hash): a dict lookup per distinct key.
        """
        if not self._keys:
            return np.full(unique.num_rows, -1, dtype=np.int64)
        if len(self.by) == 1:
            column = unique.column(0)
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            if pa.types.is_dictionary(column.type):
                column = column.dictionary_decode()
            import pyarrow.compute as pc

            try:
                found = pc.index_in(column, value_set=self._known_keys(), skip_nulls=False)
                return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
            except (pa.ArrowNotImplementedError, pa.ArrowTypeError, pa.ArrowInvalid):
                pass
        return np.array([
            self._index.get(tuple(_freeze(r[k]) for k in self.by), -1) for r in unique.to_pylist()
        ], dtype=np.int64)

    def key_rows(self, batch: pa.RecordBatch | pa.Table) -> np.ndarray:
        """The row of the statistics (of :attr:`keys`) holding each row's key of ``batch``
        (which must carry the key columns); -1 where the key was never seen. int64, shape
        (batch.num_rows,)."""
        if batch.num_rows == 0:
            return np.zeros(0, dtype=np.int64)
        keys = key_batch(batch, self.by)
        local, first = batch_groups(keys, self.by)
        return self._find(keys.take(pa.array(first)))[local]

    def _known_keys(self) -> pa.Array:
        """The single key column's known values as an Arrow array, in group order (cached,
        extended with the keys added since the last call)."""
        cached = getattr(self, "_key_array", None)
        have = 0 if cached is None else len(cached)
        if have < len(self._keys):
            first_type = (self._key_types or [None])[0]
            more = pa.array([key[0] for key in self._keys[have:]], type=first_type)
            cached = more if cached is None else pa.concat_arrays([cached, more])
            self._key_array = cached
        return cached  # type: ignore[return-value]

    def _bind(self, schema: pa.Schema) -> None:
        self._check_keys(schema)
        if self._requested is not None:
            clash = [k for k in self.by if k in self._requested]
            if clash:
                raise ValueError(f"key column(s) {clash} cannot also be features in columns=")
        self._key_types = [key_type(schema.field(k).type) for k in self.by]
        super()._bind(schema)

    def _check_keys(self, schema: pa.Schema) -> None:
        for key in self.by:
            cols.field_type(schema, key, role="key column", fix="fix by=...")

    def _check_schema(self, schema: pa.Schema) -> None:
        self._check_keys(schema)
        super()._check_schema(schema)

    # ------------------------------------------------------------------ update
    def _update_batch(self, batch: pa.RecordBatch, weights: str | None = None) -> None:
        if self._columns is None:
            self._bind(batch.schema)
        else:
            self._check_schema(batch.schema)
        if batch.num_rows == 0:
            return
        keys = key_batch(batch, self.by)
        local, first = batch_groups(keys, self.by)
        glob = self._lookup(keys.take(pa.array(first)))
        if len(np.unique(glob)) < len(glob):  # e.g. 0.0 and -0.0: one key, two codes
            glob, remap = np.unique(glob, return_inverse=True)
            local = np.ascontiguousarray(remap.reshape(-1)[local], dtype=np.int64)
        w = weights_array(batch, weights) if weights is not None else np.zeros(0)
        state = self._state
        kernels = backend("cpu")
        if weights is not None:
            state.set_weighted()
        for j, name in enumerate(self._columns):  # type: ignore[arg-type]
            column = batch.column(name)
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            for view in cols.column_views(column):
                shifts = state.shift[glob, j]  # a copy: the kernel fills unset (NaN) shifts
                wsum, nan_c, null_c, mean, m2, m3, m4, lo, hi = kernels.grouped_moments(
                    view.values, view.validity, view.bit_offset, view.has_validity, local,
                    shifts, w, weights is not None, self.moments == 4,
                )
                state.null_count[glob, j] += null_c
                state.nan_count[glob, j] += nan_c
                if not np.all(np.isfinite(mean)):  # only a piece holding ±inf pays for this
                    infinite = valid_and_infinite(view)[1]
                    state.inf_count[glob, j] += np.bincount(
                        local[: len(infinite)][infinite], minlength=len(glob))
                state.merge_at((glob, j), wsum, shifts, mean, m2, lo, hi, m3=m3, m4=m4)

    # ------------------------------------------------------------------ merge
    def _check_mergeable(self, other: object) -> None:
        if not isinstance(other, GroupedFeatureStats):
            raise TypeError(f"can only merge grouped statistics, not {type(other).__name__}")
        if (other.nan, other.moments, other.by) != (self.nan, self.moments, self.by):
            raise ValueError(
                f"cannot merge statistics with nan={other.nan!r}, moments={other.moments}, "
                f"by={other.by} into nan={self.nan!r}, moments={self.moments}, by={self.by}"
            )

    def merge(self, other: FeatureStats) -> GroupedFeatureStats:
        """Merge ``other`` into this state, in place, key by key (keys union); returns self."""
        if not self._start_merge(other):
            return self
        assert isinstance(other, GroupedFeatureStats)
        glob = self._groups_of(other._keys)
        self._state.merge(other._state, (glob, slice(None)))
        return self

    def _rows_of(self, other: FeatureStats) -> Any:
        """The rows of ``other``'s keys here; a ``ValueError`` for a key this state lacks."""
        assert isinstance(other, GroupedFeatureStats)
        plain = self._plain_keys()
        rows = []
        for key in other._keys:
            found = self._index.get(key if plain else tuple(_freeze(v) for v in key))
            if found is None:
                raise ValueError(f"cannot subtract: key {key} is not in these statistics; "
                                 "subtract only a part merged into them")
            rows.append(found)
        return (np.array(rows, dtype=np.int64)[:, None], np.arange(len(self.columns)))

    def _copy_state_from(self, other: FeatureStats) -> None:
        assert isinstance(other, GroupedFeatureStats)
        self._keys = list(other._keys)
        self._index = dict(other._index)
        self._key_array = None
        self._key_types = list(other._key_types) if other._key_types is not None else None
        super()._copy_state_from(other)

    def copy(self) -> GroupedFeatureStats:
        """An independent copy of this state."""
        twin = GroupedFeatureStats(
            self._requested, nan=self.nan, target=self.target, moments=self.moments, by=self.by
        )
        if self._columns is not None:
            twin._copy_state_from(self)
        return twin

    # ------------------------------------------------------------------ results
    @property
    def keys(self) -> pa.Table:
        """The key values, one row per group, in the order of the rows of every property."""
        types = self._key_types or [None] * len(self.by)
        return pa.table({
            name: pa.array([key[i] for key in self._keys], type=types[i])
            for i, name in enumerate(self.by)
        })

    def group_index(self, key: Any) -> int:
        """The row of ``key`` (a value, or a tuple for several key columns); KeyError if unseen."""
        key = key if isinstance(key, tuple) else (key,)
        return self._index[tuple(_freeze(v) for v in key)]

    def summary(self, ddof: int = 0) -> pa.Table:
        """A readable table: key column(s), column, count, null_count, nan_count, inf_count,
        mean, std (with ``ddof``), min, max."""
        flat = {
            "count": self.count, "null_count": self.null_count, "nan_count": self.nan_count,
            "inf_count": self.inf_count, "mean": self.mean, "std": self.std(ddof),
            "min": self.min, "max": self.max,
        }
        return self._with_keys({name: np.ravel(v) for name, v in flat.items()})

    # ------------------------------------------------------------------ persistence
    def _with_keys(self, values: dict[str, Any]) -> pa.Table:
        """Key column(s) repeated per column, ``column``, then ``values`` (flat, row-major)."""
        k = len(self.columns)
        keys = self.keys
        repeat = pa.array(np.repeat(np.arange(len(self._keys)), k))
        out: dict[str, Any] = {name: keys.column(name).take(repeat) for name in self.by}
        clash = [name for name in self.by if name in values or name in ("column", "type")]
        if clash:
            raise ValueError(f"key column name(s) {clash} clash with statistics field names")
        out["column"] = pa.array(self.columns * len(self._keys), pa.string())
        out.update(values)
        return pa.table(out)

    def to_arrow(self) -> pa.Table:
        """Key column(s), then column, count, …, mean, m2, …: one row per key and column."""
        values = persist.state_columns(self._state, self.mean)
        types = [self._types.get(c) for c in self.columns] * len(self._keys)
        values["type"] = persist.type_column(types)
        meta = {**self._metadata(), "by": self.by, "features": self.columns,
                "key_types": [str(t) for t in (self._key_types or [])]}
        return persist.with_metadata(self._with_keys(values), meta)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> GroupedFeatureStats:
        """Rebuild a grouped state saved by :meth:`to_arrow` (checked like every loaded state,
        see :mod:`streamnorm.state.statsfile`)."""
        meta = persist.read_metadata(table.schema.metadata)
        by = meta.get("by")
        if not by:
            raise StatsFileError(
                "not a streamnorm grouped statistics table (no 'by' in its settings); create it "
                "with FeatureStats(by=...).save"
            )
        moments = check_moments(meta.get("moments", 2))
        weighted = bool(meta.get("weighted", False))
        table = statsfile.check_state_table(table, persist.state_fields(moments, weighted),
                                            keys=by)
        all_names = table.column("column").to_pylist()
        names = meta.get("features")
        if names is None:
            names = list(dict.fromkeys(all_names))
        k = len(names)
        if (k == 0 and all_names) or (k and (table.num_rows % k
                                            or all_names != names * (table.num_rows // k))):
            raise StatsFileError("grouped statistics table rows are not key-major (each key's "
                                 f"rows in the order of 'features'); {statsfile.FIX}")
        stats = cls(names, nan=meta.get("nan", "skip"), moments=moments, by=by)
        stats._columns = names
        keys = key_batch(table, by)
        stats._key_types = [f.type for f in keys.schema]
        stats._types = stats._loaded_types(table, names)
        firsts = keys.take(pa.array(range(0, table.num_rows, max(k, 1)), pa.int64()))
        if k and table.num_rows:
            blocks = batch_groups(keys, by)[0].reshape(-1, k)
            if (blocks != blocks[:, :1]).any():
                raise StatsFileError("grouped statistics table: a key changes within the rows of "
                                     f"one group; {statsfile.FIX}")
        stats._state = Moments((0, k), moments, weighted)
        groups = stats._groups_of(_key_tuples(firsts, by))
        if len(stats._keys) < len(groups):
            twice = stats._keys[int(np.flatnonzero(np.bincount(groups) > 1)[0])]
            raise StatsFileError(f"grouped statistics table: key {twice!r} appears twice; "
                                 f"{statsfile.FIX}")
        persist.load_arrays(stats._state, table, (len(groups), k))
        return stats

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (keys must be JSON-native: ints, floats, strings, bools)."""
        for name, arrow_type in zip(self.by, self._key_types or []):
            native = (pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)
                      or pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
                      or pa.types.is_boolean(arrow_type) or pa.types.is_null(arrow_type))
            if not native:
                raise InputError(
                    f"key column {name!r} has type {arrow_type}, which JSON cannot keep: save "
                    "grouped statistics as .arrow or .parquet"
                )
        return super().to_dict()

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> GroupedFeatureStats:
        """Rebuild a grouped state from :meth:`to_dict` output."""
        meta = persist.dict_meta(state)
        if not meta.get("by"):
            raise StatsFileError("not grouped statistics (no 'by' in the file); load it with "
                                 "FeatureStats.load")
        saved = meta.get("key_types") or [None] * len(meta["by"])
        key_types = [persist.parse_type(t) or pa.null() for t in saved]  # null: inferred later
        schema = pa.schema([*zip(meta["by"], key_types), *persist.rows_schema(meta)])
        return cls.from_arrow(persist.dict_to_table(state, meta, schema, keys=meta["by"]))

    # ------------------------------------------------------------------ display
    def __eq__(self, other: object) -> bool:
        """Equal states key by key, whatever the order the keys were first seen in."""
        if not isinstance(other, GroupedFeatureStats):
            return NotImplemented
        if (self.columns, self.nan, self.moments, self.weighted, self.by) != (
            other.columns, other.nan, other.moments, other.weighted, other.by
        ):
            return False
        if set(self._index) != set(other._index):
            return False
        return self._state.equals(other._state, [other._index[k] for k in self._index])

    def __repr__(self) -> str:
        return (f"FeatureStats(columns={self.columns}, by={self.by}, groups={len(self._keys)}, "
                f"nan={self.nan!r})")
