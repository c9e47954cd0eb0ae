"""The declared interface of a kernel backend: what :func:`streamnorm.kernels.backend` returns.

Both backends, :mod:`streamnorm.kernels.cpu` and :mod:`streamnorm.kernels.cuda`, are modules
providing every member below, so callers use them without probing (no ``hasattr``). All take
and return HOST numpy arrays; both give the same results (CUDA moments to the last bits, see
its module docstring). Conventions:

* a column is a 1-D numpy array of any int/uint/float32/float64 dtype; its nulls are an Arrow
  LSB-first packed validity bitmap (uint8 array) plus the bit index of the column's first
  value, read only where ``has_validity`` is true;
* "several columns" is any sequence (list, tuple) of such arrays of ONE dtype; outputs are
  C-contiguous float32 or float64 arrays the kernel writes into;
* moments accumulate in float64, with a per-column ``shift`` subtracted first (docs/design.md §4);
  results do not depend on the thread count.

Which target runs what
----------------------
=========================  =====================  =========================================
member                     cpu                    cuda
=========================  =====================  =========================================
column_moments …           kernel                 device kernel
normalize_rows_columns     (all the moment,       (same)
                           row and map kernels)
columns_moments_at         kernel (serial up to   host view of each address, then
                           SERIAL_MAX_VALUES      ``columns_moments`` on the device; up to
                           values, else one       SERIAL_MAX_VALUES values the serial CPU
                           parallel launch)       kernel, on the host (same bits)
first_finite               kernel                 the CPU kernel (stops at the first value)
column_moments_ext         kernel                 CPU-only: the CPU kernel, on the host
columns_moments_ext(_at)   kernel (serial up to   CPU-only: the CPU kernel, on the host
                           SERIAL_MAX_VALUES)
grouped_moments            kernel                 CPU-only: the CPU kernel, on the host
layer_norm_columns         fused kernel           CPU-only: ``FUSED_ROW_NORM`` is False and
                                                  the function raises NotImplementedError;
                                                  use row_moments_columns and
                                                  normalize_rows_columns
=========================  =====================  =========================================

CPU-only helpers outside the protocol: ``cpu.chan_merge``, ``cpu.pebay_merge`` (inlined
merges) and ``memory.array_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

#: (count int64[n], mean float64[n], m2 float64[n]) per row.
RowMoments = tuple[np.ndarray, np.ndarray, np.ndarray]


class Backend(Protocol):
    """The kernel functions of one compute target (a module: cpu or cuda)."""

    #: "cpu" or "cuda".
    TARGET: str
    #: Whether :meth:`layer_norm_columns` is provided (else it raises NotImplementedError:
    #: compose :meth:`row_moments_columns` and :meth:`normalize_rows_columns`).
    FUSED_ROW_NORM: bool

    # ---------------------------------------------------------------- per-feature moments

    def first_finite(self, values: np.ndarray, validity: np.ndarray, bit_offset: int,
                     has_validity: bool) -> float:
        """The first valid finite value of a column (its shift), or NaN if none."""

    def column_moments(self, values: np.ndarray, validity: np.ndarray, bit_offset: int,
                       has_validity: bool, shift: float) -> tuple:
        """``(count int64, nan_count int64, shifted_mean, m2, minimum, maximum)`` of one
        column, nulls and NaN skipped (±inf are values); min/max NaN when count is 0."""

    def columns_moments(self, columns: Sequence[np.ndarray], validities: Sequence[np.ndarray],
                        bit_offsets: np.ndarray, has_validity: np.ndarray,
                        shifts: np.ndarray) -> tuple:
        """:meth:`column_moments` of k columns of one dtype (lengths may differ):
        ``bit_offsets`` int64[k], ``has_validity`` bool[k], ``shifts`` float64[k]. Returns six
        arrays of shape (k,): count and nan_count int64, the rest float64."""

    def columns_moments_at(self, like: np.ndarray, addresses: np.ndarray, lengths: np.ndarray,
                           validity_addresses: np.ndarray, bit_offsets: np.ndarray,
                           has_validity: np.ndarray, shifts: np.ndarray) -> tuple:
        """:meth:`columns_moments` of k columns given by buffer address (a
        :class:`streamnorm.columns.BufferGroup`): ``like`` an array of the dtype,
        ``addresses``/``lengths``/``validity_addresses``/``bit_offsets`` int64[k],
        ``has_validity`` bool[k], ``shifts`` float64[k] where NaN asks for the column's
        first finite value (0 if none). Returns the six arrays and ``shift_used`` float64[k].
        The caller keeps the memory alive (see :mod:`streamnorm.kernels.memory`)."""

    def column_moments_ext(self, values: np.ndarray, validity: np.ndarray, bit_offset: int,
                           has_validity: bool, weights: np.ndarray, has_weights: bool,
                           higher: bool, shift: float) -> tuple:
        """One column with frequency weights (float64[n], read if ``has_weights``) and/or M3,
        M4 (``higher``): ``(weight_sum, nan_count, null_count, shifted_mean, m2, m3, m4,
        minimum, maximum)``. Runs on the CPU on every target."""

    def columns_moments_ext(self, columns: Sequence[np.ndarray], validities: Sequence[np.ndarray],
                            bit_offsets: np.ndarray, has_validity: np.ndarray,
                            weights: np.ndarray, has_weights: bool, higher: bool,
                            shifts: np.ndarray) -> tuple:
        """:meth:`column_moments_ext` of k columns of one dtype in one call (``shifts``
        float64[k], finite): its nine results as arrays of shape (k,), the same bits as one
        call per column. Runs on the CPU on every target."""

    def columns_moments_ext_at(self, like: np.ndarray, addresses: np.ndarray,
                               lengths: np.ndarray, validity_addresses: np.ndarray,
                               bit_offsets: np.ndarray, has_validity: np.ndarray,
                               weights: np.ndarray, has_weights: bool, higher: bool,
                               shifts: np.ndarray) -> tuple:
        """:meth:`columns_moments_ext` of columns given by buffer address (as
        :meth:`columns_moments_at`). Runs on the CPU on every target."""

    def grouped_moments(self, values: np.ndarray, validity: np.ndarray, bit_offset: int,
                        has_validity: bool, groups: np.ndarray, shifts: np.ndarray,
                        weights: np.ndarray, has_weights: bool, higher: bool) -> tuple:
        """Per-group moments of one column: ``groups`` int64[n] in ``[0, g)``, ``shifts``
        float64[g] (NaN entries set in place to the group's first value). The nine results of
        :meth:`column_moments_ext` as arrays of shape (g,). Runs on the CPU on every target."""

    # ---------------------------------------------------------------- per-row moments

    def row_moments_matrix(self, values: np.ndarray, validity: np.ndarray, bit_offset: int,
                           has_validity: bool) -> RowMoments:
        """Moments of each row of a row-major (n, width) matrix (a FixedSizeList's values;
        the bitmap describes the flattened values). Rows without a value: count 0, NaN."""

    def row_moments_columns(self, columns: Sequence[np.ndarray],
                            validities: Sequence[np.ndarray], bit_offsets: np.ndarray,
                            has_validity: np.ndarray) -> RowMoments:
        """Moments of each row across k same-dtype columns of equal length n."""

    # ---------------------------------------------------------------- normalization

    def normalize_column(self, values: np.ndarray, center: float, scale: float,
                         out: np.ndarray) -> None:
        """``out[i] = (values[i] - center) / scale``, float64 rounded once to out's dtype."""

    def denormalize_column(self, values: np.ndarray, center: float, scale: float,
                           out: np.ndarray) -> None:
        """``out[i] = values[i] * scale + center`` (no fused multiply-add)."""

    def normalize_columns(self, columns: Sequence[np.ndarray], centers: np.ndarray,
                          scales: np.ndarray, outs: Sequence[np.ndarray]) -> None:
        """:meth:`normalize_column` of k same-dtype columns into ``outs`` (one dtype);
        ``centers``/``scales`` float64[k]."""

    def denormalize_columns(self, columns: Sequence[np.ndarray], centers: np.ndarray,
                            scales: np.ndarray, outs: Sequence[np.ndarray]) -> None:
        """:meth:`denormalize_column` of k same-dtype columns into ``outs``."""

    def normalize_rows_matrix(self, values: np.ndarray, center: np.ndarray, scale: np.ndarray,
                              out: np.ndarray) -> None:
        """``out[r, j] = (values[r, j] - center[r]) / scale[r]`` for an (n, width) matrix."""

    def normalize_rows_columns(self, columns: Sequence[np.ndarray], center: np.ndarray,
                               scale: np.ndarray, outs: Sequence[np.ndarray]) -> None:
        """``outs[k][r] = (columns[k][r] - center[r]) / scale[r]`` across k columns."""

    def layer_norm_columns(self, columns: Sequence[np.ndarray],
                           validities: Sequence[np.ndarray], bit_offsets: np.ndarray,
                           has_validity: np.ndarray, rms: bool, eps: float, ddof: int,
                           propagate: bool, out: np.ndarray) -> None:
        """Per-row LayerNorm (``rms`` False) or RMSNorm across k same-dtype columns in one
        read, into ``out`` of shape (k, n). Only where :attr:`FUSED_ROW_NORM` is true."""
