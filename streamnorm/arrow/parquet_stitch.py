"""Parquet written on several threads: row groups encoded concurrently, each by pyarrow into
its own in-memory Parquet file, then stitched in order into one output file.

pyarrow's Parquet writer encodes a file on one thread (its Python API does not expose
column-parallel writing), and encoding, page checksums and zstd are most of the time of a
file → file normalization. :class:`StitchedParquetWriter` hands each row group to a small
thread pool (pyarrow releases the GIL while it encodes) and writes the finished parts in
order: ``PAR1``, each part's row-group bytes, then one footer built from the parts' footers
with every absolute offset shifted to where the bytes landed.

Row groups can also go one at a time, each encoded as column ranges on several threads
(``column_parts``; :data:`COLUMN_MIN_THREADS`): each range is its own in-memory Parquet file
of that row group's columns, and their column chunks, which do not depend on one another,
are written one after the other under one ``RowGroup`` merged from the ranges'
(:func:`merge_row_groups`). One row group in flight holds less memory than several.

The footer is Thrift compact-protocol ``FileMetaData`` (parquet-format's ``parquet.thrift``,
codec in :mod:`.thrift`). A part's footer is walked once, on its encoding thread, without
building it: each ``RowGroup`` struct is kept as bytes with holes where its absolute offsets
(``RowGroup.file_offset``, ``ColumnChunk.file_offset``, ``ColumnMetaData`` data / index /
dictionary page and Bloom filter offsets) and ordinal go, and every other field, known or
not, is copied as it was. The output does not depend on the thread count: one thread runs
the same encode-and-stitch steps inline, and a part's bytes do not depend on where it lands.
"""

from __future__ import annotations

import collections
import struct as _struct
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .parquet import reader_threads
from .thrift import (
    BINARY,
    FALSE,
    I16,
    I32,
    I64,
    LIST,
    STOP,
    STRUCT,
    TRUE,
    Struct,
    ThriftError,
    TList,
    field_header_at,
    skip_value,
    value_at,
    varint_at,
    write_field_header,
    write_value,
    write_varint,
    write_zigzag,
)

#: Most threads encoding row groups at once (each holds a row group and its encoded bytes).
MAX_ENCODING_THREADS = 4
#: Fewest encoding threads (CPUs) for which :class:`~.sinks.BatchWriter` stitches whole row
#: groups encoded in parallel: on 2 CPUs two row groups in flight gave the same CPU and wall
#: time as pyarrow's one writer for ~110 MB more peak RSS (docs/performance.md); the output
#: is the same bytes either way.
STITCH_MIN_THREADS = 3
#: Fewest encoding threads for which :class:`~.sinks.BatchWriter` encodes a Parquet file's
#: row groups as column ranges on that many threads, one row group at a time (when below
#: :data:`STITCH_MIN_THREADS`), so that on 2 CPUs the writer, 43% of the normalizing pass's
#: CPU on one thread, is not the thread the rest of the job waits for. Off for now (equal to
#: :data:`STITCH_MIN_THREADS`): on the loaded 2-core machine it gave the same CPU and a wall
#: time the load hid, and its peak RSS reached 397 MB in 2 of 9 runs against at most 361 MB
#: without (docs/performance.md); 2 turns it on once a quiet machine shows the gain.
COLUMN_MIN_THREADS = STITCH_MIN_THREADS
MAGIC = b"PAR1"
#: Bytes per write of a part to the output file.
WRITE_BYTES = 1 << 20
#: Rows of the row groups pyarrow's writer cuts when given no row group size (and the most
#: it puts in one): a piece of at most this many rows is one row group.
ONE_GROUP_ROWS = 1 << 20
#: Bytes (of Arrow data) per column range when row groups are encoded by columns: each range
#: in flight holds its encoded bytes, so smaller ranges hold less (a 16 MB row group of 32
#: float64 columns: 8 ranges of 4 columns, 2 in flight, about 4 MB of encoded bytes).
RANGE_BYTES = 2 << 20

# What the stitching does to a field (parquet.thrift field ids below).
_SHIFT, _SHIFT_SET, _ORDINAL, _ROWS, _REFUSE = range(5)
#: ColumnMetaData: data_page_offset, index_page_offset, dictionary_page_offset,
#: bloom_filter_offset (absolute positions in the file).
_COLUMN_META = {9: _SHIFT, 10: _SHIFT, 11: _SHIFT, 14: _SHIFT}
#: ColumnChunk: file_offset (0 when unset: pyarrow writes 0), meta_data, the page indexes
#: (refused: their page locations would need moving too) and encryption (refused).
_COLUMN_CHUNK = {2: _SHIFT_SET, 3: _COLUMN_META, 4: _REFUSE, 6: _REFUSE, 8: _REFUSE,
                 9: _REFUSE}
#: RowGroup: columns, num_rows, file_offset, ordinal.
_ROW_GROUP = {1: _COLUMN_CHUNK, 3: _ROWS, 5: _SHIFT, 7: _ORDINAL}
_FILE_NUM_ROWS, _FILE_ROW_GROUPS, _FILE_KV, _FILE_ENCRYPTION = 3, 4, 5, 8
#: RowGroup: total_byte_size and total_compressed_size (summed over its column chunks).
_RG_TOTAL_BYTES, _RG_COMPRESSED = 2, 6


@dataclass
class RowGroupBytes:
    """One row group's ``RowGroup`` struct as bytes, with holes where its absolute offsets
    and ordinal go: ``pieces[k]``, hole ``k``, ``pieces[k + 1]``, ..."""

    pieces: list[bytes]
    holes: list[tuple[int, int]]  # (what, value in the part)
    num_rows: int

    def placed(self, delta: int, ordinal: int) -> bytes:
        """The struct's bytes for the row group moved ``delta`` bytes later in the file and
        numbered ``ordinal``."""
        out = bytearray(self.pieces[0])
        for (what, value), piece in zip(self.holes, self.pieces[1:]):
            if what == _ORDINAL:
                value = (ordinal + 2**15) % 2**16 - 2**15  # a Thrift i16, as pyarrow wraps
            elif what == _SHIFT or value:  # _SHIFT_SET: 0 means unset
                value += delta
            write_zigzag(out, value)
            out += piece
        return bytes(out)


def _walk(data: bytes, pos: int, spec: dict[int, Any], cuts: list[tuple[int, int, int, int]],
          found: dict[int, int]) -> int:
    """Walk the struct at ``pos`` following ``spec`` (field id → action or nested spec),
    noting the byte range and value of each field to rewrite in ``cuts`` and the values of
    ``_ROWS`` fields in ``found``; returns the position after the struct."""
    last = 0
    while True:
        ttype, fid, pos = field_header_at(data, pos, last)
        if ttype == STOP:
            return pos
        last = fid
        if ttype == TRUE or ttype == FALSE:
            continue
        action = spec.get(fid)
        if action is None:
            pos = skip_value(data, pos, ttype)
        elif isinstance(action, dict):
            if ttype == STRUCT:
                pos = _walk(data, pos, action, cuts, found)
            elif ttype == LIST and data[pos] & 0x0F == STRUCT:
                size, pos = data[pos] >> 4, pos + 1
                if size == 15:
                    size, pos = varint_at(data, pos)
                for _ in range(size):
                    pos = _walk(data, pos, action, cuts, found)
            else:
                raise ThriftError(f"unexpected Thrift type {ttype} of field {fid}")
        elif action == _REFUSE:
            raise ValueError("Parquet page indexes or encryption cannot be stitched; write "
                             "without them")
        elif ttype in (I16, I32, I64):
            z, end = varint_at(data, pos)
            value = (z >> 1) ^ -(z & 1)
            if action == _ROWS:
                found[fid] = value
            else:
                cuts.append((pos, end, action, value))
            pos = end
        else:
            raise ThriftError(f"unexpected Thrift type {ttype} of field {fid}")


@dataclass
class Part:
    """One pyarrow-written in-memory Parquet file, split: its row-group bytes (the file less
    its leading magic and its footer), its row groups' ``RowGroup`` structs and the other
    ``FileMetaData`` fields ((field id, type, value bytes) each)."""

    body: pa.Buffer
    row_groups: list[RowGroupBytes]
    fields: list[tuple[int, int, bytes]]
    #: the reusable buffer ``body`` lies in (:class:`Buffers`), or None
    buffer: pa.Buffer | None = None


def split_part(data: pa.Buffer) -> Part:
    """Split a whole Parquet file held in memory (plaintext footer, no page index) into a
    :class:`Part`. Raises ``ValueError`` for anything else."""
    size = data.size
    tail = data.slice(size - 8).to_pybytes() if size >= 12 else b""
    if data.slice(0, 4).to_pybytes() != MAGIC or tail[4:] != MAGIC:
        raise ValueError("not a plaintext Parquet file")
    length = int.from_bytes(tail[:4], "little")
    start = size - 8 - length
    if start < 4:
        raise ValueError("Parquet footer length out of range")
    meta = data.slice(start, length).to_pybytes()
    groups: list[RowGroupBytes] = []
    fields: list[tuple[int, int, bytes]] = []
    try:
        pos, last = 0, 0
        while True:
            head = meta[pos]
            pos += 1
            ttype = head & 0x0F
            if ttype == STOP:
                break
            if head >> 4:
                fid = last + (head >> 4)
            else:
                z, pos = varint_at(meta, pos)
                fid = (z >> 1) ^ -(z & 1)
            last = fid
            if fid == _FILE_ENCRYPTION:
                raise ValueError("encrypted Parquet cannot be stitched")
            if fid == _FILE_ROW_GROUPS and ttype == LIST:
                count, pos = meta[pos] >> 4, pos + 1
                if count == 15:
                    count, pos = varint_at(meta, pos)
                for _ in range(count):
                    cuts: list[tuple[int, int, int, int]] = []
                    found: dict[int, int] = {}
                    begin = pos
                    pos = _walk(meta, pos, _ROW_GROUP, cuts, found)
                    edges = [begin] + [x for c in cuts for x in c[:2]] + [pos]
                    pieces = [meta[edges[k]:edges[k + 1]] for k in range(0, len(edges), 2)]
                    groups.append(RowGroupBytes(pieces, [c[2:] for c in cuts],
                                                found.get(3, 0)))
                fields.append((fid, ttype, b""))
                continue
            end = pos if ttype in (TRUE, FALSE) else skip_value(meta, pos, ttype)
            fields.append((fid, ttype, meta[pos:end]))
            pos = end
    except IndexError:
        raise ThriftError("truncated Thrift data") from None
    return Part(data.slice(4, start - 4), groups, fields)


def _append_struct_list(out: bytearray, items: list[bytes]) -> None:
    """A compact-protocol list of structs: its header (size and element type), then the
    structs' encoded bytes as given."""
    if len(items) < 15:
        out.append(len(items) << 4 | STRUCT)
    else:
        out.append(0xF0 | STRUCT)
        write_varint(out, len(items))
    for item in items:
        out += item


def footer(fields: list[tuple[int, int, bytes]], groups: list[bytes], num_rows: int,
           extra: dict[bytes, bytes]) -> bytes:
    """The footer (``FileMetaData`` bytes, its length and the magic) of a file holding the
    row groups ``groups`` (``RowGroup`` structs, placed) and ``num_rows`` rows, with the
    other fields of a part's footer (``fields``: its schema, key-value metadata updated with
    ``extra`` as pyarrow's ``add_key_value_metadata`` does, and the rest as they were)."""
    out = bytearray()
    last = 0
    for fid, ttype, raw in fields:
        if fid == _FILE_KV and extra and ttype == LIST:
            continue  # written below, in its place
        if fid > _FILE_KV and extra and last < _FILE_KV:
            last = _kv_field(out, last, fields, extra)
        write_field_header(out, last, fid, ttype)
        last = fid
        if fid == _FILE_NUM_ROWS:
            write_zigzag(out, num_rows)
        elif fid == _FILE_ROW_GROUPS:
            _append_struct_list(out, groups)
        else:
            out += raw
    if extra and last < _FILE_KV:
        last = _kv_field(out, last, fields, extra)
    out.append(STOP)
    return bytes(out) + _struct.pack("<I", len(out)) + MAGIC


def _kv_field(out: bytearray, last: int, fields: list[tuple[int, int, bytes]],
              extra: dict[bytes, bytes]) -> int:
    """Write the key-value metadata field: pyarrow's order, the added pairs, then the
    part's other pairs."""
    raw = next((r for fid, t, r in fields if fid == _FILE_KV and t == LIST), None)
    pairs = [Struct([[1, BINARY, k], [2, BINARY, v]]) for k, v in extra.items()]
    if raw is not None:
        old, _ = value_at(raw, 0, LIST, 0)
        pairs += [kv for kv in old.items if kv.get(1) not in extra]
    write_field_header(out, last, _FILE_KV, LIST)
    write_value(out, LIST, TList(STRUCT, pairs))
    return _FILE_KV


def merge_row_groups(groups: list[bytes]) -> bytes:
    """One ``RowGroup`` struct from those of the column ranges of one row group (each placed
    where its column chunks landed, in column order): the ranges' column chunks in order,
    ``total_byte_size`` and ``total_compressed_size`` summed, every other field (rows, the
    first chunk's ``file_offset``, ordinal) as in the first range: the struct one writer of
    all the columns gives."""
    chunks: list[bytes] = []
    sums = {_RG_TOTAL_BYTES: 0, _RG_COMPRESSED: 0}
    layout: list[tuple[int, int, bytes]] = []  # the first range's fields: (id, type, bytes)
    for k, data in enumerate(groups):
        pos, last = 0, 0
        while True:
            ttype, fid, start = field_header_at(data, pos, last)
            if ttype == STOP:
                break
            last = fid
            end = skip_value(data, start, ttype)
            if fid == 1 and ttype == LIST:
                size, at = data[start] >> 4, start + 1
                if size == 15:
                    size, at = varint_at(data, at)
                for _ in range(size):
                    after = skip_value(data, at, STRUCT)
                    chunks.append(data[at:after])
                    at = after
            elif fid in sums and ttype in (I32, I64):
                z, _ = varint_at(data, start)
                sums[fid] += (z >> 1) ^ -(z & 1)
            if k == 0:
                layout.append((fid, ttype, data[start:end]))
            pos = end
    out = bytearray()
    last = 0
    for fid, ttype, raw in layout:
        write_field_header(out, last, fid, ttype)
        last = fid
        if fid == 1 and ttype == LIST:
            _append_struct_list(out, chunks)
        elif fid in sums and ttype in (I32, I64):
            write_zigzag(out, sums[fid])
        else:
            out += raw
    out.append(STOP)
    return bytes(out)


def column_ranges(data: pa.Table | pa.RecordBatch, parts: int) -> list[tuple[int, int]]:
    """``data``'s columns cut into at most ``parts`` consecutive ranges (start, stop) of
    similar size in bytes, none empty."""
    sizes = [column.nbytes for column in data.columns]
    total = sum(sizes) or 1
    ranges: list[tuple[int, int]] = []
    start, acc = 0, 0
    for stop in range(1, len(sizes) + 1):
        acc += sizes[stop - 1]
        if (stop < len(sizes) and len(ranges) < parts - 1
                and acc * parts >= total * (len(ranges) + 1)):
            ranges.append((start, stop))
            start = stop
    ranges.append((start, len(sizes)))
    return ranges


def encode_part(schema: pa.Schema, options: dict[str, Any],
                write: Callable[[pq.ParquetWriter], None], buffers: Buffers | None = None,
                size_hint: int = 0) -> Part:
    """Encode into an in-memory Parquet file with ``pq.ParquetWriter(sink, schema,
    **options)``, ``write`` writing the data, and split it (:func:`split_part`).

    With ``buffers``, the file is written into one of their buffers of at least
    ``size_hint`` bytes (handed back with :meth:`Buffers.give` once the part is written); a
    file that does not fit is written again into a growing buffer (same bytes)."""
    if buffers is not None:
        buffer = buffers.take(size_hint)
        stream = pa.FixedSizeBufferWriter(buffer)
        try:
            _write_file(stream, schema, options, write)
        except OSError:  # "Write out of bounds": too small; a real error repeats below
            buffers.give(buffer)
        else:
            part = split_part(buffer.slice(0, stream.tell()))
            part.buffer = buffer
            return part
    sink = pa.BufferOutputStream()
    _write_file(sink, schema, options, write)
    return split_part(sink.getvalue())


def _write_file(sink: Any, schema: pa.Schema, options: dict[str, Any],
                write: Callable[[pq.ParquetWriter], None]) -> None:
    writer = pq.ParquetWriter(sink, schema, **options)
    try:
        write(writer)
    finally:
        writer.close()


class Buffers:
    """Output buffers reused from part to part: memory already touched (no page faults, no
    copies as a buffer grows), at most as many as parts in flight."""

    def __init__(self) -> None:
        self._free: list[pa.Buffer] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> pa.Buffer:
        """A free buffer of at least ``size`` bytes (a new one if none is that large)."""
        with self._lock:
            fits = [b for b in self._free if b.size >= size]
            if fits:
                self._free.remove(fits[0])
                return fits[0]
            if self._free:
                self._free.pop(0)  # too small: replaced by the new one
        return pa.allocate_buffer(size, resizable=False)

    def give(self, buffer: pa.Buffer) -> None:
        """Hand ``buffer`` back (its part is written)."""
        with self._lock:
            self._free.append(buffer)


def size_hint(data: pa.Table | pa.RecordBatch) -> int:
    """Bytes to reserve for the Parquet file of ``data``: its Arrow size, an eighth more
    (levels, page headers, incompressible values), and room for the footer."""
    return data.nbytes + data.nbytes // 8 + (1 << 20) + 4096 * data.num_columns


def encoding_threads() -> int:
    """Threads encoding row groups: the CPUs this process may run on, at most
    :data:`MAX_ENCODING_THREADS`."""
    return max(1, min(reader_threads(), MAX_ENCODING_THREADS))


def parallel_encoding() -> bool:
    """Whether Parquet files are written by :class:`StitchedParquetWriter` (at least
    :data:`COLUMN_MIN_THREADS` encoding threads) rather than one ``pq.ParquetWriter``."""
    return encoding_threads() >= min(COLUMN_MIN_THREADS, STITCH_MIN_THREADS)


def column_parts() -> int:
    """The ``column_parts`` of a :class:`StitchedParquetWriter` on this machine: one (whole
    row groups in parallel) from :data:`STITCH_MIN_THREADS` encoding threads on, else as
    many column ranges at once as threads (from :data:`COLUMN_MIN_THREADS`)."""
    threads = encoding_threads()
    return 1 if threads >= STITCH_MIN_THREADS else threads


class StitchedParquetWriter:
    """A ``pq.ParquetWriter`` look-alike (``write_batch``, ``write_table``,
    ``add_key_value_metadata``, ``close``) that encodes row groups on ``threads`` threads.

    ``sink`` is a local path (opened here, written from the start) or a writable pyarrow
    output stream (left open by ``close``). ``options`` go to each part's
    ``pq.ParquetWriter`` (compression, dictionary, page checksums; page indexes and
    encryption are refused). Each ``write_batch`` call, and each ``row_group_size`` rows of a
    ``write_table`` call, is one part, encoded as pyarrow would encode that row group in one
    file; so the file is the one a single ``pq.ParquetWriter`` fed the same calls writes
    (same bytes). At most ``threads`` parts are in flight (queued, encoding, or encoded and
    waiting for their turn); the calling thread writes them in order. An encoding error is
    raised by a later ``write_*`` or by ``close``; after one, ``close`` discards.

    ``column_parts`` above 1: each row group of at most :data:`ONE_GROUP_ROWS` rows is
    encoded as column ranges, that many at once on the pool, each written in order as soon
    as it is encoded, and the row group is written before the call returns: one row group
    in flight, the same bytes.
    """

    def __init__(self, sink: Any, schema: pa.Schema, *, threads: int | None = None,
                 column_parts: int = 1, **options: Any):
        if options.get("write_page_index") or options.get("encryption_properties"):
            raise ValueError("page indexes and encryption are not supported when stitching")
        self.schema = schema
        self.options = options
        self.threads = max(1, threads if threads is not None else encoding_threads())
        self.column_parts = max(1, column_parts)
        self._owned = isinstance(sink, str)
        self._out: Any = pa.OSFile(sink, "wb") if self._owned else sink
        # Reused buffers only where a write copies the bytes before returning (a local
        # file); an object-store stream may keep a reference to upload later.
        self._buffers = Buffers() if self._owned else None
        self._pos = 0
        self._fields: list[tuple[int, int, bytes]] | None = None  # the first part's footer
        self._groups: list[bytes] = []
        self._rows = 0
        self._extra: dict[bytes, bytes] = {}
        self._pending: collections.deque = collections.deque()
        self._pool: ThreadPoolExecutor | None = None
        self._broken = False
        self._closed = False

    # -- writing -----------------------------------------------------------------------
    def write_batch(self, batch: pa.RecordBatch) -> None:
        """Write ``batch`` as pyarrow's ``write_batch`` would (its row groups)."""
        if self._by_columns(batch, batch.num_rows):
            self._submit_columns(batch, None)
            return
        self._submit(lambda w: w.write_batch(batch), size_hint(batch))

    def write_table(self, table: pa.Table, row_group_size: int | None = None) -> None:
        """Write ``table``; with ``row_group_size``, each slice of that many rows is one row
        group encoded on its own (as pyarrow cuts it)."""
        size = ONE_GROUP_ROWS if row_group_size is None else row_group_size
        if self._by_columns(table, size):
            for start in range(0, table.num_rows, size):
                self._submit_columns(table.slice(start, size), row_group_size)
            return
        if row_group_size is None or table.num_rows <= row_group_size:
            self._submit(lambda w: w.write_table(table, row_group_size=row_group_size),
                         size_hint(table))
            return
        for start in range(0, table.num_rows, row_group_size):
            piece = table.slice(start, row_group_size)
            self._submit(lambda w, piece=piece: w.write_table(piece,
                                                               row_group_size=row_group_size),
                         size_hint(piece))

    def add_key_value_metadata(self, metadata: dict[str | bytes, str | bytes]) -> None:
        """Key-value pairs for the footer (replacing a key already there)."""
        for key, value in metadata.items():
            k = key.encode() if isinstance(key, str) else bytes(key)
            self._extra[k] = value.encode() if isinstance(value, str) else bytes(value)

    def _submit(self, write: Callable[[pq.ParquetWriter], None], hint: int) -> None:
        if self._closed or self._broken:
            raise ValueError("the Parquet writer is closed")
        try:
            while len(self._pending) >= self.threads:
                self._write_next()
            args = (self.schema, self.options, write, self._buffers, hint)
            if self.threads == 1:
                self._pending.append(encode_part(*args))
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads,
                                                    thread_name_prefix="streamnorm-encode")
                self._pending.append(self._pool.submit(encode_part, *args))
        except BaseException:
            self._broken = True
            raise

    def _by_columns(self, data: pa.Table | pa.RecordBatch, rows_per_group: int) -> bool:
        """Whether ``data`` goes as column ranges: asked for, several columns, rows, and row
        groups of at most :data:`ONE_GROUP_ROWS` rows (pyarrow's own cut)."""
        return (self.column_parts > 1 and data.num_columns > 1 and data.num_rows > 0
                and 0 < rows_per_group <= ONE_GROUP_ROWS)

    def _submit_columns(self, data: pa.Table | pa.RecordBatch,
                        row_group_size: int | None) -> None:
        """Encode ``data`` (one row group) as column ranges of about :data:`RANGE_BYTES`,
        ``column_parts`` at a time, each written as soon as it and those before it are
        encoded; then its ``RowGroup`` merged from theirs."""
        if self._closed or self._broken:
            raise ValueError("the Parquet writer is closed")
        try:
            while self._pending:
                self._write_next()
            if self._fields is None:  # the footer's schema and metadata: all the columns
                self._fields = encode_part(self.schema, self.options, lambda w: None).fields
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.column_parts,
                                                thread_name_prefix="streamnorm-encode")
            count = max(self.column_parts, -(-data.nbytes // RANGE_BYTES))
            window: collections.deque = collections.deque()
            placed: list[bytes] = []
            for start, stop in column_ranges(data, count):
                piece = data.select(list(range(start, stop)))
                if isinstance(piece, pa.RecordBatch):
                    def write(w: pq.ParquetWriter, piece: Any = piece) -> None:
                        w.write_batch(piece)
                else:
                    def write(w: pq.ParquetWriter, piece: Any = piece) -> None:
                        w.write_table(piece, row_group_size=row_group_size)
                window.append(self._pool.submit(encode_part, piece.schema, self.options,
                                                write, self._buffers, size_hint(piece)))
                if len(window) >= self.column_parts:
                    self._place(window.popleft().result(), placed)
            while window:
                self._place(window.popleft().result(), placed)
            self._groups.append(merge_row_groups(placed))
            self._rows += data.num_rows
        except BaseException:
            self._broken = True
            raise

    def _place(self, part: Part, placed: list[bytes]) -> None:
        """Write the column range ``part`` where the file ends, noting its ``RowGroup``
        struct placed there in ``placed``."""
        if len(part.row_groups) != 1:
            raise ValueError("a column range was not written as one row group")
        at = max(self._pos, len(MAGIC))
        placed.append(part.row_groups[0].placed(at - len(MAGIC), len(self._groups)))
        self._write_body(part)

    def _write_next(self) -> None:
        item = self._pending.popleft()
        part: Part = item.result() if isinstance(item, Future) else item
        self._append(part)

    def _append(self, part: Part) -> None:
        if self._fields is None:
            self._fields = part.fields
        delta = max(self._pos, len(MAGIC)) - len(MAGIC)
        for group in part.row_groups:
            self._groups.append(group.placed(delta, len(self._groups)))
            self._rows += group.num_rows
        self._write_body(part)

    def _write_body(self, part: Part) -> None:
        """Write ``part``'s row-group bytes where the file ends (after the leading magic)."""
        if self._pos == 0:
            self._out.write(MAGIC)
            self._pos = len(MAGIC)
        body = part.body
        for start in range(0, body.size, WRITE_BYTES):
            self._out.write(body.slice(start, min(WRITE_BYTES, body.size - start)))
        self._pos += part.body.size
        if part.buffer is not None and self._buffers is not None:
            self._buffers.give(part.buffer)

    # -- finishing ---------------------------------------------------------------------
    def close(self) -> None:
        """Write the parts still in flight and the footer; after an error, :meth:`discard`."""
        if self._closed:
            return
        if self._broken:
            self.discard()
            return
        self._closed = True
        try:
            while self._pending:
                self._write_next()
            if self._fields is None:  # nothing written: an empty file's footer
                self._append(encode_part(self.schema, self.options, lambda w: None))
            assert self._fields is not None
            self._out.write(footer(self._fields, self._groups, self._rows, self._extra))
        except BaseException:
            self._broken = True
            self._closed = False
            self.discard()
            raise
        finally:
            self._shutdown()

    def discard(self) -> None:
        """Stop: drop the parts in flight (waiting for those being encoded), write nothing
        more; the output is left incomplete for the caller to remove. Never raises."""
        self._closed = True
        self._pending.clear()
        self._shutdown()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._owned and not self._out.closed:
            try:
                self._out.close()
            except (OSError, pa.ArrowException):  # pragma: no cover - a failing close
                if not self._broken:
                    raise

