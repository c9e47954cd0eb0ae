"""Parquet row groups encoded on several threads and stitched (streamnorm.arrow.parquet_stitch):
the Thrift compact codec round-trips every field, the stitched file is byte for byte the file
one pq.ParquetWriter writes (whatever the thread count), every reader reads it back, and a
failure in the middle leaves no output."""

from __future__ import annotations

import struct
import threading

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import streamnorm as sn
from streamnorm.arrow import parquet_stitch as ps
from streamnorm.arrow import thrift as ps_thrift

#: The writer options BatchWriter uses for Parquet files.
OPTIONS = {"compression": "zstd", "use_dictionary": ["i", "s"], "write_page_checksum": True}


def _table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    mask = rng.random(rows) < 0.1
    return pa.table(
        {
            "x": rng.normal(1e9, 3.0, rows),
            "f": pa.array(rng.normal(0, 1, rows).astype(np.float32), mask=mask),
            "h": pa.array(rng.normal(0, 1, rows).astype(np.float16)),
            "i": pa.array(rng.integers(0, 50, rows), pa.int32()),
            "s": pa.array([f"k{k % 5}" for k in range(rows)]),
            "v": pa.FixedSizeListArray.from_arrays(
                pa.array(rng.normal(0, 1, 4 * rows).astype(np.float32)), 4),
            "n": pa.nulls(rows, pa.float64()),
        },
        metadata={"streamnorm": '{"mode": "batch"}'},
    )


def _feed(writer, calls, extra) -> None:
    """Make ``calls`` ((method, argument, rows) each) on a pq.ParquetWriter or its stitching
    look-alike, add ``extra`` key-value metadata, close it."""
    for method, data, size in calls:
        if method == "batch":
            writer.write_batch(data)
        else:
            writer.write_table(data, row_group_size=size)
    if extra:
        writer.add_key_value_metadata(extra)
    writer.close()


def _single(table: pa.Table, calls, extra=None) -> bytes:
    """The file one pq.ParquetWriter writes for ``calls`` ((method, argument, rows) each)."""
    sink = pa.BufferOutputStream()
    _feed(pq.ParquetWriter(sink, table.schema, **OPTIONS), calls, extra)
    return sink.getvalue().to_pybytes()


def _stitched(path, table: pa.Table, calls, threads: int, extra=None,
              column_parts: int = 1) -> bytes:
    _feed(ps.StitchedParquetWriter(str(path), table.schema, threads=threads,
                                   column_parts=column_parts, **OPTIONS), calls, extra)
    return path.read_bytes()


def _cases():
    table = _table(5_000)
    empty = pa.record_batch([pa.array([], f.type) for f in table.schema], schema=table.schema)
    return {
        "empty": (table.schema, []),
        "zero-row batch": (table.schema, [("batch", empty, None)]),
        "one row group": (table.schema, [("table", table, None)]),
        "odd row groups": (table.schema, [("table", table, 999)]),
        "one-row row groups": (table.schema, [("table", table.slice(0, 7), 1)]),
        "batches": (table.schema, [("batch", b, None)
                                   for b in table.to_batches(max_chunksize=1_234)]),
        "mixed": (table.schema, [("table", table.slice(0, 3_000), 1_024),
                                 ("batch", table.slice(3_000).to_batches()[0], None)]),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_stitched_file_is_the_single_writers_file_for_any_thread_count(tmp_path, case):
    schema, calls = _cases()[case]
    table = schema.empty_table()
    extra = {"streamnorm.final": "{}", "streamnorm": '{"mode": "online"}'}
    want = _single(table, calls, extra)
    for threads in (1, 2, 4):
        got = _stitched(tmp_path / f"t{threads}.parquet", table, calls, threads, extra)
        assert got == want, (case, threads)


@pytest.mark.parametrize("case", list(_cases()))
def test_row_groups_encoded_as_column_ranges_give_the_single_writers_file(tmp_path, case):
    schema, calls = _cases()[case]
    extra = {"streamnorm.final": "{}"}
    want = _single(schema.empty_table(), calls, extra)
    for threads, parts in ((1, 2), (2, 2), (2, 3), (3, 7), (2, 40)):
        got = _stitched(tmp_path / f"c{threads}{parts}.parquet", schema.empty_table(), calls,
                        threads, extra, column_parts=parts)
        assert got == want, (case, threads, parts)


def test_column_ranges_are_consecutive_balanced_and_never_empty():
    table = pa.table({"a": np.zeros(100, np.int8), "b": np.zeros(100), "c": np.zeros(100),
                      "d": np.zeros(100),
                      "e": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(300)), 3)})
    assert ps.column_ranges(table, 2) == [(0, 4), (4, 5)]
    assert ps.column_ranges(table, 5) == [(0, 3), (3, 4), (4, 5)]
    assert ps.column_ranges(table.select(["a"]), 2) == [(0, 1)]
    wide = pa.table({f"c{j}": np.zeros(64) for j in range(32)})
    assert ps.column_ranges(wide, 2) == [(0, 16), (16, 32)]
    for parts in (3, 7, 40):
        ranges = ps.column_ranges(wide, parts)
        assert len(ranges) == min(parts, 32) and ranges[0][0] == 0 and ranges[-1][1] == 32
        assert all(a < b == c for (a, b), (c, _) in zip(ranges, ranges[1:]))


def test_every_reader_reads_the_stitched_file(tmp_path):
    table = _table(20_000, seed=3)
    path = tmp_path / "s.parquet"
    _stitched(path, table, [("table", table, 3_001)], threads=3)
    reference = tmp_path / "r.parquet"
    reference.write_bytes(_single(table, [("table", table, 3_001)]))
    back = pq.ParquetFile(path, page_checksum_verification=True)
    assert back.read().equals(table)
    single = pq.ParquetFile(reference)
    assert back.schema_arrow.equals(single.schema_arrow, check_metadata=True)
    assert back.schema_arrow.metadata == table.schema.metadata
    meta, want = back.metadata, single.metadata
    assert meta.num_row_groups == 7
    assert [meta.row_group(i).num_rows for i in range(7)] == [3_001] * 6 + [1_994]
    assert meta.to_dict() == want.to_dict()  # layout, offsets, statistics
    assert meta.metadata == want.metadata  # key-value metadata
    numeric = ["x", "f", "h", "i", "n"]
    frame = pl.read_parquet(path, columns=numeric)
    for name in numeric:
        np.testing.assert_array_equal(frame[name].to_numpy(),
                                      table[name].to_numpy(zero_copy_only=False))
    sums = duckdb.sql(f"select count(*), sum(x), count(f), sum(i) from '{path}'").fetchall()[0]
    assert sums[0] == 20_000 and sums[2] == 20_000 - table["f"].null_count
    assert sums[1] == pytest.approx(np.sum(table["x"].to_numpy()), rel=1e-12)
    assert sums[3] == int(np.sum(table["i"].to_numpy()))


def test_page_checksums_still_guard_the_stitched_pages(tmp_path):
    table = _table(4_000)
    path = tmp_path / "s.parquet"
    data = bytearray(_stitched(path, table, [("table", table, 1_000)], threads=2))
    column = pq.ParquetFile(path).metadata.row_group(2).column(0)
    data[column.data_page_offset + column.total_compressed_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(OSError, match="CRC|checksum"):
        pq.ParquetFile(path, page_checksum_verification=True).read()


def _all_types() -> ps_thrift.Struct:
    inner = ps_thrift.Struct([[1, ps_thrift.I32, -5], [2, ps_thrift.BINARY, b"abc"]])
    return ps_thrift.Struct([
        [1, ps_thrift.TRUE, True], [2, ps_thrift.FALSE, False], [3, ps_thrift.BYTE, -7], [4, ps_thrift.I16, -300],
        [5, ps_thrift.I32, 2**31 - 1], [6, ps_thrift.I64, -(2**63)], [7, ps_thrift.DOUBLE, struct.pack("<d", 1.5)],
        [8, ps_thrift.BINARY, b""], [9, ps_thrift.LIST, ps_thrift.TList(ps_thrift.TRUE, [1, 2, 1])],
        [10, ps_thrift.SET, ps_thrift.TList(ps_thrift.I64, [1, -1], ps_thrift.SET)],
        [11, ps_thrift.MAP, ps_thrift.TMap(ps_thrift.BINARY, ps_thrift.STRUCT, [(b"k", inner)])],
        [12, ps_thrift.MAP, ps_thrift.TMap(0, 0, [])], [13, ps_thrift.LIST, ps_thrift.TList(ps_thrift.STRUCT, [inner] * 20)],
        [40, ps_thrift.STRUCT, ps_thrift.Struct([[1000, ps_thrift.I32, 1], [2, ps_thrift.TRUE, True]])],  # long deltas
        [41, ps_thrift.LIST, ps_thrift.TList(ps_thrift.BINARY, [])],
    ])


def test_thrift_round_trips_every_type_and_unknown_fields():
    data = ps_thrift.write_struct(_all_types())
    back, used = ps_thrift.read_struct(data + b"tail")
    assert used == len(data)
    assert back == _all_types()
    assert ps_thrift.write_struct(back) == data


def test_thrift_round_trips_pyarrow_footers(tmp_path):
    table = _table(3_000)
    path = tmp_path / "p.parquet"
    pq.write_table(table, path, row_group_size=700, write_statistics=True,
                   sorting_columns=[pq.SortingColumn(0)])
    data = path.read_bytes()
    length = int.from_bytes(data[-8:-4], "little")
    footer = data[-8 - length:-8]
    parsed, used = ps_thrift.read_struct(footer)
    assert used == length and ps_thrift.write_struct(parsed) == footer


@pytest.mark.parametrize("bad", [b"\x15", b"\x19\xf5", b"\x18\x85", b"\x1d"])
def test_thrift_refuses_truncated_or_unknown_data(bad):
    with pytest.raises(ps_thrift.ThriftError):
        ps_thrift.read_struct(bad)


def test_parts_with_page_indexes_are_refused():
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"x": [1.0, 2.0]}), sink, write_page_index=True)
    with pytest.raises(ValueError, match="page indexes"):
        ps.split_part(sink.getvalue())


def test_a_footer_cut_short_is_refused():
    sink = pa.BufferOutputStream()
    pq.write_table(_table(100), sink)
    data = sink.getvalue().to_pybytes()
    length = int.from_bytes(data[-8:-4], "little")
    for keep in (1, length // 3, length - 1):
        cut = data[:-8 - length + keep] + struct.pack("<I", keep) + b"PAR1"
        with pytest.raises(ps_thrift.ThriftError):
            ps.split_part(pa.py_buffer(cut))
    with pytest.raises(ValueError, match="page indexes"):
        ps.StitchedParquetWriter(pa.BufferOutputStream(), pa.schema([("x", pa.float64())]),
                                 write_page_index=True)


def test_at_most_threads_row_groups_in_flight(tmp_path, monkeypatch):
    alive, most = [0], [0]
    lock = threading.Lock()
    real_encode, real_append = ps.encode_part, ps.StitchedParquetWriter._append

    def encode(*args):
        with lock:
            alive[0] += 1
            most[0] = max(most[0], alive[0])
        return real_encode(*args)

    def append(self, part):
        real_append(self, part)
        with lock:
            alive[0] -= 1

    monkeypatch.setattr(ps, "encode_part", encode)
    monkeypatch.setattr(ps.StitchedParquetWriter, "_append", append)
    table = _table(6_000)
    _stitched(tmp_path / "s.parquet", table, [("table", table, 250)], threads=3)
    assert most[0] == 3 and alive[0] == 0


def _normalize(src, dst, threads, monkeypatch):
    monkeypatch.setattr(ps, "STITCH_MIN_THREADS", 1)  # stitched whatever the machine
    monkeypatch.setattr(ps, "encoding_threads", lambda: threads)
    sn.normalize_file(src, dst)
    return dst.read_bytes()


def test_normalize_output_does_not_depend_on_the_thread_count(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({f"c{j}": rng.normal(1e6, 3.0, 50_000) for j in range(4)}), src,
                   row_group_size=12_345)
    outs = [_normalize(src, tmp_path / f"o{t}.parquet", t, monkeypatch) for t in (1, 2, 4)]
    assert outs[0] == outs[1] == outs[2]
    single = tmp_path / "single.parquet"
    monkeypatch.setattr(ps, "STITCH_MIN_THREADS", 99)  # pyarrow's one writer
    monkeypatch.setattr(ps, "COLUMN_MIN_THREADS", 99)
    sn.normalize_file(src, single)
    assert single.read_bytes() == outs[0]  # the file pyarrow's one writer writes
    monkeypatch.setattr(ps, "COLUMN_MIN_THREADS", 2)  # row groups by column ranges
    by_columns = tmp_path / "columns.parquet"
    sn.normalize_file(src, by_columns)
    assert by_columns.read_bytes() == outs[0]
    back = tmp_path / "back.parquet"
    sn.inverse_file(tmp_path / "o2.parquet", back)
    np.testing.assert_allclose(pq.read_table(back)["c1"].to_numpy(),
                               pq.read_table(src)["c1"].to_numpy(), rtol=1e-15)


def test_an_encoding_failure_midway_leaves_no_output(tmp_path, monkeypatch):
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(pa.table({"x": np.arange(40_000.0)}), src, row_group_size=1_000)
    dst.write_bytes(b"keep me")
    real, calls = ps.encode_part, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        return real(*args)

    monkeypatch.setattr(ps, "STITCH_MIN_THREADS", 1)
    monkeypatch.setattr(ps, "encoding_threads", lambda: 2)
    monkeypatch.setattr(ps, "encode_part", failing)
    with pytest.raises(OSError, match="No space left"):
        sn.normalize_file(src, dst, batch_size=1_000)
    assert dst.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"]
    assert 5 <= len(calls) < 40  # stitched, and it stopped
    assert not [t for t in threading.enumerate() if t.name.startswith("streamnorm-encode")]


def test_a_part_larger_than_its_buffer_is_written_again_the_same(tmp_path, monkeypatch):
    table = _table(3_000)
    calls = [("table", table, 1_000)]
    want = _single(table, calls)
    monkeypatch.setattr(ps, "size_hint", lambda data: 64)  # every fixed buffer overflows
    for threads in (1, 2):
        assert _stitched(tmp_path / f"s{threads}.parquet", table, calls, threads) == want


def test_a_failing_column_range_leaves_no_output(tmp_path, monkeypatch):
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(pa.table({"x": np.arange(40_000.0), "y": np.arange(40_000.0)}), src,
                   row_group_size=1_000)
    dst.write_bytes(b"keep me")
    real, calls = ps.encode_part, []

    def failing(*args):
        calls.append(args[0].names)
        if len(calls) == 7:  # a range of the fourth row group
            raise OSError(28, "No space left on device")
        return real(*args)

    monkeypatch.setattr(ps, "STITCH_MIN_THREADS", 99)
    monkeypatch.setattr(ps, "COLUMN_MIN_THREADS", 2)  # by columns on 2 threads
    monkeypatch.setattr(ps, "encoding_threads", lambda: 2)
    monkeypatch.setattr(ps, "encode_part", failing)
    with pytest.raises(OSError, match="No space left"):
        sn.normalize_file(src, dst, batch_size=1_000)
    assert dst.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"]
    assert ["x"] in calls[:3] and ["y"] in calls[:3] and len(calls) < 12  # by columns; stopped
    assert not [t for t in threading.enumerate() if t.name.startswith("streamnorm-encode")]


def test_a_column_range_larger_than_its_buffer_is_written_again_the_same(tmp_path,
                                                                         monkeypatch):
    table = _table(3_000)
    calls = [("table", table, 1_000)]
    want = _single(table, calls)
    monkeypatch.setattr(ps, "size_hint", lambda data: 64)  # every fixed buffer overflows
    assert _stitched(tmp_path / "c.parquet", table, calls, 2, column_parts=2) == want


def test_column_ranges_from_column_min_threads_and_row_groups_from_stitch_min(tmp_path,
                                                                            monkeypatch):
    from streamnorm.arrow import sinks

    made = []

    class Recording(ps.StitchedParquetWriter):
        def __init__(self, *args, **kwargs):
            made.append(kwargs["column_parts"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(sinks, "StitchedParquetWriter", Recording)
    monkeypatch.setattr(ps, "COLUMN_MIN_THREADS", 2)
    schema = pa.schema([("a", pa.float64()), ("b", pa.float64())])
    for threads in (1, 2, 3):
        monkeypatch.setattr(ps, "encoding_threads", lambda threads=threads: threads)
        with sinks.BatchWriter(tmp_path / f"{threads}.parquet", schema) as writer:
            writer.write(pa.record_batch([pa.array([1.0]), pa.array([2.0])], schema=schema))
        assert pq.read_table(tmp_path / f"{threads}.parquet").num_rows == 1
    assert made == [2, 1]  # 1 CPU: pyarrow's writer; 2: by columns; 3: by row groups
