"""The command's options and what they turn into.

The options every reading command shares (``-c``, ``--batch-size``, ``--no-progress``,
``--target``, ``--by``, ``--inf``), those for sources and column selection (``--exclude``,
``--schema``, ``--skip-bad-rows``), output files (``--compression``, ``--row-group-size``,
``--float32``) and Dask (``--scheduler`` / ``--dask``); their argparse types; and how the
parsed options become a source, a column list and writer keywords.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow.fs as pafs

from .. import selection
from ..arrow.dataset import DataSource, open_source
from ..arrow.formats import IPC_SUFFIXES, PARQUET_CODECS, PARQUET_SUFFIXES
from ..arrow.locations import has_glob, is_uri, resolve
from ..arrow.open import schema_and_batches
from ..arrow.schemas import parse_schema_text
from ..arrow.stdio import (
    STREAM_FORMATS,
    StreamSource,
    is_stdio,
    is_stream_location,
    is_stream_path,
    stream_source,
    stream_source_at,
)
from ..arrow.text import SkippedRowsWarning
from ..config import TARGETS
from ..errors import InputError
from ..normalize.affine import check_feature_range, mode_options
from .exits import UsageError

_DATA_FILE_SUFFIXES = (*PARQUET_SUFFIXES, *IPC_SUFFIXES, ".arrows")
IN_HELP = ("file, directory, glob, CSV/JSON lines, s3:// URI, or - (an Arrow IPC stream on "
           "stdin; also a pipe path: <(producer), a FIFO, /dev/stdin)")
COLUMN_HELP = "a column name or glob such as 'emb_*' (repeat); default: every numeric column"

# --inf per command: (choices, default, help). stats keeps ±inf as values by default, as numpy
# does; normalize refuses them by default, since their statistics are not finite.
_INF_OPTIONS = {
    "stats": (
        ("keep", "skip"), "keep",
        "keep (default): ±inf are values, as in numpy (mean ±inf, std NaN); skip: skip them "
        "like NaN (counted as inf_count), as `normalize --inf skip` needs",
    ),
    "normalize": (
        ("error", "skip"), "error",
        "batch mode: error (default) refuses columns holding ±inf, whose statistics are not "
        "finite; skip: compute statistics without ±inf, which pass through unchanged",
    ),
}


# --------------------------------------------------------------------------- argparse types


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    return _whole_number(text, 0)


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value >= 0.0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def feature_range(text: str) -> tuple[float, float]:
    """An argparse type: ``LO,HI``, two finite numbers with LO < HI (``--feature-range``)."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError(f"{text!r} is not LO,HI (two numbers separated by a comma)")
        return check_feature_range([float(p) for p in parts])
    except ValueError as err:
        message = str(err) if "LO,HI" in str(err) or "lo < hi" in str(err) else (
            f"{text!r} is not LO,HI (two numbers separated by a comma)")
        raise argparse.ArgumentTypeError(message) from None


# --------------------------------------------------------------------------- options


def add_column_option(parser: argparse.ArgumentParser) -> None:
    """``-c / --column COL`` (repeatable), stored as ``args.columns``."""
    parser.add_argument("-c", "--column", dest="columns", action="append", metavar="COL",
                        help=COLUMN_HELP)


def add_common_options(parser: argparse.ArgumentParser, *, columns: bool = True) -> None:
    """``-c`` (when ``columns``), ``--batch-size``, ``--no-progress`` and ``--target``."""
    if columns:
        add_column_option(parser)
    parser.add_argument(
        "--batch-size", type=positive_int, metavar="N",
        help="rows per batch at most (default: one IPC batch or Parquet row group)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (also off when not a TTY)"
    )
    parser.add_argument(
        "--target", choices=TARGETS, default=None,
        help="compute target (default: $STREAMNORM_TARGET, else cpu)",
    )


def add_by_option(parser: argparse.ArgumentParser) -> None:
    """``--by KEY`` (repeatable): statistics per key."""
    parser.add_argument(
        "--by", action="append", metavar="KEY",
        help="a key column: statistics per key (repeat for several key columns)",
    )


def add_inf_option(parser: argparse.ArgumentParser, command: str) -> None:
    """``--inf``, with the choices and default of ``command`` (``stats`` or ``normalize``)."""
    choices, default, help_text = _INF_OPTIONS[command]
    parser.add_argument("--inf", choices=choices, default=default, help=help_text)


def add_selection_options(parser: argparse.ArgumentParser, *, reading: bool = True) -> None:
    """``--exclude`` and ``--schema`` (and, when ``reading``, ``--skip-bad-rows``)."""
    parser.add_argument(
        "--exclude", action="append", metavar="COL",
        help="leave this column out: a name or glob (repeat)",
    )
    parser.add_argument(
        "--schema", metavar="NAME=TYPE,...",
        help="read these columns as these types, e.g. price=float64,qty=int64: CSV/JSON lines "
        "are parsed so (instead of inferring types from the first block), other files cast",
    )
    if reading:
        parser.add_argument(
            "--skip-bad-rows", action="store_true",
            help="CSV/JSON lines: skip malformed rows and report how many, instead of failing",
        )
    else:
        parser.set_defaults(skip_bad_rows=False)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--compression``, ``--row-group-size`` and ``--float32``."""
    parser.add_argument(
        "--compression", choices=PARQUET_CODECS, metavar="CODEC",
        help="zstd (Parquet default), lz4, snappy, gzip, brotli or none (Arrow IPC: zstd, lz4 "
        "or none, default none)",
    )
    parser.add_argument(
        "--row-group-size", type=positive_int, metavar="N",
        help="Parquet output: rows per row group (default: one per input batch)",
    )
    parser.add_argument(
        "--format", choices=tuple(STREAM_FORMATS), default=None,
        help="OUT - (stdout) or a pipe path (>(consumer), a FIFO) only: arrows (Arrow IPC "
        "stream, default), parquet or csv (no metadata record); a file's suffix decides its "
        "format",
    )
    parser.add_argument(
        "--float32", action="store_true",
        help="write the normalized columns as float32 (half the size); other columns keep their "
        "type"
    )


def momentum_value(text: str) -> float:
    """An argparse type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be in (0, 1]")
    return value


def add_online_options(parser: argparse.ArgumentParser) -> None:
    """``--online``, ``--momentum M``, ``--warmup ROWS`` and ``-o / --save-stats STATS``."""
    parser.add_argument(
        "--online", action="store_true",
        help="batch mode, one pass: normalize each batch with the statistics of everything "
        "read so far, that batch included (no look-ahead); for streams",
    )
    parser.add_argument(
        "--momentum", type=momentum_value, metavar="M",
        help="with --online: exponentially forgetting statistics instead, BatchNorm's running "
        "mean and variance with this factor in (0, 1]",
    )
    parser.add_argument(
        "--warmup", type=non_negative_int, default=0, metavar="ROWS",
        help="with --online: hold the first batches back until ROWS rows are read, then "
        "normalize them with the statistics of all of them (default 0)",
    )
    parser.add_argument(
        "-o", "--save-stats", metavar="STATS",
        help="with --online: save the statistics of every row read (.json, .arrow or "
        ".parquet); a Parquet OUT also holds them in its footer",
    )


def add_dask_options(parser: argparse.ArgumentParser) -> None:
    """``--scheduler ADDRESS`` or ``--dask`` (mutually exclusive)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run on this Dask scheduler (e.g. tcp://host:8786); IN is then a file, a "
        "directory or a quoted glob, and normalize's OUT a directory (one OUT/<name>.parquet "
        "per input)",
    )
    group.add_argument(
        "--dask", action="store_true",
        help="like --scheduler, on a local Dask cluster (one single-threaded worker per core)",
    )


# --------------------------------------------------------------------------- what they mean


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to draw progress bars: not ``--no-progress``, and stderr is a terminal."""
    return not args.no_progress and sys.stderr.isatty()


def output_options(args: argparse.Namespace) -> dict[str, Any]:
    """The writer keyword arguments given on the command line."""
    return {"compression": args.compression, "row_group_size": args.row_group_size,
            "float32": args.float32}


def schema_option(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--schema`` as ``{name: type}``, or None."""
    return parse_schema_text(args.schema) if args.schema is not None else None


def open_input(args: argparse.Namespace) -> str | DataSource | StreamSource:
    """IN as given, a :class:`~streamnorm.arrow.dataset.DataSource` when ``--schema`` or
    ``--skip-bad-rows`` asks for reading options, or stdin's stream for ``-`` (a pipe or
    device path, such as ``<(producer)`` or ``/dev/stdin``: its stream, read once alike)."""
    if is_stdio(args.input):
        check_stdio_usage(args)
        return stream_source()
    if is_stream_path(args.input):
        check_stdio_usage(args)
        return stream_source_at(args.input)
    schema = schema_option(args)
    if schema is None and not args.skip_bad_rows:
        return args.input
    return open_source(args.input, skip_bad_rows=args.skip_bad_rows, schema=schema)


def check_stdio_usage(args: argparse.Namespace) -> None:
    """Options that do not fit ``-`` (or a pipe or device path) as IN or OUT are a
    :class:`UsageError` naming them, and so is ``--format`` with another OUT."""
    output = getattr(args, "output", None)
    stream_in = is_stream_location(args.input)
    streams = [p for p in (args.input, output) if p is not None and is_stream_location(p)]
    given = [name for name, on in (
        ("--schema", stream_in and getattr(args, "schema", None)),
        ("--skip-bad-rows", stream_in and getattr(args, "skip_bad_rows", False)),
        ("--scheduler/--dask",
         streams and (getattr(args, "scheduler", None) or getattr(args, "dask", False))),
    ) if on]
    if given:
        shown = ("- (stdin/stdout)" if all(is_stdio(p) for p in streams)
                 else " and ".join(dict.fromkeys(streams)))
        raise UsageError(f"{' and '.join(given)} do(es) not apply to {shown}: the "
                         "stream is Arrow IPC with its own types, read once; drop "
                         f"{' and '.join(given)}")
    stats = getattr(args, "stats", None)
    if stats is not None and is_stream_location(stats) and stats == args.input:
        shown = "stdin" if is_stdio(stats) else stats
        raise UsageError(f"{shown} cannot be both IN and --stats: a stream is read once; "
                         "save the statistics to a file and pass that")
    if getattr(args, "format", None) is not None and not is_stream_location(output or ""):
        raise UsageError("--format is for OUT - (stdout) or a pipe only; a file's suffix "
                         "decides its format, drop --format")


def message_stream(args: argparse.Namespace) -> Any:
    """Where a command's closing line goes: stderr when OUT is ``-`` (stdout holds the
    data) or a pipe or device path (``/dev/stdout``, ``>(consumer)``), else stdout."""
    return sys.stderr if is_stream_location(getattr(args, "output", None)) else sys.stdout


@contextmanager
def reporting_skips(source: object, shown: str) -> Iterator[None]:
    """Silence :class:`~streamnorm.arrow.text.SkippedRowsWarning` inside; afterwards, print
    ``streamnorm: skipped N bad row(s) in IN`` on stderr if rows were skipped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedRowsWarning)
        yield
    skipped = source.skipped_rows if isinstance(source, DataSource) else 0
    if skipped:
        print(f"streamnorm: skipped {skipped} bad row(s) in {shown}", file=sys.stderr)


def source_schema(source: object) -> Any:
    """The schema of a source (reading only its first block)."""
    if isinstance(source, DataSource):
        return source.schema
    schema, batches = schema_and_batches(source)  # type: ignore[arg-type]
    if hasattr(batches, "close"):
        batches.close()
    if schema is None:  # pragma: no cover - paths always have a schema
        raise InputError(f"{source}: no schema; give a file with data")
    return schema


def _has_glob(names: list[str] | None) -> bool:
    return any(has_glob(name) for name in names or ())


def resolve_columns(args: argparse.Namespace, source: object, mode: str) -> list[str] | None:
    """The columns to use: ``-c`` as given when it holds plain names and there is no
    ``--exclude``; else ``-c`` globs expanded and ``--exclude`` removed against IN's schema
    (``--by`` keys are never features)."""
    if not _has_glob(args.columns) and not args.exclude:
        return args.columns
    chosen = selection.select_columns(source_schema(source), args.columns,
                                      [*(args.exclude or []), *(args.by or [])], mode)
    if not chosen:
        raise UsageError("no column is left once --exclude is applied; exclude fewer columns")
    return chosen


def is_dataset(location: str) -> bool:
    """Whether IN names several files: a glob, or a directory (local or object store)."""
    if has_glob(location):
        return True
    if not is_uri(location):
        return os.path.isdir(location)
    fs, path = resolve(location)
    try:
        return bool(fs.get_file_info(path).type == pafs.FileType.Directory)
    except OSError:
        return False


def wants_directory(output: str) -> bool:
    """Whether OUT is a directory for a dataset input: an existing directory, or a name
    without a data-file suffix (``out.parquet`` means one file holding everything; so does
    ``-`` or a pipe path such as ``/dev/stdout``: one stream)."""
    if is_stream_location(output):
        return False
    if not is_uri(output) and os.path.isdir(output):
        return True
    return os.path.splitext(output.rstrip("/"))[1].lower() not in _DATA_FILE_SUFFIXES


def given_mode_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of ``normalize --mode`` (``--feature-range``, ``--quantile-range``),
    checked, defaults filled in (:func:`streamnorm.normalize.affine.mode_options`): what the
    summary lines show."""
    return mode_options(args.mode, {"feature_range": args.feature_range,
                                    "quantile_range": args.quantile_range})
