"""Online normalization (``Normalizer(online=True)``, ``normalize --online``) against its
definition: batch ``i`` normalized with a fresh fit on batches ``0..i``.

Tolerances: the online state is the same Chan merge of the same batches as a fit on the
batches seen, so with the batching kept the outputs are bit-identical; against a fit on the
seen rows concatenated into one batch only the merge order differs, which moves the mean and
the scale by a few float64 ulps of the mean's magnitude. The output tolerance is therefore
``64 * eps64 * (1 + |mean| / scale) * (1 + |y|)`` per value (float32 outputs: one float32 ulp
more). Momentum is compared with a :class:`RunningStats` loop and numpy's formula, relative
1e-13.
"""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import assert_bad_input, assert_ok, assert_same_stats, call_cli, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

import streamnorm as sn
from streamnorm.cli.runner import main
from streamnorm.normalize.online import read_final_stats

EPS64 = np.finfo(np.float64).eps


# --------------------------------------------------------------------------- references


def cut(table: pa.Table, cuts: list[int]) -> list[pa.RecordBatch]:
    """``table`` as record batches cut at the given row positions (empty batches kept)."""
    edges = [0, *sorted(cuts), table.num_rows]
    return [table.slice(a, b - a).combine_chunks().to_batches()[0] if b > a
            else pa.RecordBatch.from_pylist([], schema=table.schema)
            for a, b in zip(edges, edges[1:])]


def seen_fit(batches: list[pa.RecordBatch], *, together: bool, **options: object) -> sn.Normalizer:
    """A fresh (non-online) fit on ``batches``: as they are, or concatenated into one batch."""
    table = pa.Table.from_batches(batches, schema=batches[0].schema)
    return sn.Normalizer(**options).fit(table.combine_chunks() if together else table)


def loop_of_fits(batches: list[pa.RecordBatch], *, together: bool = True,
                 **options: object) -> list[pa.RecordBatch]:
    """The definition: batch i normalized with a fresh fit on batches 0..i."""
    return [seen_fit(batches[: i + 1], together=together, **options).transform(batch)
            for i, batch in enumerate(batches)]


def values(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values with nulls as NaN, null mask) of a float column."""
    nulls = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    filled = column.fill_null(np.nan) if column.null_count else column
    return np.asarray(filled.to_numpy(zero_copy_only=False)), nulls


def assert_same_output(got: list[pa.RecordBatch], want: list[pa.RecordBatch],
                       stats: list[sn.FeatureStats] | None = None) -> None:
    """Equal batches: schemas, nulls and non-float columns exactly; floats within the module's
    tolerance (exactly when ``stats`` is None)."""
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.schema.equals(w.schema, check_metadata=False), (g.schema, w.schema)
        for name in g.schema.names:
            a, b = g.column(name), w.column(name)
            if not pa.types.is_floating(a.type):
                assert a.equals(b), (i, name, a, b)
                continue
            assert a.type == b.type
            (x, x_null), (y, y_null) = values(a), values(b)
            np.testing.assert_array_equal(x_null, y_null)
            if stats is None:
                np.testing.assert_array_equal(x, y)  # NaN equal to NaN
                continue
            j = stats[i].columns.index(name)
            mean, scale = abs(stats[i].mean[j]), stats[i].scale()[j]
            tol = 64 * EPS64 * (1 + mean / scale) * (1 + np.abs(y))
            if a.type == pa.float32():
                tol = tol + np.spacing(np.abs(y).astype(np.float32)).astype(np.float64)
            ok = (np.abs(x - y) <= tol) | (np.isnan(x) & np.isnan(y))
            assert ok.all(), (i, name, x[~ok], y[~ok], tol[~ok])


def assert_same_table(got: pa.Table, want: pa.Table) -> None:
    """Two tables with equal values (NaN equal to NaN), whatever their chunking and metadata."""
    assert_same_output(got.combine_chunks().to_batches(), want.combine_chunks().to_batches())


def running_loop(batches: list[pa.RecordBatch], running: sn.RunningStats, names: list[str],
                 eps: float = 0.0) -> list[dict[str, np.ndarray]]:
    """Momentum's definition: update the running statistics with the batch, then
    ``(x - running_mean) / sqrt(running_var + eps)`` (zero scale -> 1), in numpy."""
    out = []
    for batch in batches:
        running.update(batch)
        mapped = {}
        for name in names:
            j = running.columns.index(name)
            scale = np.sqrt(running.running_var[j] + eps)
            scale = 1.0 if scale == 0 else scale
            x = values(batch.column(name).cast(pa.float64()))[0]
            mapped[name] = (x - running.running_mean[j]) / scale
        out.append(mapped)
    return out


def sample_table(rng: np.random.Generator, n: int, offset: float = 0.0) -> pa.Table:
    """x: float64 with an offset, some nulls and a NaN; f: float32; k: int64; s: strings."""
    x = rng.normal(offset, 3.0, n)
    x[rng.random(n) < 0.05] = np.nan
    return pa.table({
        "x": pa.array(x, mask=rng.random(n) < 0.1),
        "f": pa.array(rng.normal(-2.0, 0.5, n).astype(np.float32)),
        "k": pa.array(rng.integers(-50, 50, n)),
        "s": pa.array([f"r{i}" for i in range(n)]),
    })


# --------------------------------------------------------------------------- the definition


rows = st.integers(1, 60)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=rows, offset=st.sampled_from([0.0, 1e6, -1e9]),
       spread=st.sampled_from([1e-3, 1.0, 1e4]), seed=st.integers(0, 2**32 - 1))
def test_online_equals_loop_of_fits(data: st.DataObject, n: int, offset: float, spread: float,
                                    seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(offset, spread, n)
    valid = rng.random(n) > 0.2
    table = pa.table({
        "x": pa.array(x, mask=~valid),
        "f": pa.array((rng.normal(0, spread, n) + offset / 1e3).astype(np.float32)),
        "k": pa.array(rng.integers(-5, 5, n), pa.int32()),
        "tag": pa.array(["t"] * n),
    })
    cuts = data.draw(st.lists(st.integers(0, n), max_size=6))
    batches = cut(table, cuts)
    got = list(sn.Normalizer(online=True).transform_batches(iter(batches)))
    # bit-identical to fits on the batches seen, batched the same way ...
    assert_same_output(got, loop_of_fits(batches, together=False))
    # ... and to fits on the rows seen as one batch, up to the merge order's rounding
    stats = [sn.feature_stats(pa.Table.from_batches(batches[: i + 1])) for i in range(len(batches))]
    assert_same_output(got, loop_of_fits(batches, together=True), stats)


def test_online_options_follow_the_batch_mode(rng: np.random.Generator) -> None:
    """columns=, eps, ddof, nan='propagate', float32 input: as the loop of fits with them."""
    table = sample_table(rng, 300, offset=1e5)
    batches = cut(table, [1, 2, 50, 51, 200])
    for options in ({"columns": ["x", "f"]}, {"eps": 0.5, "ddof": 1}, {"nan": "propagate"}):
        got = list(sn.Normalizer(online=True, **options).transform_batches(batches))
        assert_same_output(got, loop_of_fits(batches, together=False, **options))
    got = list(sn.Normalizer(online=True, columns=["x"]).transform_batches(batches))
    assert all(g.column("k").equals(b.column("k")) for g, b in zip(got, batches))
    assert got[0].schema.field("f").type == pa.float32()
    propagated = list(sn.Normalizer(online=True, nan="propagate").transform_batches(batches))
    first_nan = next(i for i, b in enumerate(batches)
                     if b.column("x").is_nan().fill_null(False).to_numpy(zero_copy_only=False)
                     .any())
    for out in propagated[first_nan:]:  # a NaN poisons its column from then on
        x, null = values(out.column("x"))
        assert np.isnan(x).all()


def test_infinities_online() -> None:
    """inf='error' refuses the batch that brings ±inf; inf='skip' passes it through."""
    batches = [pa.record_batch({"x": [1.0, 2.0]}), pa.record_batch({"x": [np.inf, 3.0]})]
    stream = sn.Normalizer(online=True).transform_batches(batches)
    next(stream)
    with pytest.raises(sn.NonFiniteError, match="'x'"):
        next(stream)
    got = list(sn.Normalizer(online=True, inf="skip").transform_batches(batches))
    assert_same_output(got, loop_of_fits(batches, together=False, inf="skip"))
    assert got[1].column("x")[0].as_py() == np.inf


# --------------------------------------------------------------------------- momentum, warm-up


@pytest.mark.parametrize("momentum", [0.1, 1.0])
def test_momentum_equals_running_stats_loop(rng: np.random.Generator, momentum: float) -> None:
    batches = cut(sample_table(rng, 400, offset=7.0), [1, 30, 31, 32, 100, 250])
    norm = sn.Normalizer(online=True, momentum=momentum, eps=1e-3)
    got = list(norm.transform_batches(batches))
    want = running_loop(batches, sn.RunningStats(momentum), ["x", "f", "k"], eps=1e-3)
    for g, w in zip(got, want):
        for name, expected in w.items():
            x = values(g.column(name))[0]
            rtol = 1e-6 if name == "f" else 1e-13  # f is float32 out
            np.testing.assert_allclose(x, expected, rtol=rtol, atol=rtol)
    assert norm.running.num_batches_tracked == len(batches)
    # stats still hold every row exactly; the running ones normalized
    assert_same_stats(norm.stats, sn.feature_stats(pa.Table.from_batches(batches)), rtol=1e-13)


def test_warmup(rng: np.random.Generator) -> None:
    """Batches held until 100 rows, normalized with the statistics of all of them, then online."""
    batches = cut(sample_table(rng, 400), [30, 60, 99, 130, 300])  # warm-up ends at batch 3
    pulled = []

    def source() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            pulled.append(batch.num_rows)
            yield batch

    stream = sn.Normalizer(online=True, warmup=100).transform_batches(source())
    first = next(stream)
    assert len(pulled) == 4  # nothing comes out before 100 rows are in; no further read
    got = [first, *stream]
    warm = seen_fit(batches[:4], together=False)
    want = [warm.transform(b) for b in batches[:4]]
    want += loop_of_fits(batches, together=False)[4:]
    assert_same_output(got, want)
    # a source that ends inside the warm-up: all of it normalized with all of it (batch mode)
    norm = sn.Normalizer(online=True, warmup=10_000)
    got = list(norm.transform_batches(batches))
    assert_same_output(got, [seen_fit(batches, together=False).transform(b) for b in batches])
    # the warm-up is over: the next call is online from its first batch
    more = cut(sample_table(rng, 20), [5])
    assert [b.num_rows for b in norm.transform_batches(more)] == [5, 15]


def test_warmup_seeds_momentum(rng: np.random.Generator) -> None:
    batches = cut(sample_table(rng, 300, offset=50.0), [40, 80, 150])
    got = list(sn.Normalizer(online=True, momentum=0.2, warmup=70).transform_batches(batches))
    warm = sn.feature_stats(pa.Table.from_batches(batches[:2]))
    running = sn.RunningStats.from_stats(warm, 0.2)
    np.testing.assert_array_equal(running.running_var, warm.var(ddof=1))
    j = warm.columns.index("x")
    for out, batch in zip(got[:2], batches[:2]):  # the warm-up: its mean, unbiased variance
        x = values(batch.column("x"))[0]
        np.testing.assert_allclose(values(out.column("x"))[0],
                                   (x - warm.mean[j]) / np.sqrt(warm.var(ddof=1)[j]), rtol=1e-13)
    want = running_loop(batches[2:], running, ["x"])
    for out, w in zip(got[2:], want):
        np.testing.assert_allclose(values(out.column("x"))[0], w["x"], rtol=1e-13)


def test_fit_seeds_the_stream_and_transform_continues_it(rng: np.random.Generator) -> None:
    history = sample_table(rng, 120)
    batches = cut(sample_table(rng, 90), [10, 11, 60])
    norm = sn.Normalizer(online=True).fit(history)
    got = [norm.transform(batches[0])]  # a RecordBatch in, one RecordBatch out
    assert isinstance(got[0], pa.RecordBatch)
    table = norm.transform(pa.Table.from_batches(batches[1:]))  # the stream goes on
    got += table.to_batches()
    whole = [*history.to_batches(), *batches]
    want = loop_of_fits(whole, together=False)[len(history.to_batches()):]
    assert_same_output(got, want)
    assert_same_stats(norm.stats, sn.feature_stats(pa.Table.from_batches(whole)), rtol=1e-13)


def test_from_stats_resumes_a_stream(tmp_path, rng: np.random.Generator) -> None:
    """Statistics saved at the end of one stream continue in the next, warm-up included."""
    history = sample_table(rng, 60)
    batches = cut(sample_table(rng, 90), [10, 50])
    sn.feature_stats(history).save(tmp_path / "s.json")
    resumed = sn.Normalizer.from_stats(tmp_path / "s.json", online=True, warmup=100)
    got = list(resumed.transform_batches(batches))
    assert [b.num_rows for b in got] == [10, 40, 40]  # 60 + 10 < 100 rows: held; 60 + 50: out
    seeded = sn.Normalizer(online=True, warmup=100).fit(history)
    assert_same_output(got, list(seeded.transform_batches(batches)))
    whole = [*history.to_batches(), *batches]
    warm = seen_fit(whole[:3], together=False)
    assert_same_output(got, [warm.transform(b) for b in batches[:2]]
                       + loop_of_fits(whole, together=False)[3:])
    with pytest.raises(sn.InputError, match="by="):
        sn.Normalizer.from_stats(sn.FeatureStats(by="s").update(history), online=True)


# --------------------------------------------------------------------------- bounded memory


def endless(rng: np.random.Generator, pulled: list[int], rows: int = 5000
            ) -> Iterator[pa.RecordBatch]:
    """An endless stream of batches; counts what was pulled."""
    for i in itertools.count():
        pulled.append(i)
        yield pa.record_batch({"x": rng.normal(i, 1.0, rows), "k": np.full(rows, i)})


def test_endless_stream_is_lazy_and_bounded(rng: np.random.Generator) -> None:
    pulled: list[int] = []
    norm = sn.Normalizer(online=True, momentum=0.05)
    stream = norm.transform_batches(endless(rng, pulled))
    assert next(stream).num_rows == 5000 and len(pulled) == 1  # no read-ahead
    for _ in itertools.islice(stream, 20):  # compile and warm every cache first
        pass
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in itertools.islice(stream, 300):
            pass
        now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(pulled) == 321
    batch_bytes = 5000 * 8 * 2
    # 300 batches of 80 kB went through: holding them would take 24 MB
    assert peak - start < 20 * batch_bytes, (start, now, peak)
    assert now - start < 5 * batch_bytes
    assert int(norm.stats.count[0]) == 321 * 5000


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("options, needle", [
    ({"mode": "layer", "online": True}, "mode='batch'"),
    ({"mode": "rms", "online": True}, "mode='batch'"),
    ({"online": True, "by": "g"}, "by="),
    ({"momentum": 0.1}, "online=True"),
    ({"warmup": 10}, "online=True"),
    ({"online": True, "momentum": 0.0}, "momentum"),
    ({"online": True, "momentum": 1.5}, "momentum"),
    ({"online": True, "warmup": -1}, "warmup"),
    ({"online": True, "momentum": 0.1, "ddof": 1}, "ddof"),
    ({"online": True, "momentum": 0.1, "inf": "skip"}, "inf='skip'"),
])
def test_bad_combinations_refused(options: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        sn.Normalizer(**options)


def test_no_inverse_online() -> None:
    norm = sn.Normalizer(online=True)
    out = norm.transform(pa.table({"x": [1.0, 2.0, 4.0]}))
    with pytest.raises(ValueError, match="no inverse"):
        norm.inverse_transform(out)
    with pytest.raises(sn.InputError, match="normalized online"):
        sn.Normalizer.from_metadata(out)


# --------------------------------------------------------------------------- command line


@pytest.fixture
def parquet_in(tmp_path, rng: np.random.Generator):
    table = sample_table(rng, 3000, offset=1e6)
    path = tmp_path / "in.parquet"
    pq.write_table(table, path, row_group_size=400)
    return path


def test_cli_online_round_trip(tmp_path, parquet_in) -> None:
    out, final = tmp_path / "out.parquet", tmp_path / "final.json"
    assert_ok(call_cli("normalize", parquet_in, out, "--online", "-o", final, "--no-progress",
                       cwd=tmp_path))
    whole = sn.feature_stats(parquet_in)
    saved = sn.FeatureStats.load(final)
    assert_same_stats(saved, whole)  # same row groups, same merges: equal
    assert read_final_stats(out) == saved  # and in the output's footer
    batches = pq.ParquetFile(parquet_in).read().to_batches()
    want = list(sn.Normalizer(online=True).transform_batches(pq.ParquetFile(parquet_in)
                                                              .iter_batches(batch_size=400)))
    got = pq.ParquetFile(out).read()
    assert got.num_rows == sum(b.num_rows for b in batches)
    assert_same_table(got, pa.Table.from_batches(want))
    # no inverse, no --stats from an online output: one line, nothing written
    assert_bad_input(call_cli("inverse", out, tmp_path / "back.parquet", cwd=tmp_path),
                     "normalized online", absent=[tmp_path / "back.parquet"])
    assert_bad_input(call_cli("normalize", parquet_in, tmp_path / "again.parquet", "--stats",
                              out, cwd=tmp_path), "normalized online",
                     absent=[tmp_path / "again.parquet"])


def test_cli_momentum_warmup_to_arrow(tmp_path, parquet_in) -> None:
    out = tmp_path / "out.arrow"
    assert_ok(call_cli("normalize", parquet_in, out, "--online", "--momentum", "0.3",
                       "--warmup", "1000", "--float32", "--no-progress", cwd=tmp_path))
    got = pa.ipc.open_file(out).read_all()
    norm = sn.Normalizer(online=True, momentum=0.3, warmup=1000)
    want = pa.Table.from_batches(list(norm.transform_batches(parquet_in)))
    assert got.schema.field("x").type == pa.float32()
    assert_same_table(got, want.cast(got.schema))


@pytest.mark.parametrize("args, needle", [
    (["--online", "--mode", "rms"], "--mode batch"),
    (["--momentum", "0.1"], "--online"),
    (["--warmup", "5"], "--online"),
    (["-o", "{tmp}/s.json"], "--online"),
    (["--online", "--by", "k"], "--by"),
    (["--online", "--momentum", "1.5"], "(0, 1]"),
    (["--online", "-o", "{tmp}/s.txt"], "s.txt"),
    (["--online", "-o", "{tmp}/out.parquet"], "OUT itself"),
    (["--online", "--dask"], "--dask"),
    (["--online", "--momentum", "0.1", "--inf", "skip"], "--inf skip"),
])
def test_cli_bad_combinations(tmp_path, parquet_in, capsys, args: list[str],
                              needle: str) -> None:
    """In this process (the subprocess contract: test_cli_online_refuses_infinities_...):
    exit 2, one line."""
    out = tmp_path / "out.parquet"
    argv = ["normalize", str(parquet_in), str(out), *(a.format(tmp=tmp_path) for a in args)]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamnorm: error:"), lines
    assert needle in lines[0]
    assert not out.exists() and not (tmp_path / "s.json").exists()


def test_cli_online_refuses_a_directory_output(tmp_path, parquet_in, capsys) -> None:
    assert main(["normalize", str(tmp_path), str(tmp_path / "outdir"), "--online"]) == 2
    assert "one output file" in capsys.readouterr().err
    assert not (tmp_path / "outdir").exists()


def test_cli_online_resumes_from_saved_stats(tmp_path, parquet_in, rng) -> None:
    """`--online -o` at the end of one file, `--online --stats` continues with the next."""
    second = tmp_path / "second.parquet"
    pq.write_table(sample_table(rng, 900, offset=1e6), second, row_group_size=300)
    first_stats, final = tmp_path / "first.json", tmp_path / "final.json"
    out = tmp_path / "out.parquet"
    assert_ok(call_cli("normalize", parquet_in, tmp_path / "o1.parquet", "--online", "-o",
                       first_stats, "--no-progress", cwd=tmp_path))
    assert_ok(call_cli("normalize", second, out, "--online", "--stats", first_stats, "-o", final,
                       "--no-progress", cwd=tmp_path))
    norm = sn.Normalizer(online=True).fit(parquet_in)
    want = pa.Table.from_batches(list(norm.transform_batches(second)))
    assert_same_table(pq.read_table(out), want)
    both = sn.feature_stats(parquet_in).merge(sn.feature_stats(second))
    assert_same_stats(sn.FeatureStats.load(final), both, rtol=1e-13)


def test_cli_online_refuses_infinities_leaving_nothing(tmp_path) -> None:
    src, out, final = tmp_path / "in.parquet", tmp_path / "out.parquet", tmp_path / "s.json"
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0, np.inf]}), src, row_group_size=2)
    assert_bad_input(run_cli("normalize", src, out, "--online", "-o", final, cwd=tmp_path),
                     "'x'", absent=[out, final])
