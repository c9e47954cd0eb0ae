"""minmax and robust normalization on Dask (``streamnorm.dask``, ``normalize --scheduler``).

One real ``distributed.LocalCluster`` (2 worker processes, 1 thread each; conftest). The
reference is always the single-machine :class:`streamnorm.Normalizer` of the same statistics:
every value must be bit-identical, because each partition / file is normalized with
:meth:`Normalizer.from_stats` of the statistics fitted (or given) on the client. Statistics
fitted on the cluster are compared with a local fit: min and max exactly, the quantile
sketches exactly while a column holds at most 1024 values (nothing compacted), else by the
rank promise (0.5%) and by determinism (the same tree reduction gives the same sketch).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from helpers import assert_bad_input, assert_ok, run_cli  # noqa: E402

import streamnorm as sn  # noqa: E402
import streamnorm.dask as snd  # noqa: E402
from streamnorm.normalize import Normalizer  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])

FEATURES = ["x", "n", "f", "w"]
OPTIONS = {"minmax": {"feature_range": (-1.0, 2.5)}, "robust": {"quantile_range": (10.0, 90.0)}}


def _table(rng: np.random.Generator, n: int) -> pa.Table:
    """Offset, skewed data with nulls and NaN, int32 and float32 columns, a string column."""
    w = rng.lognormal(0.0, 1.5, n)
    w[rng.random(n) < 0.05] = np.nan
    return pa.table({
        "x": pa.array(rng.normal(1e9, 1.0, n), mask=rng.random(n) < 0.1),
        "n": pa.array(rng.integers(-1000, 1000, n).astype(np.int32), mask=rng.random(n) < 0.1),
        "f": pa.array(rng.normal(5.0, 3.0, n).astype(np.float32)),
        "w": pa.array(w),
        "label": pa.array([f"r{i % 7}" for i in range(n)]),
    })


def _write_files(directory: Path, sizes: list[int], seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    for i, n in enumerate(sizes):
        pq.write_table(_table(rng, n), directory / f"part-{i}.parquet", row_group_size=97)
    return sorted(str(p) for p in directory.glob("*.parquet"))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """4 files, 860 rows in all: every sketch holds all its values (exact quantiles)."""
    return _write_files(tmp_path_factory.mktemp("small"), [180, 250, 1, 429], 7)


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """3 files, 9000 rows: the sketches compact (approximate quantiles)."""
    return _write_files(tmp_path_factory.mktemp("large"), [2500, 3100, 3400], 8)


def _whole(paths: list[str]) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in paths)


def assert_bits(got, want, name: str) -> None:
    """Same type, same nulls, bit-equal values (NaN == NaN)."""
    got = got.combine_chunks() if isinstance(got, pa.ChunkedArray) else got
    want = want.combine_chunks() if isinstance(want, pa.ChunkedArray) else want
    assert got.type == want.type, name
    assert got.is_null().to_pylist() == want.is_null().to_pylist(), name
    g = got.to_numpy(zero_copy_only=False).astype(np.float64)
    w = want.to_numpy(zero_copy_only=False).astype(np.float64)
    np.testing.assert_array_equal(g.view(np.int64)[~np.isnan(g)], w.view(np.int64)[~np.isnan(w)],
                                  err_msg=name)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=name)


def _record(path: str) -> dict:
    return json.loads(pq.read_schema(path).metadata[b"streamnorm"])


# --------------------------------------------------------------------------- fitted on the cluster


@pytest.mark.parametrize("mode", ["minmax", "robust"])
def test_files_fitted_on_the_cluster_equal_a_local_fit(client, small, tmp_path, mode) -> None:
    """Fit on the cluster, normalize file by file: each output is bit-identical to
    ``normalize_file`` with a local fit over all the files (exact min/max and quantiles)."""
    written = snd.normalize_files(small, tmp_path / "out", mode=mode, **OPTIONS[mode])
    local = Normalizer(mode, **OPTIONS[mode]).fit(small)
    for src, dst in zip(small, written):
        got, want = pq.read_table(dst), local.transform(pq.read_table(src))
        assert got.column_names == want.column_names
        for name in FEATURES:
            assert_bits(got.column(name), want.column(name), f"{Path(src).name}:{name}")
        assert got.column("label").equals(pq.read_table(src).column("label"))
        record = _record(dst)
        assert record["mode"] == mode
        assert record["options"] == {k: list(v) for k, v in OPTIONS[mode].items()}
    if mode == "robust":  # the per-column center and scale are recorded as locally
        assert _record(written[0])["center"] == local.record()["center"]
        assert _record(written[0])["scale"] == local.record()["scale"]


def test_robust_on_compacted_sketches(client, large, tmp_path) -> None:
    """Beyond 1024 values per column the sketches compact: the cluster's fit is the one
    :func:`snd.feature_stats` gives (determinism), its median within 0.5% in rank of the data's,
    and every output is bit-identical to the local normalizer of those statistics."""
    written = snd.normalize_files(large, tmp_path / "out", mode="robust")
    stats = snd.feature_stats(large, quantiles=True)
    local = Normalizer.from_stats(stats, mode="robust")
    whole = _whole(large)
    recorded = Normalizer.from_metadata(written[0])
    for j, name in enumerate(FEATURES):
        values = whole.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        values = np.sort(values[~np.isnan(values)])
        center = recorded.export_plan().center[j]
        rank = np.searchsorted(values, center, side="right") / len(values)
        assert abs(rank - 0.5) <= 0.005, (name, rank)
    for src, dst in zip(large, written):
        got, want = pq.read_table(dst), local.transform(pq.read_table(src))
        for name in FEATURES:
            assert_bits(got.column(name), want.column(name), name)


@pytest.mark.parametrize("mode", ["minmax", "robust"])
def test_inverse_of_dask_outputs(client, small, tmp_path, mode) -> None:
    """The outputs carry their record: ``inverse_file`` restores each one as it restores the
    local output (bit for bit), and the original values to rounding."""
    written = snd.normalize_files(small, tmp_path / "out", mode=mode, **OPTIONS[mode])
    local = Normalizer(mode, **OPTIONS[mode]).fit(small)
    for k, (src, dst) in enumerate(zip(small, written)):
        restored = tmp_path / f"restored-{k}.parquet"
        sn.inverse_file(dst, restored)
        got = pq.read_table(restored)
        want = local.inverse_transform(local.transform(pq.read_table(src)))
        original = pq.read_table(src)
        for name in FEATURES:
            assert_bits(got.column(name), want.column(name), name)
            np.testing.assert_allclose(
                got.column(name).to_numpy(zero_copy_only=False).astype(np.float64),
                original.column(name).to_numpy(zero_copy_only=False).astype(np.float64),
                rtol=1e-12, atol=1e-5 if name == "f" else 1e-9)  # float32: rounded on the way


# --------------------------------------------------------------------------- given statistics


@pytest.mark.parametrize("mode", ["minmax", "robust"])
def test_lazy_frame_with_given_stats_is_bit_identical(client, large, mode) -> None:
    """A Dask DataFrame whose partitions cut across files, normalized with given statistics:
    the same bits as the local normalizer of those statistics over the whole table."""
    stats = sn.FeatureStats(quantiles=True)
    for path in large:
        stats.update(path)
    frame = dd.read_parquet(large, dtype_backend="pyarrow").repartition(npartitions=5)
    lazy = snd.normalize(frame, mode=mode, stats=stats, **OPTIONS[mode])
    result = lazy.compute()
    assert result.dtypes.equals(lazy._meta.dtypes)
    want = Normalizer.from_stats(stats, mode=mode, **OPTIONS[mode]).transform(_whole(large))
    for name in FEATURES:
        assert_bits(pa.array(result[name].array), want.column(name), name)


def test_minmax_frame_fitted_on_the_cluster(client, small) -> None:
    result = snd.normalize(small, mode="minmax", columns=["x", "w"]).compute()
    want = Normalizer("minmax", columns=["x", "w"]).fit(small).transform(_whole(small))
    for name in ["x", "w"]:
        assert_bits(pa.array(result[name].array), want.column(name), name)
    assert_bits(pa.array(result["n"].array), _whole(small).column("n"), "n")  # not chosen


def test_robust_stats_file_with_sketches(client, small, tmp_path) -> None:
    stats = sn.feature_stats(small, quantiles=True)
    stats.save(tmp_path / "stats.arrow")
    written = snd.normalize_files(small[:2], tmp_path / "out", mode="robust",
                                  stats=tmp_path / "stats.arrow", columns=["w"])
    local = Normalizer.from_stats(stats, mode="robust", columns=["w"])
    for src, dst in zip(small[:2], written):
        got, source = pq.read_table(dst), pq.read_table(src)
        assert_bits(got.column("w"), local.transform(source).column("w"), "w")
        assert_bits(got.column("x"), source.column("x"), "x")  # not chosen: unchanged


def test_robust_refuses_stats_without_sketches_on_the_client(small, tmp_path) -> None:
    """No cluster needed: the refusal comes before any task (scheduler='sync' would run them)."""
    plain = sn.feature_stats(small)
    plain.save(tmp_path / "plain.json")
    for given in (plain, tmp_path / "plain.json"):
        with pytest.raises(sn.InputError, match="no quantile sketches.*--quantiles") as err:
            snd.normalize_files(small, tmp_path / "out", mode="robust", stats=given)
        assert "\n" not in str(err.value)
    with pytest.raises(sn.InputError, match="plain.json: no quantile sketches"):
        snd.normalize(small, mode="robust", stats=tmp_path / "plain.json")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("mode", "options", "needle"), [
    ("minmax", {"feature_range": (1, 0)}, "lo < hi"),
    ("robust", {"quantile_range": (90, 10)}, "0 <= lo <= hi <= 100"),
    ("minmax", {"quantile_range": (10, 90)}, "applies to mode 'robust'"),
    ("batch", {"feature_range": (0, 1)}, "applies to mode 'minmax'"),
    ("layer", {"quantile_range": (10, 90)}, "applies to mode 'robust'"),
    ("median", {}, "mode must be one of"),
])
def test_bad_mode_options_fail_before_any_task(small, tmp_path, mode, options, needle) -> None:
    for call in (lambda: snd.normalize_files(small, tmp_path / "out", mode=mode, **options),
                 lambda: snd.normalize(small, mode=mode, **options)):
        with pytest.raises(ValueError, match=needle):
            call()
    assert not (tmp_path / "out").exists()


def test_minmax_beyond_float64_is_refused_on_the_client(tmp_path) -> None:
    path = tmp_path / "huge.parquet"
    pq.write_table(pa.table({"x": [-1.7e308, 1.7e308]}), path)
    with pytest.raises(sn.NonFiniteError, match="exceeds float64's range"):
        snd.normalize_files([str(path)], tmp_path / "out", mode="minmax",
                            feature_range=(0, 0.5), stats=sn.feature_stats(path))
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the CLI


def test_cli_minmax_and_robust_on_the_scheduler(client, small, tmp_path) -> None:
    address = client.scheduler.address
    data = str(Path(small[0]).parent)
    proc = run_cli("normalize", data, "mm", "--mode", "minmax", "--feature-range=-1,2.5",
                   "--scheduler", address, cwd=tmp_path)
    assert_ok(proc)
    assert "(minmax mode" in proc.stdout and "feature_range=(-1, 2.5)" in proc.stdout
    local = Normalizer("minmax", **OPTIONS["minmax"]).fit(small)
    for src in small:
        got = pq.read_table(tmp_path / "mm" / Path(src).name)
        for name in FEATURES:
            assert_bits(got.column(name), local.transform(pq.read_table(src)).column(name), name)

    assert_ok(run_cli("stats", data, "--quantiles", "0.5", "-o", "q.json", cwd=tmp_path))
    proc = run_cli("normalize", data, "rb", "--mode", "robust", "--quantile-range", "10,90",
                   "--stats", "q.json", "--scheduler", address, cwd=tmp_path)
    assert_ok(proc)
    assert "quantile_range=(10, 90)" in proc.stdout
    local = Normalizer.from_stats(tmp_path / "q.json", mode="robust", **OPTIONS["robust"])
    got = pq.read_table(tmp_path / "rb" / Path(small[-1]).name)
    for name in FEATURES:
        assert_bits(got.column(name), local.transform(pq.read_table(small[-1])).column(name),
                    name)
    proc = run_cli("inverse", str(tmp_path / "rb" / Path(small[-1]).name), "back.parquet",
                   cwd=tmp_path)
    assert_ok(proc)


def test_cli_robust_stats_without_sketches_is_one_line(client, small, tmp_path) -> None:
    data = str(Path(small[0]).parent)
    assert_ok(run_cli("stats", data, "-o", "plain.json", cwd=tmp_path))
    proc = run_cli("normalize", data, "out", "--mode", "robust", "--stats", "plain.json",
                   "--scheduler", client.scheduler.address, cwd=tmp_path)
    assert_bad_input(proc, "plain.json: no quantile sketches", "--quantiles",
                     absent=[tmp_path / "out"])
