"""Minmax mode: scikit-learn ``MinMaxScaler`` semantics on streamed statistics.

streamnorm computes ``(x - center) / scale`` with ``center = min - lo*scale`` and
``scale = (max - min) / (hi - lo)``; sklearn computes ``x * scale_ + min_``. Both round a
few times, so they are compared to within 8 float64 epsilons of the magnitudes involved
(``|x * scale_| + |min_| + |y|``), elementwise.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import assert_bad_input, assert_ok, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import MinMaxScaler

import streamnorm as sn
from streamnorm.errors import NonFiniteError

EPS = np.finfo(np.float64).eps


def assert_close_to_sklearn(got: np.ndarray, X: np.ndarray, scaler: MinMaxScaler) -> None:
    want = scaler.transform(X)
    bound = 8 * EPS * (np.abs(X * scaler.scale_) + np.abs(scaler.min_) + np.abs(want))
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.all(np.abs(got[ok] - want[ok]) <= bound[ok]), np.max(np.abs(got - want)[ok])


def table_of(X: np.ndarray) -> pa.Table:
    return pa.table({f"c{j}": X[:, j] for j in range(X.shape[1])})


def as_matrix(t: pa.Table | pa.RecordBatch, names: list[str]) -> np.ndarray:
    return np.column_stack([t.column(n).to_numpy(zero_copy_only=False).astype(np.float64)
                            for n in names])


@pytest.mark.parametrize("feature_range", [(0, 1), (-1, 1), (-3.5, 7.25), (1e-3, 2e-3)])
def test_matches_sklearn_minmax_scaler(rng, feature_range) -> None:
    X = np.column_stack([
        rng.normal(0, 1, 200),
        rng.normal(1e9, 3, 200),           # huge offset, small spread
        rng.lognormal(0, 4, 200),           # skewed
        np.full(200, 7.0),                  # constant: maps to lo (sklearn's zero range)
        1.0 + rng.integers(0, 2, 200) * 4 * EPS,  # range below 10 eps: scale 1 as sklearn
    ])
    X[rng.random(X.shape) < 0.05] = np.nan  # NaN ignored by the fit, kept by transform
    scaler = MinMaxScaler(feature_range=feature_range).fit(X)
    norm = sn.Normalizer("minmax", feature_range=feature_range).fit(table_of(X))
    got = as_matrix(norm.transform(table_of(X)), [f"c{j}" for j in range(X.shape[1])])
    assert_close_to_sklearn(got, X, scaler)
    constant = got[:, 3][~np.isnan(X[:, 3])]
    lo = feature_range[0]
    assert np.all(np.abs(constant - lo) <= 8 * EPS * 7 * (feature_range[1] - lo) + 4 * EPS * abs(lo))
    if lo == 0:
        assert np.all(constant == 0.0)


def test_batches_and_float32(rng) -> None:
    X = rng.normal(50, 10, (300, 2))
    scaler = MinMaxScaler().fit(X)
    t = pa.table({"a": X[:, 0], "b": X[:, 1].astype(np.float32)})
    norm = sn.Normalizer("minmax").fit(t.to_batches(max_chunksize=7))
    out = norm.transform(t)
    assert out.schema.field("b").type == pa.float32()
    assert out.schema.field("a").type == pa.float64()
    assert_close_to_sklearn(as_matrix(out, ["a"]), X[:, :1], MinMaxScaler().fit(X[:, :1]))
    # float32: computed in float64 from the float32 values, rounded once
    b = X[:, 1].astype(np.float32).astype(np.float64)
    want = MinMaxScaler().fit_transform(b[:, None])[:, 0].astype(np.float32)
    got = out["b"].to_numpy()
    assert np.all(np.abs(got - want) <= np.spacing(np.abs(want)) + np.spacing(np.float32(1)))
    assert scaler.n_features_in_ == 2


def test_nulls_nan_and_round_trip() -> None:
    t = pa.table({"x": [3.0, None, float("nan"), -1.0, 5.0], "n": pa.array([1, 2, None, 4, 4])})
    norm = sn.Normalizer("minmax", feature_range=(-1, 1)).fit(t)
    out = norm.transform(t)
    x = out["x"].to_pylist()
    assert x[1] is None and np.isnan(x[2])
    assert x[0] == pytest.approx(1 / 3) and x[3] == -1.0 and x[4] == 1.0
    assert out["n"].to_pylist() == [-1.0, pytest.approx(-1 / 3), None, 1.0, 1.0]
    back = norm.inverse_transform(out)
    assert back["x"].to_pylist()[:2] == [3.0, None] and back["x"].to_pylist()[3:] == [-1.0, 5.0]
    assert back["n"].to_pylist() == [1.0, 2.0, None, 4.0, 4.0]
    again = sn.Normalizer.from_metadata(out)
    assert again.mode == "minmax" and again.options == {"feature_range": (-1.0, 1.0)}
    redone = again.transform(t)
    assert redone.schema.equals(out.schema, check_metadata=True)
    for name in ("x", "n"):
        np.testing.assert_array_equal(redone[name].to_numpy(zero_copy_only=False),
                                      out[name].to_numpy(zero_copy_only=False))


def test_extreme_range_stays_finite_or_is_refused() -> None:
    t = pa.table({"x": [-1e308, 0.0, 1e308]})  # max - min overflows float64
    norm = sn.Normalizer("minmax", feature_range=(0, 4)).fit(t)  # the scale does not
    assert norm.transform(t)["x"].to_pylist() == [0.0, 2.0, 4.0]
    assert norm.inverse_transform(norm.transform(t))["x"].to_pylist() == [-1e308, 0.0, 1e308]
    with pytest.raises(NonFiniteError, match=r"\['x'\].*exceeds float64"):
        sn.Normalizer("minmax").fit(t).transform(t)  # (max - min) / 1 is beyond float64


def test_infinities_refused_or_skipped() -> None:
    t = pa.table({"x": [1.0, float("inf"), 3.0]})
    with pytest.raises(NonFiniteError, match="'x'"):
        sn.Normalizer("minmax").fit(t)
    norm = sn.Normalizer("minmax", inf="skip").fit(t)
    assert norm.transform(t)["x"].to_pylist() == [0.0, float("inf"), 1.0]


@pytest.mark.parametrize("bad", [(1, 1), (2, 1), (0, float("inf")), (float("nan"), 1), (1,), "ab"])
def test_bad_feature_range_refused(bad) -> None:
    with pytest.raises(ValueError, match="feature_range"):
        sn.Normalizer("minmax", feature_range=bad)


def test_feature_range_needs_minmax() -> None:
    with pytest.raises(ValueError, match="feature_range= applies to mode 'minmax'"):
        sn.Normalizer("batch", feature_range=(0, 1))
    with pytest.raises(ValueError, match="by="):
        sn.Normalizer("minmax", by="k")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1e12, 1e12), min_size=2, max_size=40),
       st.integers(1, 5), st.sampled_from([(0.0, 1.0), (-1.0, 1.0), (10.0, 20.0)]))
def test_fitted_values_land_in_range_and_batching_is_invisible(values, step, feature_range):
    t = pa.table({"x": values})
    whole = sn.Normalizer("minmax", feature_range=feature_range).fit(t)
    pieces = sn.Normalizer("minmax", feature_range=feature_range).fit(
        t.to_batches(max_chunksize=step))
    out = whole.transform(t)["x"].to_numpy()
    assert np.array_equal(out, pieces.transform(t)["x"].to_numpy())  # min/max are exact
    lo, hi = feature_range
    slack = 8 * EPS * max(abs(lo), abs(hi))
    assert np.all(out >= lo - slack) and np.all(out <= hi + slack)
    back = whole.inverse_transform(whole.transform(t))["x"].to_numpy()
    spread = max(values) - min(values)
    spread = spread if spread >= 10 * EPS else 1.0  # sklearn's zero range counts as 1
    assert np.all(np.abs(back - np.array(values)) <= 16 * EPS * (np.abs(values) + spread))


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def small_file(tmp_path):
    t = pa.table({"x": [1.0, 2.0, 5.0, None], "f": pa.array([0, 2, 4, 8], pa.float32()),
                  "s": ["a", "b", "c", "d"]})
    pq.write_table(t, tmp_path / "in.parquet")
    return t


def test_cli_normalize_and_inverse(tmp_path, small_file) -> None:
    assert_ok(run_cli("normalize", "in.parquet", "out.parquet", "--mode", "minmax",
                      "--feature-range=-1,1", "--no-progress", cwd=tmp_path))
    out = pq.read_table(tmp_path / "out.parquet")
    assert out["x"].to_pylist() == [-1.0, -0.5, 1.0, None]
    assert out["f"].type == pa.float32() and out["f"].to_pylist() == [-1.0, -0.5, 0.0, 1.0]
    assert sn.Normalizer.from_metadata(tmp_path / "out.parquet").options == {
        "feature_range": (-1.0, 1.0)}
    assert_ok(run_cli("inverse", "out.parquet", "back.parquet", "--no-progress", cwd=tmp_path))
    back = pq.read_table(tmp_path / "back.parquet")
    assert back["x"].to_pylist() == small_file["x"].to_pylist()
    assert back["f"].type == pa.float32() and back["f"].to_pylist() == [0, 2, 4, 8]
    # the statistics of a minmax output, given with --stats: one pass, same output
    assert_ok(run_cli("normalize", "in.parquet", "again.parquet", "--mode", "minmax",
                      "--stats", "out.parquet", "--no-progress", cwd=tmp_path))
    assert pq.read_table(tmp_path / "again.parquet").equals(out)


@pytest.mark.parametrize("args, needle", [
    (("--mode", "minmax", "--feature-range", "1,0"), "lo < hi"),
    (("--mode", "minmax", "--feature-range", "0,x"), "LO,HI"),
    (("--feature-range", "0,1"), "--feature-range applies to --mode minmax only"),
])
def test_cli_bad_feature_range(tmp_path, small_file, args, needle) -> None:
    proc = run_cli("normalize", "in.parquet", "out.parquet", *args, cwd=tmp_path)
    assert_bad_input(proc, needle, absent=[tmp_path / "out.parquet"])


def test_cli_inspect_lists_minmax(tmp_path, small_file) -> None:
    proc = run_cli("inspect", "in.parquet", cwd=tmp_path)
    assert_ok(proc)
    assert proc.stdout.splitlines()[0].split()[:6] == ["column", "type", "batch", "layer",
                                                       "rms", "minmax"]


def test_a_bad_recorded_feature_range_is_refused() -> None:
    import json

    from streamnorm.errors import StatsFileError

    t = pa.table({"x": [1.0, 2.0]})
    out = sn.Normalizer("minmax").fit(t).transform(t)
    record = json.loads(out.schema.metadata[b"streamnorm"])
    record["options"] = {"feature_range": [1, 0]}
    bad = out.replace_schema_metadata({b"streamnorm": json.dumps(record).encode()})
    with pytest.raises(StatsFileError, match="field 'options'.*lo < hi"):
        sn.Normalizer.from_metadata(bad)
    record["options"] = {"spread": 2}
    bad = out.replace_schema_metadata({b"streamnorm": json.dumps(record).encode()})
    with pytest.raises(StatsFileError, match="spread= is not an option"):
        sn.Normalizer.from_metadata(bad)
