"""Mergeable quantile sketches (``FeatureStats(quantiles=True)``) and robust scaling.

The promise (streamnorm/state/quantiles.py): the value returned for ``q`` has a true rank within
0.5% of ``q`` for any batching and merge order, exact numpy answers up to 1024 values per column,
at most 64 KB per column whatever the count, saved and merged with the rest of the state.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import assert_bad_input, assert_ok, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

import streamnorm as sn

QS = np.array([0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0])
RANK_ERROR = 0.005


def rank_error(data: np.ndarray, got: np.ndarray, qs: np.ndarray) -> float:
    """How far (in normalized rank) ``got`` lies outside ``[quantile(q - e), quantile(q + e)]``
    for e = 0.5%, numpy's linear quantiles of ``data``: 0 when every answer is numpy's
    quantile of some q' within 0.5% of q; else the smallest e' > 0.5% that would cover it,
    found by bisection."""
    worst = 0.0
    for value, q in zip(got, qs):
        lo, hi = 0.0, 1.0
        if _covered(data, value, q, RANK_ERROR):
            continue
        for _ in range(30):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if _covered(data, value, q, mid) else (mid, hi)
        worst = max(worst, hi)
    return worst


def _covered(data: np.ndarray, value: float, q: float, e: float) -> bool:
    low, high = np.quantile(data, [max(0.0, q - e), min(1.0, q + e)])
    return bool(low <= value <= high)


def fit(values: np.ndarray, sizes: list[int] | None = None, **kwargs: object) -> sn.FeatureStats:
    """Statistics of one column ``x``, updated batch by batch of ``sizes`` (one batch: None)."""
    fs = sn.FeatureStats(quantiles=True, **kwargs)  # type: ignore[arg-type]
    table = pa.table({"x": values})
    if sizes is None:
        return fs.update(table)
    start = 0
    for size in sizes:
        fs.update(table.slice(start, size))
        start += size
    if start < len(values):
        fs.update(table.slice(start))
    return fs


# --------------------------------------------------------------------------- accuracy


@pytest.fixture(scope="module")
def big() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(15)
    return {"lognormal": rng.lognormal(0.0, 2.0, 2_000_000),
            "offset": 1e9 + rng.normal(0.0, 1.0, 2_000_000)}


@pytest.mark.parametrize("kind", ["lognormal", "offset"])
def test_rank_error_on_millions_for_batchings_and_merge_orders(big, kind) -> None:
    x = big[kind]
    whole = fit(x)
    assert rank_error(x, whole.quantile(QS)[:, 0], QS) <= RANK_ERROR
    # 64k-row batches, then a ragged batching
    rng = np.random.default_rng(1)
    ragged = list(rng.integers(1, 200_000, 40))
    assert rank_error(x, fit(x, [65536] * 40).quantile(QS)[:, 0], QS) <= RANK_ERROR
    assert rank_error(x, fit(x, ragged).quantile(QS)[:, 0], QS) <= RANK_ERROR
    # 16 partial states merged left to right, right to left and as a balanced tree
    parts = [fit(p) for p in np.array_split(x, 16)]
    left = parts[0].copy()
    for p in parts[1:]:
        left.merge(p)
    right = parts[-1].copy()
    for p in reversed(parts[:-1]):
        right = p + right
    tree = parts
    while len(tree) > 1:
        tree = [a + b for a, b in zip(tree[::2], tree[1::2])]
    for merged in (left, right, tree[0]):
        assert merged.count[0] == len(x)
        assert rank_error(x, merged.quantile(QS)[:, 0], QS) <= RANK_ERROR
        assert merged.quantile(0.0)[0] == x.min() and merged.quantile(1.0)[0] == x.max()


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 4000),
    cuts=st.lists(st.floats(0.0, 1.0), max_size=6),
    order=st.permutations(range(7)),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_batching_and_merge_order(n, cuts, order, seed) -> None:
    rng = np.random.default_rng(seed)
    x = np.round(rng.lognormal(0.0, 1.5, n), 2)  # ties too
    bounds = sorted({0, n, *(int(c * n) for c in cuts)})
    parts = [fit(x[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    merged = sn.FeatureStats(quantiles=True)
    for i in [i for i in order if i < len(parts)]:
        merged = merged + parts[i]
    assert merged.count[0] == n
    got = merged.quantile(QS)[:, 0]
    assert rank_error(x, got, QS) <= RANK_ERROR
    if n <= 1024:  # nothing compacted: numpy's own answers
        np.testing.assert_array_equal(got, np.quantile(x, QS))
        assert merged.median()[0] == np.median(x)


def test_small_data_equals_numpy_quantile_and_median() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=1000)
    fs = fit(x, [1] * 10 + [7] * 10 + [500])
    np.testing.assert_array_equal(fs.quantile(QS)[:, 0], np.quantile(x, QS))
    assert fs.median()[0] == np.median(x)
    assert fs.quantile(0.5).shape == (1,)
    assert fs.quantile([0.5]).shape == (1, 1)


def test_size_bound_after_ten_million_values() -> None:
    x = np.random.default_rng(4).lognormal(0.0, 1.0, 10_000_000)
    fs = fit(x, [1_000_000] * 10)
    sketch = fs._sketch
    held = (sketch.items.nbytes + sketch.levels.nbytes + sketch.info.nbytes
            + sketch.extremes.nbytes)
    assert held <= 64 * 1024
    assert sketch.held_bytes()[0] == held
    saved = fs.to_arrow()
    items = saved.column("quantile_items").to_pylist()[0]
    assert 8 * len(items) <= 64 * 1024
    assert sum(s << h for h, s in enumerate(saved.column("quantile_levels").to_pylist()[0])) \
        == 10_000_000
    assert rank_error(x, fs.quantile(QS)[:, 0], QS) <= RANK_ERROR


def test_same_state_whatever_the_thread_count() -> None:
    """Columns are sketched on threads (independently): each column's state is the one a
    single-column fit gives."""
    rng = np.random.default_rng(5)
    table = pa.table({f"c{j}": rng.normal(j, 1.0, 40_000) for j in range(8)})
    together = sn.FeatureStats(quantiles=True).update(table)
    for name in table.column_names:
        alone = sn.FeatureStats([name], quantiles=True).update(table.select([name]))
        j = together.columns.index(name)
        np.testing.assert_array_equal(alone.quantile(QS)[:, 0], together.quantile(QS)[:, j])
        assert alone.to_arrow().column("quantile_items").to_pylist()[0] == \
            together.to_arrow().column("quantile_items").to_pylist()[j]


# --------------------------------------------------------------------------- inputs


def test_nulls_nan_inf_all_null_and_types() -> None:
    rng = np.random.default_rng(6)
    n = 5000
    values = rng.normal(size=n)
    mask = rng.random(n) < 0.2
    values[rng.random(n) < 0.05] = np.nan
    table = pa.table({
        "nulls": pa.array(values, mask=mask),
        "empty": pa.array([None] * n, pa.float64()),
        "f16": pa.array(values[:n].astype(np.float16)),
        "f32": pa.array(values.astype(np.float32)),
        "i8": pa.array(rng.integers(-100, 100, n).astype(np.int8)),
        "u64": pa.array(rng.integers(0, 1000, n).astype(np.uint64)),
    })
    fs = sn.FeatureStats(quantiles=True)
    for batch in table.to_batches(max_chunksize=333):
        fs.update(batch)
    got = fs.quantile(QS)
    valid = values[~mask & ~np.isnan(values)]
    assert rank_error(valid, got[:, 0], QS) <= RANK_ERROR
    assert np.isnan(got[:, 1]).all()
    for j, name in enumerate(["f16", "f32", "i8", "u64"], start=2):
        column = table.column(name).to_numpy().astype(np.float64)
        column = column[~np.isnan(column)]
        assert rank_error(column, got[:, j], QS) <= RANK_ERROR
    # ±inf: values (inf="keep", as the statistics), or skipped (inf="skip")
    with_inf = pa.table({"x": [1.0, 2.0, np.inf, -np.inf, 3.0]})
    kept = sn.FeatureStats(quantiles=True).update(with_inf)
    with np.errstate(invalid="ignore"):  # numpy's lerp of -inf and a number at 0 is NaN
        np.testing.assert_array_equal(kept.quantile([0.0, 0.25, 0.5, 1.0])[:, 0],
                                      np.quantile([1.0, 2.0, np.inf, -np.inf, 3.0],
                                                  [0.0, 0.25, 0.5, 1.0]))
    skipped = sn.FeatureStats(quantiles=True, inf="skip").update(with_inf)
    assert skipped.quantile([0.0, 0.5, 1.0])[:, 0].tolist() == [1.0, 2.0, 3.0]
    # nan="propagate": a column holding NaN has NaN quantiles, as its other results
    poisoned = sn.FeatureStats(quantiles=True, nan="propagate").update(
        pa.table({"x": [1.0, np.nan, 2.0], "y": [1.0, 2.0, 3.0]}))
    assert np.isnan(poisoned.median()[0]) and poisoned.median()[1] == 2.0


def test_one_row_batches_and_empty_batches() -> None:
    x = np.random.default_rng(7).normal(size=1500)
    fs = sn.FeatureStats(quantiles=True)
    for value in x:
        fs.update(pa.table({"x": [value]}))
        fs.update(pa.table({"x": pa.array([], pa.float64())}))
    assert fs.count[0] == 1500
    assert rank_error(x, fs.quantile(QS)[:, 0], QS) <= RANK_ERROR


def test_clear_errors() -> None:
    plain = sn.FeatureStats().update(pa.table({"x": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="quantiles=True"):
        plain.quantile(0.5)
    with pytest.raises(ValueError, match="quantiles=True"):
        plain.median()
    sketched = fit(np.arange(5.0))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        sketched.quantile(50)
    with pytest.raises(ValueError, match="with and without quantiles"):
        sketched.copy().merge(plain)
    with pytest.raises(ValueError, match="by="):
        sn.FeatureStats(by="k", quantiles=True)
    with pytest.raises(ValueError, match="weights"):
        sn.FeatureStats(quantiles=True).update(pa.table({"x": [1.0], "w": [1.0]}), weights="w")


# --------------------------------------------------------------------------- persistence


@pytest.mark.parametrize("suffix", [".json", ".arrow", ".parquet"])
def test_save_load_round_trip(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(8)
    table = pa.table({"a": rng.lognormal(size=30_000), "b": pa.array(rng.normal(size=30_000),
                      mask=rng.random(30_000) < 0.1), "c": [1e300, -np.inf] * 15_000})
    fs = sn.FeatureStats(quantiles=True).update(table)
    path = tmp_path / f"s{suffix}"
    fs.save(path)
    loaded = sn.FeatureStats.load(path)
    assert loaded == fs and loaded.quantiles
    np.testing.assert_array_equal(loaded.quantile(QS), fs.quantile(QS))
    more = pa.table({"a": rng.lognormal(size=5000), "b": rng.normal(size=5000),
                     "c": [1.0] * 5000})
    assert loaded.update(more) == fs.update(more)  # a loaded state continues the same way
    assert sn.FeatureStats.from_dict(fs.to_dict()) == fs


def test_old_files_load_and_corrupt_sketches_are_refused(tmp_path: Path) -> None:
    plain = sn.FeatureStats().update(pa.table({"x": [1.0, 2.0, 3.0]}))
    plain.save(tmp_path / "old.json")
    assert not sn.FeatureStats.load(tmp_path / "old.json").quantiles
    state = fit(np.arange(3000.0)).to_dict()
    state["columns"][0]["quantile_n"] += 1
    (tmp_path / "bad.json").write_text(json.dumps(state))
    with pytest.raises(sn.StatsFileError, match="bad.json.*weights do not add up"):
        sn.FeatureStats.load(tmp_path / "bad.json")
    del state["columns"][0]["quantile_items"]
    with pytest.raises(sn.StatsFileError, match="quantile_items"):
        sn.FeatureStats.from_dict(state)


def test_dask_reduce_equals_local_within_rank_error(tmp_path: Path) -> None:
    snd = pytest.importorskip("streamnorm.dask")
    rng = np.random.default_rng(9)
    x = rng.lognormal(0.0, 1.0, 60_000)
    for i, part in enumerate(np.array_split(x, 6)):
        pq.write_table(pa.table({"x": part}), tmp_path / f"p{i}.parquet")
    remote = snd.feature_stats(str(tmp_path), quantiles=True, scheduler="sync", split_every=2)
    local = fit(x)
    assert remote.quantiles and remote.count[0] == len(x)
    assert rank_error(x, remote.quantile(QS)[:, 0], QS) <= RANK_ERROR
    assert rank_error(x, local.quantile(QS)[:, 0], QS) <= RANK_ERROR


# --------------------------------------------------------------------------- robust mode


def test_robust_equals_robust_scaler_and_inverts() -> None:
    sklearn = pytest.importorskip("sklearn.preprocessing")
    rng = np.random.default_rng(10)
    X = np.c_[rng.lognormal(0, 1, 1000), rng.integers(0, 5, 1000), np.full(1000, 7.0)]
    table = pa.table({"a": X[:, 0], "b": X[:, 1].astype(np.int64), "z": X[:, 2]})
    for quantile_range in [(25.0, 75.0), (10.0, 90.0)]:
        norm = sn.Normalizer("robust", quantile_range=quantile_range).fit(table)
        out = norm.transform(table)
        ref = sklearn.RobustScaler(quantile_range=quantile_range).fit(X)
        got = np.column_stack([out[c].to_numpy() for c in ["a", "b", "z"]])
        np.testing.assert_array_equal(got, ref.transform(X))  # exact: 1000 values
        assert out.column("z").to_pylist() == [0.0] * 1000  # zero IQR: scaled by 1
        back = sn.Normalizer.from_metadata(out).inverse_transform(out)
        np.testing.assert_allclose(back["a"].to_numpy(), X[:, 0], rtol=1e-14)
        assert back["b"].to_pylist() == X[:, 1].tolist()
        assert len(out.schema.metadata[b"streamnorm"]) < 4000  # no sketch in the record


def test_robust_on_large_data_within_rank_error() -> None:
    rng = np.random.default_rng(11)
    x = 1e9 + rng.lognormal(0.0, 1.0, 300_000)
    norm = sn.Normalizer("robust").fit(pa.table({"x": x}).to_batches(max_chunksize=50_000))
    center, scale = norm._center_scale(["x"])["x"]
    lo, med, hi = np.quantile(x, [0.25 - RANK_ERROR, 0.5 - RANK_ERROR, 0.75 - RANK_ERROR])
    lo2, med2, hi2 = np.quantile(x, [0.25 + RANK_ERROR, 0.5 + RANK_ERROR, 0.75 + RANK_ERROR])
    assert med <= center <= med2
    assert hi - lo2 <= scale <= hi2 - lo


def test_robust_cli_and_inverse(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    x = rng.lognormal(0.0, 1.0, 3000)
    pq.write_table(pa.table({"x": x, "k": pa.array(rng.integers(0, 9, 3000), pa.int32())}),
                   tmp_path / "d.parquet")
    assert_ok(run_cli("normalize", "d.parquet", "r.parquet", "--mode", "robust",
                      "--quantile-range", "10,90", cwd=tmp_path))
    out = pq.read_table(tmp_path / "r.parquet")
    record = json.loads(out.schema.metadata[b"streamnorm"])
    assert record["mode"] == "robust" and record["options"]["quantile_range"] == [10.0, 90.0]
    stats = sn.FeatureStats(quantiles=True).update(pa.table({"x": x}))
    q10, q90 = stats.quantile([0.1, 0.9])[:, 0]
    np.testing.assert_allclose(out["x"].to_numpy(), (x - stats.median()[0]) / (q90 - q10),
                               rtol=1e-12)
    assert_ok(run_cli("inverse", "r.parquet", "back.parquet", cwd=tmp_path))
    np.testing.assert_allclose(pq.read_table(tmp_path / "back.parquet")["x"].to_numpy(), x,
                               rtol=1e-14)
    assert_bad_input(run_cli("normalize", "d.parquet", "o.parquet", "--mode", "robust",
                             "--quantile-range", "80,20", cwd=tmp_path), "--quantile-range",
                     absent=[tmp_path / "o.parquet"])
    # fit once (stats --quantiles -o), normalize later; plain statistics are refused
    assert_ok(run_cli("stats", "d.parquet", "--quantiles", "0.5", "-o", "s.json", cwd=tmp_path))
    assert_ok(run_cli("normalize", "d.parquet", "r2.parquet", "--mode", "robust", "--stats",
                      "s.json", "--quantile-range", "10,90", cwd=tmp_path))
    np.testing.assert_array_equal(pq.read_table(tmp_path / "r2.parquet")["x"].to_numpy(),
                                  out["x"].to_numpy())
    assert_ok(run_cli("stats", "d.parquet", "-o", "plain.json", cwd=tmp_path))
    assert_bad_input(run_cli("normalize", "d.parquet", "o.parquet", "--mode", "robust",
                             "--stats", "plain.json", cwd=tmp_path), "quantile sketches",
                     absent=[tmp_path / "o.parquet"])


def test_stats_cli_quantiles(tmp_path: Path) -> None:
    x = np.arange(1001.0)
    pq.write_table(pa.table({"x": x}), tmp_path / "d.parquet")
    proc = run_cli("stats", "d.parquet", "--quantiles", "0.01,0.5,0.99", cwd=tmp_path)
    assert_ok(proc)
    header, row = proc.stdout.strip().splitlines()
    assert header.split()[-3:] == ["q=0.01", "q=0.5", "q=0.99"]
    assert row.split()[-3:] == ["10", "500", "990"]
    assert_ok(run_cli("stats", "d.parquet", "--quantiles", "0.5", "-o", "s.arrow",
                      cwd=tmp_path))
    assert sn.FeatureStats.load(tmp_path / "s.arrow").median()[0] == 500.0
    assert_bad_input(run_cli("stats", "d.parquet", "--quantiles", "0.5,1.5", cwd=tmp_path),
                     "--quantiles")


WARM_CACHE_SCRIPT = """
import numpy as np, pyarrow as pa, streamnorm as sn
from streamnorm.kernels import cpu_sketch
x = np.random.default_rng(0).normal(size=50_000)
a = sn.FeatureStats(quantiles=True).update(pa.table({"x": x}))
b = sn.FeatureStats(quantiles=True).update(pa.table({"x": x[:10]}))
c = sn.FeatureStats(quantiles=True).update(pa.table({"x": np.tile(x, 6)}))  # halved path
(a + b).quantile([0.1, 0.5]); a.median()
misses = {name: sum(f.stats.cache_misses.values())
          for name, f in vars(cpu_sketch).items() if hasattr(f, "stats")}
print(sum(misses.values()), [n for n, v in misses.items() if v])
"""


def test_sketch_kernels_load_from_a_warm_cache() -> None:
    """docs/design.md §5: a fresh process with a warm cache compiles no sketch kernel."""
    from helpers import run_python

    for _ in range(2):  # the first run may fill the cache; a second must then only load it
        result = run_python("-c", WARM_CACHE_SCRIPT, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        if result.stdout.split()[0] == "0":
            break  # this run already loaded every kernel (the suite's warm-up filled the cache)
    assert result.stdout.split()[0] == "0", result.stdout


def test_states_with_quantile_sketches_cannot_be_subtracted() -> None:
    """A sketch cannot give values back: ``a - b`` would keep b's values in a's quantiles."""
    table = pa.table({"x": np.arange(100.0)})
    a = sn.FeatureStats(quantiles=True).update(table)
    b = sn.FeatureStats(quantiles=True).update(table.slice(0, 10))
    before = a.copy()
    with pytest.raises(ValueError, match="quantile sketches cannot be subtracted"):
        a.subtract(b)
    assert a == before
    assert (a - sn.FeatureStats(quantiles=True)) == a  # an empty part: nothing to take back


# --------------------------------------------------------------------------- sorted rows


@pytest.mark.parametrize("n", [1, 63, 64, 65, 127, 1024])
def test_row_boundaries_are_exact_up_to_1024_values(n) -> None:
    """Batches enter as sorted rows of 64 values and a shorter tail row: up to 1024 values in
    all nothing is halved, whatever the row and batch boundaries."""
    x = np.random.default_rng(n).normal(size=n)
    for sizes in (None, [1] * min(n, 70), [63, 1, 64, 65]):
        fs = fit(x, sizes)
        assert fs.count[0] == n
        np.testing.assert_array_equal(fs.quantile(QS)[:, 0], np.quantile(x, QS))
        assert fs.median()[0] == np.median(x)


@pytest.mark.parametrize("n", [1025, 4097, 70_001])
def test_just_past_1024_values_within_rank_error(n) -> None:
    x = np.random.default_rng(n).lognormal(0.0, 1.0, n)
    for sizes in (None, [64] * 40, [1000, 25, 1]):
        fs = fit(x, sizes)
        assert fs.count[0] == n
        got = fs.quantile(QS)[:, 0]
        assert rank_error(x, got, QS) <= RANK_ERROR
        assert got[0] == x.min() and got[-1] == x.max()


def test_rows_mixing_nan_inf_and_nulls() -> None:
    """Rows holding NaN, ±inf or nulls: their valid values are gathered into full rows; the
    count, the extremes and the ranks are those of the valid values, whatever the batching."""
    rng = np.random.default_rng(21)
    n = 40_000
    values = rng.normal(1e12, 1.0, n)  # a huge offset too
    values[rng.random(n) < 0.05] = np.nan  # most rows of 64 hold a NaN
    values[rng.random(n) < 0.01] = np.inf
    values[rng.random(n) < 0.01] = -np.inf
    mask = rng.random(n) < 0.1
    table = pa.table({"x": pa.array(values, mask=mask)})
    valid = values[~mask & ~np.isnan(values)]
    finite = valid[np.isfinite(valid)]
    for batch_rows in (n, 4096, 999, 64):
        kept = sn.FeatureStats(quantiles=True)
        skipped = sn.FeatureStats(quantiles=True, inf="skip")
        for batch in table.to_batches(max_chunksize=batch_rows):
            kept.update(batch)
            skipped.update(batch)
        assert kept.count[0] == len(valid)
        with np.errstate(invalid="ignore"):
            got = kept.quantile(QS)[:, 0]
        saved = kept.to_arrow()
        assert saved["quantile_min"][0].as_py() == -np.inf
        assert saved["quantile_max"][0].as_py() == np.inf
        inner = (QS > 0.02) & (QS < 0.98)
        assert rank_error(valid, got[inner], QS[inner]) <= RANK_ERROR
        got = skipped.quantile(QS)[:, 0]
        assert got[0] == finite.min() and got[-1] == finite.max()
        assert rank_error(finite, got, QS) <= RANK_ERROR
        assert sn.FeatureStats.from_dict(skipped.to_dict()) == skipped  # a valid sketch


def test_rows_mixing_nan_and_inf_exact_when_small() -> None:
    x = np.array([np.nan, 3.0, np.inf, -1.0, np.nan, 2.0, -np.inf] * 100)  # 500 valid values
    fs = sn.FeatureStats(quantiles=True, inf="skip").update(pa.table({"x": x}))
    finite = x[np.isfinite(x)]
    np.testing.assert_array_equal(fs.quantile(QS)[:, 0], np.quantile(finite, QS))


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32, np.uint8, np.int64])
def test_other_dtypes_through_the_rows(dtype) -> None:
    rng = np.random.default_rng(22)
    raw = rng.normal(50.0, 20.0, 30_000).clip(0, 250)
    x = raw.astype(dtype)
    as64 = x.astype(np.float64)
    fs = fit(x, [7_000] * 4)
    assert rank_error(as64, fs.quantile(QS)[:, 0], QS) <= RANK_ERROR
    small = fit(x[:1000], [100] * 10)
    np.testing.assert_array_equal(small.quantile(QS)[:, 0], np.quantile(as64[:1000], QS))


def test_chunked_columns_and_merge_orders_within_rank_error() -> None:
    """A column of many Arrow chunks (each chunk has its own rows and tail) and partial
    states merged in several orders all stay within the rank error of the whole."""
    rng = np.random.default_rng(23)
    x = 1e9 + rng.lognormal(0.0, 2.0, 600_000)
    cuts = np.sort(rng.integers(0, len(x), 30))
    chunked = pa.chunked_array([x[a:b] for a, b in zip([0, *cuts], [*cuts, len(x)])])
    whole = sn.FeatureStats(quantiles=True).update(pa.table({"x": chunked}))
    assert whole.count[0] == len(x)
    assert rank_error(x, whole.quantile(QS)[:, 0], QS) <= RANK_ERROR
    parts = [fit(p, [int(rng.integers(1, 70_000))] * 3) for p in np.array_split(x, 9)]
    for order in (range(9), reversed(range(9)), [4, 0, 8, 2, 6, 1, 7, 3, 5]):
        merged = sn.FeatureStats(quantiles=True)
        for i in order:
            merged = merged + parts[i]
        assert merged.count[0] == len(x)
        assert rank_error(x, merged.quantile(QS)[:, 0], QS) <= RANK_ERROR


def test_same_bits_with_one_thread_and_many() -> None:
    """Columns run on threads; a column's sketch is the same bits with one thread or more."""
    numba = pytest.importorskip("numba")
    rng = np.random.default_rng(24)
    table = pa.table({f"c{j}": rng.lognormal(j, 1.0, 300_000) for j in range(4)})
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = sn.FeatureStats(quantiles=True).update(table)
    finally:
        numba.set_num_threads(before)
    many = sn.FeatureStats(quantiles=True).update(table)
    assert one == many
    assert one.to_arrow().column("quantile_items").to_pylist() == \
        many.to_arrow().column("quantile_items").to_pylist()


def test_a_file_of_the_16k_run_version_loads_continues_and_merges() -> None:
    """tests/data/quantiles_16k_runs.json was saved by the version that added batches as
    sorted runs of 16,384 (3000 values in batches of 700): the layout is unchanged, so it
    loads, answers as it did, and continues and merges through the row path."""
    path = Path(__file__).parent / "data" / "quantiles_16k_runs.json"
    old = sn.FeatureStats.load(path)
    x = np.round(np.random.default_rng(31).lognormal(0, 1, 3000), 3)
    np.testing.assert_array_equal(old.quantile([0.1, 0.5, 0.9])[:, 0], [0.266, 1.009, 3.6565])
    rng = np.random.default_rng(32)
    more, other = rng.lognormal(0, 1, 400_000), rng.lognormal(0.5, 1, 300_000)
    grown = old.copy().update(pa.table({"x": more}))
    merged = grown + fit(other, [100_000] * 3)
    everything = np.concatenate([x, more, other])
    assert merged.count[0] == len(everything)
    assert rank_error(everything, merged.quantile(QS)[:, 0], QS) <= RANK_ERROR
    assert rank_error(np.concatenate([x, more]), grown.quantile(QS)[:, 0], QS) <= RANK_ERROR


@pytest.mark.parametrize("inf", ["keep", "skip"])
def test_long_nan_heavy_column(inf) -> None:
    """Past the first block (262,144 values) of a column whose rows mostly hold NaN, NaN (and
    skipped ±inf) are dropped before the rows are cut: same count, extremes and rank bound."""
    rng = np.random.default_rng(25)
    x = rng.lognormal(0.0, 1.0, 700_000)
    x[rng.random(len(x)) < 0.05] = np.nan
    x[rng.random(len(x)) < 0.002] = np.inf
    fs = sn.FeatureStats(quantiles=True, inf=inf).update(pa.table({"x": x}))
    valid = x[np.isfinite(x)] if inf == "skip" else x[~np.isnan(x)]
    assert fs.count[0] == len(valid)
    saved = fs.to_arrow()
    assert saved["quantile_n"][0].as_py() == len(valid)
    assert saved["quantile_max"][0].as_py() == valid.max()
    inner = QS < 0.99
    assert rank_error(valid, fs.quantile(QS)[inner, 0], QS[inner]) <= RANK_ERROR
    assert sn.FeatureStats.from_dict(fs.to_dict()) == fs
