"""normalize_file's normalizing pass, Parquet to Parquet: small batches put back into the
default row groups (the same file), kernel outputs from Arrow's pool, and failures of the
writing thread in the middle of the output (one-line error, nothing left behind)."""

from __future__ import annotations

import textwrap
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import assert_bad_input, run_python

import streamnorm as sn
from streamnorm import columns as cols
from streamnorm.arrow import files as arrow_files
from streamnorm.pipeline import files

#: Scaled-down sizes, so the split path runs on a small file: default batches of 64 rows,
#: normalizing batches of 16.
BATCH, SPLIT = 64, 16


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(arrow_files, "PARQUET_BATCH_ROWS", BATCH)
    monkeypatch.setattr(files, "PARQUET_BATCH_ROWS", BATCH)
    monkeypatch.setattr(files, "SPLIT_BATCH_ROWS", SPLIT)


def _source(path, rows, row_group):
    rng = np.random.default_rng(7)
    x = rng.normal(1e9, 3.0, rows)
    x[rows // 2] = np.nan
    y = rng.normal(0.0, 1.0, rows).astype(np.float32)
    mask = np.zeros(rows, dtype=bool)
    mask[::7] = True
    table = pa.table({"x": x, "y": pa.array(y, mask=mask), "k": np.arange(rows)})
    pq.write_table(table, path, row_group_size=row_group)
    return table


def _row_groups(path):
    metadata = pq.ParquetFile(path).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


@pytest.mark.parametrize("rows", [2 * BATCH * 2 + 37, 2 * BATCH * 3, 5])
def test_split_batches_write_the_same_file(tmp_path, small_batches, monkeypatch, rows):
    src = tmp_path / "in.parquet"
    _source(src, rows, 2 * BATCH)
    assert files._split_batches(src, "parquet", None, None, False)
    seen = []
    real = files.schema_and_batches

    def spy(source, columns=None, batch_size=None):
        seen.append(batch_size)
        return real(source, columns, batch_size)

    monkeypatch.setattr(files, "schema_and_batches", spy)
    files.normalize_file(src, tmp_path / "split.parquet")
    assert seen == [SPLIT]  # the normalizing pass read small batches
    # an explicit batch size of the default reads (and writes) the default batches
    files.normalize_file(src, tmp_path / "plain.parquet", batch_size=BATCH)
    split, plain = (tmp_path / "split.parquet").read_bytes(), (tmp_path / "plain.parquet").read_bytes()
    assert split == plain
    assert _row_groups(tmp_path / "split.parquet") == [
        min(BATCH, rows - start) for start in range(0, rows, BATCH)]


def test_split_batches_only_where_the_row_groups_stay(tmp_path, small_batches):
    src = tmp_path / "in.parquet"
    _source(src, 200, 100)  # row groups of 100 rows: default batches 64 + 36 per group
    assert not files._split_batches(src, "parquet", None, None, False)
    files.normalize_file(src, tmp_path / "out.parquet")
    assert _row_groups(tmp_path / "out.parquet") == [64, 36, 64, 36]
    _source(src, 256, 128)
    for batch_size, row_group_size, online, fmt in [(32, None, False, "parquet"),
                                                    (None, 50, False, "parquet"),
                                                    (None, None, True, "parquet"),
                                                    (None, None, False, "ipc-file")]:
        assert not files._split_batches(src, fmt, batch_size, row_group_size, online)
    assert not files._split_batches(pa.table({"x": [1.0]}), "parquet", None, None, False)


def test_split_batches_values_match_the_in_memory_transform(tmp_path, small_batches):
    src = tmp_path / "in.parquet"
    table = _source(src, 2 * BATCH * 2, 2 * BATCH)
    result = files.normalize_file(src, tmp_path / "out.parquet")
    want = result.normalizer.transform(table)
    got = pq.read_table(tmp_path / "out.parquet")
    assert got.schema.equals(want.schema, check_metadata=True)
    for name in ("x", "y", "k"):  # the same bits, NaN and nulls in the same places
        g, w = got[name].combine_chunks(), want[name].combine_chunks()
        assert g.is_null().equals(w.is_null()), name
        np.testing.assert_array_equal(g.to_numpy(zero_copy_only=False),
                                      w.to_numpy(zero_copy_only=False), strict=True)


def test_pooled_empty_is_a_writable_aligned_array():
    out = cols.pooled_empty(1000, np.float32)
    assert out.shape == (1000,) and out.dtype == np.float32 and out.flags.writeable
    assert out.ctypes.data % 64 == 0
    out[:] = 1.5
    assert pa.py_buffer(out).to_pybytes() == np.full(1000, 1.5, np.float32).tobytes()
    assert cols.pooled_empty(0, np.float64).shape == (0,)


FAILING_WRITE = textwrap.dedent(
    """
    import errno, sys
    from streamnorm.arrow import sinks
    from streamnorm.cli import main
    real, calls = sinks.BatchWriter._write_now, []

    def failing(self, batch):  # the disk fills up in the middle of the output
        calls.append(batch.num_rows)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, batch)

    sinks.BatchWriter._write_now = failing
    sys.exit(main(sys.argv[1:]))
    """
)


def test_a_write_failing_midway_is_one_line_and_leaves_nothing(tmp_path):
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(pa.table({"x": np.arange(300_000.0)}), src, row_group_size=131_072)
    dst.write_bytes(b"keep me")
    proc = run_python("-c", FAILING_WRITE, "normalize", src, dst, "--no-progress",
                      cwd=tmp_path)
    assert_bad_input(proc, "No space left on device")
    assert dst.read_bytes() == b"keep me"  # the existing output is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"]


def test_transform_batches_use_pooled_outputs():
    table = pa.table({"x": np.arange(1000.0)})
    before = pa.total_allocated_bytes()
    norm = sn.Normalizer("batch").fit(table)
    out = norm.transform(table.to_batches()[0])
    assert pa.total_allocated_bytes() - before >= 1000 * 8  # held by Arrow's pool
    assert np.allclose(out["x"].to_numpy(), (np.arange(1000.0) - 499.5) / np.arange(1000.0).std())


def test_parallel_reader_decodes_at_most_one_batch_ahead(tmp_path, monkeypatch):
    """Each decoding thread holds at most PARQUET_READ_AHEAD batches the consumer has not
    taken, however long the consumer waits (the memory the reader adds stays bounded)."""
    from streamnorm.arrow import parquet

    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({f"c{j}": np.arange(4_000.0) + j for j in range(4)}), path,
                   row_group_size=1_000)
    monkeypatch.setattr(parquet, "PARQUET_PARALLEL_BYTES", 0)
    monkeypatch.setattr(parquet, "reader_threads", lambda: 2)
    decoded: dict[tuple[str, ...], int] = {}
    real = parquet.parquet_row_groups
    done = threading.Event()

    def counting(path, reader, **options):
        key = tuple(options["columns"])
        for batch in real(path, reader, **options):
            decoded[key] = decoded.get(key, 0) + 1
            if decoded[key] > 3:  # one more than allowed: stop waiting
                done.set()
            yield batch

    monkeypatch.setattr(parquet, "parquet_row_groups", counting)
    batches = parquet.parquet_batches(path, pq.ParquetFile(path), None, 100)
    taken = [next(batches) for _ in range(2)]
    done.wait(0.5)  # time for a thread to run ahead if it could
    assert len(decoded) == 2  # two decoding threads
    assert all(n <= len(taken) + parquet.PARQUET_READ_AHEAD for n in decoded.values()), decoded
    rest = list(batches)
    assert sum(b.num_rows for b in taken + rest) == 4_000
