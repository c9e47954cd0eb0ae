"""streamnorm.dask on a real distributed.LocalCluster (2 worker processes, 1 thread each).

References are single-process fits / transforms of the same files. Partial states are merged
in another order (a tree instead of a chain), so mean and m2 agree to rounding: relative 1e-15
of the data's magnitude (a mean near 0 is compared on the scale of its column's values).
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from dask_tasks import kill_worker_once  # noqa: E402  (tests/ is on the workers' sys.path)
from helpers import assert_same_stats  # noqa: E402

import streamnorm as sn  # noqa: E402
import streamnorm.dask as snd  # noqa: E402

# The workers cannot import this test module: ship its helper functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

N_FILES = 8


# --------------------------------------------------------------------------- fixtures


def _file_table(rng: np.random.Generator, n: int) -> pa.Table:
    """Offset data (mean 1e9, spread 1) with nulls and NaN, ints, float32 and a string column."""
    x = rng.normal(1e9, 1.0, n)
    w = rng.normal(-3.0, 2.0, n)
    w[rng.random(n) < 0.05] = np.nan
    return pa.table(
        {
            "x": pa.array(x, mask=rng.random(n) < 0.1),
            "n": pa.array(rng.integers(-1000, 1000, n).astype(np.int32), mask=rng.random(n) < 0.1),
            "f": pa.array(rng.normal(5.0, 3.0, n).astype(np.float32)),
            "w": pa.array(w),
            "label": pa.array([f"r{i % 7}" for i in range(n)]),
        }
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N_FILES small Parquet files of different lengths, several row groups each."""
    rng = np.random.default_rng(20260807)
    directory = tmp_path_factory.mktemp("parquet")
    for i in range(N_FILES):
        table = _file_table(rng, 3000 + 517 * i)
        pq.write_table(table, directory / f"part-{i:02d}.parquet", row_group_size=1024)
    (directory / ".hidden.parquet.tmp").write_bytes(b"not data")  # skipped by directory listing
    return directory


@pytest.fixture(scope="module")
def paths(data_dir: Path) -> list[str]:
    return sorted(str(p) for p in data_dir.glob("*.parquet"))


@pytest.fixture(scope="module")
def reference(paths: list[str]) -> sn.FeatureStats:
    """Single-process fit: the files one after another into one state."""
    stats = sn.FeatureStats()
    for path in paths:
        stats.update(path)
    return stats


# --------------------------------------------------------------------------- helpers


def assert_same_values(got, want, name: str = "") -> None:
    """Two Arrow arrays with the same type, the same nulls and bit-equal values (NaN == NaN)."""
    got = got.combine_chunks() if isinstance(got, pa.ChunkedArray) else got
    want = want.combine_chunks() if isinstance(want, pa.ChunkedArray) else want
    assert got.type == want.type, name
    np.testing.assert_array_equal(got.is_null().to_numpy(zero_copy_only=False),
                                  want.is_null().to_numpy(zero_copy_only=False), err_msg=name)
    np.testing.assert_array_equal(got.to_numpy(zero_copy_only=False),
                                  want.to_numpy(zero_copy_only=False), err_msg=name)


def _arrow_meta(path: str):
    import pandas as pd

    return pq.read_schema(path).empty_table().to_pandas(types_mapper=pd.ArrowDtype)


# --------------------------------------------------------------------------- fit


def test_partial_state_pickles_small_and_exact(reference: sn.FeatureStats) -> None:
    blob = pickle.dumps(reference)
    assert len(blob) < 2000
    assert pickle.loads(blob) == reference


@pytest.mark.parametrize("form", ["directory", "glob", "list"])
def test_files_fit_equals_single_process(client, data_dir, paths, reference, form) -> None:
    obj = {"directory": str(data_dir), "glob": str(data_dir / "*.parquet"), "list": paths}[form]
    got = snd.feature_stats(obj)
    assert_same_stats(got, reference)
    assert got.columns == ["x", "n", "f", "w"]


def test_directory_files_are_found_at_any_depth_as_locally(tmp_path) -> None:
    """A directory's data files in subdirectories too, as the local reader lists them
    (``_``- and ``.``-prefixed ones skipped): one directory expansion for both."""
    data = tmp_path / "data"
    (data / "sub" / "deeper").mkdir(parents=True)
    (data / "_logs").mkdir()
    pq.write_table(pa.table({"x": [1.0, 2.0]}), data / "a.parquet")
    pq.write_table(pa.table({"x": [4.0]}), data / "sub" / "b.parquet")
    pq.write_table(pa.table({"x": [8.0, 16.0]}), data / "sub" / "deeper" / "c.parquet")
    pq.write_table(pa.table({"x": [99.0]}), data / "_logs" / "d.parquet")
    (data / "sub" / "notes.txt").write_text("not data")
    expected = [str(data / "a.parquet"), str(data / "sub" / "b.parquet"),
                str(data / "sub" / "deeper" / "c.parquet")]
    assert snd.resolve_paths(str(data)) == expected
    got = snd.feature_stats(str(data), scheduler="sync")
    assert got.count.tolist() == [5]
    assert_same_stats(got, sn.feature_stats(expected))


def test_files_fit_columns_and_fan_in(client, paths) -> None:
    want = sn.FeatureStats(["w", "x"])
    for path in paths:
        want.update(path)
    got = snd.feature_stats(paths, columns=["w", "x"], split_every=2)
    assert_same_stats(got, want)


def test_fit_is_independent_of_partitioning(client, paths, reference) -> None:
    one_by_one = [snd.feature_stats([p]) for p in paths]
    total = one_by_one[0]
    for part in one_by_one[1:]:
        total = total + part
    assert_same_stats(total, reference)


def test_dask_dataframe_fit(client, data_dir, reference) -> None:
    frame = dd.read_parquet(str(data_dir / "*.parquet"))
    assert_same_stats(snd.feature_stats(frame), reference, nulls_as_nan=True)


def test_arrow_backed_dataframe_fit_is_exact(client, data_dir, reference) -> None:
    frame = dd.read_parquet(str(data_dir / "*.parquet"), dtype_backend="pyarrow")
    frame = frame.repartition(npartitions=5)  # partitions that cut across files
    assert_same_stats(snd.feature_stats(frame), reference)


@pytest.fixture(scope="module")
def keyed_paths(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Files with a string group key (one key in the last file only) and integer weights."""
    rng = np.random.default_rng(11)
    directory = tmp_path_factory.mktemp("keyed")
    for i in range(4):
        n = 700 + 131 * i
        keys = [f"g{(i + j) % 3}" for j in range(n)] if i < 3 else ["late"] * n
        pq.write_table(pa.table({
            "x": rng.normal(1e6, 2.0, n) ** 1.5 / 1e3,  # skewed, offset
            "y": pa.array(rng.integers(0, 50, n), mask=rng.random(n) < 0.1),
            "k": keys,
            "wt": rng.integers(1, 5, n),
        }), directory / f"keyed-{i}.parquet", row_group_size=300)
    return sorted(str(p) for p in directory.glob("*.parquet"))


@pytest.mark.parametrize("options", [
    {"moments": 4}, {"by": "k"}, {"weights": "wt"}, {"by": ["k"], "moments": 4, "weights": "wt"},
], ids=["moments", "by", "weights", "all"])
def test_moments_groups_and_weights_reach_the_workers(client, keyed_paths, options) -> None:
    want = sn.FeatureStats(moments=options.get("moments", 2), by=options.get("by"))
    for path in keyed_paths:
        want.update(path, weights=options.get("weights"))
    for source in (keyed_paths, dd.read_parquet(keyed_paths)):
        assert_same_kind_of_stats(snd.feature_stats(source, split_every=2, **options), want,
                                  options)


def assert_same_kind_of_stats(got, want, options) -> None:
    features = ["x", "y"] if "weights" in options else ["x", "y", "wt"]
    assert type(got) is type(want) and got.columns == want.columns == features
    assert got.weighted == ("weights" in options) and got.moments == want.moments
    rows = np.arange(len(want.count))
    if "by" in options:  # groups come in the order the tree met them: match them by key
        assert sorted(got.keys["k"].to_pylist()) == ["g0", "g1", "g2", "late"]
        rows = [got.group_index(k) for k in want.keys["k"].to_pylist()]
    np.testing.assert_array_equal(got.count[rows], want.count)
    np.testing.assert_array_equal(got.null_count[rows], want.null_count)
    np.testing.assert_array_equal(got.min[rows], want.min)
    np.testing.assert_allclose(got.mean[rows], want.mean, rtol=1e-15)
    np.testing.assert_allclose(got.var()[rows], want.var(), rtol=1e-12)
    if want.moments == 4:
        np.testing.assert_allclose(got.skew()[rows], want.skew(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got.kurtosis()[rows], want.kurtosis(), rtol=1e-9, atol=1e-12)


def test_dask_fit_option_errors_are_raised_on_the_client(keyed_paths) -> None:
    with pytest.raises(ValueError, match="moments must be 2 or 4"):
        snd.feature_stats(keyed_paths, moments=3)
    frame = dd.read_parquet(keyed_paths)
    with pytest.raises(sn.SchemaError, match=r"\['nope'\] are not in the data"):
        snd.feature_stats(frame, by="nope")


def test_dataframe_fit_unknown_column(client, data_dir) -> None:
    frame = dd.read_parquet(str(data_dir / "*.parquet"))
    with pytest.raises(sn.SchemaError, match="nope"):
        snd.feature_stats(frame, columns=["x", "nope"])


def test_file_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(sn.InputError, match="matches no file"):
        snd.feature_stats(str(tmp_path / "*.parquet"))
    with pytest.raises(sn.InputError, match="no input files"):
        snd.feature_stats(str(tmp_path))
    with pytest.raises(sn.InputError, match="no such file"):
        snd.feature_stats(str(tmp_path / "missing.parquet"))


def test_files_with_different_schemas_match_the_local_fit(client, tmp_path) -> None:
    """a {x: int32, y} and b {z: string, w, x: float64}: the unified schema, as locally."""
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"x": pa.array([1, 2, 3], pa.int32()), "y": [1.0, 2.0, 4.0]}),
                   data / "a.parquet")
    pq.write_table(pa.table({"z": ["p", "q"], "w": [5.0, 7.0], "x": [0.5, 9.5]}),
                   data / "b.parquet")
    local = sn.feature_stats(data)
    got = snd.feature_stats(str(data))
    assert got.columns == local.columns == ["x", "y", "w"]
    assert_same_stats(got, local)
    assert got.null_count.tolist() == [0, 2, 3]
    written = snd.normalize_files(str(data), tmp_path / "out", float32=True)
    for path in written:
        schema = pq.read_schema(path)
        assert schema.names == ["x", "y", "z", "w"] and schema.field("x").type == pa.float32()
    assert pq.read_table(written[1])["w"].to_pylist() == [-1.0, 1.0]


def test_infinities_are_refused_or_skipped_as_locally(client, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"x": [1.0, np.inf, 3.0]}), data / "a.parquet")
    pq.write_table(pa.table({"x": [-np.inf, 5.0]}), data / "b.parquet")
    kept = snd.feature_stats(str(data))
    assert kept.inf_count.tolist() == [2] and np.isnan(kept.mean[0])
    skipped = snd.feature_stats(str(data), inf="skip")
    assert_same_stats(skipped, sn.feature_stats(data, inf="skip"))
    with pytest.raises(sn.NonFiniteError, match="'x'"):
        snd.normalize_files(str(data), tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    written = snd.normalize_files(str(data), tmp_path / "out", inf="skip")
    x = pq.read_table(written[1])["x"].to_pylist()
    assert x[0] == -np.inf and x[1] == pytest.approx((5.0 - 3.0) / np.sqrt(8.0 / 3.0), rel=1e-15)


def test_missing_dask_names_the_extra(monkeypatch, paths) -> None:
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ImportError, match=r"pip install 'streamnorm\[dask\]'"):
        snd.feature_stats(paths)


# --------------------------------------------------------------------------- retries


def test_worker_killed_mid_fit_is_retried_and_exact(client, paths, reference, tmp_path) -> None:
    marker = tmp_path / "killed-once"
    frame = dd.from_map(
        kill_worker_once, paths, args=[paths[N_FILES // 2], str(marker)],
        meta=_arrow_meta(paths[0]), enforce_metadata=False,
    )
    got = snd.feature_stats(frame)
    assert marker.exists()  # a worker really died in the middle of the fit
    assert_same_stats(got, reference)
    client.wait_for_workers(2, timeout=30)  # the nanny brings it back for the next tests


# --------------------------------------------------------------------------- normalize


@pytest.fixture(scope="module")
def whole(paths) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in paths)


def _normalizer(reference: sn.FeatureStats):
    normalize = pytest.importorskip("streamnorm.normalize")
    return normalize.Normalizer.from_stats(reference)


def test_normalize_dataframe_is_lazy_and_matches(client, data_dir, reference, whole) -> None:
    norm = _normalizer(reference)
    frame = dd.read_parquet(str(data_dir / "*.parquet"), dtype_backend="pyarrow")
    lazy = snd.normalize(frame, mode="batch", stats=reference)
    assert isinstance(lazy, dd.DataFrame)
    assert list(lazy.columns) == whole.column_names
    result = lazy.compute()
    assert result.dtypes.equals(lazy._meta.dtypes)  # meta is right
    want = norm.transform(whole)
    for name in ["x", "n", "f", "w"]:
        assert_same_values(pa.array(result[name].array), want.column(name), name)
    assert result["label"].tolist() == whole.column("label").to_pylist()


def test_normalize_numpy_frame_fits_first(client, data_dir, reference, whole) -> None:
    norm = _normalizer(reference)
    frame = dd.read_parquet(str(data_dir / "*.parquet"))
    lazy = snd.normalize(frame, columns=["x", "f"])
    result = lazy.compute()
    # (dask's own numpy-backed meta says int32 for "n", which has nulls: only check ours)
    assert result[["x", "f"]].dtypes.equals(lazy._meta[["x", "f"]].dtypes)
    assert result["x"].dtype == np.float64 and result["f"].dtype == np.float32
    want = norm.transform(whole)
    for name in ["x", "f"]:
        expected = want.column(name).to_numpy(zero_copy_only=False)
        np.testing.assert_allclose(result[name].to_numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(result["n"].to_numpy(), whole.column("n").to_pandas().to_numpy())


def test_normalize_layer_mode_from_files(client, paths, whole) -> None:
    normalize = pytest.importorskip("streamnorm.normalize")
    result = snd.normalize(paths, mode="layer", columns=["x", "n", "f"]).compute()
    want = normalize.Normalizer(mode="layer", columns=["x", "n", "f"]).transform(whole)
    for name in ["x", "n", "f"]:
        assert_same_values(pa.array(result[name].array), want.column(name), name)


def test_normalize_files_writes_one_file_each(client, paths, reference, tmp_path) -> None:
    normalize = pytest.importorskip("streamnorm.normalize")
    out_dir = tmp_path / "out"
    written = snd.normalize_files(paths, out_dir, mode="batch")  # fits first
    assert written == [str(out_dir / Path(p).name) for p in paths]
    assert sorted(os.listdir(out_dir)) == sorted(Path(p).name for p in paths)  # no temp files
    norm = normalize.Normalizer.from_stats(reference)
    for src, dst in zip(paths, written):
        got = pq.read_table(dst)
        want = norm.transform(pq.read_table(src))
        assert got.column_names == want.column_names
        for name in ["x", "n", "f", "w"]:
            np.testing.assert_allclose(
                got.column(name).to_numpy(zero_copy_only=False),
                want.column(name).to_numpy(zero_copy_only=False),
                rtol=1e-12, atol=1e-12,
            )


def test_normalize_files_with_saved_stats(client, paths, reference, tmp_path) -> None:
    normalize = pytest.importorskip("streamnorm.normalize")
    stats_path = tmp_path / "stats.json"
    reference.save(stats_path)
    out_dir = tmp_path / "out"
    written = snd.normalize_files(paths[:2], out_dir, stats=stats_path, columns=["x"])
    norm = normalize.Normalizer.from_stats(reference)
    for src, dst in zip(paths[:2], written):
        got, source = pq.read_table(dst), pq.read_table(src)
        assert_same_values(got.column("w"), source.column("w"))  # not in columns: unchanged
        assert_same_values(got.column("x"), norm.transform(source).column("x"))


def test_normalize_files_passes_the_output_options(client, paths, reference, tmp_path) -> None:
    written = snd.normalize_files(paths[:1], tmp_path / "out", stats=reference, columns=["x"],
                                  compression="lz4", row_group_size=100, float32=True)
    parquet = pq.ParquetFile(written[0])
    assert parquet.schema_arrow.field("x").type == pa.float32()
    assert parquet.metadata.row_group(0).num_rows == 100
    assert parquet.metadata.row_group(0).column(0).compression == "LZ4"


def test_normalize_files_refuses_clashing_names(tmp_path, paths) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    clash = other / Path(paths[0]).name
    clash.write_bytes(Path(paths[0]).read_bytes())
    with pytest.raises(sn.InputError, match="both be written"):
        snd.normalize_files([paths[0], str(clash)], tmp_path / "out", stats=sn.FeatureStats())
