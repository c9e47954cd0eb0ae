"""Open any source as a stream of record batches; write Arrow IPC / Parquet atomically.

Sources (DESIGN §3): a path (Arrow IPC file or stream, Parquet), a ``pa.RecordBatch``,
``pa.Table``, ``pa.RecordBatchReader``, an iterable of record batches, a 2-D numpy array
(columns named "0", "1", …), or any object exporting ``__arrow_c_stream__`` /
``__arrow_c_array__`` (polars, pandas, duckdb). Memory stays bounded by the batch size: files are
read one IPC batch or one Parquet row group at a time.

Directories, globs, lists of files, CSV / JSON lines and object-store URIs (``s3://…``) are
opened by :mod:`streamnorm.sources`; a :class:`streamnorm.sources.DataSource` carries reading
options (``schema=``, ``skip_bad_rows=``). Writers take a local path or a URI; see
:func:`atomic_path` and :class:`BatchWriter` (compression, row-group size, float32 output).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .errors import InputError

#: Suffixes read and written as Arrow IPC; ``.arrows`` is written in the stream format.
IPC_SUFFIXES = (".arrow", ".feather", ".ipc", ".arrows")
PARQUET_SUFFIXES = (".parquet", ".pq")

_IPC_FILE_MAGIC = b"ARROW1"
_PARQUET_MAGIC = b"PAR1"

Source = Any  # see the module docstring for what a source may be


def is_path(source: object) -> bool:
    """Whether ``source`` names a file (str or os.PathLike) rather than holding data."""
    return isinstance(source, (str, os.PathLike))


def file_format(path: str | os.PathLike) -> str:
    """``"parquet"``, ``"ipc-file"`` or ``"ipc-stream"`` for an existing file, from its bytes."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give an Arrow IPC or Parquet file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise InputError(f"{path}: the file is empty (0 bytes); give an Arrow IPC or Parquet file")
    if head[:4] == _PARQUET_MAGIC:
        return "parquet"
    if head[:6] == _IPC_FILE_MAGIC:
        return "ipc-file"
    # The IPC stream format has no magic: an encapsulated message starts with 0xFFFFFFFF
    # (or, in pre-1.0 files, directly with a little-endian metadata length).
    if head[:4] == b"\xff\xff\xff\xff" or path.suffix.lower() in IPC_SUFFIXES:
        return "ipc-stream"
    raise InputError(
        f"{path}: not an Arrow IPC or Parquet file; convert it to .parquet or .arrow first"
    )


def _rechunk(batches: Iterable[pa.RecordBatch], batch_size: int | None) -> Iterator[pa.RecordBatch]:
    """Split batches longer than ``batch_size`` rows into zero-copy slices."""
    for batch in batches:
        if batch_size is None or batch.num_rows <= batch_size:
            yield batch
            continue
        for start in range(0, batch.num_rows, batch_size):
            yield batch.slice(start, batch_size)


#: Rows per batch read from a Parquet row group when the caller sets no batch size.
PARQUET_BATCH_ROWS = 65_536


def _file_batches(
    path: str | os.PathLike, columns: list[str] | None, batch_size: int | None = None
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    fmt = file_format(path)
    try:
        if fmt == "parquet":
            # No memory map (its touched pages count as resident: RSS would grow with the
            # file) and no pre-buffering: batches of at most batch_size rows, one row group
            # at a time, so memory is bounded by the batch, not the row group or the file.
            parquet = pq.ParquetFile(path, memory_map=False, pre_buffer=False,
                                     buffer_size=1 << 20)
            schema = parquet.schema_arrow

            def row_groups() -> Iterator[pa.RecordBatch]:
                for i in range(parquet.num_row_groups):
                    yield from parquet.iter_batches(
                        batch_size=batch_size or PARQUET_BATCH_ROWS, row_groups=[i],
                        columns=columns,
                    )

            return schema, row_groups()
        source = pa.memory_map(str(path))
        if fmt == "ipc-file":
            reader = ipc.open_file(source)

            def file_batches() -> Iterator[pa.RecordBatch]:
                for i in range(reader.num_record_batches):
                    yield reader.get_batch(i)

            return reader.schema, file_batches()
        stream = ipc.open_stream(source)
        return stream.schema, iter(stream)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise InputError(f"{path}: cannot read it ({_first_line(exc)}); is it complete?") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _guarded(path: object, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Turn Arrow's errors in the middle of a file (truncation, corruption) into InputError."""
    try:
        yield from batches
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise InputError(
            f"{path}: the file is truncated or corrupt ({_first_line(exc)}); re-create it"
        ) from None


def numpy_to_batch(matrix: np.ndarray) -> pa.RecordBatch:
    """A 2-D numpy array as a record batch with columns "0", "1", … (zero-copy per column
    when the array is Fortran-ordered, one copy per column otherwise)."""
    if matrix.ndim != 2:
        raise ValueError(f"a numpy source must be 2-D (rows, columns), got shape {matrix.shape}")
    arrays = [pa.array(np.ascontiguousarray(matrix[:, j])) for j in range(matrix.shape[1])]
    return pa.RecordBatch.from_arrays(arrays, names=[str(j) for j in range(matrix.shape[1])])


def schema_and_batches(
    source: Source, columns: list[str] | None = None, batch_size: int | None = None
) -> tuple[pa.Schema | None, Iterator[pa.RecordBatch]]:
    """Open ``source`` as (schema, iterator of record batches).

    ``source`` may also be a directory, a glob, a list of paths, a CSV / JSON lines file, an
    object-store URI or a :class:`streamnorm.sources.DataSource` (see that module).
    ``columns`` only prunes what is read from Parquet files (other sources pass every column);
    ``batch_size`` caps the rows per batch. The schema is None for an empty iterable.
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    from . import sources  # sources builds on this module

    if is_path(source) and sources.is_local_file(source):
        schema, batches = _file_batches(source, columns, batch_size)
        return schema, _rechunk(_guarded(source, batches), batch_size)
    if is_path(source) or sources.is_path_list(source):
        return sources.DataSource(source).schema_and_batches(columns, batch_size)
    if isinstance(source, sources.DataSource):
        return source.schema_and_batches(columns, batch_size)
    if isinstance(source, pa.RecordBatch):
        return source.schema, _rechunk([source], batch_size)
    if isinstance(source, pa.Table):
        return source.schema, _rechunk(source.to_batches(), batch_size)
    if isinstance(source, pa.RecordBatchReader):
        return source.schema, _rechunk(source, batch_size)
    if isinstance(source, np.ndarray):
        batch = numpy_to_batch(source)
        return batch.schema, _rechunk([batch], batch_size)
    if hasattr(source, "__arrow_c_stream__"):
        reader = pa.RecordBatchReader.from_stream(source)
        return reader.schema, _rechunk(reader, batch_size)
    if hasattr(source, "__arrow_c_array__"):
        batch = pa.record_batch(source)
        return batch.schema, _rechunk([batch], batch_size)
    if isinstance(source, Iterable) and not isinstance(source, (str, bytes, dict)):
        iterator = iter(source)
        first = next(iterator, None)
        if first is None:
            return None, iter(())
        if not isinstance(first, pa.RecordBatch):
            raise TypeError(
                f"an iterable source must yield pyarrow.RecordBatch, got {type(first).__name__}"
            )

        def chained() -> Iterator[pa.RecordBatch]:
            yield first
            yield from iterator

        return first.schema, _rechunk(chained(), batch_size)
    raise TypeError(
        f"cannot read data from a {type(source).__name__}: pass a path, a pyarrow Table/"
        "RecordBatch/RecordBatchReader, a 2-D numpy array or an Arrow-exporting DataFrame"
    )


def iter_batches(
    source: Source, columns: list[str] | None = None, batch_size: int | None = None
) -> Iterator[pa.RecordBatch]:
    """The record batches of ``source`` (see :func:`schema_and_batches`)."""
    return schema_and_batches(source, columns, batch_size)[1]


# --------------------------------------------------------------------------- writing


def output_format(path: str | os.PathLike) -> str:
    """``"parquet"``, ``"ipc-file"`` or ``"ipc-stream"`` for a destination, by its suffix."""
    suffix = os.path.splitext(str(path).split("?", 1)[0])[1].lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix == ".arrows":
        return "ipc-stream"
    if suffix in IPC_SUFFIXES:
        return "ipc-file"
    raise InputError(
        f"{path}: unknown output format {suffix or '(no suffix)'}; use .parquet, .arrow, "
        ".feather, .ipc or .arrows"
    )


#: Compression codecs accepted by :class:`BatchWriter`; ``None`` means the format's default
#: (zstd for Parquet, uncompressed for Arrow IPC so that it can be memory-mapped).
PARQUET_CODECS = ("zstd", "lz4", "snappy", "gzip", "brotli", "none")
IPC_CODECS = ("zstd", "lz4", "none")


def _is_uri(destination: object) -> bool:
    from .sources import is_uri

    return isinstance(destination, str) and is_uri(destination)


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike) -> Iterator[Any]:
    """Yield a temporary path beside ``destination``; move it there on success.

    Local files: a hidden temporary file in the same directory, ``os.replace``d into place.
    Object stores (``s3://``, ``gs://``, …; ``destination`` a URI string): a hidden temporary
    object beside the destination, written completely, then moved into place with the
    filesystem's own move (on S3 a server-side copy, so the destination key appears whole or
    not at all; a plain S3 PUT / multipart upload is itself atomic, but pyarrow completes an
    upload even when writing fails, hence the temporary object). On any exception
    (KeyboardInterrupt included) the temporary file or object is removed and an existing
    destination is left untouched. The yielded value is a ``Path`` for local files and a URI
    string for object stores; :class:`BatchWriter` takes either.
    """
    if _is_uri(destination):
        with _atomic_uri(str(destination)) as tmp_uri:
            yield tmp_uri
        return
    destination = Path(destination)
    directory = destination.parent if str(destination.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"{destination}: the directory {directory} does not exist; create it")
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{destination.name}.", suffix=".tmp", dir=directory
        )
    except PermissionError:
        raise InputError(
            f"{destination}: cannot write in {directory} (permission denied); choose another "
            "destination"
        ) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def _atomic_uri(destination: str) -> Iterator[str]:
    """:func:`atomic_path` for an object-store URI."""
    import uuid

    from .sources import resolve

    fs, path = resolve(destination)
    parent, name = path.rsplit("/", 1) if "/" in path else ("", path)
    tmp_path = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}.tmp" if parent else f".{name}.tmp"
    scheme = destination.split("://", 1)[0]
    query = destination.split("?", 1)[1] if "?" in destination else ""
    tmp_uri = f"{scheme}://{tmp_path}" + (f"?{query}" if query else "")
    try:
        yield tmp_uri
        fs.move(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError, pa.ArrowException):
            fs.delete_file(tmp_path)
        raise


def _check_codec(fmt: str, compression: str | None) -> str | None:
    """The codec to pass to pyarrow (None: uncompressed), after checking it fits the format."""
    if fmt == "parquet":
        codec = "zstd" if compression is None else compression.lower()
        if codec not in PARQUET_CODECS:
            raise ValueError(f"compression {compression!r} is not one of {PARQUET_CODECS} "
                             "(Parquet)")
        return codec
    codec = "none" if compression is None else compression.lower()
    if codec not in IPC_CODECS:
        raise ValueError(f"compression {compression!r} is not one of {IPC_CODECS} (Arrow IPC "
                         "compresses with zstd or lz4 only)")
    return None if codec == "none" else codec


def float32_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every float64 column (and float64 vector) as float32."""
    fields = []
    for f in schema:
        if pa.types.is_float64(f.type):
            f = f.with_type(pa.float32())
        elif pa.types.is_fixed_size_list(f.type) and pa.types.is_float64(f.type.value_type):
            value = f.type.value_field.with_type(pa.float32())
            f = f.with_type(pa.list_(value, f.type.list_size))
        fields.append(f)
    return pa.schema(fields, metadata=schema.metadata)


def _open_sink(path: Any) -> Any:
    """A local path string, or an output stream for an object-store URI."""
    if _is_uri(path):
        from .sources import resolve

        fs, inner = resolve(path)
        return fs.open_output_stream(inner, compression=None)
    return str(path)


def _is_float_like(arrow_type: pa.DataType) -> bool:
    """Floating point, or a list of floating point (the columns normalization writes)."""
    if pa.types.is_fixed_size_list(arrow_type) or pa.types.is_list(arrow_type):
        return _is_float_like(arrow_type.value_type)
    return pa.types.is_floating(arrow_type)


class BatchWriter:
    """Writes record batches to an Arrow IPC (file/stream) or Parquet file chosen by suffix.

    Use as a context manager together with :func:`atomic_path`; ``write`` takes batches of the
    schema given at construction. ``path`` is a local path or an object-store URI.

    Parameters
    ----------
    compression : ``"zstd"`` (Parquet default), ``"lz4"``, ``"snappy"``, ``"gzip"``,
        ``"brotli"`` or ``"none"``; Arrow IPC takes ``"zstd"``, ``"lz4"`` or ``"none"`` (default).
    row_group_size : rows per Parquet row group; batches are buffered up to it (None: one row
        group per written batch).
    float32 : write float64 columns (and float64 vectors) as float32, rounding once.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        schema: pa.Schema,
        fmt: str | None = None,
        *,
        compression: str | None = None,
        row_group_size: int | None = None,
        float32: bool = False,
    ):
        self.format = fmt or output_format(path)
        codec = _check_codec(self.format, compression)
        if row_group_size is not None and (self.format != "parquet" or row_group_size < 1):
            raise ValueError("row_group_size must be a positive number of rows, for Parquet "
                             f"output only (got {row_group_size} for {self.format})")
        self.row_group_size = row_group_size
        self.input_schema = schema
        self.schema = float32_schema(schema) if float32 else schema
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._sink = _open_sink(path)
        if self.format == "parquet":
            # Dictionary-encoding random floats costs ~4x in the writer and saves nothing.
            dictionary_columns = [f.name for f in self.schema if not _is_float_like(f.type)]
            self._writer: Any = pq.ParquetWriter(
                self._sink, self.schema, compression=codec,
                use_dictionary=dictionary_columns or False,
            )
        else:
            options = ipc.IpcWriteOptions(compression=codec)
            opener = ipc.new_stream if self.format == "ipc-stream" else ipc.new_file
            self._writer = opener(self._sink, self.schema, options=options)

    def write(self, batch: pa.RecordBatch) -> None:
        """Write one batch (cast to float32 first when asked)."""
        if self.schema is not self.input_schema:
            batch = batch.cast(self.schema)
        if self.row_group_size is None:
            self._writer.write_batch(batch)
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= self.row_group_size:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        """Write the buffered rows as whole row groups (and the rest too when ``final``)."""
        size = self.row_group_size
        assert size is not None
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        full = table.num_rows if final else table.num_rows // size * size
        if full:
            self._writer.write_table(table.slice(0, full), row_group_size=size)
        rest = table.slice(full)
        self._pending = rest.to_batches() if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> None:
        if self._pending_rows:
            self._flush(final=True)
        self._writer.close()
        if not isinstance(self._sink, str):
            self._sink.close()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_table(table: pa.Table, path: str | os.PathLike) -> None:
    """Write a whole (small) table atomically, format by suffix."""
    with atomic_path(path) as tmp:
        with BatchWriter(tmp, table.schema, output_format(path)) as writer:
            for batch in table.to_batches():
                writer.write(batch)


def read_table(path: str | os.PathLike) -> pa.Table:
    """Read a whole (small) Arrow IPC or Parquet file."""
    schema, batches = _file_batches(path, None)
    return pa.Table.from_batches(list(_guarded(path, batches)), schema=schema)
