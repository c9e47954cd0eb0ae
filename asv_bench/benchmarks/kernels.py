"""The Numba CPU kernels alone: steady state (setup compiles or loads them first)."""

from __future__ import annotations

import numpy as np

from streamnorm.kernels import cpu

from .common import EMPTY, N_COLS, WIDTH, row_matrix, values


class ColumnMoments:
    """Count, mean, m2, min and max of one column (per-feature statistics)."""

    params = ([100_000, 1_000_000], ["float64", "float32", "int32"])
    param_names = ["rows", "dtype"]

    def setup(self, rows, dtype):
        self.values = values(rows, dtype)
        self.shift = float(self.values[0])
        rng = np.random.default_rng(3)
        self.validity = np.packbits(rng.random(rows + 3) < 0.9, bitorder="little")
        self.columns = [values(rows, dtype, seed=j) for j in range(N_COLS)]
        self.validities = [EMPTY] * N_COLS
        self.offsets = np.zeros(N_COLS, dtype=np.int64)
        self.flags = np.zeros(N_COLS, dtype=np.bool_)
        self.shifts = np.array([float(c[0]) for c in self.columns])
        self.time_column_moments(rows, dtype)  # warm the JIT
        self.time_column_moments_nulls(rows, dtype)
        self.time_columns_moments(rows, dtype)
        self.addresses = np.array([c.ctypes.data for c in self.columns], dtype=np.int64)
        self.lengths = np.full(N_COLS, rows, dtype=np.int64)
        self.time_columns_moments_at(rows, dtype)

    def time_column_moments(self, rows, dtype):
        cpu.column_moments(self.values, EMPTY, 0, False, self.shift)

    def time_column_moments_nulls(self, rows, dtype):
        cpu.column_moments(self.values, self.validity, 3, True, self.shift)

    def time_columns_moments(self, rows, dtype):
        cpu.columns_moments(self.columns, self.validities, self.offsets, self.flags, self.shifts)

    def time_columns_moments_at(self, rows, dtype):
        cpu.columns_moments_at(self.columns[0][:0], self.addresses, self.lengths, self.offsets,
                               self.offsets, self.flags, self.shifts)

    def time_first_finite(self, rows, dtype):
        cpu.first_finite(self.values, EMPTY, 0, False)


class RowMoments:
    """Per-row count, mean and m2 (LayerNorm statistics) over a matrix or separate columns."""

    params = ([10_000, 100_000], ["float32", "float64"])
    param_names = ["rows", "dtype"]

    def setup(self, rows, dtype):
        self.matrix = row_matrix(rows, dtype)
        self.columns = [np.ascontiguousarray(self.matrix[:, j]) for j in range(WIDTH)]
        self.validities = [EMPTY] * WIDTH
        self.offsets = np.zeros(WIDTH, dtype=np.int64)
        self.flags = np.zeros(WIDTH, dtype=np.bool_)
        self.time_row_moments_matrix(rows, dtype)
        self.time_row_moments_columns(rows, dtype)

    def time_row_moments_matrix(self, rows, dtype):
        cpu.row_moments_matrix(self.matrix, EMPTY, 0, False)

    def time_row_moments_columns(self, rows, dtype):
        cpu.row_moments_columns(self.columns, self.validities, self.offsets, self.flags)


class Normalize:
    """``(x - center) / scale`` per column, per matrix row and across columns per row."""

    params = ([100_000, 1_000_000], ["float64", "float32"])
    param_names = ["rows", "dtype"]

    def setup(self, rows, dtype):
        self.values = values(rows, dtype)
        self.out = np.empty(rows, dtype=dtype)
        n_rows = rows // WIDTH
        self.matrix = row_matrix(n_rows, dtype)
        self.matrix_out = np.empty_like(self.matrix)
        self.center = self.matrix.mean(axis=1, dtype=np.float64)
        self.scale = self.matrix.std(axis=1, dtype=np.float64) + 1.0
        self.columns = [np.ascontiguousarray(self.matrix[:, j]) for j in range(WIDTH)]
        self.outs = [np.empty(n_rows, dtype=dtype) for _ in range(WIDTH)]
        self.time_normalize_column(rows, dtype)
        self.time_normalize_rows_matrix(rows, dtype)
        self.time_normalize_rows_columns(rows, dtype)
        self.stacked_out = np.empty((WIDTH, n_rows), dtype=dtype)
        self.validities = [EMPTY] * WIDTH
        self.offsets = np.zeros(WIDTH, dtype=np.int64)
        self.flags = np.zeros(WIDTH, dtype=np.bool_)
        self.time_layer_norm_columns(rows, dtype)

    def time_normalize_column(self, rows, dtype):
        cpu.normalize_column(self.values, 3.0, 2.0, self.out)

    def time_normalize_rows_matrix(self, rows, dtype):
        cpu.normalize_rows_matrix(self.matrix, self.center, self.scale, self.matrix_out)

    def time_normalize_rows_columns(self, rows, dtype):
        cpu.normalize_rows_columns(self.columns, self.center, self.scale, self.outs)

    def time_layer_norm_columns(self, rows, dtype):
        """Row moments and normalization across separate columns, fused in row tiles."""
        cpu.layer_norm_columns(self.columns, self.validities, self.offsets, self.flags, False,
                               1e-5, 0, False, self.stacked_out)
