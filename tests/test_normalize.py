"""Normalizer (batch / layer / rms), normalize_file and inverse_file against float64 references.

References: numpy float64 two-pass over the valid values. Tolerances: relative 1e-12 for
float64 outputs; float32 outputs within one float32 ulp of the float64 reference.
"""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamnorm as sn
from streamnorm.normalize.plan import output_type
from streamnorm.normalize.record import METADATA_KEY, STATS_FILE_SUFFIX

RTOL = 1e-12


# --------------------------------------------------------------------------- references


def ref_batch(x: np.ndarray, valid: np.ndarray, eps: float = 0.0, ddof: int = 0) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) over the valid entries, float64; std 0 -> scale 1."""
    v = x[valid].astype(np.float64)
    mean = v.mean()
    var = ((v - mean) ** 2).sum() / (len(v) - ddof)
    scale = 1.0 if var == 0 else np.sqrt(var + eps)
    return (x.astype(np.float64) - mean) / scale


def ref_layer(m: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """torch.nn.functional.layer_norm(m, m.shape[-1:], eps=eps) semantics, no affine, float64."""
    m = m.astype(np.float64)
    mean = m.mean(axis=1, keepdims=True)
    var = ((m - mean) ** 2).mean(axis=1, keepdims=True)
    return (m - mean) / np.sqrt(var + eps)


def ref_rms(m: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """torch.nn.functional.rms_norm(m, m.shape[-1:], eps=eps) semantics, no weight, float64."""
    m = m.astype(np.float64)
    return m / np.sqrt((m * m).mean(axis=1, keepdims=True) + eps)


def assert_float_close(got: np.ndarray, want64: np.ndarray, dtype: np.dtype) -> None:
    """float64: relative 1e-12; float32: within one ulp of the reference rounded to float32."""
    if np.dtype(dtype) == np.float32:
        assert got.dtype == np.float32
        np.testing.assert_array_max_ulp(got, want64.astype(np.float32), maxulp=1)
    else:
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want64, rtol=RTOL, atol=RTOL * np.abs(want64).max())


def assert_close_across_batchings(got: pa.ChunkedArray, want: pa.ChunkedArray) -> None:
    """Outputs of statistics fitted over different batchings: equal to a few float64 ulps of
    the output's magnitude (then rounded once to float32 for float32 columns), never assumed
    bit-identical (the rounding of a block sum depends on the CPU's vector width)."""
    a, b = values(got), values(want)
    assert a.dtype == b.dtype
    rtol = 1e-6 if a.dtype == np.float32 else 1e-13
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.nanmax(np.abs(b)))


def values(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Float values with nulls as NaN."""
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=array.type.to_pandas_dtype())


# --------------------------------------------------------------------------- batch mode

DTYPES = [np.int8, np.int32, np.int64, np.uint16, np.float16, np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_mode_matches_reference(rng, dtype):
    x = (rng.normal(20, 5, 3000)).astype(dtype)
    table = pa.table({"x": x})
    out = sn.Normalizer().fit(table).transform(table)
    assert out.schema.field("x").type == output_type(pa.from_numpy_dtype(dtype))
    want = ref_batch(x, np.ones(len(x), bool))
    assert_float_close(values(out["x"]), want, np.float32 if dtype == np.float32 else np.float64)


def test_batch_mode_offset_mean_is_accurate(rng):
    x = 1e9 + rng.normal(0, 1, 5000)
    out = sn.Normalizer().fit(pa.table({"x": x})).transform(pa.record_batch({"x": x}))
    assert isinstance(out, pa.RecordBatch)
    assert_float_close(values(out["x"]), ref_batch(x, np.ones(len(x), bool)), np.float64)


def test_fit_over_many_batches_equals_one(rng):
    x = rng.normal(3, 2, 1000)
    batches = [pa.record_batch({"x": x[i : i + 97]}) for i in range(0, 1000, 97)]
    one = sn.Normalizer().fit(pa.table({"x": x}))
    many = sn.Normalizer().fit(iter(batches))
    np.testing.assert_allclose(many.stats.mean, one.stats.mean, rtol=RTOL)
    np.testing.assert_allclose(many.stats.var(), one.stats.var(), rtol=RTOL)


@pytest.mark.parametrize("offset", [0, 3, 8, 13])
def test_nulls_stay_null_at_any_slice_offset(rng, offset):
    x = rng.normal(0, 1, 500)
    mask = rng.random(500) < 0.2
    batch = pa.record_batch({"x": pa.array(x, mask=mask), "y": pa.array(x * 2)}).slice(offset, 300)
    norm = sn.Normalizer().fit(batch)
    out = norm.transform(batch)
    got = out.column("x")
    assert got.null_count == mask[offset : offset + 300].sum()
    assert got.is_null().to_pylist() == mask[offset : offset + 300].tolist()
    valid = ~mask[offset : offset + 300]
    want = ref_batch(x[offset : offset + 300], valid)
    np.testing.assert_allclose(values(got)[valid], want[valid], rtol=RTOL)
    out.validate(full=True)


def test_all_null_column_gives_all_null_output():
    table = pa.table({"x": pa.array([None, None], pa.float64()), "y": [1.0, 3.0]})
    out = sn.Normalizer().fit(table).transform(table)
    assert out["x"].to_pylist() == [None, None]
    assert out["y"].to_pylist() == [-1.0, 1.0]


def test_non_numeric_columns_pass_through_and_order_is_kept(rng):
    table = pa.table(
        {
            "name": ["a", "b", "c"],
            "x": [1, 2, 3],
            "flag": [True, False, True],
            "when": pa.array([1, 2, 3], pa.timestamp("s")),
            "vec": pa.array([[1.0, 2.0]] * 3, pa.list_(pa.float64(), 2)),
            "y": pa.array([1.0, 1.0, 4.0], pa.float32()),
        }
    )
    out = sn.Normalizer().fit(table).transform(table)
    assert out.column_names == table.column_names
    for name in ("name", "flag", "when", "vec"):
        assert out[name].equals(table[name])
    assert out.schema.field("x").type == pa.float64()
    assert out.schema.field("y").type == pa.float32()


def test_only_the_chosen_columns_change(rng):
    table = pa.table({"a": [1.0, 2.0, 3.0], "b": [5, 6, 9]})
    out = sn.Normalizer(columns=["b"]).fit(table).transform(table)
    assert out["a"].equals(table["a"])
    assert out.schema.field("b").type == pa.float64()


def test_constant_column_becomes_zero_not_nan():
    table = pa.table({"c": [7.0] * 5, "i": pa.array([3] * 5, pa.int16())})
    out = sn.Normalizer().fit(table).transform(table)
    assert out["c"].to_pylist() == [0.0] * 5
    assert out["i"].to_pylist() == [0.0] * 5


@pytest.mark.parametrize("eps", [0.0, 0.5, 10.0])
@pytest.mark.parametrize("ddof", [0, 1])
def test_eps_and_ddof_match_the_reference(rng, eps, ddof):
    x = rng.normal(1, 2, 200)
    table = pa.table({"x": x})
    out = sn.Normalizer(eps=eps, ddof=ddof).fit(table).transform(table)
    want = ref_batch(x, np.ones(len(x), bool), eps=eps, ddof=ddof)
    np.testing.assert_allclose(values(out["x"]), want, rtol=RTOL)


def test_nan_is_skipped_or_poisons_its_column():
    table = pa.table({"x": [1.0, np.nan, 3.0]})
    skip = sn.Normalizer().fit(table).transform(table)["x"].to_pylist()
    assert skip[0] == -1.0 and np.isnan(skip[1]) and skip[2] == 1.0
    poisoned = sn.Normalizer(nan="propagate").fit(table).transform(table)["x"].to_pylist()
    assert all(np.isnan(v) for v in poisoned)


def test_chunked_table_gives_table(rng):
    x = rng.normal(0, 1, 100)
    table = pa.Table.from_batches(
        [pa.record_batch({"x": x[:40]}), pa.record_batch({"x": x[40:]})]
    )
    out = sn.Normalizer().fit(table).transform(table)
    assert isinstance(out, pa.Table) and out.num_rows == 100
    np.testing.assert_allclose(values(out["x"]), ref_batch(x, np.ones(100, bool)), rtol=RTOL)


@pytest.mark.parametrize("mode", ["batch", "layer"])
def test_batches_whose_types_widen_give_one_table(mode):
    """float32 then float64 batches (docs/design.md §3): the table holds the widened float64."""
    first = pa.record_batch({"x": pa.array([1.0, 2.0, 3.0], pa.float32()), "y": [1.0, 0.0, 2.0],
                             "s": ["a", "b", "c"]})
    second = pa.record_batch({"x": [4.0, 5.0], "y": pa.array([1, 7], pa.int32()), "s": ["d", "e"]})
    norm = sn.Normalizer(mode).fit([first, second])
    got = norm.transform([first, second])
    assert got.schema.types == [pa.float64(), pa.float64(), pa.string()]
    whole = pa.table({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "y": [1.0, 0.0, 2.0, 1.0, 7.0],
                      "s": list("abcde")})
    want = sn.Normalizer(mode).fit(whole).transform(whole)
    np.testing.assert_allclose(got["x"].to_numpy(), want["x"].to_numpy(), rtol=1e-7)
    with pytest.raises(sn.SchemaError, match="column 'x' changed type from float to string"):
        sn.Normalizer("layer", columns=["y"]).transform(
            [first, pa.record_batch({"x": ["q"], "y": [1.0], "s": ["f"]})])


def test_transform_batches_one_out_per_in(rng):
    x = rng.normal(0, 1, 1000)
    batches = [pa.record_batch({"x": x[i : i + 100], "s": [str(i)] * 100}) for i in range(0, 1000, 100)]
    norm = sn.Normalizer().fit(iter(batches))
    outs = list(norm.transform_batches(iter(batches)))
    assert [b.num_rows for b in outs] == [100] * 10
    assert len(list(norm.transform_batches(pa.Table.from_batches(batches), batch_size=30))) == 40


def test_polars_dataframe_normalizes_into_a_table(rng):
    pl = pytest.importorskip("polars")
    df = pl.DataFrame({"x": rng.normal(5, 2, 300), "s": ["a"] * 300})
    out = sn.Normalizer().fit(df).transform(df)
    assert isinstance(out, pa.Table)
    assert out["x"].to_numpy().mean() == pytest.approx(0, abs=1e-14)


def test_unfitted_use_bad_columns_and_bad_settings_are_refused():
    table = pa.table({"x": [1.0, 2.0], "s": ["a", "b"]})
    with pytest.raises(RuntimeError, match="not fitted"):
        sn.Normalizer().transform(table)
    with pytest.raises(sn.SchemaError, match="'nope' is not in the data"):
        sn.Normalizer(columns=["nope"]).fit(table)
    with pytest.raises(sn.SchemaError, match="'s' has type string"):
        sn.Normalizer(columns=["s"]).fit(table)
    with pytest.raises(sn.SchemaError, match="'s' has type string"):
        sn.Normalizer("layer", columns=["s"]).transform(table)
    with pytest.raises(ValueError, match="cannot be inverted"):
        sn.Normalizer("layer").inverse_transform(table)
    with pytest.raises(ValueError, match="mode must be one of"):
        sn.Normalizer("group")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps"):
        sn.Normalizer(eps=-1.0)
    fitted = sn.Normalizer().fit(table)
    with pytest.raises(sn.SchemaError, match="'x' of the statistics is not in the data"):
        fitted.transform(pa.table({"y": [1.0]}))


# --------------------------------------------------------------------------- stats & metadata


def test_from_stats_object_or_saved_file_equals_fitting(tmp_path, rng):
    table = pa.table({"a": rng.normal(2, 3, 400), "b": rng.integers(0, 9, 400)})
    fitted = sn.Normalizer().fit(table)
    expected = fitted.transform(table)
    stats = sn.feature_stats(table)
    assert sn.Normalizer.from_stats(stats).transform(table).equals(expected)
    for suffix in (".json", ".arrow", ".parquet"):
        path = tmp_path / f"stats{suffix}"
        stats.save(path)
        assert sn.Normalizer.from_stats(path).transform(table).equals(expected)
    only_b = sn.Normalizer.from_stats(stats, columns=["b"]).transform(table)
    assert only_b["a"].equals(table["a"]) and only_b["b"].equals(expected["b"])
    with pytest.raises(sn.SchemaError, match="not in the statistics"):
        sn.Normalizer.from_stats(stats, columns=["zz"])


def test_metadata_record_rebuilds_the_normalizer_and_inverts(rng):
    table = pa.table({"a": rng.normal(2, 3, 100), "s": ["x"] * 100})
    norm = sn.Normalizer(eps=0.25, ddof=1).fit(table)
    out = norm.transform(table)
    record = json.loads(out.schema.metadata[METADATA_KEY])
    assert record["mode"] == "batch" and record["eps"] == 0.25 and record["ddof"] == 1
    again = sn.Normalizer.from_metadata(out)
    assert again.stats == norm.stats and (again.eps, again.ddof) == (0.25, 1)
    restored = again.inverse_transform(out)
    assert METADATA_KEY not in (restored.schema.metadata or {})
    np.testing.assert_allclose(values(restored["a"]), table["a"].to_numpy(), rtol=1e-14)
    assert restored["s"].equals(table["s"])
    with pytest.raises(sn.InputError, match="no streamnorm normalization record"):
        sn.Normalizer.from_metadata(table)


def test_row_mode_record_holds_mode_and_eps_but_no_stats():
    out = sn.Normalizer("rms").transform(pa.table({"a": [1.0], "b": [2.0]}))
    record = json.loads(out.schema.metadata[METADATA_KEY])
    assert record["mode"] == "rms" and record["eps"] == 1e-5 and "stats" not in record


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=64)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(finite, min_size=1, max_size=60),
    offset=st.sampled_from([0.0, 1e3, -1e9]),
    cut=st.integers(min_value=0, max_value=60),
    null_every=st.integers(min_value=0, max_value=5),
)
def test_inverse_restores_the_values_at_any_batching(data, offset, cut, null_every):
    x = np.array(data) + offset
    mask = np.zeros(len(x), bool) if null_every == 0 else (np.arange(len(x)) % null_every == 1)
    arr = pa.array(x, mask=mask)
    batches = [pa.record_batch({"x": arr}).slice(0, cut), pa.record_batch({"x": arr}).slice(cut)]
    norm = sn.Normalizer().fit(iter(batches))
    restored = norm.inverse_transform(norm.transform(pa.Table.from_batches(batches)))
    got = values(restored["x"])
    assert np.isnan(got[mask]).all()
    valid = ~mask
    if valid.any():
        spread = float(np.ptp(x[valid])) + 1.0
        tol = 1e-13 * (np.abs(x[valid]).max() + spread)
        np.testing.assert_allclose(got[valid], x[valid], rtol=0, atol=tol)


# --------------------------------------------------------------------------- layer / rms


@pytest.mark.parametrize("mode, ref", [("layer", ref_layer), ("rms", ref_rms)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_row_modes_on_scalar_columns_match_torch(rng, mode, ref, dtype):
    m = rng.normal(4, 3, (700, 5)).astype(dtype)
    table = pa.table({f"c{j}": m[:, j] for j in range(5)} | {"tag": ["t"] * 700})
    out = sn.Normalizer(mode).transform(table)
    want = ref(m)
    out_dtype = np.float32 if dtype == np.float32 else np.float64
    for j in range(5):
        assert_float_close(values(out[f"c{j}"]), want[:, j], out_dtype)
    assert out["tag"].equals(table["tag"])


@pytest.mark.parametrize("mode, ref", [("layer", ref_layer), ("rms", ref_rms)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_modes_on_vector_column_match_torch(rng, mode, ref, dtype):
    m = rng.normal(-2, 5, (300, 16)).astype(dtype)
    vec = pa.FixedSizeListArray.from_arrays(pa.array(m.ravel()), 16)
    batch = pa.record_batch({"id": np.arange(300), "vec": vec})
    out = sn.Normalizer(mode, columns=["vec"]).transform(batch)
    assert out.column("id").equals(batch.column("id"))
    got = np.asarray(out.column("vec").flatten().to_numpy()).reshape(300, 16)
    out_dtype = np.float32 if dtype == np.float32 else np.float64
    assert_float_close(got, ref(m), out_dtype)


def test_layer_normalizes_scalars_together_and_each_vector_alone(rng):
    m = rng.normal(0, 1, (50, 3))
    v = rng.normal(9, 2, (50, 4))
    table = pa.table(
        {"a": m[:, 0], "vec": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), 4),
         "b": m[:, 1], "c": m[:, 2]}
    )
    out = sn.Normalizer("layer").transform(table)
    want = ref_layer(m)
    for j, name in enumerate("abc"):
        np.testing.assert_allclose(values(out[name]), want[:, j], rtol=RTOL, atol=1e-15)
    got_v = np.asarray(out["vec"].combine_chunks().flatten().to_numpy()).reshape(50, 4)
    np.testing.assert_allclose(got_v, ref_layer(v), rtol=RTOL, atol=1e-15)


def test_layer_nulls_skipped_per_row_and_kept():
    table = pa.table({"a": [1.0, None, 2.0], "b": [3.0, 5.0, None], "c": [5.0, 9.0, 4.0]})
    out = sn.Normalizer("layer", eps=0.0).transform(table)
    assert out["a"].to_pylist()[1] is None and out["b"].to_pylist()[2] is None
    row0 = ref_layer(np.array([[1.0, 3.0, 5.0]]), eps=0.0)[0]
    row1 = ref_layer(np.array([[5.0, 9.0]]), eps=0.0)[0]
    assert out.slice(0, 1).to_pylist()[0] == pytest.approx(dict(zip("abc", row0)), rel=RTOL)
    assert [out["b"][1].as_py(), out["c"][1].as_py()] == pytest.approx(row1, rel=RTOL)


def test_vector_null_rows_and_null_values_stay_null(rng):
    vec = pa.array([[1.0, 2.0, 3.0], None, [4.0, None, 8.0]], pa.list_(pa.float32(), 3))
    out = sn.Normalizer("rms", eps=0.0).transform(pa.table({"v": vec}))
    got = out["v"].to_pylist()
    assert got[1] is None and got[2][1] is None
    assert got[0] == pytest.approx(ref_rms(np.array([[1.0, 2.0, 3.0]]), 0.0)[0].tolist(), rel=1e-7)
    assert [got[2][0], got[2][2]] == pytest.approx(
        ref_rms(np.array([[4.0, 8.0]]), 0.0)[0].tolist(), rel=1e-7
    )
    assert out.schema.field("v").type == pa.list_(pa.float32(), 3)


def test_row_modes_default_eps_and_constant_row_becomes_zero():
    table = pa.table({"a": [2.0, 1.0], "b": [2.0, 3.0]})
    assert sn.Normalizer("layer").eps == 1e-5 and sn.Normalizer("rms").eps == 1e-5
    assert sn.Normalizer().eps == 0.0
    layer0 = sn.Normalizer("layer", eps=0.0).transform(table)
    assert layer0["a"].to_pylist() == [0.0, -1.0]  # constant row -> 0, not NaN
    zeros = sn.Normalizer("rms", eps=0.0).transform(pa.table({"a": [0.0], "b": [0.0]}))
    assert zeros["a"].to_pylist() == [0.0]


def test_row_nan_is_skipped_or_poisons_its_row():
    table = pa.table({"a": [1.0, np.nan], "b": [3.0, 5.0], "c": [5.0, 7.0]})
    skip = sn.Normalizer("layer", eps=0.0).transform(table)
    assert skip["b"][1].as_py() == pytest.approx(-1.0) and np.isnan(skip["a"][1].as_py())
    poisoned = sn.Normalizer("layer", nan="propagate").transform(table)
    assert np.isnan(poisoned["b"][1].as_py()) and not np.isnan(poisoned["b"][0].as_py())


def test_row_modes_need_no_fit():
    norm = sn.Normalizer("layer")
    assert norm.fit(pa.table({"a": [1.0]})) is norm and norm.stats is None and norm.is_fitted


# --------------------------------------------------------------------------- files


def write_parquet(path, table, row_group_size=None):
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_normalize_file_writes_every_format_with_its_record(tmp_path, rng):
    table = pa.table({"x": rng.normal(5, 2, 1000), "s": ["a"] * 1000,
                      "f": rng.normal(0, 1, 1000).astype(np.float32)})
    src = write_parquet(tmp_path / "in.parquet", table, row_group_size=256)
    expected = sn.Normalizer().fit(table).transform(table)
    for name in ("out.parquet", "out.arrow", "out.arrows"):
        result = sn.normalize_file(src, tmp_path / name, batch_size=100)
        assert result.rows == 1000 and result.passes == 2 and result.columns == ["x", "f"]
        got = sn.arrow.read_table(tmp_path / name).cast(expected.schema)
        # fit over 100-row batches vs the whole table: the statistics round differently on
        # different CPUs (vector widths), so only a few ulps are guaranteed, not the bits
        assert got.schema.equals(expected.schema) and got["s"].equals(expected["s"])
        assert_close_across_batchings(got["x"], expected["x"])
        assert_close_across_batchings(got["f"], expected["f"])
        assert METADATA_KEY in got.schema.metadata
    with ipc.open_stream(tmp_path / "out.arrows") as reader:
        assert sum(1 for _ in reader) == 12  # 4 row groups of 256 split into batches of 100
    restored = tmp_path / "restored.parquet"
    back = sn.inverse_file(tmp_path / "out.parquet", restored)
    assert back.rows == 1000
    got = pq.read_table(restored)
    np.testing.assert_allclose(got["x"].to_numpy(), table["x"].to_numpy(), rtol=1e-14)
    assert got["s"].equals(table["s"])


def test_normalize_file_with_stats_reads_once(tmp_path, rng):
    table = pa.table({"x": rng.normal(5, 2, 100)})
    src = write_parquet(tmp_path / "in.parquet", table)
    sn.feature_stats(table).save(tmp_path / "s.json")
    result = sn.normalize_file(src, tmp_path / "o.parquet", stats=tmp_path / "s.json")
    assert result.passes == 1
    # a normalized file carries its statistics: it can serve as stats for another file
    again = sn.normalize_file(src, tmp_path / "o2.parquet", stats=tmp_path / "o.parquet")
    assert pq.read_table(tmp_path / "o2.parquet").equals(pq.read_table(tmp_path / "o.parquet"))
    assert again.passes == 1


@pytest.mark.parametrize("mode", ["batch", "layer", "rms"])
def test_normalize_file_of_empty_input_writes_empty_output(tmp_path, mode):
    schema = pa.schema([("x", pa.int32()), ("s", pa.string())])
    src = tmp_path / "empty.arrow"
    with ipc.new_file(src, schema):
        pass
    result = sn.normalize_file(src, tmp_path / "out.parquet", mode=mode)
    got = pq.read_table(tmp_path / "out.parquet")
    assert result.rows == 0 and got.num_rows == 0
    assert got.schema.field("x").type == pa.float64() and got.schema.field("s").type == pa.string()


def test_normalize_file_refuses_bad_destinations(tmp_path):
    src = write_parquet(tmp_path / "in.parquet", pa.table({"x": [1.0, 2.0]}))
    with pytest.raises(sn.InputError, match="refusing to overwrite the input"):
        sn.normalize_file(src, src)
    with pytest.raises(sn.InputError, match="unknown output format"):
        sn.normalize_file(src, tmp_path / "out.csv")
    with pytest.raises(sn.InputError, match="not an existing directory"):
        sn.normalize_file(src, tmp_path / "missing" / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_failed_normalize_file_keeps_the_old_destination(tmp_path):
    src = write_parquet(tmp_path / "in.parquet", pa.table({"x": [1.0, 2.0]}))
    dst = tmp_path / "out.parquet"
    dst.write_bytes(b"keep me")
    stats = sn.feature_stats(pa.table({"y": [1.0]}))
    with pytest.raises(sn.SchemaError):
        sn.normalize_file(src, dst, stats=stats)
    assert dst.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"]


# --------------------------------------------------------------------------- grouped records


def test_many_keys_keep_the_output_small_and_invertible(tmp_path, rng, monkeypatch):
    """200k keys: the statistics go to a file beside the output, the output stays as small as
    one without by= and opens with pyarrow's default reader; inverse reads them back."""
    n = 200_000
    table = pa.table({"k": pa.array(np.arange(n) * 7919), "x": rng.normal(size=n)})
    src = write_parquet(tmp_path / "in.parquet", table, row_group_size=50_000)
    dst = tmp_path / "out.parquet"
    sn.normalize_file(src, dst, by="k")
    side = tmp_path / ("out.parquet" + STATS_FILE_SUFFIX)
    assert side.is_file()
    out = pq.read_table(dst)  # default thrift limits
    assert len(out.schema.metadata[METADATA_KEY]) < 1000
    assert dst.stat().st_size < src.stat().st_size + 2_000_000
    sn.inverse_file(dst, tmp_path / "back.parquet")
    np.testing.assert_array_equal(pq.read_table(tmp_path / "back.parquet")["x"].to_numpy(),
                                  table["x"].to_numpy())  # one row per key: all become 0
    with pytest.raises(sn.InputError, match="beside it"):
        sn.Normalizer.from_metadata(out.schema)  # a schema alone cannot find the file
    side.rename(tmp_path / "elsewhere.arrow")
    with pytest.raises(sn.InputError, match="out.parquet.stats.arrow is missing"):
        sn.inverse_file(dst, tmp_path / "back2.parquet")
    assert not (tmp_path / "back2.parquet").exists()

    def boom(self, batch):
        raise sn.SchemaError("stop")

    monkeypatch.setattr(sn.Normalizer, "_transform_batch", boom)
    with pytest.raises(sn.SchemaError):  # neither the output nor its statistics file is left
        sn.normalize_file(src, tmp_path / "failed.parquet", by="k")
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith((".", "failed"))]


def test_few_keys_stay_inline_as_arrow(tmp_path, rng):
    import datetime

    table = pa.table({
        "d": pa.array([datetime.date(2024, 1, 1 + i % 3) for i in range(30)]),
        "x": rng.normal(size=30),
    })
    src = write_parquet(tmp_path / "in.parquet", table)
    sn.normalize_file(src, tmp_path / "out.arrow", by="d")  # date keys: JSON cannot hold them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.arrow"]
    out = sn.arrow.read_table(tmp_path / "out.arrow")
    record = json.loads(out.schema.metadata[METADATA_KEY])
    assert "stats_arrow" in record and "stats" not in record
    again = sn.Normalizer.from_metadata(out.schema)
    assert again.stats == sn.FeatureStats(by="d").update(table)
    np.testing.assert_allclose(again.inverse_transform(out)["x"].to_numpy(),
                               table["x"].to_numpy(), rtol=1e-13)
    old = sn.Normalizer(by="d").fit(pa.table({"d": ["a", "b"], "x": [1.0, 2.0]}))
    record = {**old.record(), "stats": old.stats.to_dict()}  # as written before: JSON rows
    del record["stats_arrow"]
    loaded = sn.Normalizer.from_metadata(pa.schema([], metadata={METADATA_KEY: json.dumps(record)}))
    assert loaded.stats == old.stats
    for bad in ("!!", 3, "AAAA"):
        broken = {**old.record(), "stats_arrow": bad}
        with pytest.raises(sn.StatsFileError, match="stats_arrow|embedded"):
            sn.Normalizer.from_metadata(pa.schema([], metadata={METADATA_KEY: json.dumps(broken)}))


@pytest.mark.parametrize("mode", ["layer", "rms"])
def test_inverse_of_a_row_mode_file_says_why_not(tmp_path, mode):
    src = write_parquet(tmp_path / "in.parquet", pa.table({"a": [1.0, 2.0], "b": [4.0, 3.0]}))
    sn.normalize_file(src, tmp_path / "out.parquet", mode=mode)
    with pytest.raises(sn.InputError, match=f"normalized in {mode} mode, which cannot be "
                                            "inverted"):
        sn.inverse_file(tmp_path / "out.parquet", tmp_path / "back.parquet")
    assert not (tmp_path / "back.parquet").exists()


# --------------------------------------------------------------------------- issue 12: trust


def test_inf_is_refused_by_default_naming_columns_and_counts(tmp_path):
    n = 336_776
    x = np.linspace(-1, 1, n)
    x[1234] = np.inf
    y = np.arange(n, dtype=np.float64)
    y[[5, 6]] = -np.inf
    table = pa.table({"x": x, "y": y, "ok": np.ones(n)})
    with pytest.raises(sn.NonFiniteError, match=r"'x' \(1 ±inf: \+inf\), 'y' \(2 ±inf: -inf\)"
                       ) as caught:
        sn.Normalizer().fit(table)
    assert isinstance(caught.value, ValueError) and "inf='skip'" in str(caught.value)
    assert "'ok'" not in str(caught.value)
    # a Normalizer made from statistics that hold ±inf refuses at transform
    stats = sn.FeatureStats().update(table)
    assert stats.inf_count.tolist() == [1, 2, 0] and np.isinf(stats.mean[0])
    with pytest.raises(sn.NonFiniteError, match="'x'"):
        sn.Normalizer.from_stats(stats).transform(table)
    assert sn.Normalizer(columns=["ok"]).fit(table).transform(table)["ok"].to_pylist()[:2] == \
        [0.0, 0.0]  # the columns not chosen do not matter
    src = tmp_path / "in.parquet"
    pq.write_table(table, src)
    with pytest.raises(sn.NonFiniteError):
        sn.normalize_file(src, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_inf_skip_normalizes_the_finite_values_and_passes_inf_through(tmp_path):
    n = 1000
    x = np.linspace(-1, 1, n)
    clean = pa.table({"x": np.delete(x, [10, 20])})
    x[10], x[20] = np.inf, -np.inf
    table = pa.table({"x": x, "f": x.astype(np.float32)})
    norm = sn.Normalizer(inf="skip").fit(table)
    assert norm.stats.inf_count.tolist() == [2, 2]
    want = sn.Normalizer().fit(clean).transform(clean)["x"].to_numpy()
    got = norm.transform(table)
    gx = got["x"].to_numpy()
    assert gx[10] == np.inf and gx[20] == -np.inf
    np.testing.assert_allclose(np.delete(gx, [10, 20]), want, rtol=1e-14, atol=1e-15)
    gf = got["f"].to_numpy()
    assert gf.dtype == np.float32 and gf[10] == np.inf and gf[20] == -np.inf
    back = norm.inverse_transform(got)["x"].to_numpy()
    assert back[10] == np.inf and back[20] == -np.inf
    np.testing.assert_allclose(np.delete(back, [10, 20]), np.delete(x, [10, 20]), rtol=1e-14,
                               atol=1e-15)
    # the policy travels with the statistics, in the output file's metadata too
    src = tmp_path / "in.parquet"
    pq.write_table(table, src)
    result = sn.normalize_file(src, tmp_path / "out.parquet", inf="skip")
    assert result.normalizer.inf == "skip"
    again = sn.Normalizer.from_metadata(tmp_path / "out.parquet")
    assert again.inf == "skip" and again.stats.inf_count.tolist() == [2, 2]
    with pytest.raises(ValueError, match="inf must be 'error' or 'skip'"):
        sn.Normalizer(inf="keep")


@pytest.mark.parametrize("values", [
    [1.7e308, -1.7e308],
    [1e200, 1e200, 3e200, 1e200, 2e200],
    [1.7e308, 1.7e308, 1.7e308, -1.7e308],
    [1e-300, 1e300, -1e300, 0.0],
])
def test_huge_values_normalize_and_round_trip(values):
    table = pa.table({"x": values})
    norm = sn.Normalizer().fit(table)
    out = norm.transform(table)["x"].to_numpy()
    xs = [Fraction(v) for v in values]
    mean = sum(xs, Fraction(0)) / len(xs)
    var = sum(((x - mean) ** 2 for x in xs), Fraction(0)) / len(xs)
    # z = (x - mean) / std; z**2 = (x - mean)**2 / var exactly, so compare squares
    want = [float((x - mean) ** 2 / var) for x in xs]
    np.testing.assert_allclose(out**2, want, rtol=1e-13, atol=1e-15)
    signs = np.array([(x > mean) - (x < mean) for x in xs])
    visible = np.array(want) > 1e-300  # smaller outputs underflow to 0
    assert np.all(np.sign(out)[visible] == signs[visible])
    back = norm.inverse_transform(norm.transform(table))["x"].to_numpy()
    # a few ulps of each value, or of the largest one (1e-300 beside 1e300 is rounding noise)
    ulp = np.finfo(np.float64).eps
    np.testing.assert_allclose(back, values, rtol=4 * ulp, atol=4 * ulp * max(map(abs, values)))


def test_near_constant_column_is_scaled_by_one():
    values = [1.0, 1.0, 1.0 + 2**-52, 1.0 + 2**-52]
    table = pa.table({"x": values, "big": [v * 1e9 for v in values],
                      "real": [1.0, 1.0, 1.5, 1.5]})
    norm = sn.Normalizer().fit(table)
    out = norm.transform(table)
    got = out["x"].to_numpy()
    assert np.all(np.abs(got) <= 2**-52)  # (x - mean) / 1, not [0, 0, 2, 2] or [-1, -1, 1, 1]
    assert np.all(np.abs(out["big"].to_numpy()) <= 1e9 * 2**-51)
    assert out["real"].to_pylist() == [-1.0, -1.0, 1.0, 1.0]
    assert norm.stats.scale().tolist()[:2] == [1.0, 1.0]
    # the rule is scikit-learn's: var <= n*eps*var + (n*eps*mean)**2
    eps = np.finfo(np.float64).eps
    var, mean, n = norm.stats.var(), norm.stats.mean, norm.stats.count
    np.testing.assert_array_equal(norm.stats.scale() == 1.0,
                                  var <= n * eps * var + (n * eps * mean) ** 2)


def _wide_batches(k: int, n_batches: int = 6) -> list[pa.RecordBatch]:
    rng = np.random.default_rng(k)
    table = pa.table({f"c{j}": rng.normal(size=3 * n_batches) for j in range(k)})
    return table.to_batches(max_chunksize=3)


def test_inverse_plans_once_per_schema_not_per_batch(monkeypatch):
    """A wide file's inverse was quadratic in the column count: every batch re-planned its
    columns and looked each one up among all the statistics' columns. The plan (restored
    schema, columns, centers and scales) is built once per schema."""
    from streamnorm.normalize import mappers

    batches = _wide_batches(40)
    norm = sn.Normalizer().fit(batches)
    normalized = [norm.transform(b) for b in batches]
    calls = []
    real = mappers.batch_center_scale
    monkeypatch.setattr(mappers, "batch_center_scale", lambda *a: calls.append(1) or real(*a))
    restored = norm.inverse_transform(normalized)
    assert len(calls) == 1
    expected = pa.Table.from_batches(batches)
    for name in expected.column_names:
        np.testing.assert_allclose(restored[name].to_numpy(), expected[name].to_numpy(),
                                   rtol=1e-12)
    norm.inverse_transform(normalized[0].replace_schema_metadata(None))  # another schema
    assert len(calls) == 2


@pytest.mark.parametrize("direction", ["transform", "inverse_transform"])
def test_per_batch_lookups_do_not_grow_with_the_column_count(monkeypatch, direction):
    """Counts (not times) the statistics' column-list reads of a batch: the same for 20 and 80
    columns, so a lookup over all columns per column (quadratic) cannot come back."""
    from streamnorm.state.features import FeatureStats

    reads = []
    real = FeatureStats.columns.fget
    monkeypatch.setattr(FeatureStats, "columns",
                        property(lambda self: reads.append(1) or real(self)))
    counts = []
    for k in (20, 80):
        batches = _wide_batches(k)
        norm = sn.Normalizer().fit(batches)
        data = [norm.transform(b) for b in batches] if direction == "inverse_transform" else batches
        fresh = sn.Normalizer.from_stats(norm.stats)
        reads.clear()
        getattr(fresh, direction)(data)
        counts.append(len(reads))
    assert counts[0] == counts[1]
