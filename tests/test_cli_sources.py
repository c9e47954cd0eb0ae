"""The ``streamnorm`` command with sources, column selection, output options and Dask
(issues 7 and 9), on small files in a temporary directory: in this process (``call_cli``), and
as a real subprocess where the process matters (Dask's output on its stderr, its umask).

References are numpy float64 results over the same values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import assert_bad_input, assert_ok, assert_same_stats, call_cli, run_cli

import streamnorm as sn
from streamnorm.pipeline import dataset as pipeline_dataset

RTOL = 1e-12


def standardized(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / values.std()


@pytest.fixture
def wide(tmp_path: Path) -> tuple[Path, pa.Table]:
    rng = np.random.default_rng(3)
    n = 1200
    table = pa.table({
        "id": [f"r{i}" for i in range(n)],
        "emb_0": rng.normal(4.0, 2.0, n),
        "emb_1": rng.normal(-1.0, 0.5, n).astype(np.float32),
        "emb_2": rng.normal(0.0, 3.0, n),
        "age": rng.integers(0, 90, n),
        "vec": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * 3)), 3),
    })
    path = tmp_path / "wide.parquet"
    pq.write_table(table, path, row_group_size=300)
    return path, table


def _hive(root: Path) -> pa.Table:
    """year=…/part-0.parquet files; the concatenated table (keys not included)."""
    rng = np.random.default_rng(11)
    tables = []
    for year, n in ((2023, 700), (2024, 500)):
        part = root / f"year={year}"
        part.mkdir(parents=True)
        table = pa.table({"a": rng.normal(5.0, 2.0, n), "b": rng.integers(0, 100, n)})
        pq.write_table(table, part / "part-0.parquet", row_group_size=200)
        tables.append(table)
    return pa.concat_tables(tables)


# --------------------------------------------------------------------------- selection


def test_inspect_marks_columns_and_reasons(tmp_path, wide):
    path, _ = wide
    proc = call_cli("inspect", path, cwd=tmp_path)
    assert_ok(proc)
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert proc.stdout.splitlines()[0].split()[:5] == ["column", "type", "batch", "layer", "rms"]
    assert rows["emb_0"].split()[2:5] == ["yes", "yes", "yes"]
    assert "batch: vector column" in rows["vec"]
    assert "string" in rows["id"]
    proc = call_cli("inspect", path, "-c", "emb_*", "--exclude", "emb_1", cwd=tmp_path)
    assert_ok(proc)
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert "excluded by --exclude" in rows["emb_1"]
    assert "not selected" in rows["age"]


def test_column_globs_and_exclude_choose_the_columns(tmp_path, wide):
    path, table = wide
    out = tmp_path / "s.json"
    assert_ok(call_cli("stats", path, "-c", "emb_*", "--exclude", "emb_1", "-o", out, cwd=tmp_path))
    stats = sn.FeatureStats.load(out)
    assert stats.columns == ["emb_0", "emb_2"]
    for j, name in enumerate(stats.columns):
        ref = table[name].to_numpy()
        np.testing.assert_allclose(stats.mean[j], ref.mean(), rtol=RTOL)
        np.testing.assert_allclose(stats.var()[j], ref.var(), rtol=RTOL)
    normalized = tmp_path / "n.parquet"
    assert_ok(call_cli("normalize", path, normalized, "--exclude", "emb_*", cwd=tmp_path))
    result = pq.read_table(normalized)
    assert result["emb_0"].equals(table["emb_0"])  # excluded: passed through
    np.testing.assert_allclose(result["age"].to_numpy(), standardized(table["age"].to_numpy()
                                                                      .astype(float)), atol=1e-12)
    assert_bad_input(call_cli("stats", path, "-c", "nope_*", cwd=tmp_path),
                     "'nope_*' matches no column")
    assert_bad_input(call_cli("stats", path, "--exclude", "*", cwd=tmp_path), "no column is left")


# --------------------------------------------------------------------------- CSV


def test_csv_bad_rows_fail_or_are_skipped_and_schema_fixes_types(tmp_path):
    good = "".join(f"{i * 0.5},{i}\n" for i in range(1, 6))
    csv = tmp_path / "d.csv"
    csv.write_text("x,k\n" + good + "7.5\n" + "8.0,9\n")
    assert_bad_input(call_cli("stats", csv, cwd=tmp_path), "line 7", "--skip-bad-rows")
    out = tmp_path / "n.parquet"
    proc = call_cli("normalize", csv, out, "--schema", "k=float32", "--skip-bad-rows", cwd=tmp_path)
    assert_ok(proc)
    assert proc.stderr.strip() == f"streamnorm: skipped 1 bad row(s) in {csv}"
    result = pq.read_table(out)
    assert result.schema.field("k").type == pa.float32()  # fixed by --schema, not inferred int64
    x = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 8.0])
    np.testing.assert_allclose(result["x"].to_numpy(), standardized(x), rtol=RTOL)
    proc = call_cli("stats", csv, "--skip-bad-rows", cwd=tmp_path)
    assert_ok(proc)
    assert "skipped 1 bad row(s)" in proc.stderr
    assert_bad_input(call_cli("stats", csv, "--schema", "k", cwd=tmp_path), "NAME=TYPE")
    assert_bad_input(call_cli("stats", csv, "--schema", "k=flaot", cwd=tmp_path), "unknown type")


# --------------------------------------------------------------------------- directories


def test_hive_directory_into_directory_mirrors_the_partitions(tmp_path):
    table = _hive(tmp_path / "ds")
    proc = call_cli("normalize", tmp_path / "ds", tmp_path / "out", cwd=tmp_path)
    assert_ok(proc)
    assert proc.stdout.startswith("normalized 2 files (batch mode) into")
    written = sorted(p.relative_to(tmp_path / "out").as_posix()
                     for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["year=2023/part-0.parquet", "year=2024/part-0.parquet"]
    got = pa.concat_tables(pq.read_table(tmp_path / "out" / w) for w in written)
    assert got.column_names == ["a", "b"]  # keys stay in the directory names
    for name in ("a", "b"):
        ref = standardized(table[name].to_numpy().astype(np.float64))
        np.testing.assert_allclose(got[name].to_numpy(), ref, rtol=1e-10, atol=1e-12)
    one = tmp_path / "all.parquet"  # a data-file OUT: everything into one file
    assert_ok(call_cli("normalize", tmp_path / "ds", one, cwd=tmp_path))
    assert pq.read_metadata(one).num_rows == table.num_rows
    assert_bad_input(call_cli("normalize", tmp_path / "ds", tmp_path / "ds" / "n", cwd=tmp_path),
                     "inside the input directory")
    assert_bad_input(call_cli("normalize", tmp_path / "ds" / "*" / "*.parquet", tmp_path / "ds",
                              cwd=tmp_path), "refusing to overwrite the input")
    assert_bad_input(call_cli("normalize", tmp_path / "ds", one, "--exclude", "*", cwd=tmp_path),
                     "no column is left")


def test_output_options_show_in_the_written_file(tmp_path, wide):
    path, table = wide
    out = tmp_path / "o.parquet"
    assert_ok(call_cli("normalize", path, out, "--compression", "lz4", "--row-group-size", "100",
                       "--float32", cwd=tmp_path))
    meta = pq.ParquetFile(out).metadata
    assert meta.num_row_groups == 12
    assert all(meta.row_group(i).num_rows == 100 for i in range(meta.num_row_groups))
    assert {meta.row_group(0).column(j).compression for j in range(meta.num_columns)} == {"LZ4"}
    schema = pq.read_schema(out)
    assert schema.field("emb_0").type == pa.float32() and schema.field("age").type == pa.float32()
    assert schema.field("id").type == pa.string()
    restored = tmp_path / "r.parquet"
    assert_ok(call_cli("inverse", out, restored, "--compression", "none", cwd=tmp_path))
    np.testing.assert_allclose(pq.read_table(restored)["emb_0"].to_numpy(),
                               table["emb_0"].to_numpy(), rtol=1e-6, atol=1e-5)
    assert_bad_input(call_cli("normalize", path, tmp_path / "o.arrow", "--row-group-size", "10",
                              cwd=tmp_path), "Parquet only")
    assert_bad_input(call_cli("normalize", path, tmp_path / "o.arrow", "--compression", "snappy",
                              cwd=tmp_path), "snappy")
    assert_bad_input(call_cli("normalize", path, out, "--compression", "zip", cwd=tmp_path),
                     "invalid choice")
    assert not (tmp_path / "o.arrow").exists()


# --------------------------------------------------------------------------- schemas (issue 12)


def _mixed_dataset(root: Path) -> Path:
    """a.parquet {x, y} and b.parquet {z: string, w}: one dataset, two schemas."""
    root.mkdir()
    pq.write_table(pa.table({"x": [1.0, 2.0, 4.0], "y": pa.array([1, 2, 3], pa.int32())}),
                   root / "a.parquet")
    pq.write_table(pa.table({"z": ["p", "q"], "w": [5.0, 7.0]}), root / "b.parquet")
    return root


def _stats_rows(stdout: str) -> dict[str, dict[str, str]]:
    """The stats table as {column: {header: cell}}."""
    header, *lines = stdout.splitlines()
    names = header.split()[1:]
    return {line.split()[0]: dict(zip(names, line.split()[1:])) for line in lines}


def _cells(row: dict[str, str], *names: str) -> list[str]:
    return [row[name] for name in names]


def test_files_with_different_schemas_are_unified(tmp_path):
    root = _mixed_dataset(tmp_path / "d")
    proc = call_cli("stats", root, cwd=tmp_path)
    assert_ok(proc)
    rows = _stats_rows(proc.stdout)
    assert list(rows) == ["x", "y", "w"]
    assert _cells(rows["w"], "count", "null_count") == ["2", "3"]
    assert _cells(rows["x"], "count", "null_count") == ["3", "2"]
    proc = call_cli("inspect", root, cwd=tmp_path)
    assert_ok(proc)
    assert [line.split()[:2] for line in proc.stdout.splitlines()[1:]] == [
        ["x", "double"], ["y", "int32"], ["z", "string"], ["w", "double"]]
    out = tmp_path / "all.parquet"
    assert_ok(call_cli("normalize", root / "*.parquet", out, cwd=tmp_path))
    got = pq.read_table(out)
    assert got.column_names == ["x", "y", "z", "w"]
    assert got["w"].to_pylist() == [None, None, None, -1.0, 1.0]
    assert_ok(call_cli("normalize", root, tmp_path / "outdir", cwd=tmp_path))
    for name in ("a.parquet", "b.parquet"):
        assert pq.read_schema(tmp_path / "outdir" / name).names == ["x", "y", "z", "w"]
    assert pq.read_table(tmp_path / "outdir" / "b.parquet")["w"].to_pylist() == [-1.0, 1.0]


def test_types_widen_between_files_in_the_cli(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    pq.write_table(pa.table({"x": pa.array([1, 2, 3], pa.int32())}), root / "a.parquet")
    pq.write_table(pa.table({"x": [5.5, 8.5]}), root / "b.parquet")
    proc = call_cli("stats", root, cwd=tmp_path)
    assert_ok(proc)
    assert _cells(_stats_rows(proc.stdout)["x"], "count", "null_count", "nan_count",
                  "mean") == ["5", "0", "0", "4"]
    for out in (tmp_path / "one.parquet", tmp_path / "dir"):
        assert_ok(call_cli("normalize", root, out, cwd=tmp_path))
    values = np.array([1, 2, 3, 5.5, 8.5])
    np.testing.assert_allclose(pq.read_table(tmp_path / "one.parquet")["x"].to_numpy(),
                               standardized(values), rtol=RTOL)
    assert pq.read_schema(tmp_path / "dir" / "a.parquet").field("x").type == pa.float64()


def test_type_conflict_error_suggests_a_fix_that_works(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    pq.write_table(pa.table({"x": [1.0, 2.0], "y": [1.0, 3.0]}), root / "a.parquet")
    pq.write_table(pa.table({"x": ["3.5", "4.5"], "y": [5.0, 7.0]}), root / "b.parquet")
    for command in (("stats", root), ("normalize", root, tmp_path / "o.parquet")):
        assert_bad_input(call_cli(*command, cwd=tmp_path), "column 'x'", "a.parquet", "b.parquet",
                         "--schema x=string", "x=float64")
    proc = call_cli("stats", root, "--schema", "x=float64", cwd=tmp_path)
    assert_ok(proc)
    assert _cells(_stats_rows(proc.stdout)["x"], "count", "null_count", "nan_count",
                  "mean") == ["4", "0", "0", "2.75"]
    assert_ok(call_cli("normalize", root, tmp_path / "o.parquet", "--schema", "x=string",
                       cwd=tmp_path))
    got = pq.read_table(tmp_path / "o.parquet")
    assert got.schema.field("x").type == pa.string() and got["x"].to_pylist()[2:] == ["3.5", "4.5"]


def test_schema_option_casts_parquet_and_names_unknown_columns(tmp_path, wide):
    path, table = wide
    proc = call_cli("inspect", path, "--schema", "age=float32", cwd=tmp_path)
    assert_ok(proc)
    assert ["age", "float"] in [line.split()[:2] for line in proc.stdout.splitlines()]
    out = tmp_path / "o.parquet"
    assert_ok(call_cli("normalize", path, out, "-c", "emb_0", "--schema", "age=float32",
                       cwd=tmp_path))
    assert pq.read_schema(out).field("age").type == pa.float32()
    for command in (("stats", path), ("normalize", path, out), ("inspect", path)):
        assert_bad_input(call_cli(*command, "--schema", "agee=float64", cwd=tmp_path),
                         "'agee'", "its columns: id, emb_0")
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,2\n")
    assert_bad_input(call_cli("stats", csv, "--schema", "c=int64", cwd=tmp_path), "'c'", "a, b")


def test_float32_narrows_only_normalized_columns(tmp_path, wide):
    path, _ = wide
    out = tmp_path / "o.parquet"
    assert_ok(call_cli("normalize", path, out, "-c", "emb_0", "--float32", cwd=tmp_path))
    schema = pq.read_schema(out)
    assert schema.field("emb_0").type == pa.float32()
    assert schema.field("emb_2").type == pa.float64()  # float64, not selected: kept
    assert schema.field("age").type == pa.int64()
    assert schema.field("vec").type.value_type == pa.float64()
    restored = tmp_path / "r.parquet"
    assert_ok(call_cli("inverse", out, restored, "--float32", cwd=tmp_path))
    assert pq.read_schema(restored).field("emb_2").type == pa.float64()
    data = tmp_path / "d"
    data.mkdir()
    pq.write_table(pq.read_table(path), data / "p.parquet")
    assert_ok(call_cli("normalize", data, tmp_path / "od", "-c", "age", "--float32", cwd=tmp_path))
    schema = pq.read_schema(tmp_path / "od" / "p.parquet")
    assert schema.field("age").type == pa.float32() and schema.field("emb_0").type == pa.float64()


def test_duplicate_column_names_are_one_line(tmp_path):
    table = pa.Table.from_arrays([pa.array([1.0, 2.0]), pa.array([3.0, 4.0])], names=["x", "x"])
    pq.write_table(table, tmp_path / "d.parquet")
    (tmp_path / "d.csv").write_text("x,x,y\n1,2,3\n4,5,6\n")
    for name in ("d.parquet", "d.csv"):
        for command in (("stats", name), ("normalize", name, "o.parquet"), ("inspect", name)):
            assert_bad_input(call_cli(*command, cwd=tmp_path), name, "'x'")
    assert not (tmp_path / "o.parquet").exists()


def test_polars_int128_is_one_line(tmp_path):
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"big": pl.Series([1, 2, 3], dtype=pl.Int128), "v": [1.0, 2.0, 3.0]})
    frame.write_parquet(tmp_path / "i.parquet")
    frame.write_ipc(tmp_path / "i.arrow")
    for name in ("i.parquet", "i.arrow"):
        for command in (("stats", name), ("stats", name, "-c", "big"),
                        ("normalize", name, "o.parquet"), ("inspect", name)):
            assert_bad_input(call_cli(*command, cwd=tmp_path), name, "Int128", "Int64 or Float64")


def test_dask_gives_the_local_statistics_of_mixed_files(tmp_path):
    pytest.importorskip("distributed")
    root = _mixed_dataset(tmp_path / "d")
    local = call_cli("stats", root, cwd=tmp_path)
    assert_ok(local)
    on_dask = call_cli("stats", root, "--dask", cwd=tmp_path)
    assert_ok(on_dask)
    assert on_dask.stdout == local.stdout


# --------------------------------------------------------------------------- Dask


def test_dask_stats_and_normalize_match_single_process(tmp_path):
    pytest.importorskip("distributed")
    rng = np.random.default_rng(5)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        x = rng.normal(1e6, 1.0, 800 + 100 * i)
        pq.write_table(pa.table({"x": x, "n": rng.integers(0, 9, len(x)), "s": ["a"] * len(x)}),
                       data / f"p{i}.parquet", row_group_size=256)
    single, distributed = tmp_path / "single.json", tmp_path / "dask.json"
    assert_ok(call_cli("stats", data, "-o", single, cwd=tmp_path))
    proc = run_cli("stats", data, "--dask", "-o", distributed, cwd=tmp_path)
    assert_ok(proc)
    # no Dask noise: a real process, whose stderr the cluster's workers share
    assert "over 3 files" in proc.stdout and proc.stderr == ""
    want, got = sn.FeatureStats.load(single), sn.FeatureStats.load(distributed)
    assert got.columns == ["x", "n"]
    assert_same_stats(got, want, rtol=1e-12)
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-15)
    grouped_single, grouped_dask = tmp_path / "g1.json", tmp_path / "g2.json"
    assert_ok(call_cli("stats", data, "--by", "n", "-o", grouped_single, cwd=tmp_path))
    assert_ok(call_cli("stats", data, "--dask", "--by", "n", "-o", grouped_dask, cwd=tmp_path))
    want, got = sn.FeatureStats.load(grouped_single), sn.FeatureStats.load(grouped_dask)
    assert got.by == want.by == ["n"] and got.columns == want.columns == ["x"]
    rows = [got.group_index(key) for key in want.keys["n"].to_pylist()]
    assert sorted(rows) == list(range(9))
    np.testing.assert_array_equal(got.count[rows], want.count)
    np.testing.assert_allclose(got.var()[rows], want.var(), rtol=1e-12)
    proc = call_cli("normalize", data / "*.parquet", tmp_path / "out", "--dask", "--stats", single,
                    "-c", "x", cwd=tmp_path)
    assert_ok(proc)
    assert proc.stdout.startswith("normalized 3 files (batch mode) into")
    x = np.concatenate([pq.read_table(data / f"p{i}.parquet")["x"].to_numpy() for i in range(3)])
    got_x = np.concatenate([pq.read_table(tmp_path / "out" / f"p{i}.parquet")["x"].to_numpy()
                            for i in range(3)])
    np.testing.assert_allclose(got_x, standardized(x), atol=1e-9)


def test_dask_refuses_options_it_does_not_take(tmp_path, wide):
    pytest.importorskip("distributed")
    path, _ = wide
    assert_bad_input(call_cli("stats", path, "--scheduler", "tcp://127.0.0.1:1", cwd=tmp_path),
                     "tcp://127.0.0.1:1", "cannot reach the Dask scheduler")
    assert_bad_input(call_cli("normalize", path, tmp_path / "o", "--dask", "--skip-bad-rows",
                              cwd=tmp_path), "--skip-bad-rows", "--dask")
    assert_bad_input(call_cli("normalize", path, tmp_path / "o", "--dask", "--by", "a",
                              cwd=tmp_path), "--by", "--dask")
    assert_bad_input(call_cli("stats", path, "--dask", "--scheduler", "tcp://h:1", cwd=tmp_path),
                     "not allowed with")


def test_dask_client_keeps_dask_logging_off_stderr(capfd):
    """Dask logs recoverable shutdown races (a worker heartbeat meeting a closed scheduler) as
    errors with tracebacks; ``--dask`` must keep them off the command's stderr, in the worker
    processes as well as in the command's own."""
    import argparse
    import logging

    pytest.importorskip("distributed")
    from dask_tasks import log_error_and_print

    from streamnorm.cli.cluster import dask_client

    logger = logging.getLogger("distributed")
    level_before = logger.level
    with dask_client(argparse.Namespace(scheduler=None, dask=True)) as client:
        client.run(log_error_and_print, "from a worker")
        logging.getLogger("distributed.scheduler").error("logged: from the command")
    assert logger.level == level_before  # restored for the rest of the process
    err = capfd.readouterr().err
    assert "printed: from a worker" in err  # the workers' stderr is captured here...
    assert "logged:" not in err  # ...and none of Dask's logging reached it


def test_json_line_over_the_limit_gives_a_hint_that_applies(tmp_path):
    path = tmp_path / "nul.jsonl"
    path.write_bytes(b"\0" * (4 << 20))
    for extra in ([], ["--skip-bad-rows"]):
        proc = call_cli("stats", path, *extra, cwd=tmp_path)
        assert_bad_input(proc, "nul.jsonl", "line 1 is longer than 1,048,576 bytes",
                         "STREAMNORM_JSON_BLOCK_SIZE")
        assert "--skip-bad-rows" not in proc.stderr


# --------------------------------------------------------------------------- never lose data


def _parts(root: Path, names: str = "abcde") -> dict[str, bytes]:
    """One small Parquet file per name in ``root``; their bytes by name."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(17)
    for name in names:
        table = pa.table({"x": rng.normal(3.0, 2.0, 300), "y": rng.normal(size=300)})
        pq.write_table(table, root / f"{name}.parquet", compression="none",
                       use_dictionary=False, write_page_checksum=True)
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_an_output_that_is_an_input_is_refused(tmp_path):
    d = tmp_path / "d"
    before = _parts(d)
    (tmp_path / "link.parquet").symlink_to(d / "a.parquet")
    cases = [
        (["normalize", "d/*.parquet", "d/a.parquet"], "refusing to overwrite the input"),
        (["normalize", "d/*.parquet", "d/new.parquet"], "matches the input pattern"),
        (["normalize", "d", "d/all.parquet"], "inside the input directory"),
        (["normalize", "d", "./d/../d/sub/all.arrow"], "inside the input directory"),
        (["normalize", "link.parquet", tmp_path / "d" / "a.parquet"], "refusing to overwrite"),
        (["normalize", "d/a.parquet", "link.parquet"], "refusing to overwrite"),
        (["normalize", "d", "d"], "input directory"),
        (["normalize", "d", "d/sub"], "input directory"),
        (["normalize", tmp_path / "d" / "*.parquet", "d"], "refusing to overwrite the input"),
        (["normalize", "d/**/*.parquet", "d/out"], "matches the input pattern"),
        (["stats", "d", "-o", "d/stats.json"], "inside the input directory"),
        (["inverse", "d/a.parquet", "./d/a.parquet"], "refusing to overwrite"),
    ]
    for args, needle in cases:
        assert_bad_input(call_cli(*args, cwd=tmp_path), needle)
    assert _tree(d) == before


def test_library_refuses_an_output_that_is_an_input(tmp_path):
    d = tmp_path / "d"
    before = _parts(d, "ab")
    files = [d / "a.parquet", d / "b.parquet"]
    with pytest.raises(sn.InputError, match="refusing to overwrite the input"):
        sn.normalize_file(files, d / "b.parquet", mode="layer")
    with pytest.raises(sn.InputError, match="inside the input directory"):
        sn.normalize_file(str(d), d / "all.parquet", mode="layer")
    with pytest.raises(sn.InputError, match="input directory"):
        sn.normalize_dataset(d, d / "out", mode="layer")
    with pytest.raises(sn.InputError, match="refusing to overwrite the input"):
        sn.normalize_dataset(files, d, mode="layer")
    with pytest.raises(ValueError):  # InputError is a ValueError
        sn.inverse_file(sn.open_source(d), d / "a.parquet")
    assert _tree(d) == before


def _flip_page_bytes(path: Path) -> None:
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(0)
    data = bytearray(path.read_bytes())
    start = chunk.data_page_offset + chunk.total_compressed_size // 2
    data[start:start + 4] = bytes(b ^ 0xFF for b in data[start:start + 4])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
@pytest.mark.parametrize("existing", [False, True])
def test_directory_to_directory_is_all_or_nothing(tmp_path, existing, damage):
    d = tmp_path / "d"
    _parts(d)
    stats = tmp_path / "stats.json"
    assert_ok(call_cli("stats", d, "-o", stats, cwd=tmp_path))
    third = d / "c.parquet"  # of five files, read after two outputs are written
    if damage == "truncated":
        third.write_bytes(third.read_bytes()[:2000])
    else:
        _flip_page_bytes(third)
    out = tmp_path / "nested" / "out"
    if existing:
        out.mkdir(parents=True)
        (out / "a.parquet").write_bytes(b"an older output")
        (out / "notes.txt").write_bytes(b"not ours")
    proc = call_cli("normalize", d, out, "--stats", stats, cwd=tmp_path)
    assert_bad_input(proc, "c.parquet", "complete" if damage == "truncated" else "row group 0")
    if existing:  # as it was: no new file, the older output intact, no staging beside it
        assert _tree(out) == {"a.parquet": b"an older output", "notes.txt": b"not ours"}
        assert [p.name for p in (tmp_path / "nested").iterdir()] == ["out"]
    else:  # not even the parent directory it had to create
        assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "stats.json"]


def test_directory_to_directory_success_merges_and_keeps_modes(tmp_path):
    d = tmp_path / "d"
    _parts(d, "abc")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.parquet").write_bytes(b"an older output")
    (out / "a.parquet").chmod(0o600)
    (out / "notes.txt").write_bytes(b"not ours")
    proc = run_cli("normalize", d, out, cwd=tmp_path, umask=0o027)
    assert_ok(proc)
    assert sorted(_tree(out)) == ["a.parquet", "b.parquet", "c.parquet", "notes.txt"]
    assert (out / "notes.txt").read_bytes() == b"not ours"
    assert pq.read_metadata(out / "a.parquet").num_rows == 300
    assert (out / "a.parquet").stat().st_mode & 0o777 == 0o600
    assert (out / "b.parquet").stat().st_mode & 0o777 == 0o640
    fresh = tmp_path / "fresh"
    proc = run_cli("normalize", d, fresh, cwd=tmp_path, umask=0o027)
    assert_ok(proc)
    assert fresh.stat().st_mode & 0o777 == 0o750
    assert {p.stat().st_mode & 0o777 for p in fresh.iterdir()} == {0o640}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "fresh", "out"]


def test_interrupted_directory_to_directory_leaves_no_staging(tmp_path, monkeypatch):
    d = tmp_path / "d"
    _parts(d)
    real = pipeline_dataset.write_one
    calls = []

    def interrupted_at_the_third(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline_dataset, "write_one", interrupted_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        sn.normalize_dataset(d, tmp_path / "a" / "out", mode="layer")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
