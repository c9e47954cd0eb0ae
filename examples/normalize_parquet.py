"""Generate a Parquet dataset, fit per-feature statistics, normalize it, and invert it.

    python examples/normalize_parquet.py [ROWS] [DIRECTORY]

ROWS defaults to 1,000,000 (or $STREAMNORM_EXAMPLE_ROWS); DIRECTORY to a temporary one.
Everything streams one row group at a time, so memory does not grow with ROWS.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import streamnorm as sn
from streamnorm.cli import format_table


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` rows of sensor-like data in row groups of 100k rows."""
    rng = np.random.default_rng(seed)
    schema = pa.schema([("sensor", pa.string()), ("temperature", pa.float32()),
                        ("pressure", pa.float64()), ("count", pa.int64())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            writer.write_table(pa.table({
                "sensor": pa.array([f"s{k % 10}" for k in range(start, start + n)]),
                "temperature": pa.array(rng.normal(21.0, 4.0, n).astype(np.float32),
                                        mask=rng.random(n) < 0.01),
                "pressure": 101_325.0 + rng.normal(0.0, 50.0, n),
                "count": rng.poisson(30, n),
            }, schema=schema))


def main(rows: int, directory: Path) -> None:
    raw = directory / "raw.parquet"
    generate(raw, rows)

    # 1. fit: one streaming pass; the statistics can be saved and used elsewhere
    norm = sn.Normalizer(mode="batch").fit(raw)
    norm.stats.save(directory / "stats.json")
    print(format_table(norm.stats.summary().select(["column", "count", "null_count", "mean", "std"])))

    # 2. transform: a second streaming pass, written atomically
    result = sn.normalize_file(raw, directory / "normalized.parquet",
                               stats=directory / "stats.json")
    print(f"normalized {result.rows} rows of {result.columns}")
    check = sn.feature_stats(directory / "normalized.parquet")
    print("means after:", np.round(check.mean, 12), "stds after:", np.round(check.std(), 12))

    # 3. inverse: the statistics travel in the normalized file's metadata
    sn.inverse_file(directory / "normalized.parquet", directory / "restored.parquet")
    original = pq.read_table(raw, columns=["pressure", "count"])
    restored = pq.read_table(directory / "restored.parquet", columns=["pressure", "count"])
    for name in ("pressure", "count"):
        a = original[name].to_numpy().astype(np.float64)
        err = np.max(np.abs(restored[name].to_numpy() - a) / np.abs(a).max())
        print(f"{name}: max relative round-trip error {err:.1e}")
        assert err < 1e-12


if __name__ == "__main__":
    n_rows = int(sys.argv[1]) if len(sys.argv) > 1 else int(
        os.environ.get("STREAMNORM_EXAMPLE_ROWS", 1_000_000)
    )
    if len(sys.argv) > 2:
        main(n_rows, Path(sys.argv[2]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(n_rows, Path(tmp))
