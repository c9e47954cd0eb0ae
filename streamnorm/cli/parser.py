"""The argument parser of the ``streamnorm`` command: its subcommands and their options."""

from __future__ import annotations

import argparse
from typing import NoReturn

from .._version import __version__
from ..normalize import MODES
from .exits import PROG, UsageError
from .options import (
    IN_HELP,
    add_by_option,
    add_column_option,
    add_common_options,
    add_dask_options,
    add_inf_option,
    add_online_options,
    add_output_options,
    add_selection_options,
    feature_range,
    non_negative_float,
    non_negative_int,
    positive_int,
)


def quantile_list(text: str) -> list[float]:
    """An argparse type: comma-separated numbers in [0, 1] (``0.01,0.5,0.99``)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers like 0.25,0.5") from None
    if not all(0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: quantiles are in [0, 1] (0.5 is the median)")
    return values


def percent_pair(text: str) -> tuple[float, float]:
    """An argparse type: ``LO,HI`` percentages with 0 <= LO <= HI <= 100."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not two numbers LO,HI like 25,75") from None
    if not 0.0 <= lo <= hi <= 100.0:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= LO <= HI <= 100")
    return lo, hi


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and do not exit (main() reports them)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _add_reading_options(parser: argparse.ArgumentParser, command: str, *,
                         output: bool = False) -> None:
    """The options ``stats`` and ``normalize`` share, in their --help order: ``--inf``, the
    common ones, source and column selection, (output files,) ``--by`` and Dask."""
    add_inf_option(parser, command)
    add_common_options(parser)
    add_selection_options(parser)
    if output:
        add_output_options(parser)
    add_by_option(parser)
    add_dask_options(parser)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``streamnorm`` command."""
    parser = _Parser(
        prog=PROG,
        description="Streaming normalization statistics and normalization of Arrow IPC and "
        "Parquet files, with bounded memory.",
        epilog="Exit codes: 0 ok, 2 bad usage or input, 130 interrupted, 143 terminated, 141 "
        "the reader of stdout closed the pipe early (`| head`), as for tools killed by SIGPIPE. "
        "IN - reads an Arrow IPC stream from stdin, OUT - writes one to stdout (--format); "
        "messages go to stderr only. A path naming a pipe or device (<(producer), >(consumer), "
        "a FIFO, /dev/stdin, /dev/stdout) is read or written the same way.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    stats = sub.add_parser(
        "stats", help="per-column count, nulls, NaN, mean, std, min, max of a file",
        description="Compute per-column statistics in one streaming pass. Prints a table, or "
        "saves the exact mergeable state with -o (.json, .arrow or .parquet). A bool column "
        "named with -c is counted as 0/1.",
    )
    stats.add_argument("input", metavar="IN", help=IN_HELP)
    stats.add_argument(
        "-o", "--output", metavar="STATS",
        help="save the statistics here (.json, .arrow or .parquet; - or a pipe: the JSON on "
        "the stream, the closing line on stderr)",
    )
    stats.add_argument(
        "--ddof", type=non_negative_int, default=0, metavar="N",
        help="the printed std divides by count - N (default 0, numpy's; 1 for pandas'). A "
        "saved state keeps m2, so it serves any ddof",
    )
    stats.add_argument(
        "--quantiles", type=quantile_list, metavar="Q,...",
        help="also keep a mergeable quantile sketch per column and print these quantiles "
        "(e.g. 0.01,0.5,0.99; rank within 0.5%%); -o saves the sketches",
    )
    _add_reading_options(stats, "stats")

    norm = sub.add_parser(
        "normalize", help="normalize a file into another (batch, layer, rms or minmax mode)",
        description="Normalize IN into OUT (formats by suffix). Batch and minmax modes read IN "
        "twice (fit, then transform) unless --stats is given; layer and rms read it once. OUT is "
        "written to a temporary file and renamed into place only on success. When IN is a "
        "directory or a glob and OUT a directory (existing, or a name without a data suffix), "
        "each input file gets its own output file at the same relative path, so hive "
        "partitions (year=2024/) are kept; with a .parquet/.arrow OUT, everything goes into "
        "that one file. IN - reads an Arrow IPC stream from stdin once (batch mode then needs "
        "--stats); OUT - writes to stdout, each batch flushed as soon as it is computed.",
    )
    norm.add_argument("input", metavar="IN", help=IN_HELP)
    norm.add_argument("output", metavar="OUT",
                      help=".parquet, .arrow/.feather/.ipc or .arrows; a directory; or - "
                      "(stdout, an Arrow IPC stream unless --format)")
    norm.add_argument("--mode", choices=MODES, default="batch", help="default: batch")
    norm.add_argument(
        "--quantile-range", type=percent_pair, metavar="LO,HI",
        help="robust mode: scale by the range between these percentiles (default 25,75)",
    )
    norm.add_argument(
        "--stats", metavar="FILE",
        help="batch / minmax / robust mode: use these statistics (a stats file, or a file "
        "normalized before; - or a pipe: the JSON of `stats -o -`) instead of a fitting "
        "pass; with --online: continue them (resume a "
        "stream from the statistics its -o saved)",
    )
    norm.add_argument(
        "--eps", type=non_negative_float, metavar="E",
        help="added to the variance under the square root (default 0 batch, 1e-5 layer/rms)",
    )
    add_online_options(norm)
    norm.add_argument(
        "--feature-range", type=feature_range, metavar="LO,HI",
        help="minmax mode: map each column's [min, max] onto [LO, HI] (default 0,1)",
    )
    _add_reading_options(norm, "normalize", output=True)

    inverse = sub.add_parser(
        "inverse", help="undo a batch- or minmax-mode normalization",
        description="Restore the original values of a file made by `streamnorm normalize` in "
        "batch or minmax mode, from the statistics recorded in its metadata (or --stats).",
    )
    inverse.add_argument("input", metavar="IN",
                         help="a normalized Arrow IPC or Parquet file, or - (stdin)")
    inverse.add_argument("output", metavar="OUT",
                         help="where to write the restored data (- for stdout)")
    inverse.add_argument("--stats", metavar="FILE", help="statistics to use instead")
    add_common_options(inverse, columns=False)
    add_output_options(inverse)

    inspect = sub.add_parser(
        "inspect", help="print the schema and which columns each mode would normalize",
        description="Print IN's columns and types (reading only its first block) and, for "
        "batch, layer and rms mode, whether each column would be normalized and why not.",
    )
    inspect.add_argument("input", metavar="IN", help=IN_HELP)
    add_column_option(inspect)
    inspect.add_argument(
        "--no-progress", action="store_true",
        help="accepted like the other commands (inspect reads one block and draws no bar)",
    )
    add_selection_options(inspect, reading=False)

    demo = sub.add_parser(
        "demo", help="generate a sample Parquet file and run stats, normalize and inverse on it",
        description="Generate a seeded sample Parquet file, then run stats, normalize (batch "
        "and layer) and inverse on it end to end, printing each step.",
    )
    demo.add_argument("--rows", type=positive_int, default=300_000, metavar="N",
                      help="rows to generate (default 300000)")
    demo.add_argument("--dir", default="streamnorm-demo", metavar="D",
                      help="directory for the files (default ./streamnorm-demo)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser
