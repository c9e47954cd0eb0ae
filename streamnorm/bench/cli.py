"""The command line of ``python -m streamnorm.bench``: sizes, the machine header, the targets
in turn, the goals, and ``--json``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

#: Sizes used by ``--quick`` (a smoke test; its timings mean nothing).
QUICK = {"rows": 20_000, "cols": 4, "ln_rows": 2_000, "ln_width": 32, "file_rows": 20_000,
         "batch_rows": 4_096, "repeat": 1, "small_cols": 32, "small_calls": 50,
         "wide_rows": 40, "wide_cols": 60, "wide_groups": 4, "group_rows": 20_000,
         "group_keys": 2_000, "group_cols": 2, "bandwidth_mb": 16}
FULL = {"rows": 2_000_000, "cols": 32, "ln_rows": 1_000_000, "ln_width": 256,
        "file_rows": 4_000_000, "batch_rows": 65_536, "repeat": 7, "small_cols": 32,
        "small_calls": 2_000, "wide_rows": 200, "wide_cols": 1_000, "wide_groups": 20,
        "group_rows": 1_000_000, "group_keys": 100_000, "group_cols": 4, "bandwidth_mb": 512}
TARGETS = ("stats", "layer", "file", "small", "wide", "grouped", "quantiles")


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(
        prog="python -m streamnorm.bench",
        description="Time streamnorm against polars, pyarrow.compute, duckdb, scikit-learn, "
                    "numpy and torch on the same data (peers are optional), print the machine "
                    "and mark each goal of issue 14 HIT or MISS.",
    )
    made.add_argument("--quick", action="store_true",
                      help="tiny sizes for a smoke test (timings meaningless)")
    for key in FULL:
        if key not in ("repeat",):
            made.add_argument("--" + key.replace("_", "-"), type=int, help=f"size: {key}")
    made.add_argument("--repeat", type=int, help="timed rounds; the best is kept")
    made.add_argument("--threads", type=int,
                      help="threads for streamnorm and every peer (default: all cores)")
    made.add_argument("--targets", default=",".join(TARGETS),
                      help="comma-separated subset of: " + ", ".join(TARGETS))
    made.add_argument("--workdir", default=None,
                      help="directory for the file targets' Parquet files (default: temp)")
    made.add_argument("--json", dest="json_path", default=None,
                      help="also write the machine, timings and goals as JSON to this path")
    made.add_argument("--gpu", action="store_true",
                      help="run the CUDA tests on the GPU and time the CUDA kernels against "
                           "the device bandwidth and torch (fails at once without a GPU)")
    return made


def _run_targets(targets: set[str], sizes: dict[str, int], threads: int, workdir: str,
                 out: Any) -> dict[str, Any]:
    from .extra import bench_grouped, bench_small, bench_wide
    from .files import bench_file
    from .targets import bench_layer, bench_quantiles, bench_stats

    results: dict[str, Any] = {}
    repeat = sizes["repeat"]
    if "stats" in targets:
        results.update(bench_stats(sizes["rows"], sizes["cols"], sizes["batch_rows"], repeat,
                                   threads, out))
    if "layer" in targets:
        results.update(bench_layer(sizes["ln_rows"], sizes["ln_width"], repeat, threads, out))
    if "file" in targets:
        results.update(bench_file(sizes["file_rows"], sizes["cols"], repeat, threads, workdir,
                                  out))
    if "small" in targets:
        results.update(bench_small(sizes["small_cols"], sizes["small_calls"], out))
    if "wide" in targets:
        results.update(bench_wide(sizes["wide_rows"], sizes["wide_cols"], sizes["wide_groups"],
                                  max(1, repeat // 7), workdir, out))
    if "grouped" in targets:
        results.update(bench_grouped(sizes["group_rows"], sizes["group_keys"],
                                     sizes["group_cols"], max(1, repeat // 2), out))
    if "quantiles" in targets:
        results.update(bench_quantiles(sizes["rows"], sizes["cols"], repeat, out))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = sys.stdout
    if args.gpu:
        from .gpu import main_gpu

        return main_gpu(args.quick, args.repeat, out)
    sizes = dict(QUICK if args.quick else FULL)
    for key in sizes:
        value = getattr(args, key, None)
        if value is not None:
            sizes[key] = value
    targets = {t.strip() for t in args.targets.split(",") if t.strip()}
    unknown = targets - set(TARGETS)
    if unknown:
        print(f"error: unknown target(s) {sorted(unknown)}: use {', '.join(TARGETS)}",
              file=sys.stderr)
        return 2
    import numba

    threads = args.threads or numba.config.NUMBA_NUM_THREADS
    # Peers read their thread count at import: set it before any of them is imported.
    os.environ.setdefault("POLARS_MAX_THREADS", str(threads))
    from ..config import apply_thread_count
    from .machine import describe, print_header
    from .report import print_goals

    try:
        apply_thread_count(threads)
    except ValueError as exc:
        print(f"error: --threads: {exc}", file=sys.stderr)
        return 2
    machine = describe(threads, sizes["bandwidth_mb"] * 2**20)
    print_header(machine, out)
    print(f"streamnorm peer comparison: {threads} thread(s), numba {numba.__version__}, "
          f"sizes {sizes}", file=out)
    results: dict[str, Any] = {"machine": machine, "threads": threads, "sizes": sizes}
    if args.workdir:
        results.update(_run_targets(targets, sizes, threads, args.workdir, out))
    else:
        with tempfile.TemporaryDirectory(prefix="streamnorm-bench-") as workdir:
            results.update(_run_targets(targets, sizes, threads, workdir, out))
    results["goals"] = [list(line) for line in print_goals(results, out)]
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0
