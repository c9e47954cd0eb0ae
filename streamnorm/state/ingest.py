"""The ingest paths: one batch's columns into a :class:`~streamnorm.state.merge.Moments`.

:func:`add_batch` picks the path:

* the fast path (:func:`add_located`): same-dtype columns located by buffer address, one
  parallel ``columns_moments_at`` launch per dtype;
* the view path (:func:`add_views`): pieces the fast path cannot locate (dictionary or
  float16 columns, misaligned buffers, chunked columns, the CUDA target), one
  ``columns_moments`` launch per values dtype;
* the extension path (:func:`add_extended`): frequency weights and/or ``moments=4``, through
  the CPU extension kernel whatever the target;
* the careful path (:func:`add_careful`), behind all three: a column whose partial result is
  not finite (it holds ±inf, or its moments overflowed) is left out of the fast merge and
  redone column by column: ±inf counted (and skipped when ``inf="skip"``), overflowing moments
  recomputed on values scaled by 2**-BIG_EXPONENT. Only such columns pay: the common path costs
  one isfinite over k partial results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from .. import columns as cols
from ..kernels import Backend
from .merge import BIG_EXPONENT, Moments


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


def valid_and_infinite(view: cols.ColumnView) -> tuple[np.ndarray, np.ndarray]:
    """Two bool masks over the values of ``view``: not null, and not null and ±inf."""
    x = np.asarray(view.values)
    valid = np.ones(len(x), dtype=bool)
    if view.has_validity:
        bits = np.unpackbits(view.validity, bitorder="little")
        valid = bits[view.bit_offset: view.bit_offset + len(x)].astype(bool)
    infinite = valid & np.isinf(x) if x.dtype.kind == "f" else np.zeros(len(x), dtype=bool)
    return valid, infinite


def first_finite_weighted(view: cols.ColumnView, weights: np.ndarray, kernels: Backend) -> float:
    """The first valid finite value of positive weight (0.0 if none): a new column's shift.
    An empty ``weights`` means unweighted."""
    if not len(weights):
        shift = kernels.first_finite(view.values, view.validity, view.bit_offset,
                                     view.has_validity)
        return 0.0 if math.isnan(shift) else float(shift)
    x = view.values.astype(np.float64)  # runs once per column, until it has a finite value
    valid, _ = valid_and_infinite(view)
    first = np.flatnonzero(valid & (weights[: len(x)] > 0) & np.isfinite(x))
    return float(x[first[0]]) if len(first) else 0.0


def finite_results(count: np.ndarray, *results: np.ndarray) -> np.ndarray:
    """Which partial results can merge as they are: empty, or every field finite."""
    ok = np.isfinite(results[0])
    for field in results[1:]:
        ok &= np.isfinite(field)
    return ok | (np.asarray(count) == 0)


def add_batch(
    state: Moments, batch: pa.RecordBatch, names: Sequence[str], plan: cols.BatchPlan | None,
    kernels: Backend, inf: str, weights: str | None = None,
) -> None:
    """Add the columns ``names`` of ``batch`` (checked against the state's schema) to
    ``state``, entry j for ``names[j]``, by the path that fits (see the module docstring).

    ``plan`` locates the columns in batches of this schema (None: the view path); ``inf`` is
    the ``"keep"``/``"skip"`` policy; ``weights`` names a frequency-weights column.
    """
    if weights is not None or state.moments == 4:
        add_extended(state, batch, names, weights, plan, kernels, inf)
        return
    if plan is not None and isinstance(batch, pa.RecordBatch):
        groups = cols.locate_columns(batch, plan)
        if groups is not None:
            redo: list[int] = []
            for group in groups:
                redo += add_located(state, group, kernels)
            add_careful(state, batch, names, redo, kernels, inf)
            return
    add_by_views(state, batch, names, range(len(names)), kernels, inf)


def add_by_views(
    state: Moments, batch: pa.RecordBatch, names: Sequence[str], entries: Sequence[int],
    kernels: Backend, inf: str,
) -> None:
    """The view path of :func:`add_batch` for the columns ``names[j]``, j in ``entries``."""
    views: list[tuple[int, cols.ColumnView]] = []
    for j in entries:
        for view in cols.column_views(batch.column(names[j])):
            state.null_count[j] += view.null_count
            views.append((j, view))
    if views:
        add_careful(state, batch, names, add_views(state, views, kernels), kernels, inf)


def add_located(state: Moments, group: cols.BufferGroup, kernels: Backend) -> list[int]:
    """Same-dtype columns of a batch, located by address, in one parallel launch.

    Returns the columns whose result is not finite, left for :func:`add_careful`.

    Columns without a shift yet take their first finite value inside the kernel. The same
    bits as :func:`add_views`; it only skips building numpy views and typed Lists, which
    cost about as much as the kernel itself on 64k-row batches.
    """
    idx = group.positions
    count, nan_count, shifted_mean, m2, lo, hi, shift = kernels.columns_moments_at(
        group.like, group.addresses, group.lengths, group.validity_addresses,
        group.bit_offsets, group.has_validity, state.shift[idx],
    )
    state.null_count[idx] += group.lengths - count - nan_count  # each value is one of these
    state.nan_count[idx] += nan_count
    ok = finite_results(count, shifted_mean, m2, lo, hi)
    if ok.all():
        state.merge_at(idx, count, shift, shifted_mean, m2, lo, hi)
        return []
    state.merge_at(idx[ok], count[ok], shift[ok], shifted_mean[ok], m2[ok], lo[ok], hi[ok])
    return [int(j) for j in np.asarray(idx)[~ok]]


def add_views(state: Moments, views: list[tuple[int, cols.ColumnView]], kernels: Backend) -> list[int]:
    """Column pieces ``(entry, view)`` of a batch in one ``columns_moments`` launch per values
    dtype (their null counts are the caller's).

    Returns the columns with a piece whose result is not finite: none of their pieces is
    merged here, all are left for :func:`add_careful`.

    One parallel launch over (column, chunk) tasks balances the threads and avoids a launch
    per column; merging in column-then-chunk order gives the same bits as ``column_moments``
    one piece at a time.
    """
    shifts: dict[int, float] = {}
    for j, view in views:  # each column's shift: its state's, else its first finite value
        if j in shifts:
            continue
        shift = state.shift[j]
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
            [v.values for _, v in pieces],
            [v.validity for _, v in pieces],
            np.array([v.bit_offset for _, v in pieces], dtype=np.int64),
            np.array([v.has_validity for _, v in pieces], dtype=np.bool_),
            np.array([shifts.get(j, 0.0) for j, _ in pieces]),
        )
        for k, i in enumerate(members):
            results[i] = tuple(field[k] for field in fields)
    count, nan_count, shifted_mean, m2, lo, hi = (np.array(field) for field in zip(*results))
    positions = np.array([j for j, _ in views])
    np.add.at(state.nan_count, positions, nan_count)
    shift = np.array([shifts.get(j, 0.0) for j in positions.tolist()])
    redo = positions[~finite_results(count, shifted_mean, m2, lo, hi)]
    if len(redo):
        keep = ~np.isin(positions, redo)
        positions, count, shift, shifted_mean, m2, lo, hi = (
            a[keep] for a in (positions, count, shift, shifted_mean, m2, lo, hi))
        if not len(positions):
            return [int(j) for j in redo]
    # a chunked column's pieces merge in order: its first pieces in one call, then its
    # second pieces, ...; each call then holds distinct columns, as merge_at needs
    rank = np.zeros(len(positions), dtype=np.int64)
    pieces_seen: dict[int, int] = {}
    for i, j in enumerate(positions.tolist()):
        rank[i] = pieces_seen.get(j, 0)
        pieces_seen[j] = rank[i] + 1
    for r in range(int(rank.max()) + 1):
        at = rank == r
        state.merge_at(positions[at], count[at], shift[at], shifted_mean[at], m2[at],
                       lo[at], hi[at])
    return [int(j) for j in redo]


def add_extended(
    state: Moments, batch: pa.RecordBatch, names: Sequence[str], weights: str | None,
    plan: cols.BatchPlan | None, kernels: Backend, inf: str,
) -> None:
    """Weighted and/or higher-moment update: one ``columns_moments_ext_at`` call per values
    dtype over the columns located by address (``columns_moments_ext`` over numpy views when
    they cannot be located), serial for small batches (the extension kernels run on the CPU
    whatever the target). The same bits as one ``column_moments_ext`` per column."""
    w = weights_array(batch, weights) if weights is not None else np.zeros(0)
    if weights is not None:
        state.set_weighted()
    has_weights, higher = weights is not None, state.moments == 4

    def piece(j: int) -> cols.ColumnView | None:
        column = batch.column(names[j])
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        return next(cols.column_views(column), None)  # one piece: the chunks are combined

    def shifts_of(positions: np.ndarray) -> np.ndarray:
        shifts = state.shift[positions]
        for i in np.flatnonzero(np.isnan(shifts)).tolist():  # until a column has a value
            view = piece(int(positions[i]))
            shifts[i] = 0.0 if view is None else first_finite_weighted(view, w, kernels)
        return shifts

    groups = None
    if plan is not None and isinstance(batch, pa.RecordBatch):
        groups = cols.locate_columns(batch, plan)
    if groups is not None:
        for group in groups:
            idx = np.asarray(group.positions)
            shifts = shifts_of(idx)
            result = kernels.columns_moments_ext_at(
                group.like, group.addresses, group.lengths, group.validity_addresses,
                group.bit_offsets, group.has_validity, w, has_weights, higher, shifts)
            merge_extended(state, batch, names, idx, shifts, result, w if has_weights else None,
                           kernels, inf)
        return
    by_dtype: dict[np.dtype, list[tuple[int, cols.ColumnView]]] = {}
    for j in range(len(names)):
        view = piece(j)
        if view is not None:
            by_dtype.setdefault(view.values.dtype, []).append((j, view))
    for pieces in by_dtype.values():
        idx = np.array([j for j, _ in pieces], dtype=np.intp)
        shifts = shifts_of(idx)
        result = kernels.columns_moments_ext(
            [v.values for _, v in pieces], [v.validity for _, v in pieces],
            np.array([v.bit_offset for _, v in pieces], dtype=np.int64),
            np.array([v.has_validity for _, v in pieces], dtype=np.bool_),
            w, has_weights, higher, shifts)
        merge_extended(state, batch, names, idx, shifts, result, w if has_weights else None,
                       kernels, inf)


def merge_extended(
    state: Moments, batch: pa.RecordBatch, names: Sequence[str], idx: np.ndarray,
    shifts: np.ndarray, result: tuple[np.ndarray, ...], weights: np.ndarray | None,
    kernels: Backend, inf: str,
) -> None:
    """Merge the extension kernel's results for the entries ``idx`` (distinct) in one
    vectorised merge; a column whose result is not finite takes the careful path."""
    wsum, nan_c, null_c, mean, m2, m3, m4, lo, hi = result
    state.null_count[idx] += null_c
    state.nan_count[idx] += nan_c
    ok = finite_results(wsum, mean, m2, lo, hi)
    at = slice(None) if ok.all() else ok
    state.merge_at(idx[at], wsum[at], shifts[at], mean[at], m2[at], lo[at], hi[at],
                   m3=m3[at], m4=m4[at])
    for j in idx[~ok].tolist():
        column = batch.column(names[j])
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        for view in cols.column_views(column):
            add_view_careful(state, j, view, kernels, inf, weights)


def add_careful(
    state: Moments, batch: pa.RecordBatch, names: Sequence[str], redo: list[int], kernels: Backend,
    inf: str,
) -> None:
    """Merge the columns ``redo`` (entries of ``names``) of ``batch`` through
    :func:`add_view_careful`."""
    for j in sorted(set(redo)):
        for view in cols.column_views(batch.column(names[j])):
            add_view_careful(state, j, view, kernels, inf)


def add_view_careful(
    state: Moments, j: int, view: cols.ColumnView, kernels: Backend, inf: str,
    weights: np.ndarray | None = None,
) -> None:
    """Moments of one column piece whose fast result was not finite, merged into entry ``j``
    (its null and NaN counts are already taken).

    ±inf are counted in ``inf_count``; with ``inf="skip"`` they are masked out like nulls.
    If the remaining values are finite but their moments overflow float64, the moments are
    taken again on the values times ``2**-BIG_EXPONENT`` (exact) and kept in those units.
    ``weights`` (float64, the batch's) routes through the extension kernel.
    """
    x = np.asarray(view.values, dtype=np.float64)
    valid, infinite = valid_and_infinite(view)
    n_inf = int(np.count_nonzero(infinite))
    state.inf_count[j] += n_inf
    validity, bit_offset, has_validity = view.validity, view.bit_offset, view.has_validity
    if n_inf and inf == "skip":
        validity = np.packbits(valid & ~infinite, bitorder="little")
        bit_offset, has_validity = 0, True
    shift = float(np.ldexp(state.shift[j], state.scale_exp[j]))
    exponent = 0
    piece = cols.ColumnView(x, validity, bit_offset, 1 if has_validity else 0)
    result = piece_moments(piece, shift, weights, state.moments, kernels)
    lo, hi = result[4:6]  # min/max never overflow, and scaling could round tiny ones
    # m3/m4 are left out: rescaling for them alone could underflow the small deviations
    overflowed = not np.all(finite_results(result[0], *result[1:6]))
    if overflowed and (n_inf == 0 or inf == "skip"):
        exponent = BIG_EXPONENT
        scaled = cols.ColumnView(np.ldexp(x, -exponent), validity, bit_offset,
                                 1 if has_validity else 0)
        scaled_shift = float(np.ldexp(shift, -exponent)) if not math.isnan(shift) else shift
        result = piece_moments(scaled, scaled_shift, weights, state.moments, kernels)
    count, shift_used, mean, m2, _, _, *higher = result
    state.merge_at(
        np.array([j]), np.array([count]), np.array([shift_used]), np.array([mean]),
        np.array([m2]), np.array([lo]), np.array([hi]),
        m3=np.array(higher[:1]) if higher else None,
        m4=np.array(higher[1:]) if higher else None, exponent=np.array([exponent]),
    )


def piece_moments(
    view: cols.ColumnView, shift: float, weights: np.ndarray | None, moments: int, kernels: Backend,
) -> tuple[Any, ...]:
    """(count, shift, shifted_mean, m2, min, max[, m3, m4]) of a float64 view; a NaN
    ``shift`` becomes the first valid finite value (of positive weight), else 0."""
    x, validity, bit_offset, has_validity = (view.values, view.validity, view.bit_offset,
                                             view.has_validity)
    if weights is not None or moments == 4:
        w = weights if weights is not None else np.zeros(0)
        if math.isnan(shift):
            shift = first_finite_weighted(view, w, kernels)
        wsum, _, _, mean, m2, m3, m4, lo, hi = kernels.column_moments_ext(
            x, validity, bit_offset, has_validity, w, weights is not None, moments == 4, shift,
        )
        return wsum, shift, mean, m2, lo, hi, m3, m4
    if math.isnan(shift):
        found = kernels.first_finite(x, validity, bit_offset, has_validity)
        shift = 0.0 if math.isnan(found) else float(found)
    count, _, mean, m2, lo, hi = kernels.column_moments(x, validity, bit_offset, has_validity,
                                                        shift)
    return count, shift, mean, m2, lo, hi
