"""The ``streamnorm`` command on real files in a temporary directory: in this process
(``call_cli``: what it does with its arguments and files), and as a real subprocess where the
process itself is tested (a success, a bad input, the demo, interrupts).

Every bad input must give exit code 2 and exactly one line on stderr, never a traceback; an
interrupted run must leave no output and no temporary file, and an existing destination intact.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from helpers import assert_bad_input, call_cli, run_cli, start_cli

import streamnorm as sn


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def table() -> pa.Table:
    rng = np.random.default_rng(7)
    n = 2000
    return pa.table(
        {
            "x": pa.array(rng.normal(5.0, 2.0, n), mask=rng.random(n) < 0.1),
            "i": rng.integers(-50, 50, n, dtype=np.int32),
            "f": rng.normal(0, 1, n).astype(np.float32),
            "name": pa.array([f"r{k}" for k in range(n)]),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(1, 3, n * 4)), 4),
        }
    )


@pytest.fixture
def data(tmp_path: Path, table: pa.Table) -> Path:
    path = tmp_path / "data.parquet"
    pq.write_table(table, path, row_group_size=500)
    return path


# --------------------------------------------------------------------------- success paths


def test_stats_prints_a_table_of_the_numeric_columns(tmp_path, data, table):
    proc = run_cli("stats", data, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["column", "count", "null_count", "nan_count", "inf_count",
                                "mean", "std(ddof=0)", "min", "max"]
    assert [line.split()[0] for line in lines[1:]] == ["x", "i", "f"]
    x = lines[1].split()
    assert int(x[1]) + int(x[2]) == 2000 and int(x[2]) == table["x"].null_count
    assert float(x[5]) == pytest.approx(pa.compute.mean(table["x"]).as_py(), rel=1e-9)


def test_stats_saved_in_each_format_loads_back_equal(tmp_path, data, table):
    for name in ("s.json", "s.arrow", "s.parquet"):
        proc = call_cli("stats", data, "-c", "i", "-c", "x", "-o", name, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        stats = sn.FeatureStats.load(tmp_path / name)
        assert stats.columns == ["i", "x"]
        assert stats == sn.feature_stats(data, columns=["i", "x"])


def test_inverse_restores_what_normalize_wrote(tmp_path, data, table):
    proc = call_cli("normalize", data, "out.arrow", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2,000 rows of 3 columns (batch mode" in proc.stdout
    out = sn.arrow.read_table(tmp_path / "out.arrow")
    assert out.column_names == table.column_names
    assert out["vec"].equals(table["vec"]) and out["name"].equals(table["name"])
    assert abs(np.nanmean(out["x"].to_numpy(zero_copy_only=False))) < 1e-12
    proc = call_cli("inverse", "out.arrow", "back.parquet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    back = pq.read_table(tmp_path / "back.parquet")
    np.testing.assert_allclose(
        back["x"].to_numpy(zero_copy_only=False), table["x"].to_numpy(zero_copy_only=False),
        rtol=1e-14,
    )
    assert back["x"].null_count == table["x"].null_count


def test_normalize_with_a_stats_file_takes_one_pass_and_records_eps(tmp_path, data, table):
    assert call_cli("stats", data, "-o", "s.json", cwd=tmp_path).returncode == 0
    proc = call_cli("normalize", data, "out.parquet", "--stats", "s.json", "--eps", "0.5",
                    "--batch-size", "300", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 pass)" in proc.stdout
    expected = sn.Normalizer(eps=0.5).fit(table).transform(table)
    got = pq.read_table(tmp_path / "out.parquet")
    np.testing.assert_allclose(got["i"].to_numpy(), expected["i"].to_numpy(), rtol=1e-12)
    assert json.loads(got.schema.metadata[b"streamnorm"])["eps"] == 0.5


@pytest.mark.parametrize("mode", ["layer", "rms"])
def test_row_modes_match_the_library_and_pass_other_columns_through(tmp_path, data, table, mode):
    proc = call_cli("normalize", data, "out.arrows", "--mode", mode, "-c", "vec", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = sn.arrow.read_table(tmp_path / "out.arrows")
    expected = sn.Normalizer(mode, columns=["vec"]).transform(table)
    assert got["vec"].combine_chunks().equals(expected["vec"].combine_chunks())
    assert got["x"].equals(table["x"])


def test_empty_file_gives_empty_output(tmp_path):
    src = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"x": pa.array([], pa.int64()), "s": pa.array([], pa.string())}), src)
    proc = call_cli("normalize", src, "out.parquet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = pq.read_table(tmp_path / "out.parquet")
    assert got.num_rows == 0 and got.schema.field("x").type == pa.float64()
    proc = call_cli("stats", src, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.splitlines()[1].split()[:2] == ["x", "0"]


def test_demo_runs_every_step_and_writes_its_files(tmp_path):
    assert run_cli("--help", cwd=tmp_path).returncode == 0
    proc = run_cli("demo", "--rows", "3000", "--dir", "d", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[5/5]" in proc.stdout and "Traceback" not in proc.stderr
    assert {"demo.parquet", "demo-normalized.parquet", "demo-restored.parquet",
            "demo-layer.parquet"} <= set(listing(tmp_path / "d"))


# --------------------------------------------------------------------------- bad inputs


def test_missing_input_is_one_line_and_writes_nothing(tmp_path):
    assert_bad_input(run_cli("stats", "nope.parquet", cwd=tmp_path), "nope.parquet",
                     "no such file")
    assert_bad_input(run_cli("normalize", "nope.parquet", "o.parquet", cwd=tmp_path),
                     "no such file")
    assert listing(tmp_path) == []


def test_non_arrow_and_zero_byte_inputs_are_one_line(tmp_path):
    (tmp_path / "notes.parquet").write_text("hello, not parquet\n")
    assert_bad_input(call_cli("stats", "notes.parquet", cwd=tmp_path),
                     "not an Arrow IPC or Parquet")
    (tmp_path / "zero.arrow").write_bytes(b"")
    assert_bad_input(call_cli("normalize", "zero.arrow", "o.parquet", cwd=tmp_path), "empty",
                     absent=[tmp_path / "o.parquet"])


def test_truncated_inputs_are_named_and_leave_no_output(tmp_path, data, table):
    blob = data.read_bytes()
    (tmp_path / "cut.parquet").write_bytes(blob[: len(blob) // 2])
    assert_bad_input(call_cli("normalize", "cut.parquet", "o.parquet", cwd=tmp_path),
                     "cut.parquet", absent=[tmp_path / "o.parquet"])
    stream = tmp_path / "cut.arrows"
    with ipc.new_stream(tmp_path / "full.arrows", table.schema) as writer:
        for batch in table.to_batches(max_chunksize=200):
            writer.write_batch(batch)
    whole = (tmp_path / "full.arrows").read_bytes()
    stream.write_bytes(whole[: len(whole) * 2 // 3])
    assert_bad_input(call_cli("normalize", stream, "o.parquet", cwd=tmp_path), "truncated",
                     absent=[tmp_path / "o.parquet"])
    assert not [n for n in listing(tmp_path) if n.endswith(".tmp")]


def test_unknown_and_non_numeric_columns_are_refused(tmp_path, data):
    assert_bad_input(call_cli("stats", data, "-c", "zz", cwd=tmp_path), "'zz' is not in the data")
    assert_bad_input(call_cli("normalize", data, "o.parquet", "-c", "name", cwd=tmp_path),
                     "'name' has type string")
    assert_bad_input(call_cli("normalize", data, "o.parquet", "--mode", "layer", "-c", "zz",
                              cwd=tmp_path), "'zz'")
    assert_bad_input(call_cli("normalize", data, "o.parquet", "-c", "vec", cwd=tmp_path),
                     "mode 'layer' or 'rms'")


def test_stats_file_that_does_not_match_the_data_is_refused(tmp_path, data):
    sn.feature_stats(pa.table({"other": [1.0, 2.0]})).save(tmp_path / "s.json")
    assert_bad_input(call_cli("normalize", data, "o.parquet", "--stats", "s.json", cwd=tmp_path),
                     "'other'", "not in the data")
    (tmp_path / "bad.json").write_text("{not json")
    assert_bad_input(call_cli("normalize", data, "o.parquet", "--stats", "bad.json", cwd=tmp_path),
                     "bad.json")
    assert_bad_input(call_cli("normalize", data, "o.parquet", "--stats", "missing.json",
                              cwd=tmp_path), "missing.json", absent=[tmp_path / "o.parquet"])


def test_corrupt_stats_files_are_one_line(tmp_path, data):
    sn.feature_stats(data, columns=["x", "i"]).save(tmp_path / "good.json")
    doc = json.loads((tmp_path / "good.json").read_text())
    doc["columns"][1]["count"] = -4
    (tmp_path / "negative.json").write_text(json.dumps(doc))
    (tmp_path / "nested.json").write_text("[" * 100_000)
    (tmp_path / "array.json").write_text("[1, 2]")
    (tmp_path / "latin1.json").write_bytes(b'{"kind": "FeatureStats", "x": "\xe9"}')
    (tmp_path / "empty.json").write_text("")
    table = sn.FeatureStats.load(tmp_path / "good.json").to_arrow()
    pq.write_table(table.set_column(1, "count", pa.array(["many", "few"])),
                   tmp_path / "strings.parquet")
    cases = {"negative.json": "'count' is negative", "nested.json": "nested too deeply",
             "array.json": "not a streamnorm statistics file", "latin1.json": "not UTF-8",
             "empty.json": "not valid JSON", "strings.parquet": "'count' has type string"}
    for name, needle in cases.items():
        assert_bad_input(call_cli("normalize", data, "o.parquet", "--stats", name, cwd=tmp_path),
                         name, needle, absent=[tmp_path / "o.parquet"])


def test_inverse_refuses_row_modes_and_files_without_a_record(tmp_path, data):
    for mode in ("layer", "rms"):
        assert call_cli("normalize", data, f"{mode}.parquet", "--mode", mode,
                        cwd=tmp_path).returncode == 0
        assert_bad_input(call_cli("inverse", f"{mode}.parquet", "back.parquet", cwd=tmp_path),
                         f"{mode} mode", "cannot be inverted")
    assert_bad_input(call_cli("inverse", data, "back.parquet", cwd=tmp_path),
                     "no streamnorm normalization record", "--stats",
                     absent=[tmp_path / "back.parquet"])


def test_by_with_many_keys_writes_statistics_beside_the_output(tmp_path):
    n = 20_000
    pq.write_table(pa.table({"k": np.arange(n), "x": np.arange(n) * 0.5}), tmp_path / "in.parquet")
    proc = call_cli("normalize", "in.parquet", "out.parquet", "--by", "k", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "out.parquet.stats.arrow" in listing(tmp_path)
    assert len(pq.read_schema(tmp_path / "out.parquet").metadata[b"streamnorm"]) < 1000
    assert call_cli("inverse", "out.parquet", "back.parquet", cwd=tmp_path).returncode == 0
    assert pq.read_table(tmp_path / "back.parquet")["x"].to_numpy().tolist() == (
        (np.arange(n) * 0.5).tolist())
    (tmp_path / "out.parquet.stats.arrow").unlink()
    assert_bad_input(call_cli("inverse", "out.parquet", "again.parquet", cwd=tmp_path),
                     "out.parquet.stats.arrow is missing")


def test_unwritable_destinations_are_one_line(tmp_path, data):
    (tmp_path / "afile").write_text("x")
    # tests may run as root, for whom chmod does not forbid writing: use impossible paths
    assert_bad_input(call_cli("normalize", data, "afile/out.parquet", cwd=tmp_path),
                     "not an existing directory")
    assert_bad_input(call_cli("normalize", data, "no/such/dir/out.parquet", cwd=tmp_path),
                     "not an existing directory")
    assert_bad_input(call_cli("stats", data, "-o", "afile/s.json", cwd=tmp_path),
                     "not an existing directory")
    (tmp_path / "adir.parquet").mkdir()
    assert_bad_input(call_cli("normalize", data, "adir.parquet", cwd=tmp_path), "is a directory")
    assert_bad_input(call_cli("normalize", data, "out.csv", cwd=tmp_path), "unknown output format")
    assert_bad_input(call_cli("stats", data, "-o", "s.txt", cwd=tmp_path),
                     "unknown statistics format")


def test_normalize_refuses_output_equal_to_input(tmp_path, data):
    before = data.read_bytes()
    assert_bad_input(call_cli("normalize", data, data, cwd=tmp_path), "refusing to overwrite")
    assert_bad_input(call_cli("normalize", data, "./data.parquet", cwd=tmp_path), "refusing")
    assert data.read_bytes() == before


def test_bad_usage_is_one_line_naming_the_option(tmp_path, data):
    assert_bad_input(call_cli(cwd=tmp_path), "required")
    assert_bad_input(call_cli("normalize", data, cwd=tmp_path), "OUT")
    assert_bad_input(call_cli("normalize", data, "o.parquet", "--mode", "group", cwd=tmp_path),
                     "invalid choice")
    assert_bad_input(call_cli("normalize", data, "o.parquet", "--batch-size", "0", cwd=tmp_path),
                     "at least 1")
    assert_bad_input(call_cli("normalize", data, "o.parquet", "--eps", "-1", cwd=tmp_path), ">= 0")
    assert_bad_input(call_cli("normalize", data, "o.parquet", "--mode", "rms", "--stats", "s.json",
                              cwd=tmp_path), "--stats applies to --mode batch only")
    assert_bad_input(call_cli("inverse", data, "o.parquet", cwd=tmp_path),
                     "no streamnorm normalization record")


# --------------------------------------------------------------------------- interrupts


@pytest.fixture
def big(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    n = 120_000
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({f"c{j}": rng.normal(0, 1, n) for j in range(4)}), path)
    return path


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_leaves_no_output_and_the_old_destination_intact(tmp_path, big, sig, code):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dst = out_dir / "result.arrows"
    dst.write_bytes(b"previous result")
    proc = start_cli("normalize", big, dst, "--batch-size", "40", cwd=tmp_path, text=True)
    deadline = time.monotonic() + 90
    while not any(p.suffix == ".tmp" for p in out_dir.iterdir()):  # the writing pass started
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.005)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert listing(out_dir) == ["result.arrows"]
    assert dst.read_bytes() == b"previous result"


# --------------------------------------------------------------------------- corrupt pages


def _flip_page_bytes(path: Path, row_group: int, column: int, at: float) -> None:
    chunk = pq.ParquetFile(path).metadata.row_group(row_group).column(column)
    data = bytearray(path.read_bytes())
    start = chunk.data_page_offset + int(chunk.total_compressed_size * at)
    data[start:start + 4] = bytes(b ^ 0xFF for b in data[start:start + 4])
    path.write_bytes(bytes(data))


def test_corrupt_page_with_checksum_is_named(tmp_path, table):
    src = tmp_path / "src.parquet"
    pq.write_table(table, src, row_group_size=500)
    clean = tmp_path / "clean.parquet"  # written by streamnorm: pages carry a CRC
    assert call_cli("normalize", src, clean, "--compression", "none", "--mode", "layer", "-c", "x",
                    "-c", "f", cwd=tmp_path).returncode == 0
    before = call_cli("stats", clean, "-c", "x", cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    column = pq.ParquetFile(clean).schema_arrow.get_field_index("x")
    _flip_page_bytes(clean, row_group=2, column=column, at=0.6)  # values, not the header
    for args in (["stats", clean], ["normalize", clean, tmp_path / "o.parquet", "--mode", "rms",
                                    "-c", "x", "-c", "f"]):
        assert_bad_input(call_cli(*args, cwd=tmp_path), "clean.parquet", "row group 2", "corrupt")
    assert not (tmp_path / "o.parquet").exists()


def test_corrupt_page_without_checksum_that_fails_to_decode_is_named(tmp_path, table):
    src = tmp_path / "plain.parquet"
    pq.write_table(table, src, row_group_size=500, write_page_checksum=False)
    _flip_page_bytes(src, row_group=1, column=0, at=0.0)  # the page header
    assert_bad_input(call_cli("stats", src, cwd=tmp_path), "plain.parquet", "row group 1")


def test_normalize_refuses_inf_and_skips_it_on_request(tmp_path):
    n = 336_776
    x = np.linspace(0.0, 1.0, n)
    x[100] = np.inf
    pq.write_table(pa.table({"x": x, "y": np.arange(n, dtype=np.float64)}), tmp_path / "in.parquet")
    proc = call_cli("normalize", "in.parquet", "out.parquet", "--no-progress", cwd=tmp_path)
    assert_bad_input(proc, "'x' (1 ±inf: +inf)", "--inf skip", absent=[tmp_path / "out.parquet"])
    assert "'y'" not in proc.stderr
    proc = call_cli("normalize", "in.parquet", "out.parquet", "--no-progress", "--inf", "skip",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = pq.read_table(tmp_path / "out.parquet")["x"].to_numpy()
    assert got[100] == np.inf and np.isfinite(np.delete(got, 100)).all()
    # stats reports the true values by default, and counts the infinities when skipping
    proc = call_cli("stats", "in.parquet", "-o", "s.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    kept = sn.FeatureStats.load(tmp_path / "s.json")
    assert kept.mean[0] == np.inf and kept.inf_count.tolist() == [1, 0]
    proc = call_cli("normalize", "in.parquet", "o2.parquet", "--stats", "s.json", cwd=tmp_path)
    assert_bad_input(proc, "'x'", "streamnorm stats --inf skip")
    proc = call_cli("stats", "in.parquet", "--inf", "skip", "-o", "skip.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = call_cli("normalize", "in.parquet", "o2.parquet", "--stats", "skip.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(tmp_path / "o2.parquet")["x"].equals(
        pq.read_table(tmp_path / "out.parquet")["x"])


def test_huge_values_and_near_constant_columns_normalize_and_invert(tmp_path):
    table = pa.table({"h": [1.7e308, -1.7e308, 1.7e308, -1.7e308],
                      "c": [1.0, 1.0, 1.0 + 2**-52, 1.0 + 2**-52]})
    pq.write_table(table, tmp_path / "in.parquet")
    proc = call_cli("normalize", "in.parquet", "out.parquet", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = pq.read_table(tmp_path / "out.parquet")
    assert out["h"].to_pylist() == [1.0, -1.0, 1.0, -1.0]
    assert np.all(np.abs(out["c"].to_numpy()) <= 2**-52)
    proc = call_cli("inverse", "out.parquet", "back.parquet", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(tmp_path / "back.parquet")["h"].equals(table["h"])
