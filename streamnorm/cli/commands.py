"""The commands ``stats``, ``normalize``, ``inverse`` and ``inspect``: parsed arguments in,
files and lines of text out, an exit code back."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from .. import selection
from ..arrow.dataset import DataSource, open_source
from ..arrow.formats import IPC_SUFFIXES, PARQUET_SUFFIXES
from ..arrow.locations import is_uri
from ..arrow.stdio import is_stream_location
from ..errors import InputError
from ..kernels import backend
from ..normalize import Normalizer, check_batch_columns
from ..normalize.plan import PER_FEATURE_MODES
from ..pipeline import (
    check_destination,
    count_rows,
    inverse_file,
    normalize_dataset,
    normalize_file,
)
from ..progress import progress_bar
from ..state.features import FeatureStats
from .cluster import dask_normalize, dask_stats, uses_dask
from .exits import EXIT_OK, UsageError
from .options import (
    check_stdio_usage,
    given_mode_options,
    is_dataset,
    message_stream,
    open_input,
    output_options,
    reporting_skips,
    resolve_columns,
    show_progress,
    source_schema,
    wants_directory,
)
from .tables import format_table, mode_text, summary_table

_STATS_SUFFIXES = (".json", *IPC_SUFFIXES, *PARQUET_SUFFIXES)


def check_target(target: str | None) -> None:
    """An unknown or unavailable ``--target`` is an :class:`InputError` (exit code 2)."""
    try:
        backend(target)
    except (RuntimeError, ValueError) as exc:
        raise InputError(str(exc)) from None


def _check_stats_output(src: str, dst: str) -> None:
    if is_stream_location(dst):  # -, a pipe or a device: the JSON state, as a stream
        return
    if Path(dst).suffix.lower() not in _STATS_SUFFIXES:
        raise InputError(
            f"{dst}: unknown statistics format {Path(dst).suffix or '(no suffix)'}; use .json, "
            ".arrow or .parquet"
        )
    check_destination(src, dst, check_format=False)


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


def compute_stats(
    path: object, columns: list[str] | None, batch_size: int | None, target: str | None,
    progress: bool, by: list[str] | None = None, inf: str = "keep", quantiles: bool = False,
) -> tuple[FeatureStats, int]:
    """Stream a source (a path, or a DataSource) once into FeatureStats; (stats, rows read).

    ``inf`` is ``stats --inf``: ``keep`` counts ±inf as values, ``skip`` leaves them out.
    ``quantiles``: keep the quantile sketches too (``stats --quantiles``).
    """
    if columns is not None:
        check_batch_columns(source_schema(path), columns, bools=True)  # counted as 0/1
    bar = progress_bar("stats", count_rows(path) if progress else None, progress)
    rows = _RowCounter(bar)
    try:
        if quantiles and by:
            raise UsageError("--quantiles is not supported with --by yet; drop one of them")
        norm = Normalizer("robust" if quantiles else "batch", columns=columns, target=target,
                          by=by, inf="skip" if inf == "skip" else "error")
        norm.fit(path, batch_size=batch_size, progress=rows,  # type: ignore[arg-type]
                 check_finite=False)
    finally:
        bar.close()
    stats = norm.stats
    assert stats is not None
    return stats, rows.rows


def cmd_stats(args: argparse.Namespace) -> int:
    """``streamnorm stats IN [-c COL ...] [-o STATS]``."""
    check_target(args.target)
    check_stdio_usage(args)
    if args.output:
        _check_stats_output(args.input, args.output)
    if uses_dask(args):
        stats, files = dask_stats(args)
        over = f"{files} file{'s' if files != 1 else ''}"
    else:
        source = open_input(args)
        with reporting_skips(source, args.input):
            columns = resolve_columns(args, source, "batch")
            stats, rows = compute_stats(
                source, columns, args.batch_size, args.target, show_progress(args), by=args.by,
                inf=args.inf, quantiles=args.quantiles is not None,
            )
        over = f"{rows:,} rows"
    if args.output:
        stats.save(args.output)
        shown = "stdout" if args.output == "-" else args.output
        print(f"wrote statistics of {len(stats.columns)} columns over {over} to {shown}",
              file=message_stream(args))
    else:
        print(format_table(summary_table(stats, args.ddof, args.quantiles)))
    return EXIT_OK


def _normalize_directory(args: argparse.Namespace, source: object,
                         columns: list[str] | None) -> list[str]:
    """``normalize DIR OUT_DIR``: one output file per input file, the layout mirrored."""
    if args.by:
        raise UsageError("--by needs a single output file: give OUT a .parquet or .arrow name")
    output = args.output
    if not is_uri(output) and os.path.exists(output) and not os.path.isdir(output):
        raise InputError(f"{output}: exists and is not a directory; give a directory for the "
                         "outputs of a directory or glob input")
    dataset = source if isinstance(source, DataSource) else open_source(source)
    return normalize_dataset(
        dataset, output, mode=args.mode, columns=columns, stats=args.stats,
        batch_size=args.batch_size, eps=args.eps, target=args.target, inf=args.inf,
        feature_range=args.feature_range, quantile_range=args.quantile_range,
        **output_options(args),
    )


def cmd_normalize(args: argparse.Namespace) -> int:
    """``streamnorm normalize IN OUT [--mode M] [-c COL ...] [--stats FILE] [--eps E] ...``."""
    if args.stats is not None and args.mode not in PER_FEATURE_MODES:
        raise UsageError(
            f"--stats applies to --mode batch only, or minmax or robust (got --mode "
            f"{args.mode}); drop "
            "--stats"
        )
    if args.quantile_range is not None and args.mode != "robust":
        raise UsageError(f"--quantile-range applies to --mode robust only (got --mode "
                         f"{args.mode}); drop --quantile-range or add --mode robust")
    if args.feature_range is not None and args.mode != "minmax":
        raise UsageError(f"--feature-range applies to --mode minmax only (got --mode "
                         f"{args.mode}); drop --feature-range or add --mode minmax")
    if args.by and (args.mode != "batch" or args.stats is not None):
        raise UsageError("--by applies to --mode batch without --stats; drop --by")
    check_online_args(args)
    check_target(args.target)
    check_stdio_usage(args)
    if uses_dask(args):
        print(dask_normalize(args))
        return EXIT_OK
    start = time.perf_counter()
    source = open_input(args)
    with reporting_skips(source, args.input):
        columns = resolve_columns(args, source, args.mode)
        if is_dataset(args.input) and wants_directory(args.output):
            written = _normalize_directory(args, source, columns)
            how = mode_text(args.mode, given_mode_options(args))
            print(f"normalized {len(written)} file{'s' if len(written) != 1 else ''} "
                  f"({how}) into {args.output} in "
                  f"{time.perf_counter() - start:.2f} s")
            return EXIT_OK
        result = normalize_file(
            source, args.output, mode=args.mode, columns=columns, stats=args.stats,
            batch_size=args.batch_size, eps=args.eps, target=args.target,
            progress=show_progress(args), by=args.by, inf=args.inf, format=args.format,
            feature_range=args.feature_range, quantile_range=args.quantile_range,
            **output_options(args), **online_options(args),
        )
    seconds = time.perf_counter() - start
    norm = result.normalizer
    how = mode_text(norm.mode, norm.options, norm.eps, norm.online)
    print(
        f"normalized {result.rows:,} rows of {len(result.columns)} columns "
        f"({how}, {result.passes} pass"
        f"{'es' if result.passes > 1 else ''}) into {args.output} in {seconds:.2f} s",
        file=message_stream(args),
    )
    if args.save_stats:
        print(f"wrote the final statistics to {args.save_stats}", file=message_stream(args))
    return EXIT_OK


def check_online_args(args: argparse.Namespace) -> None:
    """``--online`` and its options: a :class:`UsageError` for what does not go together."""
    if not args.online:
        for flag, given in (("--momentum", args.momentum is not None),
                            ("--warmup", args.warmup != 0), ("-o/--save-stats", args.save_stats)):
            if given:
                raise UsageError(f"{flag} applies to --online normalization; add --online or "
                                 f"drop {flag}")
        return
    if args.mode != "batch":
        raise UsageError(f"--online needs --mode batch: --mode {args.mode} normalizes each row "
                         "with its own statistics and reads IN once already; drop --online")
    for flag, given in (("--by", args.by), ("--dask/--scheduler", uses_dask(args))):
        if given:
            raise UsageError(f"--online does not go with {flag}; drop one of them")
    if args.momentum is not None and args.inf == "skip":
        raise UsageError("--inf skip does not go with --momentum: the running statistics take "
                         "±inf as values; drop one of them")
    if is_dataset(args.input) and wants_directory(args.output):
        raise UsageError("--online writes one output file: give OUT a .parquet or .arrow name")
    if args.save_stats:
        if os.path.abspath(args.save_stats) == os.path.abspath(args.output):
            raise UsageError("-o/--save-stats names OUT itself; give the statistics another file")
        _check_stats_output(args.input, args.save_stats)


def online_options(args: argparse.Namespace) -> dict[str, object]:
    """The ``normalize_file`` keywords of ``--online`` (none without it)."""
    if not args.online:
        return {}
    return {"online": True, "momentum": args.momentum, "warmup": args.warmup,
            "save_stats": args.save_stats}


def cmd_inverse(args: argparse.Namespace) -> int:
    """``streamnorm inverse IN OUT [--stats FILE]``."""
    check_target(args.target)
    check_stdio_usage(args)
    start = time.perf_counter()
    result = inverse_file(
        args.input, args.output, stats=args.stats, batch_size=args.batch_size,
        target=args.target, progress=show_progress(args), format=args.format,
        **output_options(args),
    )
    seconds = time.perf_counter() - start
    print(
        f"restored {result.rows:,} rows of {len(result.columns)} columns into {args.output} "
        f"in {seconds:.2f} s", file=message_stream(args),
    )
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    """``streamnorm inspect IN [-c COL ...] [--exclude COL ...] [--schema ...]``."""
    source = open_input(args)
    print(selection.inspect(source, args.columns, args.exclude))
    return EXIT_OK
