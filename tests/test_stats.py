"""FeatureStats and row_stats against float64 two-pass and exact fraction references."""

from __future__ import annotations

import ctypes
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from references import exact_mean_std, exact_mean_var, rel_err

import streamnorm as sn
from streamnorm.kernels.cpu import BLOCK, CHUNK
from streamnorm.state import BIG_EXPONENT

INT_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(),
             pa.uint32(), pa.uint64()]
FLOAT_TYPES = [pa.float16(), pa.float32(), pa.float64()]


def reference(values: np.ndarray, ddof: int = 0) -> dict[str, float]:
    """Float64 two-pass reference over the non-NaN values."""
    x = values.astype(np.float64)
    x = x[~np.isnan(x)]
    return {"count": len(x), "mean": x.mean(), "var": x.var(ddof=ddof), "min": x.min(),
            "max": x.max()}


def assert_matches(fs: sn.FeatureStats, j: int, values: np.ndarray, rtol: float = 1e-12) -> None:
    ref = reference(values)
    assert fs.count[j] == ref["count"]
    np.testing.assert_allclose(fs.mean[j], ref["mean"], rtol=rtol)
    np.testing.assert_allclose(fs.var()[j], ref["var"], rtol=rtol)
    assert fs.min[j] == ref["min"] and fs.max[j] == ref["max"]


# --------------------------------------------------------------------------- dtypes and nulls


@pytest.mark.parametrize("arrow_type", INT_TYPES + FLOAT_TYPES, ids=str)
def test_every_numeric_dtype_matches_float64_reference(arrow_type, rng):
    n = 3 * BLOCK + 17
    if pa.types.is_floating(arrow_type):
        values = rng.normal(3.0, 2.0, n).astype(arrow_type.to_pandas_dtype())
    else:
        info = np.iinfo(arrow_type.to_pandas_dtype())
        values = rng.integers(max(info.min, -1000), min(info.max, 1000), n).astype(
            arrow_type.to_pandas_dtype()
        )
    fs = sn.FeatureStats().update(pa.table({"x": pa.array(values, arrow_type)}))
    assert fs.columns == ["x"]
    assert_matches(fs, 0, values)


@pytest.mark.parametrize("arrow_type", [pa.int32(), pa.float32(), pa.float64()], ids=str)
@pytest.mark.parametrize("offset", [0, 1, 3, 7, 8, 13])
def test_nulls_at_slice_offsets_are_counted_and_skipped(arrow_type, offset, rng):
    n = BLOCK + 300
    values = rng.integers(-50, 50, n).astype(arrow_type.to_pandas_dtype())
    mask = rng.random(n) < 0.3
    array = pa.array(values, arrow_type, mask=mask).slice(offset, n - offset - 5)
    fs = sn.FeatureStats().update(pa.table({"x": array}))
    kept = values[offset : n - 5][~mask[offset : n - 5]]
    assert fs.null_count[0] == mask[offset : n - 5].sum()
    assert_matches(fs, 0, kept)


def test_chunked_and_dictionary_columns_match_the_reference(rng):
    a = rng.normal(size=1000)
    chunked = pa.chunked_array([a[:10], a[10:10], a[10:999], a[999:]])
    dictionary = pa.DictionaryArray.from_arrays(
        pa.array(rng.integers(0, 3, 1000), pa.int32()), pa.array([1.5, -2.0, 4.0])
    )
    table = pa.table({"a": chunked, "d": dictionary})
    fs = sn.FeatureStats().update(table)
    assert fs.columns == ["a", "d"]
    assert_matches(fs, 0, a)
    assert_matches(fs, 1, dictionary.dictionary_decode().to_numpy())
    # a batch-like table whose columns are chunked: each column's pieces merge in order
    pieces = sn.FeatureStats()
    pieces._update_batch(pa.table({"a": chunked, "b": pa.chunked_array([a[:500], a[500:]])}))
    assert pieces.columns == ["a", "b"]
    assert_matches(pieces, 0, a)
    assert_matches(pieces, 1, a)
    np.testing.assert_array_equal(pieces.mean[0], fs.mean[0])


def test_non_numeric_columns_are_skipped_automatically_and_refused_explicitly():
    table = pa.table({
        "s": ["a", "b"], "flag": [True, False], "dec": pa.array([1, 2], pa.decimal128(5, 2)),
        "t": pa.array([1, 2], pa.timestamp("s")), "x": [1.0, 2.0],
    })
    assert sn.FeatureStats().update(table).columns == ["x"]
    # a bool column named explicitly is counted as 0/1 (issue 15; tests/test_parity.py)
    for name, hint in [("s", "string"), ("dec", "cast it to float64")]:
        with pytest.raises(TypeError, match=f"column '{name}'.*{hint}"):
            sn.FeatureStats([name]).update(table)


def test_all_null_and_empty_columns_give_count_0_and_nan_results():
    table = pa.table({"n": pa.array([None, None], pa.float64()), "z": pa.array([None, None])})
    fs = sn.FeatureStats(["n"]).update(table)
    assert fs.count.tolist() == [0] and fs.null_count.tolist() == [2]
    assert math.isnan(fs.mean[0]) and math.isnan(fs.min[0]) and math.isnan(fs.max[0])
    assert math.isnan(fs.var()[0]) and math.isnan(fs.std(ddof=1)[0])
    empty = sn.FeatureStats().update(pa.table({"x": pa.array([], pa.float64())}))
    assert empty.count.tolist() == [0] and math.isnan(empty.mean[0])


def test_located_columns_are_the_arrow_buffers(rng):
    """locate_columns reads the batch's C Data Interface export: each column's values and
    validity addresses, offsets and lengths must be those pyarrow reports, per dtype group."""
    from streamnorm.columns import locate_columns, plan_batches

    x = pa.array(rng.normal(size=50))
    n = pa.array([1, None, 3, 4, None, 6] * 10, pa.int16())
    y = pa.array(rng.normal(size=60).astype(np.float32))
    batch = pa.RecordBatch.from_arrays([x.slice(0, 50), n.slice(0, 50), y.slice(0, 50)],
                                       ["x", "n", "y"]).slice(7, 30)
    plan = plan_batches(batch.schema, ["y", "n", "x", "n"])
    groups = locate_columns(batch, plan)
    assert [g.like.dtype for g in groups] == [np.float32, np.int16, np.float64]
    assert [g.positions.tolist() for g in groups] == [[0], [1, 3], [2]]
    for group in groups:
        for k, position in enumerate(group.positions):
            arr = batch.column(["y", "n", "x", "n"][position])
            validity, data = arr.buffers()
            assert group.lengths[k] == len(arr) == 30
            assert group.addresses[k] == data.address + arr.offset * group.like.itemsize
            assert bool(group.has_validity[k]) == (arr.null_count > 0)
            if arr.null_count:
                assert group.validity_addresses[k] == validity.address
                assert group.bit_offsets[k] == arr.offset
    values = np.ctypeslib.as_array(  # the memory at the located address is the column
        (ctypes.c_double * 30).from_address(int(groups[2].addresses[0])))
    np.testing.assert_array_equal(values, batch.column("x").to_numpy())
    # values that need converting first, or buffers numpy cannot view in place: not located
    assert plan_batches(pa.schema({"d": pa.dictionary(pa.int8(), pa.float64())}), ["d"]) is None
    assert plan_batches(pa.schema({"h": pa.float16()}), ["h"]) is None
    misaligned = pa.Array.from_buffers(pa.float64(), 2, [None, pa.py_buffer(bytes(24))[1:]])
    assert misaligned.buffers()[1].address % 8
    odd = pa.RecordBatch.from_arrays([misaligned], ["m"])
    assert locate_columns(odd, plan_batches(odd.schema, ["m"])) is None


def test_address_path_gives_the_bits_of_the_view_path(rng, monkeypatch):
    """Plain columns go to the kernels by address (no numpy views, no typed Lists); the state
    must be bit for bit the one the view path gives, through nulls at odd offsets, NaN, inf,
    all-null columns, empty batches and a merge."""
    import streamnorm.columns as columns_module

    n = 3 * CHUNK + 11
    x = rng.normal(1e9, 1.0, n)
    x[[5, 900]] = np.nan
    big = rng.integers(-(2**40), 2**40, n)
    nulls = rng.random(n) < 0.1
    table = pa.table({
        "x": x,
        "k": pa.array(big, mask=nulls),
        "f": pa.array(x.astype(np.float32), mask=nulls[::-1]),
        "inf": np.where(np.arange(n) == 17, np.inf, 1.0),
        "none": pa.array([None] * n, pa.float64()),
    })
    cuts = [0, 1, 1, 7, BLOCK + 5, CHUNK + 3, 2 * CHUNK + 1, n]
    batches = [b for lo, hi in zip(cuts, cuts[1:])
               for b in table.slice(lo, hi - lo).combine_chunks().to_batches()]
    batches.insert(2, table.slice(0, 0).to_batches()[0] if table.slice(0, 0).num_rows else
                   pa.RecordBatch.from_pylist([], schema=table.schema))

    def fit() -> sn.FeatureStats:
        fs = sn.FeatureStats()
        for batch in batches:
            fs.update(batch)
        return fs.merge(sn.FeatureStats().update(table.slice(5, 1000)))

    import streamnorm.state.small as small_module

    located, locate = [], columns_module.locate_columns
    monkeypatch.setattr(columns_module, "locate_columns",
                        lambda batch, plan: located.append(batch) or locate(batch, plan))
    add_small = small_module.add_small  # small batches locate their columns in the kernel
    monkeypatch.setattr(small_module, "add_small",
                        lambda *a: (add_small(*a) and not located.append(a[1])))
    by_address = fit()
    assert len(located) == len(batches) + 1  # every batch went by address
    monkeypatch.setattr(columns_module, "locate_columns", lambda batch, plan: None)
    monkeypatch.setattr(small_module, "add_small", lambda *a: False)
    by_views = fit()
    assert by_address.columns == ["x", "k", "f", "inf", "none"]
    for name in ("count", "null_count", "nan_count", "mean", "min", "max", "m2"):
        np.testing.assert_array_equal(getattr(by_address, name), getattr(by_views, name))
    assert_matches(by_address, 0, np.concatenate([x, x[5:1005]]))


def test_var_is_nan_when_count_not_above_ddof():
    fs = sn.FeatureStats().update(pa.table({"x": [5.0]}))
    assert fs.var(ddof=0)[0] == 0.0
    assert math.isnan(fs.var(ddof=1)[0]) and math.isnan(fs.var(ddof=2)[0])


# --------------------------------------------------------------------------- NaN and inf


def test_nan_skip_counts_and_propagate_poisons(rng):
    values = rng.normal(size=5 * BLOCK)
    values[[3, BLOCK + 1, 4 * BLOCK]] = np.nan
    table = pa.table({"x": values})
    skip = sn.FeatureStats().update(table)
    assert skip.nan_count.tolist() == [3]
    assert_matches(skip, 0, values)
    propagate = sn.FeatureStats(nan="propagate").update(table)
    assert propagate.nan_count.tolist() == [3]
    for result in (propagate.mean, propagate.var(), propagate.min, propagate.max):
        assert math.isnan(result[0])
    with pytest.raises(ValueError, match="nan must be one of"):
        sn.FeatureStats(nan="ignore")


def test_inf_behaves_like_numpy():
    fs = sn.FeatureStats().update(pa.table({"p": [1.0, np.inf, 2.0], "m": [np.inf, -np.inf, 1.0],
                                            "only": [np.inf, np.inf, np.inf]}))
    with np.errstate(invalid="ignore"):
        want_mean = [np.mean([1.0, np.inf, 2.0]), np.mean([np.inf, -np.inf, 1.0]), np.inf]
    np.testing.assert_array_equal(fs.mean, want_mean)
    assert np.isnan(fs.var()).all()
    assert fs.max[0] == np.inf and fs.min[1] == -np.inf and fs.count.tolist() == [3, 3, 3]


@pytest.mark.parametrize("moments", [2, 4])
@pytest.mark.parametrize("order", [0, 1])
def test_inf_result_does_not_depend_on_batch_order(order, moments):
    batches = [pa.record_batch({"x": [np.inf]}), pa.record_batch({"x": [1.0, 2.0]})]
    if order:
        batches.reverse()
    fs = sn.FeatureStats(moments=moments)
    for batch in batches:
        fs.update(batch)
    assert fs.mean[0] == np.inf and np.isnan(fs.var()[0])
    big = np.r_[np.full(BLOCK, 1.0), [np.inf], np.full(CHUNK, 2.0)]  # inf inside the kernel
    for values in (big, big[::-1].copy()):
        merged = sn.FeatureStats(moments=moments).update(pa.table({"x": values}))
        assert merged.mean[0] == np.inf and np.isnan(merged.var()[0])
        if moments == 4:
            assert np.isnan(merged.skew()[0]) and np.isnan(merged.kurtosis()[0])


# --------------------------------------------------------------------------- accuracy


def _offset_data(rng: np.random.Generator, n: int, offset: float = 1e9) -> np.ndarray:
    return offset + rng.normal(0.0, 1.0, n)


@pytest.mark.parametrize(
    "batch_sizes",
    [[2 * CHUNK + 5], [1] * 40 + [CHUNK], [0, 7, 0, BLOCK - 1, 1, 3 * BLOCK + 2, 0], [CHUNK + 1] * 2],
    ids=["one", "ones-then-chunk", "ragged-with-empty", "two-chunks"],
)
def test_variance_accurate_to_1e13_at_offset_1e9(batch_sizes, rng):
    values = _offset_data(rng, sum(batch_sizes))
    want_mean, want_var = exact_mean_var(values)
    fs = sn.FeatureStats()
    start = 0
    for size in batch_sizes:
        fs.update(pa.record_batch({"x": values[start : start + size]}))
        start += size
    assert rel_err(fs.var()[0], want_var) <= 1e-13
    assert rel_err(fs.mean[0], want_mean) <= 1e-15


def test_merged_states_accurate_at_offset_1e9(rng):
    values = _offset_data(rng, 5000)
    _, want_var = exact_mean_var(values)
    parts = [sn.FeatureStats().update(pa.table({"x": values[i : i + 999]}))
             for i in range(0, 5000, 999)]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged + part
    assert rel_err(merged.var()[0], want_var) <= 1e-13


def test_integers_up_to_2_pow_62_are_accurate(rng):
    big = 2**62
    values = np.array([big, -big, big - 1, 12345, -(big - 7)], dtype=np.int64)
    fs = sn.FeatureStats().update(pa.table({"x": values}))
    want_mean, want_var = exact_mean_var(values.astype(np.float64))
    # the mean cancels to ~2e3 out of values ~4.6e18: judge it against the data's scale
    assert abs(fs.mean[0] - want_mean) <= 1e-15 * big
    assert rel_err(fs.var()[0], want_var) <= 1e-13
    assert fs.min[0] == float(-big) and fs.max[0] == float(big)
    unsigned = np.array([2**64 - 1, 2**63, 5], dtype=np.uint64)
    fs_u = sn.FeatureStats().update(pa.table({"u": unsigned}))
    assert rel_err(fs_u.mean[0], exact_mean_var(unsigned.astype(np.float64))[0]) <= 1e-15


def test_float32_and_float16_accumulate_in_float64(rng):
    values32 = (1e4 + rng.normal(size=20000)).astype(np.float32)
    fs = sn.FeatureStats().update(pa.table({"x": values32}))
    want_mean, want_var = exact_mean_var(values32.astype(np.float64))
    assert rel_err(fs.var()[0], want_var) <= 1e-13
    values16 = rng.normal(size=3000).astype(np.float16)
    fs16 = sn.FeatureStats().update(pa.table({"h": values16}))
    assert rel_err(fs16.var()[0], exact_mean_var(values16.astype(np.float64))[1]) <= 1e-13


# --------------------------------------------------------------------------- sources


def _check_ab(fs: sn.FeatureStats) -> None:
    assert fs.columns == ["a", "b"]
    np.testing.assert_allclose(fs.mean, [2.0, 20.0], rtol=1e-15)
    assert fs.count.tolist() == [3, 3]


def test_update_accepts_every_arrow_source():
    table = pa.table({"a": [1.0, 2.0, 3.0], "b": [10, 20, 30], "s": ["x", "y", "z"]})
    for source in (
        table,
        table.to_batches()[0],
        pa.RecordBatchReader.from_batches(table.schema, table.to_batches()),
        iter(table.to_batches(max_chunksize=1)),
        table.to_batches(max_chunksize=2),
    ):
        _check_ab(sn.FeatureStats().update(source))


def test_update_accepts_numpy_2d():
    matrix = np.arange(12, dtype=np.float64).reshape(4, 3)
    fs = sn.FeatureStats().update(matrix)
    assert fs.columns == ["0", "1", "2"]
    np.testing.assert_array_equal(fs.mean, matrix.mean(axis=0))
    with pytest.raises(ValueError, match="2-D"):
        sn.FeatureStats().update(np.zeros(3))


def test_update_accepts_dataframes_through_the_arrow_c_interface():
    polars = pytest.importorskip("polars")
    pandas = pytest.importorskip("pandas")
    duckdb = pytest.importorskip("duckdb")
    data = {"a": [1.0, 2.0, 3.0], "b": [10, 20, 30], "s": ["x", "y", "z"]}
    _check_ab(sn.FeatureStats().update(polars.DataFrame(data)))
    _check_ab(sn.FeatureStats().update(pandas.DataFrame(data)))
    connection = duckdb.connect()
    relation = connection.sql("select * from (values (1.0::double, 10, 'x'), (2.0, 20, 'y'), "
                              "(3.0, 30, 'z')) t(a, b, s)")
    _check_ab(sn.FeatureStats().update(relation))


def test_unsupported_source_is_a_clear_type_error():
    with pytest.raises(TypeError, match="cannot read data from a dict"):
        sn.FeatureStats().update({"a": [1.0]})
    with pytest.raises(TypeError, match="must yield pyarrow.RecordBatch"):
        sn.FeatureStats().update([1, 2, 3])


def test_schema_changes_are_clear_errors():
    fs = sn.FeatureStats().update(pa.table({"a": [1.0], "b": [2.0]}))
    with pytest.raises(ValueError, match="column 'b' is missing from this batch"):
        fs.update(pa.table({"a": [1.0]}))
    with pytest.raises(ValueError, match="column 'a' changed type from double to string"):
        fs.update(pa.table({"a": ["1"], "b": [2.0]}))
    with pytest.raises(ValueError, match="column 'zz' is not in the data"):
        sn.FeatureStats(["zz"]).update(pa.table({"a": [1.0]}))


@pytest.mark.parametrize("types", [
    (pa.int32(), pa.int64(), pa.float64()),
    (pa.float32(), pa.float64(), pa.int16()),
    (pa.uint8(), pa.float16(), pa.int64()),
])
def test_column_types_widen_between_batches(types):
    """A column's type may change between batches (docs/design.md §3): the state accumulates in
    float64 whatever the type, and records the widened type."""
    values = [[1, 2, 3], [10, 20], [7]]
    fs = sn.FeatureStats()
    for chunk, arrow_type in zip(values, types):
        fs.update(pa.table({"x": pa.array(chunk, arrow_type)}))
    whole = sn.FeatureStats().update(pa.table({"x": [1.0, 2.0, 3.0, 10.0, 20.0, 7.0]}))
    assert fs.count.tolist() == [6] and fs.mean[0] == whole.mean[0]
    assert fs.var()[0] == pytest.approx(whole.var()[0], rel=1e-15)
    assert fs.to_arrow()["type"].to_pylist() == ["double"]
    batches = [pa.record_batch({"x": pa.array(chunk, t)}) for chunk, t in zip(values, types)]
    assert sn.FeatureStats().update(iter(batches)).count.tolist() == [6]


def test_merge_records_the_widened_type():
    narrow = sn.FeatureStats().update(pa.table({"x": pa.array([1, 2], pa.int32())}))
    wide = sn.FeatureStats().update(pa.table({"x": [2.5]}))
    assert (narrow + wide).to_arrow()["type"].to_pylist() == ["double"]
    assert (wide + narrow).to_arrow()["type"].to_pylist() == ["double"]


@pytest.mark.parametrize("suffix", [".parquet", ".arrow", ".arrows"])
def test_feature_stats_reads_files_batch_by_batch(tmp_path, suffix, rng):
    table = pa.table({"a": rng.normal(5, 2, 10_000), "b": rng.integers(0, 9, 10_000)})
    path = tmp_path / f"data{suffix}"
    if suffix == ".parquet":
        pq.write_table(table, path, row_group_size=1_500)
    elif suffix == ".arrow":
        with pa.ipc.new_file(path, table.schema) as writer:
            writer.write_table(table, max_chunksize=1_500)
    else:
        with pa.ipc.new_stream(path, table.schema) as writer:
            writer.write_table(table, max_chunksize=1_500)
    fs = sn.feature_stats(path, batch_size=700)
    assert_matches(fs, 0, table["a"].to_numpy())
    assert_matches(fs, 1, table["b"].to_numpy())
    assert sn.feature_stats(str(path), columns=["b"]).columns == ["b"]


def test_bad_files_are_input_errors(tmp_path):
    with pytest.raises(sn.InputError, match="no such file"):
        sn.feature_stats(tmp_path / "missing.parquet")
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    with pytest.raises(sn.InputError, match="empty"):
        sn.feature_stats(empty)
    junk = tmp_path / "junk.bin"
    junk.write_text("a,b\n1,2\n")
    with pytest.raises(sn.InputError, match="not an Arrow IPC or Parquet file"):
        sn.feature_stats(junk)
    good = tmp_path / "good.arrow"
    table = pa.table({"a": np.arange(10_000.0)})
    with pa.ipc.new_file(good, table.schema) as writer:
        writer.write_table(table, max_chunksize=1000)
    truncated = tmp_path / "truncated.arrow"
    truncated.write_bytes(good.read_bytes()[:40_000])
    with pytest.raises(sn.InputError):
        sn.feature_stats(truncated)


# --------------------------------------------------------------------------- merge and persistence


def test_merge_is_in_place_plus_copies_and_empty_is_the_identity():
    a = sn.FeatureStats().update(pa.table({"x": [1.0, 2.0]}))
    b = sn.FeatureStats().update(pa.table({"x": [3.0]}))
    total = a + b
    assert total.count.tolist() == [3] and total.mean.tolist() == [2.0]
    assert a.count.tolist() == [2], "+ must not modify its operands"
    assert a.merge(b) is a and a == total
    assert sn.FeatureStats().merge(b) == b, "an empty state is the identity"
    assert b.copy().merge(sn.FeatureStats()) == b
    with pytest.raises(ValueError, match="cannot merge statistics of columns"):
        a.merge(sn.FeatureStats().update(pa.table({"y": [1.0]})))
    with pytest.raises(ValueError, match="cannot merge nan="):
        a.merge(sn.FeatureStats(nan="propagate"))
    with pytest.raises(TypeError):
        a.merge(3)


@pytest.mark.parametrize("suffix", [".json", ".arrow", ".parquet", ".feather"])
def test_save_load_round_trip_is_bit_exact(tmp_path, suffix, rng):
    table = pa.table({
        "a": pa.array(1e9 + rng.normal(size=100), mask=rng.random(100) < 0.1),
        "b": np.where(rng.random(100) < 0.1, np.nan, rng.normal(size=100)),
        "c": pa.array([None] * 100, pa.float32()),
        "i": rng.integers(-5, 5, 100),
    })
    fs = sn.FeatureStats(nan="propagate").update(table)
    path = tmp_path / f"stats{suffix}"
    fs.save(path)
    loaded = sn.FeatureStats.load(path)
    assert loaded == fs
    assert loaded.nan == "propagate"
    saved, again = fs.to_arrow(), loaded.to_arrow()
    for name in ("count", "null_count", "nan_count", "shift", "shifted_mean", "m2"):
        np.testing.assert_array_equal(again[name].to_numpy(), saved[name].to_numpy())
    loaded.update(table)  # a reloaded state keeps streaming, type checks included
    with pytest.raises(ValueError, match="changed type"):
        loaded.update(table.set_column(3, "i", table["i"].cast(pa.string())))


def test_load_rejects_foreign_files(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(sn.InputError, match="not valid JSON"):
        sn.FeatureStats.load(path)
    path.write_text('{"hello": 1}')
    with pytest.raises(sn.InputError, match="not a streamnorm statistics file"):
        sn.FeatureStats.load(path)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1]}), other)
    with pytest.raises(sn.InputError, match="not a streamnorm statistics table"):
        sn.FeatureStats.load(other)


# --------------------------------------------------------------------------- hypothesis laws

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=64)
maybe_missing = st.one_of(finite, finite, finite, st.just(float("nan")), st.none())
column_values = st.lists(maybe_missing, min_size=0, max_size=60)


def _table(values: list[float | None], offset: float) -> pa.Table:
    shifted = [None if v is None else v + offset for v in values]
    return pa.table({"x": pa.array(shifted, pa.float64())})


def _close(a: sn.FeatureStats, b: sn.FeatureStats) -> None:
    assert a.columns == b.columns
    for name in ("count", "null_count", "nan_count"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in ("mean", "min", "max"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-13, atol=1e-300)
    # var is compared with an absolute floor relative to the data's scale (cancellation)
    scale = max(1.0, float(np.nanmax(np.abs(np.r_[a.max, a.min, 0.0]))))
    np.testing.assert_allclose(a.var(), b.var(), rtol=1e-10, atol=1e-18 * scale**2)


@settings(max_examples=60, deadline=None)
@given(values=column_values, cuts=st.lists(st.integers(0, 60), max_size=6),
       offset=st.sampled_from([0.0, 1e9, -3e5]))
def test_any_batching_gives_the_same_state(values, cuts, offset):
    table = _table(values, offset)
    whole = sn.FeatureStats(["x"]).update(table)
    points = sorted({0, len(values), *[c for c in cuts if c <= len(values)]})
    pieces = sn.FeatureStats(["x"]).update(table.slice(0, 0))
    for start, stop in zip(points, points[1:]):
        pieces.update(table.slice(start, stop - start))
    _close(whole, pieces)


@settings(max_examples=60, deadline=None)
@given(a=column_values, b=column_values, c=column_values,
       offset=st.sampled_from([0.0, 1e9]))
def test_merge_is_associative_and_commutative(a, b, c, offset):
    sa, sb, sc = (sn.FeatureStats(["x"]).update(_table(v, offset)) for v in (a, b, c))
    left = (sa + sb) + sc
    right = sa + (sb + sc)
    swapped = sc + (sb + sa)
    _close(left, right)
    _close(left, swapped)
    _close(left, sn.FeatureStats(["x"]).update(_table(a + b + c, offset)))


@settings(max_examples=30, deadline=None)
@given(values=column_values, offset=st.sampled_from([0.0, 1e9]))
def test_to_arrow_from_arrow_and_dict_are_identities(values, offset):
    fs = sn.FeatureStats(["x"]).update(_table(values, offset))
    assert sn.FeatureStats.from_arrow(fs.to_arrow()) == fs
    assert sn.FeatureStats.from_dict(fs.to_dict()) == fs


# --------------------------------------------------------------------------- row statistics


def test_row_stats_over_scalar_columns_of_mixed_dtypes_match_nanvar(rng):
    n = 1500
    a = rng.normal(size=n)
    b = rng.normal(size=n).astype(np.float32)
    c = rng.integers(-9, 9, n).astype(np.int16)
    mask_a = rng.random(n) < 0.2
    table = pa.table({"a": pa.array(a, mask=mask_a), "b": b, "c": c, "s": ["q"] * n})
    out = sn.row_stats(table)
    matrix = np.column_stack([np.where(mask_a, np.nan, a), b.astype(np.float64), c])
    np.testing.assert_array_equal(out["count"].to_numpy(), 3 - mask_a.astype(int))
    np.testing.assert_allclose(out["mean"].to_numpy(), np.nanmean(matrix, axis=1), rtol=1e-13)
    np.testing.assert_allclose(out["var"].to_numpy(), np.nanvar(matrix, axis=1), rtol=1e-12,
                               atol=1e-15)


def test_row_stats_within_a_vector_column_skip_null_values_and_rows(rng):
    width = 7
    flat = rng.normal(size=40 * width).astype(np.float32)
    flat_mask = rng.random(flat.size) < 0.1
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat, mask=flat_mask), width)
    row_mask = pa.array(rng.random(40) < 0.1)
    vectors = pa.FixedSizeListArray.from_arrays(
        pa.array(flat, mask=flat_mask), width, mask=row_mask
    ).slice(3)
    out = sn.row_stats(pa.table({"v": vectors, "id": np.arange(37)}), columns=["v"])
    matrix = np.where(flat_mask, np.nan, flat.astype(np.float64)).reshape(40, width)[3:]
    null_rows = row_mask.to_numpy(zero_copy_only=False)[3:]
    counts = (~np.isnan(matrix)).sum(axis=1)
    counts[null_rows] = 0
    assert out["count"].to_numpy().tolist() == counts.tolist()
    got_mean = out["mean"].to_numpy(zero_copy_only=False)
    assert np.isnan(got_mean[null_rows]).all()
    np.testing.assert_allclose(got_mean[~null_rows], np.nanmean(matrix, axis=1)[~null_rows],
                               rtol=1e-13)


def test_row_with_no_valid_value_is_null():
    table = pa.table({"a": pa.array([None, 1.0]), "b": pa.array([np.nan, 3.0])})
    out = sn.row_stats(table).to_pylist()
    assert out[0] == {"count": 0, "mean": None, "var": None}
    assert out[1] == {"count": 2, "mean": 2.0, "var": 1.0}


def test_row_stats_refuse_ambiguous_or_non_numeric_columns():
    vec = pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0]), 2)
    table = pa.table({"a": [1.0], "v": vec, "w": vec})
    with pytest.raises(ValueError, match="columns="):
        sn.row_stats(table)
    with pytest.raises(ValueError, match="columns="):
        sn.row_stats(table, columns=["a", "v"])
    assert sn.row_stats(table, columns="v")["mean"].to_pylist() == [1.5]
    with pytest.raises(TypeError, match="column 's'"):
        sn.row_stats(pa.table({"s": ["x"]}), columns=["s"])


# --------------------------------------------------------------------------- non-finite and huge
# Issue 12: ±inf are counted (and skipped with inf="skip"); finite data of any magnitude gives
# finite, accurate mean and std (the state is rescaled by 2**-BIG_EXPONENT where the plain
# float64 moments would overflow).


@pytest.mark.parametrize("values", [
    [1.7e308, -1.7e308],
    [1e200, 1e200, 3e200, 1e200, 2e200],
    [-1.7e308, 1.7e308, 1.7e308, 1.0, -3.0],
    [1e160, -1e160, 5e159, 0.0],
    [1.7976931348623157e308] * 3 + [-1.7976931348623157e308],
])
@pytest.mark.parametrize("batch", [1, 2, 1000])
def test_finite_huge_values_never_overflow(values, batch):
    fs = sn.FeatureStats().update(pa.table({"x": values}).to_batches(max_chunksize=batch))
    mean, std = exact_mean_std(values)
    spread = max(abs(v) for v in values)
    assert np.isfinite(fs.mean[0]) and np.isfinite(fs.std()[0])
    assert abs(fs.mean[0] - mean) <= 1e-15 * spread
    assert rel_err(fs.std()[0], std) <= 1e-14
    assert fs.min[0] == min(values) and fs.max[0] == max(values)
    assert fs.inf_count.tolist() == [0]


def test_mean_of_opposite_extremes_is_zero():
    fs = sn.FeatureStats().update(pa.table({"x": [1.7e308, -1.7e308]}))
    assert fs.mean.tolist() == [0.0] and fs.std().tolist() == [1.7e308]
    whole = sn.FeatureStats().update(pa.table({"x": [1e200, 1e200, 3e200, 1e200, 2e200]}))
    assert np.isinf(whole.var()[0]) and whole.std()[0] == pytest.approx(8e199, rel=1e-15)


def test_huge_states_merge_save_and_load_exactly(tmp_path):
    a = sn.FeatureStats().update(pa.table({"x": [1e154, 2.0]}))
    b = sn.FeatureStats().update(pa.table({"x": [-1e154, 3.0]}))
    assert a.to_arrow()["scale_exponent"].to_pylist() == [0]  # no overflow on either side
    merged = a + b  # d*d overflows in Chan's merge: merged again at the big exponent
    mean, std = exact_mean_std([1e154, 2.0, -1e154, 3.0])
    assert abs(merged.mean[0] - mean) <= 1e-15 * 1e154
    assert rel_err(merged.std()[0], std) <= 1e-14
    assert merged.to_arrow()["scale_exponent"].to_pylist() == [BIG_EXPONENT]
    for suffix in (".json", ".arrow", ".parquet"):
        merged.save(tmp_path / f"s{suffix}")
        assert sn.FeatureStats.load(tmp_path / f"s{suffix}") == merged


def test_four_moments_of_huge_values_are_never_wrong_finite_numbers():
    values = [1e200, 1e200, 3e200, 1e200, 2e200]
    fs = sn.FeatureStats(moments=4).update(pa.table({"x": values}))
    plain = sn.FeatureStats(moments=4).update(pa.table({"x": [v / 1e200 for v in values]}))
    assert rel_err(fs.std()[0], 8e199) <= 1e-14
    for got, want in ((fs.skew()[0], plain.skew()[0]), (fs.kurtosis()[0], plain.kurtosis()[0])):
        assert not np.isfinite(got) or rel_err(got, want) <= 1e-12


def test_inf_is_counted_and_kept_or_skipped():
    column = pa.array([1.0, np.inf, 3.0, -np.inf, None, np.nan, np.inf], pa.float64())
    kept = sn.FeatureStats().update(pa.table({"x": column}))
    assert kept.inf_count.tolist() == [3] and kept.count.tolist() == [5]
    assert np.isnan(kept.mean[0]) and kept.min[0] == -np.inf and kept.max[0] == np.inf
    skipped = sn.FeatureStats(inf="skip").update(pa.table({"x": column}))
    assert skipped.inf_count.tolist() == [3] and skipped.count.tolist() == [2]
    assert skipped.null_count.tolist() == [1] and skipped.nan_count.tolist() == [1]
    assert skipped.mean.tolist() == [2.0] and skipped.var().tolist() == [1.0]
    assert skipped.min.tolist() == [1.0] and skipped.max.tolist() == [3.0]
    # the same through the extension kernels (moments=4, weights)
    four = sn.FeatureStats(moments=4, inf="skip").update(pa.table({"x": column}))
    assert four.inf_count.tolist() == [3] and four.mean.tolist() == [2.0]
    weighted = sn.FeatureStats(inf="skip").update(
        pa.table({"x": column, "w": [1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 1.0]}), weights="w")
    assert weighted.inf_count.tolist() == [3] and weighted.mean.tolist() == [2.5]
    with pytest.raises(ValueError, match="inf must be one of"):
        sn.FeatureStats(inf="drop")
    with pytest.raises(ValueError, match="cannot merge inf='keep' with inf='skip'"):
        kept.merge(skipped)


def test_inf_count_survives_save_load_and_merge_and_old_files_load(tmp_path):
    fs = sn.FeatureStats(inf="skip").update(pa.table({"x": [1.0, np.inf, 2.0]}))
    for suffix in (".json", ".arrow"):
        fs.save(tmp_path / f"s{suffix}")
        back = sn.FeatureStats.load(tmp_path / f"s{suffix}")
        assert back == fs and back.inf == "skip" and back.inf_count.tolist() == [1]
    assert (fs + fs).inf_count.tolist() == [2]
    # a statistics file written before inf_count / scale_exponent existed
    old = fs.to_dict()
    old.pop("inf")
    for row in old["columns"]:
        row.pop("inf_count")
        row.pop("scale_exponent")
    legacy = sn.FeatureStats.from_dict(old)
    assert legacy.inf_count.tolist() == [0] and legacy.mean.tolist() == [1.5]
    table = fs.to_arrow().drop_columns(["inf_count", "scale_exponent"])
    assert sn.FeatureStats.from_arrow(table).inf_count.tolist() == [0]


extreme = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.floats(min_value=-1e6, max_value=1e6, width=64),
    st.sampled_from([1.7e308, -1.7e308, 1e200, -1e200, float("inf"), float("-inf")]),
    st.none(), st.just(float("nan")),
)


@settings(max_examples=80, deadline=None)
@given(values=st.lists(extreme, min_size=0, max_size=40),
       cuts=st.lists(st.integers(0, 40), max_size=5))
def test_any_batching_of_extreme_values_gives_the_same_accurate_state(values, cuts):
    table = pa.table({"x": pa.array(values, pa.float64())})
    whole = sn.FeatureStats(["x"], inf="skip").update(table)
    points = sorted({0, len(values), *[c for c in cuts if c <= len(values)]})
    parts = [sn.FeatureStats(["x"], inf="skip").update(table.slice(a, b - a))
             for a, b in zip(points, points[1:])]
    merged = sn.FeatureStats(["x"], inf="skip").update(table.slice(0, 0))
    for part in parts:
        merged.merge(part)
    finite_values = [v for v in values if v is not None and math.isfinite(v)]
    n_inf = sum(1 for v in values if v is not None and math.isinf(v))
    for fs in (whole, merged):
        assert fs.inf_count.tolist() == [n_inf] and fs.count.tolist() == [len(finite_values)]
        if not finite_values:
            assert np.isnan(fs.mean[0])
            continue
        mean, std = exact_mean_std(finite_values)
        spread = max(abs(v) for v in finite_values)
        # plus one subnormal step: [5e-324, 0.0] has the exact mean 2.5e-324, which no float
        # holds (it rounds to 0.0; shift + shifted_mean gives 5e-324)
        assert abs(fs.mean[0] - mean) <= 1e-14 * spread + 5e-324
        # relative 1e-13, or absolute at the rounding level of the largest value (a std far
        # below the values' magnitude is limited by the rounding of x - shift); deviations
        # below ~1e-154 underflow when squared (documented), hence the absolute 1e-150
        assert abs(fs.std()[0] - std) <= 1e-13 * std + 1e-14 * spread + 1e-150
        assert fs.min[0] == min(finite_values) and fs.max[0] == max(finite_values)
    assert sn.FeatureStats.from_dict(merged.to_dict()) == merged


def test_in_memory_data_with_duplicate_column_names_is_one_clear_error():
    table = pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0])], names=["x", "x"])
    for fit in (lambda: sn.FeatureStats().update(table), lambda: sn.Normalizer().fit(table),
                lambda: sn.Normalizer("layer").transform(table)):
        with pytest.raises(sn.InputError, match="more than one column is named 'x'"):
            fit()
