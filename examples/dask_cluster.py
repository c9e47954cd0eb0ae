"""Fit normalization statistics on a Dask cluster and normalize a directory of Parquet files.

Writes ``ROWS`` rows of random offset data (16 float64 columns, 128 bytes a row) split over
``--files`` Parquet files into a temporary directory, then:

1. fits the statistics single-process (``streamnorm.feature_stats``, file after file, merged),
2. fits them on a Dask cluster (``streamnorm.dask.feature_stats``: one task per file, partial
   states tree-reduced with ``FeatureStats.merge``) and checks both agree,
3. normalizes every file on the cluster (``streamnorm.dask.normalize_files``),

and prints the wall time of each step. The cluster is a ``distributed.LocalCluster`` unless
``--scheduler ADDRESS`` names a running one (its workers must see the same filesystem: pass
``--dir`` on a shared disk then).

    python examples/dask_cluster.py                 # 400k rows, ~51 MB, a few seconds
    python examples/dask_cluster.py 16000000 --files 16 --workers 2     # ~2 GB
    python examples/dask_cluster.py --scheduler tcp://10.0.0.5:8786 --dir /shared/tmp

Needs the extra: ``pip install 'streamnorm[dask]'``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import streamnorm as sn
import streamnorm.dask as snd

N_COLUMNS = 16
ROW_GROUP = 128 * 1024


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of this example."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=int, nargs="?", default=400_000,
                        help="rows in all (default 400000, ~51 MB)")
    parser.add_argument("--files", type=int, default=8, help="number of Parquet files")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask scheduler")
    parser.add_argument("--dir", type=Path, help="where to write the data (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    return parser.parse_args(argv)


def write_files(directory: Path, total_rows: int, n_files: int, seed: int = 0) -> list[Path]:
    """``n_files`` Parquet files of float64 columns with mean 1e6·j and spread j+1 (uncompressed,
    so the size on disk is the size of the data)."""
    rows = max(1, total_rows // n_files)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n_files):
        table = pa.table(
            {f"c{j:02d}": rng.normal(1e6 * j, j + 1.0, rows) for j in range(N_COLUMNS)}
        )
        path = directory / f"part-{i:03d}.parquet"
        pq.write_table(
            table, path, row_group_size=ROW_GROUP, compression="none", use_dictionary=False
        )
        paths.append(path)
    return paths


def fit_single_process(paths: list[Path]) -> sn.FeatureStats:
    """The reference: every file streamed in this process, one state per file, merged."""
    stats = sn.FeatureStats()
    for path in paths:
        stats.merge(sn.feature_stats(path))
    return stats


def warm_up() -> None:
    """Load (or compile) the kernels for float64 columns, so that only steady state is timed."""
    sn.feature_stats(pa.table({"x": np.arange(10.0)}))


def timed(label: str, func, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Run ``func`` and print its wall time."""
    start = time.perf_counter()
    result = func(*args, **kwargs)
    print(f"{label:<34} {time.perf_counter() - start:8.2f} s")
    return result


def max_relative_difference(a: sn.FeatureStats, b: sn.FeatureStats) -> float:
    """Largest relative difference of mean and variance between two fits."""
    diffs = [np.abs(a.mean - b.mean) / np.abs(b.mean).clip(1e-300),
             np.abs(a.var() - b.var()) / b.var()]
    return float(np.max(np.concatenate(diffs)))


def run(args: argparse.Namespace, directory: Path) -> None:
    """Generate the data, fit both ways, compare, normalize on the cluster."""
    from distributed import Client, LocalCluster

    paths = timed("write data", write_files, directory, args.rows, args.files)
    size = sum(p.stat().st_size for p in paths) / 1e9
    print(f"{len(paths)} files, {size:.2f} GB in {directory}")
    if args.scheduler:
        client = Client(args.scheduler)
        cluster = None
    else:
        # streamnorm.dask runs each task on one numba thread (task_threads=1): the workers
        # are the parallelism, so give each worker one thread per core it should use.
        # silence_logs: Dask logs shutdown races it recovers from (a worker heartbeat that
        # meets the closed scheduler) as errors with tracebacks; failed tasks still raise.
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.CRITICAL)
        client = Client(cluster)
    try:
        client.wait_for_workers(1)
        warm_up()
        client.run(warm_up)  # on every worker
        single = timed("fit, single process", fit_single_process, paths)
        on_cluster = timed(f"fit, dask ({len(client.nthreads())} workers)",
                           snd.feature_stats, [str(p) for p in paths])
        difference = max_relative_difference(on_cluster, single)
        print(f"max relative difference of mean/var: {difference:.1e}")
        outputs = timed("normalize_files, dask", snd.normalize_files, [str(p) for p in paths],
                        directory / "normalized", stats=on_cluster)
        print(f"wrote {len(outputs)} files to {directory / 'normalized'}")
        print(on_cluster.summary().slice(0, 4).to_pandas().to_string(index=False))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python examples/dask_cluster.py [ROWS] [--files N] …``."""
    args = parse_args(argv)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="streamnorm-dask-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        run(args, directory)
    finally:
        if not args.keep:
            shutil.rmtree(directory / "normalized", ignore_errors=True)
            for path in directory.glob("part-*.parquet"):
                path.unlink()
            if args.dir is None:
                shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
