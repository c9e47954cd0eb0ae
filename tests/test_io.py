"""streamnorm.arrow: the parallel Parquet reader and the background-thread writer.

Files here are small, so the parallel reader is forced on by lowering its size threshold; its
batches must equal one reader's exactly (values, schema with metadata, order).
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import streamnorm as sn
from streamnorm import arrow
from streamnorm.arrow import parquet, sinks
from streamnorm.errors import InputError


@pytest.fixture
def parallel(monkeypatch):
    """Every Parquet file large enough for parallel decoding, on at least 3 threads."""
    monkeypatch.setattr(parquet, "PARQUET_PARALLEL_BYTES", 0)
    monkeypatch.setattr(parquet, "reader_threads", lambda: 3)


def _same(a: pa.RecordBatch, b: pa.RecordBatch) -> bool:
    """Equal values, NaN equal to NaN (``RecordBatch.equals`` says NaN != NaN)."""
    return a.num_rows == b.num_rows and all(
        repr(x.to_pylist()) == repr(y.to_pylist()) for x, y in zip(a.columns, b.columns)
    )


def _serial_batches(path, columns=None, rows=parquet.PARQUET_BATCH_ROWS):
    parquet = pq.ParquetFile(path)
    out = []
    for i in range(parquet.num_row_groups):
        out.extend(parquet.iter_batches(batch_size=rows, row_groups=[i], columns=columns))
    return out


@pytest.fixture
def mixed(tmp_path, rng):
    """Several row groups; numeric, string, vector and nullable columns; pandas metadata."""
    n = 5_000
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * 3)), 3)
    table = pa.table({
        "a": rng.normal(1e6, 3.0, n),
        "b": pa.array(rng.integers(0, 100, n), pa.int32()),
        "name": [f"r{i % 7}" for i in range(n)],
        "v": vectors,
        "f": pa.array(np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
                      pa.float32()),
        "nul": pa.array([None if i % 5 == 0 else float(i) for i in range(n)]),
    }).replace_schema_metadata({"pandas": '{"x": 1}', "other": "y"})
    path = tmp_path / "mixed.parquet"
    pq.write_table(table, path, row_group_size=1_300)
    return path, table


@pytest.mark.parametrize("columns", [None, ["nul", "a", "v"], ["b", "a", "b"]])
@pytest.mark.parametrize("batch_size", [None, 512, 1_300])
def test_parallel_reader_gives_the_serial_batches(parallel, mixed, columns, batch_size):
    path, _ = mixed
    got = list(arrow.iter_batches(path, columns=columns, batch_size=batch_size))
    want = _serial_batches(path, columns, batch_size or parquet.PARQUET_BATCH_ROWS)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.schema.equals(w.schema, check_metadata=True)
        assert _same(g, w)


def test_parallel_reader_splits_the_columns(mixed):
    path, _ = mixed
    groups = parquet.parquet_column_groups(pq.ParquetFile(path), None, 2)
    assert groups is None  # below the size threshold: one thread
    io_threshold = parquet.PARQUET_PARALLEL_BYTES
    try:
        parquet.PARQUET_PARALLEL_BYTES = 0
        groups = parquet.parquet_column_groups(pq.ParquetFile(path), None, 2)
        assert sorted(sum(groups, [])) == sorted(pq.ParquetFile(path).schema_arrow.names)
        assert len(groups) == 2 and all(groups)
        assert parquet.parquet_column_groups(pq.ParquetFile(path), ["a"], 2) is None
        assert parquet.parquet_column_groups(pq.ParquetFile(path), ["a", "zz"], 2) is None
        assert parquet.parquet_column_groups(pq.ParquetFile(path), None, 1) is None
    finally:
        parquet.PARQUET_PARALLEL_BYTES = io_threshold


def test_parallel_stats_and_normalize_match_serial(parallel, mixed, monkeypatch, tmp_path):
    path, table = mixed
    fast = sn.feature_stats(path)
    monkeypatch.setattr(parquet, "reader_threads", lambda: 1)
    slow = sn.feature_stats(path)
    assert fast.to_arrow().equals(slow.to_arrow())
    monkeypatch.setattr(parquet, "reader_threads", lambda: 3)
    sn.normalize_file(path, tmp_path / "out.parquet")
    sn.normalize_file(table, tmp_path / "ref.parquet", stats=fast)
    out, ref = (pq.read_table(tmp_path / n).combine_chunks().to_batches()[0]
                for n in ("out.parquet", "ref.parquet"))
    assert out.schema.equals(ref.schema, check_metadata=True) and _same(out, ref)


def test_parallel_reader_stops_its_threads_when_closed_early(parallel, mixed):
    path, _ = mixed
    before = threading.active_count()
    batches = arrow.iter_batches(path, batch_size=100)
    next(batches)
    assert threading.active_count() > before
    batches.close()
    assert threading.active_count() == before


def test_parallel_reader_reports_a_corrupt_file(parallel, mixed, tmp_path):
    path, _ = mixed
    data = bytearray(path.read_bytes())
    start, stop = len(data) // 4, len(data) // 2  # inside the column chunks; footer intact
    data[start:stop] = np.random.default_rng(5).integers(0, 256, stop - start, np.uint8).tobytes()
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(bytes(data))
    before = threading.active_count()
    with pytest.raises(InputError, match="truncated or corrupt"):
        for _ in arrow.iter_batches(bad):
            pass
    assert threading.active_count() == before


def test_writer_thread_writes_every_batch_in_order(tmp_path, rng):
    table = pa.table({"x": rng.normal(size=10_000), "y": np.arange(10_000)})
    for name, options in [("a.parquet", {}), ("b.parquet", {"row_group_size": 3_000}),
                          ("c.arrow", {}), ("d.arrows", {"float32": True})]:
        with sinks.atomic_path(tmp_path / name) as tmp:
            with sinks.BatchWriter(tmp, table.schema, arrow.output_format(tmp_path / name),
                                **options) as writer:
                for batch in table.to_batches(max_chunksize=700):
                    writer.write(batch)
        back = sinks.read_table(tmp_path / name)
        assert back.num_rows == table.num_rows
        assert np.array_equal(back["y"].to_numpy(), table["y"].to_numpy())


class _Boom(Exception):
    pass


def test_writer_thread_error_is_raised_and_leaves_no_file(tmp_path, monkeypatch):
    table = pa.table({"x": np.arange(10.0)})
    calls = []

    def failing(self, batch):
        calls.append(batch.num_rows)
        raise _Boom("disk full")

    monkeypatch.setattr(sinks.BatchWriter, "_write_now", failing)
    dst = tmp_path / "out.parquet"
    with pytest.raises(_Boom, match="disk full"):
        with sinks.atomic_path(dst) as tmp:
            with sinks.BatchWriter(tmp, table.schema, "parquet") as writer:
                for _ in range(5):
                    writer.write(table.to_batches()[0])
    assert not list(tmp_path.iterdir())
    assert len(calls) <= 2  # the writer stops at the first failure


def test_writer_abort_on_an_exception_in_the_caller(tmp_path):
    table = pa.table({"x": np.arange(10.0)})
    dst = tmp_path / "out.parquet"
    with pytest.raises(KeyError):
        with sinks.atomic_path(dst) as tmp:
            with sinks.BatchWriter(tmp, table.schema, "parquet") as writer:
                writer.write(table.to_batches()[0])
                raise KeyError("caller failed")
    assert not list(tmp_path.iterdir())


@pytest.fixture
def umask():
    """Set the process umask for a test; the previous one is restored afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_outputs_get_the_umask_permissions(tmp_path, umask, mask, mode):
    umask(mask)
    table = pa.table({"x": np.arange(10.0)})
    for name in ("t.parquet", "t.arrow", "t.arrows"):
        sinks.write_table(table, tmp_path / name)
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
    stats = sn.feature_stats(table)
    for name in ("s.json", "s.arrow", "s.parquet"):
        stats.save(tmp_path / name)
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


def test_overwriting_keeps_the_file_mode(tmp_path, umask):
    table = pa.table({"x": np.arange(10.0)})
    for name, mode in [("a.parquet", 0o600), ("b.arrow", 0o664), ("c.json", 0o640)]:
        dst = tmp_path / name
        dst.write_bytes(b"previous")
        dst.chmod(mode)
        if name.endswith(".json"):
            sn.feature_stats(table).save(dst)
        else:
            sinks.write_table(table, dst)
        assert dst.stat().st_mode & 0o777 == mode, name
        assert dst.read_bytes() != b"previous"


def test_interrupt_right_after_the_temporary_file_is_created_leaves_nothing(
    tmp_path, monkeypatch
):
    # A Ctrl-C landing just after the temporary file exists (here: when its descriptor is
    # closed) must still remove it: the window issue 12 saw as a stray `.result.arrows.*.tmp`.
    dst = tmp_path / "result.arrows"
    dst.write_bytes(b"previous result")
    real_close = os.close
    fired = []

    def close_then_interrupt(fd):
        real_close(fd)
        if not fired:
            fired.append(fd)
            raise KeyboardInterrupt

    monkeypatch.setattr(sinks.os, "close", close_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        with sinks.atomic_path(dst):
            pass
    monkeypatch.undo()
    assert fired
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.arrows"]
    assert dst.read_bytes() == b"previous result"


def _flip_page_bytes(path, row_group: int, column: int, at: float = 0.5, count: int = 4):
    """Flip ``count`` bytes ``at`` of the way into a column chunk's data pages (the footer,
    and so the file's structure, stay intact)."""
    chunk = pq.ParquetFile(path).metadata.row_group(row_group).column(column)
    data = bytearray(path.read_bytes())
    start = chunk.data_page_offset + int(chunk.total_compressed_size * at)
    data[start:start + count] = bytes(b ^ 0xFF for b in data[start:start + count])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("threads", ["serial", "parallel"])
def test_page_checksums_are_written_and_verified(tmp_path, rng, monkeypatch, threads):
    if threads == "parallel":
        monkeypatch.setattr(parquet, "PARQUET_PARALLEL_BYTES", 0)
        monkeypatch.setattr(parquet, "reader_threads", lambda: 3)
    table = pa.table({"x": rng.normal(size=4_000), "y": rng.normal(size=4_000)})
    path = tmp_path / "t.parquet"
    with sinks.atomic_path(path) as tmp:
        with sinks.BatchWriter(tmp, table.schema, "parquet", compression="none") as writer:
            for batch in table.to_batches(max_chunksize=1_000):
                writer.write(batch)
    assert sinks.read_table(path).equals(table)
    _flip_page_bytes(path, row_group=2, column=1)
    # without verification the flipped bytes are just other numbers
    assert not pq.read_table(path).equals(table)
    with pytest.raises(InputError, match=r"t\.parquet: row group 2 is truncated or corrupt "
                                         r"\(.*CRC"):
        for _ in arrow.iter_batches(path):
            pass
