"""Parquet reading: one row group at a time, page checksums verified, column groups decoded on
parallel threads and put back together in order."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .failures import Failure, corrupt_row_group

#: Rows per batch read from a Parquet row group when the caller sets no batch size.
PARQUET_BATCH_ROWS = 65_536
#: Bytes each Parquet column reader buffers from the file (no pre-buffering, see below) when
#: the file is opened as a file object (an object store's: fewer, larger requests).
PARQUET_BUFFER_BYTES = 1 << 18
#: The same for a local file given by its path: page headers and small pages come through this
#: buffer, pages larger than it are read directly, so a small one costs a few more reads from
#: the page cache and saves memory: 32 of them per 32-column file, and on the 4M x 32 bench
#: file 15-25 MB of peak RSS against 256 KiB (allocator included; CPU time unchanged).
PARQUET_LOCAL_BUFFER_BYTES = 1 << 15
#: Parquet data (uncompressed bytes of the columns read) below which one thread decodes it all.
PARQUET_PARALLEL_BYTES = 16 << 20
#: Batches each Parquet decoding thread may have decoded and not yet handed over: it starts
#: decoding the next one only when the consumer takes one (so it decodes while the consumer
#: computes, and holds no finished batch waiting for a place in the queue).
PARQUET_READ_AHEAD = 1


def open_parquet(path: Any) -> pq.ParquetFile:
    """A ``pq.ParquetFile`` over ``path`` (a path or an open file) that reads in bounded
    memory and verifies page checksums."""
    # No memory map (its touched pages count as resident: RSS would grow with the file) and
    # no pre-buffering (it holds a whole row group's column chunks): memory is bounded by the
    # batch and the per-column reader state, not by the row group or the file. Pages that
    # carry a CRC (every file streamnorm writes) are verified: a flipped byte is an error,
    # not a different number.
    local = isinstance(path, (str, os.PathLike))
    buffer = PARQUET_LOCAL_BUFFER_BYTES if local else PARQUET_BUFFER_BYTES
    return pq.ParquetFile(path, memory_map=False, pre_buffer=False, buffer_size=buffer,
                          page_checksum_verification=True)


def parquet_row_groups(path: object, parquet: pq.ParquetFile, **options: Any
                       ) -> Iterator[pa.RecordBatch]:
    """The batches of ``parquet`` (``iter_batches`` options), one row group at a time; a row
    group that fails to decode or verify is an :class:`InputError` naming it."""
    for i in range(parquet.num_row_groups):
        try:
            yield from parquet.iter_batches(row_groups=[i], **options)
        except (pa.ArrowInvalid, OSError) as exc:
            raise corrupt_row_group(path, i, exc) from None


def reader_threads() -> int:
    """Threads for decoding Parquet: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def parquet_column_groups(
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


def parquet_batches(
    path: str | os.PathLike, parquet: pq.ParquetFile, columns: list[str] | None, rows: int
) -> Iterator[pa.RecordBatch]:
    """Batches of ``rows`` rows, one row group at a time, decoded by one thread per column
    group (:func:`parquet_column_groups`) and put back together, so the batches are the
    same as one reader's, in the same order."""
    groups = parquet_column_groups(parquet, columns, reader_threads())
    if groups is None:
        yield from parquet_row_groups(path, parquet, batch_size=rows, columns=columns)
        return
    wanted = list(dict.fromkeys(parquet.schema_arrow.names if columns is None else columns))
    stop = threading.Event()
    # Each queue holds at most PARQUET_READ_AHEAD batches plus the end (None) or a Failure:
    # a decoding thread takes a slot before decoding a batch, the consumer frees one as it
    # takes a batch. (A bounded queue instead would let a thread hold one more finished
    # batch while it waits to put it: 8 MB per thread on a 32-column float64 file.)
    queues: list[queue.Queue] = [queue.Queue() for _ in groups]
    slots = [threading.Semaphore(PARQUET_READ_AHEAD) for _ in groups]

    def wait_for(slot: threading.Semaphore) -> bool:
        while not stop.is_set():
            if slot.acquire(timeout=0.05):
                return True
        return False

    def decode(group: list[str], q: queue.Queue, slot: threading.Semaphore) -> None:
        # Arrow decodes without the GIL: the groups' threads run truly in parallel.
        try:
            reader = open_parquet(path)
            batches = parquet_row_groups(path, reader, batch_size=rows, columns=group,
                                         use_threads=False)
            while wait_for(slot):
                batch = next(batches, None)
                q.put(batch)
                if batch is None:
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            q.put(Failure(exc))

    threads = [threading.Thread(target=decode, args=(group, q, slot), daemon=True,
                                name=f"streamnorm-parquet-{k}")
               for k, (group, q, slot) in enumerate(zip(groups, queues, slots))]
    for thread in threads:
        thread.start()
    schema: pa.Schema | None = None
    try:
        while True:
            parts = [q.get() for q in queues]
            for slot in slots:
                slot.release()
            failure = next((p for p in parts if isinstance(p, Failure)), None)
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
