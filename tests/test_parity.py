"""Issue 15, parity: behaviours people bring from scikit-learn, river, scipy, pandas and torch.

StreamScaler on sparse input, in place and in float16; unbiased skew and kurtosis; subtracting
states; bool columns named explicitly; RunningStats buffers before the first batch; and the
deliberate differences the README states.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.sparse as sp
import scipy.stats
from helpers import assert_bad_input, assert_ok, call_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from references import exact_central_moments, exact_moments

import streamnorm as sn

pytest.importorskip("sklearn")
from sklearn.preprocessing import StandardScaler

from streamnorm.sklearn import StreamScaler

EPS = np.finfo(np.float64).eps


def sparse_data(rng: np.random.Generator, n: int = 300, k: int = 6) -> np.ndarray:
    """Dense float64 data that is mostly zeros: an all-zero column, a column without zeros,
    an offset column, NaN and explicit zeros are kept as stored values by the caller."""
    X = rng.normal(3.0, 2.0, (n, k))
    X[rng.random((n, k)) < 0.7] = 0.0
    X[:, 1] = 0.0                                  # only implicit zeros
    X[:, 2] = rng.normal(-1.0, 0.5, n)             # no zeros at all
    X[:, 3] = np.where(X[:, 3] != 0, 1e9 + X[:, 3], 0.0)  # far from zero, mostly zeros
    X[rng.random(n) < 0.05, 4] = np.nan            # NaN: skipped, counted per feature
    return X


def with_explicit_zeros(X: np.ndarray, fmt: str) -> sp.spmatrix:
    """``X`` as a sparse matrix that also stores a few zeros explicitly."""
    M = sp.csr_matrix(X)
    M.data[::7] = 0.0  # stored zeros: values like the implicit ones
    dense = M.toarray()
    X[:] = dense
    return M.asformat(fmt)


# ---------------------------------------------------------------- StreamScaler: sparse
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_statistics_match_standard_scaler(fmt, weighted, rng):
    X = sparse_data(rng)
    M = with_explicit_zeros(X, fmt)
    w = rng.integers(0, 4, X.shape[0]).astype(float) if weighted else None
    ours = StreamScaler(with_mean=False).fit(M, sample_weight=w)
    ref = StandardScaler(with_mean=False).fit(M, sample_weight=w)
    np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(ours.var_, ref.var_, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours.scale_, ref.scale_, rtol=1e-13)
    np.testing.assert_array_equal(ours.n_samples_seen_, ref.n_samples_seen_)
    # the same statistics as the dense path on the densified data
    dense = StreamScaler(with_mean=False).fit(X, sample_weight=w)
    np.testing.assert_allclose(ours.mean_, dense.mean_, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(ours.var_, dense.var_, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(ours.stats_.count, dense.stats_.count)
    np.testing.assert_array_equal(ours.stats_.min, dense.stats_.min)
    np.testing.assert_array_equal(ours.stats_.max, dense.stats_.max)


def test_sparse_partial_fit_in_batches_and_mixed_with_dense(rng):
    X = sparse_data(rng, n=400)
    ours = StreamScaler(with_mean=False)
    for i, part in enumerate(np.array_split(X, 5)):
        ours.partial_fit(sp.csr_array(part) if i % 2 else part)  # sparse, dense, sparse, ...
    ref = StandardScaler(with_mean=False).fit(X)
    np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-13)
    np.testing.assert_allclose(ours.var_, ref.var_, rtol=1e-12)
    np.testing.assert_array_equal(ours.n_samples_seen_, ref.n_samples_seen_)


def test_sparse_statistics_are_exact_far_from_zero(rng):
    """Stored values near 1e9 among implicit zeros: the variance (about 2.5e17) is within
    1e-13 of the exact (fractions) one, stored values kept apart from the zeros."""
    x = np.where(rng.random(2000) < 0.5, 1e9 + rng.normal(0, 1, 2000), 0.0)
    scaler = StreamScaler(with_mean=False).fit(sp.csc_matrix(x[:, None]))
    n, mean, sums = exact_central_moments(x)
    assert scaler.n_samples_seen_ == 2000
    assert abs(scaler.mean_[0] - float(mean)) <= 1e-15 * abs(float(mean))
    assert abs(scaler.var_[0] / float(sums[2] / n) - 1) <= 1e-13


def test_sparse_input_is_never_densified(rng):
    """A 2e6 x 50 matrix with 20 values a column would take 800 MB dense: its statistics
    come from the 1000 stored values and the implicit zeros."""
    n, k = 2_000_000, 50
    rows = rng.integers(0, n, 20 * k)
    cols = np.repeat(np.arange(k), 20)
    M = sp.csc_matrix((rng.normal(5, 1, 20 * k), (rows, cols)), shape=(n, k))
    scaler = StreamScaler(with_mean=False).fit(M)
    ref = StandardScaler(with_mean=False).fit(M)
    np.testing.assert_allclose(scaler.var_, ref.var_, rtol=1e-12)
    assert scaler.n_samples_seen_ == n


def test_sparse_with_mean_is_scikit_learns_value_error(rng):
    M = sp.csr_matrix(sparse_data(rng))
    with pytest.raises(ValueError) as theirs:
        StandardScaler().fit(M)
    for call in (lambda: StreamScaler().fit(M), lambda: StreamScaler().partial_fit(M)):
        with pytest.raises(ValueError) as ours:
            call()
        assert str(ours.value) == str(theirs.value)
    fitted = StreamScaler().fit(M.toarray())
    for method in (fitted.transform, fitted.inverse_transform):
        with pytest.raises(ValueError, match="Cannot center sparse matrices"):
            method(M)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_transform_keeps_the_format_and_scales_stored_values(fmt, dtype, rng):
    X = np.nan_to_num(sparse_data(rng)).astype(dtype)
    M = sp.csr_matrix(X).asformat(fmt)
    scaler = StreamScaler(with_mean=False).fit(M)
    Z = scaler.transform(M)
    assert Z.format == fmt and Z.dtype == dtype and Z.nnz == M.nnz
    assert Z is not M and np.array_equal(M.toarray(), X)  # copy=True leaves M as it was
    want = (X.astype(np.float64) / scaler.scale_).astype(dtype)
    np.testing.assert_array_equal(Z.toarray(), want)  # rounded once, as the dense path
    np.testing.assert_array_equal(Z.toarray(), scaler.transform(X))
    ref = StandardScaler(with_mean=False).fit(M)
    np.testing.assert_allclose(Z.toarray(), ref.transform(M).toarray(),
                               rtol=1e-12 if dtype == np.float64 else 1e-6)
    back = scaler.inverse_transform(Z)
    assert back.format == fmt
    np.testing.assert_allclose(back.toarray(), X, rtol=1e-14 if dtype == np.float64 else 1e-6)
    in_place = scaler.transform(M, copy=False)
    assert in_place is M and np.array_equal(M.toarray(), Z.toarray())


# ---------------------------------------------------------------- StreamScaler: dense
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_copy_false_transforms_in_place_with_the_same_values(dtype, rng):
    X = rng.normal(2, 3, (50, 4)).astype(dtype)
    scaler = StreamScaler().fit(X)
    want = scaler.transform(X)  # copy=True: X untouched
    assert want.dtype == dtype
    original = X.copy()
    out = scaler.transform(X, copy=False)
    assert out is X
    np.testing.assert_array_equal(X, want)
    back = scaler.inverse_transform(X, copy=False)
    assert back is X
    np.testing.assert_array_equal(back, scaler.inverse_transform(want))
    tol = {np.float64: 1e-14, np.float32: 1e-6, np.float16: 2e-3}[dtype]
    np.testing.assert_allclose(back.astype(np.float64), original.astype(np.float64), rtol=tol,
                               atol=10 * tol)
    assert StreamScaler(copy=False).fit(X).transform(X) is X


def test_copy_false_on_arrays_it_cannot_write_returns_a_new_array(rng):
    ints = rng.integers(0, 9, (10, 2))
    scaler = StreamScaler().fit(ints)
    out = scaler.transform(ints, copy=False)
    assert out is not ints and out.dtype == np.float64 and ints.dtype.kind == "i"
    frozen = rng.normal(size=(10, 2))
    frozen.flags.writeable = False
    out = scaler.transform(frozen, copy=False)
    assert out is not frozen
    np.testing.assert_array_equal(out, scaler.transform(frozen.copy()))


def test_float16_in_float16_out_rounded_once(rng):
    X = rng.normal(100, 5, (40, 3)).astype(np.float16)
    scaler = StreamScaler().fit(X)
    X64 = X.astype(np.float64)
    np.testing.assert_allclose(scaler.mean_, X64.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(scaler.var_, X64.var(axis=0), rtol=1e-12)
    Z = scaler.transform(X)
    assert Z.dtype == np.float16
    np.testing.assert_array_equal(Z, ((X64 - scaler.mean_) / scaler.scale_).astype(np.float16))
    assert scaler.inverse_transform(Z).dtype == np.float16
    assert StreamScaler().fit(X.astype(np.float32)).transform(X.astype(np.float32)).dtype \
        == np.float32


@pytest.mark.parametrize("first,second", [(np.float64, np.float32), (np.int64, np.float64),
                                          (np.float16, np.int32)])
def test_partial_fit_with_batches_of_different_dtypes(first, second, rng):
    X = np.round(rng.normal(5, 3, (60, 3)), 2)
    a, b = X[:25].astype(first), X[25:].astype(second)
    ours = StreamScaler().partial_fit(a).partial_fit(b)
    ref = StandardScaler().partial_fit(a).partial_fit(b)
    whole = np.vstack([a.astype(np.float64), b.astype(np.float64)])
    np.testing.assert_allclose(ours.mean_, whole.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(ours.var_, whole.var(axis=0), rtol=1e-13)
    np.testing.assert_allclose(ours.var_, ref.var_, rtol=1e-10)
    assert ours.n_samples_seen_ == ref.n_samples_seen_ == 60


# ---------------------------------------------------------------- skew / kurtosis, bias=False
@pytest.mark.parametrize("n", [4, 5, 9, 1000])
def test_unbiased_skew_and_kurtosis_match_scipy(n, rng):
    x = rng.gamma(2.0, 3.0, n) + 1e6  # skewed and offset
    fs = sn.FeatureStats(moments=4)
    for part in np.array_split(x, 3):
        fs.update(pa.table({"x": part}))
    for fisher in (True, False):
        want = scipy.stats.kurtosis(x, bias=False, fisher=fisher)
        assert fs.kurtosis(fisher=fisher, bias=False)[0] == pytest.approx(want, rel=1e-9)
    assert fs.skew(bias=False)[0] == pytest.approx(scipy.stats.skew(x, bias=False), rel=1e-9)
    series = pd.Series(x)
    assert fs.skew(bias=False)[0] == pytest.approx(series.skew(), rel=1e-9)
    assert fs.kurtosis(bias=False)[0] == pytest.approx(series.kurt(), rel=1e-9)
    # the biased ones are unchanged by the new keyword
    np.testing.assert_array_equal(fs.skew(), fs.skew(bias=True))


def test_unbiased_estimators_are_nan_for_too_few_values():
    """n < 3 (skew) and n < 4 (kurtosis) have no unbiased estimate: NaN, as pandas gives;
    scipy falls back to the biased value there (a difference the README states)."""
    for n in (1, 2, 3):
        x = [1.0, 2.0, 4.0][:n]
        fs = sn.FeatureStats(moments=4).update(pa.table({"x": x}))
        s, k = fs.skew(bias=False)[0], fs.kurtosis(bias=False)[0]
        assert math.isnan(s) == (n < 3) and math.isnan(k)
        assert math.isnan(pd.Series(x).skew()) == (n < 3) and math.isnan(pd.Series(x).kurt())
        if n == 3:
            assert s == pytest.approx(scipy.stats.skew(x, bias=False), rel=1e-12)
    empty = sn.FeatureStats(["x"], moments=4).update(pa.table({"x": pa.array([], pa.float64())}))
    assert math.isnan(empty.skew(bias=False)[0]) and math.isnan(empty.kurtosis(bias=False)[0])


def test_unbiased_estimators_per_key_and_weighted(rng):
    x = rng.exponential(2.0, 60)
    keys = np.array(["a", "b", "c"])[rng.integers(0, 3, 60)]
    grouped = sn.FeatureStats(by="k", moments=4).update(pa.table({"k": keys, "x": x}))
    for g, key in enumerate(grouped.keys.column("k").to_pylist()):
        values = x[keys == key]
        assert grouped.skew(bias=False)[g, 0] == pytest.approx(
            scipy.stats.skew(values, bias=False), rel=1e-10)
        assert grouped.kurtosis(bias=False)[g, 0] == pytest.approx(
            scipy.stats.kurtosis(values, bias=False), rel=1e-10)
    w = rng.integers(1, 4, 60)
    weighted = sn.FeatureStats(moments=4).update(pa.table({"x": x, "w": w}), weights="w")
    repeated = np.repeat(x, w)
    assert weighted.skew(bias=False)[0] == pytest.approx(
        scipy.stats.skew(repeated, bias=False), rel=1e-10)
    assert weighted.kurtosis(bias=False)[0] == pytest.approx(
        scipy.stats.kurtosis(repeated, bias=False), rel=1e-10)


# ---------------------------------------------------------------- a - b
def fit(x: np.ndarray, moments: int = 2, **columns: np.ndarray) -> sn.FeatureStats:
    return sn.FeatureStats(moments=moments).update(pa.table({"x": x, **columns}))


def assert_subtraction_accurate(got: sn.FeatureStats, rest: np.ndarray, merged: sn.FeatureStats,
                                part: np.ndarray) -> None:
    """The accuracy the README states for ``merged - part`` against the exact statistics of
    ``rest``, with ``r = n(merged) / n(rest)``: count exact; |error of m2| <= 16 eps r
    m2(merged), so m2 keeps about -log10(eps r m2(merged) / m2(rest)) digits; |error of
    mean| <= 16 eps (|mean(rest)| + r max|x - x0|), x0 the merged state's shift (its first
    value)."""
    _, mean, sums = exact_central_moments(rest)
    assert got.count[0] == len(rest)
    r = merged.count[0] / len(rest)
    assert abs(got.m2[0] - float(sums[2])) <= 16 * EPS * r * merged.m2[0]
    assert got.m2[0] >= 0
    x = np.concatenate([rest, part])
    bound = 16 * EPS * (abs(float(mean)) + r * np.max(np.abs(x - rest[0])))
    assert abs(got.mean[0] - float(mean)) <= bound


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=40), st.data(),
       st.sampled_from([0.0, 1e9, -3e12]))
def test_subtraction_law_against_a_fresh_fit(values, data, offset):
    x = np.array(values) + offset
    cut = data.draw(st.integers(1, len(x) - 1))
    rest, part = x[:cut], x[cut:]
    merged = fit(x)
    got = merged - fit(part)
    assert_subtraction_accurate(got, rest, merged, part)


def test_subtraction_on_random_data_and_higher_moments(rng):
    """Identically distributed parts: m2 relative error about eps n / n_rest (measured
    2e-16 for a half, 1e-13 for 0.1%)."""
    for rest_n, part_n in [(500, 500), (100, 9900), (10, 9990)]:
        x = rng.normal(5.0, 2.0, rest_n + part_n)
        rest, part = x[:rest_n], x[rest_n:]
        merged = fit(x, moments=4)
        got = merged - fit(part, moments=4)
        assert_subtraction_accurate(got, rest, merged, part)
        fresh = exact_moments(rest)
        rel = 64 * EPS * len(x) / rest_n
        assert abs(got.m2[0] / fresh["m2"] - 1) <= rel
        assert got.skew()[0] == pytest.approx(fresh["skew"], abs=1e4 * rel)
        assert got.kurtosis()[0] == pytest.approx(fresh["kurt"], abs=1e4 * rel)


def test_subtraction_adversarial_cancellation(rng):
    """What subtraction cannot do: when the removed part holds nearly all of m2, the
    remainder's m2 is recovered only to about eps * m2(merged) (absolute)."""
    rest = 1e9 + rng.normal(0, 1, 20)
    part = 1e9 + 1e4 + rng.normal(0, 1, 980)  # far from the rest: m2(merged)/m2(rest) ~ 5e7
    x = np.concatenate([rest, part])
    merged = fit(x)
    got = merged - fit(part)
    assert_subtraction_accurate(got, rest, merged, part)
    _, _, sums = exact_central_moments(rest)
    assert merged.m2[0] / float(sums[2]) > 1e7
    # tiny remainder spread: m2(rest) = 5e-17 under m2(merged) ~ 1e3; the result may be
    # pure rounding noise, but never negative and within the absolute bound
    rest = np.array([1.0, 1.0 + 1e-8])
    part = rng.normal(0, 1, 1000)
    merged = fit(np.concatenate([rest, part]))
    got = merged - fit(part)
    assert_subtraction_accurate(got, rest, merged, part)


def test_sliding_window_stays_accurate(rng):
    """River's use: add the newest batch, subtract the oldest, 200 times; the window's
    statistics stay within 1e-12 of a fresh fit of the window."""
    batches = [rng.normal(1e6 + i, 1 + i % 5, 50) for i in range(210)]
    window = fit(np.concatenate(batches[:10]))
    for i in range(10, 210):
        window = (window + fit(batches[i])) - fit(batches[i - 10])
    fresh = fit(np.concatenate(batches[200:]))
    assert window.count[0] == fresh.count[0] == 500
    assert window.mean[0] == pytest.approx(fresh.mean[0], rel=1e-14)
    assert window.var()[0] == pytest.approx(fresh.var()[0], rel=1e-12)


def test_subtraction_counts_nulls_min_max_weights_and_keys(rng):
    x = rng.normal(0, 1, 100)
    table = pa.table({"x": pa.array(x, mask=rng.random(100) < 0.1),
                      "y": np.where(rng.random(100) < 0.1, np.nan, x * 2)})
    merged = sn.FeatureStats().update(table)
    part = sn.FeatureStats().update(table.slice(60))
    got = merged - part
    fresh = sn.FeatureStats().update(table.slice(0, 60))
    for name in ("count", "null_count", "nan_count", "inf_count"):
        np.testing.assert_array_equal(getattr(got, name), getattr(fresh, name))
    np.testing.assert_allclose(got.var(), fresh.var(), rtol=1e-13)
    # min/max cannot be taken back: kept as outer bounds of what remains
    assert np.all(got.min <= fresh.min) and np.all(got.max >= fresh.max)
    np.testing.assert_array_equal(got.min, merged.min)
    emptied = merged - merged
    assert emptied.count.tolist() == [0, 0]
    assert np.isnan(emptied.mean).all() and np.isnan(emptied.min).all()
    refit = emptied + fresh  # an emptied state merges like a new one
    np.testing.assert_allclose(refit.var(), fresh.var(), rtol=1e-15)
    assert refit.min.tolist() == fresh.min.tolist()
    assert (merged - sn.FeatureStats()) == merged  # nothing to remove
    # weights: the remainder of a weighted state
    w = rng.integers(0, 4, 100)
    weighted = sn.FeatureStats().update(pa.table({"x": x, "w": w}), weights="w")
    tail = sn.FeatureStats().update(pa.table({"x": x[70:], "w": w[70:]}), weights="w")
    head = sn.FeatureStats().update(pa.table({"x": x[:70], "w": w[:70]}), weights="w")
    got = weighted - tail
    assert got.count[0] == head.count[0]
    assert got.var()[0] == pytest.approx(head.var()[0], rel=1e-13)
    # weights summed in another order differ in the last bit: the same total leaves nothing
    a = sn.FeatureStats().update(pa.table({"x": [1.0, 2.0, 3.0], "w": [0.1, 0.2, 0.3]}),
                                 weights="w")
    b = sn.FeatureStats().update(pa.table({"x": [3.0, 2.0, 1.0], "w": [0.3, 0.2, 0.1]}),
                                 weights="w")
    assert a.count[0] != b.count[0]
    assert (a - b).count.tolist() == [0.0] and math.isnan((a - b).mean[0])
    # per key: the keys of b are found in a
    keys = np.array(["a", "b", "c"])[rng.integers(0, 3, 100)]
    grouped = sn.FeatureStats(by="k").update(pa.table({"k": keys, "x": x}))
    tail = sn.FeatureStats(by="k").update(pa.table({"k": keys[50:], "x": x[50:]}))
    head = sn.FeatureStats(by="k").update(pa.table({"k": keys[:50], "x": x[:50]}))
    got = grouped - tail
    order = [head.group_index(k) for k in got.keys.column("k").to_pylist()]
    np.testing.assert_array_equal(got.count, head.count[order])
    np.testing.assert_allclose(got.var(), head.var()[order], rtol=1e-13)


def test_subtraction_refuses_what_was_not_merged(rng):
    small = fit(np.arange(3.0))
    large = fit(np.arange(10.0))
    with pytest.raises(ValueError, match=r"column 'x' holds 10 values .* more than the 3 here"):
        small - large
    with pytest.raises(ValueError, match="nulls"):
        small - sn.FeatureStats().update(pa.table({"x": pa.array([1.0, None])}))
    with pytest.raises(ValueError, match="NaN"):
        small - fit(np.array([1.0, np.nan]))
    with pytest.raises(sn.errors.SchemaError, match="same columns"):
        large - sn.FeatureStats().update(pa.table({"z": [1.0]}))
    with pytest.raises(ValueError, match="moments"):
        fit(np.arange(10.0), moments=4) - small
    with pytest.raises(ValueError, match="weighted"):
        large - sn.FeatureStats().update(pa.table({"x": [1.0], "w": [1]}), weights="w")
    grouped = sn.FeatureStats(by="k").update(pa.table({"k": ["a"], "x": [1.0]}))
    with pytest.raises(ValueError, match=r"key \('b',\) is not in these statistics"):
        grouped - sn.FeatureStats(by="k").update(pa.table({"k": ["b"], "x": [1.0]}))
    with_inf = sn.FeatureStats().update(pa.table({"x": [1.0, 2.0, np.inf]}))
    with pytest.raises(ValueError, match="took ±inf as values.*inf='skip'"):
        with_inf - sn.FeatureStats().update(pa.table({"x": [np.inf]}))
    assert math.isnan((with_inf - fit(np.array([1.0]))).var()[0])  # the rest still holds inf
    skipped = sn.FeatureStats(inf="skip").update(pa.table({"x": [1.0, 2.0, 4.0, np.inf]}))
    rest = skipped - sn.FeatureStats(inf="skip").update(pa.table({"x": [np.inf, 4.0]}))
    assert rest.var().tolist() == [0.25] and rest.inf_count.tolist() == [0]
    before = small.copy()
    with pytest.raises(ValueError):
        small.subtract(large)
    assert small == before  # a refused subtraction changes nothing
    with pytest.raises(ValueError, match="values"):
        sn.FeatureStats() - small


# ---------------------------------------------------------------- bool columns named explicitly
def test_named_bool_columns_count_as_zero_one_like_pandas(rng):
    flags = rng.random(500) < 0.3
    mask = rng.random(500) < 0.1
    table = pa.table({"flag": pa.array(flags, mask=mask), "x": rng.normal(size=500)})
    assert sn.FeatureStats().update(table).columns == ["x"]  # automatic selection skips bool
    fs = sn.FeatureStats(["flag", "x"])
    for batch in table.to_batches(max_chunksize=64):
        fs.update(batch)
    series = table.column("flag").to_pandas(types_mapper=pd.ArrowDtype)
    assert fs.count[0] == series.count() and fs.null_count[0] == mask.sum()
    assert fs.mean[0] == pytest.approx(series.astype(float).mean(), rel=1e-15)
    assert fs.var(ddof=1)[0] == pytest.approx(series.astype(float).var(), rel=1e-14)
    assert (fs.min[0], fs.max[0]) == (0.0, 1.0)
    valid = flags[~mask].astype(float)
    for kind in ({"moments": 4}, {"by": "k"}):
        keyed = table.append_column("k", pa.array(np.zeros(500, dtype=np.int64)))
        other = sn.FeatureStats(["flag"], **kind).update(keyed)
        assert np.ravel(other.mean)[0] == pytest.approx(valid.mean(), rel=1e-15)
    assert sn.feature_stats(table, columns=["flag"]).mean[0] == pytest.approx(valid.mean())
    empty = sn.FeatureStats(["flag"]).update(table.schema.empty_table())
    assert empty.columns == ["flag"] and empty.count.tolist() == [0]


def test_named_bool_columns_on_dask():
    dask = pytest.importorskip("dask")
    import dask.dataframe as dd

    import streamnorm.dask as snd

    frame = dd.from_pandas(pd.DataFrame({"flag": [True, False, True, True], "x": [1.0] * 4}),
                           npartitions=2)
    with dask.config.set(scheduler="synchronous"):
        assert snd.feature_stats(frame, columns=["flag"]).mean.tolist() == [0.75]
        assert snd.feature_stats(frame).columns == ["x"]


def test_normalizing_a_bool_column_is_refused_with_the_way_out(tmp_path):
    table = pa.table({"flag": [True, False, True], "x": [1.0, 2.0, 4.0]})
    with pytest.raises(sn.errors.SchemaError,
                       match="column 'flag' has type bool.*cast it to int8 or float"):
        sn.Normalizer(columns=["flag"]).fit(table)
    import pyarrow.parquet as pq
    pq.write_table(table, tmp_path / "in.parquet")
    proc = call_cli("stats", "in.parquet", "-c", "flag", cwd=tmp_path)
    assert_ok(proc)
    assert "0.6666666" in proc.stdout
    proc = call_cli("normalize", "in.parquet", "out.parquet", "-c", "flag", cwd=tmp_path)
    assert_bad_input(proc, "flag", "bool", absent=[tmp_path / "out.parquet"])


# ---------------------------------------------------------------- RunningStats buffers
def test_running_stats_named_columns_have_buffers_before_the_first_batch():
    rs = sn.RunningStats(momentum=0.1, columns=["a", "b"])
    assert rs.columns == ["a", "b"]
    assert rs.mean.tolist() == [0.0, 0.0] and rs.var().tolist() == [1.0, 1.0]
    assert rs.std().tolist() == [1.0, 1.0] and rs.num_batches_tracked == 0
    assert rs.to_arrow().column("running_var").to_pylist() == [1.0, 1.0]
    rs.update(pa.table({"a": [1.0, 3.0], "b": [0.0, 0.0], "c": [5.0, 6.0]}))
    assert rs.columns == ["a", "b"]
    assert rs.mean.tolist() == pytest.approx([0.2, 0.0]) and rs.var().tolist() == [1.1, 0.9]
    unnamed = sn.RunningStats()
    assert unnamed.columns == [] and unnamed.mean.shape == (0,)


# ---------------------------------------------------------------- deliberate differences
def test_negative_sample_weights_are_refused(rng):
    X = rng.normal(size=(5, 2))
    w = np.array([1.0, -1.0, 2.0, 1.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # its sqrt of a negative variance
        StandardScaler().fit(X, sample_weight=w)  # scikit-learn takes them
    with pytest.raises(ValueError, match="[Nn]egative"):
        StreamScaler().fit(X, sample_weight=w)
    with pytest.raises(ValueError, match="frequency weights must be finite and >= 0"):
        sn.FeatureStats().update(pa.table({"x": X[:, 0], "w": w}), weights="w")


def test_negative_eps_is_refused():
    """(``--eps -1`` is exit 2 in tests/test_cli.py.)"""
    with pytest.raises(ValueError, match="eps must be a non-negative number"):
        sn.Normalizer(eps=-1e-5)
    with pytest.raises(ValueError, match="eps must be a non-negative number"):
        sn.Normalizer("layer", eps=-1e-5)
    fs = sn.FeatureStats().update(pa.table({"x": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="eps must be a non-negative number"):
        fs.scale(eps=-1e-5)
    assert fs.scale(eps=0.0).tolist() == [0.5]


def test_running_stats_skips_a_one_row_batch():
    """torch's BatchNorm1d refuses a one-row batch in training; RunningStats keeps the
    running values of such a column for that batch and counts the batch."""
    rs = sn.RunningStats(momentum=0.5, columns=["x"]).update(pa.table({"x": [1.0, 3.0]}))
    before = (rs.mean.tolist(), rs.var().tolist(), rs.updates.tolist())
    rs.update(pa.table({"x": [100.0]}))
    assert (rs.mean.tolist(), rs.var().tolist(), rs.updates.tolist()) == before
    assert rs.num_batches_tracked == 2


def test_near_constant_skew_is_exact_where_scipy_gives_nan():
    x = 1e9 + np.array([0, 0, 1, 0, 0, 3]) * np.spacing(1e9)  # a spread of a few ulps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert math.isnan(scipy.stats.skew(x))  # "precision loss": scipy gives up
    fs = sn.FeatureStats(moments=4).update(pa.table({"x": x}))
    want = exact_moments(x)
    assert fs.skew()[0] == pytest.approx(want["skew"], rel=1e-12)
    assert fs.kurtosis()[0] == pytest.approx(want["kurt"], rel=1e-12)
    assert fs.skew()[0] == pytest.approx(scipy.stats.skew(x - 1e9), rel=1e-12)
