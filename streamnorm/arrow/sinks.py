"""Writing: Arrow IPC (file / stream) and Parquet, local or on an object store, always through
a temporary file moved into place (:func:`atomic_path`), encoded on a background thread
(:class:`BatchWriter`; a Parquet file's row groups on several, :mod:`.parquet_stitch`)."""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import stat
import threading
import uuid
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..errors import InputError
from .failures import Failure
from .files import file_batches, guarded
from .formats import check_codec, output_format
from .locations import is_uri, resolve
from .parquet_stitch import StitchedParquetWriter, column_parts, parallel_encoding
from .schemas import float32_schema
from .signal_io import WAIT_SECONDS
from .stdio import (
    is_stdio,
    is_stream_location,
    is_stream_path,
    open_stream_sink,
    stdout_file,
    stream_format,
)


def _is_uri(destination: object) -> bool:
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
    if is_stream_location(destination):  # stdout, a pipe, a device: written as it comes
        yield destination
        return
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


def _open_sink(path: Any) -> Any:
    """A local path string, an output stream for an object-store URI, stdout for ``-``, or a
    binary file object for a pipe or device path."""
    if is_stdio(path):
        return stdout_file()
    if is_stream_path(path):
        return open_stream_sink(path)
    if _is_uri(path):
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

    ``path`` ``-`` is stdout (``fmt`` ``"ipc-stream"``, ``"parquet"`` or ``"csv"``): each batch
    is flushed as soon as it is written, and stdout is never closed.

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
        stream = is_stream_location(path)
        self.format = fmt or (stream_format(None) if stream else output_format(path))
        codec = check_codec(self.format, compression)
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
        self._failure: Failure | None = None
        self._abort = False
        self._closed = False
        #: stdout, a pipe or a device: flushed after every batch (stdout is never closed)
        self._streamed = stream
        self._owned = not is_stdio(path)
        #: Parquet only: key-value pairs added to the file's footer on a successful close
        #: (known only once every batch is written, such as the final statistics of online
        #: normalization). Other formats have written their schema and metadata already.
        self.footer_metadata: dict[bytes, bytes] = {}
        self._sink = _open_sink(path)
        if self.format == "parquet":
            # Dictionary-encoding random floats costs ~4x in the writer and saves nothing.
            dictionary_columns = [f.name for f in self.schema if not _is_float_like(f.type)]
            # A file gets its row groups encoded on several threads and stitched in order
            # (the same bytes as one pq.ParquetWriter) given enough CPUs; a stream is
            # written batch by batch.
            options: dict[str, Any] = {"compression": codec, "write_page_checksum": True,
                                       "use_dictionary": dictionary_columns or False}
            if not stream and parallel_encoding():
                self._writer: Any = StitchedParquetWriter(self._sink, self.schema,
                                                          column_parts=column_parts(),
                                                          **options)
            else:
                self._writer = pq.ParquetWriter(self._sink, self.schema, **options)
        elif self.format == "csv":
            import pyarrow.csv as pacsv  # loaded on first use

            self._writer = pacsv.CSVWriter(self._sink, self.schema)
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
        self._put(batch)

    def _put(self, item: pa.RecordBatch | None) -> None:
        """Queue ``item`` for the writing thread. The wait for room is cut into slices, so
        that Ctrl-C / SIGTERM stop the caller even when the kernel hands the signal to
        another thread while the writer is blocked on a full pipe (see ``signal_io``)."""
        while True:
            try:
                self._queue.put(item, timeout=WAIT_SECONDS)
                return
            except queue.Full:
                continue  # back in the interpreter: a pending signal's handler runs here

    def _run(self) -> None:
        while True:
            try:
                batch = self._queue.get(timeout=WAIT_SECONDS)
            except queue.Empty:
                if self._abort:
                    return  # an aborted stream's caller did not wait for this thread
                continue
            if batch is None:
                return
            if self._failure is not None or self._abort:
                continue  # drop the rest after a failure or an abort; keep draining
            try:
                self._write_now(batch)
            except BaseException as exc:
                self._failure = Failure(exc)

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
            self._flush_stream()
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
            self._flush_stream()
        rest = table.slice(full)
        self._pending = rest.to_batches() if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def _flush_stream(self) -> None:
        """On stdout, a pipe or a device, hand what was written to the reader now (a pipe sees
        each batch)."""
        if self._streamed:
            self._sink.flush()

    def _join(self) -> None:
        """Wait for the background thread to finish what was queued (all of it unless
        aborting) and stop."""
        if self._thread is None:
            return
        if self._abort and self._streamed:
            # A consumer that stopped reading can hold the thread in write() for ever: an
            # aborted stream is left to it (a daemon; it drops what is queued and ends).
            self._thread = None
            return
        self._put(None)
        while self._thread.is_alive():
            self._thread.join(WAIT_SECONDS)  # in slices, as in _put
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
            if self.footer_metadata and self.format == "parquet" and not self._abort:
                self._writer.add_key_value_metadata(self.footer_metadata)
        finally:
            # An aborted stream is left as it is: flushing or closing could wait for ever on a
            # consumer that stopped reading (and an end would make it look complete).
            cut_stream = self._abort and self._streamed
            if self._abort and isinstance(self._writer, StitchedParquetWriter):
                self._writer.discard()  # no footer, no waiting for queued row groups
            elif cut_stream:
                self._leave_stream_cut()
            else:
                self._writer.close()
            if not cut_stream:
                if self._streamed and not self._owned:
                    self._sink.flush()
                elif not isinstance(self._sink, str):
                    self._sink.close()

    def _leave_stream_cut(self) -> None:
        """An aborted stream gets no end: no end-of-stream marker or Parquet footer that
        would make the batches written so far look complete (and writing one could wait for
        ever on a consumer that stopped reading)."""
        if isinstance(self._writer, pq.ParquetWriter):
            self._writer.is_open = False  # its finalizer would write the footer otherwise

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
    schema, batches = file_batches(path, None)
    return pa.Table.from_batches(list(guarded(path, batches)), schema=schema)
