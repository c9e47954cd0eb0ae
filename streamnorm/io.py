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
import queue
import secrets
import stat
import threading
from collections.abc import Collection, Iterable, Iterator
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
#: Bytes each Parquet column reader buffers from the file (no pre-buffering, see below).
PARQUET_BUFFER_BYTES = 1 << 18
#: Parquet data (uncompressed bytes of the columns read) below which one thread decodes it all.
PARQUET_PARALLEL_BYTES = 16 << 20
#: Batches each Parquet decoding thread may have ready ahead of the consumer.
PARQUET_READ_AHEAD = 1


def _open_parquet(path: Any) -> pq.ParquetFile:
    # No memory map (its touched pages count as resident: RSS would grow with the file) and
    # no pre-buffering (it holds a whole row group's column chunks): memory is bounded by the
    # batch and the per-column reader state, not by the row group or the file. Pages that
    # carry a CRC (every file streamnorm writes) are verified: a flipped byte is an error,
    # not a different number.
    return pq.ParquetFile(path, memory_map=False, pre_buffer=False,
                          buffer_size=PARQUET_BUFFER_BYTES, page_checksum_verification=True)


def corrupt_row_group(path: object, index: int, exc: BaseException) -> InputError:
    """The error for Parquet row group ``index`` of ``path`` failing to decode or verify."""
    return InputError(f"{path}: row group {index} is truncated or corrupt ({_first_line(exc)}); "
                      "re-create the file from its source")


def parquet_row_groups(path: object, parquet: pq.ParquetFile, **options: Any
                       ) -> Iterator[pa.RecordBatch]:
    """The batches of ``parquet`` (``iter_batches`` options), one row group at a time; a row
    group that fails to decode or verify is an :class:`InputError` naming it."""
    for i in range(parquet.num_row_groups):
        try:
            yield from parquet.iter_batches(row_groups=[i], **options)
        except (pa.ArrowInvalid, OSError) as exc:
            raise corrupt_row_group(path, i, exc) from None


def _reader_threads() -> int:
    """Threads for decoding Parquet: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _parquet_column_groups(
    parquet: pq.ParquetFile, columns: list[str] | None, threads: int
) -> list[list[str]] | None:
    """The columns to read split into ``threads`` groups of similar compressed size, for
    decoding in parallel; None when one thread should read them all (a small file, one
    column, one CPU, or names that a column subset could not reproduce exactly)."""
    if threads < 2:
        return None
    schema = parquet.schema_arrow
    names = schema.names
    wanted = list(dict.fromkeys(names if columns is None else columns))
    if (len(wanted) < 2 or len(set(names)) != len(names) or any("." in n for n in names)
            or any(n not in names for n in wanted)):
        return None
    metadata = parquet.metadata
    if metadata.num_row_groups == 0:
        return None
    sizes = dict.fromkeys(wanted, 0)
    uncompressed = 0
    first = metadata.row_group(0)
    for i in range(first.num_columns):
        chunk = first.column(i)
        top = chunk.path_in_schema.split(".", 1)[0]
        if top in sizes:
            sizes[top] += chunk.total_compressed_size
            uncompressed += chunk.total_uncompressed_size
    if uncompressed * metadata.num_row_groups < PARQUET_PARALLEL_BYTES:
        return None
    groups: list[list[str]] = [[] for _ in range(min(threads, len(wanted)))]
    load = [0] * len(groups)
    for name in sorted(wanted, key=lambda n: -sizes[n]):  # largest first, to the lightest
        g = load.index(min(load))
        groups[g].append(name)
        load[g] += sizes[name]
    order = {name: k for k, name in enumerate(wanted)}
    return [sorted(group, key=order.__getitem__) for group in groups]


def _parquet_batches(
    path: str | os.PathLike, parquet: pq.ParquetFile, columns: list[str] | None, rows: int
) -> Iterator[pa.RecordBatch]:
    """Batches of ``rows`` rows, one row group at a time, decoded by one thread per column
    group (:func:`_parquet_column_groups`) and put back together, so the batches are the
    same as one reader's, in the same order."""
    groups = _parquet_column_groups(parquet, columns, _reader_threads())
    if groups is None:
        yield from parquet_row_groups(path, parquet, batch_size=rows, columns=columns)
        return
    wanted = list(dict.fromkeys(parquet.schema_arrow.names if columns is None else columns))
    stop = threading.Event()
    queues: list[queue.Queue] = [queue.Queue(maxsize=PARQUET_READ_AHEAD) for _ in groups]

    def offer(q: queue.Queue, item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def decode(group: list[str], q: queue.Queue) -> None:
        # Arrow decodes without the GIL: the groups' threads run truly in parallel.
        try:
            reader = _open_parquet(path)
            for batch in parquet_row_groups(path, reader, batch_size=rows, columns=group,
                                            use_threads=False):
                if not offer(q, batch):
                    return
            offer(q, None)
        except BaseException as exc:  # handed to the consumer, which raises it
            offer(q, _Failure(exc))

    threads = [threading.Thread(target=decode, args=(group, q), daemon=True,
                                name=f"streamnorm-parquet-{k}")
               for k, (group, q) in enumerate(zip(groups, queues))]
    for thread in threads:
        thread.start()
    schema: pa.Schema | None = None
    try:
        while True:
            parts = [q.get() for q in queues]
            failure = next((p for p in parts if isinstance(p, _Failure)), None)
            if failure is not None:
                raise failure.exc
            if all(p is None for p in parts):
                return
            if any(p is None for p in parts) or len({p.num_rows for p in parts}) != 1:
                raise pa.ArrowInvalid("column groups of a row group differ in length")
            arrays = {}
            for part in parts:
                arrays.update(zip(part.schema.names, part.columns))
            if schema is None:
                fields = {f.name: f for part in parts for f in part.schema}
                schema = pa.schema([fields[n] for n in wanted],
                                   metadata=parts[0].schema.metadata)
            yield pa.RecordBatch.from_arrays([arrays[n] for n in wanted], schema=schema)
    finally:
        stop.set()
        for thread in threads:
            thread.join()


class _Failure:
    """An exception raised in a worker thread, carried to the thread that consumes its work."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def _file_batches(
    path: str | os.PathLike, columns: list[str] | None, batch_size: int | None = None
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    fmt = file_format(path)
    try:
        if fmt == "parquet":
            parquet = _open_parquet(path)
            rows = batch_size or PARQUET_BATCH_ROWS
            schema = check_unique_names(parquet.schema_arrow, path)
            return schema, _parquet_batches(path, parquet, columns, rows)
        source = pa.memory_map(str(path))
        if fmt == "ipc-file":
            reader = ipc.open_file(source)

            def file_batches() -> Iterator[pa.RecordBatch]:
                for i in range(reader.num_record_batches):
                    yield reader.get_batch(i)

            return check_unique_names(reader.schema, path), file_batches()
        stream = ipc.open_stream(source)
        return check_unique_names(stream.schema, path), iter(stream)
    except (pa.ArrowInvalid, pa.ArrowIOError, pa.ArrowNotImplementedError, OSError) as exc:
        raise read_error(path, exc) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_error(where: object, exc: BaseException) -> InputError:
    """The one-line error for data Arrow cannot open: incomplete, or holding a type Arrow
    does not read (a polars Int128 column, written as a 128-bit integer)."""
    reason = _first_line(exc)
    if "more than 64 bits" in reason or "i128" in reason:
        return InputError(f"{where}: holds an integer column wider than 64 bits (such as polars "
                          f"Int128), which Arrow cannot read ({reason}); cast it to Int64 or "
                          "Float64 before writing the data")
    if isinstance(exc, pa.ArrowNotImplementedError):
        return InputError(f"{where}: holds a type Arrow cannot read ({reason}); cast that "
                          "column to a standard type before writing the data")
    return InputError(f"{where}: cannot read it ({reason}); is it complete?")


def check_unique_names(schema: pa.Schema, where: object) -> pa.Schema:
    """``schema``, after checking that no column name repeats (columns are chosen by name,
    so a repeated one is ambiguous): :class:`InputError` naming the repeated names."""
    names = schema.names
    if len(set(names)) == len(names):
        return schema
    repeated = ", ".join(repr(n) for n in dict.fromkeys(
        n for i, n in enumerate(names) if n in names[:i]))
    raise InputError(f"{where}: more than one column is named {repeated}; give every column "
                     "its own name (rename them where the data is written)")


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
    schema, batches = _open_any(source, columns, batch_size)
    if schema is not None and not is_path(source):  # files are checked as they are opened
        check_unique_names(schema, f"this {type(source).__name__}")
    return schema, batches


def _open_any(
    source: Source, columns: list[str] | None, batch_size: int | None
) -> tuple[pa.Schema | None, Iterator[pa.RecordBatch]]:
    """:func:`schema_and_batches` before the check of the column names."""
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
        try:
            reader = pa.RecordBatchReader.from_stream(source)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise read_error(f"this {type(source).__name__}", exc) from None
        return reader.schema, _rechunk(reader, batch_size)
    if hasattr(source, "__arrow_c_array__"):
        try:
            batch = pa.record_batch(source)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise read_error(f"this {type(source).__name__}", exc) from None
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
    string for object stores; :class:`BatchWriter` takes either. A local file gets the
    permissions of any file the user creates (0666 less the umask: 0644 under umask 022), or
    keeps those of the file it replaces.
    """
    if _is_uri(destination):
        with _atomic_uri(str(destination)) as tmp_uri:
            yield tmp_uri
        return
    destination = Path(destination)
    directory = destination.parent if str(destination.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"{destination}: the directory {directory} does not exist; create it")
    tmp: Path | None = None
    try:
        # The name is bound before the file exists, inside the try: a Ctrl-C or SIGTERM
        # landing anywhere after the file is created still removes it.
        while tmp is None:
            tmp = directory / f".{destination.name}.{secrets.token_hex(6)}.tmp"
            if not _create_output_file(tmp, destination):
                tmp = None  # the name was taken: not ours to remove
        yield tmp
        os.replace(tmp, destination)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def _create_output_file(path: Path, destination: Path) -> bool:
    """Create the empty file ``path`` (False if the name exists) with the permissions of any
    file the user creates (0666 less the umask), or those of ``destination`` if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    except PermissionError:
        raise InputError(
            f"{destination}: cannot write in {path.parent} (permission denied); choose another "
            "destination"
        ) from None
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, stat.S_IMODE(os.stat(destination).st_mode))
    return True


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


def float32_schema(schema: pa.Schema, columns: Collection[str] | None = None) -> pa.Schema:
    """``schema`` with every float64 column (and float64 vector) as float32; only those
    named in ``columns`` when given."""
    fields = []
    for f in schema:
        narrow = columns is None or f.name in columns
        if narrow and pa.types.is_float64(f.type):
            f = f.with_type(pa.float32())
        elif (narrow and pa.types.is_fixed_size_list(f.type)
              and pa.types.is_float64(f.type.value_type)):
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


#: Batches :class:`BatchWriter` may hold queued for its writing thread.
WRITE_AHEAD = 1


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
    float32 : write float64 columns (and float64 vectors) as float32, rounding once: True for
        every one, or a collection of column names for those only (the normalized columns).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        schema: pa.Schema,
        fmt: str | None = None,
        *,
        compression: str | None = None,
        row_group_size: int | None = None,
        float32: bool | Collection[str] = False,
    ):
        self.format = fmt or output_format(path)
        codec = _check_codec(self.format, compression)
        if row_group_size is not None and (self.format != "parquet" or row_group_size < 1):
            raise ValueError("row_group_size must be a positive number of rows, for Parquet "
                             f"output only (got {row_group_size} for {self.format})")
        self.row_group_size = row_group_size
        self.input_schema = schema
        if float32 is True:
            self.schema = float32_schema(schema)
        elif float32:
            self.schema = float32_schema(schema, set(float32))
        else:
            self.schema = schema
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._queue: queue.Queue = queue.Queue(maxsize=WRITE_AHEAD)
        self._thread: threading.Thread | None = None
        self._failure: _Failure | None = None
        self._abort = False
        self._closed = False
        self._sink = _open_sink(path)
        if self.format == "parquet":
            # Dictionary-encoding random floats costs ~4x in the writer and saves nothing.
            dictionary_columns = [f.name for f in self.schema if not _is_float_like(f.type)]
            self._writer: Any = pq.ParquetWriter(
                self._sink, self.schema, compression=codec,
                use_dictionary=dictionary_columns or False, write_page_checksum=True,
            )
        else:
            options = ipc.IpcWriteOptions(compression=codec)
            opener = ipc.new_stream if self.format == "ipc-stream" else ipc.new_file
            self._writer = opener(self._sink, self.schema, options=options)

    def write(self, batch: pa.RecordBatch) -> None:
        """Write one batch (cast to float32 first when asked).

        The encoding and writing happen on a background thread (Arrow releases the GIL), so
        the caller computes the next batch meanwhile; at most :data:`WRITE_AHEAD` batches wait
        for it. An error there is raised by the next ``write`` or by ``close``.
        """
        self._raise_failure()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="streamnorm-writer")
            self._thread.start()
        self._queue.put(batch)

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._failure is not None or self._abort:
                continue  # drop the rest after a failure or an abort; keep draining
            try:
                self._write_now(batch)
            except BaseException as exc:
                self._failure = _Failure(exc)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            self._abort = True
            raise failure.exc

    def _write_now(self, batch: pa.RecordBatch) -> None:
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

    def _join(self) -> None:
        """Wait for the background thread to finish what was queued (all of it unless
        aborting) and stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Write what is queued and the file's footer; raises a write error not yet raised."""
        if self._closed:
            return
        self._closed = True
        try:
            self._join()
            self._raise_failure()
            if self._pending_rows and not self._abort:
                self._flush(final=True)
        finally:
            self._writer.close()
            if not isinstance(self._sink, str):
                self._sink.close()

    def abort(self) -> None:
        """Stop without writing what is still queued (the file is left incomplete: the
        caller discards it, as :func:`atomic_path` does); never raises a write error."""
        self._abort = True
        with contextlib.suppress(Exception):
            self._failure = None
            self.close()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


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
