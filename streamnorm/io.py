"""Open any source as a stream of record batches; write Arrow IPC / Parquet atomically.

Sources (DESIGN §3): a path (Arrow IPC file or stream, Parquet), a ``pa.RecordBatch``,
``pa.Table``, ``pa.RecordBatchReader``, an iterable of record batches, a 2-D numpy array
(columns named "0", "1", …), or any object exporting ``__arrow_c_stream__`` /
``__arrow_c_array__`` (polars, pandas, duckdb). Memory stays bounded by the batch size: files are
read one IPC batch or one Parquet row group at a time.
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


def _file_batches(
    path: str | os.PathLike, columns: list[str] | None
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    fmt = file_format(path)
    try:
        if fmt == "parquet":
            parquet = pq.ParquetFile(path, memory_map=True)
            schema = parquet.schema_arrow

            def row_groups() -> Iterator[pa.RecordBatch]:
                for i in range(parquet.num_row_groups):
                    yield from parquet.read_row_group(i, columns=columns).to_batches()

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

    ``columns`` only prunes what is read from Parquet files (other sources pass every column);
    ``batch_size`` caps the rows per batch. The schema is None for an empty iterable.
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if is_path(source):
        schema, batches = _file_batches(source, columns)
        return schema, _rechunk(_guarded(source, batches), batch_size)
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
    suffix = Path(path).suffix.lower()
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


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; ``os.replace`` it there on success.

    On any exception (KeyboardInterrupt included) the temporary file is removed and an existing
    destination is left untouched.
    """
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


class BatchWriter:
    """Writes record batches to an Arrow IPC (file/stream) or Parquet file chosen by suffix.

    Use as a context manager together with :func:`atomic_path`; ``write`` takes batches of the
    schema given at construction.
    """

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, fmt: str | None = None):
        self.format = fmt or output_format(path)
        self.schema = schema
        if self.format == "parquet":
            self._writer: Any = pq.ParquetWriter(str(path), schema, compression="zstd")
        elif self.format == "ipc-stream":
            self._writer = ipc.new_stream(str(path), schema)
        else:
            self._writer = ipc.new_file(str(path), schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()

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
