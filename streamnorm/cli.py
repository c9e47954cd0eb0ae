"""The ``streamnorm`` command (also ``python -m streamnorm``).

Subcommands: ``stats``, ``normalize``, ``inverse``, ``inspect`` and ``demo`` (see
``streamnorm --help``); the options for sources, column selection, output files and Dask are
in :mod:`streamnorm.cli_sources`.
Exit codes: 0 on success; 2 on bad usage or bad input, with one line on stderr naming the
problem and the way out; 130 on Ctrl-C and 143 on SIGTERM, after removing any temporary file
(outputs are written beside their destination and renamed into place only on success).
An input without rows is not an error: its statistics have count 0 and ``normalize`` writes
an output without rows that has the output schema.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import cli_sources as cs
from . import io
from ._version import __version__
from .config import TARGETS
from .errors import InputError, StreamnormError
from .kernels import backend
from .normalize import (
    MODES,
    Normalizer,
    check_batch_columns,
    check_destination,
    count_rows,
    inverse_file,
    normalize_file,
)
from .progress import progress_bar
from .stats import FeatureStats

PROG = "streamnorm"
EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 2, 130, 143
# A reader that closed the pipe early (``streamnorm inspect f | head -1``): exit quietly with
# the status a Unix tool killed by SIGPIPE reports (128 + 13), as `yes | head` does.
EXIT_BROKEN_PIPE = 141
_STATS_SUFFIXES = (".json", *io.IPC_SUFFIXES, *io.PARQUET_SUFFIXES)


UsageError = cs.UsageError


class Terminated(BaseException):
    """Raised by the SIGTERM handler so that temporary files are cleaned up on the way out."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and do not exit (main() reports them)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# --------------------------------------------------------------------------- arguments


_positive_int = cs.positive_int


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value >= 0.0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def _add_common(parser: argparse.ArgumentParser, *, columns: bool = True) -> None:
    if columns:
        parser.add_argument(
            "-c", "--column", dest="columns", action="append", metavar="COL",
            help="a column name or glob such as 'emb_*' (repeat); default: every numeric "
            "column",
        )
    parser.add_argument(
        "--batch-size", type=_positive_int, metavar="N",
        help="rows per batch at most (default: one IPC batch or Parquet row group)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (also off when not a TTY)"
    )
    parser.add_argument(
        "--target", choices=TARGETS, default=None,
        help="compute target (default: $STREAMNORM_TARGET, else cpu)",
    )


def _add_by(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--by", action="append", metavar="KEY",
        help="a key column: statistics per key (repeat for several key columns)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``streamnorm`` command."""
    parser = _Parser(
        prog=PROG,
        description="Streaming normalization statistics and normalization of Arrow IPC and "
        "Parquet files, with bounded memory.",
        epilog="Exit codes: 0 ok, 2 bad usage or input, 130 interrupted, 143 terminated.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    stats = sub.add_parser(
        "stats", help="per-column count, nulls, NaN, mean, std, min, max of a file",
        description="Compute per-column statistics in one streaming pass. Prints a table, or "
        "saves the exact mergeable state with -o (.json, .arrow or .parquet).",
    )
    stats.add_argument("input", metavar="IN", help=cs.IN_HELP)
    stats.add_argument("-o", "--output", metavar="STATS", help="save the statistics here")
    stats.add_argument(
        "--ddof", type=cs.non_negative_int, default=0, metavar="N",
        help="the printed std divides by count - N (default 0, numpy's; 1 for pandas'). A "
        "saved state keeps m2, so it serves any ddof",
    )
    stats.add_argument(
        "--inf", choices=("keep", "skip"), default="keep",
        help="keep (default): ±inf are values, as in numpy (mean ±inf, std NaN); skip: skip "
        "them like NaN (counted as inf_count), as `normalize --inf skip` needs",
    )
    _add_common(stats)
    cs.add_selection_options(stats)
    _add_by(stats)
    cs.add_dask_options(stats)

    norm = sub.add_parser(
        "normalize", help="normalize a file into another (batch, layer or rms mode)",
        description="Normalize IN into OUT (formats by suffix). Batch mode reads IN twice "
        "(fit, then transform) unless --stats is given; layer and rms read it once. OUT is "
        "written to a temporary file and renamed into place only on success. When IN is a "
        "directory or a glob and OUT a directory (existing, or a name without a data suffix), "
        "each input file gets its own output file at the same relative path, so hive "
        "partitions (year=2024/) are kept; with a .parquet/.arrow OUT, everything goes into "
        "that one file.",
    )
    norm.add_argument("input", metavar="IN", help=cs.IN_HELP)
    norm.add_argument("output", metavar="OUT",
                      help=".parquet, .arrow/.feather/.ipc or .arrows; or a directory")
    norm.add_argument("--mode", choices=MODES, default="batch", help="default: batch")
    norm.add_argument(
        "--stats", metavar="FILE",
        help="batch mode: use these statistics (a stats file, or a file normalized before) "
        "instead of a fitting pass",
    )
    norm.add_argument(
        "--eps", type=_non_negative_float, metavar="E",
        help="added to the variance under the square root (default 0 batch, 1e-5 layer/rms)",
    )
    norm.add_argument(
        "--inf", choices=("error", "skip"), default="error",
        help="batch mode: error (default) refuses columns holding ±inf, whose statistics are "
        "not finite; skip: compute statistics without ±inf, which pass through unchanged",
    )
    _add_common(norm)
    cs.add_selection_options(norm)
    cs.add_output_options(norm)
    _add_by(norm)
    cs.add_dask_options(norm)

    inverse = sub.add_parser(
        "inverse", help="undo a batch-mode normalization",
        description="Restore the original values of a file made by `streamnorm normalize` in "
        "batch mode, from the statistics recorded in its metadata (or --stats).",
    )
    inverse.add_argument("input", metavar="IN", help="a normalized Arrow IPC or Parquet file")
    inverse.add_argument("output", metavar="OUT", help="where to write the restored data")
    inverse.add_argument("--stats", metavar="FILE", help="statistics to use instead")
    _add_common(inverse, columns=False)
    cs.add_output_options(inverse)

    inspect = sub.add_parser(
        "inspect", help="print the schema and which columns each mode would normalize",
        description="Print IN's columns and types (reading only its first block) and, for "
        "batch, layer and rms mode, whether each column would be normalized and why not.",
    )
    inspect.add_argument("input", metavar="IN", help=cs.IN_HELP)
    inspect.add_argument(
        "-c", "--column", dest="columns", action="append", metavar="COL",
        help="a column name or glob such as 'emb_*' (repeat); default: every numeric column",
    )
    inspect.add_argument(
        "--no-progress", action="store_true",
        help="accepted like the other commands (inspect reads one block and draws no bar)",
    )
    cs.add_selection_options(inspect, reading=False)

    demo = sub.add_parser(
        "demo", help="generate a sample Parquet file and run stats, normalize and inverse on it",
        description="Generate a seeded sample Parquet file, then run stats, normalize (batch "
        "and layer) and inverse on it end to end, printing each step.",
    )
    demo.add_argument("--rows", type=_positive_int, default=300_000, metavar="N",
                      help="rows to generate (default 300000)")
    demo.add_argument("--dir", default="streamnorm-demo", metavar="D",
                      help="directory for the files (default ./streamnorm-demo)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


# --------------------------------------------------------------------------- helpers


def _show_progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


def _check_target(target: str | None) -> None:
    try:
        backend(target)
    except (RuntimeError, ValueError) as exc:
        raise InputError(str(exc)) from None


def _format_number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    if value is None:
        return "null"
    return str(value)


def format_table(table: pa.Table) -> str:
    """A table as aligned text: a header line, then one line per row (numbers right-aligned).

    >>> print(format_table(pa.table({"column": ["a"], "mean": [1.5]})))
    column  mean
    a        1.5
    """
    header = table.column_names
    rows = [[_format_number(v) for v in row.values()] for row in table.to_pylist()]
    widths = [max([len(h)] + [len(r[j]) for r in rows]) for j, h in enumerate(header)]
    text_columns = {
        j for j, f in enumerate(table.schema) if pa.types.is_string(f.type)
    }

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.ljust(w) if j in text_columns else c.rjust(w)
            for j, (c, w) in enumerate(zip(cells, widths))
        ]
        return "  ".join(parts).rstrip()

    first = "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()
    return "\n".join([first, *(line(r) for r in rows)])


def _check_stats_output(src: str, dst: str) -> None:
    if Path(dst).suffix.lower() not in _STATS_SUFFIXES:
        raise InputError(
            f"{dst}: unknown statistics format {Path(dst).suffix or '(no suffix)'}; use .json, "
            ".arrow or .parquet"
        )
    check_destination(src, dst, check_format=False)


def _compute_stats(
    path: object, columns: list[str] | None, batch_size: int | None, target: str | None,
    progress: bool, by: list[str] | None = None, inf: str = "keep",
) -> tuple[FeatureStats, int]:
    """Stream a source (a path, or a DataSource) once into FeatureStats; (stats, rows read)."""
    if columns is not None:
        check_batch_columns(cs.source_schema(path), columns)
    bar = progress_bar("stats", count_rows(path) if progress else None, progress)
    rows = _RowCounter(bar)
    try:
        norm = Normalizer("batch", columns=columns, target=target, by=by,
                          inf="skip" if inf == "skip" else "error")
        norm._fit(path, batch_size=batch_size, progress=rows)  # type: ignore[arg-type]
    finally:
        bar.close()
    stats = norm.stats
    assert stats is not None
    return stats, rows.rows


def _summary_table(stats: FeatureStats, ddof: int = 0) -> pa.Table:
    """``stats.summary(ddof)`` with the std column named after its ddof: ``std(ddof=0)``."""
    table = stats.summary(ddof=ddof)
    return table.rename_columns(
        [f"std(ddof={ddof})" if name == "std" else name for name in table.column_names]
    )


class _RowCounter:
    """A progress sink that counts rows and forwards to a bar."""

    def __init__(self, bar: object) -> None:
        self.bar = bar
        self.rows = 0

    def update(self, rows: int, nbytes: int) -> None:
        self.rows += rows
        self.bar.update(rows, nbytes)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.bar.close()  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- commands


def cmd_stats(args: argparse.Namespace) -> int:
    """``streamnorm stats IN [-c COL ...] [-o STATS]``."""
    _check_target(args.target)
    if args.output:
        _check_stats_output(args.input, args.output)
    if cs.uses_dask(args):
        stats, files = cs.dask_stats(args)
        over = f"{files} file{'s' if files != 1 else ''}"
    else:
        source = cs.open_input(args)
        with cs.reporting_skips(source, args.input):
            columns = cs.resolve_columns(args, source, "batch")
            stats, rows = _compute_stats(
                source, columns, args.batch_size, args.target, _show_progress(args), by=args.by,
                inf=args.inf,
            )
        over = f"{rows:,} rows"
    if args.output:
        stats.save(args.output)
        print(f"wrote statistics of {len(stats.columns)} columns over {over} to "
              f"{args.output}")
    else:
        print(format_table(_summary_table(stats, args.ddof)))
    return EXIT_OK


def cmd_normalize(args: argparse.Namespace) -> int:
    """``streamnorm normalize IN OUT [--mode M] [-c COL ...] [--stats FILE] [--eps E] ...``."""
    if args.stats is not None and args.mode != "batch":
        raise UsageError(
            f"--stats applies to --mode batch only (got --mode {args.mode}); drop --stats"
        )
    if args.by and (args.mode != "batch" or args.stats is not None):
        raise UsageError("--by applies to --mode batch without --stats; drop --by")
    _check_target(args.target)
    if cs.uses_dask(args):
        print(cs.dask_normalize(args))
        return EXIT_OK
    start = time.perf_counter()
    source = cs.open_input(args)
    with cs.reporting_skips(source, args.input):
        columns = cs.resolve_columns(args, source, args.mode)
        if cs.is_dataset(args.input) and cs.wants_directory(args.output):
            written = cs.normalize_directory(args, source, columns)
            print(f"normalized {len(written)} file{'s' if len(written) != 1 else ''} "
                  f"({args.mode} mode) into {args.output} in "
                  f"{time.perf_counter() - start:.2f} s")
            return EXIT_OK
        result = normalize_file(
            source, args.output, mode=args.mode, columns=columns, stats=args.stats,
            batch_size=args.batch_size, eps=args.eps, target=args.target,
            progress=_show_progress(args), by=args.by, inf=args.inf, **cs.output_options(args),
        )
    seconds = time.perf_counter() - start
    norm = result.normalizer
    print(
        f"normalized {result.rows:,} rows of {len(result.columns)} columns "
        f"({norm.mode} mode, eps={norm.eps:g}, {result.passes} pass"
        f"{'es' if result.passes > 1 else ''}) into {args.output} in {seconds:.2f} s"
    )
    return EXIT_OK


def cmd_inverse(args: argparse.Namespace) -> int:
    """``streamnorm inverse IN OUT [--stats FILE]``."""
    _check_target(args.target)
    start = time.perf_counter()
    result = inverse_file(
        args.input, args.output, stats=args.stats, batch_size=args.batch_size,
        target=args.target, progress=_show_progress(args), **cs.output_options(args),
    )
    seconds = time.perf_counter() - start
    print(
        f"restored {result.rows:,} rows of {len(result.columns)} columns into {args.output} "
        f"in {seconds:.2f} s"
    )
    return EXIT_OK


# --------------------------------------------------------------------------- demo


def demo_table(rows: int, seed: int = 0) -> Iterator[pa.RecordBatch]:
    """Seeded sample data in batches of 65,536 rows: a string id, float32 readings with
    nulls, float64 pressure, a reading 1e9 times its spread from 0, an int32 altitude and a
    4-wide float32 embedding."""
    rng = np.random.default_rng(seed)
    for start in range(0, rows, 65_536):
        n = min(65_536, rows - start)
        temperature = rng.normal(15.0, 8.0, n).astype(np.float32)
        null_temperature = rng.random(n) < 0.02
        embedding = rng.normal(3.0, 2.0, (n, 4)).astype(np.float32)
        yield pa.RecordBatch.from_pydict(
            {
                "station": pa.array(np.char.add("st-", (np.arange(start, start + n) % 97).astype(str))),
                "temperature": pa.array(temperature, mask=null_temperature),
                "pressure": rng.normal(101_325.0, 120.0, n),
                "clock": 1e9 + rng.normal(0.0, 1.0, n),
                "altitude": rng.integers(0, 3_000, n, dtype=np.int32),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(embedding.ravel()), 4),
            }
        )


def _relative_errors(a_path: Path, b_path: Path, names: Sequence[str]) -> dict[str, float]:
    """Per column: max |a - b| / max |a| over two Parquet files, read one column at a time."""
    errors = {}
    for name in names:
        a = pq.read_table(a_path, columns=[name]).column(0).to_numpy().astype(np.float64)
        b = pq.read_table(b_path, columns=[name]).column(0).to_numpy().astype(np.float64)
        valid = ~np.isnan(a)
        top = float(np.max(np.abs(a[valid]))) if valid.any() else 0.0
        diff = float(np.max(np.abs(a[valid] - b[valid]))) if valid.any() else 0.0
        errors[name] = diff / top if top else diff
    return errors


def cmd_demo(args: argparse.Namespace) -> int:
    """``streamnorm demo [--rows N] [--dir D]``: generate data, then stats/normalize/inverse."""
    directory = Path(args.dir)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory}: exists and is not a directory; choose another --dir")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{directory}: cannot create it ({exc.strerror}); choose another --dir")
    progress = _show_progress(args)
    data = directory / "demo.parquet"
    schema = next(demo_table(1)).schema
    with io.atomic_path(data) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd",
                              write_page_checksum=True) as writer:
            for batch in demo_table(args.rows):
                writer.write_batch(batch)
    size = data.stat().st_size / 1e6
    print(f"[1/5] generated {data}: {args.rows:,} rows, {len(schema)} columns "
          f"({', '.join(f'{f.name}: {f.type}' for f in schema)}), {size:.1f} MB\n")

    print(f"[2/5] $ streamnorm stats {data}")
    stats, _ = _compute_stats(str(data), None, None, None, progress)
    print(format_table(_summary_table(stats)) + "\n")

    out = directory / "demo-normalized.parquet"
    print(f"[3/5] $ streamnorm normalize {data} {out}")
    start = time.perf_counter()
    result = normalize_file(data, out, progress=progress)
    print(f"normalized {result.rows:,} rows of {len(result.columns)} columns in "
          f"{time.perf_counter() - start:.2f} s; their statistics now:")
    after, _ = _compute_stats(str(out), None, None, None, progress)
    print(format_table(after.summary().select(["column", "count", "mean", "std"])) + "\n")

    restored = directory / "demo-restored.parquet"
    print(f"[4/5] $ streamnorm inverse {out} {restored}")
    inverse_file(out, restored, progress=progress)
    errors = _relative_errors(data, restored, result.columns)
    print(f"restored from the statistics in {out.name}'s metadata; max |restored - original| "
          "/ max |original|: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
          + " (temperature is float32: twice rounded to float32)\n")

    layer = directory / "demo-layer.parquet"
    print(f"[5/5] $ streamnorm normalize {data} {layer} --mode layer -c embedding")
    normalize_file(data, layer, mode="layer", columns=["embedding"], progress=progress)
    first = pq.read_table(layer, columns=["embedding"]).column(0)[0].as_py()
    vector = np.array(first)
    print(f"row 0's embedding is now {np.round(vector, 4).tolist()} "
          f"(mean {vector.mean():.1e}, var {vector.var():.6f}: var/(var+eps) with eps=1e-5)\n")
    print(f"done; the files are in {directory}/")
    return EXIT_OK


# --------------------------------------------------------------------------- main

_COMMANDS = {"stats": cmd_stats, "normalize": cmd_normalize, "inverse": cmd_inverse,
             "inspect": cs.cmd_inspect, "demo": cmd_demo}


def _error(message: str) -> None:
    """Write one line on stderr (newlines inside the message are flattened)."""
    flat = " ".join(message.split())
    print(f"{PROG}: error: {flat}", file=sys.stderr)


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While active (main thread only), SIGTERM raises :class:`Terminated`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _os_error_message(exc: OSError) -> str:
    where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    text = str(exc).strip()
    reason = exc.strerror or (text.splitlines()[0] if text else type(exc).__name__)
    return f"{where}{reason}; check the path, permissions and free space"


def main(argv: list[str] | None = None) -> int:
    """Run the ``streamnorm`` command with ``argv`` (default ``sys.argv[1:]``); the exit code.

    0 on success, 2 on bad usage or input (one line on stderr), 130 on Ctrl-C, 143 on SIGTERM.
    """
    # OMP_WAIT_POLICY and the thread count: streamnorm.config, applied by streamnorm.kernels.
    parser = build_parser()
    try:
        with _sigterm_raises():
            try:
                args = parser.parse_args(argv)
            except SystemExit as exc:  # --help / --version
                return int(exc.code or 0)
            code = _COMMANDS[args.command](args)
            sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
            return code
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except StreamnormError as exc:
        _error(str(exc))
        _settle_readers()
        return EXIT_USAGE
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        _error(_os_error_message(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted; no output was written")
        return EXIT_INTERRUPTED
    except Terminated:
        _error("terminated; no output was written")
        return EXIT_TERMINATED
    except SystemError as exc:
        # A signal landing while numba loads a kernel from its cache reaches us wrapped in
        # SystemError ("returned a result with an exception set"); the cleanup already ran.
        cause = _wrapped_interrupt(exc)
        if cause is None:
            raise
        terminated = isinstance(cause, Terminated)
        _error(f"{'terminated' if terminated else 'interrupted'}; no output was written")
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def _settle_readers() -> None:
    """Free what a failed read left behind before the interpreter exits.

    A reader abandoned mid-file (a malformed CSV row found in the first block) can still have
    a read-ahead task in flight in pyarrow's thread pool; exiting at once sometimes met it and
    aborted the process ("terminate called without an active exception", exit 134, about 1
    run in 5 on the 2-core machine). A collection pass frees the readers still held by the
    error's frames and lets that task end: 0 aborts in 120 runs after it. Only error paths
    pay for it.
    """
    gc.collect()


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush into the closed pipe
    prints no "Exception ignored" message."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _wrapped_interrupt(exc: BaseException) -> BaseException | None:
    """The KeyboardInterrupt or Terminated among the causes of ``exc``, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (KeyboardInterrupt, Terminated)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
