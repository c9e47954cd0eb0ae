"""Per-column mergeable quantile sketches: the state behind ``FeatureStats(quantiles=True)``.

Each column keeps a KLL sketch (:mod:`streamnorm.kernels.cpu_sketch`): at most
``CAPACITY`` float64 items (27.6 KB) plus a few counters, whatever the row count. A batch
enters a column's sketch in blocks of its valid values (nulls and NaN skipped, as the
statistics skip them; ±inf are values unless ``inf="skip"``, as in the statistics): a young
sketch takes a block as one sorted run, a grown one as sorted rows of 64 values each halved
j times by a strided pick, the survivors then sorted as one run (:func:`_add_block`), and
from j = 2 first halves it in groups of 8 by a SIMD sorting network (:func:`_add_halved`); states
merge exactly in count and approximately in rank. The promise, tested against
``numpy.quantile``: the value returned for ``q`` has a true rank within 0.5% of ``q`` (of the
count) for any batching and any merge order; while a column has seen no more than 1024 values
nothing is compacted and the answers equal ``numpy.quantile``'s (linear method) exactly.

Saved with the rest of the state as five fields per column (see :data:`SAVED_FIELDS`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

from .. import columns as cols
from ..errors import StatsFileError
from .statsfile import FIX

#: Values per sorted row: once a sketch is past its youth a batch enters as rows of this
#: many values, all sorted by one numpy call (SIMD sorting networks: about half the cost per
#: value of sorting runs of 16,384), each halved j times by a strided pick; only the
#: survivors (1 / 2**j of the values) are then sorted together. Most of a long sorted run's
#: order would be thrown away by its halvings anyway.
ROW_VALUES = 64
#: Values a sorted run stands for: a young sketch takes a block as sorted runs of this many
#: values, a grown one its rows' survivors as runs standing for as many.
RUN_VALUES = 16384
#: Values taken at a time (a multiple of ROW_VALUES): bounds the sorted copy at 2 MB.
BLOCK_VALUES = 262144
#: Row halvings (``j``) from which a block is first halved in groups of 8 by a sorting
#: network (:func:`_add_halved`): that costs about as much accuracy as the rows' own
#: deepest halving, and halves the values sorted as rows.
HALVED_MIN_LEVEL = 2
#: Values in a batch (all its sketched columns) below which one thread takes every column.
THREADED_MIN_VALUES = 65536

#: Saved fields per column: the count the sketch stands for, its exact min and max, the size
#: of each level (level ``h`` items weigh ``2**h``) and the items, level 0 first.
SAVED_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("quantile_n", pa.int64()),
    ("quantile_min", pa.float64()),
    ("quantile_max", pa.float64()),
    ("quantile_levels", pa.list_(pa.int64())),
    ("quantile_items", pa.list_(pa.float64())),
)


def _kernels() -> Any:
    from ..kernels import backend, cpu_sketch

    backend("cpu")  # applies the configured thread count once
    return cpu_sketch


def _capacity() -> tuple[int, int]:
    from ..kernels import cpu_sketch

    return cpu_sketch.CAPACITY, cpu_sketch.MAX_LEVELS


def quantile_array(q: float | Sequence[float] | np.ndarray) -> tuple[np.ndarray, bool]:
    """``q`` as a float64 array of probabilities in [0, 1], and whether it was a scalar."""
    scalar = np.ndim(q) == 0
    qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
    if qs.ndim != 1 or not np.all((qs >= 0.0) & (qs <= 1.0)):
        raise ValueError(f"quantiles must be numbers in [0, 1], got {q!r}; for percentiles "
                         "divide by 100")
    return qs, scalar


class QuantileSketches:
    """One KLL sketch per column (arrays with a leading column axis; see the module docstring).

    Attributes
    ----------
    items : float64 (k, CAPACITY); levels : int64 (k, MAX_LEVELS + 2); info : int64 (k, 2)
        ``(num_levels, n)``; extremes : float64 (k, 2) ``(min, max)``.
    """

    def __init__(self, k: int) -> None:
        capacity, max_levels = _capacity()
        self.items = np.zeros((k, capacity))
        self.levels = np.full((k, max_levels + 2), capacity, dtype=np.int64)
        self.info = np.zeros((k, 2), dtype=np.int64)
        self.info[:, 0] = 1
        self.extremes = np.full((k, 2), np.nan)

    def __len__(self) -> int:
        return int(self.info.shape[0])

    def column(self, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The four arrays of column ``j``'s sketch (views)."""
        return self.items[j], self.levels[j], self.info[j], self.extremes[j]

    @property
    def count(self) -> np.ndarray:
        """Values each sketch stands for, int64 (n_columns,)."""
        return self.info[:, 1].copy()

    def held_bytes(self) -> np.ndarray:
        """Bytes of the arrays held per column (items, level bounds, counters, extremes)."""
        per = (self.items.shape[1] * 8 + self.levels.shape[1] * 8 + 2 * 8 + 2 * 8)
        return np.full(len(self), per, dtype=np.int64)

    # ------------------------------------------------------------------ update
    def update(self, batch: pa.RecordBatch, names: Sequence[str], skip_inf: bool) -> None:
        """Add the valid values of the columns ``names`` (in sketch order) of ``batch``."""
        kernels = _kernels()
        tasks = [(j, batch.column(name)) for j, name in enumerate(names)]
        threads = min(kernels.thread_count(), len(tasks))
        if threads <= 1 or batch.num_rows * len(tasks) < THREADED_MIN_VALUES:
            for j, column in tasks:
                self._add_column(kernels, j, column, skip_inf)
            return
        with ThreadPoolExecutor(threads) as pool:  # columns are independent: same bits
            for _ in pool.map(lambda t: self._add_column(kernels, t[0], t[1], skip_inf), tasks):
                pass

    def _add_column(self, kernels: Any, j: int, column: pa.Array | pa.ChunkedArray,
                    skip_inf: bool) -> None:
        sketch = self.column(j)
        for view in cols.column_views(column):
            values = view.values
            if view.null_count:
                bits = np.unpackbits(view.validity, bitorder="little")
                values = values[bits[view.bit_offset:view.bit_offset + len(values)].astype(bool)]
            compress = False
            for start in range(0, len(values), BLOCK_VALUES):
                if not compress and _add_halved(kernels, sketch, values[start:start + BLOCK_VALUES],
                                                skip_inf):
                    continue
                block = _as_float64(values[start:start + BLOCK_VALUES])
                if compress:  # most rows of the last block were short: drop NaN (±inf) first
                    block = block[np.isfinite(block) if skip_inf else ~np.isnan(block)]
                short = _add_block(kernels, sketch, block, skip_inf)
                compress = short * 8 > len(block) // ROW_VALUES

    # ------------------------------------------------------------------ merge, copy
    def merge(self, other: QuantileSketches) -> None:
        """Merge ``other`` (same columns, same order) into these sketches, in place."""
        kernels = _kernels()
        for j in range(len(self)):
            kernels.sketch_merge(*self.column(j), *other.column(j))

    def copy(self) -> QuantileSketches:
        """An independent copy."""
        twin = QuantileSketches.__new__(QuantileSketches)
        twin.items, twin.levels = self.items.copy(), self.levels.copy()
        twin.info, twin.extremes = self.info.copy(), self.extremes.copy()
        return twin

    def equals(self, other: QuantileSketches) -> bool:
        """Same sketches item for item (unused space ignored)."""
        if len(self) != len(other):
            return False
        return all(_saved(self, j) == _saved(other, j) for j in range(len(self)))

    # ------------------------------------------------------------------ results
    def quantiles(self, qs: np.ndarray, median: bool = False) -> np.ndarray:
        """float64 (len(qs), n_columns): numpy.quantile's linear method over each sketch
        (``median``: the mean of the two middle values, as numpy.median)."""
        kernels = _kernels()
        out = np.empty((len(qs), len(self)))
        for j in range(len(self)):
            out[:, j] = kernels.sketch_quantiles(*self.column(j), qs, median)
        return out

    # ------------------------------------------------------------------ persistence
    def arrow_columns(self) -> dict[str, pa.Array]:
        """The :data:`SAVED_FIELDS` as Arrow arrays, one row per column."""
        rows = [_saved(self, j) for j in range(len(self))]
        values = dict(zip([name for name, _ in SAVED_FIELDS], zip(*rows))) if rows else {
            name: () for name, _ in SAVED_FIELDS}
        return {name: pa.array(list(values[name]), kind) for name, kind in SAVED_FIELDS}

    @classmethod
    def from_table(cls, table: pa.Table, names: Sequence[str]) -> QuantileSketches:
        """Sketches rebuilt from a saved state table's :data:`SAVED_FIELDS`, checked: a
        :class:`StatsFileError` naming the column and the problem otherwise."""
        missing = [name for name, _ in SAVED_FIELDS if name not in table.column_names]
        if missing:
            raise StatsFileError(f"its settings say quantiles=true but field(s) {missing} are "
                                 f"missing; {FIX}")
        data = {}
        for name, kind in SAVED_FIELDS:
            try:
                data[name] = table.column(name).cast(kind).to_pylist()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise StatsFileError(f"field {name!r} is not of type {kind}; {FIX}") from None
        sketches = cls(len(names))
        capacity, max_levels = _capacity()
        for j, column in enumerate(names):
            n, lo, hi, sizes, items = (data[name][j] for name, _ in SAVED_FIELDS)
            problem = _sketch_problem(n, lo, hi, sizes, items, capacity, max_levels)
            if problem:
                raise StatsFileError(f"statistics of column {column!r}: quantile sketch "
                                     f"{problem}; {FIX}")
            start = capacity - len(items)
            sketches.items[j, start:] = items
            bounds = start + np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
            sketches.levels[j, :len(bounds)] = bounds
            sketches.info[j] = (len(sizes), n)
            sketches.extremes[j] = (lo, hi)
        return sketches


def _as_float64(values: np.ndarray) -> np.ndarray:
    """A float64 copy of ``values`` (the caller sorts it in place)."""
    return values.astype(np.float64)


def _add_block(kernels: Any, sketch: tuple[np.ndarray, ...], block: np.ndarray,
               skip_inf: bool) -> int:
    """Add ``block`` (a float64 copy of up to BLOCK_VALUES valid-or-NaN values; sorted in
    place here) to one column's sketch; returns how many rows held NaN or skipped ±inf (their
    values are gathered into full rows, a slower branch: the caller drops NaN from the next
    block instead when that was most rows).

    While the sketch is young (row level 0) the block is added as sorted runs of RUN_VALUES.
    Later it is cut into rows of ROW_VALUES, all sorted by one numpy call, each halved j
    times by a strided pick (:func:`~streamnorm.kernels.cpu_sketch.sketch_pick_rows`); the
    survivors, a 1 / 2**j share, are cut into sorted rows and halved once or twice more when
    that costs little accuracy (``again``), then added as sorted runs standing for RUN_VALUES
    values each (:func:`~streamnorm.kernels.cpu_sketch.sketch_add_runs`).
    """
    j, again = kernels.sketch_row_level(sketch[2], len(block), ROW_VALUES)
    full = len(block) - len(block) % ROW_VALUES
    if j == 0 or full == 0:
        for start in range(0, len(block), RUN_VALUES):
            run = block[start:start + RUN_VALUES]
            run.sort()
            stop = len(run)
            if stop and run[-1] != run[-1]:  # NaN sort last
                stop = int(np.argmax(np.isnan(run)))
            begin = 0
            if skip_inf and stop:
                begin = int(np.searchsorted(run[:stop], -math.inf, side="right"))
                stop = int(np.searchsorted(run[:stop], math.inf, side="left"))
            if stop > begin:
                kernels.sketch_add_sorted(*sketch, run[begin:stop], 0, run[begin],
                                          run[stop - 1])
        return 0
    bounds = np.empty(2)
    n = int(sketch[2][1])
    run, short = _pick_rows(kernels, sketch, block, skip_inf, j, n, 0, bounds)
    _add_survivors(kernels, sketch, run, j, again, n, bounds)
    return short


def _add_halved(kernels: Any, sketch: tuple[np.ndarray, ...], values: np.ndarray,
                skip_inf: bool) -> bool:
    """Add ``values`` (up to BLOCK_VALUES of a column's valid-or-NaN values, any numeric
    dtype; not modified) to one column's sketch by the halved path, if it applies: False
    (nothing added) while the sketch's rows would be halved fewer than HALVED_MIN_LEVEL
    times, for blocks of fewer than 2 tiles, or when the values hold NaN (or ±inf that
    ``skip_inf`` skips): the caller then takes :func:`_add_block`.

    The values are first halved in groups of 8 by a SIMD sorting network
    (:func:`~streamnorm.kernels.cpu_sketch.sketch_halve_groups`: no copy, no sort call),
    the survivors (weight 2, half as many) then taken as :func:`_add_block` takes a block at
    level 1: sorted rows halved ``j - 1`` times, and so on. The values past the last whole
    tile (fewer than 8192) go through :func:`_add_block`.
    """
    j, again = kernels.sketch_row_level(sketch[2], len(values), ROW_VALUES)
    tile = kernels.GROUP_VALUES * kernels.GROUP_LANES
    whole = len(values) - len(values) % tile
    if j < HALVED_MIN_LEVEL or whole < 2 * tile:
        return False
    source = np.ascontiguousarray(values[:whole], dtype=np.float64)
    n = int(sketch[2][1])
    halved = np.empty(whole // 2)
    bad, low, high = kernels.sketch_halve_groups(source, n, halved)
    if bad or (skip_inf and (low == -math.inf or high == math.inf)):
        return False
    run, _ = _pick_rows(kernels, sketch, halved, False, j - 1, n, 1, np.empty(2), (low, high))
    _add_survivors(kernels, sketch, run, j, again, n, np.array([low, high]))
    if whole < len(values):
        _add_block(kernels, sketch, _as_float64(values[whole:]), skip_inf)
    return True


def _add_survivors(kernels: Any, sketch: tuple[np.ndarray, ...], run: np.ndarray, j: int,
                   again: int, n: int, bounds: np.ndarray) -> None:
    """The end of :func:`_add_block`: ``run`` (float64, in row order; sorted here in place)
    the survivors of its rows, weighing ``2**j`` each, within ``bounds`` (float64[2], the
    block's exact min and max); ``again``, ``n`` as :func:`_add_block` found them."""
    if again and len(run) >= 8 * ROW_VALUES:
        # the survivors (weight 2**j) again as sorted rows, halved once or twice more
        # (compactions of 64 and 32 items at levels j and j + 1), rather than sorted whole
        run, _ = _pick_rows(kernels, sketch, run, False, again, n, j, np.empty(2),
                            (bounds[0], bounds[1]))
        j += again
    # as runs standing for RUN_VALUES values each, all sorted by one numpy call: each run is
    # halved only down to the level that holds it when it arrives, so the sketch fills all
    # its levels, not just the top one a single long run would fit
    width = max(1, RUN_VALUES >> j)
    whole = len(run) - len(run) % width
    runs = run[:whole].reshape(-1, width)
    runs.sort(axis=1)
    kernels.sketch_add_runs(*sketch, runs, j, bounds[0], bounds[1])
    last = run[whole:]
    last.sort()
    kernels.sketch_add_sorted(*sketch, last, j, bounds[0], bounds[1])


def _pick_rows(kernels: Any, sketch: tuple[np.ndarray, ...], values: np.ndarray,
               skip_inf: bool, j: int, n: int, level: int, bounds: np.ndarray,
               extremes: tuple[float, float] | None = None) -> tuple[np.ndarray, int]:
    """One row pass of :func:`_add_block`: ``values`` (float64, weight ``2**level`` each;
    sorted here in place) cut into rows of ROW_VALUES and a tail, every row halved ``j``
    times (:func:`~streamnorm.kernels.cpu_sketch.sketch_pick_rows`, ``n`` the count so far,
    ``bounds`` float64[2] getting the valid values' min and max), the values left over (fewer
    than a row) added to the sketch at ``level``, recording ``extremes`` (default: the
    ``bounds`` found). Returns the survivors (in row order, weight ``2**(level + j)``) and
    the number of short rows."""
    full = len(values) - len(values) % ROW_VALUES
    rows = values[:full].reshape(-1, ROW_VALUES)
    rows.sort(axis=1)
    tail = values[full:]
    tail.sort()
    picked = np.empty((len(rows) + 1) * (ROW_VALUES >> j))
    rest = np.empty(2 * ROW_VALUES)
    survivors, left, short = kernels.sketch_pick_rows(rows, tail, skip_inf, j, n, picked, rest,
                                                      bounds, level)
    low, high = (bounds[0], bounds[1]) if extremes is None else extremes
    kernels.sketch_add_sorted(*sketch, rest[:left], level, low, high)
    return picked[:survivors], int(short)


def _saved(sketches: QuantileSketches, j: int) -> tuple[Any, ...]:
    items, levels, info, extremes = sketches.column(j)
    num_levels = int(info[0])
    bounds = levels[:num_levels + 1]
    return (int(info[1]), float(extremes[0]), float(extremes[1]),
            np.diff(bounds).tolist(), items[bounds[0]:].tolist())


def _sketch_problem(n: Any, lo: Any, hi: Any, sizes: Any, items: Any, capacity: int,
                    max_levels: int) -> str | None:
    """What is wrong with one saved sketch; None if nothing."""
    if n is None or n < 0:
        return f"count {n!r} is not a count >= 0"
    for field, value in (("quantile_levels", sizes), ("quantile_items", items),
                         ("quantile_min", lo), ("quantile_max", hi)):
        if value is None:
            return f"field {field!r} is missing"
    if not 1 <= len(sizes) <= max_levels:
        return f"has {len(sizes)} levels, not 1 to {max_levels}"
    if any(s is None or s < 0 for s in sizes) or sum(sizes) != len(items):
        return "level sizes do not add up to its items"
    if len(items) > capacity:
        return f"holds {len(items)} items, more than {capacity}"
    values = np.array(items, dtype=np.float64)
    if np.isnan(values).any():
        return "holds NaN"
    if sum(s << h for h, s in enumerate(sizes)) != n:
        return "item weights do not add up to its count"
    start = sizes[0]
    for size in sizes[1:]:
        level = values[start:start + size]
        if np.any(level[1:] < level[:-1]):
            return "has a level out of order"
        start += size
    if n and not (lo <= hi and lo <= values.min() and values.max() <= hi):
        return "min / max do not bound its items"
    return None


def strip_sketches(state: dict[str, Any]) -> dict[str, Any]:
    """A ``FeatureStats.to_dict`` state without its quantile sketches (a plain state)."""
    out = {k: v for k, v in state.items() if k not in ("quantiles", "columns")}
    fields = {name for name, _ in SAVED_FIELDS}
    out["columns"] = [{k: v for k, v in row.items() if k not in fields}
                      for row in state["columns"]]
    return out


def table_with_json_sketches(table: pa.Table, rows: list[dict[str, Any]]) -> pa.Table:
    """``table`` (built from the JSON ``rows`` of a state) with the sketch fields read from
    the rows; non-finite items were saved as strings (``"inf"``). Rows lacking them stay
    null (:meth:`QuantileSketches.from_table` then names the column)."""
    for name, kind in SAVED_FIELDS:
        values = []
        for row in rows:
            value = row.get(name)
            try:
                if isinstance(value, list):
                    value = [float(v) if isinstance(v, str) else v for v in value]
                elif isinstance(value, str):
                    value = float(value)
            except ValueError:
                raise StatsFileError(f"field {name!r} holds a string that is not a "
                                     f"number; {FIX}") from None
            values.append(value)
        try:
            array = pa.array(values, kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            raise StatsFileError(f"field {name!r} is not of type {kind}; {FIX}") from None
        table = table.append_column(name, array)
    return table
