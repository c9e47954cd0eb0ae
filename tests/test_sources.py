"""Sources and sinks (issue 9): datasets, globs, lists, CSV / JSON lines, S3, selection, writers.

References are numpy float64 results over the same values; tolerances relative 1e-12.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import tracemalloc
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import assert_bad_input, call_cli

import streamnorm as sn
from streamnorm import arrow, selection
from streamnorm import columns as cols
from streamnorm.pipeline import normalize_dataset

RTOL = 1e-12


def _write_hive(root, rng):
    """year=…/month=… Parquet files; returns the concatenated table (without the keys)."""
    tables = []
    for year in (2023, 2024):
        for month in (1, 2):
            part = root / f"year={year}" / f"month={month}"
            part.mkdir(parents=True)
            table = pa.table({"a": rng.normal(5.0, 2.0, 500), "b": rng.integers(0, 100, 500),
                              "name": ["x"] * 500})
            pq.write_table(table, part / "part-0.parquet", row_group_size=128)
            tables.append(table)
    return pa.concat_tables(tables)


def _check(stats, table, names):
    for j, name in enumerate(names):
        ref = table.column(name).to_numpy().astype(np.float64)
        np.testing.assert_allclose(stats.mean[j], ref.mean(), rtol=RTOL)
        np.testing.assert_allclose(stats.var()[j], ref.var(), rtol=RTOL)
        assert stats.count[j] == len(ref)


@pytest.fixture()
def hive(tmp_path):
    return tmp_path / "ds", _write_hive(tmp_path / "ds", np.random.default_rng(0))


# --------------------------------------------------------------------------- datasets


def test_hive_directory_glob_and_list(hive):
    root, table = hive
    src = arrow.DataSource(root)
    assert src.partition_columns == ["year", "month"]
    assert all(cols.is_partition_key(src.schema.field(n)) for n in ("year", "month"))
    _check(sn.feature_stats(root, columns=["a", "b"]), table, ["a", "b"])
    _check(sn.feature_stats(str(root / "**" / "*.parquet"), columns=["a", "b"]), table,
           ["a", "b"])
    files = sorted(str(p) for p in root.rglob("*.parquet"))
    _check(sn.feature_stats(files, columns=["a", "b"]), table, ["a", "b"])
    one_year = sn.feature_stats(str(root / "year=2023" / "*" / "*.parquet"), columns=["a"])
    assert one_year.count.tolist() == [1000]
    years = pa.Table.from_batches(list(arrow.iter_batches(root))).column("year").to_pylist()
    assert sorted(set(years)) == [2023, 2024] and len(years) == 2000


def test_partition_keys_are_not_features_by_default(hive):
    root, _ = hive
    assert sn.feature_stats(root).columns == ["a", "b"]


def test_normalize_dataset_keeps_layout(hive, tmp_path):
    root, table = hive
    out = tmp_path / "out"
    written = normalize_dataset(root, out, columns=["a", "b"], float32=True)
    rel = sorted(os.path.relpath(p, out) for p in written)
    assert rel == sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))
    got = pa.concat_tables([pq.read_table(p, partitioning=None) for p in written])
    assert got.schema.field("a").type == pa.float32() and "year" not in got.column_names
    a = table.column("a").to_numpy()
    expected = (a - a.mean()) / a.std()
    np.testing.assert_allclose(got.column("a").to_numpy(), expected.astype(np.float32), rtol=1e-6)
    assert got.column("name").to_pylist() == table.column("name").to_pylist()


def test_inspect_and_selection(hive):
    root, _ = hive
    found = selection.inspect(root)
    rows = {r["column"]: r for r in found.table.to_pylist()}
    assert rows["a"]["batch"] and rows["b"]["rms"]
    assert not rows["year"]["batch"] and "partition" in rows["year"]["reason"]
    assert not rows["name"]["layer"] and "string" in rows["name"]["reason"]
    assert "partition key" in str(found)
    schema = pa.schema([(f"emb_{i}", pa.float32()) for i in range(3)] + [("id", pa.string())])
    assert selection.select_columns(schema, ["emb_*"], exclude=["emb_1"]) == ["emb_0", "emb_2"]
    with pytest.raises(sn.SchemaError, match="matches no column"):
        selection.select_columns(schema, ["nope_*"])


# --------------------------------------------------------------------------- CSV / JSON lines


def _frame(n=3000, seed=1):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(1e6, 3.0, n), "k": rng.integers(-50, 50, n)}


def _csv_text(data):
    rows = "".join(f"{x:.17g},{k}\n" for x, k in zip(data["x"], data["k"]))
    return "x,k\n" + rows


def _jsonl_text(data):
    return "".join(f'{{"x": {x:.17g}, "k": {k}}}\n' for x, k in zip(data["x"], data["k"]))


@pytest.mark.parametrize("name", ["d.csv", "d.csv.gz", "d.jsonl", "d.ndjson.gz"])
def test_text_sources_match_numpy(tmp_path, name):
    data = _frame()
    text = _jsonl_text(data) if "json" in name else _csv_text(data)
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    table = pa.table(data)
    _check(sn.feature_stats(arrow.open_source(path, block_size=4096)), table, ["x", "k"])
    norm = sn.Normalizer("batch").fit(path)
    out = pa.Table.from_batches(list(norm.transform_batches(path)))
    x = data["x"]
    np.testing.assert_allclose(out.column("x").to_numpy(), (x - x.mean()) / x.std(), rtol=1e-9)


def test_malformed_csv_names_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,c\n1,2,x\n3,4,y\n5,6\n7,8,z\n")
    with pytest.raises(sn.InputError, match=r"line 4 has 2 fields instead of 3"):
        sn.feature_stats(path)
    src = arrow.open_source(path, skip_bad_rows=True)
    with pytest.warns(arrow.SkippedRowsWarning, match="skipped 1 bad row"):
        stats = sn.feature_stats(src)
    assert stats.count.tolist() == [3, 3] and src.skipped_rows == 1


def test_csv_type_from_first_block_and_schema(tmp_path):
    path = tmp_path / "conv.csv"
    path.write_text("a,b\n" + "1,2\n" * 200 + "3,2.5\n")
    with pytest.raises(sn.InputError, match=r"line 202, column 'b'.*--schema b=float64"):
        sn.feature_stats(arrow.open_source(path, block_size=256))
    fixed = sn.feature_stats(arrow.open_source(path, block_size=256, schema={"b": "float64"}))
    np.testing.assert_allclose(fixed.mean[1], (2 * 200 + 2.5) / 201, rtol=RTOL)


def test_malformed_json_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1, "b": 2}\n{"a": 3, "b": 4}\n{"a": 5, "b\n{"a": 7, "b": 8}\n')
    with pytest.raises(sn.InputError, match="line 3: JSON parse error"):
        sn.feature_stats(path)
    src = arrow.open_source(path, skip_bad_rows=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats = sn.feature_stats(src)
    assert stats.mean.tolist() == [pytest.approx(11 / 3), pytest.approx(14 / 3)]
    assert src.skipped_rows == 1 and "line 3" in str(caught[0].message)


# --------------------------------------------------------------------------- schemas (issue 12)


@pytest.fixture
def mixed(tmp_path):
    """a.parquet {x, y} and b.parquet {z: string, w}: one dataset, two schemas."""
    root = tmp_path / "mixed"
    root.mkdir()
    a = pa.table({"x": [1.0, 2.0, 4.0], "y": pa.array([1, 2, 3], pa.int32())})
    b = pa.table({"z": ["p", "q"], "w": [5.0, 7.0]})
    pq.write_table(a, root / "a.parquet")
    pq.write_table(b, root / "b.parquet")
    return root, a, b


@pytest.mark.parametrize("form", ["dir", "glob", "list"])
def test_files_with_different_columns_are_unified(mixed, form):
    root, a, b = mixed
    location = {"dir": root, "glob": str(root / "*.parquet"),
                "list": [root / "a.parquet", root / "b.parquet"]}[form]
    assert arrow.open_source(location).schema.names == ["x", "y", "z", "w"]
    stats = sn.feature_stats(location)
    assert stats.columns == ["x", "y", "w"]
    assert stats.count.tolist() == [3, 3, 2]
    assert stats.null_count.tolist() == [2, 2, 3]  # a column missing from a file is null there
    np.testing.assert_allclose(stats.mean, [7 / 3, 2.0, 6.0], rtol=RTOL)
    one = sn.feature_stats(location, columns=["w"])
    assert one.count.tolist() == [2] and one.null_count.tolist() == [3]


def test_normalize_writes_every_column_of_every_file(mixed, tmp_path):
    root, a, b = mixed
    out = tmp_path / "all.parquet"
    sn.normalize_file(root, out)
    got = pq.read_table(out)
    assert got.column_names == ["x", "y", "z", "w"]
    assert got["z"].to_pylist() == [None, None, None, "p", "q"]
    assert got["w"].to_pylist() == [None, None, None, -1.0, 1.0]
    written = normalize_dataset(root, tmp_path / "outdir")
    for path in written:  # each output under the dataset's schema, its missing columns null
        assert pq.read_schema(path).names == ["x", "y", "z", "w"]
    assert pq.read_table(tmp_path / "outdir" / "b.parquet")["w"].to_pylist() == [-1.0, 1.0]


@pytest.mark.parametrize(("first", "second", "widened"), [
    (pa.int32(), pa.int64(), pa.int64()),
    (pa.int64(), pa.float64(), pa.float64()),
    (pa.float32(), pa.float64(), pa.float64()),
    (pa.int32(), pa.float32(), pa.float64()),
    (pa.uint8(), pa.int8(), pa.int16()),
    (pa.uint64(), pa.int64(), pa.float64()),
    (pa.float16(), pa.float32(), pa.float64()),
])
def test_types_widen_between_files(tmp_path, first, second, widened):
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"x": pa.array([1, 2, 3], first)}), data / "a.parquet")
    pq.write_table(pa.table({"x": pa.array([5, 9], second)}), data / "b.parquet")
    assert arrow.open_source(data).schema.field("x").type == widened
    stats = sn.feature_stats(data)
    assert stats.count.tolist() == [5] and stats.mean[0] == pytest.approx(4.0, rel=RTOL)
    out = tmp_path / "out.parquet"
    sn.normalize_file(str(data / "*.parquet"), out)
    assert pq.read_table(out)["x"].to_numpy().tolist() == pytest.approx(
        ((np.array([1, 2, 3, 5, 9]) - 4.0) / np.std([1, 2, 3, 5, 9])).tolist(), rel=1e-12)


@pytest.mark.parametrize(("a", "b", "common"), [
    (pa.null(), pa.int32(), pa.int32()),
    (pa.string(), pa.large_string(), pa.large_string()),
    (pa.dictionary(pa.int8(), pa.int32()), pa.int64(), pa.int64()),
    (pa.string(), pa.float64(), None),
    (pa.decimal128(38, 0), pa.int64(), None),  # decimal is not promoted silently: --schema
    (pa.bool_(), pa.int8(), None),
])
def test_common_type(a, b, common):
    assert cols.common_type(a, b) == common and cols.common_type(b, a) == common


def test_integers_beyond_two_to_53_round_when_widened(tmp_path):
    big = 2**53 + 1
    pq.write_table(pa.table({"x": pa.array([big], pa.int64())}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"x": [0.5]}), tmp_path / "b.parquet")
    stats = sn.feature_stats(tmp_path)
    assert stats.max[0] == float(big)


def test_type_conflict_names_both_files_and_the_fix_works(tmp_path):
    pq.write_table(pa.table({"x": [1.0, 2.0]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"x": ["1.5", "2.5"], "y": [1.0, 3.0]}), tmp_path / "b.parquet")
    with pytest.raises(sn.InputError, match=r"column 'x' is double in .*a\.parquet but string in "
                                            r".*b\.parquet.*--schema x=string"):
        sn.feature_stats(tmp_path)
    as_numbers = sn.feature_stats(arrow.open_source(tmp_path, schema={"x": "float64"}))
    assert as_numbers.columns == ["x", "y"]
    np.testing.assert_allclose(as_numbers.mean, [1.75, 2.0], rtol=RTOL)
    as_text = arrow.open_source(tmp_path, schema={"x": "string"})
    assert sn.feature_stats(as_text).columns == ["y"]
    pq.write_table(pa.table({"x": ["one"]}), tmp_path / "c.parquet")
    with pytest.raises(sn.InputError, match=r"c\.parquet: column 'x' \(string\) cannot be read as "
                                            "double.*--schema x="):
        sn.feature_stats(arrow.open_source(tmp_path, schema={"x": "float64"}))


def test_schema_casts_parquet_and_ipc_files(tmp_path):
    table = pa.table({"x": pa.array([1, 2, 3], pa.int64()), "s": ["a", "b", "c"]})
    pq.write_table(table, tmp_path / "t.parquet")
    with pa.OSFile(str(tmp_path / "t.arrow"), "wb") as sink:
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    for name in ("t.parquet", "t.arrow"):
        src = arrow.open_source(tmp_path / name, schema={"x": "float32"})
        schema, batches = arrow.schema_and_batches(src)
        assert schema.field("x").type == pa.float32()
        assert all(batch.schema.field("x").type == pa.float32() for batch in batches)


@pytest.mark.parametrize("name", ["t.parquet", "t.csv", "t.jsonl", "dir"])
def test_unknown_schema_column_is_an_error(tmp_path, name):
    pq.write_table(pa.table({"x": [1.0], "y": [2.0]}), tmp_path / "t.parquet")
    (tmp_path / "t.csv").write_text("x,y\n1,2\n")
    (tmp_path / "t.jsonl").write_text('{"x": 1, "y": 2}\n')
    location = tmp_path / "dir" if name == "dir" else tmp_path / name
    if name == "dir":
        location.mkdir()
        pq.write_table(pa.table({"x": [1.0], "y": [2.0]}), location / "a.parquet")
    with pytest.raises(sn.InputError, match=r"no column 'xx' .*\(its columns: x, y\)"):
        sn.feature_stats(arrow.open_source(location, schema={"xx": "float64"}))


def test_duplicate_column_names_are_an_error(tmp_path):
    table = pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0])], names=["x", "x"])
    pq.write_table(table, tmp_path / "d.parquet")
    (tmp_path / "d.csv").write_text("x,y,x\n1,2,3\n")
    for name in ("d.parquet", "d.csv"):
        with pytest.raises(sn.InputError, match="more than one column is named 'x'"):
            sn.feature_stats(tmp_path / name)
        with pytest.raises(sn.InputError, match="more than one column is named 'x'"):
            selection.inspect(tmp_path / name)


def test_polars_int128_is_a_clear_error(tmp_path):
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"big": pl.Series([1, 2], dtype=pl.Int128), "v": [1.0, 2.0]})
    frame.write_parquet(tmp_path / "i.parquet")
    frame.write_ipc(tmp_path / "i.arrow")
    for source in (tmp_path / "i.parquet", tmp_path / "i.arrow", [tmp_path / "i.parquet"],
                   frame):
        with pytest.raises(sn.InputError, match="wider than 64 bits.*Int128"):
            sn.feature_stats(source)


# --------------------------------------------------------------------------- writers


@pytest.mark.parametrize("codec", ["zstd", "lz4", "snappy", "none"])
def test_parquet_compression_and_row_groups(tmp_path, codec):
    table = pa.table({"x": np.arange(1000.0)})
    path = tmp_path / "o.parquet"
    with arrow.atomic_path(path) as tmp:
        with arrow.BatchWriter(tmp, table.schema, "parquet", compression=codec,
                            row_group_size=300) as writer:
            for batch in table.to_batches(max_chunksize=70):
                writer.write(batch)
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [300, 300, 300, 100]
    expected = "UNCOMPRESSED" if codec == "none" else codec.upper()
    assert meta.row_group(0).column(0).compression.startswith(expected[:3])
    assert pq.read_table(path).equals(table)


def test_ipc_codecs_and_float32(tmp_path):
    table = pa.table({"x": np.linspace(0, 1, 100), "v": pa.array(
        [[1.0, 2.0]] * 100, pa.list_(pa.float64(), 2)), "i": np.arange(100)})
    path = tmp_path / "o.arrow"
    with arrow.atomic_path(path) as tmp:
        with arrow.BatchWriter(tmp, table.schema, "ipc-file", compression="lz4",
                               float32=True) as writer:
            writer.write(table.to_batches()[0])
    got = arrow.read_table(path)
    assert got.schema.field("x").type == pa.float32()
    assert got.schema.field("v").type.value_type == pa.float32()
    assert got.schema.field("i").type == pa.int64()
    with pytest.raises(ValueError, match="zstd or lz4"):
        arrow.BatchWriter(tmp_path / "p.arrow", table.schema, compression="snappy")


def test_float32_narrows_only_the_named_columns():
    schema = pa.schema([("x", pa.float64()), ("y", pa.float64()), ("i", pa.int64()),
                        ("v", pa.list_(pa.float64(), 2))])
    narrowed = arrow.float32_schema(schema, ["x", "v"])
    assert narrowed.types == [pa.float32(), pa.float64(), pa.int64(), pa.list_(pa.float32(), 2)]


# --------------------------------------------------------------------------- S3 (moto)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_bucket():
    """A moto S3 server on 127.0.0.1 for this module; stopped at the end."""
    server_mod = pytest.importorskip("moto.server")
    import pyarrow.fs as pafs

    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http",
                               access_key="testing", secret_key="testing", region="us-east-1",
                               allow_bucket_creation=True)
        fs.create_dir("bucket")
        yield fs
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


def test_s3_read_write_and_datasets(s3_bucket, hive):
    root, table = hive
    for part in root.rglob("*.parquet"):
        s3_bucket.create_dir(f"bucket/in/{part.parent.relative_to(root)}")
        with s3_bucket.open_output_stream(f"bucket/in/{part.relative_to(root)}") as out:
            out.write(part.read_bytes())
    stats = sn.feature_stats("s3://bucket/in", columns=["a", "b"])
    _check(stats, table, ["a", "b"])
    assert arrow.DataSource("s3://bucket/in").partition_columns == ["year", "month"]
    arrow.write_table(pa.table({"z": [1.0, 2.0, 4.0]}), "s3://bucket/one.parquet")
    assert sn.feature_stats("s3://bucket/one.parquet").mean[0] == pytest.approx(7 / 3, rel=RTOL)
    written = normalize_dataset("s3://bucket/in", "s3://bucket/out", columns=["a"])
    assert len(written) == 4 and all(w.startswith("s3://bucket/out/year=") for w in written)
    out = sn.feature_stats("s3://bucket/out", columns=["a"])
    assert abs(out.mean[0]) < 1e-12 and out.var()[0] == pytest.approx(1.0, rel=1e-12)


def test_s3_failed_write_leaves_nothing(s3_bucket):
    with pytest.raises(RuntimeError):
        with arrow.atomic_path("s3://bucket/fail.parquet") as tmp:
            with arrow.BatchWriter(tmp, pa.schema([("x", pa.float64())]), "parquet") as writer:
                writer.write(pa.record_batch({"x": [1.0]}))
                raise RuntimeError("boom")
    import pyarrow.fs as pafs

    names = [i.path for i in s3_bucket.get_file_info(pafs.FileSelector("bucket"))]
    assert not any("fail" in n for n in names)


# --------------------------------------------------------------------------- the command line


def test_cli_reads_datasets_and_csv(hive, tmp_path):
    root, table = hive
    out = tmp_path / "stats.json"
    done = call_cli("stats", root, "-c", "a", "-o", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _check(sn.FeatureStats.load(out), table, ["a"])
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    assert_bad_input(call_cli("stats", bad, cwd=tmp_path), "line 3 has 1 fields instead of 2")


def test_cli_reads_and_writes_s3(s3_bucket, tmp_path):
    """The command on S3: a file into a file, a hive prefix into a prefix (same layout)."""
    root = tmp_path / "hive"
    table = _write_hive(root, np.random.default_rng(4))
    for part in root.rglob("*.parquet"):
        with s3_bucket.open_output_stream(f"bucket/cli/{part.relative_to(root)}") as out:
            out.write(part.read_bytes())
    done = call_cli("normalize", "s3://bucket/cli", "s3://bucket/cli-out", "-c", "a", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("normalized 4 files (batch mode) into s3://bucket/cli-out")
    out = sn.feature_stats("s3://bucket/cli-out", columns=["a"])
    assert abs(out.mean[0]) < 1e-12 and out.var()[0] == pytest.approx(1.0, rel=1e-12)
    assert out.count[0] == table.num_rows
    one = "s3://bucket/cli-one/year=2023/month=1/part-0.parquet"
    done = call_cli("normalize", "s3://bucket/cli/year=2023/month=1/part-0.parquet", one,
                    "--mode", "rms", "--compression", "snappy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = call_cli("stats", one, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.splitlines()[1].split()[0] == "a"
    assert_bad_input(call_cli("normalize", "s3://bucket/cli/none.parquet", "s3://bucket/x.parquet",
                              cwd=tmp_path), "none.parquet")


@pytest.mark.parametrize("suffix", [".json", ".arrow", ".parquet"])
def test_stats_save_and_load_on_s3(s3_bucket, suffix):
    fs = sn.FeatureStats().update(pa.table({"a": [1.0, 2.0, None], "b": [1e9, 1e9 + 1, 7.0]}))
    uri = f"s3://bucket/stats/state{suffix}"
    fs.save(uri)
    assert sn.FeatureStats.load(uri) == fs
    with pytest.raises(sn.InputError):
        sn.FeatureStats.load(f"s3://bucket/stats/missing{suffix}")


# --------------------------------------------------------------------------- JSON line cap


@pytest.mark.parametrize("skip", [False, True])
def test_json_without_line_breaks_fails_in_bounded_memory(tmp_path, monkeypatch, skip):
    # A NUL-filled "JSON lines" file is one endless line: it used to be read whole (twice)
    # to find the bad line, 10.7 GB of RSS for a 5 GB file.
    path = tmp_path / "nul.jsonl"
    path.write_bytes(b"\0" * (24 << 20))
    monkeypatch.setenv("STREAMNORM_JSON_BLOCK_SIZE", str(1 << 16))
    tracemalloc.start()
    try:
        with pytest.raises(sn.InputError, match=r"line 1 is longer than 65,536 bytes.*"
                                                r"STREAMNORM_JSON_BLOCK_SIZE") as info:
            sn.feature_stats(arrow.open_source(path, skip_bad_rows=skip))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "skip" not in str(info.value)  # skipping cannot help with a limit
    assert peak < 4 << 20, peak


def test_json_line_limit_is_the_block_size(tmp_path, monkeypatch):
    path = tmp_path / "wide.jsonl"
    values = list(range(500_000))  # one line of ~3.4 MB, well over the 1 MiB default
    path.write_text(json.dumps({"v": values, "x": 1.5}) + "\n" + json.dumps({"x": 2.5}) + "\n")
    with pytest.raises(sn.InputError, match=r"line 1 is longer than 1,048,576 bytes"):
        sn.feature_stats(path)
    assert sn.feature_stats(arrow.open_source(path, block_size=8 << 20)).count.tolist() == [2]
    monkeypatch.setenv("STREAMNORM_JSON_BLOCK_SIZE", str(8 << 20))
    assert sn.feature_stats(path).mean.tolist() == [2.0]
    monkeypatch.setenv("STREAMNORM_JSON_BLOCK_SIZE", "lots")
    with pytest.raises(sn.InputError, match="STREAMNORM_JSON_BLOCK_SIZE"):
        sn.feature_stats(path)
