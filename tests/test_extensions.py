"""Issue 8 extensions: moments=4, frequency weights, RunningStats and grouped (by=) statistics."""

from __future__ import annotations

import datetime

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import scipy.stats
from helpers import assert_bad_input, call_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from references import exact_moments, rel_err

import streamnorm as sn
from streamnorm.kernels.cpu import BLOCK, CHUNK

# --------------------------------------------------------------------------- moments=4


def test_skew_kurtosis_exact_at_offset_1e9_for_any_batching(rng):
    x = rng.gamma(2.0, 1.0, 1500) + 1e9
    want = exact_moments(x)
    table = pa.table({"x": x})
    for batch_size in (None, 3, 7, 500):
        fs = sn.FeatureStats(moments=4)
        for batch in table.to_batches(max_chunksize=batch_size):
            fs.update(batch)
        assert rel_err(fs.skew()[0], want["skew"]) < 1e-10
        assert rel_err(fs.kurtosis()[0], want["kurt"]) < 1e-10
        assert rel_err(fs.kurtosis(fisher=False)[0], want["kurt"] + 3) < 1e-10
        assert rel_err(fs.var()[0], want["m2"] / want["n"]) < 1e-13


def test_skew_kurtosis_match_scipy_across_blocks_chunks_and_nulls(rng):
    n = 2 * CHUNK + 3 * BLOCK + 5
    x = rng.lognormal(0.0, 0.5, n) + 1e6
    mask = rng.random(n) < 0.05
    x[rng.random(n) < 0.01] = np.nan
    table = pa.table({"x": pa.array(x, mask=mask), "i": rng.integers(-50, 50, n)})
    fs = sn.FeatureStats(moments=4).update(table)
    keep = ~mask & ~np.isnan(x)
    xv = x[keep] - 1e6  # an exact shift, so scipy's own result is accurate
    np.testing.assert_allclose(fs.skew()[0], scipy.stats.skew(xv), rtol=1e-10)
    np.testing.assert_allclose(fs.kurtosis()[0], scipy.stats.kurtosis(xv), rtol=1e-10)
    i = table.column("i").to_numpy().astype(float)
    np.testing.assert_allclose(fs.skew()[1], scipy.stats.skew(i), rtol=1e-10)
    np.testing.assert_allclose(fs.kurtosis()[1], scipy.stats.kurtosis(i), rtol=1e-10)
    assert fs.null_count.tolist() == [mask.sum(), 0]
    assert fs.nan_count.tolist() == [np.isnan(x[~mask]).sum(), 0]
    plain = sn.FeatureStats().update(table)  # moments=2 gives the same lower moments
    np.testing.assert_allclose(fs.var(), plain.var(), rtol=1e-13)
    np.testing.assert_array_equal(fs.count, plain.count)


def test_skew_kurtosis_are_nan_without_spread_and_need_moments4():
    fs = sn.FeatureStats(moments=4).update(pa.table({"c": [3.0, 3.0, 3.0], "e": pa.array(
        [None, None, None], pa.float64())}))
    assert np.isnan(fs.skew()).all() and np.isnan(fs.kurtosis()).all()
    with pytest.raises(ValueError, match="moments=4"):
        sn.FeatureStats().update(pa.table({"x": [1.0]})).skew()
    with pytest.raises(ValueError, match="moments"):
        sn.FeatureStats(moments=3)
    with pytest.raises(ValueError, match="moments"):
        sn.FeatureStats(moments=4).update(pa.table({"x": [1.0]})).merge(
            sn.FeatureStats().update(pa.table({"x": [1.0]})))


@pytest.mark.parametrize("suffix", [".json", ".arrow", ".parquet"])
def test_moments4_states_save_and_load_exactly(tmp_path, suffix, rng):
    fs = sn.FeatureStats(moments=4).update(pa.table({"x": rng.normal(1e9, 1, 100),
                                                     "y": rng.integers(0, 9, 100)}))
    table = fs.to_arrow()
    assert table.column_names[:7] == ["column", "count", "null_count", "nan_count", "mean", "m2",
                                      "m3"]
    assert "m3" not in sn.FeatureStats().update(pa.table({"x": [1.0]})).to_arrow().column_names
    fs.save(tmp_path / f"s{suffix}")
    back = sn.FeatureStats.load(tmp_path / f"s{suffix}")
    assert back == fs and back.moments == 4
    np.testing.assert_array_equal(back.skew(), fs.skew())


finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=64)
column_values = st.lists(st.one_of(finite, finite, st.none()), min_size=0, max_size=40)


def _close_higher(a: sn.FeatureStats, b: sn.FeatureStats) -> None:
    np.testing.assert_array_equal(a.count, b.count)
    np.testing.assert_array_equal(a.null_count, b.null_count)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12, atol=1e-9)
    n = np.maximum(np.asarray(a.count, float), 1.0)
    saved_a, saved_b = a.to_arrow(), b.to_arrow()
    for field, power in (("m2", 2), ("m3", 3), ("m4", 4)):
        np.testing.assert_allclose(saved_a[field].to_numpy(), saved_b[field].to_numpy(),
                                   rtol=1e-9, atol=1e-9 * float(n.max()) * 2e3**power)


@settings(max_examples=40, deadline=None)
@given(a=column_values, b=column_values, c=column_values,
       offset=st.sampled_from([0.0, 1e9]))
def test_moments4_merge_is_associative(a, b, c, offset):
    def stats(values):
        col = pa.array([None if v is None else v + offset for v in values], pa.float64())
        return sn.FeatureStats(["x"], moments=4).update(pa.table({"x": col}))

    sa, sb, sc = stats(a), stats(b), stats(c)
    _close_higher((sa + sb) + sc, sa + (sb + sc))
    _close_higher((sa + sb) + sc, stats(a + b + c))
    assert sn.FeatureStats.from_arrow(sa.to_arrow()) == sa
    assert sn.FeatureStats.from_dict(sa.to_dict()) == sa


# --------------------------------------------------------------------------- weights


def test_weighted_mean_var_match_numpy_average(rng):
    n = BLOCK + 333
    x = rng.normal(1e3, 5.0, n)
    w = rng.random(n) * 3
    w[rng.random(n) < 0.1] = 0.0
    fs = sn.FeatureStats().update(pa.table({"x": x, "w": w}), weights="w")
    assert fs.columns == ["x"] and fs.weighted
    mean = np.average(x, weights=w)
    var0 = np.average((x - mean) ** 2, weights=w)
    assert fs.count.dtype == np.float64
    np.testing.assert_allclose(fs.count[0], w.sum(), rtol=1e-13)
    np.testing.assert_allclose(fs.mean[0], mean, rtol=1e-13)
    np.testing.assert_allclose(fs.var()[0], var0, rtol=1e-11)
    np.testing.assert_allclose(fs.var(ddof=1)[0], var0 * w.sum() / (w.sum() - 1), rtol=1e-11)


def test_integer_weights_equal_repeated_rows_and_offset_accuracy(rng):
    x = rng.normal(0, 1, 700) + 1e9
    w = rng.integers(0, 4, 700)
    x[::50] = np.nan
    weighted = sn.FeatureStats(moments=4).update(pa.table({"x": x, "w": w}), weights="w")
    repeated = sn.FeatureStats(moments=4).update(pa.table({"x": np.repeat(x, w)}))
    keep = ~np.isnan(x)
    want = exact_moments(x[keep], w[keep])
    assert weighted.count[0] == repeated.count[0] == want["n"]
    assert weighted.nan_count[0] == (w[~keep] > 0).sum()  # rows, not weights
    assert repeated.nan_count[0] == w[~keep].sum()
    assert rel_err(weighted.var()[0], want["m2"] / want["n"]) < 1e-13
    assert rel_err(weighted.skew()[0], want["skew"]) < 1e-10
    assert rel_err(weighted.kurtosis()[0], want["kurt"]) < 1e-10
    np.testing.assert_allclose(weighted.var(), repeated.var(), rtol=1e-13)


def test_zero_and_null_weights_drop_rows_and_bad_weights_are_errors():
    t = pa.table({"x": pa.array([1.0, None, float("nan"), 5.0, 100.0]),
                  "w": pa.array([1, 0, 0, 1, None])})
    fs = sn.FeatureStats().update(t, weights="w")
    assert fs.count.tolist() == [2.0] and fs.null_count.tolist() == [0]
    assert fs.nan_count.tolist() == [0] and fs.mean.tolist() == [3.0] and fs.max.tolist() == [5.0]
    for bad in ([1.0, -1.0], [1.0, float("nan")], [1.0, float("inf")]):
        with pytest.raises(ValueError, match="weights"):
            sn.FeatureStats().update(pa.table({"x": [1.0, 2.0], "w": bad}), weights="w")
    with pytest.raises(ValueError, match="weights"):
        sn.FeatureStats().update(pa.table({"x": [1.0]}), weights="nope")
    with pytest.raises(ValueError, match="tracked feature"):
        fs = sn.FeatureStats().update(pa.table({"x": [1.0], "w": [1.0]}))
        fs.update(pa.table({"x": [1.0], "w": [1.0]}), weights="w")
    only_zero = sn.FeatureStats().update(pa.table({"x": [7.0], "w": [0.0]}), weights="w")
    assert only_zero.count.tolist() == [0.0] and np.isnan(only_zero.mean).all()


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_weighted_merge_matches_one_pass_mixes_with_unweighted_and_saves(tmp_path, suffix, rng):
    x = rng.normal(5, 2, 300)
    w = rng.random(300)
    t = pa.table({"x": x, "w": w})
    a = sn.FeatureStats().update(t.slice(0, 100), weights="w")
    b = sn.FeatureStats().update(t.slice(100), weights="w")
    whole = sn.FeatureStats().update(t, weights="w")
    merged = a + b
    np.testing.assert_allclose(merged.count, whole.count, rtol=1e-14)
    np.testing.assert_allclose(merged.var(), whole.var(), rtol=1e-12)
    mixed = sn.FeatureStats().update(pa.table({"x": x[:10]})) + a  # unweighted + weighted
    assert mixed.weighted and mixed.count.dtype == np.float64
    np.testing.assert_allclose(mixed.count[0], 10 + w[:100].sum(), rtol=1e-14)
    whole.save(tmp_path / f"w{suffix}")
    assert sn.FeatureStats.load(tmp_path / f"w{suffix}") == whole


# --------------------------------------------------------------------------- RunningStats


def torch_rule(batches: list[np.ndarray], momentum: float | None) -> tuple[np.ndarray, ...]:
    """float64 re-implementation of BatchNorm1d's running_mean / running_var update."""
    k = batches[0].shape[1]
    mean, var = np.zeros(k), np.ones(k)
    for t, x in enumerate(batches, start=1):
        factor = 1.0 / t if momentum is None else momentum
        mean = (1 - factor) * mean + factor * x.mean(axis=0)
        var = (1 - factor) * var + factor * x.var(axis=0, ddof=1)
    return mean, var


@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0, None])
def test_running_stats_follow_batchnorm(momentum, rng):
    batches = [rng.normal(3, 2, (int(rng.integers(2, 40)), 3)) * [1, 10, 0.1] + [0, 1e3, -5]
               for _ in range(9)]
    rs = sn.RunningStats(momentum=momentum)
    assert rs.columns == []
    for x in batches:
        rs.update(pa.table({f"c{j}": x[:, j] for j in range(3)}))
    mean, var = torch_rule(batches, momentum)
    np.testing.assert_allclose(rs.mean, mean, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(rs.var(), var, rtol=1e-13)
    np.testing.assert_allclose(rs.std(), np.sqrt(var), rtol=1e-13)
    assert rs.num_batches_tracked == 9 and rs.columns == ["c0", "c1", "c2"]
    assert rs.to_arrow().column_names == ["column", "running_mean", "running_var", "updates"]


def test_running_stats_skip_columns_without_two_values_and_reset():
    rs = sn.RunningStats(momentum=0.5)
    rs.update(pa.table({"a": [1.0, 3.0], "b": pa.array([None, 4.0], pa.float64())}))
    assert rs.mean.tolist() == [1.0, 0.0] and rs.var().tolist() == [1.5, 1.0]
    assert rs.updates.tolist() == [1, 0]
    rs.update_batches(pa.table({"a": [2.0, 4.0, 6.0, 8.0], "b": [1.0, 1.0, 1.0, 1.0]}),
                      batch_size=2)
    assert rs.num_batches_tracked == 3 and rs.updates.tolist() == [3, 2]
    rs.reset()
    assert rs.mean.tolist() == [0.0, 0.0] and rs.var().tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="momentum"):
        sn.RunningStats(momentum=0.0)


# --------------------------------------------------------------------------- grouped


def _grouped_table(rng, n=3000, offset=1e3):
    return pa.table({
        "k": pa.array(rng.choice(["a", "b", "c", None], n)),
        "d": pa.array([datetime.date(2024, 1, 1 + int(i)) for i in rng.integers(0, 3, n)]),
        "x": rng.normal(offset, 2.0, n),
        "y": pa.array(rng.integers(-100, 100, n), mask=rng.random(n) < 0.1),
    })


def test_grouped_matches_polars_group_by(rng):
    table = _grouped_table(rng)
    fs = sn.FeatureStats(by=["k", "d"])
    for batch in table.to_batches(max_chunksize=700):
        fs.update(batch)
    assert fs.columns == ["x", "y"]
    ref = pl.from_arrow(table).group_by(["k", "d"]).agg(
        [pl.col(c).mean().alias(f"{c}_mean") for c in ("x", "y")]
        + [pl.col(c).var(ddof=0).alias(f"{c}_var") for c in ("x", "y")]
        + [pl.col(c).count().alias(f"{c}_n") for c in ("x", "y")]
    )
    assert ref.height == len(fs.keys) == 12
    for row in ref.iter_rows(named=True):
        g = fs.group_index((row["k"], row["d"]))
        for j, c in enumerate(("x", "y")):
            assert fs.count[g, j] == row[f"{c}_n"]
            np.testing.assert_allclose(fs.mean[g, j], row[f"{c}_mean"], rtol=1e-13)
            np.testing.assert_allclose(fs.var()[g, j], row[f"{c}_var"], rtol=1e-11)


def test_grouped_accuracy_at_offset_1e9_matches_ungrouped(rng):
    n = 2000
    keys = rng.integers(0, 3, n)
    x = rng.normal(0, 1, n) + 1e9 * (1 + keys)
    fs = sn.FeatureStats(by="k").update(pa.table({"k": keys, "x": x}).to_batches(300))
    for g, key in enumerate(fs.keys.column("k").to_pylist()):
        values = x[keys == key]
        want = exact_moments(values)
        ungrouped = sn.FeatureStats().update(pa.table({"x": values}).to_batches(300))
        assert rel_err(fs.var()[g, 0], want["m2"] / want["n"]) < 1e-13
        assert rel_err(ungrouped.var()[0], want["m2"] / want["n"]) < 1e-13
        assert fs.mean[g, 0] == want["mean"]


def test_grouped_weighted_moments4_match_exact_per_key_and_merge(rng):
    n = 600
    table = _grouped_table(rng, n=n).drop_columns(["d"]).append_column(
        "w", pa.array(rng.integers(0, 4, n), mask=rng.random(n) < 0.1))
    fs = sn.FeatureStats(by="k", moments=4).update(table, weights="w")
    assert fs.columns == ["x", "y"]  # keys and weights are never features
    out = fs.to_arrow()
    assert out.column_names[:8] == ["k", "column", "count", "null_count", "nan_count", "mean",
                                    "m2", "m3"]
    assert out.num_rows == 2 * len(fs.keys) == 8
    w = table.column("w").fill_null(0).to_numpy()
    keys = table.column("k").to_pylist()
    for key in ("a", None):
        rows = np.array([k == key for k in keys]) & (w > 0)
        want = exact_moments(table.column("x").to_numpy()[rows], w[rows])
        g = fs.group_index(key)
        assert fs.count[g, 0] == want["n"]
        assert rel_err(fs.var()[g, 0], want["m2"] / want["n"]) < 1e-12
        assert rel_err(fs.skew()[g, 0], want["skew"]) < 1e-10
        assert rel_err(fs.kurtosis()[g, 0], want["kurt"]) < 1e-10
    a = sn.FeatureStats(by="k").update(table.slice(0, 5))
    b = sn.FeatureStats(by="k").update(table.slice(5))
    merged, whole = a + b, sn.FeatureStats(by="k").update(table)
    assert set(map(str, merged.keys.column("k").to_pylist())) == {"a", "b", "c", "None"}
    for key in ("a", "b", "c", None):
        gm, gw = merged.group_index(key), whole.group_index(key)
        np.testing.assert_array_equal(merged.count[gm], whole.count[gw])
        np.testing.assert_allclose(merged.var()[gm], whole.var()[gw], rtol=1e-12)


@pytest.mark.parametrize("suffix", [".json", ".arrow", ".parquet"])
def test_grouped_states_save_and_load_as_grouped(tmp_path, suffix, rng):
    table = _grouped_table(rng, n=200).drop_columns(["d"])
    fs = sn.FeatureStats(by="k").update(table)
    fs.save(tmp_path / f"g{suffix}")
    back = sn.FeatureStats.load(tmp_path / f"g{suffix}")
    assert isinstance(back, sn.GroupedFeatureStats) and back == fs and back.by == ["k"]


def test_grouped_errors_and_date_keys_need_binary_formats(tmp_path, rng):
    table = _grouped_table(rng, n=50)
    with pytest.raises(ValueError, match="key column 'nope'"):
        sn.FeatureStats(by="nope").update(table)
    with pytest.raises(ValueError, match="cannot also be features"):
        sn.FeatureStats(["x", "k"], by="k").update(table)
    fs = sn.FeatureStats(by="d").update(table)
    with pytest.raises(ValueError, match=".arrow or .parquet"):
        fs.save(tmp_path / "d.json")
    fs.save(tmp_path / "d.arrow")
    assert sn.FeatureStats.load(tmp_path / "d.arrow") == fs
    with pytest.raises(TypeError):
        fs.merge(sn.FeatureStats().update(table))


keyed = st.lists(st.tuples(st.sampled_from(["p", "q", "r"]), st.one_of(finite, st.none())),
                 max_size=30)


@settings(max_examples=30, deadline=None)
@given(a=keyed, b=keyed, c=keyed, offset=st.sampled_from([0.0, 1e9]))
def test_grouped_merge_is_associative_and_round_trips(a, b, c, offset):
    def stats(rows):
        table = pa.table({
            "k": pa.array([k for k, _ in rows], pa.string()),
            "x": pa.array([None if v is None else v + offset for _, v in rows], pa.float64()),
        })
        return sn.FeatureStats(["x"], by="k", moments=4).update(table)

    sa, sb, sc = stats(a), stats(b), stats(c)
    left, right, whole = (sa + sb) + sc, sa + (sb + sc), stats(a + b + c)
    assert left.keys.column("k").to_pylist() == right.keys.column("k").to_pylist()
    for other in (right, whole):
        order = [other.group_index(k) for k in left.keys.column("k").to_pylist()]
        np.testing.assert_array_equal(left.count, other.count[order])
        np.testing.assert_allclose(left.mean, other.mean[order], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(left.m2, other.m2[order], rtol=1e-9, atol=1e-6 * 4e6 * 30)
    assert sn.FeatureStats.from_arrow(left.to_arrow()) == left
    assert sn.FeatureStats.from_dict(left.to_dict()) == left


# --------------------------------------------------------------------------- Normalizer(by=) / CLI


def test_normalizer_by_key_uses_each_rows_group(rng):
    n = 500
    keys = rng.choice(["a", "b", "c"], n)
    x = rng.normal(0, 1, n) * np.where(keys == "a", 10, 1) + np.where(keys == "b", 1e6, 0)
    y = rng.normal(0, 1, n).astype(np.float32)
    table = pa.table({"k": keys, "x": x, "y": y})
    norm = sn.Normalizer(by="k").fit(table.to_batches(100))
    out = norm.transform(table)
    assert out.schema.field("y").type == pa.float32() and out.column("k").equals(table["k"])
    for key in ("a", "b", "c"):
        sel = keys == key
        want = (x[sel] - x[sel].mean()) / x[sel].std()
        # atol: x - mean itself rounds at 1e6 * 2**-52 for the group far from zero
        np.testing.assert_allclose(out.column("x").to_numpy()[sel], want, rtol=1e-9, atol=1e-9)
    back = norm.inverse_transform(out)
    np.testing.assert_allclose(back.column("x").to_numpy(), x, rtol=1e-12)
    unseen = norm.transform(pa.table({"k": ["z", "a"], "x": [1.0, 2.0], "y": pa.array(
        [1.0, 2.0], pa.float32())}))
    assert unseen.column("x").null_count == 1 and unseen.column("x")[0].as_py() is None
    again = sn.Normalizer.from_metadata(out)
    assert again.by == ["k"] and again.transform(table).equals(out)
    with pytest.raises(ValueError, match="mode='batch'"):
        sn.Normalizer("layer", by="k")


def test_cli_stats_and_normalize_by_key_work_per_key(tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"k": ["a", "b", "a", "b"], "x": [1.0, 10.0, 3.0, 30.0]}),
                   tmp_path / "in.parquet")

    done = call_cli("stats", "in.parquet", "--by", "k", "-o", "s.arrow", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    stats = sn.FeatureStats.load(tmp_path / "s.arrow")
    assert stats.by == ["k"] and stats.mean[:, 0].tolist() == [2.0, 20.0]
    done = call_cli("normalize", "in.parquet", "out.parquet", "--by", "k", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert pq.read_table(tmp_path / "out.parquet")["x"].to_pylist() == [-1.0, -1.0, 1.0, 1.0]
    assert_bad_input(call_cli("normalize", "in.parquet", "o.parquet", "--by", "k", "--mode", "rms",
                              cwd=tmp_path), "--by", absent=[tmp_path / "o.parquet"])


def _key_frames() -> dict[str, object]:
    """The same keys as the frames people have: polars, pandas and Arrow key types."""
    import pandas as pd

    keys = ["b", "a", "b", None, "c", "a", "b"]
    x = [1.0, 2.0, 3.0, 4.0, 10.0, 6.0, 5.0]
    frame = pl.DataFrame({"k": keys, "x": x})
    return {
        "polars str": frame,  # exported through __arrow_c_stream__ as string_view
        "polars to_arrow": frame.to_arrow(),  # large_string
        "polars Categorical": frame.with_columns(pl.col("k").cast(pl.Categorical)),
        "polars Enum": frame.with_columns(pl.col("k").cast(pl.Enum(["a", "b", "c"]))),
        "pandas category": pd.DataFrame({"k": pd.Categorical(keys), "x": x}),
        "pandas object": pd.DataFrame({"k": keys, "x": x}),
        "string_view": pa.table({"k": pa.array(keys, pa.string_view()), "x": x}),
        "large_string": pa.table({"k": pa.array(keys, pa.large_string()), "x": x}),
        "dictionary": pa.table({"k": pa.array(keys).dictionary_encode(), "x": x}),
    }


@pytest.mark.parametrize("kind", list(_key_frames()))
def test_by_takes_the_key_types_people_have(tmp_path, kind):
    data = _key_frames()[kind]
    fs = sn.FeatureStats(by="k").update(data)
    assert fs.keys.column("k").to_pylist() == ["b", "a", None, "c"]
    assert fs.mean[:, 0].tolist() == [3.0, 4.0, 4.0, 10.0]
    fs.save(tmp_path / "s.json")
    back = sn.FeatureStats.load(tmp_path / "s.json")
    assert back == fs and back.keys.column("k").to_pylist() == ["b", "a", None, "c"]
    norm = sn.Normalizer(by="k").fit(data)
    out = norm.transform(data)
    np.testing.assert_allclose(out.column("x").to_pylist()[:2], [-2 / np.sqrt(8 / 3), -1.0],
                               rtol=1e-15)
    np.testing.assert_allclose(norm.inverse_transform(out).column("x").to_pylist(),
                               [1.0, 2.0, 3.0, 4.0, 10.0, 6.0, 5.0], rtol=1e-15)
    again = sn.Normalizer.from_metadata(out)  # the record in the output's metadata
    assert again.stats == fs


def test_integer_and_mixed_width_string_keys_match_by_value(tmp_path):
    a = pa.table({"k": pa.array([3, 1, 3], pa.int8()), "x": [1.0, 2.0, 3.0]})
    fs = sn.FeatureStats(by="k").update(a)
    fs.update(pa.table({"k": pa.array([1, 7], pa.int8()), "x": [4.0, 5.0]}))
    assert fs.keys.column("k").to_pylist() == [3, 1, 7] and fs.count[:, 0].tolist() == [2, 2, 1]
    fs.save(tmp_path / "s.json")
    assert sn.FeatureStats.load(tmp_path / "s.json") == fs
    s = sn.FeatureStats(by="k").update(pa.table({"k": pa.array(["p"], pa.large_string()),
                                                 "x": [1.0]}))
    s.update(pa.table({"k": pa.array(["p", "q"], pa.string_view()), "x": [3.0, 4.0]}))
    assert s.keys.column("k").to_pylist() == ["p", "q"] and s.mean[:, 0].tolist() == [2.0, 4.0]


def test_cli_by_on_parquet_written_by_polars_and_pandas(tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq

    keys = ["b", "a", "b", "a"]
    pl.DataFrame({"k": keys, "x": [1.0, 10.0, 3.0, 30.0]}).write_parquet(tmp_path / "pl.parquet")
    pl.DataFrame({"k": keys, "x": [1.0, 10.0, 3.0, 30.0]}).with_columns(
        pl.col("k").cast(pl.Categorical)).write_parquet(tmp_path / "plcat.parquet")
    pd.DataFrame({"k": pd.Categorical(keys), "x": [1.0, 10.0, 3.0, 30.0]}).to_parquet(
        tmp_path / "pd.parquet")

    for name in ("pl", "plcat", "pd"):
        done = call_cli("stats", f"{name}.parquet", "--by", "k", "-o", f"{name}.json",
                        cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        stats = sn.FeatureStats.load(tmp_path / f"{name}.json")
        assert stats.keys.column("k").to_pylist() == ["b", "a"]
        assert stats.mean[:, 0].tolist() == [2.0, 20.0]
        done = call_cli("normalize", f"{name}.parquet", f"{name}-out.parquet", "--by", "k",
                        cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        out = pq.read_table(tmp_path / f"{name}-out.parquet")
        assert out["x"].to_pylist() == [-1.0, -1.0, 1.0, 1.0]
        done = call_cli("inverse", f"{name}-out.parquet", f"{name}-back.parquet", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert pq.read_table(tmp_path / f"{name}-back.parquet")["x"].to_pylist() == [
            1.0, 10.0, 3.0, 30.0]


weighted_rows = st.lists(st.tuples(st.one_of(finite, st.none()),
                                   st.one_of(st.integers(0, 5).map(float), st.none())),
                         max_size=30)


@settings(max_examples=30, deadline=None)
@given(a=weighted_rows, b=weighted_rows, offset=st.sampled_from([0.0, 1e9]))
def test_weighted_moments4_merge_matches_one_pass_for_any_data(a, b, offset):
    def table(rows):
        return pa.table({
            "x": pa.array([None if v is None else v + offset for v, _ in rows], pa.float64()),
            "w": pa.array([w for _, w in rows], pa.float64()),
        })

    sa = sn.FeatureStats(["x"], moments=4).update(table(a), weights="w")
    sb = sn.FeatureStats(["x"], moments=4).update(table(b), weights="w")
    whole = sn.FeatureStats(["x"], moments=4).update(table(a + b), weights="w")
    _close_higher(sa + sb, whole)
    assert sn.FeatureStats.from_arrow(whole.to_arrow()) == whole
    assert sn.FeatureStats.from_dict(whole.to_dict()) == whole


def test_grouped_states_carry_inf_count_and_scale_exponent(tmp_path):
    """Issue 12: per-key states merge without overflow and keep the new fields on disk."""
    a = sn.FeatureStats(by="k").update(pa.table({"k": ["a", "b"], "x": [1e154, np.inf]}))
    b = sn.FeatureStats(by="k").update(pa.table({"k": ["a", "b"], "x": [-1e154, 1.0]}))
    merged = a + b
    assert merged.mean[0, 0] == 0.0 and merged.std()[0, 0] == 1e154
    assert np.isinf(merged.mean[1, 0])
    for suffix in (".json", ".arrow"):
        merged.save(tmp_path / f"g{suffix}")
        assert sn.FeatureStats.load(tmp_path / f"g{suffix}") == merged
    with pytest.raises(sn.NonFiniteError, match="'x'"):
        sn.Normalizer.from_stats(merged).transform(pa.table({"k": ["a"], "x": [1.0]}))
    with pytest.raises(ValueError, match="inf='skip' is not supported with by="):
        sn.FeatureStats(by="k", inf="skip")


def test_grouped_statistics_count_infinities_per_key():
    first = pa.table({"k": ["a", "b", "a", "b"], "x": pa.array([1.0, np.inf, 3.0, None])})
    second = pa.table({"k": ["b", "c", "a"], "x": [-np.inf, 2.0, 5.0]})
    whole = sn.FeatureStats(by="k").update(pa.concat_tables([first, second]))
    merged = sn.FeatureStats(by="k").update(first) + sn.FeatureStats(by="k").update(second)
    for fs in (whole, merged):
        summary = fs.summary().to_pydict()
        assert summary["k"] == ["a", "b", "c"]
        assert summary["inf_count"] == [0, 2, 0]
        assert summary["mean"][0] == 3.0 and np.isnan(summary["mean"][1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-3, 3)), min_size=1, max_size=40))
def test_batch_groups_without_a_sort_match_numpy_unique(values):
    """One key column's groups come from its first-seen codes, not from a sort: the same
    local groups and first rows as ``np.unique`` over the codes."""
    from streamnorm.state.grouped import batch_groups

    batch = pa.record_batch({"k": pa.array(values, pa.int64())})
    local, first = batch_groups(batch, ["k"])
    codes = pc.dictionary_encode(batch.column(0), null_encoding="encode").indices.to_numpy()
    _, want_first, want_local = np.unique(codes, return_index=True, return_inverse=True)
    np.testing.assert_array_equal(local, want_local.reshape(-1))
    np.testing.assert_array_equal(first, want_first)
    assert local.dtype == np.int64


@pytest.mark.parametrize("make_key", [lambda k: k, lambda k: k.astype(str)])
def test_grouped_registers_many_new_keys_in_order(make_key):
    """Thousands of new keys in one batch, and more over later batches (some known, some new):
    groups numbered in order of first appearance, the same statistics as key by key."""
    rng = np.random.default_rng(3)
    k = rng.integers(0, 3000, 20_000)
    t = pa.table({"k": make_key(k), "x": rng.normal(size=len(k))})
    whole = sn.FeatureStats(by="k").update(t.slice(0, 9000)).update(t.slice(9000))
    _, first = np.unique(k, return_index=True)
    assert whole.keys.column("k").to_pylist() == make_key(k[np.sort(first)]).tolist()
    for key in make_key(k[:50]).tolist():
        rows = [v for kk, v in zip(t["k"].to_pylist(), t["x"].to_pylist()) if kk == key]
        g = whole.group_index(key)
        assert whole.count[g, 0] == len(rows)
        assert whole.mean[g, 0] == pytest.approx(np.mean(rows), rel=1e-12)


def _bits(table: pa.Table) -> list:
    """Every column of a state table as exact bits (NaN equal to itself)."""
    return [np.asarray(c).view(np.uint64).tolist() if pa.types.is_floating(c.type)
            else c.to_pylist() for c in table.columns]


@pytest.mark.parametrize("batch_rows", [1, 5, 2047, 8192, 8193, 40000])
@pytest.mark.parametrize("kind", ["plain", "weighted", "moments4", "weighted4"])
def test_state_does_not_depend_on_serial_or_parallel_path(monkeypatch, batch_rows, kind):
    """The same batching gives bit-identical states whether every kernel call ran serially or
    as a parallel launch (batches around ``SERIAL_MAX_VALUES``: 8 columns of 8192 rows),
    with nulls, NaN, far offsets, float32 and int columns, through the located and the view
    paths."""
    from streamnorm.kernels import cpu
    rng = np.random.default_rng(batch_rows)
    n = min(3 * batch_rows, 90000)
    data = {f"x{i}": pa.array(rng.normal(1e9 * i, 1.0, n), mask=rng.random(n) < 0.1 * (i % 2))
            for i in range(5)}
    data["x2"] = pa.array(np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)))
    data["f32"] = pa.array(rng.normal(size=n).astype(np.float32))
    data["i32"] = pa.array(rng.integers(-50, 50, n).astype(np.int32))
    data["w"] = pa.array(rng.integers(0, 3, n).astype(np.float64))
    table = pa.table(data)
    features = [c for c in table.column_names if c != "w"]
    weights = "w" if kind.startswith("weighted") else None
    states = []
    for limit in (10**12, 0):  # always serial, always parallel
        monkeypatch.setattr(cpu, "SERIAL_MAX_VALUES", limit)
        fs = sn.FeatureStats(columns=features, moments=4 if kind.endswith("4") else 2)
        for batch in table.to_batches(max_chunksize=batch_rows):
            fs.update(batch, weights=weights)
        fs.update(table.slice(0, batch_rows), weights=weights)  # a Table: the view path
        states.append(_bits(fs.to_arrow()))
    assert states[0] == states[1]
