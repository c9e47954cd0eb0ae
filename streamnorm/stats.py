"""Streaming statistics: :class:`FeatureStats` (per column) and :func:`row_stats` (per row).

The state of each column is (count, null_count, nan_count, inf_count, shift, shifted_mean, m2,
min, max, scale_exponent): ``shift`` is the first finite value the column saw, ``shifted_mean``
the mean of ``x - shift`` and ``m2`` the sum of squared deviations from the mean (DESIGN §4).
``scale_exponent`` e is 0 except for a column whose float64 moments would overflow (values
beyond ~1e150 of both signs, or a spread beyond ~1e154): its shift and shifted_mean are then in
units of 2**e and m2 in units of 4**e, so mean and std stay finite and accurate. States merge
exactly and associatively, whatever produced them (batches, threads, files, workers, CPU or GPU).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from . import columns as cols
from . import io, sources, statsfile
from .errors import InputError, SchemaError, StatsFileError
from .kernels import backend

NanPolicy = Literal["skip", "propagate"]
_NAN_POLICIES = ("skip", "propagate")
InfPolicy = Literal["keep", "skip"]
_INF_POLICIES = ("keep", "skip")
_FORMAT_VERSION = statsfile.FORMAT_VERSION
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
#: Fields added later: saved always, optional when loading (older files hold none: 0); what
#: they mean is in :data:`statsfile.OPTIONAL_FIELDS`.
_OPTIONAL_FIELDS: tuple[tuple[str, pa.DataType], ...] = tuple(statsfile.OPTIONAL_FIELDS.items())

#: The exponent of a scaled state: values are multiplied by 2**-BIG_EXPONENT before their
#: moments are taken, so that float64 data of any magnitude (< 2**1024) gives deviations
#: below 2**425 and sums of squares far from overflow. Used only for a column whose plain
#: moments overflow; a power of two, so the scaling itself is exact (values below 2**-474
#: round, far below the resolution of a column that holds values beyond 1e150).
BIG_EXPONENT = 600


#: The arrays that hold a FeatureStats state, one entry per column.
_STATE_ARRAYS = ("_count", "_null_count", "_nan_count", "_shift", "_shifted_mean", "_m2", "_min",
                 "_max", "_inf_count", "_scale_exp")
#: The extra arrays of a ``moments=4`` state.
_HIGHER_ARRAYS = ("_m3", "_m4")
_MOMENTS = (2, 4)


def _state_fields(moments: int = 2, weighted: bool = False) -> list[tuple[str, pa.DataType]]:
    """The saved fields for a state: ``count`` is float64 when weighted; m3/m4 follow m2."""
    fields = []
    for name, arrow_type in _STATE_FIELDS:
        if name == "count" and weighted:
            arrow_type = pa.float64()
        fields.append((name, arrow_type))
        if name == "m2" and moments == 4:
            fields += [("m3", pa.float64()), ("m4", pa.float64())]
    return fields


def _check_moments(moments: int) -> int:
    if moments not in _MOMENTS:
        raise ValueError(f"moments must be 2 or 4, got {moments!r}")
    return int(moments)


def _merge_same_exponent(
    a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, ...]:
    """:func:`merge_moment_arrays` of two states in the same units (same scale exponent)."""
    n_a, k_a, mean_a, m2_a = a[:4]
    n_b, k_b, mean_b, m2_b = b[:4]
    na = np.asarray(n_a, dtype=np.float64)
    nb = np.asarray(n_b, dtype=np.float64)
    empty_a, empty_b = na == 0, nb == 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mb = mean_b + (k_b - k_a)
        n = na + nb
        delta = mb - mean_a
        mean = mean_a + delta * (nb / n)
        merged = [m2_a + (m2_b + delta * delta * (na * nb / n))]
        if len(a) == 6:
            m3_a, m4_a = a[4:]
            m3_b, m4_b = b[4:]
            d_n = delta / n
            ab = na * nb
            merged.append(m3_a + m3_b + delta * d_n * d_n * ab * (na - nb)
                          + 3.0 * d_n * (na * m2_b - nb * m2_a))
            merged.append(m4_a + m4_b + delta * d_n**3 * ab * (na * na - ab + nb * nb)
                          + 6.0 * d_n * d_n * (na * na * m2_b + nb * nb * m2_a)
                          + 4.0 * d_n * (na * m3_b - nb * m3_a))
        infinite = ~(np.isfinite(mb) & np.isfinite(mean_a))
        mean = np.where(infinite, mean_a + mb, mean)
    merged = [np.where(infinite, np.nan, moment) for moment in merged]

    def pick(x_a: np.ndarray, x_b: np.ndarray, x_merged: np.ndarray) -> np.ndarray:
        return np.where(empty_b, x_a, np.where(empty_a, x_b, x_merged))

    return (
        n_a + n_b,
        pick(k_a, k_b, k_a),  # an empty side never sets the shift
        pick(mean_a, mean_b, mean),
        *(pick(x_a, x_b, x) for x_a, x_b, x in zip(a[3:], b[3:], merged)),
    )


def rescale_state(
    state: tuple[np.ndarray, ...], exponent: Any, to: Any
) -> tuple[np.ndarray, ...]:
    """A moment state ``(count, shift, shifted_mean, m2[, m3, m4])`` in units of
    ``2**exponent`` re-expressed in units of ``2**to`` (m_k by ``2**(k*(exponent - to))``).

    Exact (a power-of-two scaling) unless a value underflows; the identity where the
    exponents are equal.
    """
    step = np.asarray(exponent, dtype=np.int64) - np.asarray(to, dtype=np.int64)
    if not np.any(step):
        return state
    count, shift, mean, *moments = state
    return (count, np.ldexp(shift, step), np.ldexp(mean, step),
            *(np.ldexp(m, (k + 2) * step) for k, m in enumerate(moments)))


def merge_moment_arrays(
    a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...], exponent_a: Any = 0,
    exponent_b: Any = 0,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Vectorised merge of moment states ``(count, shift, shifted_mean, m2[, m3, m4])``.

    Chan's formula for two moments, Pébay's for four (both sides give the same number of
    moments). Each side holds equal-shape arrays with its own shifts; the result keeps a's
    shift where a has data, else b's (b's mean is re-expressed in a's shift:
    ``mean_b + (K_b - K_a)``). m2..m4 are shift-invariant, so only the mean needs re-expressing.
    Counts may be int or float. An empty side leaves the other as it is. With ±inf among the
    values Chan's delta would make inf + finite a NaN whatever the order, so, like numpy, the
    mean is then the sum of the infinities and m2..m4 are NaN.

    ``exponent_a``/``exponent_b`` (int arrays or scalars): each side's scale exponent (see
    :data:`BIG_EXPONENT`); the result is in the larger one's units. Where two finite states
    overflow when merged (huge values of both signs), they are merged again in units of
    ``2**BIG_EXPONENT``, so finite data never gives an overflowed mean or m2.

    Returns ``(merged state, exponent int64 array)``.
    """
    exp_a = np.asarray(exponent_a, dtype=np.int64)
    exp_b = np.asarray(exponent_b, dtype=np.int64)
    shape = np.shape(a[2])
    if not (exp_a.any() or exp_b.any()):  # the common case: plain float64 units on both sides
        exponent = np.zeros(shape, dtype=np.int64)
        merged = _merge_same_exponent(a, b)
    else:
        empty_a, empty_b = np.asarray(a[0]) == 0, np.asarray(b[0]) == 0
        exponent = np.where(empty_a, exp_b, np.where(empty_b, exp_a, np.maximum(exp_a, exp_b)))
        exponent = np.broadcast_to(exponent, shape).astype(np.int64)
        merged = _merge_same_exponent(rescale_state(a, exp_a, exponent),
                                      rescale_state(b, exp_b, exponent))
    if np.isfinite(merged[2]).all() and np.isfinite(merged[3]).all():
        return merged, exponent
    # Redo, at the big exponent, the merges of two finite non-empty states that overflowed.
    finite_sides = np.isfinite(a[2]) & np.isfinite(a[3]) & np.isfinite(b[2]) & np.isfinite(b[3])
    redo = (~(np.isfinite(merged[2]) & np.isfinite(merged[3])) & finite_sides
            & (np.asarray(a[0]) != 0) & (np.asarray(b[0]) != 0) & (exponent < BIG_EXPONENT))
    if np.any(redo):
        exponent = np.where(redo, BIG_EXPONENT, exponent)
        merged = _merge_same_exponent(rescale_state(a, exp_a, exponent),
                                      rescale_state(b, exp_b, exponent))
    return merged, exponent


def weights_array(batch: pa.RecordBatch, name: str) -> np.ndarray:
    """The frequency weights of a batch as float64 (null weights are 0); checks them.

    A ``ValueError`` names the column when it is missing, not numeric, or holds a negative,
    NaN or infinite weight.
    """
    import pyarrow.compute as pc

    cols.field_type(batch.schema, name, role="weights column", fix="fix weights=...")
    column = batch.column(name)
    if not cols.is_numeric(column.type):
        raise TypeError(f"weights column {name!r} has type {column.type}; weights must be numeric")
    w = pc.fill_null(column.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
    bad = ~(np.isfinite(w) & (w >= 0))
    if bad.any():
        raise ValueError(
            f"weights column {name!r} holds {w[bad][0]!r} at row {int(np.argmax(bad))}: "
            "frequency weights must be finite and >= 0 (null means 0)"
        )
    return np.ascontiguousarray(w, dtype=np.float64)


def _check_nan_policy(nan: str) -> str:
    if nan not in _NAN_POLICIES:
        raise ValueError(f"nan must be one of {_NAN_POLICIES}, got {nan!r}")
    return nan


def _check_inf_policy(inf: str) -> str:
    if inf not in _INF_POLICIES:
        raise ValueError(f"inf must be one of {_INF_POLICIES}, got {inf!r}")
    return inf


class FeatureStats:
    """Per-column count, mean, variance, min and max over every row seen (BatchNorm-style).

    Parameters
    ----------
    columns : list of column names, or None for every scalar numeric column of the first
        batch (bool, decimal, string, temporal and list columns are skipped).
    nan : ``"skip"`` (default) skips NaN and counts it in ``nan_count``; ``"propagate"`` makes
        the mean, variance, min and max of a column with any NaN be NaN.
    target : ``"cpu"`` or ``"cuda"``; default ``$STREAMNORM_TARGET`` or ``"cpu"``.
    inf : ``"keep"`` (default) takes ±inf as values, as numpy does (the mean becomes ±inf or
        NaN, the variance NaN); ``"skip"`` skips them like NaN. Either way ``inf_count``
        counts them (in ``"skip"`` mode they are not in ``count``).
    moments : 2 (default) or 4. With 4 the state also carries m3 and m4 (sums of the third
        and fourth powers of the deviations, merged with Pébay's formulas), for
        :meth:`skew` and :meth:`kurtosis`. The default path does no extra work.
    by : a key column name or a list of them: keep one state per key (see
        :class:`streamnorm.grouped.GroupedFeatureStats`).

    ``moments=4``, weights and ``by=`` run on the CPU extension kernels whatever the target.

    Frequency weights: ``update(data, weights="w")`` counts each row ``w`` times. The weights
    column is never a feature; ``count`` becomes the sum of the weights, as float64 (exact for
    integer weights while the sum stays below 2**53; sklearn's ``n_samples_seen_`` does the
    same), and ``var(ddof)`` is ``m2 / (sum_w - ddof)``. A weight of 0 or null drops the row
    (it is not counted in ``null_count``/``nan_count`` either); negative, NaN or infinite
    weights are a ``ValueError``. ``null_count``/``nan_count`` stay row counts (int64).

    Examples
    --------
    >>> import pyarrow as pa, streamnorm as sn
    >>> fs = sn.FeatureStats()
    >>> _ = fs.update(pa.table({"a": [1.0, 2.0, None], "b": [10, 20, 30]}))
    >>> fs.columns, fs.count.tolist(), fs.null_count.tolist()
    (['a', 'b'], [2, 3], [1, 0])
    >>> fs.mean.tolist(), fs.var(ddof=1).tolist()
    ([1.5, 20.0], [0.5, 100.0])

    Higher moments and weights:

    >>> fs4 = sn.FeatureStats(moments=4).update(pa.table({"x": [1.0, 2.0, 3.0, 10.0]}))
    >>> fs4.skew().round(6).tolist(), fs4.kurtosis().round(6).tolist()
    ([1.018234], [-0.7696])
    >>> fw = sn.FeatureStats().update(pa.table({"x": [1.0, 3.0], "w": [3, 1]}), weights="w")
    >>> fw.columns, fw.count.tolist(), fw.mean.tolist(), fw.var(ddof=1).tolist()
    (['x'], [4.0], [1.5], [1.0])
    """

    def __new__(cls, *args: Any, by: str | Sequence[str] | None = None, **kwargs: Any) -> Any:
        if by is not None and cls is FeatureStats:
            from .grouped import GroupedFeatureStats

            return super().__new__(GroupedFeatureStats)
        return super().__new__(cls)

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        *,
        nan: NanPolicy = "skip",
        target: str | None = None,
        moments: int = 2,
        by: str | Sequence[str] | None = None,
        inf: InfPolicy = "keep",
    ) -> None:
        if isinstance(columns, str):
            columns = [columns]
        self._requested = list(columns) if columns is not None else None
        self.nan = _check_nan_policy(nan)
        self.inf = _check_inf_policy(inf)
        self.target = target
        self.moments = _check_moments(moments)
        self._weighted = False
        self._columns: list[str] | None = None
        self._types: dict[str, pa.DataType | None] = {}
        self._checked_schema: pa.Schema | None = None
        self._plan: cols.BatchPlan | None = None
        self._allocate(0)

    @property
    def weighted(self) -> bool:
        """Whether any weighted update or merge went into this state (counts are float64)."""
        return self._weighted

    def _state_arrays(self) -> tuple[str, ...]:
        return _STATE_ARRAYS + (_HIGHER_ARRAYS if self.moments == 4 else ())

    def _set_weighted(self) -> None:
        if not self._weighted:
            self._weighted = True
            self._count = self._count.astype(np.float64)

    # ------------------------------------------------------------------ state
    def _allocate(self, k: int) -> None:
        self._count = np.zeros(k, dtype=np.float64 if self._weighted else np.int64)
        self._null_count = np.zeros(k, dtype=np.int64)
        self._nan_count = np.zeros(k, dtype=np.int64)
        self._shift = np.full(k, np.nan)
        self._shifted_mean = np.zeros(k)
        self._m2 = np.zeros(k)
        self._min = np.full(k, np.nan)
        self._max = np.full(k, np.nan)
        self._inf_count = np.zeros(k, dtype=np.int64)
        self._scale_exp = np.zeros(k, dtype=np.int64)
        if self.moments == 4:
            self._m3 = np.zeros(k)
            self._m4 = np.zeros(k)

    def _not_features(self) -> set[str]:
        """Columns never picked automatically as features (weights, group keys)."""
        return set(getattr(self, "_exclude", ()))

    def _bind(self, schema: pa.Schema) -> None:
        """Choose and check the tracked columns from the first schema seen."""
        if self._requested is None:
            skip = self._not_features()
            names = [n for n in cols.numeric_column_names(schema) if n not in skip]
        else:
            names = self._requested
            for name in names:
                cols.check_numeric(name, cols.field_type(schema, name))
        self._columns = list(names)
        self._types = {name: schema.field(name).type for name in names}
        self._allocate(len(names))
        self._remember_schema(schema)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the schema cache: partial states travel between Dask workers."""
        state = self.__dict__.copy()
        state["_checked_schema"] = state["_plan"] = None
        return state

    def _remember_schema(self, schema: pa.Schema) -> None:
        """Batches of this schema need no more checks; plan where their columns lie."""
        self._checked_schema = schema
        self._plan = cols.plan_batches(schema, self._columns)  # type: ignore[arg-type]

    def _check_schema(self, schema: pa.Schema) -> None:
        assert self._columns is not None
        if self._checked_schema is not None and schema.equals(self._checked_schema):
            return  # the batches of one source share a schema: check it once
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
                widened = cols.promoted_type(known, new_type)
                if widened is None:
                    raise SchemaError(
                        f"column {name!r} changed type from {known} to {new_type}; cast the "
                        "batches to one numeric type first"
                    )
                self._types[name] = widened
        self._remember_schema(schema)

    # ------------------------------------------------------------------ update
    def update(self, data: io.Source, weights: str | None = None) -> FeatureStats:
        """Add the rows of ``data`` (any source, see :mod:`streamnorm.io`); returns self.

        ``weights`` names a column of per-row frequency weights (see the class docstring).
        """
        return self._update_from(data, None, weights)

    def _update_from(
        self, data: io.Source, batch_size: int | None, weights: str | None = None
    ) -> FeatureStats:
        if weights is not None:
            if weights not in self._not_features():
                self._exclude = (*getattr(self, "_exclude", ()), weights)
            if self._columns is not None and weights in self._columns:
                raise ValueError(
                    f"weights column {weights!r} is a tracked feature; choose the features with "
                    "columns=[...] or weight from the first update on"
                )
        wanted = None if self._requested is None else [*self._requested, *self._not_features()]
        schema, batches = io.schema_and_batches(data, wanted, batch_size)
        if self._columns is None and schema is not None:
            self._bind(schema)  # so a source without rows still fixes the columns
        for batch in batches:
            self._update_batch(batch, weights)
        return self

    def _update_batch(self, batch: pa.RecordBatch, weights: str | None = None) -> None:
        if self._columns is None:
            self._bind(batch.schema)
        else:
            self._check_schema(batch.schema)
        kernels = backend(self.target)
        if weights is not None or self.moments == 4:
            self._update_batch_ext(batch, weights, kernels)
            return
        if (hasattr(kernels, "columns_moments_at") and self._plan is not None
                and isinstance(batch, pa.RecordBatch)):
            groups = cols.locate_columns(batch, self._plan)
            if groups is not None:
                redo: list[int] = []
                for group in groups:
                    redo += self._add_group(group, kernels)
                self._add_careful(batch, redo, kernels)
                return
        views: list[tuple[int, cols.ColumnView]] = []
        for j, name in enumerate(self._columns):  # type: ignore[arg-type]
            for view in cols.column_views(batch.column(name)):
                self._null_count[j] += view.null_count
                views.append((j, view))
        if views:
            self._add_careful(batch, self._add_views(views, kernels), kernels)

    # ------------------------------------------------------------------ non-finite results
    # The kernels' fast path takes ±inf as values and works in float64 units. A column whose
    # partial result is not finite (it holds ±inf, or its moments overflowed) is left out of
    # the fast merge and redone here, column by column: ±inf counted (and skipped when
    # inf="skip"), and overflowing moments recomputed on values scaled by 2**-BIG_EXPONENT.
    # Only such columns pay: the common path costs one isfinite over k partial results.

    @staticmethod
    def _finite_results(count: np.ndarray, *results: np.ndarray) -> np.ndarray:
        """Which partial results can merge as they are: empty, or every field finite."""
        ok = np.isfinite(results[0])
        for field in results[1:]:
            ok &= np.isfinite(field)
        return ok | (np.asarray(count) == 0)

    def _add_careful(self, batch: pa.RecordBatch, redo: list[int], kernels: Any) -> None:
        """Merge the columns ``redo`` of ``batch`` through :meth:`_add_view_careful`."""
        for j in sorted(set(redo)):
            column = batch.column(self._columns[j])  # type: ignore[index]
            for view in cols.column_views(column):
                self._add_view_careful(j, view, kernels)

    def _add_view_careful(
        self, j: int, view: cols.ColumnView, kernels: Any, weights: np.ndarray | None = None
    ) -> None:
        """Moments of one column piece whose fast result was not finite, merged into column
        ``j`` (its null and NaN counts are already taken).

        ±inf are counted in ``inf_count``; with ``inf="skip"`` they are masked out like nulls.
        If the remaining values are finite but their moments overflow float64, the moments are
        taken again on the values times ``2**-BIG_EXPONENT`` (exact) and kept in those units.
        ``weights`` (float64, the batch's) routes through the extension kernel.
        """
        x = np.asarray(view.values, dtype=np.float64)
        valid, infinite = valid_and_infinite(view)
        n_inf = int(np.count_nonzero(infinite))
        self._inf_count[j] += n_inf
        validity, bit_offset, has_validity = view.validity, view.bit_offset, view.has_validity
        if n_inf and self.inf == "skip":
            validity = np.packbits(valid & ~infinite, bitorder="little")
            bit_offset, has_validity = 0, True
        shift = float(np.ldexp(self._shift[j], self._scale_exp[j]))
        exponent = 0
        result = self._piece_moments(x, validity, bit_offset, has_validity, shift, weights,
                                     kernels)
        lo, hi = result[4:6]  # min/max never overflow, and scaling could round tiny ones
        # m3/m4 are left out: rescaling for them alone could underflow the small deviations
        overflowed = not np.all(self._finite_results(result[0], *result[1:6]))
        if overflowed and (n_inf == 0 or self.inf == "skip"):
            exponent = BIG_EXPONENT
            scaled = np.ldexp(x, -exponent)
            scaled_shift = float(np.ldexp(shift, -exponent)) if not math.isnan(shift) else shift
            result = self._piece_moments(scaled, validity, bit_offset, has_validity,
                                         scaled_shift, weights, kernels)
        count, shift_used, mean, m2, _, _, *higher = result
        self._merge_at(
            np.array([j]), np.array([count]), np.array([shift_used]), np.array([mean]),
            np.array([m2]), np.array([lo]), np.array([hi]),
            m3=np.array(higher[:1]) if higher else None,
            m4=np.array(higher[1:]) if higher else None, exponent=np.array([exponent]),
        )

    def _piece_moments(
        self, x: np.ndarray, validity: np.ndarray, bit_offset: int, has_validity: bool,
        shift: float, weights: np.ndarray | None, kernels: Any,
    ) -> tuple[Any, ...]:
        """(count, shift, shifted_mean, m2, min, max[, m3, m4]) of float64 ``x``; a NaN
        ``shift`` becomes the first valid finite value (of positive weight), else 0."""
        view = cols.ColumnView(x, validity, bit_offset, 1 if has_validity else 0)
        if weights is not None or self.moments == 4:
            from .kernels import cpu

            w = weights if weights is not None else np.zeros(0)
            if math.isnan(shift):
                shift = _first_finite_weighted(view, w, kernels)
            wsum, _, _, mean, m2, m3, m4, lo, hi = cpu.column_moments_ext(
                x, validity, bit_offset, has_validity, w, weights is not None,
                self.moments == 4, shift,
            )
            return wsum, shift, mean, m2, lo, hi, m3, m4
        if math.isnan(shift):
            found = kernels.first_finite(x, validity, bit_offset, has_validity)
            shift = 0.0 if math.isnan(found) else float(found)
        count, _, mean, m2, lo, hi = kernels.column_moments(x, validity, bit_offset,
                                                            has_validity, shift)
        return count, shift, mean, m2, lo, hi

    def _add_group(self, group: cols.BufferGroup, kernels: Any) -> list[int]:
        """Same-dtype columns of a batch, located by address, in one parallel launch.

        Returns the columns whose result is not finite, left for :meth:`_add_careful`.

        Columns without a shift yet take their first finite value inside the kernel. The same
        bits as :meth:`_add_views`; it only skips building numpy views and typed Lists, which
        cost about as much as the kernel itself on 64k-row batches.
        """
        idx = group.positions
        count, nan_count, shifted_mean, m2, lo, hi, shift = kernels.columns_moments_at(
            group.like, group.addresses, group.lengths, group.validity_addresses,
            group.bit_offsets, group.has_validity, self._shift[idx],
        )
        self._null_count[idx] += group.lengths - count - nan_count  # each value is one of these
        self._nan_count[idx] += nan_count
        ok = self._finite_results(count, shifted_mean, m2, lo, hi)
        if ok.all():
            self._merge_at(idx, count, shift, shifted_mean, m2, lo, hi)
            return []
        self._merge_at(idx[ok], count[ok], shift[ok], shifted_mean[ok], m2[ok], lo[ok], hi[ok])
        return [int(j) for j in np.asarray(idx)[~ok]]

    def _add_views(self, views: list[tuple[int, cols.ColumnView]], kernels: Any) -> list[int]:
        """All column pieces of a batch in one ``columns_moments`` launch per values dtype.

        Returns the columns with a piece whose result is not finite: none of their pieces is
        merged here, all are left for :meth:`_add_careful`.

        The path for pieces :meth:`_add_group` cannot locate (dictionary or float16 columns,
        misaligned buffers, chunked columns, the CUDA target). One parallel launch over
        (column, chunk) tasks balances the threads and avoids a launch per column; merging in
        column-then-chunk order gives the same bits as ``column_moments`` one piece at a time.
        """
        from numba.typed import List

        shifts: dict[int, float] = {}
        for j, view in views:  # each column's shift: its state's, else its first finite value
            if j in shifts:
                continue
            shift = self._shift[j]
            if math.isnan(shift):
                shift = kernels.first_finite(
                    view.values, view.validity, view.bit_offset, view.has_validity
                )
            if not math.isnan(shift):
                shifts[j] = shift
        by_dtype: dict[np.dtype, list[int]] = {}
        for index, (_, view) in enumerate(views):
            by_dtype.setdefault(view.values.dtype, []).append(index)
        results: list[tuple[Any, ...]] = [()] * len(views)
        for members in by_dtype.values():
            pieces = [views[i] for i in members]
            fields = kernels.columns_moments(
                List([v.values for _, v in pieces]),
                List([v.validity for _, v in pieces]),
                np.array([v.bit_offset for _, v in pieces], dtype=np.int64),
                np.array([v.has_validity for _, v in pieces], dtype=np.bool_),
                np.array([shifts.get(j, 0.0) for j, _ in pieces]),
            )
            for k, i in enumerate(members):
                results[i] = tuple(field[k] for field in fields)
        count, nan_count, shifted_mean, m2, lo, hi = (np.array(field) for field in zip(*results))
        positions = np.array([j for j, _ in views])
        np.add.at(self._nan_count, positions, nan_count)
        shift = np.array([shifts.get(j, 0.0) for j in positions.tolist()])
        redo = positions[~self._finite_results(count, shifted_mean, m2, lo, hi)]
        if len(redo):
            keep = ~np.isin(positions, redo)
            positions, count, shift, shifted_mean, m2, lo, hi = (
                a[keep] for a in (positions, count, shift, shifted_mean, m2, lo, hi))
            if not len(positions):
                return [int(j) for j in redo]
        # a chunked column's pieces merge in order: its first pieces in one call, then its
        # second pieces, ...; each call then holds distinct columns, as _merge_at needs
        rank = np.zeros(len(positions), dtype=np.int64)
        pieces_seen: dict[int, int] = {}
        for i, j in enumerate(positions.tolist()):
            rank[i] = pieces_seen.get(j, 0)
            pieces_seen[j] = rank[i] + 1
        for r in range(int(rank.max()) + 1):
            at = rank == r
            self._merge_at(positions[at], count[at], shift[at], shifted_mean[at], m2[at],
                           lo[at], hi[at])
        return [int(j) for j in redo]

    def _update_batch_ext(self, batch: pa.RecordBatch, weights: str | None, kernels: Any) -> None:
        """Weighted and/or higher-moment update (the extension kernel, CPU only)."""
        from .kernels import cpu

        w = weights_array(batch, weights) if weights is not None else np.zeros(0)
        if weights is not None:
            self._set_weighted()
        for j, name in enumerate(self._columns):  # type: ignore[arg-type]
            column = batch.column(name)
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            for view in cols.column_views(column):
                shift = self._shift[j]
                if math.isnan(shift):
                    shift = _first_finite_weighted(view, w, kernels)
                wsum, nan_c, null_c, mean, m2, m3, m4, lo, hi = cpu.column_moments_ext(
                    view.values, view.validity, view.bit_offset, view.has_validity, w,
                    weights is not None, self.moments == 4, shift,
                )
                self._null_count[j] += null_c
                self._nan_count[j] += nan_c
                if not self._finite_results(wsum, mean, m2, lo, hi):
                    self._add_view_careful(j, view, kernels,
                                           w if weights is not None else None)
                    continue
                self._merge_at(
                    np.array([j]), np.array([wsum]), np.array([shift]), np.array([mean]),
                    np.array([m2]), np.array([lo]), np.array([hi]), m3=np.array([m3]),
                    m4=np.array([m4]),
                )

    def _merge_at(
        self, idx: Any, count: np.ndarray, shift: np.ndarray, mean: np.ndarray,
        m2: np.ndarray, lo: np.ndarray, hi: np.ndarray, m3: np.ndarray | None = None,
        m4: np.ndarray | None = None, exponent: np.ndarray | None = None,
    ) -> None:
        """Merge partial states, each with its own shift, into the entries ``idx`` of the state
        arrays (distinct entries; ``m3``/``m4`` are read for four-moment states only).

        The arguments are arrays shaped like ``self._count[idx]``: counts (int or float),
        shifts, shifted means, m2 (m3, m4) and min/max of the partial states; ``exponent`` their
        scale exponents (default 0: plain float64 units).
        """
        mine = (self._count[idx], self._shift[idx], self._shifted_mean[idx], self._m2[idx])
        theirs = (count, shift, mean, m2)
        if self.moments == 4:
            mine += (self._m3[idx], self._m4[idx])
            theirs += (m3, m4)
        merged, self._scale_exp[idx] = merge_moment_arrays(
            mine, theirs, self._scale_exp[idx], 0 if exponent is None else exponent
        )
        self._count[idx], self._shift[idx], self._shifted_mean[idx], self._m2[idx] = merged[:4]
        if self.moments == 4:
            self._m3[idx], self._m4[idx] = merged[4:]
        self._min[idx] = np.fmin(self._min[idx], lo)
        self._max[idx] = np.fmax(self._max[idx], hi)

    # ------------------------------------------------------------------ merge
    def _check_mergeable(self, other: object) -> None:
        """Raise unless ``other`` is a state of the same kind and settings."""
        if not isinstance(other, FeatureStats):
            raise TypeError(f"can only merge FeatureStats, not {type(other).__name__}")
        if other.nan != self.nan:
            raise ValueError(f"cannot merge nan={self.nan!r} with nan={other.nan!r} statistics")
        if other.inf != self.inf:
            raise ValueError(f"cannot merge inf={self.inf!r} with inf={other.inf!r} statistics")
        if other.moments != self.moments:
            raise ValueError(
                f"cannot merge moments={other.moments} statistics into moments={self.moments} "
                "ones; fit both with the same moments="
            )
        if type(other) is not type(self):
            raise TypeError("cannot merge grouped (by=) and ungrouped statistics")

    def _start_merge(self, other: FeatureStats) -> bool:
        """The checks and trivial cases every merge shares; True when there is work left.

        An empty ``other`` leaves this state as it is; an empty ``self`` becomes a copy of
        ``other``; otherwise the columns must match.
        """
        self._check_mergeable(other)
        if other._columns is None:
            return False
        if self._columns is None:
            self._copy_state_from(other)
            return False
        if other._columns != self._columns:
            raise SchemaError(
                f"cannot merge statistics of columns {other._columns} into {self._columns}; "
                "fit both on the same columns"
            )
        if other._weighted:
            self._set_weighted()
        for name, theirs in other._types.items():
            mine = self._types.get(name)
            if mine is not None and theirs is not None:
                self._types[name] = cols.promoted_type(mine, theirs) or mine
        return True

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Merge ``other`` into this state, in place; returns self. Exact and associative."""
        if not self._start_merge(other):
            return self
        self._null_count += other._null_count
        self._nan_count += other._nan_count
        self._inf_count += other._inf_count
        self._merge_at(
            slice(None), other._count, other._shift, other._shifted_mean, other._m2,
            other._min, other._max, m3=getattr(other, "_m3", None), m4=getattr(other, "_m4", None),
            exponent=other._scale_exp,
        )
        return self

    def _copy_state_from(self, other: FeatureStats) -> None:
        self._columns = list(other._columns or [])
        self._types = dict(other._types)
        self._weighted = other._weighted
        self._exclude = tuple(getattr(other, "_exclude", ()))
        for attr in other._state_arrays():
            setattr(self, attr, getattr(other, attr).copy())

    def copy(self) -> FeatureStats:
        """An independent copy of this state."""
        twin = FeatureStats(
            self._requested, nan=self.nan, target=self.target,  # type: ignore[arg-type]
            moments=self.moments, inf=self.inf,  # type: ignore[arg-type]
        )
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
        """Valid values per column (nulls and NaN excluded), int64, shape (n_columns,).

        With weights: the sum of the weights of the valid values, float64."""
        return self._count.copy()

    @property
    def null_count(self) -> np.ndarray:
        """Arrow nulls per column, int64, shape (n_columns,)."""
        return self._null_count.copy()

    @property
    def nan_count(self) -> np.ndarray:
        """NaN values per column, int64, shape (n_columns,)."""
        return self._nan_count.copy()

    @property
    def inf_count(self) -> np.ndarray:
        """±inf values per column (non-null), int64, shape (n_columns,); with ``inf="skip"``
        they are not in ``count``."""
        return self._inf_count.copy()

    def _poisoned(self) -> np.ndarray:
        """Columns whose results are NaN: no value, or NaN under ``nan="propagate"``."""
        empty = self._count == 0
        if self.nan == "propagate":
            return empty | (self._nan_count > 0)
        return empty

    @property
    def mean(self) -> np.ndarray:
        """Mean per column, float64 (NaN for a column with no valid value)."""
        out = np.ldexp(self._shift + self._shifted_mean, self._scale_exp)
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
        """Sum of squared deviations from the mean per column, float64 (inf where it exceeds
        float64's range: data beyond ~1e154)."""
        with np.errstate(over="ignore"):
            out = np.ldexp(self._m2, 2 * self._scale_exp)
        out[self._poisoned()] = np.nan
        return out

    def _scaled_var(self, ddof: int) -> np.ndarray:
        """``m2 / (count - ddof)`` in the state's units (``2**(2 * scale_exponent)``)."""
        denominator = (self._count - ddof).astype(np.float64)
        out = np.full(self._count.shape, np.nan)
        ok = denominator > 0
        out[ok] = self._m2[ok] / denominator[ok]
        out[self._poisoned()] = np.nan
        return out

    def var(self, ddof: int = 0) -> np.ndarray:
        """Variance per column, ``m2 / (count - ddof)``; NaN where ``count <= ddof``.

        inf where the variance itself exceeds float64's range (a spread beyond ~1.3e154);
        :meth:`std` is finite for any finite data."""
        with np.errstate(over="ignore"):
            return np.ldexp(self._scaled_var(ddof), 2 * self._scale_exp)

    def std(self, ddof: int = 0) -> np.ndarray:
        """Standard deviation per column, ``sqrt(var(ddof))``, computed without overflow."""
        return np.ldexp(np.sqrt(self._scaled_var(ddof)), self._scale_exp)

    def scale(self, ddof: int = 0, eps: float = 0.0) -> np.ndarray:
        """The divisor of per-feature normalization, ``sqrt(var(ddof) + eps)`` per column.

        Computed in the state's units, so it is finite for any finite data (even where the
        variance overflows float64). A constant or near-constant column is scaled by 1 (with
        any ``eps``), by scikit-learn's rule: ``var <= n*e*var + (n*e*mean)**2`` with ``e`` the
        float64 machine epsilon and ``n`` the count, i.e. the variance is at the rounding level
        of the mean and holds no information. NaN where the variance is NaN (no value,
        ``count <= ddof``, or ±inf kept as values). Shape and dtype as :meth:`var`.
        """
        var = self._scaled_var(ddof)  # in units of 4**e
        exponent = self._scale_exp
        n = self._count.astype(np.float64)
        machine_eps = np.finfo(np.float64).eps
        with np.errstate(over="ignore", invalid="ignore"):
            mean = self._shift + self._shifted_mean  # in units of 2**e
            near_constant = var <= n * machine_eps * var + (n * machine_eps * mean) ** 2
            out = np.ldexp(np.sqrt(var + np.ldexp(float(eps), -2 * exponent)), exponent)
        out[near_constant] = 1.0
        return out

    def _require_moments4(self, what: str) -> None:
        if self.moments != 4:
            raise ValueError(f"{what}() needs the third and fourth moments: use moments=4")

    def skew(self) -> np.ndarray:
        """Skewness per column, ``sqrt(n) m3 / m2**1.5`` (``scipy.stats.skew``, bias=True).

        NaN where the column has no value or no spread (m2 == 0). Needs ``moments=4``.
        """
        self._require_moments4("skew")
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.sqrt(self._count.astype(np.float64)) * self._m3 / self._m2**1.5
        out[(self._m2 == 0) | self._poisoned()] = np.nan
        return out

    def kurtosis(self, fisher: bool = True) -> np.ndarray:
        """Kurtosis per column, ``n m4 / m2**2`` minus 3 when ``fisher`` (scipy, bias=True).

        NaN where the column has no value or no spread (m2 == 0). Needs ``moments=4``.
        """
        self._require_moments4("kurtosis")
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self._count.astype(np.float64) * self._m4 / (self._m2 * self._m2)
        out[(self._m2 == 0) | self._poisoned()] = np.nan
        return out - 3.0 if fisher else out

    # ------------------------------------------------------------------ persistence
    def to_arrow(self) -> pa.Table:
        """The state as a table, one row per column (see ``_STATE_FIELDS``); reloads exactly."""
        values: dict[str, Any] = {"column": pa.array(self.columns, pa.string())}
        values.update(self._state_columns())
        types = [self._types.get(c) for c in self.columns]
        values["type"] = pa.array([str(t) if t is not None else None for t in types], pa.string())
        return pa.table(values).replace_schema_metadata(
            {_METADATA_KEY: json.dumps(self._metadata())}
        )

    def _metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"version": _FORMAT_VERSION, "kind": "FeatureStats",
                                "nan": self.nan}
        if self.moments != 2:
            meta["moments"] = self.moments
        if self._weighted:
            meta["weighted"] = True
        if self.inf != "keep":
            meta["inf"] = self.inf
        return meta

    def _state_columns(self) -> dict[str, pa.Array]:
        """The state fields as flat Arrow arrays (row-major over any leading key axis)."""
        raw = {
            "count": self._count, "null_count": self._null_count, "nan_count": self._nan_count,
            "mean": self.mean, "m2": self._m2, "min": self._min, "max": self._max,
            "shift": self._shift, "shifted_mean": self._shifted_mean,
            "inf_count": self._inf_count, "scale_exponent": self._scale_exp,
        }
        if self.moments == 4:
            raw.update(m3=self._m3, m4=self._m4)
        return {
            name: pa.array(np.ravel(raw[name]), arrow_type)
            for name, arrow_type in (*_state_fields(self.moments, self._weighted),
                                     *_OPTIONAL_FIELDS)
        }

    def _load_state(self, table: pa.Table, shape: tuple[int, ...]) -> None:
        """Fill the state arrays (allocated with ``shape``) from a saved table's fields."""
        names = ["count", "null_count", "nan_count", "shift", "shifted_mean", "m2", "min", "max"]
        if self.moments == 4:
            names += ["m3", "m4"]
        for attr in names:
            column = table.column(attr).to_numpy(zero_copy_only=False)
            getattr(self, "_" + attr)[...] = column.reshape(shape)
        for name, attr in (("inf_count", "_inf_count"), ("scale_exponent", "_scale_exp")):
            if name in table.column_names:  # absent from files of older versions: 0
                column = table.column(name).fill_null(0).to_numpy(zero_copy_only=False)
                getattr(self, attr)[...] = column.reshape(shape)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> FeatureStats:
        """Rebuild a state saved by :meth:`to_arrow`."""
        meta = _read_metadata(table.schema.metadata)
        if meta.get("by") and cls is FeatureStats:
            from .grouped import GroupedFeatureStats

            return GroupedFeatureStats.from_arrow(table)
        moments = _check_moments(meta.get("moments", 2))
        table = statsfile.check_state_table(
            table, _state_fields(moments, bool(meta.get("weighted", False)))
        )
        names = table.column("column").to_pylist()
        stats = cls(names, nan=meta.get("nan", "skip"), moments=moments,
                    inf=meta.get("inf", "keep"))
        stats._columns = names
        stats._weighted = bool(meta.get("weighted", False))
        type_names = table.column("type").to_pylist() if "type" in table.column_names else None
        stats._types = {
            name: _parse_type(type_names[i]) if type_names else None for i, name in enumerate(names)
        }
        stats._allocate(len(names))
        stats._load_state(table, (len(names),))
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
        meta = _dict_meta(state)
        if meta.get("by") and cls is FeatureStats:
            from .grouped import GroupedFeatureStats

            return GroupedFeatureStats.from_dict(state)
        schema = cls._rows_schema(meta)
        table = statsfile.rows_table(state["columns"], schema)
        return cls.from_arrow(table.replace_schema_metadata({_METADATA_KEY: json.dumps(meta)}))

    @classmethod
    def _rows_schema(cls, meta: dict[str, Any]) -> pa.Schema:
        """The Arrow schema of the rows of a :meth:`to_dict` state with metadata ``meta``."""
        moments = _check_moments(meta.get("moments", 2))
        fields = _state_fields(moments, bool(meta.get("weighted", False)))
        return pa.schema([("column", pa.string()), *fields, *_OPTIONAL_FIELDS,
                          ("type", pa.string())])

    def save(self, path: str | os.PathLike) -> None:
        """Write the state atomically: ``.json``, or Arrow IPC / Parquet by suffix.

        ``path`` is a local path or an object-store URI string (``s3://bucket/stats.json``).
        """
        location = _location(path)
        if os.fspath(path).lower().endswith(".json"):
            data = (json.dumps(self.to_dict(), indent=1) + "\n").encode()
            with io.atomic_path(location) as tmp:
                filesystem, inner = sources.resolve(tmp)
                with filesystem.open_output_stream(inner, compression=None) as out:
                    out.write(data)
        else:
            io.write_table(self.to_arrow(), location)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStats:
        """Read a state written by :meth:`save` (``.json``, Arrow IPC or Parquet; a local path
        or an object-store URI)."""
        name = os.fspath(path)
        if name.lower().endswith(".json"):
            try:
                filesystem, inner = sources.resolve(name)
                with filesystem.open_input_stream(inner, compression=None) as raw:
                    text = raw.read()
            except FileNotFoundError:
                raise InputError(f"{name}: no such statistics file; check the path") from None
            except OSError as exc:
                raise InputError(f"{name}: cannot read it ({exc}); check the path") from None
            with _naming(name):
                return cls.from_dict(statsfile.parse_json(text))
        try:
            schema, batches = io.schema_and_batches(_location(path))
            table = pa.Table.from_batches(list(batches), schema=schema)
        except StatsFileError:
            raise
        except InputError as exc:  # unreadable, corrupt, or two fields of one name
            raise StatsFileError(str(exc)) from None
        with _naming(name):
            return cls.from_arrow(table)

    # ------------------------------------------------------------------ display
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureStats):
            return NotImplemented
        if (self.columns, self.nan, self.inf, self.moments, self._weighted) != (
            other.columns, other.nan, other.inf, other.moments, other._weighted
        ):
            return False
        return all(
            np.array_equal(getattr(self, attr), getattr(other, attr), equal_nan=True)
            for attr in self._state_arrays()
        )

    def __repr__(self) -> str:
        extra = f", moments={self.moments}" if self.moments != 2 else ""
        return f"FeatureStats(columns={self.columns}, nan={self.nan!r}{extra})"

    def summary(self, ddof: int = 0) -> pa.Table:
        """A readable table: column, count, null_count, nan_count, inf_count, mean, std (with
        ``ddof``), min, max."""
        return pa.table(
            {
                "column": self.columns,
                "count": self.count,
                "null_count": self.null_count,
                "nan_count": self.nan_count,
                "inf_count": self.inf_count,
                "mean": self.mean,
                "std": self.std(ddof),
                "min": self.min,
                "max": self.max,
            }
        )


def valid_and_infinite(view: cols.ColumnView) -> tuple[np.ndarray, np.ndarray]:
    """Two bool masks over the values of ``view``: not null, and not null and ±inf."""
    x = np.asarray(view.values)
    valid = np.ones(len(x), dtype=bool)
    if view.has_validity:
        bits = np.unpackbits(view.validity, bitorder="little")
        valid = bits[view.bit_offset: view.bit_offset + len(x)].astype(bool)
    infinite = valid & np.isinf(x) if x.dtype.kind == "f" else np.zeros(len(x), dtype=bool)
    return valid, infinite


def _first_finite_weighted(view: cols.ColumnView, weights: np.ndarray, kernels: Any) -> float:
    """The first valid finite value of positive weight (0.0 if none): a new column's shift."""
    if not len(weights):
        shift = kernels.first_finite(view.values, view.validity, view.bit_offset,
                                     view.has_validity)
        return 0.0 if math.isnan(shift) else float(shift)
    x = view.values.astype(np.float64)  # runs once per column, until it has a finite value
    valid, _ = valid_and_infinite(view)
    first = np.flatnonzero(valid & (weights[: len(x)] > 0) & np.isfinite(x))
    return float(x[first[0]]) if len(first) else 0.0


def _location(path: str | os.PathLike) -> str | Path:
    """A URI stays a string (``Path`` would fold ``s3://`` into ``s3:/``); a path is a Path."""
    name = os.fspath(path)
    return name if sources.is_uri(name) else Path(name)


def _json_float(value: float) -> float | str:
    """Finite floats stay numbers (Python's repr round-trips exactly); others become strings."""
    return value if math.isfinite(value) else repr(value)


def _read_metadata(metadata: dict[bytes, bytes] | None) -> dict[str, Any]:
    """The checked settings in a statistics table's schema metadata."""
    return statsfile.read_meta(metadata, _METADATA_KEY)


def _dict_meta(state: Any) -> dict[str, Any]:
    """The checked settings of a :meth:`FeatureStats.to_dict` state (all but its rows)."""
    if not isinstance(state, dict) or state.get("kind") != "FeatureStats" or "columns" not in state:
        raise StatsFileError(
            "not a streamnorm statistics file (no FeatureStats state in it); create it with "
            "FeatureStats.save or `streamnorm stats -o`"
        )
    return statsfile.check_meta({k: v for k, v in state.items() if k != "columns"})


@contextlib.contextmanager
def _naming(where: str) -> Iterator[None]:
    """Prefix the message of a :class:`StatsFileError` raised inside with ``where``."""
    try:
        yield
    except StatsFileError as exc:
        raise StatsFileError(f"{where}: {exc}") from None


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
    moments: int = 2,
    by: str | Sequence[str] | None = None,
    weights: str | None = None,
    inf: InfPolicy = "keep",
) -> FeatureStats:
    """Per-column statistics of a whole source (a path or any in-memory source), streamed.

    Files are read one IPC batch or Parquet row group at a time, so memory is bounded by the
    batch, not the file. ``moments``, ``by`` and ``weights`` are as in :class:`FeatureStats`.
    """
    kwargs: dict[str, Any] = {} if inf == "keep" else {"inf": inf}
    stats = FeatureStats(columns, nan=nan, target=target, moments=moments, by=by, **kwargs)
    return stats._update_from(source, batch_size, weights)


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
