"""The CPU backend: Numba kernels over host numpy arrays (see :class:`.api.Backend`).

The kernels live by job in :mod:`.cpu_moments` (per-feature moments), :mod:`.cpu_rows` (per
row), :mod:`.cpu_map` (elementwise normalization) and :mod:`.cpu_ext` (weights, M3/M4,
groups). This module is the backend's face: the functions of the protocol, a few of them
plain-Python wrappers that

* take several columns as ANY sequence of numpy arrays (list, tuple, numba typed List) and
  pass them to the kernels by address (:func:`.memory.addresses_of`), so no numba typed List
  is built per batch;
* choose between a serial and a parallel kernel in Python: a cached njit function that calls a
  parallel one can crash when loaded from the cache (numba issue 8578), so none does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import cpu_block, cpu_ext, cpu_map, cpu_moments, cpu_rows, cpu_small, cpu_update
from .cache_load import quick_cache_loads
from .cpu_ext import column_moments_ext, grouped_moments, pebay_merge
from .cpu_map import denormalize_column, normalize_column
from .cpu_moments import BLOCK, CHUNK, SERIAL_MAX_VALUES, chan_merge, first_finite
from .cpu_rows import (
    LAYER_TILE_BYTES,
    ROW_BLOCK,
    normalize_rows_matrix,
    row_moments_matrix,
)
from .memory import addresses_of

#: This backend's target name.
TARGET = "cpu"
#: :func:`layer_norm_columns` is provided (the fused per-row LayerNorm / RMSNorm).
FUSED_ROW_NORM = True

#: The modules holding this backend's compiled kernels (for cache checks and warm-up).
KERNEL_MODULES = (cpu_block, cpu_moments, cpu_rows, cpu_map, cpu_ext, cpu_small, cpu_update)
for _module in KERNEL_MODULES:  # cached kernels load without numba's compiler set-up
    quick_cache_loads(_module)

__all__ = [
    "BLOCK", "CHUNK", "FUSED_ROW_NORM", "KERNEL_MODULES", "LAYER_TILE_BYTES", "ROW_BLOCK",
    "SERIAL_MAX_VALUES", "TARGET", "chan_merge", "column_moments", "column_moments_ext",
    "columns_moments", "columns_moments_at", "columns_moments_ext",
    "columns_moments_ext_at", "denormalize_column", "denormalize_columns", "first_finite",
    "grouped_moments", "layer_norm_columns", "normalize_column", "normalize_columns",
    "normalize_rows_columns", "normalize_rows_matrix", "pebay_merge", "row_moments_columns",
    "row_moments_matrix",
]


def _like(arrays: Sequence[np.ndarray], default: np.dtype = np.dtype(np.float64)) -> np.ndarray:
    """An empty array of the dtype of ``arrays`` (``default`` when there are none)."""
    return np.empty(0, dtype=arrays[0].dtype if len(arrays) else default)


def _validity_addresses(validities: Sequence[np.ndarray], has_validity: np.ndarray,
                        bit_offsets: np.ndarray, lengths: np.ndarray) -> tuple[
        list[np.ndarray], np.ndarray]:
    """(keep, address int64[k]) of the validity bitmaps (0 where a column has none).

    Raises ``ValueError`` when a bitmap read is shorter than its column's bits (the kernel
    would read past its end)."""
    keep = [np.ascontiguousarray(v, dtype=np.uint8) for v in validities]
    addresses = np.zeros(len(lengths), dtype=np.int64)
    for j, has in enumerate(np.asarray(has_validity, dtype=np.bool_).tolist()):
        if has:
            if keep[j].shape[0] < (int(bit_offsets[j]) + int(lengths[j]) + 7) // 8:
                raise ValueError(f"validity bitmap {j} is shorter than its column")
            addresses[j] = keep[j].ctypes.data
    return keep, addresses


def _check_rows(lengths: np.ndarray, n_rows: int, what: str) -> None:
    """The per-row kernels read ``n_rows`` values of every column: refuse shorter ones
    (reading past their end) rather than trust the caller."""
    if (lengths != n_rows).any():
        raise ValueError(f"{what} must all hold {n_rows} rows, got lengths {lengths.tolist()}")


def column_moments(values: np.ndarray, validity: np.ndarray, bit_offset: int,
                   has_validity: bool, shift: float) -> tuple:
    """Moments of one column of any numeric dtype, nulls and NaN skipped.

    Parameters
    ----------
    values : 1-D numpy array, shape (n,), any int/uint/float32/float64 dtype.
    validity : uint8 array, Arrow packed validity bitmap (ignored unless ``has_validity``).
    bit_offset : int, bit index of ``values[0]`` in ``validity``.
    has_validity : bool, whether to honour ``validity``.
    shift : float64, subtracted from every value before accumulation (the column's shift).

    Returns
    -------
    (count, nan_count, shifted_mean, m2, minimum, maximum)
        ``count`` and ``nan_count`` as int64; ``shifted_mean`` is the mean of ``x - shift``;
        ``m2`` the sum of squared deviations from the mean; min/max NaN when count is 0.

    Chunks of ``CHUNK`` values run in parallel (one chunk or less: no parallel launch) and
    merge serially in chunk order, so the result does not depend on the number of threads.
    """
    kernel = (cpu_moments.serial_column_moments if values.shape[0] <= CHUNK
              else cpu_moments.parallel_column_moments)
    return kernel(values, validity, bit_offset, has_validity, shift)


def columns_moments_at(like: np.ndarray, addresses: np.ndarray, lengths: np.ndarray,
                       validity_addresses: np.ndarray, bit_offsets: np.ndarray,
                       has_validity: np.ndarray, shifts: np.ndarray,
                       serial: bool | None = None) -> tuple:
    """:func:`.cpu_moments.columns_moments_at`: moments of k same-dtype columns by address.

    One parallel launch over (column, chunk) tasks; at most :data:`SERIAL_MAX_VALUES` values
    in all run serially in this thread instead (no launch). Both give the same bits; ``serial``
    forces a path (tests). Returns ``(count, nan_count, shifted_mean, m2, minimum, maximum,
    shift_used)``, arrays of shape (k,).
    """
    if serial is None:
        serial = int(lengths.sum()) <= SERIAL_MAX_VALUES
    kernel = (cpu_moments.serial_columns_moments_at if serial
              else cpu_moments.columns_moments_at)
    return kernel(like, addresses, lengths, validity_addresses, bit_offsets, has_validity,
                  shifts)


def columns_moments(columns: Sequence[np.ndarray], validities: Sequence[np.ndarray],
                    bit_offsets: np.ndarray, has_validity: np.ndarray,
                    shifts: np.ndarray) -> tuple:
    """:func:`column_moments` of several same-dtype columns in one parallel launch (serial
    for small inputs, as :func:`columns_moments_at`).

    ``columns``/``validities``: sequences of k arrays (the columns may differ in length);
    ``bit_offsets`` int64[k], ``has_validity`` bool[k], ``shifts`` float64[k] (NaN: the
    column's first finite value, as :func:`columns_moments_at`). Each column gives the same
    bits as :func:`column_moments` on it.

    Returns ``(count int64[k], nan_count int64[k], shifted_mean[k], m2[k], minimum[k],
    maximum[k])``.
    """
    keep, addresses, lengths = addresses_of(columns)
    bitmaps, validity_addresses = _validity_addresses(validities, has_validity, bit_offsets,
                                                      lengths)
    result = columns_moments_at(
        _like(keep), addresses, lengths, validity_addresses,
        np.asarray(bit_offsets, dtype=np.int64), np.asarray(has_validity, dtype=np.bool_),
        np.asarray(shifts, dtype=np.float64),
    )
    del keep, bitmaps  # read by the kernel: alive until it returned
    return result[:6]


def columns_moments_ext(columns: Sequence[np.ndarray], validities: Sequence[np.ndarray],
                        bit_offsets: np.ndarray, has_validity: np.ndarray, weights: np.ndarray,
                        has_weights: bool, higher: bool, shifts: np.ndarray,
                        serial: bool | None = None) -> tuple:
    """:func:`column_moments_ext` of k same-dtype columns of one batch in one call.

    ``columns``/``validities``/``bit_offsets``/``has_validity`` as :func:`columns_moments`;
    ``weights`` float64 (row i of every column; read if ``has_weights``), ``higher`` as
    :func:`column_moments_ext`; ``shifts`` float64[k], finite (the caller picks them). One
    parallel launch over (column, chunk) tasks, or, for at most :data:`SERIAL_MAX_VALUES`
    values in all, a serial call: the same bits either way, and the same as
    :func:`column_moments_ext` column by column. ``serial`` forces a path (tests).

    Returns the nine results of :func:`column_moments_ext` as arrays of shape (k,).
    """
    keep, addresses, lengths = addresses_of(columns)
    bitmaps, validity_addresses = _validity_addresses(validities, has_validity, bit_offsets,
                                                      lengths)
    result = columns_moments_ext_at(
        _like(keep), addresses, lengths, validity_addresses,
        np.asarray(bit_offsets, dtype=np.int64), np.asarray(has_validity, dtype=np.bool_),
        weights, has_weights, higher, shifts, serial)
    del keep, bitmaps  # read by the kernel: alive until it returned
    return result


def columns_moments_ext_at(like: np.ndarray, addresses: np.ndarray, lengths: np.ndarray,
                           validity_addresses: np.ndarray, bit_offsets: np.ndarray,
                           has_validity: np.ndarray, weights: np.ndarray, has_weights: bool,
                           higher: bool, shifts: np.ndarray, serial: bool | None = None) -> tuple:
    """:func:`columns_moments_ext` of columns given by buffer address (as
    :func:`columns_moments_at`; the caller keeps the memory alive). Serial for at most
    :data:`SERIAL_MAX_VALUES` values, else one parallel launch: the same bits."""
    if has_weights and len(lengths) and int(lengths.max()) > len(weights):
        raise ValueError("weights must cover every row of the columns")
    if serial is None:
        serial = int(lengths.sum()) <= SERIAL_MAX_VALUES
    kernel = (cpu_ext.serial_columns_moments_ext_at if serial
              else cpu_ext.columns_moments_ext_at)
    return kernel(like, addresses, lengths, validity_addresses, bit_offsets, has_validity,
                  np.ascontiguousarray(weights, dtype=np.float64), bool(has_weights),
                  bool(higher), np.asarray(shifts, dtype=np.float64))


def row_moments_columns(columns: Sequence[np.ndarray], validities: Sequence[np.ndarray],
                        bit_offsets: np.ndarray, has_validity: np.ndarray) -> tuple:
    """Per-row moments across same-dtype 1-D columns of equal length (any sequence).

    ``validities[k]``/``bit_offsets[k]``/``has_validity[k]`` describe column k. Returns
    ``(count int64[n], mean float64[n], m2 float64[n])`` as :func:`row_moments_matrix`
    (mean/m2 NaN where count is 0); independent of the thread count.
    """
    keep, addresses, lengths = addresses_of(columns)
    n_rows = int(lengths[0]) if len(lengths) else 0
    _check_rows(lengths, n_rows, "columns")
    bitmaps, validity_addresses = _validity_addresses(validities, has_validity, bit_offsets,
                                                      lengths)
    result = cpu_rows.row_moments_columns_at(
        _like(keep), addresses, n_rows, validity_addresses,
        np.asarray(bit_offsets, dtype=np.int64), np.asarray(has_validity, dtype=np.bool_),
    )
    del keep, bitmaps
    return result


def normalize_rows_columns(columns: Sequence[np.ndarray], center: np.ndarray,
                           scale: np.ndarray, outs: Sequence[np.ndarray]) -> None:
    """Row-wise ``outs[k][r] = (columns[k][r] - center[r]) / scale[r]`` across same-dtype
    columns of ``len(center)`` values, into contiguous arrays ``outs`` of one dtype."""
    keep, addresses, lengths = addresses_of(columns)
    out_keep, out_addresses, out_lengths = addresses_of(outs, writable=True)
    if not len(keep):
        return
    if len(out_keep) < len(keep):
        raise ValueError("one output per column is needed")
    _check_rows(lengths, len(center), "columns")
    _check_rows(out_lengths[: len(keep)], len(center), "outs")
    cpu_rows.normalize_rows_columns_at(
        _like(keep), addresses, np.asarray(center, dtype=np.float64),
        np.asarray(scale, dtype=np.float64), _like(out_keep), out_addresses,
    )
    del keep, out_keep


def layer_norm_columns(columns: Sequence[np.ndarray], validities: Sequence[np.ndarray],
                       bit_offsets: np.ndarray, has_validity: np.ndarray, rms: bool,
                       eps: float, ddof: int, propagate: bool, out: np.ndarray) -> None:
    """Per-row LayerNorm / RMSNorm across same-dtype columns, fused (one read from memory).

    ``columns``/``validities``/``bit_offsets``/``has_validity`` as in
    :func:`row_moments_columns`; ``out`` float32/float64, shape (k, n_rows), C order, receives
    column k normalized in ``out[k]``. See :func:`.cpu_rows.layer_norm_columns_at`.
    """
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    keep, addresses, lengths = addresses_of(columns)
    if out.ndim != 2 or out.shape[0] != len(keep):
        raise ValueError(f"out must have shape ({len(keep)}, n_rows), got {out.shape}")
    _check_rows(lengths, out.shape[1], "columns")
    bitmaps, validity_addresses = _validity_addresses(validities, has_validity, bit_offsets,
                                                      lengths)
    cpu_rows.layer_norm_columns_at(
        _like(keep), addresses, validity_addresses, np.asarray(bit_offsets, dtype=np.int64),
        np.asarray(has_validity, dtype=np.bool_), bool(rms), float(eps), int(ddof),
        bool(propagate), out,
    )
    del keep, bitmaps


def _map_columns(columns: Sequence[np.ndarray], centers: np.ndarray, scales: np.ndarray,
                 outs: Sequence[np.ndarray], inverse: bool) -> None:
    keep, addresses, lengths = addresses_of(columns)
    out_keep, out_addresses, out_lengths = addresses_of(outs, writable=True)
    if not len(keep):
        return
    if len(out_keep) < len(keep) or (out_lengths[: len(keep)] < lengths).any():
        raise ValueError("each output must be as long as its column")
    kernel = (cpu_map.map_columns_serial_at if int(lengths.sum()) <= CHUNK
              else cpu_map.map_columns_parallel_at)
    kernel(_like(keep), addresses, lengths, np.asarray(centers, dtype=np.float64),
           np.asarray(scales, dtype=np.float64), _like(out_keep), out_addresses, inverse)
    del keep, out_keep


def normalize_columns(columns: Sequence[np.ndarray], centers: np.ndarray, scales: np.ndarray,
                      outs: Sequence[np.ndarray]) -> None:
    """:func:`normalize_column` over several same-dtype columns (any sequence; lengths may
    differ): ``outs[k][i] = (columns[k][i] - centers[k]) / scales[k]``, ``outs`` contiguous
    arrays of one dtype. One parallel launch over (column, chunk) pairs; none for inputs of
    one chunk or less in all."""
    _map_columns(columns, centers, scales, outs, False)


def denormalize_columns(columns: Sequence[np.ndarray], centers: np.ndarray, scales: np.ndarray,
                        outs: Sequence[np.ndarray]) -> None:
    """:func:`denormalize_column` over several columns: ``outs[k] = columns[k] * scales[k] +
    centers[k]`` (as :func:`normalize_columns`; no fused multiply-add)."""
    _map_columns(columns, centers, scales, outs, True)
