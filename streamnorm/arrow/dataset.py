"""Sources users already have: one file, a directory, a glob, a list of files, local or on an
object store, as one re-readable :class:`DataSource` under one unified schema.

Everything is read by pyarrow's own readers, one bounded piece at a time:

* **Parquet / Arrow IPC** files: one row group / one IPC batch at a time.
* **CSV** (``.csv``, ``.tsv``, also ``.gz`` / ``.bz2`` / ``.zst`` / ``.lz4``): ``pyarrow.csv.open_csv``,
  one block at a time; column types are inferred from the first block, ``schema=`` fixes them.
* **JSON lines** (``.jsonl``, ``.ndjson``, ``.json``, compressed likewise): ``pyarrow.json.open_json``.
* **Directories, globs** (``data/*.parquet``, ``data/**/*.csv``) **and lists of files**: discovered
  and partition-parsed by ``pyarrow.dataset`` (hive layout ``year=2024/part-0.parquet``), then read
  file by file with the readers above. Partition keys appear as columns, marked with the field
  metadata ``{b"streamnorm.role": b"partition"}`` so that automatic column choice skips them.
* **Object stores**: ``s3://``, ``gs://``, ``abfs://``, ``hdfs://`` (and ``file://``) through
  ``pyarrow.fs.FileSystem.from_uri``; credentials and endpoints come from the usual environment
  (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, …).

A malformed CSV or JSON row is an :class:`~streamnorm.errors.InputError` naming the file and the
line. ``skip_bad_rows=True`` skips such rows instead, counts them in
:attr:`DataSource.skipped_rows` and warns with :class:`SkippedRowsWarning` once per file.

Plain paths work everywhere a source is accepted (``sn.feature_stats("data/")``); wrap one in
:func:`open_source` to pass options::

    >>> import streamnorm as sn                                          # doctest: +SKIP
    >>> src = open_source("events.csv.gz", schema={"price": "float64"})  # doctest: +SKIP
    >>> sn.feature_stats(src)                                            # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from ..columns import PARTITION_ROLE, ROLE_KEY, is_partition_key
from ..config import json_block_size
from ..errors import InputError
from .failures import first_line, read_error
from .files import open_file, rechunk
from .formats import FORMATS, dataset_format, format_of
from .locations import display, expand_glob, file_info, has_glob, list_files, resolve
from .schemas import SchemaLike, as_schema, conform, unify_schemas
from .stdio import is_stream_location
from .text import SkipCounter, SourceOptions, json_keys


@dataclass(frozen=True)
class FilePart:
    """One file of a source: where it is, its path relative to the source's base directory
    (used to mirror the layout on output) and its partition keys."""

    path: str
    relative: str
    partition: dict[str, Any]


class DataSource:
    """A re-readable source: one file, a directory, a glob, a list of files, local or remote.

    Parameters
    ----------
    location : a path or URI (file, directory or glob), or a list of them.
    format : ``"parquet"``, ``"ipc"``, ``"csv"`` or ``"json"``; default from each file's suffix.
    schema : ``pa.Schema`` or ``{name: type}`` fixing column types of CSV / JSON (others are
        inferred from the first block).
    skip_bad_rows : skip malformed CSV / JSON rows (counted in :attr:`skipped_rows`, warned
        with :class:`SkippedRowsWarning`) instead of raising :class:`InputError`.
    partitioning : ``"hive"`` (default) parses ``key=value`` directories into columns;
        None ignores the layout.
    block_size : bytes per CSV / JSON block (pyarrow's default otherwise; for JSON lines
        ``$STREAMNORM_JSON_BLOCK_SIZE`` or 1 MiB, which is also the longest line read).
    delimiter : CSV field delimiter (default ``","``, tab for ``.tsv``).
    """

    def __init__(
        self,
        location: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        format: str | None = None,  # noqa: A002 - the natural name
        schema: SchemaLike | None = None,
        skip_bad_rows: bool = False,
        partitioning: str | None = "hive",
        block_size: int | None = None,
        delimiter: str | None = None,
    ) -> None:
        if format is not None and format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
        self.location = location
        self.options = SourceOptions(format, as_schema(schema), skip_bad_rows, block_size,
                                     delimiter)
        self.partitioning = partitioning
        self._counter = SkipCounter()
        self.filesystem, self.base, self.parts, self._single = self._discover(location)
        self._partition_schema = self._partition_fields()
        self._schema: pa.Schema | None = None

    # ------------------------------------------------------------------ discovery
    def _discover(self, location: Any) -> tuple[pafs.FileSystem, str, list[FilePart], bool]:
        if isinstance(location, (str, os.PathLike)):
            fs, path = resolve(location)
            shown = os.fspath(location)
            if has_glob(path):
                base, files = expand_glob(fs, path, shown)
                return fs, base, self._parts(fs, base, files), False
            info = file_info(fs, path, shown)
            if info.type == pafs.FileType.Directory:
                files = list_files(fs, path)
                if not files:
                    raise InputError(f"{shown}: the directory holds no data file; check the path")
                return fs, path, self._parts(fs, path, files), False
            if info.type != pafs.FileType.File:
                _refuse_stream(location)
                raise InputError(f"{shown}: no such file or directory; check the path")
            return fs, os.path.dirname(path), [FilePart(path, os.path.basename(path), {})], True
        items = list(location)
        if not items:
            raise InputError("an empty list of files; give at least one")
        resolved = [resolve(item) for item in items]
        fs = resolved[0][0]
        if any(other.type_name != fs.type_name for other, _ in resolved):
            raise InputError("a list of files must all live on one filesystem; split it")
        paths = [p for _, p in resolved]
        for item, path in zip(items, paths):
            if file_info(fs, path, os.fspath(item)).type != pafs.FileType.File:
                _refuse_stream(item)
                raise InputError(f"{os.fspath(item)}: no such file; check the path")
        base = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
        if base in paths:
            base = os.path.dirname(base)
        return fs, base, self._parts(fs, base, paths), False

    def _parts(self, fs: pafs.FileSystem, base: str, files: list[str]) -> list[FilePart]:
        """Files with their relative paths and (hive) partition keys, via pyarrow.dataset."""
        formats = {self.options.format or format_of(f) for f in files}
        formats.discard(None)
        if len(formats) > 1:
            raise InputError(f"{display(fs, base)}: mixes file formats {sorted(formats)}; "
                             "select one kind with a glob such as '*.parquet'")
        keys: list[dict[str, Any]] = [{} for _ in files]
        if self.partitioning == "hive":
            # imported here, not at the top: pyarrow.dataset imports pandas (about 50 MB and
            # 1 s), which reading single files never needs
            import pyarrow.dataset as pds

            try:
                dataset = pds.dataset(files, filesystem=fs, format=dataset_format(formats),
                                      partitioning="hive", partition_base_dir=base)
            except pa.ArrowNotImplementedError as exc:
                raise read_error(display(fs, base), exc) from None
            except (pa.ArrowInvalid, OSError) as exc:
                raise InputError(f"{display(fs, base)}: cannot read it as a dataset "
                                 f"({first_line(exc)}); check its files") from None
            by_path = {frag.path: pds.get_partition_keys(frag.partition_expression)
                       for frag in dataset.get_fragments()}
            self._dataset_schema = dataset.schema
            keys = [by_path.get(f, {}) for f in files]
        return [FilePart(f, f[len(base):].lstrip("/"), k) for f, k in zip(files, keys)]

    def _partition_fields(self) -> pa.Schema:
        names: list[str] = []
        for part in self.parts:
            names.extend(n for n in part.partition if n not in names)
        fields = []
        dataset_schema = getattr(self, "_dataset_schema", None)
        if dataset_schema is not None:  # directory order: year=…/month=… gives year, month
            names.sort(key=lambda n: dataset_schema.get_field_index(n))
        for name in names:
            if dataset_schema is not None and dataset_schema.get_field_index(name) >= 0:
                arrow_type = dataset_schema.field(name).type
            else:
                arrow_type = pa.string()
            fields.append(pa.field(name, arrow_type, metadata={ROLE_KEY: PARTITION_ROLE}))
        return pa.schema(fields)

    # ------------------------------------------------------------------ reading
    @property
    def files(self) -> list[str]:
        """The files of this source, in reading order (displayed as given: path or URI)."""
        return [display(self.filesystem, p.path) for p in self.parts]

    @property
    def partition_columns(self) -> list[str]:
        """Names of the partition key columns (from ``key=value`` directories)."""
        return list(self._partition_schema.names)

    @property
    def skipped_rows(self) -> int:
        """Rows skipped by ``skip_bad_rows=True`` in the latest read of each file."""
        return self._counter.total

    @property
    def schema(self) -> pa.Schema:
        """The unified schema of the files (docs/design.md §3): every column of every file in
        order of first appearance, with the type its files' types widen to
        (:func:`unify_schemas`) or the one ``schema=`` gives, partition keys appended. Reads
        each file's footer (Parquet, IPC) or first block (CSV / JSON lines), never its data."""
        if self._schema is None:
            found = []
            for part in self.parts:
                file_schema, batches = self._open_file(part, None)
                if hasattr(batches, "close"):
                    batches.close()
                found.append((display(self.filesystem, part.path), file_schema))
            self._schema = self._with_partitions(self._unified(found))
        return self._schema

    def _unified(self, found: list[tuple[str, pa.Schema]]) -> pa.Schema:
        """:func:`unify_schemas` of the files' schemas, checking the names of ``schema=``."""
        given = self.options.schema
        if given is not None:
            present = set()
            for (shown, file_schema), part in zip(found, self.parts):
                if (self.options.format or format_of(part.path)) == "json":
                    # the JSON reader adds every column of an explicit schema: ask the lines
                    present |= json_keys(self.filesystem, part.path,
                                          json_block_size(self.options.block_size))
                else:
                    present |= set(file_schema.names)
            unknown = [name for name in given.names if name not in present]
            if unknown:
                names = dict.fromkeys(n for _, file_schema in found for n in file_schema.names)
                columns = [n for n in names if n in present]
                raise InputError(f"--schema / schema=: no column {', '.join(map(repr, unknown))} "
                                 f"in {self.location} (its columns: {', '.join(columns)}); fix "
                                 "the name")
        return unify_schemas(found, given)

    def _with_partitions(self, schema: pa.Schema) -> pa.Schema:
        fields = [f for f in schema if f.name not in self._partition_schema.names]
        return pa.schema(fields + list(self._partition_schema), metadata=schema.metadata)

    def _open_file(self, part: FilePart, columns: list[str] | None
                   ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        file_columns = None
        if columns is not None:
            file_columns = [c for c in columns if c not in self._partition_schema.names]
        return open_file(self.filesystem, part.path, display(self.filesystem, part.path),
                         self.options, self._counter, file_columns)

    def file_source(self, index: int) -> DataSource:
        """File ``index`` alone, with the same options, no partition columns, and read under
        this source's unified schema (the columns it lacks are null)."""
        part = self.parts[index]
        twin = object.__new__(DataSource)
        twin.location = display(self.filesystem, part.path)
        twin.options, twin.partitioning, twin._counter = self.options, None, self._counter
        twin.filesystem, twin.base, twin._single = self.filesystem, self.base, True
        twin.parts = [FilePart(part.path, part.relative, {})]
        twin._partition_schema = pa.schema([])
        twin._schema = pa.schema([f for f in self.schema if not is_partition_key(f)],
                                 metadata=self.schema.metadata)
        return twin

    def schema_and_batches(self, columns: list[str] | None = None, batch_size: int | None = None
                           ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """(schema, batches) over every file in order, every batch with the columns and types
        of :attr:`schema`; see :func:`streamnorm.arrow.open.schema_and_batches`."""
        if self._single and not self._partition_schema:  # open the file once, not twice
            file_schema, batches = self._open_file(self.parts[0], columns)
            if self._schema is None:
                self._schema = self._unified([(self.files[0], file_schema)])
            conformed = self._conformed(batches, self._schema, columns, self.parts[0])
            return self._schema, rechunk(conformed, batch_size)
        schema = self.schema
        return schema, rechunk(self._all_batches(schema, columns), batch_size)

    def _conformed(self, batches: Iterator[pa.RecordBatch], schema: pa.Schema,
                   columns: list[str] | None, part: FilePart) -> Iterator[pa.RecordBatch]:
        """The batches of one file with the columns (those read) and types of ``schema``."""
        wanted = schema
        if columns is not None:
            keep = set(columns) | set(self._partition_schema.names)
            wanted = pa.schema([f for f in schema if f.name in keep], metadata=schema.metadata)
        shown = display(self.filesystem, part.path)
        for batch in batches:
            yield conform(batch, wanted, part.partition, shown)

    def _all_batches(self, schema: pa.Schema, columns: list[str] | None
                     ) -> Iterator[pa.RecordBatch]:
        for part in self.parts:
            _, batches = self._open_file(part, columns)
            yield from self._conformed(batches, schema, columns, part)


def open_source(
    location: str | os.PathLike | Sequence[str | os.PathLike] | DataSource,
    **options: Any,
) -> DataSource:
    """A :class:`DataSource` for a path, URI, directory, glob or list of files (options as
    :class:`DataSource`); a DataSource is returned as is when no option is given."""
    if isinstance(location, DataSource):
        if options:
            raise ValueError("open_source: give options when creating the DataSource")
        return location
    return DataSource(location, **options)


def _refuse_stream(location: Any) -> None:
    """A pipe or device path inside a list or given to :class:`DataSource` is an
    :class:`InputError` saying why (it can be read once, as a stream, never opened as a file
    among others) and what works instead."""
    if is_stream_location(location):
        raise InputError(f"{os.fspath(location)}: is a pipe or a device, which can be read only "
                         "once as a stream, not as a file of a dataset; pass it alone as the "
                         "input, or save it to a file first")
