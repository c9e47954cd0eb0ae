"""``streamnorm demo``: generate a seeded sample file, then run stats, normalize and inverse on
it end to end, printing each step."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..arrow.sinks import atomic_path
from ..errors import InputError
from ..pipeline import inverse_file, normalize_file
from .commands import compute_stats
from .exits import EXIT_OK
from .options import show_progress
from .tables import format_table, summary_table


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
    progress = show_progress(args)
    data = directory / "demo.parquet"
    schema = next(demo_table(1)).schema
    with atomic_path(data) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd",
                              write_page_checksum=True) as writer:
            for batch in demo_table(args.rows):
                writer.write_batch(batch)
    size = data.stat().st_size / 1e6
    print(f"[1/5] generated {data}: {args.rows:,} rows, {len(schema)} columns "
          f"({', '.join(f'{f.name}: {f.type}' for f in schema)}), {size:.1f} MB\n")

    print(f"[2/5] $ streamnorm stats {data}")
    stats, _ = compute_stats(str(data), None, None, None, progress)
    print(format_table(summary_table(stats)) + "\n")

    out = directory / "demo-normalized.parquet"
    print(f"[3/5] $ streamnorm normalize {data} {out}")
    start = time.perf_counter()
    result = normalize_file(data, out, progress=progress)
    print(f"normalized {result.rows:,} rows of {len(result.columns)} columns in "
          f"{time.perf_counter() - start:.2f} s; their statistics now:")
    after, _ = compute_stats(str(out), None, None, None, progress)
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
