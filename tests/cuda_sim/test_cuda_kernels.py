"""The CUDA kernels against the CPU kernels, and the CUDA target end to end.

Run under ``NUMBA_ENABLE_CUDASIM=1`` (by ``tests/test_cuda.py``) or on a GPU with
``STREAMNORM_TEST_CUDA=1``. Inputs are small: the simulator runs one Python thread per CUDA
thread. Sizes are chosen around the simulator's launch geometry (32 threads × 4 values per
tile, at most 4 blocks; 2 warps per row block) so that partial tiles, several blocks and the
grid-stride loops are all exercised; one test also runs with the real GPU geometry.

Tolerance (docs/design.md §7): float64 results agree with the CPU path to 1e-12 relative; means are
compared with an absolute floor of 1e-12 × the data's spread (a mean of ~0 has no relative
scale); counts, min, max and normalized values are compared exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from references import exact_mean_var, rel_err

import streamnorm as sn
from streamnorm import columns as cols
from streamnorm.kernels import backend, cpu
from streamnorm.kernels import cuda as gpu

RTOL = 1e-12
# The simulator computes with numpy scalars, which warn where a GPU silently gives NaN.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
NO_BITMAP = np.zeros(0, dtype=np.uint8)
# Few integer types: each one costs a compilation of the CPU reference kernels.
DTYPES = [np.uint8, np.int64, np.float32, np.float64]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(6)


def _data(rng: np.random.Generator, n: int, dtype, offset: float = 0.0) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        lo, hi = max(info.min, -1000), min(info.max, 1000)
        return rng.integers(lo, hi, size=n, endpoint=True).astype(dtype)
    return (rng.normal(size=n) * 3.0 + offset).astype(dtype)


def _view(array: pa.Array) -> cols.ColumnView:
    (view,) = cols.column_views(array)
    return view


def _moments(module, view: cols.ColumnView, shift: float | None = None):
    if shift is None:
        shift = cpu.first_finite(view.values, view.validity, view.bit_offset, view.has_validity)
        shift = 0.0 if math.isnan(shift) else shift
    return module.column_moments(
        view.values, view.validity, view.bit_offset, view.has_validity, shift
    ), shift


def assert_moments_match(got, want, shift: float) -> None:
    """GPU vs CPU ``column_moments`` results, to the module's stated tolerance."""
    count, nan_count, mean, m2, lo, hi = got
    w_count, w_nan, w_mean, w_m2, w_lo, w_hi = want
    assert (int(count), int(nan_count)) == (int(w_count), int(w_nan))
    spread = math.sqrt(w_m2 / w_count) if w_count and math.isfinite(w_m2) else 0.0
    np.testing.assert_allclose(shift + mean, shift + w_mean, rtol=RTOL, atol=RTOL * spread)
    np.testing.assert_allclose(m2, w_m2, rtol=RTOL)
    np.testing.assert_array_equal([lo, hi], [w_lo, w_hi])


def assert_rows_match(got, want) -> None:
    """GPU vs CPU per-row ``(count, mean, m2)``; NaN where count is 0 on both sides."""
    np.testing.assert_array_equal(got[0], want[0])
    assert got[0].dtype == np.int64
    spread = np.sqrt(np.nan_to_num(want[2]) / np.maximum(want[0], 1))
    assert np.all(np.isnan(got[1]) == np.isnan(want[1]))
    ok = ~np.isnan(want[1])
    same = got[1][ok] == want[1][ok]  # also ±inf
    near = np.abs(got[1][ok] - want[1][ok]) <= RTOL * (np.abs(want[1][ok]) + spread[ok])
    assert np.all(same | near)
    np.testing.assert_allclose(got[2], want[2], rtol=RTOL)


# --------------------------------------------------------------------------- setup


def test_the_simulator_or_a_device_is_usable():
    gpu.require_device()
    assert backend("cuda") is gpu


# --------------------------------------------------------------------------- column moments


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 31, 129, 700])
def test_column_moments_match_cpu(rng, dtype, n):
    view = _view(pa.array(_data(rng, n, dtype)))
    (got, shift), (want, _) = _moments(gpu, view), _moments(cpu, view)
    assert_moments_match(got, want, shift)


@pytest.mark.parametrize("offset", [3, 13])
def test_column_moments_honour_nulls_at_a_bit_offset(rng, offset):
    values = _data(rng, 300, np.float64)
    mask = rng.random(300) < 0.3
    array = pa.array(values, mask=mask).slice(offset, 250)
    view = _view(array)
    assert view.bit_offset == offset and view.has_validity
    (got, shift), (want, _) = _moments(gpu, view), _moments(cpu, view)
    assert_moments_match(got, want, shift)
    kept = values[offset : offset + 250][~mask[offset : offset + 250]]
    assert got[0] == kept.size
    np.testing.assert_allclose(got[3], ((kept - kept.mean()) ** 2).sum(), rtol=RTOL)


def test_column_moments_skip_and_count_nan(rng):
    values = _data(rng, 200, np.float64)
    values[[0, 5, 77, 199]] = np.nan
    view = _view(pa.array(values, mask=np.arange(200) % 9 == 0))
    (got, shift), (want, _) = _moments(gpu, view), _moments(cpu, view)
    assert_moments_match(got, want, shift)
    assert got[1] == 3  # index 0 is null (0 % 9 == 0), so its NaN is not counted


@pytest.mark.parametrize(
    "values, mean",
    [([1.0, np.inf, 2.0], np.inf), ([-np.inf, 1.0], -np.inf), ([np.inf, 1.0, -np.inf], np.nan)],
)
def test_infinities_are_values(values, mean):
    view = _view(pa.array(np.array(values * 40)))  # spread over several tiles and blocks
    (got, shift), (want, _) = _moments(gpu, view), _moments(cpu, view)
    assert got[0] == len(values) * 40
    np.testing.assert_array_equal(shift + got[2], mean)  # numpy's mean
    assert math.isnan(got[3])  # and numpy's variance: NaN
    np.testing.assert_array_equal(got[4:], want[4:])


@pytest.mark.parametrize(
    "array",
    [pa.array([None, None, None], pa.float64()), pa.array([np.nan] * 5), pa.nulls(4, pa.int32())],
)
def test_a_column_without_valid_values(array):
    view = _view(array)
    count, nan_count, mean, m2, lo, hi = gpu.column_moments(
        view.values, view.validity, view.bit_offset, view.has_validity, 0.0
    )
    assert count == 0 and (mean, m2) == (0.0, 0.0) and math.isnan(lo) and math.isnan(hi)
    assert nan_count == int(np.isnan(np.asarray(view.values, dtype=float)).sum()) * (
        not view.has_validity
    )


def test_an_empty_column():
    got = gpu.column_moments(np.zeros(0), NO_BITMAP, 0, False, 0.0)
    want = cpu.column_moments(np.zeros(0), NO_BITMAP, 0, False, 0.0)
    assert got[:4] == want[:4] and all(map(math.isnan, got[4:]))


def test_the_shift_keeps_a_large_offset_exact(rng):
    values = 1e9 + rng.normal(size=600)
    view = _view(pa.array(values))
    (count, _, mean, m2, _, _), shift = _moments(gpu, view)
    want_mean, want_var = exact_mean_var(values)
    assert rel_err(m2 / count, want_var) <= 1e-13
    assert rel_err(shift + mean, want_mean) <= 1e-15


def test_first_finite_matches_cpu():
    array = pa.array([None, np.nan, np.inf, 4.5, 2.0], mask=[True, False, False, False, False])
    view = _view(array)
    args = (view.values, view.validity, view.bit_offset, view.has_validity)
    assert gpu.first_finite(*args) == cpu.first_finite(*args) == 4.5


def test_the_real_gpu_launch_geometry(rng, monkeypatch):
    """The kernels do not depend on the (smaller) simulator geometry: rerun with the GPU's."""
    if not gpu.SIMULATOR:
        pytest.skip("on a device the real geometry is what every test runs")
    monkeypatch.setattr(gpu, "BLOCK_THREADS", 256)
    monkeypatch.setattr(gpu, "ITEMS", 8)
    monkeypatch.setattr(gpu, "MAX_BLOCKS", 2)  # 5000 values: 3 tiles over 2 blocks
    view = _view(pa.array(_data(rng, 5000, np.float64, offset=50.0)))
    (got, shift), (want, _) = _moments(gpu, view), _moments(cpu, view)
    assert_moments_match(got, want, shift)


# --------------------------------------------------------------------------- row moments


def _matrix_case(rng, n_rows, width, dtype, null_rate=0.2, bit_offset=5):
    values = _data(rng, n_rows * width, dtype)
    mask = rng.random(n_rows * width + bit_offset) < null_rate
    flat = pa.array(np.concatenate([np.zeros(bit_offset, dtype), values]), mask=mask)
    view = _view(flat.slice(bit_offset))
    return view.values.reshape(n_rows, width), view


@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.float64])
@pytest.mark.parametrize("n_rows, width", [(1, 1), (1, 70), (3, 5), (9, 32), (5, 33)])
def test_row_moments_matrix_match_cpu(rng, dtype, n_rows, width):
    matrix, view = _matrix_case(rng, n_rows, width, dtype)
    args = (matrix, view.validity, view.bit_offset, view.has_validity)
    assert_rows_match(gpu.row_moments_matrix(*args), cpu.row_moments_matrix(*args))


def test_row_moments_matrix_nan_and_empty_rows(rng):
    matrix = rng.normal(size=(4, 40))
    matrix[0, :] = np.nan  # no valid value: count 0, NaN mean and m2
    matrix[1, ::3] = np.nan
    matrix[2, 7] = np.inf
    got = gpu.row_moments_matrix(matrix, NO_BITMAP, 0, False)
    assert_rows_match(got, cpu.row_moments_matrix(matrix, NO_BITMAP, 0, False))
    assert got[0][0] == 0 and math.isnan(got[1][0]) and math.isinf(got[1][2])
    zero = gpu.row_moments_matrix(np.zeros((0, 3)), NO_BITMAP, 0, False)
    assert [a.shape for a in zero] == [(0,)] * 3


def _columns_case(rng, n_rows, n_cols, dtype):
    arrays = []
    for k in range(n_cols):
        offset = (3 * k) % 8
        values = _data(rng, n_rows + offset, dtype)
        mask = rng.random(n_rows + offset) < (0.25 if k % 2 == 0 else 0.0)
        arrays.append(pa.array(values, mask=mask).slice(offset))
    views = [cols.primitive_view(a) for a in arrays]
    return (
        list([v.values for v in views]),
        list([v.validity for v in views]),
        np.array([v.bit_offset for v in views], dtype=np.int64),
        np.array([v.has_validity for v in views], dtype=np.bool_),
    )


@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.float64])
@pytest.mark.parametrize("n_rows, n_cols", [(1, 1), (1, 4), (7, 3), (200, 2)])
def test_row_moments_columns_match_cpu(rng, dtype, n_rows, n_cols):
    args = _columns_case(rng, n_rows, n_cols, dtype)
    assert_rows_match(gpu.row_moments_columns(*args), cpu.row_moments_columns(*args))


def test_row_moments_with_the_real_gpu_geometry(rng, monkeypatch):
    if not gpu.SIMULATOR:
        pytest.skip("on a device the real geometry is what every test runs")
    monkeypatch.setattr(gpu, "ROW_WARPS", 8)
    monkeypatch.setattr(gpu, "_SHUFFLE_SCRATCH", (8, gpu.WARP))
    matrix, view = _matrix_case(rng, 8, 40, np.float64)
    args = (matrix, view.validity, view.bit_offset, view.has_validity)
    assert_rows_match(gpu.row_moments_matrix(*args), cpu.row_moments_matrix(*args))


# --------------------------------------------------------------------------- normalization


@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.float64])
@pytest.mark.parametrize("out_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 37, 600])
def test_normalize_and_denormalize_column_match_cpu_exactly(rng, dtype, out_dtype, n):
    values = _data(rng, n, dtype)
    for name, center, scale in [("normalize_column", 1.25, 3.5), ("denormalize_column", 7.0, 0.3)]:
        got, want = np.empty(n, out_dtype), np.empty(n, out_dtype)
        getattr(gpu, name)(values, center, scale, got)
        getattr(cpu, name)(values, center, scale, want)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n_rows, width", [(1, 1), (3, 33), (10, 7)])
def test_normalize_rows_matrix_matches_cpu_exactly(rng, n_rows, width):
    values = _data(rng, n_rows * width, np.float32).reshape(n_rows, width)
    center, scale = rng.normal(size=n_rows), rng.random(n_rows) + 0.5
    for out_dtype in (np.float32, np.float64):
        got, want = np.empty((n_rows, width), out_dtype), np.empty((n_rows, width), out_dtype)
        gpu.normalize_rows_matrix(values, center, scale, got)
        cpu.normalize_rows_matrix(values, center, scale, want)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n_rows, n_cols", [(1, 1), (1, 3), (130, 2)])
def test_normalize_rows_columns_matches_cpu_exactly(rng, n_rows, n_cols):
    columns = list([_data(rng, n_rows, np.int64) for _ in range(n_cols)])
    center, scale = rng.normal(size=n_rows), rng.random(n_rows) + 0.5
    got = list([np.empty(n_rows) for _ in range(n_cols)])
    want = list([np.empty(n_rows) for _ in range(n_cols)])
    gpu.normalize_rows_columns(columns, center, scale, got)
    cpu.normalize_rows_columns(columns, center, scale, want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


# --------------------------------------------------------------------------- end to end


def _table(rng, n: int) -> pa.Table:
    return pa.table(
        {
            "f64": pa.array(1e6 + rng.normal(size=n), mask=rng.random(n) < 0.1),
            "f32": pa.array(rng.normal(size=n).astype(np.float32)),
            "i64": pa.array(rng.integers(-50, 50, size=n)),
            "u8": pa.array(rng.integers(0, 255, size=n).astype(np.uint8)),
            "f16": pa.array(rng.normal(size=n).astype(np.float16)),
            "s": pa.array([str(i) for i in range(n)]),
        }
    )


def assert_stats_match(got: sn.FeatureStats, want: sn.FeatureStats) -> None:
    assert got.columns == want.columns
    for name in ("count", "null_count", "nan_count", "min", "max"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    np.testing.assert_allclose(got.mean, want.mean, rtol=RTOL, atol=RTOL * np.nanmax(want.std()))
    np.testing.assert_allclose(got.var(), want.var(), rtol=RTOL)


def test_feature_stats_on_cuda_match_cpu_and_merge_with_a_cpu_state(rng):
    table = _table(rng, 400)
    batches = table.to_batches(max_chunksize=150)  # 150, 150, 100 rows
    nan_batch = table.slice(0, 1).set_column(0, "f64", pa.array([np.nan]))
    want = sn.FeatureStats(target="cpu").update(batches + nan_batch.to_batches())
    on_gpu = sn.FeatureStats(target="cuda").update(batches[:2])
    on_cpu = sn.FeatureStats(target="cpu").update([batches[2], *nan_batch.to_batches()])
    assert_stats_match(on_gpu + on_cpu, want)
    assert_stats_match(on_cpu + on_gpu, want)
    one_row = sn.FeatureStats(target="cuda").update(table.slice(7, 1))
    assert_stats_match(one_row, sn.FeatureStats(target="cpu").update(table.slice(7, 1)))
    empty = sn.FeatureStats(target="cuda").update(table.slice(0, 0))
    assert empty.count.tolist() == [0] * 5


def test_feature_stats_take_the_target_from_the_environment(rng, monkeypatch):
    monkeypatch.setenv("STREAMNORM_TARGET", "cuda")
    table = _table(rng, 60)
    assert_stats_match(sn.FeatureStats().update(table), sn.FeatureStats(target="cpu").update(table))


def test_row_stats_on_cuda_match_cpu(rng):
    table = _table(rng, 150).drop_columns(["s"])
    got = sn.row_stats(table, target="cuda")
    want = sn.row_stats(table, target="cpu")
    assert got.column_names == ["count", "mean", "var"]
    assert got["count"].equals(want["count"])
    np.testing.assert_allclose(got["mean"].to_numpy(), want["mean"].to_numpy(), rtol=RTOL)
    np.testing.assert_allclose(got["var"].to_numpy(), want["var"].to_numpy(), rtol=RTOL)

    values = pa.array(rng.normal(size=9 * 40), mask=rng.random(9 * 40) < 0.1)
    vectors = pa.FixedSizeListArray.from_arrays(values, 40, mask=pa.array([False] * 8 + [True]))
    vtable = pa.table({"v": vectors})
    got, want = sn.row_stats(vtable, target="cuda"), sn.row_stats(vtable, target="cpu")
    assert got["count"].equals(want["count"]) and got["mean"].is_null().to_pylist()[-1]
    np.testing.assert_allclose(
        got["var"].to_numpy(zero_copy_only=False), want["var"].to_numpy(zero_copy_only=False),
        rtol=RTOL,
    )


def _assert_tables_close(got: pa.Table, want: pa.Table) -> None:
    assert got.schema == want.schema
    for name in want.column_names:
        g, w = got[name].combine_chunks(), want[name].combine_chunks()
        if pa.types.is_fixed_size_list(w.type):
            assert g.is_null().equals(w.is_null())
            g, w = g.flatten(), w.flatten()
        if not pa.types.is_floating(w.type):
            assert g.equals(w), name
            continue
        assert g.is_null().equals(w.is_null()), name
        np.testing.assert_allclose(
            g.to_numpy(zero_copy_only=False), w.to_numpy(zero_copy_only=False),
            rtol=1e-12, atol=1e-12, err_msg=name,
        )


@pytest.mark.parametrize("mode", ["batch", "layer", "rms"])
def test_normalizer_on_cuda_matches_cpu(rng, mode):
    n = 9  # rows: one grid-stride step past the simulator's 4 blocks × 2 warps
    table = _table(rng, n).drop_columns(["f16"])
    if mode != "batch":
        values = pa.array(rng.normal(size=n * 36), mask=rng.random(n * 36) < 0.1)
        vectors = pa.FixedSizeListArray.from_arrays(values, 36)
        table = table.append_column("v", vectors)
    want_norm = sn.Normalizer(mode, target="cpu")
    got_norm = sn.Normalizer(mode, target="cuda")
    if mode == "batch":
        want_norm.fit(table)
        got_norm.fit(table)
    got, want = got_norm.transform(table), want_norm.transform(table)
    _assert_tables_close(got, want)
    if mode == "batch":
        _assert_tables_close(got_norm.inverse_transform(got), want_norm.inverse_transform(want))


def test_the_multi_column_helpers_match_cpu(rng):
    arrays = [
        pa.array(_data(rng, n, np.float64), mask=rng.random(n) < 0.2).slice(1) for n in (40, 9)
    ]
    views = [_view(a) for a in arrays]
    args = (
        list([v.values for v in views]), list([v.validity for v in views]),
        np.array([v.bit_offset for v in views], dtype=np.int64),
        np.array([v.has_validity for v in views]), np.array([v.values[0] for v in views]),
    )
    for got, want in zip(gpu.columns_moments(*args), cpu.columns_moments(*args)):
        np.testing.assert_allclose(got, want, rtol=RTOL)
    centers, scales = np.array([0.5, -2.0]), np.array([3.0, 0.25])
    for name in ("normalize_columns", "denormalize_columns"):
        got = list([np.empty(len(v), np.float32) for v in views])
        want = list([np.empty(len(v), np.float32) for v in views])
        getattr(gpu, name)(args[0], centers, scales, got)
        getattr(cpu, name)(args[0], centers, scales, want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_both_backends_provide_the_whole_protocol():
    """Callers never probe: every member of the Backend protocol exists on both targets, the
    CPU-only ones stated by a flag or run on the host."""
    from streamnorm.kernels.api import Backend

    members = [name for name in vars(Backend) if not name.startswith("_")]
    members += list(Backend.__annotations__)
    for module in (cpu, gpu):
        missing = [name for name in members if not hasattr(module, name)]
        assert not missing, (module.__name__, missing)
    assert (cpu.TARGET, gpu.TARGET, cpu.FUSED_ROW_NORM, gpu.FUSED_ROW_NORM) == (
        "cpu", "cuda", True, False)
    assert gpu.column_moments_ext is cpu.column_moments_ext
    assert gpu.grouped_moments is cpu.grouped_moments
    with pytest.raises(NotImplementedError, match="FUSED_ROW_NORM"):
        gpu.layer_norm_columns([], [], np.zeros(0, np.int64), np.zeros(0, bool), False, 1e-5, 0,
                               False, np.empty((0, 0)))


def test_columns_moments_at_matches_cpu(rng):
    """The CUDA backend reads columns located by address as the CPU one does."""
    batch = pa.record_batch({
        "a": pa.array(_data(rng, 300, np.float64), mask=rng.random(300) < 0.2),
        "b": pa.array(np.r_[np.nan, _data(rng, 299, np.float64)]),
    }).slice(3)
    plan = cols.plan_batches(batch.schema, ["a", "b"])
    (group,) = cols.locate_columns(batch, plan)
    args = (group.like, group.addresses, group.lengths, group.validity_addresses,
            group.bit_offsets, group.has_validity)
    for shifts in (np.full(2, np.nan), np.array([1.0, 2.0])):
        got = gpu.columns_moments_at(*args, shifts)
        want = cpu.columns_moments_at(*args, shifts)
        np.testing.assert_array_equal(got[-1], want[-1])
        for g, w in zip(got[:-1], want[:-1]):
            np.testing.assert_allclose(g, w, rtol=RTOL)


def test_feature_stats_inf_and_huge_values_on_cuda_match_cpu():
    """Issue 12: ±inf counted / skipped and overflow-free moments go through the same kernels
    (the careful path reruns ``column_moments`` on masked or scaled values) on both targets."""
    table = pa.table({
        "inf": pa.array([1.0, np.inf, 3.0, -np.inf, None, 2.0], pa.float64()),
        "huge": [1.7e308, -1.7e308, 1e200, 3e200, -1e300, 5.0],
        "plain": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    })
    for inf in ("keep", "skip"):
        got = sn.FeatureStats(target="cuda", inf=inf).update(table.to_batches(max_chunksize=4))
        want = sn.FeatureStats(target="cpu", inf=inf).update(table.to_batches(max_chunksize=4))
        for name in ("count", "null_count", "nan_count", "inf_count", "min", "max"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        np.testing.assert_allclose(got.mean, want.mean, rtol=1e-14, atol=1e-15 * 1.7e308)
        np.testing.assert_allclose(got.std(), want.std(), rtol=1e-14)
        assert np.isfinite(got.std()[1:]).all() and got.inf_count.tolist() == [2, 0, 0]
