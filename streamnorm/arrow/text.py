"""CSV and JSON lines readers: pyarrow's streaming readers, one block at a time, with bad rows
named by line (or skipped and counted, ``skip_bad_rows=True``) and readers always closed."""

from __future__ import annotations

import io
import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs

if TYPE_CHECKING:
    import pyarrow.json as pjson

from ..config import json_block_size
from ..errors import InputError
from .failures import first_line
from .locations import display

_JSON_CHUNK_BYTES = 1 << 20
_BAD_ROW_EXAMPLES = 5


class SkippedRowsWarning(UserWarning):
    """Rows were skipped because ``skip_bad_rows=True`` (one warning per file)."""


@dataclass
class SourceOptions:
    """Reading options shared by every file of a source."""

    format: str | None = None
    schema: pa.Schema | None = None
    skip_bad_rows: bool = False
    block_size: int | None = None
    delimiter: str | None = None


class SkipCounter:
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
        reader = io.BufferedReader(raw, 1 << 16)  # type: ignore[arg-type]
        number = 0
        while line := reader.readline(-1 if limit is None else limit + 1):
            number += 1
            if limit is not None and len(line) > limit:
                raise _line_too_long(display(fs, path), number, limit)
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
    import pyarrow.compute as pc  # pyarrow's compute, CSV and JSON modules load on first use
    import pyarrow.csv as pcsv
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


def csv_batches(fs: pafs.FileSystem, path: str, shown: str, opts: SourceOptions,
                 counter: SkipCounter) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """(schema, batches) of CSV file ``path`` of ``fs``, one block at a time, types inferred
    from the first block or given by ``opts.schema``; a malformed row is an
    :class:`InputError` naming its line, or skipped and counted in ``counter``
    (``opts.skip_bad_rows``). The batches' ``close()`` closes the reader."""
    import pyarrow.csv as pcsv
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
    return InputError(f"{shown}: cannot read it as CSV ({first_line(exc)}); check the file")


def _report_skipped(shown: str, skipped: int, examples: list[str], counter: SkipCounter) -> None:
    counter.by_file[shown] = skipped
    if skipped:
        warnings.warn(f"{shown}: skipped {skipped} bad row(s), e.g. {examples[0]}",
                      SkippedRowsWarning, stacklevel=3)


def _json_parse(schema: pa.Schema | None, fixed: bool) -> pjson.ParseOptions:
    import pyarrow.json as pjson
    behaviour = "ignore" if fixed else "infer"
    return pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior=behaviour)


def _parse_json_lines(lines: list[tuple[int, bytes]], options: pjson.ParseOptions,
                      block_size: int) -> tuple[list[pa.Table], list[tuple[int, str]]]:
    """Parse lines with pyarrow.json; bisect a failing chunk down to its bad lines."""
    import pyarrow.json as pjson
    try:
        data = b"".join(line for _, line in lines)
        read = pjson.ReadOptions(block_size=block_size)
        return [pjson.read_json(io.BytesIO(data), read_options=read, parse_options=options)], []
    except pa.ArrowInvalid as exc:
        if len(lines) == 1:
            reason = re.sub(r"\.?\s+in row \d+\s*$", "", first_line(exc)).rstrip(".")
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


def json_keys(fs: pafs.FileSystem, path: str, block_size: int) -> set[str]:
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


def json_batches(fs: pafs.FileSystem, path: str, shown: str, opts: SourceOptions,
                  counter: SkipCounter) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """(schema, batches) of JSON lines file ``path`` of ``fs``, as :func:`csv_batches`; a
    line longer than the block size is an :class:`InputError`."""
    import pyarrow.json as pjson
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
        return InputError(f"{shown}: cannot read it as JSON lines ({first_line(exc)}); check "
                          "the file")
    line, reason = found
    return InputError(f"{shown}: line {line}: {reason}; fix the line, fix the types with "
                      "schema= / --schema, or skip bad lines with skip_bad_rows=True / "
                      "--skip-bad-rows")


def _json_batches_skipping(fs: pafs.FileSystem, path: str, shown: str, opts: SourceOptions,
                           counter: SkipCounter, block_size: int
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
