"""Arrow IPC streams over pipes: ``-`` as an input (stdin) or an output (stdout).

Reading: :class:`StreamSource` reads an Arrow IPC stream from a binary file object (stdin, a
socket, ``pa.input_stream``) one record batch at a time, never more. A stream can be read
only once, so every opening of the same file object shares one :class:`StreamSource`
(:func:`stream_source`), and a second pass over its batches is an
:class:`~streamnorm.errors.InputError` (batch normalization without statistics needs two
passes: :func:`check_rereadable`).

Writing: ``-`` as a destination writes to stdout (:func:`stdout_file`), in the format
``"arrows"`` (Arrow IPC stream, default), ``"parquet"`` (Parquet needs no seeking: pyarrow
writes it front to back and keeps its own position; readers need the whole of it, though) or
``"csv"`` (no metadata record; scalar columns only); every batch is flushed as soon as it is
written (:class:`~streamnorm.arrow.sinks.BatchWriter`).
"""

from __future__ import annotations

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

#: The name that means stdin as an input and stdout as an output.
STDIO = "-"
#: What ``--format`` / ``format=`` chooses for ``-``: the format name → BatchWriter's format.
STREAM_FORMATS = {"arrows": "ipc-stream", "parquet": "parquet", "csv": "csv"}
DEFAULT_STREAM_FORMAT = "arrows"

_SOURCES: weakref.WeakKeyDictionary[Any, StreamSource] = weakref.WeakKeyDictionary()


def is_stdio(location: object) -> bool:
    """Whether ``location`` is ``"-"``: stdin as an input, stdout as an output."""
    return isinstance(location, str) and location == STDIO


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

    def __init__(self, file: IO[bytes] | Any, shown: str) -> None:
        self.file = file
        self.shown = shown
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
    try:
        found = _SOURCES.get(file)
    except TypeError:  # not weak-referenceable: not shared
        return StreamSource(file, shown)
    if found is None:
        found = _SOURCES[file] = StreamSource(file, shown)
    return found


def is_one_shot(source: object) -> bool:
    """Whether ``source`` can be read only once: stdin (``-``), a file object, a
    :class:`StreamSource`, a ``pa.RecordBatchReader`` or an iterator."""
    return (is_stdio(source) or is_file_object(source)
            or isinstance(source, (StreamSource, pa.RecordBatchReader, Iterator)))


def check_rereadable(source: object) -> None:
    """:class:`InputError` (:func:`once_message`) when ``source`` can be read only once."""
    if is_one_shot(source):
        shown = "stdin" if is_stdio(source) else str(
            source if isinstance(source, StreamSource) else f"this {type(source).__name__}")
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
