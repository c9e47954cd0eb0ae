"""Parquet written on several threads: row groups encoded concurrently, each by pyarrow into
its own in-memory Parquet file, then stitched in order into one output file.

pyarrow's Parquet writer encodes a file on one thread (its Python API does not expose
column-parallel writing), and encoding, page checksums and zstd are most of the time of a
file → file normalization. :class:`StitchedParquetWriter` hands each row group to a small
thread pool (pyarrow releases the GIL while it encodes) and writes the finished parts in
order: ``PAR1``, each part's row-group bytes, then one footer built from the parts' footers
with every absolute offset shifted to where the bytes landed.

The footer is Thrift compact-protocol ``FileMetaData`` (parquet-format's ``parquet.thrift``).
:func:`read_struct` / :func:`write_struct` are a small generic compact-protocol reader and
writer: every field is kept, in order, whether this module knows it or not, so a footer
written back unchanged is the same bytes (tested against pyarrow's own files). The output
does not depend on the thread count: one thread runs the same encode-and-stitch steps inline,
and a part's bytes do not depend on where it lands.
"""

from __future__ import annotations

import collections
import struct as _struct
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .parquet import reader_threads

# Thrift compact protocol type codes.
STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)
_INTS = (BYTE, I16, I32, I64)

#: Most threads encoding row groups at once (each holds a row group and its encoded bytes).
MAX_ENCODING_THREADS = 4
MAGIC = b"PAR1"


@dataclass
class TList:
    """A Thrift list or set: element type code and values (bool elements as their raw byte)."""

    etype: int
    items: list[Any]
    ttype: int = LIST


@dataclass
class TMap:
    """A Thrift map: key and value type codes and the (key, value) pairs in order."""

    ktype: int
    vtype: int
    items: list[tuple[Any, Any]]


@dataclass
class Struct:
    """A Thrift struct: ``[field id, type code, value]`` for each field, in order read."""

    fields: list[list[Any]] = field(default_factory=list)

    def get(self, fid: int, default: Any = None) -> Any:
        """The value of field ``fid`` (``default`` when absent)."""
        for f in self.fields:
            if f[0] == fid:
                return f[2]
        return default

    def set(self, fid: int, ttype: int, value: Any) -> None:
        """Set field ``fid`` (type code ``ttype``), inserted in id order when absent."""
        for f in self.fields:
            if f[0] == fid:
                f[1], f[2] = ttype, value
                return
        at = next((k for k, f in enumerate(self.fields) if f[0] > fid), len(self.fields))
        self.fields.insert(at, [fid, ttype, value])

    def shift(self, fid: int, delta: int) -> None:
        """Add ``delta`` to the integer field ``fid`` if present."""
        for f in self.fields:
            if f[0] == fid:
                f[2] += delta


class ThriftError(ValueError):
    """Bytes that are not valid Thrift compact protocol."""


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        try:
            b = self.data[self.pos]
        except IndexError:
            raise ThriftError("truncated Thrift data") from None
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ThriftError("varint too long")

    def zigzag(self) -> int:
        z = self.varint()
        return (z >> 1) ^ -(z & 1)

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ThriftError("truncated Thrift data")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def value(self, ttype: int, depth: int) -> Any:
        if depth > 64:
            raise ThriftError("Thrift data nested too deeply")
        if ttype in (TRUE, FALSE):  # a bool element of a list / map: one byte
            return self.byte()
        if ttype == BYTE:
            b = self.byte()
            return b - 256 if b > 127 else b
        if ttype in (I16, I32, I64):
            return self.zigzag()
        if ttype == DOUBLE:
            return self.take(8)
        if ttype == BINARY:
            return self.take(self.varint())
        if ttype in (LIST, SET):
            head = self.byte()
            size, etype = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            return TList(etype, [self.value(etype, depth + 1) for _ in range(size)], ttype)
        if ttype == MAP:
            size = self.varint()
            if size == 0:
                return TMap(0, 0, [])
            kv = self.byte()
            k, v = kv >> 4, kv & 0x0F
            return TMap(k, v, [(self.value(k, depth + 1), self.value(v, depth + 1))
                               for _ in range(size)])
        if ttype == STRUCT:
            return self.struct(depth + 1)
        raise ThriftError(f"unknown Thrift type code {ttype}")

    def struct(self, depth: int = 0) -> Struct:
        out = Struct()
        last = 0
        while True:
            head = self.byte()
            ttype = head & 0x0F
            if ttype == STOP:
                return out
            delta = head >> 4
            fid = last + delta if delta else self.zigzag()
            if ttype in (TRUE, FALSE):
                value: Any = ttype == TRUE
            else:
                value = self.value(ttype, depth)
            out.fields.append([fid, ttype, value])
            last = fid


def read_struct(data: bytes) -> tuple[Struct, int]:
    """Parse one compact-protocol struct at the start of ``data``: (struct, bytes read)."""
    reader = _Reader(data)
    return reader.struct(), reader.pos


def _varint(out: bytearray, n: int) -> None:
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _zigzag(out: bytearray, n: int) -> None:
    _varint(out, ((n << 1) ^ (n >> 63)) & 0xFFFFFFFFFFFFFFFF)


def _write_value(out: bytearray, ttype: int, value: Any) -> None:
    if ttype in (TRUE, FALSE):
        out.append(value)
    elif ttype == BYTE:
        out.append(value & 0xFF)
    elif ttype in (I16, I32, I64):
        _zigzag(out, value)
    elif ttype == DOUBLE:
        out += value
    elif ttype == BINARY:
        _varint(out, len(value))
        out += value
    elif ttype in (LIST, SET):
        size = len(value.items)
        if size < 15:
            out.append(size << 4 | value.etype)
        else:
            out.append(0xF0 | value.etype)
            _varint(out, size)
        for item in value.items:
            _write_value(out, value.etype, item)
    elif ttype == MAP:
        _varint(out, len(value.items))
        if value.items:
            out.append(value.ktype << 4 | value.vtype)
            for k, v in value.items:
                _write_value(out, value.ktype, k)
                _write_value(out, value.vtype, v)
    elif ttype == STRUCT:
        _write_struct(out, value)
    else:
        raise ThriftError(f"unknown Thrift type code {ttype}")


def _write_struct(out: bytearray, s: Struct) -> None:
    last = 0
    for fid, ttype, value in s.fields:
        if ttype in (TRUE, FALSE):
            ttype = TRUE if value else FALSE
        delta = fid - last
        if 0 < delta <= 15:
            out.append(delta << 4 | ttype)
        else:
            out.append(ttype)
            _zigzag(out, fid)
        if ttype not in (TRUE, FALSE):
            _write_value(out, ttype, value)
        last = fid
    out.append(STOP)


def write_struct(s: Struct) -> bytes:
    """The compact-protocol bytes of ``s``."""
    out = bytearray()
    _write_struct(out, s)
    return bytes(out)


# parquet.thrift field ids used here.
_FILE_NUM_ROWS, _FILE_ROW_GROUPS, _FILE_KV, _FILE_ENCRYPTION = 3, 4, 5, 8
_RG_COLUMNS, _RG_NUM_ROWS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 3, 5, 7
_CC_FILE_OFFSET, _CC_META, _CC_OFFSET_INDEX, _CC_COLUMN_INDEX = 2, 3, 4, 6
#: ColumnMetaData: data_page_offset, index_page_offset, dictionary_page_offset,
#: bloom_filter_offset (absolute positions in the file).
_CMD_OFFSETS = (9, 10, 11, 14)


@dataclass
class Part:
    """One pyarrow-written in-memory Parquet file, split: its row-group bytes (the file less
    its leading magic and its footer) and its parsed ``FileMetaData``."""

    body: pa.Buffer
    metadata: Struct
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
    metadata, _ = read_struct(data.slice(start, length).to_pybytes())
    if metadata.get(_FILE_ENCRYPTION) is not None:
        raise ValueError("encrypted Parquet cannot be stitched")
    for group in _row_groups(metadata):
        for chunk in group.get(_RG_COLUMNS).items:
            if chunk.get(_CC_OFFSET_INDEX) is not None or chunk.get(_CC_COLUMN_INDEX) is not None:
                raise ValueError("Parquet page indexes cannot be stitched; write without them")
    return Part(data.slice(4, start - 4), metadata)


def _row_groups(metadata: Struct) -> list[Struct]:
    groups = metadata.get(_FILE_ROW_GROUPS)
    return [] if groups is None else groups.items


def shift_row_group(group: Struct, delta: int, ordinal: int) -> None:
    """Move row group ``group`` (in place) ``delta`` bytes later in the file and number it
    ``ordinal`` (if it carries an ordinal): its and its column chunks' absolute offsets."""
    group.shift(_RG_FILE_OFFSET, delta)
    if group.get(_RG_ORDINAL) is not None:
        group.set(_RG_ORDINAL, I16, (ordinal + 2**15) % 2**16 - 2**15)  # Thrift i16
    for chunk in group.get(_RG_COLUMNS).items:
        if chunk.get(_CC_FILE_OFFSET):  # 0: unset (deprecated; pyarrow writes 0)
            chunk.shift(_CC_FILE_OFFSET, delta)
        meta = chunk.get(_CC_META)
        if meta is not None:
            for fid in _CMD_OFFSETS:
                meta.shift(fid, delta)


def footer(template: Struct, groups: list[Struct], extra: dict[bytes, bytes]) -> bytes:
    """The footer (``FileMetaData`` bytes, its length and the magic) of a file holding
    ``groups`` (already shifted), with ``template``'s schema, key-value metadata (updated
    with ``extra`` as pyarrow's ``add_key_value_metadata`` does) and other fields."""
    meta = Struct([list(f) for f in template.fields])
    meta.set(_FILE_NUM_ROWS, I64, sum(g.get(_RG_NUM_ROWS) for g in groups))
    meta.set(_FILE_ROW_GROUPS, LIST, TList(STRUCT, groups))
    if extra:  # pyarrow's order: the added pairs, then the template's other pairs
        old = meta.get(_FILE_KV)
        pairs = [Struct([[1, BINARY, k], [2, BINARY, v]]) for k, v in extra.items()]
        pairs += [] if old is None else [kv for kv in old.items if kv.get(1) not in extra]
        meta.set(_FILE_KV, LIST, TList(STRUCT, pairs))
    body = write_struct(meta)
    return body + _struct.pack("<I", len(body)) + MAGIC


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
    """

    def __init__(self, sink: Any, schema: pa.Schema, *, threads: int | None = None,
                 **options: Any):
        if options.get("write_page_index") or options.get("encryption_properties"):
            raise ValueError("page indexes and encryption are not supported when stitching")
        self.schema = schema
        self.options = options
        self.threads = max(1, threads if threads is not None else encoding_threads())
        self._owned = isinstance(sink, str)
        self._out: Any = pa.OSFile(sink, "wb") if self._owned else sink
        # Reused buffers only where a write copies the bytes before returning (a local
        # file); an object-store stream may keep a reference to upload later.
        self._buffers = Buffers() if self._owned else None
        self._pos = 0
        self._template: Struct | None = None
        self._groups: list[Struct] = []
        self._extra: dict[bytes, bytes] = {}
        self._pending: collections.deque = collections.deque()
        self._pool: ThreadPoolExecutor | None = None
        self._broken = False
        self._closed = False

    # -- writing -----------------------------------------------------------------------
    def write_batch(self, batch: pa.RecordBatch) -> None:
        """Write ``batch`` as pyarrow's ``write_batch`` would (its row groups)."""
        self._submit(lambda w: w.write_batch(batch), size_hint(batch))

    def write_table(self, table: pa.Table, row_group_size: int | None = None) -> None:
        """Write ``table``; with ``row_group_size``, each slice of that many rows is one row
        group encoded on its own (as pyarrow cuts it)."""
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

    def _write_next(self) -> None:
        item = self._pending.popleft()
        part: Part = item.result() if isinstance(item, Future) else item
        self._append(part)

    def _append(self, part: Part) -> None:
        if self._pos == 0:
            self._out.write(MAGIC)
            self._pos = len(MAGIC)
        if self._template is None:
            self._template = part.metadata
        delta = self._pos - len(MAGIC)
        for group in _row_groups(part.metadata):
            shift_row_group(group, delta, len(self._groups))
            self._groups.append(group)
        if part.body.size:
            self._out.write(part.body)
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
            if self._template is None:  # nothing written: an empty file's footer
                self._append(encode_part(self.schema, self.options, lambda w: None))
            assert self._template is not None
            self._out.write(footer(self._template, self._groups, self._extra))
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

