"""Sources users already have: directories, globs, lists of files, CSV / JSON lines, object stores.

Everything is read by pyarrow's own readers, one bounded piece at a time:

* **Parquet / Arrow IPC** files: one row group / one IPC batch at a time (as :mod:`streamnorm.io`).
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

import contextlib
import io as _io
import itertools
import json
import os
import re
import secrets
import shutil
import stat
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.dataset as pds
import pyarrow.fs as pafs
import pyarrow.ipc as ipc
import pyarrow.json as pjson

from . import columns as cols
from . import io
from .columns import PARTITION_ROLE, ROLE_KEY, is_partition_key
from .config import json_block_size
from .errors import InputError, StreamnormError

COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4", ".br")
CSV_SUFFIXES = (".csv", ".tsv")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
_FORMATS = ("parquet", "ipc", "csv", "json")
_GLOB_CHARS = re.compile(r"[*?\[]")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
_JSON_CHUNK_BYTES = 1 << 20
_BAD_ROW_EXAMPLES = 5

SchemaLike = pa.Schema | Mapping[str, "pa.DataType | str"]


class SkippedRowsWarning(UserWarning):
    """Rows were skipped because ``skip_bad_rows=True`` (one warning per file)."""


# --------------------------------------------------------------------------- locations


def is_uri(text: str) -> bool:
    """Whether ``text`` is a URI with a scheme (``s3://…``, ``file://…``), not a local path."""
    return bool(_URI.match(text))


def resolve(path: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or an object-store URI."""
    text = os.fspath(path)
    if is_uri(text):
        try:
            return pafs.FileSystem.from_uri(text)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise InputError(f"{text}: cannot open this location ({io._first_line(exc)}); check "
                             "the URI, the credentials and e.g. AWS_ENDPOINT_URL") from None
    return pafs.LocalFileSystem(), os.path.abspath(text)


def _display(fs: pafs.FileSystem, path: str) -> str:
    if isinstance(fs, pafs.LocalFileSystem):
        return path
    return f"{fs.type_name}://{path}"


def _info(fs: pafs.FileSystem, path: str, shown: str) -> pafs.FileInfo:
    try:
        return fs.get_file_info(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{shown}: cannot reach it ({io._first_line(exc)}); check the location "
                         "and the credentials") from None


def _visible(relative: str) -> bool:
    """Files that datasets skip: any path segment starting with ``.`` or ``_``."""
    return not any(part.startswith((".", "_")) for part in relative.split("/") if part)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` within one path segment, ``**/`` across segments, ``[...]`` classes."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _list_files(fs: pafs.FileSystem, base: str) -> list[str]:
    """Every visible file under ``base``, recursively, sorted."""
    selector = pafs.FileSelector(base, recursive=True)
    found = []
    for info in fs.get_file_info(selector):
        if info.type == pafs.FileType.File and _visible(info.path[len(base):]):
            found.append(info.path)
    return sorted(found)


def _expand_glob(fs: pafs.FileSystem, path: str, shown: str) -> tuple[str, list[str]]:
    """(base directory, matching files) for a path containing glob characters."""
    parts = path.split("/")
    static = []
    for part in parts:
        if _GLOB_CHARS.search(part):
            break
        static.append(part)
    base = "/".join(static) or "/"
    regex = _glob_regex("/".join(parts[len(static):]))
    if _info(fs, base, shown).type != pafs.FileType.Directory:
        raise InputError(f"{shown}: no file matches ({base} is not a directory); check the pattern")
    files = [p for p in _list_files(fs, base) if regex.match(p[len(base):].lstrip("/"))]
    if not files:
        raise InputError(f"{shown}: no file matches the pattern; check it")
    return base, files


# --------------------------------------------------------------------------- formats


def format_of(name: str) -> str | None:
    """``"parquet"``, ``"ipc"``, ``"csv"``, ``"json"`` from a file name's suffixes, or None."""
    lower = name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
            break
    suffix = os.path.splitext(lower)[1]
    if suffix in io.PARQUET_SUFFIXES:
        return "parquet"
    if suffix in io.IPC_SUFFIXES:
        return "ipc"
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in JSON_SUFFIXES:
        return "json"
    return None


def _sniff_binary(fs: pafs.FileSystem, path: str, shown: str) -> str:
    """``"parquet"``, ``"ipc-file"`` or ``"ipc-stream"`` from the first bytes of a file."""
    with fs.open_input_file(path) as fh:
        head = fh.read(8)
    if not head:
        raise InputError(f"{shown}: the file is empty (0 bytes); give a file with data")
    if head[:4] == io._PARQUET_MAGIC:
        return "parquet"
    if head[:6] == io._IPC_FILE_MAGIC:
        return "ipc-file"
    if head[:4] == b"\xff\xff\xff\xff" or format_of(path) == "ipc":
        return "ipc-stream"
    raise InputError(f"{shown}: not an Arrow IPC, Parquet, CSV or JSON lines file; name it "
                     ".parquet, .arrow, .csv or .jsonl, or pass format=")


def _as_type(name: str, value: pa.DataType | str) -> pa.DataType:
    if isinstance(value, pa.DataType):
        return value
    try:
        return pa.type_for_alias(str(value))
    except (ValueError, KeyError):
        raise InputError(f"schema: unknown type {value!r} for column {name!r}; use e.g. float64, "
                         "int64, string") from None


def as_schema(schema: SchemaLike | None) -> pa.Schema | None:
    """A ``pa.Schema`` from a schema or a ``{name: type or type name}`` mapping."""
    if schema is None or isinstance(schema, pa.Schema):
        return schema
    return pa.schema([(name, _as_type(name, value)) for name, value in schema.items()])


def parse_schema_text(text: str) -> dict[str, pa.DataType]:
    """``"a=float64,b=int32"`` → ``{"a": float64, "b": int32}`` (the CLI's ``--schema``)."""
    out: dict[str, pa.DataType] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--schema: {item!r} is not NAME=TYPE; write e.g. price=float64")
        out[name.strip()] = _as_type(name.strip(), value.strip())
    return out


# --------------------------------------------------------------------------- bad rows


@dataclass
class _BadRows:
    """Counts (skip) or remembers (error) the rows pyarrow's CSV reader rejects."""

    skip: bool
    skipped: int = 0
    examples: list[str] = field(default_factory=list)
    first: Any = None

    def __call__(self, row: Any) -> str:
        if self.skip:
            self.skipped += 1
            if len(self.examples) < _BAD_ROW_EXAMPLES:
                self.examples.append(f"{row.actual_columns} fields instead of "
                                     f"{row.expected_columns}: {row.text[:80]!r}")
            return "skip"
        if self.first is None:
            self.first = row
        # Not "error": a handler that returns it makes pyarrow (26) abort the process at exit
        # ("terminate called without an active exception", exit 134) some time after the
        # error was handled. The reader skips the row and the caller raises on seeing `first`.
        return "skip"


def _lines(fs: pafs.FileSystem, path: str, limit: int | None = None
           ) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line) of a (possibly compressed) text file, streaming; a line
    longer than ``limit`` bytes is an :class:`InputError` (JSON lines), before it is read whole."""
    with fs.open_input_stream(path) as raw:
        reader = _io.BufferedReader(raw, 1 << 16)  # type: ignore[arg-type]
        number = 0
        while line := reader.readline(-1 if limit is None else limit + 1):
            number += 1
            if limit is not None and len(line) > limit:
                raise _line_too_long(_display(fs, path), number, limit)
            yield number, line


def _line_too_long(shown: str, number: int, limit: int) -> InputError:
    return InputError(f"{shown}: line {number} is longer than {limit:,} bytes, the JSON block "
                      "size and longest line read (is it JSON lines? a file of NUL bytes or "
                      "without line breaks is not); if the line is right, raise the limit with "
                      "STREAMNORM_JSON_BLOCK_SIZE=<bytes> or block_size=")


def _line_of_text(fs: pafs.FileSystem, path: str, text: str) -> int | None:
    wanted = text.strip()
    for number, line in _lines(fs, path):
        if line.decode("utf-8", "replace").strip() == wanted:
            return number
    return None


_CONVERSION = re.compile(r"CSV column #(\d+): CSV conversion error to (\S+): invalid value '(.*)'")


def _line_of_value(fs: pafs.FileSystem, path: str, options: Any, column: int, value: str,
                   schema: pa.Schema) -> int | None:
    """Line of the first row whose ``column`` holds ``value`` (re-read with string types)."""
    read, parse, _ = options
    as_text = pcsv.ConvertOptions(column_types={n: pa.string() for n in schema.names},
                                  strings_can_be_null=False)
    rows_before = 0
    with fs.open_input_stream(path) as stream:
        for batch in pcsv.open_csv(stream, read, parse, as_text):
            found = pc.index(batch.column(column), value).as_py()
            if found is not None and found >= 0:
                return read.skip_rows + 1 + rows_before + found + 1
            rows_before += batch.num_rows
    return None


# --------------------------------------------------------------------------- CSV


@dataclass
class _Options:
    """Reading options shared by every file of a source."""

    format: str | None = None
    schema: pa.Schema | None = None
    skip_bad_rows: bool = False
    block_size: int | None = None
    delimiter: str | None = None


class _SkipCounter:
    """Total rows skipped by a :class:`DataSource`, over all files and passes (last pass)."""

    def __init__(self) -> None:
        self.by_file: dict[str, int] = {}

    @property
    def total(self) -> int:
        return sum(self.by_file.values())


def _close_all(*resources: Any) -> None:
    """Close each of ``resources`` that is not None (readers first, then their streams)."""
    for resource in resources:
        if resource is not None:
            resource.close()


class _Closing:
    """The batches of a pyarrow CSV / JSON streaming reader, whose ``close()`` closes the
    reader and its stream even when iteration never started (``DataSource.schema`` opens a
    file only for its first block). A reader left to the interpreter's teardown with a
    read-ahead block in flight aborts the process ("terminate called without an active
    exception", exit 134)."""

    def __init__(self, batches: Iterator[pa.RecordBatch], *resources: Any) -> None:
        self._batches = batches
        self._resources = resources

    def __iter__(self) -> _Closing:
        return self

    def __next__(self) -> pa.RecordBatch:
        return next(self._batches)

    def close(self) -> None:
        """Stop reading: close the batches, then the reader and its stream."""
        self._batches.close()  # type: ignore[attr-defined]
        _close_all(*self._resources)


def _csv_batches(fs: pafs.FileSystem, path: str, shown: str, opts: _Options,
                 counter: _SkipCounter) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    delimiter = opts.delimiter or ("\t" if ".tsv" in path.lower() else ",")
    bad = _BadRows(opts.skip_bad_rows)
    read = pcsv.ReadOptions(block_size=opts.block_size) if opts.block_size else pcsv.ReadOptions()
    parse = pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=bad)
    types = {f.name: f.type for f in opts.schema} if opts.schema is not None else None
    convert = pcsv.ConvertOptions(column_types=types)
    stream = fs.open_input_stream(path)
    reader = None
    try:
        reader = pcsv.open_csv(stream, read, parse, convert)
        if bad.first is not None:
            raise pa.ArrowInvalid("a malformed row")
    except (pa.ArrowInvalid, OSError) as exc:
        _close_all(reader, stream)
        reader = None  # see _Closing: the traceback keeps this frame alive until a gc pass
        raise _csv_error(fs, path, shown, exc, bad, (read, parse, convert), None) from None

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for batch in reader:
                if bad.first is not None:  # a malformed row, skipped by the reader: refuse it
                    raise pa.ArrowInvalid("a malformed row")
                yield batch
            if bad.first is not None:
                raise pa.ArrowInvalid("a malformed row")
        except (pa.ArrowInvalid, OSError) as exc:
            raise _csv_error(fs, path, shown, exc, bad, (read, parse, convert),
                             reader.schema) from None
        finally:
            _close_all(reader, stream)
            # Options that hold a Python handler and outlive the interpreter's teardown (in a
            # reference cycle through a traceback) abort the process when freed there
            # ("terminate called without an active exception", exit 134): drop the handler.
            parse.invalid_row_handler = None
        _report_skipped(shown, bad.skipped, bad.examples, counter)

    return reader.schema, _Closing(batches(), reader, stream)


def _csv_error(fs: pafs.FileSystem, path: str, shown: str, exc: BaseException, bad: _BadRows,
               options: Any, schema: pa.Schema | None) -> InputError:
    """One-line error naming the line of a malformed CSV row."""
    if bad.first is not None:
        row = bad.first
        line = _line_of_text(fs, path, row.text)
        where = f"line {line}" if line else "a row"
        return InputError(f"{shown}: {where} has {row.actual_columns} fields instead of "
                          f"{row.expected_columns} ({row.text[:60]!r}); fix it, or skip such rows "
                          "with skip_bad_rows=True / --skip-bad-rows")
    match = _CONVERSION.search(str(exc))
    if match and schema is not None:
        column, type_name, value = int(match.group(1)), match.group(2), match.group(3)
        name = schema.names[column]
        line = _line_of_value(fs, path, options, column, value, schema)
        where = f"line {line}" if line else "a row"
        try:
            float(value)
            wider = "float64"
        except ValueError:
            wider = "string"
        return InputError(f"{shown}: {where}, column {name!r}: cannot read {value!r} as "
                          f"{type_name} (types are inferred from the first block); fix the value "
                          f"or give the type with schema={{{name!r}: {wider!r}}} / --schema "
                          f"{name}={wider}")
    return InputError(f"{shown}: cannot read it as CSV ({io._first_line(exc)}); check the file")


def _report_skipped(shown: str, skipped: int, examples: list[str], counter: _SkipCounter) -> None:
    counter.by_file[shown] = skipped
    if skipped:
        warnings.warn(f"{shown}: skipped {skipped} bad row(s), e.g. {examples[0]}",
                      SkippedRowsWarning, stacklevel=3)


# --------------------------------------------------------------------------- JSON lines


def _json_parse(schema: pa.Schema | None, fixed: bool) -> pjson.ParseOptions:
    behaviour = "ignore" if fixed else "infer"
    return pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior=behaviour)


def _parse_json_lines(lines: list[tuple[int, bytes]], options: pjson.ParseOptions,
                      block_size: int) -> tuple[list[pa.Table], list[tuple[int, str]]]:
    """Parse lines with pyarrow.json; bisect a failing chunk down to its bad lines."""
    try:
        data = b"".join(line for _, line in lines)
        read = pjson.ReadOptions(block_size=block_size)
        return [pjson.read_json(_io.BytesIO(data), read_options=read, parse_options=options)], []
    except pa.ArrowInvalid as exc:
        if len(lines) == 1:
            reason = re.sub(r"\.?\s+in row \d+\s*$", "", io._first_line(exc)).rstrip(".")
            return [], [(lines[0][0], reason)]
    mid = len(lines) // 2
    left_tables, left_bad = _parse_json_lines(lines[:mid], options, block_size)
    right_tables, right_bad = _parse_json_lines(lines[mid:], options, block_size)
    return left_tables + right_tables, left_bad + right_bad


def _json_chunks(fs: pafs.FileSystem, path: str, block_size: int
                 ) -> Iterator[list[tuple[int, bytes]]]:
    """Non-blank lines in chunks of about 1 MiB, with their line numbers; a line longer than
    ``block_size`` is an :class:`InputError` (memory stays bounded on any file)."""
    chunk: list[tuple[int, bytes]] = []
    size = 0
    for number, line in _lines(fs, path, block_size):
        if not line.strip():
            continue
        chunk.append((number, line if line.endswith(b"\n") else line + b"\n"))
        size += len(line)
        if size >= _JSON_CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _json_lines_checked(fs: pafs.FileSystem, path: str, schema: pa.Schema | None,
                        fixed: bool, block_size: int
                        ) -> Iterator[tuple[pa.Table | None, list[tuple[int, str]]]]:
    """(table of the good lines or None, bad lines) per chunk; the schema is fixed by the
    first good chunk (or given)."""
    for chunk in _json_chunks(fs, path, block_size):
        tables, bad = _parse_json_lines(chunk, _json_parse(schema, fixed), block_size)
        if tables and not fixed:  # re-parse the chunk with the first good piece's types
            schema, fixed = tables[0].schema, True
            tables, bad = _parse_json_lines(chunk, _json_parse(schema, fixed), block_size)
        yield (pa.concat_tables(tables) if tables else None), bad


def _first_bad_json_line(fs: pafs.FileSystem, path: str, schema: pa.Schema | None,
                         fixed: bool, block_size: int) -> tuple[int, str] | None:
    for _, bad in _json_lines_checked(fs, path, schema, fixed, block_size):
        if bad:
            return bad[0]
    return None


def _json_keys(fs: pafs.FileSystem, path: str, block_size: int) -> set[str]:
    """The top-level keys of the first chunk's lines of a JSON lines file (its columns)."""
    keys: set[str] = set()
    for _, line in next(_json_chunks(fs, path, block_size), []):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            keys.update(record)
    return keys


def _json_batches(fs: pafs.FileSystem, path: str, shown: str, opts: _Options,
                  counter: _SkipCounter) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    block_size = json_block_size(opts.block_size)
    if opts.skip_bad_rows:
        return _json_batches_skipping(fs, path, shown, opts, counter, block_size)
    read = pjson.ReadOptions(block_size=block_size)
    stream = fs.open_input_stream(path)
    try:
        reader = pjson.open_json(stream, read_options=read,
                                 parse_options=_json_parse(opts.schema, False))
    except (pa.ArrowInvalid, OSError) as exc:
        stream.close()
        raise _json_error(fs, path, shown, exc, opts.schema, False, block_size) from None

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except (pa.ArrowInvalid, OSError) as exc:
            raise _json_error(fs, path, shown, exc, reader.schema, True, block_size) from None
        finally:
            _close_all(reader, stream)

    return reader.schema, _Closing(batches(), reader, stream)


def _json_error(fs: pafs.FileSystem, path: str, shown: str, exc: BaseException,
                schema: pa.Schema | None, fixed: bool, block_size: int) -> InputError:
    """One-line error naming the first bad line (found by re-parsing the file in chunks)."""
    found = _first_bad_json_line(fs, path, schema, fixed, block_size)
    if found is None:
        return InputError(f"{shown}: cannot read it as JSON lines ({io._first_line(exc)}); check "
                          "the file")
    line, reason = found
    return InputError(f"{shown}: line {line}: {reason}; fix the line, fix the types with "
                      "schema= / --schema, or skip bad lines with skip_bad_rows=True / "
                      "--skip-bad-rows")


def _json_batches_skipping(fs: pafs.FileSystem, path: str, shown: str, opts: _Options,
                           counter: _SkipCounter, block_size: int
                           ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """JSON lines with bad lines skipped: chunked pyarrow.json parses, bisected on failure.
    A line longer than ``block_size`` is an error, not a bad row: it is a limit."""
    schema = None
    for table, _ in _json_lines_checked(fs, path, opts.schema, False, block_size):
        if table is not None:  # the first good chunk fixes the full schema
            schema = table.schema
            break
    if schema is None:
        raise InputError(f"{shown}: no line could be read as JSON; check the file")

    def batches() -> Iterator[pa.RecordBatch]:
        skipped, examples = 0, []
        for table, bad in _json_lines_checked(fs, path, schema, True, block_size):
            skipped += len(bad)
            examples.extend(f"line {n}: {why}" for n, why in bad[: _BAD_ROW_EXAMPLES])
            if table is not None:
                yield from table.to_batches()
        _report_skipped(shown, skipped, examples, counter)

    return schema, batches()  # type: ignore[return-value]


# --------------------------------------------------------------------------- Parquet / IPC


def _binary_batches(fs: pafs.FileSystem, path: str, shown: str, columns: list[str] | None
                    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Parquet row group by row group, IPC batch by batch, from any filesystem."""
    if isinstance(fs, pafs.LocalFileSystem):
        schema, batches = io._file_batches(path, columns)
        return schema, io._guarded(shown, batches)
    fmt = _sniff_binary(fs, path, shown)
    try:
        if fmt == "parquet":
            parquet = io._open_parquet(fs.open_input_file(path))
            return parquet.schema_arrow, io._guarded(
                shown, io.parquet_row_groups(shown, parquet, columns=columns))
        if fmt == "ipc-file":
            reader = ipc.open_file(fs.open_input_file(path))
            return reader.schema, io._guarded(
                shown, (reader.get_batch(i) for i in range(reader.num_record_batches)))
        stream = ipc.open_stream(fs.open_input_stream(path, compression=None))
        return stream.schema, io._guarded(shown, iter(stream))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise io.read_error(shown, exc) from None


# --------------------------------------------------------------------------- the source


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
        if format is not None and format not in _FORMATS:
            raise ValueError(f"format must be one of {_FORMATS}, got {format!r}")
        self.location = location
        self.options = _Options(format, as_schema(schema), skip_bad_rows, block_size, delimiter)
        self.partitioning = partitioning
        self._counter = _SkipCounter()
        self.filesystem, self.base, self.parts, self._single = self._discover(location)
        self._partition_schema = self._partition_fields()
        self._schema: pa.Schema | None = None

    # ------------------------------------------------------------------ discovery
    def _discover(self, location: Any) -> tuple[pafs.FileSystem, str, list[FilePart], bool]:
        if isinstance(location, (str, os.PathLike)):
            fs, path = resolve(location)
            shown = os.fspath(location)
            if _GLOB_CHARS.search(path):
                base, files = _expand_glob(fs, path, shown)
                return fs, base, self._parts(fs, base, files), False
            info = _info(fs, path, shown)
            if info.type == pafs.FileType.Directory:
                files = _list_files(fs, path)
                if not files:
                    raise InputError(f"{shown}: the directory holds no data file; check the path")
                return fs, path, self._parts(fs, path, files), False
            if info.type != pafs.FileType.File:
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
            if _info(fs, path, os.fspath(item)).type != pafs.FileType.File:
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
            raise InputError(f"{_display(fs, base)}: mixes file formats {sorted(formats)}; "
                             "select one kind with a glob such as '*.parquet'")
        keys: list[dict[str, Any]] = [{} for _ in files]
        if self.partitioning == "hive":
            try:
                dataset = pds.dataset(files, filesystem=fs, format=_dataset_format(formats),
                                      partitioning="hive", partition_base_dir=base)
            except pa.ArrowNotImplementedError as exc:
                raise io.read_error(_display(fs, base), exc) from None
            except (pa.ArrowInvalid, OSError) as exc:
                raise InputError(f"{_display(fs, base)}: cannot read it as a dataset "
                                 f"({io._first_line(exc)}); check its files") from None
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
        return [_display(self.filesystem, p.path) for p in self.parts]

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
        """The unified schema of the files (DESIGN §3): every column of every file in order of
        first appearance, with the type its files' types widen to (:func:`unify_schemas`) or
        the one ``schema=`` gives, partition keys appended. Reads each file's footer
        (Parquet, IPC) or first block (CSV / JSON lines), never its data."""
        if self._schema is None:
            found = []
            for part in self.parts:
                file_schema, batches = self._open_file(part, None)
                if hasattr(batches, "close"):
                    batches.close()
                found.append((_display(self.filesystem, part.path), file_schema))
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
                    present |= _json_keys(self.filesystem, part.path,
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
        fs, shown = self.filesystem, _display(self.filesystem, part.path)
        fmt = self.options.format or format_of(part.path)
        if fmt == "csv":
            schema, batches = _csv_batches(fs, part.path, shown, self.options, self._counter)
        elif fmt == "json":
            schema, batches = _json_batches(fs, part.path, shown, self.options, self._counter)
        else:
            file_columns = None
            if columns is not None:
                file_columns = [c for c in columns if c not in self._partition_schema.names]
            schema, batches = _binary_batches(fs, part.path, shown, file_columns)
        return io.check_unique_names(schema, shown), batches

    def file_source(self, index: int) -> DataSource:
        """File ``index`` alone, with the same options, no partition columns, and read under
        this source's unified schema (the columns it lacks are null)."""
        part = self.parts[index]
        twin = object.__new__(DataSource)
        twin.location = _display(self.filesystem, part.path)
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
        of :attr:`schema`; see :func:`streamnorm.io.schema_and_batches`."""
        if self._single and not self._partition_schema:  # open the file once, not twice
            file_schema, batches = self._open_file(self.parts[0], columns)
            if self._schema is None:
                self._schema = self._unified([(self.files[0], file_schema)])
            conformed = self._conformed(batches, self._schema, columns, self.parts[0])
            return self._schema, io._rechunk(conformed, batch_size)
        schema = self.schema
        return schema, io._rechunk(self._all_batches(schema, columns), batch_size)

    def _conformed(self, batches: Iterator[pa.RecordBatch], schema: pa.Schema,
                   columns: list[str] | None, part: FilePart) -> Iterator[pa.RecordBatch]:
        """The batches of one file with the columns (those read) and types of ``schema``."""
        wanted = schema
        if columns is not None:
            keep = set(columns) | set(self._partition_schema.names)
            wanted = pa.schema([f for f in schema if f.name in keep], metadata=schema.metadata)
        shown = _display(self.filesystem, part.path)
        for batch in batches:
            yield _conform(batch, wanted, part.partition, shown)

    def _all_batches(self, schema: pa.Schema, columns: list[str] | None
                     ) -> Iterator[pa.RecordBatch]:
        for part in self.parts:
            _, batches = self._open_file(part, columns)
            yield from self._conformed(batches, schema, columns, part)


def _dataset_format(formats: set[str | None]) -> str:
    fmt = next(iter(formats), None) or "parquet"
    return {"ipc": "ipc", "csv": "csv", "json": "json"}.get(fmt, "parquet")


def _conform(batch: pa.RecordBatch, schema: pa.Schema, partition: Mapping[str, Any],
             shown: str) -> pa.RecordBatch:
    """``batch`` with the columns and types of ``schema``; partition keys filled in, missing
    columns null."""
    if batch.schema.equals(schema, check_metadata=False) and not partition:
        return batch
    arrays = []
    for f in schema:
        if is_partition_key(f):
            arrays.append(pa.repeat(pa.scalar(partition.get(f.name), f.type), batch.num_rows))
            continue
        index = batch.schema.get_field_index(f.name)
        if index < 0:
            arrays.append(pa.nulls(batch.num_rows, f.type))
            continue
        column = batch.column(index)
        if column.type != f.type:
            column = _cast(column, f.type, f.name, shown)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _cast(column: pa.Array, to: pa.DataType, name: str, shown: str) -> pa.Array:
    """``column`` as type ``to``: numbers to a float type round as float64 does (an integer
    beyond 2**53 loses its last bits, like every value statistics accumulate); other casts
    (those ``schema=`` asks for) must keep every value, else :class:`InputError`."""
    rounding = cols.is_numeric(column.type) and pa.types.is_floating(to)
    try:
        return column.cast(to, safe=not rounding)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise InputError(f"{shown}: column {name!r} ({column.type}) cannot be read as {to} "
                         f"({io._first_line(exc)}); read it as another type with --schema "
                         f"{name}=TYPE / schema= (string keeps any value), or fix the file"
                         ) from None


def unify_schemas(found: Sequence[tuple[str, pa.Schema]],
                  given: pa.Schema | None = None) -> pa.Schema:
    """One schema for the files of a dataset, from ``(file, schema)`` pairs (DESIGN §3).

    Every column of every file, in order of first appearance; a column some file lacks is
    nullable (null there); a column whose type differs between files gets the type they
    widen to (:func:`streamnorm.columns.common_type`: int32 and float64 give float64). The
    types in ``given`` (``schema=`` / ``--schema``) win. Two types that cannot be unified (a
    string and a number) are an :class:`InputError` naming the column, both files and the fix.
    The metadata is the first file's.
    """
    fields: dict[str, pa.Field] = {}
    first_seen: dict[str, str] = {}
    seen_in: dict[str, int] = {}
    for shown, schema in found:
        for f in schema:
            seen_in[f.name] = seen_in.get(f.name, 0) + 1
            known = fields.get(f.name)
            if known is None:
                fields[f.name], first_seen[f.name] = f, shown
                continue
            if given is not None and f.name in given.names:
                continue
            common = cols.common_type(known.type, f.type)
            if common is None:
                raise InputError(
                    f"column {f.name!r} is {known.type} in {first_seen[f.name]} but {f.type} in "
                    f"{shown}, and these types have no common type; read it as one type with "
                    f"--schema {f.name}=float64 (numbers) or --schema {f.name}=string (any value) "
                    "/ schema=, or leave one of the files out")
            fields[f.name] = known.with_type(common).with_nullable(
                known.nullable or f.nullable)
    for name, f in fields.items():
        if given is not None and name in given.names:
            f = f.with_type(given.field(name).type)
        if seen_in[name] < len(found):
            f = f.with_nullable(True)
        fields[name] = f
    metadata = found[0][1].metadata if found else None
    return pa.schema(list(fields.values()), metadata=metadata)


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


def is_path_list(source: object) -> bool:
    """Whether ``source`` is a non-empty list or tuple of paths / URIs."""
    return (isinstance(source, (list, tuple)) and bool(source)
            and all(isinstance(item, (str, os.PathLike)) for item in source))


def is_local_file(source: object) -> bool:
    """A local path, not a directory nor a glob nor CSV / JSON: :mod:`streamnorm.io` reads it
    itself (and reports a missing file)."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    text = os.fspath(source)
    return (not is_uri(text) and not _GLOB_CHARS.search(text) and not Path(text).is_dir()
            and format_of(text) not in ("csv", "json"))


# --------------------------------------------------------------------------- outputs vs inputs


def _input_locations(source: Any) -> list[str]:
    """The local paths, directories and globs ``source`` reads (none for URIs and data)."""
    if isinstance(source, DataSource):
        local = isinstance(source.filesystem, pafs.LocalFileSystem)
        return _input_locations(source.location) + [p.path for p in source.parts if local]
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        return [] if is_uri(text) else [text, *_files_under(text)]
    if is_path_list(source):
        return [path for item in source for path in _input_locations(item)]
    return []


def _files_under(location: str) -> list[str]:
    """The files a local glob matches or a local directory holds (none if it holds none)."""
    fs, path = resolve(location)
    try:
        if _GLOB_CHARS.search(path):
            return _expand_glob(fs, path, location)[1]
        return _list_files(fs, path) if os.path.isdir(path) else []
    except (InputError, OSError):
        return []  # reading the source will report it


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def _inside(path: str, directory: str) -> bool:
    """Whether ``path`` is ``directory`` or lies under it (symlinks resolved)."""
    real, base = os.path.realpath(path), os.path.realpath(directory)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _collision(location: str, output: str) -> str | None:
    """Why a later reading of input ``location`` would take the file ``output`` as input (it
    lies in the directory, or matches the glob); None if it would not."""
    if _GLOB_CHARS.search(location):
        parts = resolve(location)[1].split("/")
        static = list(itertools.takewhile(lambda part: not _GLOB_CHARS.search(part), parts))
        base = "/".join(static) or "/"
        if _inside(output, base):
            relative = os.path.relpath(os.path.realpath(output), os.path.realpath(base))
            if _glob_regex("/".join(parts[len(static):])).match(relative):
                return f"matches the input pattern {location}, so it would be read as input"
    elif os.path.isdir(location) and _inside(output, location):
        return f"is inside the input directory {location}, so a later run would read it as input"
    return None


def check_output_not_input(source: Any, output: str | os.PathLike,
                           files: Sequence[str | os.PathLike] | None = None) -> None:
    """Refuse, with an :class:`InputError`, an output that ``source`` reads or would read.

    ``output`` is a file (``files`` None) or a directory receiving ``files``. A file may not
    be an input (symlinks, hard links, ``./`` and relative paths resolved), lie inside an input
    directory nor match an input glob; a directory may not be an input directory nor lie
    inside one. Object-store URIs are not checked.
    """
    if is_uri(os.fspath(output)):
        return
    locations = _input_locations(source)
    if files is not None:
        for location in locations:
            if not _GLOB_CHARS.search(location) and os.path.isdir(location) \
                    and _inside(output, location):
                raise InputError(f"{os.fspath(output)}: is inside the input directory "
                                 f"{location} (or is it), whose next reading would take the "
                                 "outputs as inputs; choose a directory outside it")
    for target in map(os.fspath, [output] if files is None else files):
        for location in locations:
            if not _GLOB_CHARS.search(location) and not os.path.isdir(location) \
                    and _same_file(location, target):
                raise InputError(f"{target}: is also an input ({location}); refusing to "
                                 "overwrite the input, choose another output")
        for location in locations:
            why = _collision(location, target)
            if why is not None:
                raise InputError(f"{target}: {why}; choose another output")


# --------------------------------------------------------------------------- directory → directory


def output_name(relative: str, suffix: str | None = None) -> str:
    """The output path of an input file: the same relative path; CSV / JSON lines (and any
    compression suffix) become ``.parquet`` unless ``suffix`` is given."""
    stem, ext = relative, ""
    lower = relative.lower()
    for compression in COMPRESSION_SUFFIXES:
        if lower.endswith(compression):
            stem = relative[: -len(compression)]
            break
    stem, ext = os.path.splitext(stem)
    if suffix is None:
        suffix = ext if format_of(relative) in ("parquet", "ipc") else ".parquet"
    return stem + suffix


def _join(root: str, relative: str) -> str:
    return root.rstrip("/") + "/" + relative if is_uri(root) else os.path.join(root, relative)


def normalize_dataset(
    src: str | os.PathLike | Sequence[str | os.PathLike] | DataSource,
    dst_dir: str | os.PathLike,
    mode: str = "batch",
    columns: Sequence[str] | None = None,
    stats: Any = None,
    batch_size: int | None = None,
    eps: float | None = None,
    *,
    ddof: int = 0,
    target: str | None = None,
    suffix: str | None = None,
    compression: str | None = None,
    row_group_size: int | None = None,
    float32: bool = False,
    inf: str = "error",
) -> list[str]:
    """Normalize every file of a directory / glob / list into ``dst_dir``, one output file per
    input file at the same relative path (so ``year=2024/`` partitions are kept). Batch mode
    fits once over all the files (partition keys are not features), then transforms file by
    file. Returns the written paths (or URIs).

    All or nothing on a local ``dst_dir``: the files are written into a hidden staging
    directory beside it and moved into place once every one is complete, so a failure (a
    corrupt input, a full disk, Ctrl-C) leaves ``dst_dir`` as it was; the error names the
    input that failed. An output directory that is, or lies inside, an input directory is
    refused (:func:`check_output_not_input`). On an object store each file is written
    atomically, one after the other.
    """
    from .normalize import Normalizer

    source = open_source(src)
    root = os.fspath(dst_dir)
    names = [output_name(part.relative, suffix) for part in source.parts]
    destinations = [_join(root, name) for name in names]
    check_output_not_input(source, root, destinations)
    if mode == "batch" and stats is not None:
        norm = Normalizer.from_stats(stats, columns=columns, eps=eps, ddof=ddof, target=target)
    else:
        norm = Normalizer(mode, columns=columns, eps=eps, ddof=ddof, target=target,  # type: ignore[arg-type]
                          inf=inf)  # type: ignore[arg-type]
        if mode == "batch":
            norm.fit(source, batch_size=batch_size)
    keys = set(source.partition_columns) & set(norm.normalized_columns(source.schema))
    if keys:
        raise InputError(f"partition key(s) {sorted(keys)} are in the directory names, not in the "
                         "files; normalize them into a single output file instead")
    options = dict(compression=compression, row_group_size=row_group_size,
                   float32=norm.normalized_columns(source.schema) if float32 else False)
    if is_uri(root):
        for index, destination in enumerate(destinations):
            _write_one(norm, source, index, destination, batch_size, options)
        return destinations
    with _staged_directory(root) as staging:
        for index, name in enumerate(names):
            staged = os.path.join(staging, name)
            os.makedirs(os.path.dirname(staged), exist_ok=True)
            _write_one(norm, source, index, staged, batch_size, options)
    return destinations


def _write_one(norm: Any, dataset: DataSource, index: int, destination: str,
               batch_size: int | None, options: dict[str, Any]) -> None:
    """Transform file ``index`` of ``dataset`` into ``destination`` atomically; an error names
    that input file."""
    source = dataset.file_source(index)
    shown = source.location
    try:
        schema, batches = source.schema_and_batches(None, batch_size)
        out_schema = norm.output_schema(schema)
        with io.atomic_path(destination) as tmp:
            with io.BatchWriter(tmp, out_schema, io.output_format(destination), **options
                                ) as writer:
                # the batches themselves, not an Arrow stream over them: a reading error
                # stays the InputError naming the file instead of an ArrowInvalid
                for batch in norm.transform_batches(batches):
                    writer.write(batch)
    except StreamnormError as exc:
        if shown in str(exc):
            raise
        raise type(exc)(f"{shown}: {exc}") from None
    except OSError as exc:
        reason = exc.strerror or io._first_line(exc)
        raise InputError(f"{shown}: writing its output failed ({reason}); nothing was written, "
                         "check the free space and permissions of the output directory") from None


@contextlib.contextmanager
def _staged_directory(root: str) -> Iterator[str]:
    """A new hidden directory beside ``root``; on success its contents move into ``root``
    (created if missing), on any failure (Ctrl-C and SIGTERM included) it is removed together
    with any parent directory this call created, and ``root`` is left as it was."""
    root = os.path.abspath(root)
    created: list[str] = []
    staging: str | None = None
    try:
        created = _make_parents(os.path.dirname(root))
        while staging is None:  # bound before it exists: an interrupt still removes it
            staging = os.path.join(os.path.dirname(root),
                                   f".{os.path.basename(root)}.{secrets.token_hex(6)}.tmp")
            try:
                os.mkdir(staging, 0o777)  # the umask applies, as to any directory
            except FileExistsError:
                staging = None
        yield staging
        _publish(staging, root)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        raise


def _make_parents(directory: str) -> list[str]:
    """Create ``directory`` and its missing parents; the ones created, outermost first."""
    missing = []
    while not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    missing.reverse()
    for path in missing:
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"{path}: cannot create it ({exc.strerror}); choose another "
                             "output directory") from None
    return missing


def _publish(staging: str, root: str) -> None:
    """Move the staged tree into ``root``: one rename when ``root`` does not exist, else file
    by file (replacing older files, which keep their permissions) after checking that no file
    would land on a directory or the reverse."""
    if not os.path.exists(root):
        os.rename(staging, root)
        return
    moves = []
    for folder, _, files in os.walk(staging):
        target_folder = os.path.join(root, os.path.relpath(folder, staging))
        if os.path.exists(target_folder) and not os.path.isdir(target_folder):
            raise InputError(f"{target_folder}: exists and is not a directory; move it away")
        for name in files:
            target = os.path.join(target_folder, name)
            if os.path.isdir(target):
                raise InputError(f"{target}: is a directory where an output file goes; move it "
                                 "away")
            moves.append((os.path.join(folder, name), target))
    for staged, target in moves:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(staged, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(staged, target)
    shutil.rmtree(staging, ignore_errors=True)
