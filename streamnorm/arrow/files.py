"""The batches of one file of any format, local or on an object store."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc as ipc

from ..errors import InputError
from .failures import first_line, read_error
from .formats import file_format, format_of, sniff_binary
from .parquet import (
    PARQUET_BATCH_ROWS,
    open_parquet,
    parquet_batches,
    parquet_row_groups,
)
from .schemas import check_unique_names
from .text import SkipCounter, SourceOptions, csv_batches, json_batches


def rechunk(batches: Iterable[pa.RecordBatch], batch_size: int | None) -> Iterator[pa.RecordBatch]:
    """Split batches longer than ``batch_size`` rows into zero-copy slices."""
    for batch in batches:
        if batch_size is None or batch.num_rows <= batch_size:
            yield batch
            continue
        for start in range(0, batch.num_rows, batch_size):
            yield batch.slice(start, batch_size)


def guarded(path: object, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Turn Arrow's errors in the middle of a file (truncation, corruption) into InputError."""
    try:
        yield from batches
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise InputError(
            f"{path}: the file is truncated or corrupt ({first_line(exc)}); re-create it"
        ) from None


def file_batches(
    path: str | os.PathLike, columns: list[str] | None, batch_size: int | None = None
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """(schema, batches) of a local Arrow IPC or Parquet file, told by its bytes; ``columns``
    prunes what Parquet decodes, ``batch_size`` sets Parquet's rows per batch (IPC batches
    are as written). Errors while opening are :class:`InputError`; wrap the batches in
    :func:`guarded` for errors in the middle of the file."""
    fmt = file_format(path)
    try:
        if fmt == "parquet":
            parquet = open_parquet(path)
            rows = batch_size or PARQUET_BATCH_ROWS
            schema = check_unique_names(parquet.schema_arrow, path)
            return schema, parquet_batches(path, parquet, columns, rows)
        source = pa.memory_map(str(path))
        if fmt == "ipc-file":
            reader = ipc.open_file(source)

            def ipc_batches() -> Iterator[pa.RecordBatch]:
                for i in range(reader.num_record_batches):
                    yield reader.get_batch(i)

            return check_unique_names(reader.schema, path), ipc_batches()
        stream = ipc.open_stream(source)
        return check_unique_names(stream.schema, path), iter(stream)
    except (pa.ArrowInvalid, pa.ArrowIOError, pa.ArrowNotImplementedError, OSError) as exc:
        raise read_error(path, exc) from None


def binary_batches(fs: pafs.FileSystem, path: str, shown: str, columns: list[str] | None
                   ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Parquet row group by row group, IPC batch by batch, from any filesystem."""
    if isinstance(fs, pafs.LocalFileSystem):
        schema, batches = file_batches(path, columns)
        return schema, guarded(shown, batches)
    fmt = sniff_binary(fs, path, shown)
    try:
        if fmt == "parquet":
            parquet = open_parquet(fs.open_input_file(path))
            return parquet.schema_arrow, guarded(
                shown, parquet_row_groups(shown, parquet, columns=columns))
        if fmt == "ipc-file":
            reader = ipc.open_file(fs.open_input_file(path))
            return reader.schema, guarded(
                shown, (reader.get_batch(i) for i in range(reader.num_record_batches)))
        stream = ipc.open_stream(fs.open_input_stream(path, compression=None))
        return stream.schema, guarded(shown, iter(stream))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise read_error(shown, exc) from None


def open_file(fs: pafs.FileSystem, path: str, shown: str, options: SourceOptions,
              counter: SkipCounter, columns: list[str] | None = None
              ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """(schema, batches) of one file of any format (``options.format``, else told by its
    suffix: CSV, JSON lines, or Parquet / Arrow IPC told by its bytes); ``shown`` names it in
    errors, ``counter`` counts the rows ``skip_bad_rows`` skips, ``columns`` prunes Parquet.
    Column names must be unique."""
    fmt = options.format or format_of(path)
    if fmt == "csv":
        schema, batches = csv_batches(fs, path, shown, options, counter)
    elif fmt == "json":
        schema, batches = json_batches(fs, path, shown, options, counter)
    else:
        schema, batches = binary_batches(fs, path, shown, columns)
    return check_unique_names(schema, shown), batches
