"""Kernel-level tests of streamnorm.kernels.cpu against float64 numpy references.

Covers every dtype family, nulls at odd bit offsets, NaN / inf blocks, sizes around the
BLOCK / CHUNK boundaries, the multi-column kernels (same bits as the one-column ones) and
thread-count independence (identical bits with 1 and 2 threads). No timings here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from fractions import Fraction

import numba
import numpy as np
import pytest

from streamnorm.kernels import cpu
from streamnorm.kernels.memory import addresses_of

BLOCK, CHUNK = cpu.BLOCK, cpu.CHUNK
SIZES = [0, 1, 7, BLOCK - 1, BLOCK, BLOCK + 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + BLOCK + 3]
DTYPES = [np.float64, np.float32, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
          np.uint32, np.uint64]
EMPTY = np.zeros(0, dtype=np.uint8)
RTOL = 1e-12


# --------------------------------------------------------------------------- helpers


def make_values(n: int, dtype, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.normal(1e3, 5.0, n).astype(dtype)
    info = np.iinfo(dtype)
    lo = max(int(info.min), -(10**6))
    hi = min(int(info.max), 10**6)
    return rng.integers(lo, hi, n, endpoint=True).astype(dtype)


def make_bitmap(n: int, offset: int, p_valid: float, rng: np.random.Generator):
    """An Arrow LSB-first bitmap for n values starting at bit ``offset``, and the bool mask."""
    valid = rng.random(n) < p_valid
    bits = np.concatenate([rng.random(offset) < 0.5, valid]).astype(bool)  # junk before offset
    return np.packbits(bits, bitorder="little"), valid


def reference(values: np.ndarray, valid: np.ndarray | None):
    """(count, nan_count, mean, m2, min, max) in float64 numpy, nulls and NaN skipped."""
    x = values.astype(np.float64)
    if valid is not None:
        x = x[valid]
    nan = np.isnan(x)
    x = x[~nan]
    if x.size == 0:
        return 0, int(nan.sum()), np.nan, np.nan, np.nan, np.nan
    mean = x.mean()
    return x.size, int(nan.sum()), mean, float(((x - mean) ** 2).sum()), x.min(), x.max()


def moments(values, validity=EMPTY, bit_offset=0, has_validity=False):
    """column_moments with the column's own shift, returning the *unshifted* mean."""
    shift = cpu.first_finite(values, validity, bit_offset, has_validity)
    shift = 0.0 if np.isnan(shift) else shift
    count, nan_count, mean, m2, lo, hi = cpu.column_moments(
        values, validity, bit_offset, has_validity, shift
    )
    return count, nan_count, (mean + shift) if count else np.nan, m2 if count else np.nan, lo, hi


def assert_matches(got, want, rtol=RTOL):
    count, nan_count, mean, m2, lo, hi = got
    assert (count, nan_count) == (want[0], want[1])
    if want[0] == 0:
        assert np.isnan(lo) and np.isnan(hi)
        return
    np.testing.assert_allclose(mean, want[2], rtol=rtol, atol=0)
    np.testing.assert_allclose(m2, want[3], rtol=rtol, atol=1e-300)
    assert lo == want[4] and hi == want[5]


def same_bits(a, b) -> bool:
    a = np.asarray(a, dtype=np.float64).view(np.int64)
    b = np.asarray(b, dtype=np.float64).view(np.int64)
    return bool(np.array_equal(a, b))


@pytest.fixture
def threads():
    """Run a callable with 1 and with all threads, returning both results."""
    before = numba.get_num_threads()

    def run(fn):
        numba.set_num_threads(1)
        try:
            one = fn()
        finally:
            numba.set_num_threads(before)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        try:
            many = fn()
        finally:
            numba.set_num_threads(before)
        return one, many

    return run


# --------------------------------------------------------------------------- column moments


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_column_moments_dense(dtype, n):
    rng = np.random.default_rng(n * 31 + np.dtype(dtype).itemsize)
    values = make_values(n, dtype, rng)
    assert_matches(moments(values), reference(values, None))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.uint8, np.int64])
@pytest.mark.parametrize("n", [1, 9, BLOCK + 1, CHUNK + 5, 2 * CHUNK + 17])
@pytest.mark.parametrize("offset", [0, 3, 13])
@pytest.mark.parametrize("p_valid", [0.0, 0.3, 0.97])
def test_column_moments_nulls(dtype, n, offset, p_valid):
    rng = np.random.default_rng(n + offset)
    values = make_values(n, dtype, rng)
    bitmap, valid = make_bitmap(n, offset, p_valid, rng)
    got = moments(values, bitmap, offset, True)
    assert_matches(got, reference(values, valid))


def test_null_slots_may_hold_anything():
    """Values under a null bit are never read as data, even NaN or inf."""
    rng = np.random.default_rng(5)
    values = rng.normal(0, 1, 3 * BLOCK)
    bitmap, valid = make_bitmap(values.size, 5, 0.5, rng)
    junk = values.copy()
    junk[~valid] = np.where(rng.random((~valid).sum()) < 0.5, np.nan, np.inf)
    assert_matches(moments(junk, bitmap, 5, True), reference(values, valid))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nan_blocks_are_skipped_and_counted(dtype):
    rng = np.random.default_rng(7)
    values = make_values(2 * CHUNK + 3 * BLOCK + 11, dtype, rng)
    values[BLOCK + 3] = np.nan  # one NaN in an otherwise clean block
    values[CHUNK : CHUNK + BLOCK] = np.nan  # a whole NaN block
    values[-1] = np.nan
    got = moments(values)
    want = reference(values, None)
    assert got[1] == BLOCK + 2
    assert_matches(got, want)


@pytest.mark.parametrize("where", [0, BLOCK - 1, CHUNK + 1, "last"])
def test_inf_is_a_value(where):
    values = np.random.default_rng(3).normal(10, 1, 2 * CHUNK + 5)
    index = values.size - 1 if where == "last" else where
    values[index] = np.inf
    count, nan_count, mean, m2, lo, hi = moments(values)
    assert count == values.size and nan_count == 0
    assert mean == np.inf and np.isnan(m2)  # as numpy: var of data with inf is NaN
    assert hi == np.inf and lo == values.min()
    values[(index + CHUNK) % values.size] = -np.inf
    count, _, mean, m2, lo, hi = moments(values)
    assert np.isnan(mean) and np.isnan(m2) and lo == -np.inf and hi == np.inf


def test_all_nan_and_all_null_columns():
    values = np.full(BLOCK + 3, np.nan)
    assert moments(values)[:2] == (0, BLOCK + 3)
    assert np.isnan(moments(values)[4])
    bitmap = np.zeros(10, dtype=np.uint8)
    got = cpu.column_moments(np.ones(70), bitmap, 1, True, 0.0)
    assert got[0] == 0 and got[1] == 0 and np.isnan(got[4]) and np.isnan(got[5])


def test_signed_zero_and_extremes_min_max():
    values = np.array([0.0, -0.0, 5e-324, -5e-324, 1.7e308, -1.7e308, 2.0])
    got = moments(values)
    assert got[4] == -1.7e308 and got[5] == 1.7e308
    tiny = np.array([3e-45, -1e-45, 0.0], dtype=np.float32)  # float32 subnormals
    got = moments(tiny)
    assert got[4] == np.float32(-1e-45) and got[5] == np.float32(3e-45)
    ints = np.array([np.iinfo(np.int64).min, -1, np.iinfo(np.int64).max], dtype=np.int64)
    got = cpu.column_moments(ints, EMPTY, 0, False, 0.0)
    assert got[4] == float(ints[0]) and got[5] == float(ints[2])
    big = np.array([0, 2**64 - 1], dtype=np.uint64)
    got = cpu.column_moments(big, EMPTY, 0, False, 0.0)
    assert got[4] == 0.0 and got[5] == float(2**64 - 1)


def test_offset_data_exact_to_1e13():
    """Variance within 1e-13 of the exact value at an offset 1e9 times the spread (docs/design.md
    §4)."""
    rng = np.random.default_rng(11)
    values = 1e9 + rng.normal(0, 1, 3 * CHUNK + 123)
    _, _, mean, m2, _, _ = moments(values)
    exact = [Fraction(float(v)) for v in values]
    exact_mean = sum(exact) / len(exact)
    exact_m2 = sum((v - exact_mean) ** 2 for v in exact)
    assert abs(Fraction(m2) - exact_m2) / exact_m2 <= Fraction(1, 10**13)
    assert abs(Fraction(mean) - exact_mean) / exact_mean <= Fraction(1, 10**15)


def test_columns_moments_equals_column_moments_bitwise():
    rng = np.random.default_rng(2)
    sizes = [0, 5, BLOCK, CHUNK + 1, 3 * CHUNK + 77]
    cols, bitmaps, offsets, flags, shifts = [], [], [], [], []
    for i, n in enumerate(sizes):
        values = make_values(n, np.float64, rng)
        if n > 10:
            values[n // 3] = np.nan
        if i % 2:
            bitmap, _ = make_bitmap(n, 3, 0.8, rng)
            has = True
        else:
            bitmap, has = EMPTY, False
        cols.append(values)
        bitmaps.append(bitmap)
        offsets.append(3 if has else 0)
        flags.append(has)
        shifts.append(float(values[0]) if n and not np.isnan(values[0]) else 0.0)
    got = cpu.columns_moments(list(cols), list(bitmaps), np.array(offsets, dtype=np.int64),
                              np.array(flags), np.array(shifts))
    for j in range(len(sizes)):
        one = cpu.column_moments(cols[j], bitmaps[j], offsets[j], flags[j], shifts[j])
        for field, value in zip(got, one):
            assert same_bits(field[j], value)


def address_args(cols: list[np.ndarray], bitmaps: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """(like, addresses, lengths, validity addresses) of arrays for columns_moments_at."""
    return (cols[0][:0], np.array([c.ctypes.data for c in cols], dtype=np.int64),
            np.array([c.size for c in cols], dtype=np.int64),
            np.array([b.ctypes.data for b in bitmaps], dtype=np.int64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int8, np.uint64])
def test_columns_moments_at_equals_columns_moments_bitwise(dtype):
    """The address kernel reads the same memory as the sequence wrapper: the same bits, and
    a NaN shift becomes the column's first valid finite value (0 when it has none)."""
    rng = np.random.default_rng(3)
    sizes = [0, 1, 5, BLOCK + 3, CHUNK + 1, 2 * CHUNK + 77]
    cols, bitmaps, offsets, flags = [], [], [], []
    for i, n in enumerate(sizes):
        values = make_values(n, dtype, rng)
        if n > 10 and np.dtype(dtype).kind == "f":
            values[: n // 4] = np.nan  # the first finite value is far in
            values[n // 2] = np.inf
        bitmap, _ = make_bitmap(n, 5, 0.7, rng) if i % 2 else (EMPTY, None)
        cols.append(values)
        bitmaps.append(bitmap)
        offsets.append(5 if i % 2 else 0)
        flags.append(bool(i % 2))
    offsets, flags = np.array(offsets, dtype=np.int64), np.array(flags)
    like, addresses, lengths, validity_addresses = address_args(cols, bitmaps)
    *got, shift_used = cpu.columns_moments_at(like, addresses, lengths, validity_addresses,
                                              offsets, flags, np.full(len(cols), np.nan))
    want_shifts = []
    for j, values in enumerate(cols):
        first = cpu.first_finite(values, bitmaps[j], offsets[j], flags[j])
        want_shifts.append(0.0 if np.isnan(first) else first)
    assert same_bits(shift_used, np.array(want_shifts))
    assert want_shifts[0] == 0.0 and want_shifts[-1] != 0.0
    want = cpu.columns_moments(list(cols), list(bitmaps), offsets, flags, np.array(want_shifts))
    for field_got, field_want in zip(got, want):
        assert same_bits(field_got, field_want)
    empty = cpu.columns_moments([], [], offsets[:0], flags[:0], np.zeros(0))
    assert [len(field) for field in empty] == [0] * 6
    given = np.array([7.0] * len(cols))  # a shift already known is used as it is
    *again, kept = cpu.columns_moments_at(like, addresses, lengths, validity_addresses, offsets,
                                          flags, given)
    assert same_bits(kept, given)
    want = cpu.columns_moments(list(cols), list(bitmaps), offsets, flags, given)
    assert all(same_bits(a, b) for a, b in zip(again, want))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16])
def test_column_kernels_thread_count_independent(dtype, threads):
    rng = np.random.default_rng(9)
    values = make_values(7 * CHUNK + 1001, dtype, rng)
    bitmap, _ = make_bitmap(values.size, 3, 0.9, rng)
    shift = float(values[0])
    for validity, has in [(EMPTY, False), (bitmap, True)]:
        one, many = threads(lambda: cpu.column_moments(values, validity, 3, has, shift))
        assert all(same_bits(a, b) for a, b in zip(one, many))
    lst = list([values, values[5:]])
    args = (list([bitmap, bitmap]), np.array([3, 8]), np.array([True, False]),
            np.array([shift, shift]))
    one, many = threads(lambda: cpu.columns_moments(lst, *args))
    assert all(same_bits(a, b) for a, b in zip(one, many))
    located = (*address_args([values, values[5:]], [bitmap, bitmap]), *args[1:])
    one, many = threads(lambda: cpu.columns_moments_at(*located))
    assert all(same_bits(a, b) for a, b in zip(one, many))


# --------------------------------------------------------------------------- row moments


def row_reference(matrix: np.ndarray, valid: np.ndarray):
    x = np.where(valid & ~np.isnan(matrix.astype(np.float64)), matrix.astype(np.float64), np.nan)
    count = (~np.isnan(x)).sum(axis=1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        mean = np.nanmean(x, axis=1)
        m2 = np.nansum((x - mean[:, None]) ** 2, axis=1)
    m2[count == 0] = np.nan
    return count, mean, m2


def assert_rows(got, want):
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=RTOL, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-11, atol=1e-10, equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8])
@pytest.mark.parametrize("n_rows", [0, 1, cpu.ROW_BLOCK - 1, cpu.ROW_BLOCK + 3, 3 * cpu.ROW_BLOCK])
@pytest.mark.parametrize("with_nulls", [False, True])
def test_row_moments_matrix_and_columns(dtype, n_rows, with_nulls):
    rng = np.random.default_rng(n_rows + 1)
    width = 37
    matrix = make_values(n_rows * width, dtype, rng).reshape(n_rows, width)
    if np.dtype(dtype).kind == "f" and n_rows:
        matrix[0, :] = np.nan  # a row of NaN only
        matrix[n_rows // 2, 3] = np.nan
    if with_nulls:
        bitmap, valid = make_bitmap(n_rows * width, 5, 0.7, rng)
        valid = valid.reshape(n_rows, width)
    else:
        bitmap, valid = EMPTY, np.ones((n_rows, width), dtype=bool)
    want = row_reference(matrix, valid)
    assert_rows(cpu.row_moments_matrix(matrix, bitmap, 5, with_nulls), want)
    # the same data as separate columns, each with its own bitmap at an odd offset
    cols, bitmaps = [], []
    for j in range(width):
        cols.append(np.ascontiguousarray(matrix[:, j]))
        col_bitmap, _ = make_bitmap(0, 0, 1.0, rng)
        bits = np.concatenate([np.zeros(3, bool), valid[:, j]])
        bitmaps.append(np.packbits(bits, bitorder="little") if with_nulls else col_bitmap)
    if n_rows == 0:
        return
    got = cpu.row_moments_columns(list(cols), list(bitmaps), np.full(width, 3, np.int64),
                                  np.full(width, with_nulls))
    assert_rows(got, want)


def test_row_kernels_thread_count_independent(threads):
    rng = np.random.default_rng(4)
    matrix = rng.normal(5, 2, (5 * cpu.ROW_BLOCK + 7, 64)).astype(np.float32)
    one, many = threads(lambda: cpu.row_moments_matrix(matrix, EMPTY, 0, False))
    assert all(same_bits(a, b) for a, b in zip(one, many))
    cols = list([np.ascontiguousarray(matrix[:, j]) for j in range(64)])
    args = (list([EMPTY] * 64), np.zeros(64, np.int64), np.zeros(64, np.bool_))
    one, many = threads(lambda: cpu.row_moments_columns(cols, *args))
    assert all(same_bits(a, b) for a, b in zip(one, many))


# --------------------------------------------------------------------------- normalization


@pytest.mark.parametrize("dtype,out_dtype", [(np.float64, np.float64), (np.float32, np.float32),
                                             (np.int32, np.float64), (np.uint8, np.float64)])
@pytest.mark.parametrize("n", [0, 1, CHUNK + 3])
def test_normalize_column_and_columns(dtype, out_dtype, n):
    rng = np.random.default_rng(n)
    values = make_values(n, dtype, rng)
    want = ((values.astype(np.float64) - 3.5) / 1.25).astype(out_dtype)
    out = np.empty(n, dtype=out_dtype)
    cpu.normalize_column(values, 3.5, 1.25, out)
    np.testing.assert_array_equal(out, want)
    other = values[: n // 2]
    outs = list([np.empty(n, dtype=out_dtype), np.empty(n // 2, dtype=out_dtype)])
    cpu.normalize_columns(list([values, other]), np.array([3.5, -1.0]), np.array([1.25, 2.0]),
                          outs)
    np.testing.assert_array_equal(outs[0], want)
    np.testing.assert_array_equal(outs[1], ((other.astype(np.float64) + 1.0) / 2.0).astype(out_dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_normalize_rows(dtype):
    rng = np.random.default_rng(1)
    n_rows, width = 2 * cpu.ROW_BLOCK + 5, 19
    matrix = make_values(n_rows * width, dtype, rng).reshape(n_rows, width)
    center = rng.normal(0, 1, n_rows)
    scale = rng.uniform(0.5, 2, n_rows)
    out_dtype = np.float32 if dtype == np.float32 else np.float64
    want = ((matrix.astype(np.float64) - center[:, None]) / scale[:, None]).astype(out_dtype)
    out = np.empty((n_rows, width), dtype=out_dtype)
    cpu.normalize_rows_matrix(matrix, center, scale, out)
    np.testing.assert_array_equal(out, want)
    cols = list([np.ascontiguousarray(matrix[:, j]) for j in range(width)])
    outs = list([np.empty(n_rows, dtype=out_dtype) for _ in range(width)])
    cpu.normalize_rows_columns(cols, center, scale, outs)
    np.testing.assert_array_equal(np.stack(list(outs), axis=1), want)


def _layer_reference(cols, bitmaps, offsets, has_validity, rms, eps, ddof, propagate, out_dtype):
    """row_moments_columns, mappers.row_center_scale and normalize_rows_columns, unfused."""
    from streamnorm.normalize.mappers import row_center_scale

    count, mean, m2 = cpu.row_moments_columns(list(cols), list(bitmaps), offsets, has_validity)
    center, scale = row_center_scale("rms" if rms else "layer", count, mean, m2, eps, ddof)
    if propagate:
        for col, bitmap, offset, has in zip(cols, bitmaps, offsets, has_validity):
            valid = (np.unpackbits(bitmap, bitorder="little")[offset : offset + len(col)] == 1
                     if has else np.ones(len(col), bool))
            center[np.isnan(col.astype(np.float64)) & valid] = np.nan
    outs = list([np.empty(len(cols[0]), out_dtype) for _ in cols])
    cpu.normalize_rows_columns(list(cols), center, scale, outs)
    return np.stack(list(outs))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16])
@pytest.mark.parametrize("n_rows", [1, 63, 1_000, 2_500])
@pytest.mark.parametrize("nulls", [False, True])
@pytest.mark.parametrize("rms,ddof,propagate", [(False, 0, False), (False, 1, True),
                                                (True, 0, False), (True, 0, True)])
def test_layer_norm_columns_equals_the_unfused_kernels(dtype, n_rows, nulls, rms, ddof,
                                                       propagate):
    rng = np.random.default_rng(n_rows)
    width = 23
    cols = [make_values(n_rows, dtype, rng) for _ in range(width)]
    if np.dtype(dtype).kind == "f":
        cols[3][n_rows // 2] = np.nan
        cols[5][n_rows - 1] = np.inf
        for col in cols:  # a row of NaN only
            col[0] = np.nan
        if n_rows > 10:
            for col in cols:  # a constant row: variance 0, scale 1
                col[7] = 2.5
    bitmaps, offsets = [], np.full(width, 3, np.int64)
    for _ in range(width):
        bitmap, _ = make_bitmap(n_rows, 3, 0.8, rng)
        bitmaps.append(bitmap if nulls else EMPTY)
    has_validity = np.full(width, nulls)
    out_dtype = np.float32 if dtype == np.float32 else np.float64
    want = _layer_reference(cols, bitmaps, offsets, has_validity, rms, 1e-5, ddof, propagate,
                            out_dtype)
    out = np.empty((width, n_rows), out_dtype)
    cpu.layer_norm_columns(list(cols), list(bitmaps), offsets, has_validity, rms, 1e-5, ddof,
                           propagate, out)
    if out_dtype == np.float64:
        assert same_bits(out, want)
    else:  # the reciprocal of the scale: the correctly rounded quotient or 1 ulp from it
        a, b = out.view(np.int32).astype(np.int64), want.view(np.int32).astype(np.int64)
        both_nan = np.isnan(out) & np.isnan(want)
        assert np.all((np.abs(a - b) <= 1) | both_nan)
        assert np.mean(a == b) > 0.999


def test_layer_norm_columns_thread_count_independent(threads):
    rng = np.random.default_rng(6)
    cols = list([rng.normal(3, 2, 5_003).astype(np.float32) for _ in range(300)])
    args = (list([EMPTY] * 300), np.zeros(300, np.int64), np.zeros(300, np.bool_), False, 1e-5,
            0, False)

    def run():
        out = np.empty((300, 5_003), np.float32)
        cpu.layer_norm_columns(cols, *args, out)
        return out

    one, many = threads(run)
    assert np.array_equal(one.view(np.int32), many.view(np.int32))


# --------------------------------------------------------------------------- JIT cache


WARM_CACHE_SCRIPT = """
import numpy as np
from streamnorm.kernels import backend, cpu, memory
kernels = backend("cpu")
e = np.zeros(0, np.uint8)
bits = np.full(20000, 0xFF, np.uint8)
for n in (1000, 3 * cpu.CHUNK):  # serial and parallel paths of every dispatching wrapper
    x = np.arange(n, dtype=np.float64)
    x32 = x.astype(np.float32)
    kernels.first_finite(x, e, 0, False)
    kernels.column_moments(x, e, 0, False, 0.0)
    kernels.column_moments(x, bits, 3, True, 0.0)
    kernels.columns_moments([x, x[:7]], [e, bits], np.array([0, 3]), np.array([False, True]),
                            np.zeros(2))
    kernels.columns_moments_at(x[:0], np.array([x.ctypes.data]), np.array([x.size]),
                               np.zeros(1, np.int64), np.zeros(1, np.int64),
                               np.zeros(1, np.bool_), np.full(1, np.nan))
    kernels.column_moments_ext(x, e, 0, False, np.ones(n), True, True, 0.0)
    kernels.grouped_moments(x, e, 0, False, np.arange(n) % 3, np.full(3, np.nan),
                            np.zeros(0), False, True)
    m = x[: n // 8 * 8].reshape(-1, 8).astype(np.float32)
    c, mu, q = kernels.row_moments_matrix(m, e, 0, False)
    kernels.normalize_rows_matrix(m, mu, np.ones_like(mu), np.empty_like(m))
    c, mu, q = kernels.row_moments_columns([x, x], [e, e], np.zeros(2, np.int64),
                                           np.zeros(2, np.bool_))
    kernels.normalize_rows_columns([x, x], mu, np.ones_like(mu), [np.empty(n), np.empty(n)])
    for out_dtype in (np.float32, np.float64):
        out = np.empty(n, out_dtype)
        kernels.normalize_column(x, 1.0, 2.0, out)
        kernels.denormalize_column(x32, 1.0, 2.0, out)
        kernels.normalize_columns([x, x[:5]], np.ones(2), np.ones(2),
                                  [out, np.empty(5, out_dtype)])
        kernels.denormalize_columns([x32], np.ones(1), np.ones(1), [out])
        kernels.layer_norm_columns([x, x], [e, bits], np.zeros(2, np.int64),
                                   np.array([False, True]), False, 1e-5, 0, True,
                                   np.empty((2, n), out_dtype))
misses = {f"{module.__name__}.{name}": sum(f.stats.cache_misses.values())
          for module in (*cpu.KERNEL_MODULES, memory)
          for name, f in vars(module).items() if hasattr(f, "stats")}
print(sum(misses.values()), [n for n, v in misses.items() if v])
"""


def test_warm_cache_process_loads_every_kernel_and_compiles_nothing():
    """docs/design.md §5: with a warm cache, a fresh process loads every public kernel of the CPU
    backend (serial and parallel paths), runs it without crashing (numba issue 8578: a cached
    function calling a parallel one segfaulted on a warm cache) and compiles nothing."""
    env = dict(os.environ)
    for _ in range(2):  # the first run may fill the cache; a second must then only load it
        result = subprocess.run([sys.executable, "-P", "-c", WARM_CACHE_SCRIPT],
                                capture_output=True, text=True, env=env, timeout=1200)
        assert result.returncode == 0, result.stderr[-3000:]
        if result.stdout.split()[0] == "0":
            break  # this run already loaded every kernel (the suite's warm-up filled the cache)
    assert result.stdout.split()[0] == "0", result.stdout


def test_multi_column_kernels_take_any_sequence_of_arrays():
    """A list, a tuple and a numba typed List give the same bits; strided columns are read
    through a contiguous copy; mixed dtypes are refused rather than misread."""
    from numba.typed import List

    rng = np.random.default_rng(11)
    cols = [make_values(CHUNK + 9, np.float32, rng) for _ in range(3)]
    args = (np.zeros(3, np.int64), np.zeros(3, np.bool_), np.zeros(3))
    want = cpu.columns_moments(cols, [EMPTY] * 3, *args)
    for sequence in (tuple, List):
        got = cpu.columns_moments(sequence(cols), sequence([EMPTY] * 3), *args)
        assert all(same_bits(a, b) for a, b in zip(got, want))
    strided = np.repeat(cols[0], 2)[::2]
    got = cpu.columns_moments([strided, cols[1], cols[2]], [EMPTY] * 3, *args)
    assert all(same_bits(a, b) for a, b in zip(got, want))
    with pytest.raises(ValueError, match="one dtype"):
        cpu.columns_moments([cols[0], cols[1].astype(np.float64)], [EMPTY] * 2, *args)
    # the kernels read by address: a shape that would make them read past an array's end is
    # refused before any kernel runs
    with pytest.raises(ValueError, match="rows"):
        cpu.row_moments_columns([cols[0], cols[1][:-1]], [EMPTY] * 2, *args[:2])
    with pytest.raises(ValueError, match="shorter"):
        cpu.columns_moments(cols, [EMPTY, np.zeros(3, np.uint8), EMPTY], args[0],
                            np.array([False, True, False]), args[2])
    with pytest.raises(ValueError, match="as long"):
        cpu.normalize_columns(cols, np.zeros(3), np.ones(3), [np.empty(5)] * 3)


def _run_python(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("STREAMNORM_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_WAIT_POLICY")}
    environ.update(env)
    done = subprocess.run([sys.executable, "-P", "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=environ, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


@pytest.mark.parametrize("numba_first", [False, True])
def test_streamnorm_num_threads_is_honoured_by_the_library(numba_first):
    """STREAMNORM_NUM_THREADS=1 takes effect through the library API, whether numba was
    loaded before streamnorm or not, and OMP_WAIT_POLICY defaults to PASSIVE."""
    out = _run_python(f"""
        import os
        if {numba_first}:
            import numba
        import pyarrow as pa
        import streamnorm as sn
        stats = sn.FeatureStats().update(pa.table({{"a": [1.0, 2.0, 4.0]}}))
        import numba
        print(numba.get_num_threads(), os.environ["OMP_WAIT_POLICY"], stats.count.tolist())
        """, STREAMNORM_NUM_THREADS="1")
    assert out == "1 PASSIVE [3]"


def test_a_bad_streamnorm_num_threads_is_a_clear_error():
    out = _run_python("""
        import pyarrow as pa
        import streamnorm as sn
        try:
            sn.FeatureStats().update(pa.table({"a": [1.0]}))
        except ValueError as exc:
            print(exc)
        """, STREAMNORM_NUM_THREADS="lots")
    assert "STREAMNORM_NUM_THREADS" in out and "out of range" in out


def test_import_loads_no_kernel_and_ctypes_is_left_alone():
    """``import streamnorm`` loads neither numba nor a kernel module; locating columns by
    address does not change ctypes.pythonapi's PyCapsule_GetPointer for the process."""
    out = _run_python("""
        import ctypes, sys
        import streamnorm
        print(sorted(m for m in sys.modules if m.startswith(("numba", "streamnorm.kernels."))))
        before = (ctypes.pythonapi.PyCapsule_GetPointer.restype,
                  ctypes.pythonapi.PyCapsule_GetPointer.argtypes)
        import pyarrow as pa
        from streamnorm import columns as cols
        batch = pa.record_batch({"a": [1.0, None, 3.0]})
        plan = cols.plan_batches(batch.schema, ["a"])
        group = cols.locate_columns(batch, plan)[0]
        after = (ctypes.pythonapi.PyCapsule_GetPointer.restype,
                 ctypes.pythonapi.PyCapsule_GetPointer.argtypes)
        print(before == after, group.lengths.tolist(), group.has_validity.tolist())
        """)
    # the cache guard hashes the kernels' sources (no numba): it runs before any kernel loads
    assert out.splitlines() == ["['streamnorm.kernels.api', 'streamnorm.kernels.cache_guard']",
                                "True [3] [True]"]


# --------------------------------------------------------------------------- serial or parallel


def _mixed_columns(rng, lengths, dtype=np.float64):
    """Columns of ``lengths`` with NaN, ±inf-free values far from 0, and null bitmaps."""
    columns, validities = [], []
    for n in lengths:
        x = (rng.normal(size=n) * 3 + 1e6).astype(dtype)
        if dtype == np.float64 and n:
            x[::11] = np.nan
        columns.append(x)
        validities.append(np.packbits(rng.random(n + 3) > 0.2, bitorder="little"))
    return columns, validities


@pytest.mark.parametrize("lengths", [[1] * 32, [0, 1, 2], [3000] * 20, [CHUNK - 1, CHUNK + 1],
                                     [2 * CHUNK + 5, 7], [40000] * 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_serial_and_parallel_multi_column_kernels_give_the_same_bits(lengths, dtype):
    """Forcing either path of the by-address kernels (plain and extension, weighted and
    moments=4) gives bit-identical results, equal to the one-column kernels."""
    rng = np.random.default_rng(len(lengths))
    columns, validities = _mixed_columns(rng, lengths, dtype)
    k = len(columns)
    offsets = np.full(k, 3, dtype=np.int64)
    has = np.array([j % 2 == 0 for j in range(k)])
    shifts = np.array([float(c[1]) if len(c) > 1 and not np.isnan(c[1]) else 0.0
                       for c in columns])
    keep, addresses, lens = addresses_of(columns)
    bitmaps = [np.ascontiguousarray(v) for v in validities]
    vaddr = np.array([b.ctypes.data if h else 0 for b, h in zip(bitmaps, has)], dtype=np.int64)
    like = np.empty(0, dtype=dtype)
    nan_shifts = shifts.copy()
    nan_shifts[::2] = np.nan
    plain = [cpu.columns_moments_at(like, addresses, lens, vaddr, offsets, has, nan_shifts,
                                    serial=s) for s in (True, False)]
    for a, b in zip(*plain):
        np.testing.assert_array_equal(a.view(np.uint64) if a.dtype.kind == "f" else a,
                                      b.view(np.uint64) if b.dtype.kind == "f" else b)
    for j in range(k):
        one = cpu.column_moments(columns[j], validities[j], 3, bool(has[j]), plain[0][6][j])
        assert np.array_equal(np.array(one, dtype=np.float64),
                              np.array([f[j] for f in plain[0][:6]], dtype=np.float64),
                              equal_nan=True)
    weights = rng.integers(0, 3, max(lens.max(initial=0), 1)).astype(np.float64)
    for has_weights, higher in ((True, False), (False, True), (True, True)):
        ext = [cpu.columns_moments_ext_at(like, addresses, lens, vaddr, offsets, has, weights,
                                          has_weights, higher, shifts, serial=s)
               for s in (True, False)]
        for a, b in zip(*ext):
            np.testing.assert_array_equal(a.view(np.uint64) if a.dtype.kind == "f" else a,
                                          b.view(np.uint64) if b.dtype.kind == "f" else b)
        for j in range(k):
            one = cpu.column_moments_ext(columns[j], validities[j], 3, bool(has[j]), weights,
                                         has_weights, higher, shifts[j])
            assert np.array_equal(np.array(one, dtype=np.float64),
                                  np.array([f[j] for f in ext[0]], dtype=np.float64),
                                  equal_nan=True)
    del keep


def test_serial_threshold_is_a_named_size_of_whole_chunks():
    assert cpu.SERIAL_MAX_VALUES % CHUNK == 0 and cpu.SERIAL_MAX_VALUES >= CHUNK
