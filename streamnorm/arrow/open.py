"""THE one entry from anything to (schema, record batches).

Sources (docs/design.md §3): a path (Arrow IPC file or stream, Parquet, CSV / JSON lines), ``-``
(an Arrow IPC stream on stdin), a path naming a pipe or a device (a FIFO, ``<(producer)``,
``/dev/stdin``: an Arrow IPC stream read once, as ``-``), a binary file object holding an IPC stream, a directory, a glob, a list of paths, an object-store URI, a
:class:`~streamnorm.arrow.dataset.DataSource`, a ``pa.RecordBatch``, ``pa.Table``,
``pa.RecordBatchReader``, an iterable of record batches, a 2-D numpy array (columns named "0", "1",
…), or any object exporting ``__arrow_c_stream__`` / ``__arrow_c_array__`` (polars, pandas,
duckdb). Memory stays bounded by the batch size: files are read one IPC batch or one Parquet row
group at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from .dataset import DataSource
from .failures import read_error
from .files import file_batches, guarded, rechunk
from .locations import is_local_file, is_path, is_path_list
from .schemas import check_unique_names
from .stdio import (
    StreamSource,
    is_file_object,
    is_stdio,
    is_stream_path,
    stream_source,
    stream_source_at,
)

Source = Any  # see the module docstring for what a source may be


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
    object-store URI or a :class:`streamnorm.DataSource` (see that module).
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
    if is_stdio(source):  # "-": the Arrow IPC stream on stdin, shared by every opening
        return stream_source().schema_and_batches(columns, batch_size)
    if isinstance(source, StreamSource):
        return source.schema_and_batches(columns, batch_size)
    if is_stream_path(source):  # a FIFO or a device: memory-mapping it fails; read it as "-"
        return stream_source_at(source).schema_and_batches(columns, batch_size)
    if is_path(source) and is_local_file(source):
        schema, batches = file_batches(source, columns, batch_size)
        return schema, rechunk(guarded(source, batches), batch_size)
    if is_path(source) or is_path_list(source):
        return DataSource(source).schema_and_batches(columns, batch_size)
    if isinstance(source, DataSource):
        return source.schema_and_batches(columns, batch_size)
    if isinstance(source, pa.RecordBatch):
        return source.schema, rechunk([source], batch_size)
    if isinstance(source, pa.Table):
        return source.schema, rechunk(source.to_batches(), batch_size)
    if isinstance(source, pa.RecordBatchReader):
        return source.schema, rechunk(source, batch_size)
    if isinstance(source, np.ndarray):
        batch = numpy_to_batch(source)
        return batch.schema, rechunk([batch], batch_size)
    if is_file_object(source):  # a binary file object holding an Arrow IPC stream
        return stream_source(source).schema_and_batches(columns, batch_size)
    if hasattr(source, "__arrow_c_stream__"):
        try:
            reader = pa.RecordBatchReader.from_stream(source)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise read_error(f"this {type(source).__name__}", exc) from None
        return reader.schema, rechunk(reader, batch_size)
    if hasattr(source, "__arrow_c_array__"):
        try:
            batch = pa.record_batch(source)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise read_error(f"this {type(source).__name__}", exc) from None
        return batch.schema, rechunk([batch], batch_size)
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

        return first.schema, rechunk(chained(), batch_size)
    raise TypeError(
        f"cannot read data from a {type(source).__name__}: pass a path, a pyarrow Table/"
        "RecordBatch/RecordBatchReader, a 2-D numpy array or an Arrow-exporting DataFrame"
    )


def iter_batches(
    source: Source, columns: list[str] | None = None, batch_size: int | None = None
) -> Iterator[pa.RecordBatch]:
    """The record batches of ``source`` (see :func:`schema_and_batches`)."""
    return schema_and_batches(source, columns, batch_size)[1]
