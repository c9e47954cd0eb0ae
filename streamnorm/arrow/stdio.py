"""Arrow IPC streams over pipes: ``-`` as an input (stdin) or an output (stdout).

Reading: :class:`StreamSource` reads an Arrow IPC stream from a binary file object (stdin, a
socket, ``pa.input_stream``) one record batch at a time, never more. A stream can be read
only once, so every opening of the same file object shares one :class:`StreamSource`
(:func:`stream_source`), and a second pass over its batches is an
:class:`~streamnorm.errors.InputError` (batch normalization without statistics needs two
passes: :func:`check_rereadable`).

Paths that name a pipe or a device (a FIFO made by ``mkfifo``, bash's ``<(producer)`` /
``>(consumer)``, ``/dev/stdin`` and ``/dev/stdout`` when they are pipes or a terminal,
``/dev/null``): :func:`is_stream_path` (``os.stat``: ``S_ISFIFO`` or ``S_ISCHR``). They cannot
be memory-mapped, sought or renamed into place, so they are read and written exactly as ``-``
is, under the same one-pass rules, and messages name the path instead of stdin / stdout: one
:class:`StreamSource` per pipe while it is read (:func:`stream_source_at`; once its stream has
ended, opening the path again is a new stream, as ``cat fifo`` twice is), and a writer that
flushes every batch (:func:`open_stream_sink`).

Writing: ``-`` as a destination writes to stdout (:func:`stdout_file`), in the format
``"arrows"`` (Arrow IPC stream, default), ``"parquet"`` (Parquet needs no seeking: pyarrow
writes it front to back and keeps its own position; readers need the whole of it, though) or
``"csv"`` (no metadata record; scalar columns only); every batch is flushed as soon as it is
written (:class:`~streamnorm.arrow.sinks.BatchWriter`).
"""

from __future__ import annotations

import os
import stat
import sys
import weakref
from collections.abc import Iterator
from typing import IO, Any

import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import InputError
from .failures import first_line
from .files import rechunk
from .formats import IPC_FILE_MAGIC, PARQUET_MAGIC
from .locations import is_uri
from .signal_io import signal_aware_reader

#: The name that means stdin as an input and stdout as an output.
STDIO = "-"
#: What ``--format`` / ``format=`` chooses for ``-``: the format name → BatchWriter's format.
STREAM_FORMATS = {"arrows": "ipc-stream", "parquet": "parquet", "csv": "csv"}
DEFAULT_STREAM_FORMAT = "arrows"

_SOURCES: weakref.WeakKeyDictionary[Any, StreamSource] = weakref.WeakKeyDictionary()
#: sys.stdin.buffer -> the signal-aware reader over its descriptor (one per object, so that
#: buffered bytes are never split between two readers)
_STDIN_FILES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
#: (st_dev, st_ino) of a pipe or device path -> its StreamSource, from the moment it is
#: opened (the open file keeps the inode from being reused) until its stream ends.
_PATH_SOURCES: dict[tuple[int, int], StreamSource] = {}


def is_stdio(location: object) -> bool:
    """Whether ``location`` is ``"-"``: stdin as an input, stdout as an output."""
    return isinstance(location, str) and location == STDIO


def is_stream_path(location: object) -> bool:
    """Whether ``location`` is a local path naming a FIFO (named pipe, ``<(cmd)``, a piped
    ``/dev/stdin``) or a character device (a terminal, ``/dev/null``): something read and
    written as a stream, like ``-``. False for ``-`` itself, URIs, missing paths and regular
    files (one ``os.stat``, following symlinks)."""
    if not isinstance(location, (str, os.PathLike)) or is_stdio(location):
        return False
    text = os.fspath(location)
    if not isinstance(text, str) or is_uri(text):
        return False
    try:
        mode = os.stat(text).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def is_stream_location(location: object) -> bool:
    """Whether ``location`` is read or written as a stream: ``-``, or a pipe / device path
    (:func:`is_stream_path`)."""
    return is_stdio(location) or is_stream_path(location)


def is_file_object(source: object) -> bool:
    """Whether ``source`` is a readable binary file object (``read``), not Arrow data."""
    return callable(getattr(source, "read", None)) and not isinstance(
        source, (str, bytes, pa.RecordBatchReader))


class StreamSource:
    """An Arrow IPC stream on a binary file object, read once, one batch at a time.

    ``shown`` names it in messages (``"stdin"``). The schema is read on first use
    (:attr:`schema`); :meth:`schema_and_batches` may be called any number of times, but only
    one of the iterators it returns may pull batches: the stream is not buffered, so a second
    pass is an :class:`InputError`.
    """

    def __init__(self, file: IO[bytes] | Any, shown: str, path: str | None = None,
                 key: tuple[int, int] | None = None) -> None:
        self.file = file
        self.shown = shown
        #: a pipe or device path, opened on first use (then closed at the end of the stream)
        self.path = path
        self._key = key
        self._reader: pa.RecordBatchReader | None = None
        self.started = False

    def __repr__(self) -> str:
        return f"StreamSource({self.shown})"

    def __str__(self) -> str:
        return self.shown

    @property
    def schema(self) -> pa.Schema:
        """The stream's schema (read from the file object on first use)."""
        return self._open().schema

    def _open(self) -> pa.RecordBatchReader:
        if self._reader is not None:
            return self._reader
        try:
            return self._open_reader()
        except InputError:
            self._release()  # a path's stream that cannot be read: closed, not shared
            raise

    def _release(self) -> None:
        """Close a file opened from :attr:`path` and stop sharing this source."""
        if self.path is None:
            return
        if self.file is not None:
            self.file.close()
        if self._key is not None and _PATH_SOURCES.get(self._key) is self:
            del _PATH_SOURCES[self._key]

    def _open_reader(self) -> pa.RecordBatchReader:
        if self.file is None and self.path is not None:
            try:  # a FIFO blocks here until its writer opens it, as stdin would
                self.file = open_stream_reader(self.path)
            except OSError as exc:
                raise InputError(f"{self.shown}: cannot open it ({exc.strerror or exc}); "
                                 "check the path and its permissions") from None
            if self._key is not None:  # every opening of the path shares it from now on
                _PATH_SOURCES[self._key] = self
        isatty = getattr(self.file, "isatty", None)
        if callable(isatty) and isatty():
            raise InputError(f"{self.shown} is a terminal; pipe an Arrow IPC stream into it, "
                             "e.g. `producer | streamnorm stats -`")
        self._check_head()
        try:
            self._reader = ipc.open_stream(self.file)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            reason = first_line(exc)
            if "length 0" in reason or "null" in reason:
                raise InputError(f"{self.shown}: no data (the stream is empty); check the "
                                 "producer's exit status") from None
            raise InputError(f"{self.shown}: not an Arrow IPC stream ({reason}); pipe the "
                             "Arrow IPC stream format (polars write_ipc_stream, pyarrow "
                             "ipc.new_stream), or pass a file's path") from None
        return self._reader

    def _check_head(self) -> None:
        """A clearer message for an Arrow IPC file or Parquet piped in (both need seeking)."""
        peek = getattr(self.file, "peek", None)
        if not callable(peek):
            return
        try:
            head = bytes(peek(8)[:8])
        except (OSError, ValueError):
            return
        if head[:6] == IPC_FILE_MAGIC or head[:4] == PARQUET_MAGIC:
            kind = "an Arrow IPC file" if head[:6] == IPC_FILE_MAGIC else "Parquet"
            raise InputError(f"{self.shown}: holds {kind}, which is read by seeking; pass "
                             "the file's path instead, or pipe the Arrow IPC stream format")

    def schema_and_batches(
        self, columns: list[str] | None = None, batch_size: int | None = None
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """(schema, batches); ``columns`` is ignored (a stream carries every column),
        ``batch_size`` caps the rows per batch."""
        reader = self._open()
        return reader.schema, rechunk(self._batches(reader), batch_size)

    def _batches(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        if self.started:
            raise InputError(f"{self.shown} cannot be read twice: its batches were read "
                             "already, and a stream is not buffered; keep what the first "
                             "pass computed, or read from a file")
        self.started = True
        try:
            yield from reader
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
            raise InputError(f"{self.shown}: the stream ended in the middle of a batch or is "
                             f"corrupt ({first_line(exc)}); check the producer") from None
        finally:
            self._release()  # a path's file is ours: closed at the end of its stream


def once_message(shown: str) -> str:
    """The one-line error for reading a stream a second time."""
    return (f"{shown} cannot be read twice, and batch mode without statistics reads its input "
            "twice (fit, then normalize); pass --stats FILE (stats=) or use --online")


def stream_source(file: Any = None) -> StreamSource:
    """The one :class:`StreamSource` of a binary file object (default: stdin), so that every
    opening of it shares the single pass a stream allows."""
    shown = "stdin"
    if file is None:
        file = sys.stdin.buffer
    elif file is not getattr(sys.stdin, "buffer", None):
        shown = f"the stream {getattr(file, 'name', type(file).__name__)}"
    reads = stdin_file() if shown == "stdin" else file
    try:
        found = _SOURCES.get(file)
    except TypeError:  # not weak-referenceable: not shared
        return StreamSource(reads, shown)
    if found is None:
        found = _SOURCES[file] = StreamSource(reads, shown)
    return found


def stdin_file() -> Any:
    """The binary file object of stdin as streamnorm reads it (never closed): waiting for a
    producer, it still notices Ctrl-C / SIGTERM (:mod:`.signal_io`). ``sys.stdin.buffer``
    itself when that has no descriptor (replaced by a test or a notebook) or is a regular
    file (which never blocks, and whose position stays shared)."""
    stdin = sys.stdin.buffer
    try:
        found = _STDIN_FILES.get(stdin)
    except TypeError:
        return stdin
    if found is not None:
        return found
    try:
        fd = stdin.fileno()
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except (AttributeError, OSError, ValueError):
        return stdin
    if regular:
        return stdin
    made = _STDIN_FILES[stdin] = signal_aware_reader(fd, owned=False)
    return made


def stream_source_at(path: str | os.PathLike) -> StreamSource:
    """The :class:`StreamSource` of a pipe or device path (:func:`is_stream_path`), named by
    the path in messages, shared by every opening until its stream has been read to the end
    (or failed): like stdin, it is read once, and a second pass over it is an
    :class:`InputError`. The file is opened on first use and closed at the end of the stream;
    opening the path after that is a new stream (a FIFO then waits for a new writer)."""
    text = os.fspath(path)
    info = os.stat(text)
    key = (info.st_dev, info.st_ino)
    found = _PATH_SOURCES.get(key)
    if found is not None and found.file is not None:  # opened, its stream not ended yet
        return found
    return StreamSource(None, text, path=text, key=key)  # registered once opened


def is_one_shot(source: object) -> bool:
    """Whether ``source`` can be read only once: stdin (``-``), a pipe or device path, a file
    object, a :class:`StreamSource`, a ``pa.RecordBatchReader`` or an iterator."""
    return (is_stream_location(source) or is_file_object(source)
            or isinstance(source, (StreamSource, pa.RecordBatchReader, Iterator)))


def check_rereadable(source: object) -> None:
    """:class:`InputError` (:func:`once_message`) when ``source`` can be read only once."""
    if is_one_shot(source):
        if is_stdio(source):
            shown = "stdin"
        elif is_stream_path(source):
            shown = os.fspath(source)  # type: ignore[arg-type]
        elif isinstance(source, StreamSource):
            shown = str(source)
        else:
            shown = f"this {type(source).__name__}"
        raise InputError(once_message(shown))


def stream_format(format: str | None) -> str:
    """The :class:`~streamnorm.arrow.sinks.BatchWriter` format for ``-`` and ``format``
    (``"arrows"``, the default, ``"parquet"`` or ``"csv"``); :class:`InputError` otherwise."""
    name = DEFAULT_STREAM_FORMAT if format is None else format.lower()
    if name not in STREAM_FORMATS:
        raise InputError(f"unknown stream format {format!r}; use one of "
                         f"{', '.join(STREAM_FORMATS)}")
    return STREAM_FORMATS[name]


def stdout_file() -> Any:
    """The binary file object of stdout (written, flushed, never closed by streamnorm)."""
    return sys.stdout.buffer


def open_stream_reader(path: str | os.PathLike) -> Any:
    """A pipe or device path (:func:`is_stream_path`) opened for reading as a binary file
    object that notices Ctrl-C / SIGTERM while it waits (:mod:`.signal_io`; closed by the
    caller). A FIFO blocks here until its writer opens it. Raises ``OSError``."""
    return signal_aware_reader(os.open(os.fspath(path), os.O_RDONLY), owned=True)


def open_stream_sink(path: str | os.PathLike) -> Any:
    """A pipe or device path (:func:`is_stream_path`) opened for writing as a binary file
    object (flushed after every batch and closed by the writer). A FIFO blocks here until
    its reader opens it. :class:`InputError` naming the path when it cannot be opened."""
    try:
        return open(os.fspath(path), "wb")  # noqa: SIM115  (closed by BatchWriter)
    except OSError as exc:
        raise InputError(f"{os.fspath(path)}: cannot open it for writing "
                         f"({exc.strerror or exc}); check the path and its permissions"
                         ) from None
