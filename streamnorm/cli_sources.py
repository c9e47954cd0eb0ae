"""Command-line options for sources, column selection, output files and Dask (issues 7 and 9).

Kept apart from :mod:`streamnorm.cli` so that the command stays readable: the parser options
(``--exclude``, ``--schema``, ``--skip-bad-rows``, ``--compression``, ``--row-group-size``,
``--float32``, ``--scheduler`` / ``--dask``), how they turn into a source and a column list, the
directory → directory and Dask paths of ``stats`` / ``normalize``, and ``inspect``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow.fs as pafs

from . import io, selection, sources
from .arrow.locations import has_glob
from .errors import InputError
from .pipeline import normalize_dataset
from .stats import FeatureStats

_DATA_FILE_SUFFIXES = (*io.PARQUET_SUFFIXES, *io.IPC_SUFFIXES, ".arrows")
_DASK_HINT = "--scheduler / --dask need Dask: pip install 'streamnorm[dask]'"
_DASK_LOG_ENV = "DASK_LOGGING__DISTRIBUTED"  # read by each spawned worker
IN_HELP = "file, directory, glob, CSV/JSON lines or s3:// URI"


class UsageError(Exception):
    """Bad command-line usage: reported as one line, exit code 2."""


# --------------------------------------------------------------------------- options


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


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--compression``, ``--row-group-size`` and ``--float32``."""
    parser.add_argument(
        "--compression", choices=io.PARQUET_CODECS, metavar="CODEC",
        help="zstd (Parquet default), lz4, snappy, gzip, brotli or none (Arrow IPC: zstd, lz4 "
        "or none, default none)",
    )
    parser.add_argument(
        "--row-group-size", type=positive_int, metavar="N",
        help="Parquet output: rows per row group (default: one per input batch)",
    )
    parser.add_argument(
        "--float32", action="store_true",
        help="write the normalized columns as float32 (half the size); other columns keep their "
        "type"
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


def output_options(args: argparse.Namespace) -> dict[str, Any]:
    """The writer keyword arguments given on the command line."""
    return {"compression": getattr(args, "compression", None),
            "row_group_size": getattr(args, "row_group_size", None),
            "float32": getattr(args, "float32", False)}


# --------------------------------------------------------------------------- sources


def open_input(args: argparse.Namespace) -> str | sources.DataSource:
    """IN as given, or a :class:`~streamnorm.sources.DataSource` when ``--schema`` or
    ``--skip-bad-rows`` asks for reading options."""
    skip = getattr(args, "skip_bad_rows", False)
    schema = _schema_option(args)
    if schema is None and not skip:
        return args.input
    return sources.open_source(args.input, skip_bad_rows=skip, schema=schema)


def _schema_option(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--schema`` as ``{name: type}``, or None."""
    text = getattr(args, "schema", None)
    return sources.parse_schema_text(text) if text is not None else None


@contextmanager
def reporting_skips(source: object, shown: str) -> Iterator[None]:
    """Silence :class:`~streamnorm.sources.SkippedRowsWarning` inside; afterwards, print
    ``streamnorm: skipped N bad row(s) in IN`` on stderr if rows were skipped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sources.SkippedRowsWarning)
        yield
    skipped = source.skipped_rows if isinstance(source, sources.DataSource) else 0
    if skipped:
        print(f"streamnorm: skipped {skipped} bad row(s) in {shown}", file=sys.stderr)


def source_schema(source: object) -> Any:
    """The schema of a source (reading only its first block)."""
    if isinstance(source, sources.DataSource):
        return source.schema
    schema, batches = io.schema_and_batches(source)  # type: ignore[arg-type]
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
    exclude = getattr(args, "exclude", None)
    if not _has_glob(args.columns) and not exclude:
        return args.columns
    by = getattr(args, "by", None) or []
    chosen = selection.select_columns(source_schema(source), args.columns,
                                      [*(exclude or []), *by], mode)
    if not chosen:
        raise UsageError("no column is left once --exclude is applied; exclude fewer columns")
    return chosen


def is_dataset(location: str) -> bool:
    """Whether IN names several files: a glob, or a directory (local or object store)."""
    if has_glob(location):
        return True
    if not sources.is_uri(location):
        return os.path.isdir(location)
    fs, path = sources.resolve(location)
    try:
        return bool(fs.get_file_info(path).type == pafs.FileType.Directory)
    except OSError:
        return False


def wants_directory(output: str) -> bool:
    """Whether OUT is a directory for a dataset input: an existing directory, or a name
    without a data-file suffix (``out.parquet`` means one file holding everything)."""
    if not sources.is_uri(output) and os.path.isdir(output):
        return True
    return os.path.splitext(output.rstrip("/"))[1].lower() not in _DATA_FILE_SUFFIXES


# --------------------------------------------------------------------------- directory → dir


def normalize_directory(args: argparse.Namespace, source: object,
                        columns: list[str] | None) -> list[str]:
    """``normalize DIR OUT_DIR``: one output file per input file, the layout mirrored."""
    if args.by:
        raise UsageError("--by needs a single output file: give OUT a .parquet or .arrow name")
    output = args.output
    if not sources.is_uri(output) and os.path.exists(output) and not os.path.isdir(output):
        raise InputError(f"{output}: exists and is not a directory; give a directory for the "
                         "outputs of a directory or glob input")
    dataset = source if isinstance(source, sources.DataSource) else sources.open_source(source)
    return normalize_dataset(
        dataset, output, mode=args.mode, columns=columns, stats=args.stats,
        batch_size=args.batch_size, eps=args.eps, target=args.target,
        inf=getattr(args, "inf", "error"), **output_options(args),
    )


# --------------------------------------------------------------------------- Dask


def uses_dask(args: argparse.Namespace) -> bool:
    """Whether ``--scheduler`` or ``--dask`` was given."""
    return bool(getattr(args, "scheduler", None) or getattr(args, "dask", False))


def check_dask_usage(args: argparse.Namespace, *, grouped: bool = False) -> None:
    """Options the Dask path does not take are a :class:`UsageError` naming them (``--by``
    only where ``grouped``: ``stats`` takes it, ``normalize`` into a directory does not)."""
    given = [name for name, on in (
        ("--by", getattr(args, "by", None) and not grouped),
        ("--skip-bad-rows", getattr(args, "skip_bad_rows", False)),
    ) if on]
    if given:
        raise UsageError(f"{', '.join(given)} cannot be used with --scheduler / --dask; drop "
                         "them or run without Dask")


@contextmanager
def _quiet_distributed() -> Iterator[None]:
    """Keep Dask's own logging off the command's stderr while the block runs.

    Dask logs races it recovers from as errors with tracebacks (a worker's heartbeat that meets
    a scheduler already shutting down, at the end of every ``--dask`` run now and then). A
    task that really fails reaches us as an exception and becomes our one-line error, so the
    command keeps nothing of Dask's logging. Worker processes are spawned with
    ``DASK_LOGGING__DISTRIBUTED`` set, so their ``distributed`` logger starts quiet too.
    """
    logger = logging.getLogger("distributed")
    old_level, old_env = logger.level, os.environ.get(_DASK_LOG_ENV)
    logger.setLevel(logging.CRITICAL)
    os.environ[_DASK_LOG_ENV] = "critical"
    try:
        yield
    finally:
        logger.setLevel(old_level)
        if old_env is None:
            os.environ.pop(_DASK_LOG_ENV, None)
        else:
            os.environ[_DASK_LOG_ENV] = old_env


@contextmanager
def dask_client(args: argparse.Namespace) -> Iterator[Any]:
    """A ``distributed.Client`` on ``--scheduler``, or on a local cluster for ``--dask`` (one
    single-threaded worker process per core); closed on the way out. Dask's logging stays
    off stderr (see :func:`_quiet_distributed`)."""
    try:
        import distributed
    except ImportError:
        raise UsageError(_DASK_HINT) from None
    with _quiet_distributed():
        if args.scheduler:
            try:
                client = distributed.Client(args.scheduler, timeout="10s")
            except (OSError, TimeoutError, ValueError) as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise UsageError(f"{args.scheduler}: cannot reach the Dask scheduler ({reason}); "
                                 "check the address and that the scheduler is running") from None
            with client:
                yield client
            return
        # dashboard_address=None still binds :8787 (and warns when taken): use any free port
        with distributed.LocalCluster(threads_per_worker=1, processes=True,
                                      dashboard_address=":0",
                                      silence_logs=logging.CRITICAL) as cluster:
            with distributed.Client(cluster) as client:
                yield client


def _dask_module() -> Any:
    try:
        from . import dask as sn_dask
    except ImportError:  # pragma: no cover - the module itself imports dask lazily
        raise UsageError(_DASK_HINT) from None
    return sn_dask


def dask_stats(args: argparse.Namespace) -> tuple[FeatureStats, int]:
    """``stats IN --scheduler/--dask``: (statistics, number of files)."""
    check_dask_usage(args, grouped=True)
    sn_dask = _dask_module()
    dataset = sn_dask.open_files(args.input, schema=_schema_option(args))
    columns = resolve_columns(args, dataset, "batch")
    with dask_client(args):
        stats = sn_dask.feature_stats(dataset, columns, batch_size=args.batch_size,
                                      target=args.target, by=args.by,
                                      inf=getattr(args, "inf", "keep"))
    return stats, len(dataset.files)


def dask_normalize(args: argparse.Namespace) -> str:
    """``normalize IN OUT_DIR --scheduler/--dask``; returns the line to print."""
    check_dask_usage(args)
    output = args.output
    if os.path.exists(output) and not os.path.isdir(output):
        raise InputError(f"{output}: exists and is not a directory; with --scheduler / --dask "
                         "OUT is a directory (one OUT/<name>.parquet per input)")
    sn_dask = _dask_module()
    dataset = sn_dask.open_files(args.input, schema=_schema_option(args))
    columns = resolve_columns(args, dataset, args.mode)
    start = time.perf_counter()
    with dask_client(args):
        written = sn_dask.normalize_files(
            dataset, output, mode=args.mode, stats=args.stats, columns=columns, eps=args.eps,
            batch_size=args.batch_size, target=args.target, compression=args.compression,
            row_group_size=args.row_group_size, float32=args.float32,
            inf=getattr(args, "inf", "error"),
        )
    seconds = time.perf_counter() - start
    return (f"normalized {len(written)} files ({args.mode} mode) into {output} in "
            f"{seconds:.2f} s")


# --------------------------------------------------------------------------- inspect


def cmd_inspect(args: argparse.Namespace) -> int:
    """``streamnorm inspect IN [-c COL ...] [--exclude COL ...] [--schema ...]``."""
    source = open_input(args)
    print(selection.inspect(source, args.columns, args.exclude))
    return 0
