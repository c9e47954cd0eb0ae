"""Exports: FeatureStats.to_sklearn, Normalizer.to_sklearn / to_polars / to_torch.

The torch tests need torch, which CI does not install: they skip without it. Run them with a
Python that has torch and streamnorm's dependencies, e.g.
``PYTHONPATH=$PWD /work/torchvenv/bin/python -m pytest tests/test_exports.py``.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

import streamnorm as sn

EPS = np.finfo(np.float64).eps


@pytest.fixture
def data(rng) -> pa.Table:
    n = 120
    a = rng.normal(1e6, 3.0, n)              # offset
    a[::11] = np.nan
    b = rng.lognormal(0, 2, n).astype(np.float32)
    i = rng.integers(-5, 50, n)
    return pa.table({
        "a": a,
        "b": pa.array(b, mask=np.arange(n) % 13 == 0),  # nulls in a float32 column
        "i": i,
        "const": np.full(n, 4.5),
        "tag": [f"t{k % 3}" for k in range(n)],
    })


NUMERIC = ["a", "b", "i", "const"]


def frame(t: pa.Table, names: list[str]) -> pd.DataFrame:
    """float64 pandas frame, nulls as NaN (what scikit-learn takes)."""
    return pd.DataFrame({n: t[n].to_numpy(zero_copy_only=False).astype(np.float64)
                         for n in names})


def values(t: pa.Table | pl.DataFrame, name: str) -> np.ndarray:
    column = t[name]
    if isinstance(column, pl.Series):
        return column.cast(pl.Float64).fill_null(np.nan).to_numpy()
    return column.to_numpy(zero_copy_only=False).astype(np.float64)


# --------------------------------------------------------------------------- scikit-learn


def test_feature_stats_to_sklearn_matches_sklearn_fit(data) -> None:
    fs = sn.FeatureStats(NUMERIC).update(data.to_batches(max_chunksize=17))
    ours = fs.to_sklearn()
    X = frame(data, NUMERIC)
    theirs = StandardScaler().fit(X)
    assert isinstance(ours, StandardScaler)
    np.testing.assert_allclose(ours.mean_, theirs.mean_, rtol=1e-14)  # sklearn: nansum
    np.testing.assert_allclose(ours.var_, theirs.var_, rtol=1e-9)  # sklearn: one pass, offset
    np.testing.assert_allclose(ours.scale_, theirs.scale_, rtol=1e-9)
    assert ours.scale_[NUMERIC.index("const")] == 1.0 == theirs.scale_[NUMERIC.index("const")]
    np.testing.assert_array_equal(ours.n_samples_seen_, theirs.n_samples_seen_)
    assert ours.n_features_in_ == theirs.n_features_in_ == 4
    np.testing.assert_array_equal(ours.feature_names_in_, theirs.feature_names_in_)
    got = ours.transform(X)
    np.testing.assert_allclose(got, theirs.transform(X), rtol=1e-8, atol=1e-9)
    # and equals streamnorm's own normalization (same mean and scale: to rounding)
    mine = sn.Normalizer.from_stats(fs).transform(data)
    for j, name in enumerate(NUMERIC):
        want = values(mine, name)
        tol = 4 * EPS * (np.abs(X[name].to_numpy()) / ours.scale_[j] + np.abs(want))
        assert np.array_equal(np.isnan(got[:, j]), np.isnan(want))
        ok = ~np.isnan(want)
        scaled = 1 if name == "b" else 0  # b's output is float32: rounded once more
        assert np.all(np.abs(got[ok, j] - want[ok])
                      <= tol[ok] + scaled * np.spacing(np.abs(want[ok]).astype(np.float32)))


def test_feature_stats_to_sklearn_equal_counts_give_an_int(rng) -> None:
    X = rng.normal(size=(30, 2))
    ours = sn.FeatureStats().update(pa.table({"x": X[:, 0], "y": X[:, 1]})).to_sklearn()
    assert ours.n_samples_seen_ == 30 and isinstance(ours.n_samples_seen_, int)
    np.testing.assert_allclose(ours.transform(pd.DataFrame(X, columns=["x", "y"])),
                               StandardScaler().fit_transform(X), rtol=1e-12, atol=1e-14)


def test_grouped_stats_refuse_to_sklearn() -> None:
    fs = sn.FeatureStats(by="k").update(pa.table({"k": [1, 2], "x": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="by="):
        fs.to_sklearn()


def test_normalizer_to_sklearn(data) -> None:
    X = frame(data, NUMERIC)
    minmax = sn.Normalizer("minmax", columns=NUMERIC, feature_range=(-2, 3)).fit(data)
    ours, theirs = minmax.to_sklearn(), MinMaxScaler(feature_range=(-2, 3)).fit(X)
    for attr in ("data_min_", "data_max_", "data_range_", "scale_", "min_"):
        np.testing.assert_array_equal(getattr(ours, attr), getattr(theirs, attr))
    np.testing.assert_array_equal(ours.n_samples_seen_, theirs.n_samples_seen_)
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))
    batch = sn.Normalizer(columns=["a", "i"], eps=0.5, ddof=1).fit(data)
    scaler = batch.to_sklearn()
    want = batch.transform(data)
    got = scaler.transform(frame(data, ["a", "i"]))
    for j, name in enumerate(["a", "i"]):
        np.testing.assert_allclose(got[:, j], values(want, name), rtol=1e-14, atol=1e-14)
    with pytest.raises(ValueError, match="per row"):
        sn.Normalizer("layer").to_sklearn()


@pytest.mark.parametrize("quantile_range", [(25.0, 75.0), (10.0, 90.0)])
def test_robust_normalizer_to_sklearn_is_a_fitted_robust_scaler(data, quantile_range) -> None:
    X = frame(data, NUMERIC)  # 120 rows: the sketch is exact, as numpy's quantiles
    norm = sn.Normalizer("robust", columns=NUMERIC, quantile_range=quantile_range).fit(data)
    ours, theirs = norm.to_sklearn(), RobustScaler(quantile_range=quantile_range).fit(X)
    assert isinstance(ours, RobustScaler) and ours.quantile_range == quantile_range
    np.testing.assert_allclose(ours.center_, theirs.center_, rtol=4 * EPS, atol=0)
    np.testing.assert_allclose(ours.scale_, theirs.scale_, rtol=4 * EPS, atol=0)
    assert ours.scale_[NUMERIC.index("const")] == 1.0  # a zero range scales by 1
    got, want = ours.transform(X), norm.transform(data)
    for j, name in enumerate(NUMERIC):
        np.testing.assert_allclose(got[:, j], values(want, name), rtol=1e-6, atol=1e-12)


# --------------------------------------------------------------------------- polars


def assert_frames_match(got: pl.DataFrame, want: pl.DataFrame, names: list[str],
                        ulps: float = 4) -> None:
    """Same schema; same nulls and NaN; values within ``ulps`` units in the last place of
    ``max(|value|, 1)`` in the output's dtype (polars may divide by a constant as a product
    with its reciprocal, and sums the row statistics in its own order)."""
    assert got.schema == want.schema
    for name in names:
        g, w = got[name], want[name]
        assert g.is_null().to_list() == w.is_null().to_list(), name
        gv, wv = values(got, name), values(want, name)
        assert np.array_equal(np.isnan(gv), np.isnan(wv)), name
        ok = ~np.isnan(wv)
        dtype = np.float32 if w.dtype == pl.Float32 else np.float64
        spacing = np.spacing(np.maximum(np.abs(wv[ok]), 1.0).astype(dtype)).astype(np.float64)
        assert np.all(np.abs(gv[ok] - wv[ok]) <= ulps * spacing + 0), name


@pytest.mark.parametrize("mode, options", [
    ("batch", {}), ("batch", {"eps": 0.25, "ddof": 1}), ("minmax", {}),
    ("minmax", {"feature_range": (-1, 1)}), ("robust", {}),
    ("robust", {"quantile_range": (10, 90)}),
])
def test_to_polars_per_feature_equals_transform(data, mode, options) -> None:
    df = pl.from_arrow(data)
    norm = sn.Normalizer(mode, **options).fit(data)
    want = pl.from_arrow(norm.transform(data))
    got = df.with_columns(norm.to_polars())
    assert_frames_match(got, want, NUMERIC)
    assert got.schema["b"] == pl.Float32 and got.schema["i"] == pl.Float64
    lazy = df.lazy().with_columns(norm.to_polars()).collect()
    assert_frames_match(lazy, want, NUMERIC)
    with_schema = df.with_columns(norm.to_polars(df.schema))  # output types from the schema
    assert_frames_match(with_schema, want, NUMERIC)


@pytest.mark.parametrize("mode", ["layer", "rms"])
@pytest.mark.parametrize("nan", ["skip", "propagate"])
def test_to_polars_per_row_equals_transform(data, mode, nan) -> None:
    extra = pa.table({"z": [0.0, 0.0] + [1.0] * (len(data) - 2)})  # a row of zeros: scale 1
    t = pa.table({"a": pa.array(np.r_[0.0, np.nan, data["a"].to_numpy()[2:] - 1e6]),
                  "b": data["b"], "i": data["i"], "z": extra["z"], "tag": data["tag"]})
    df = pl.from_arrow(t)
    norm = sn.Normalizer(mode, nan=nan, eps=0.0 if mode == "layer" else 1e-5)
    want = pl.from_arrow(norm.transform(t))
    got = df.with_columns(norm.to_polars(df.schema))
    assert_frames_match(got, want, ["a", "b", "i", "z"], ulps=16)
    chosen = sn.Normalizer(mode, columns=["i", "a"], nan=nan)
    assert_frames_match(df.with_columns(chosen.to_polars()),
                        pl.from_arrow(chosen.transform(t)), ["a", "i"], ulps=16)


def test_to_polars_refusals() -> None:
    with pytest.raises(ValueError, match="needs the data's schema"):
        sn.Normalizer("layer").to_polars()
    vectors = pa.table({"v": pa.array([[1.0, 2.0]], pa.list_(pa.float64(), 2)), "x": [1.0]})
    with pytest.raises(ValueError, match=r"vector column\(s\) \['v'\]"):
        sn.Normalizer("rms").to_polars(vectors.schema)
    with pytest.raises(RuntimeError, match="not fitted"):
        sn.Normalizer("minmax").to_polars()


def test_missing_optional_packages_name_the_extra(monkeypatch, data) -> None:
    norm = sn.Normalizer().fit(data)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(ImportError, match=r"streamnorm\[torch\]"):
        norm.to_torch()
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(ImportError, match=r"streamnorm\[polars\]"):
        norm.to_polars()
    monkeypatch.setitem(sys.modules, "sklearn.preprocessing", None)
    with pytest.raises(ImportError, match=r"streamnorm\[sklearn\]"):
        norm.stats.to_sklearn()


# --------------------------------------------------------------------------- torch


def tensor_of(torch, t: pa.Table, names: list[str]):
    return torch.tensor(np.column_stack([values(t, n) for n in names]))


@pytest.mark.parametrize("mode", ["batch", "minmax", "robust", "layer", "rms"])
def test_to_torch_equals_transform(data, mode) -> None:
    torch = pytest.importorskip("torch")
    t = data.drop_columns(["b"]).append_column("b", pa.array(values(data, "b")))  # float64
    norm = sn.Normalizer(mode).fit(t)
    module = norm.to_torch(t.schema)
    assert isinstance(module, torch.nn.Module)
    assert module.columns == ["a", "i", "const", "b"]  # the schema's order
    x = tensor_of(torch, t, module.columns)
    got = module(x)
    assert got.dtype == torch.float64
    want = norm.transform(t)
    for j, name in enumerate(module.columns):
        w = values(want, name)
        if mode in ("batch", "minmax", "robust"):  # the same float64 operations: identical
            np.testing.assert_array_equal(got[:, j].numpy(), w)
        else:
            np.testing.assert_allclose(got[:, j].numpy(), w, rtol=1e-13, atol=1e-13)
    if mode in ("batch", "minmax"):
        c, sc = module.center.numpy(), module.scale.numpy()
        bound = 8 * EPS * (np.abs(got.numpy()) * sc + np.abs(c))  # y * scale + center
        diff = np.abs(module.inverse(got).numpy() - x.numpy())
        assert np.all(diff[~np.isnan(diff)] <= bound[~np.isnan(diff)])
        assert set(dict(module.named_buffers())) == {"center", "scale"}
    # float32 input: computed in float64, rounded once (what transform gives float32 columns)
    got32 = module(x.float())
    assert got32.dtype == torch.float32
    np.testing.assert_array_equal(got32.numpy(), module(x.float().double()).float().numpy())
    # moved to float32: computes in float32, to float32 rounding of the operands
    if mode in ("batch", "minmax"):
        center, scale = module.center.numpy(), module.scale.numpy()
    small = module.to(torch.float32)
    assert all(b.dtype == torch.float32 for b in small.buffers())
    if mode in ("batch", "minmax"):
        e32 = float(np.finfo(np.float32).eps)
        bound = 4 * e32 * ((np.abs(x.numpy()) + np.abs(center)) / scale + np.abs(got.numpy()))
        diff = np.abs(small(x.float()).numpy() - got.numpy())
        assert np.all(diff[~np.isnan(diff)] <= bound[~np.isnan(diff)])


def test_to_torch_nan_and_shape() -> None:
    torch = pytest.importorskip("torch")
    t = pa.table({"x": [1.0, 2.0, 3.0], "y": [0.0, 10.0, 20.0]})
    module = sn.Normalizer("minmax").fit(t).to_torch()
    out = module(torch.tensor([[np.nan, 20.0], [1.5, np.nan]]))
    assert torch.isnan(out[0, 0]) and out[0, 1] == 1.0 and out[1, 0] == 0.25
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        module(torch.zeros(3, 3))
    rows = sn.Normalizer("layer", nan="propagate").to_torch()
    assert rows.columns is None
    out = rows(torch.tensor([[1.0, np.nan, 3.0], [1.0, 2.0, 3.0]], dtype=torch.float64))
    assert torch.isnan(out[0]).all() and not torch.isnan(out[1]).any()
    skip = sn.Normalizer("layer", eps=0).to_torch()(torch.tensor([[1.0, np.nan, 3.0]]))
    assert skip[0, 0] == -1.0 and torch.isnan(skip[0, 1]) and skip[0, 2] == 1.0


def test_to_torch_moves_with_to(data) -> None:
    torch = pytest.importorskip("torch")
    module = sn.Normalizer().fit(data).to_torch()
    assert module.columns == NUMERIC
    state = module.state_dict()
    assert set(state) == {"center", "scale"} and state["center"].dtype == torch.float64
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        moved = module.to("cuda")
        assert moved.center.device.type == "cuda"
