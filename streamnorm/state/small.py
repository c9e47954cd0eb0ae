"""The small-batch path: a record batch of at most ``SERIAL_MAX_VALUES`` values added to a
:class:`~streamnorm.state.merge.Moments` in one or two compiled calls (issue 14).

A 1-row update through :func:`~streamnorm.state.ingest.add_batch` costs about 150 µs, almost
none of it arithmetic: ~45 µs in the numpy merge (a temporary per term), ~20 µs locating the
columns, and a call per step. Here the steps run in :mod:`streamnorm.kernels.cpu_small`:

* plain statistics: locate, serial moments and the in-place merge in one call;
* weights and/or ``moments=4``: the serial extension kernel (weights read by address), then
  the in-place merge, with numpy's ``d_n ** 3`` between them as the general merge takes it.

Plain statistics of a larger record batch take the same route with the moments in one parallel
launch (:func:`streamnorm.kernels.cpu_update.parallel_update_at`): over 65,536-row batches the
general path's Python and numpy steps cost about 0.3-0.5 ms of CPU per batch, run cache-cold
after the kernel has streamed the batch (weights and ``moments=4`` stay on the general path
there, where the extension kernel dominates).

The same bits as the general path for the same batching (``tests/test_small_batches.py``):
the same kernels, and a merge that repeats :func:`~streamnorm.state.merge.merge_moment_arrays`
operation for operation. Anything uncommon is handed back: :func:`add_small` returns False
with the state untouched when the batch does not fit (a buffer not readable by address,
weights that are not plain float64 without nulls or are invalid, a column with no shift yet
under weights or ``moments=4``, the first weighted batch), and columns the kernel leaves
(a scale exponent, a non-finite result) go through ``Moments.merge_at`` or the careful path,
as :func:`~streamnorm.state.ingest.add_batch` would take them.

What depends only on the schema is worked out once per schema by :func:`plan_small` (cached
by the caller with the schema's :class:`~streamnorm.columns.BatchPlan`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from .. import columns as cols
from ..kernels import Backend
from .ingest import add_by_views, add_view_careful, weights_array
from .merge import Moments

_kernels: Any = None
_parallel: Any = None


def small_kernels() -> Any:
    """:mod:`streamnorm.kernels.cpu_small`, imported on first use (it loads numba)."""
    global _kernels
    if _kernels is None:
        from ..kernels import cpu_small

        _kernels = cpu_small
    return _kernels


def parallel_update() -> Any:
    """:func:`streamnorm.kernels.cpu_update.parallel_update_at`, imported on first use."""
    global _parallel
    if _parallel is None:
        from ..kernels import cpu_update

        _parallel = cpu_update.parallel_update_at
    return _parallel


@dataclass(frozen=True)
class SmallPlan:
    """What the small-batch path needs of batches of one schema.

    ``groups`` holds, per values dtype of :class:`~streamnorm.columns.BatchPlan`, ``(like,
    positions, children, status, partial, d_n)``: the plan's three arrays and the kernels'
    scratch outputs (int8[k], float64[6 or 9, k], float64[k]), allocated once. ``max_rows``
    is the largest batch it takes (the serial kernels' limit, ``SERIAL_MAX_VALUES`` values in
    all);
    ``weights_child`` the child index of the weights column when it is float64 (-1: no
    weights, or weights of another type, which the general path converts).
    """

    groups: list[tuple[np.ndarray, ...]]
    max_rows: int
    weights: str | None
    weights_child: int


def plan_small(schema: pa.Schema, plan: cols.BatchPlan | None, weights: str | None,
               moments: int, kernels: Backend) -> SmallPlan | None:
    """The :class:`SmallPlan` of batches of ``schema`` (``plan`` made for it), or None when the
    small-batch path never applies: no plan (columns to convert first), or a target other than
    the CPU."""
    if plan is None or kernels.TARGET != "cpu":
        return None
    rows = 9 if weights is not None or moments == 4 else 6
    groups = [(like, positions, children, np.zeros(len(positions), dtype=np.int8),
               np.zeros((rows, len(positions))), np.zeros(len(positions)))
              for like, positions, children in plan.groups]
    n_columns = sum(len(positions) for _, positions, _ in plan.groups)
    max_rows = kernels.SERIAL_MAX_VALUES // max(1, n_columns)
    child = -1
    if weights is not None:
        index = schema.get_field_index(weights)
        if index >= 0 and schema.field(index).type == pa.float64():
            child = index
    return SmallPlan(groups, max_rows, weights, child)


def add_small(state: Moments, batch: pa.RecordBatch, names: Sequence[str], small: SmallPlan,
              kernels: Backend, inf: str) -> bool:
    """Add ``batch`` (a batch of the planned schema) to ``state`` by the small-batch path (the
    parallel call for plain statistics of a batch over ``small.max_rows``); False, with
    nothing changed, when it does not fit (see the module docstring): take the general path
    then."""
    if not isinstance(batch, pa.RecordBatch):
        return False
    extended = small.weights is not None or state.moments == 4
    serial = batch.num_rows <= small.max_rows
    if extended and not (serial and _extended_fits(state, small)):
        return False
    capsule, struct = cols.exported_batch(batch)
    fast = small_kernels()
    update_at = fast.update_at if serial else parallel_update()
    if extended:
        done = _add_extended(state, batch, names, small, struct, kernels, inf, fast)
        del capsule  # the structs have been read
        return done
    s = state
    for g, (like, positions, children, status, partial, _) in enumerate(small.groups):
        left = update_at(struct, children, positions, like, s.null_count, s.nan_count,
                         s.count, s.shift, s.shifted_mean, s.m2, s.min, s.max,
                         s.scale_exp, status, partial)
        if left < 0:
            if g == 0:
                return False
            # a later dtype group has a buffer not readable by address: its columns (and
            # those after it) through numpy views, as the general path takes the whole batch
            rest = np.concatenate([group[1] for group in small.groups[g:]])
            add_by_views(state, batch, names, rest.tolist(), kernels, inf)
            break
        if left:
            count, *rest_partial = partial
            _finish(state, batch, names, positions, status.copy(),
                    (count.astype(s.count.dtype), *(a.copy() for a in rest_partial)), None,
                    kernels, inf)
    del capsule  # the structs have been read
    return True


def _extended_fits(state: Moments, small: SmallPlan) -> bool:
    """Whether a weighted / ``moments=4`` batch fits: weights readable by address and the
    state already weighted, and every tracked column with a shift (its first value seen)."""
    if small.weights is not None and (small.weights_child < 0 or not state.weighted):
        return False
    return not np.isnan(state.shift).any()


def _add_extended(state: Moments, batch: pa.RecordBatch, names: Sequence[str],
                  small: SmallPlan, struct: int, kernels: Backend, inf: str, fast: Any) -> bool:
    """:func:`add_small` for weights and/or ``moments=4``: every group's moments first (so
    that a batch handed back has changed nothing), then the merges."""
    s = state
    higher = state.moments == 4
    for like, positions, children, _, partial, d_n in small.groups:
        if not fast.ext_moments_at(struct, children, like, small.weights_child, higher,
                                   s.count, s.shift, s.shifted_mean, positions, partial, d_n):
            return False  # bad or unreadable weights: the general path says which
    nothing = np.zeros(0)
    m3, m4 = (s.m3, s.m4) if higher else (nothing, nothing)
    for like, positions, children, status, partial, d_n in small.groups:
        shifts = s.shift[positions]
        if higher:
            with np.errstate(over="ignore", invalid="ignore"):
                cube = d_n ** 3  # numpy's power, as the general merge takes it
        else:
            cube = nothing
        left = fast.merge_ext_into(s.null_count, s.nan_count, s.count, s.shift,
                                   s.shifted_mean, s.m2, m3, m4, s.min, s.max, s.scale_exp,
                                   positions, partial, cube, higher, status)
        if left:
            wsum, _, _, mean, m2, p_m3, p_m4, lo, hi = partial.copy()
            weights = (weights_array(batch, small.weights) if small.weights is not None
                       else None)
            _finish(state, batch, names, positions, status.copy(),
                    (wsum, shifts, mean, m2, lo, hi, p_m3, p_m4), weights, kernels, inf)
    return True


def _finish(state: Moments, batch: pa.RecordBatch, names: Sequence[str], positions: np.ndarray,
            status: np.ndarray, partial: tuple[np.ndarray, ...], weights: np.ndarray | None,
            kernels: Backend, inf: str) -> None:
    """The columns the kernel left: the general merge for ``GENERAL``, the careful path
    (from the batch's values, with the batch's ``weights``) for ``CAREFUL``."""
    fast = small_kernels()
    general = status == fast.GENERAL
    if general.any():
        count, shift, mean, m2, lo, hi, *higher = (a[general] for a in partial)
        state.merge_at(positions[general], count, shift, mean, m2, lo, hi,
                       m3=higher[0] if higher else None, m4=higher[1] if higher else None)
    for j in positions[status == fast.CAREFUL].tolist():
        for view in cols.column_views(batch.column(names[j])):
            add_view_careful(state, j, view, kernels, inf, weights)
