"""streamnorm.sklearn.StreamScaler: the scikit-learn contract and StandardScaler parity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

pytest.importorskip("sklearn")
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from streamnorm.sklearn import StreamScaler  # noqa: E402


# with_mean=False declares sparse support, so those two run the sparse checks (CSR, CSC and the
# formats converted to CSR, 32- and 64-bit indices, sample-weight equivalence on sparse data);
# copy=False runs every check through the in-place transform, but one: the sample-order check
# transforms X and then X[idx] taken from the X the first call overwrote (StandardScaler(copy=False)
# fails it the same way).
def _expected_failures(estimator):
    if estimator.copy:
        return {}
    return {"check_methods_sample_order_invariance":
            "copy=False transforms the caller's X in place, as StandardScaler(copy=False)"}


@parametrize_with_checks([StreamScaler(), StreamScaler(with_mean=False),
                          StreamScaler(with_std=False),
                          StreamScaler(with_mean=False, copy=False)],
                         expected_failed_checks=_expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("with_mean", [True, False])
@pytest.mark.parametrize("with_std", [True, False])
def test_matches_standard_scaler_with_nan_and_constant_columns(with_mean, with_std, rng):
    X = rng.normal(3, 2, (400, 4))
    X[:, 2] = 7.0
    X[rng.random(400) < 0.1, 1] = np.nan
    ours = StreamScaler(with_mean=with_mean, with_std=with_std)
    for part in np.array_split(X, 5):
        ours.partial_fit(part)
    ref = StandardScaler(with_mean=with_mean, with_std=with_std).fit(X)
    np.testing.assert_allclose(ours.transform(X), ref.transform(X), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ours.inverse_transform(ours.transform(X)), X, rtol=1e-13)
    if with_std:
        np.testing.assert_allclose(ours.var_, ref.var_, rtol=1e-12)
        np.testing.assert_allclose(ours.scale_, ref.scale_, rtol=1e-12)
    np.testing.assert_array_equal(ours.n_samples_seen_, ref.n_samples_seen_)


def test_accurate_far_from_zero_where_it_matters(rng):
    X = rng.normal(0, 1, (3000, 2)) + 1e9
    ours = StreamScaler()
    for part in np.array_split(X, 7):
        ours.partial_fit(part)
    exact = np.array([np.var(X[:, j] - 1e9) for j in range(2)])  # exact shift, then numpy
    np.testing.assert_allclose(ours.var_, exact, rtol=1e-13)


def test_sample_weight_equals_repetition(rng):
    X = rng.normal(size=(50, 3))
    w = rng.integers(0, 4, 50)
    weighted = StreamScaler().fit(X, sample_weight=w)
    repeated = StreamScaler().fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(weighted.mean_, repeated.mean_, rtol=1e-13)
    np.testing.assert_allclose(weighted.var_, repeated.var_, rtol=1e-12)
    assert weighted.n_samples_seen_ == w.sum()


@pytest.mark.parametrize("kind", ["pandas", "polars", "arrow"])
def test_frames_feature_names_and_set_output(kind, rng):
    data = {"a": rng.normal(size=30), "b": rng.integers(0, 5, 30).astype(float)}
    frame = {"pandas": pd.DataFrame, "polars": pl.DataFrame, "arrow": pa.table}[kind](data)
    scaler = StreamScaler().fit(frame)
    assert list(scaler.feature_names_in_) == ["a", "b"]
    assert list(scaler.get_feature_names_out()) == ["a", "b"]
    np.testing.assert_allclose(scaler.mean_, [data["a"].mean(), data["b"].mean()], rtol=1e-13)
    out = scaler.set_output(transform="pandas").transform(frame)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["a", "b"]
    out = scaler.set_output(transform="polars").transform(frame)
    assert isinstance(out, pl.DataFrame) and out.columns == ["a", "b"]


def test_arrow_streams_without_array_protocol(rng):
    import duckdb

    frame = pa.table({"a": rng.normal(size=20), "b": rng.normal(size=20)})
    table = frame
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=7))
    scaler = StreamScaler().fit(reader)
    assert list(scaler.feature_names_in_) == ["a", "b"]
    np.testing.assert_allclose(scaler.mean_, [table["a"].to_numpy().mean(),
                                              table["b"].to_numpy().mean()], rtol=1e-13)
    relation = duckdb.sql("select * from frame")  # duckdb scans the local `frame`
    np.testing.assert_allclose(StreamScaler().fit(relation).var_, scaler.var_, rtol=1e-13)


def test_float32_is_preserved_and_refit_resets(rng):
    X = rng.normal(size=(20, 2)).astype(np.float32)
    scaler = StreamScaler().fit(X)
    assert scaler.transform(X).dtype == np.float32
    scaler.fit(X[:5])
    assert scaler.n_samples_seen_ == 5
    with pytest.raises(ValueError):
        scaler.partial_fit(rng.normal(size=(3, 3)))


def test_near_constant_and_huge_features():
    X = np.array([[1.0, 1e200], [1.0, 1e200], [1.0 + 2**-52, 3e200], [1.0 + 2**-52, 1e200],
                  [1.0, 2e200]])
    scaler = StreamScaler().fit(X)
    assert scaler.scale_[0] == 1.0  # near-constant: sklearn's rule, as StandardScaler
    assert scaler.scale_[1] == pytest.approx(8e199, rel=1e-14)  # var_ overflows, scale_ not
    assert np.isinf(scaler.var_[1])
    Z = scaler.transform(X)
    assert np.all(np.abs(Z[:, 0]) <= 2**-52)
    np.testing.assert_allclose(Z[:, 1], [-0.75, -0.75, 1.75, -0.75, 0.5], rtol=1e-14)
    np.testing.assert_allclose(scaler.inverse_transform(Z), X, rtol=1e-15)
    ref = StandardScaler().fit(X[:, :1])
    assert ref.scale_[0] == 1.0


def test_partial_fit_accepts_a_wider_dtype(rng):
    """float32, then float64, then int batches: promoted, as in FeatureStats.update."""
    X = rng.normal(size=(30, 2))
    parts = [X[:10].astype(np.float32), X[10:20], np.round(X[20:] * 10).astype(np.int64)]
    scaler = StreamScaler()
    for part in parts:
        scaler.partial_fit(part)
    whole = np.vstack([p.astype(np.float64) for p in parts])
    np.testing.assert_allclose(scaler.mean_, whole.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(scaler.var_, whole.var(axis=0), rtol=1e-13)
    assert scaler.n_samples_seen_ == 30
