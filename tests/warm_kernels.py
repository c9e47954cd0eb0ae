"""Fill numba's cache with the CPU kernels the test suite uses, before its workers start.

``python tests/warm_kernels.py PART`` (PART ``stats`` or ``normalize``) calls the public API
over the column types the tests use, on small batches (the serial kernels) and large ones
(the parallel kernels). The root ``conftest.py`` runs the two parts at once (they compile
mostly different kernels) when pytest-xdist starts workers: otherwise each worker, and each
``streamnorm`` or Dask worker subprocess started before the cache is filled, compiles the
same kernels again (about 1 s per kernel and type, ~200 of them: ~4 CPU-minutes in all).
Only the cache is written; a kernel missed here is compiled where it is first used, as before.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PARTS = ("stats", "normalize")


def _table(n: int) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table({
        "f64": pa.array(rng.normal(3.0, 2.0, n), mask=rng.random(n) < 0.1),
        "dense": rng.normal(size=n),
        "f32": rng.normal(size=n).astype(np.float32),
        "i64": rng.integers(-50, 50, n),
        "i32": rng.integers(-50, 50, n).astype(np.int32),
        "k": rng.integers(0, 4, n),
        "w": rng.integers(0, 3, n).astype(np.float64),
        "vec": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * 8)), 8),
        "vec32": pa.FixedSizeListArray.from_arrays(
            pa.array(rng.normal(size=n * 8).astype(np.float32)), 8),
    })


def _stats(table: pa.Table) -> None:
    import streamnorm as sn

    scalars = ["f64", "dense", "f32", "i64", "i32"]
    for batch_rows in (700, table.num_rows):
        batches = table.to_batches(max_chunksize=batch_rows)
        sn.FeatureStats(scalars).update(batches)
        sn.FeatureStats(scalars).update(table.slice(0, batch_rows))  # the view path
        sn.FeatureStats(scalars, moments=4).update(batches)
        for batch in batches:
            sn.FeatureStats(scalars).update(batch, weights="w")
            sn.FeatureStats(scalars, moments=4).update(batch, weights="w")
        sn.FeatureStats(scalars, by="k").update(batches)
        sn.FeatureStats(scalars, inf="skip").update(batches)
        sn.RunningStats(columns=scalars).update(batches[0])


def _normalize(table: pa.Table) -> None:
    import streamnorm as sn
    from streamnorm.cli import main

    scalars = ["f64", "dense", "f32", "i64", "i32"]
    # the row kernels first: by the time this part fits a batch normalizer, the other part
    # has most likely saved the column-moment kernels, and this one loads them
    for rows in (700, table.num_rows):
        part = table.slice(0, rows)
        for columns in (scalars, ["vec"], ["vec32"]):
            sn.row_stats(part.select(columns))
            for mode in ("layer", "rms"):
                sn.Normalizer(mode, columns=columns).transform(part)
    for rows in (700, table.num_rows):
        part = table.slice(0, rows)
        batch = sn.Normalizer(columns=scalars).fit(part)
        batch.inverse_transform(batch.transform(part))
        list(sn.Normalizer(online=True, columns=scalars).transform_batches(part.to_batches()))
        # the quantile sketches here too: the stats part has the most to compile
        sn.FeatureStats(scalars, quantiles=True).update(part.to_batches())
    with tempfile.TemporaryDirectory() as tmp:  # the command's own paths, as subprocesses run it
        src = Path(tmp) / "in.parquet"
        pq.write_table(table, src, row_group_size=700)
        out, back = str(Path(tmp) / "out.parquet"), str(Path(tmp) / "back.parquet")
        for argv in (["stats", str(src), "--no-progress"],
                     ["normalize", str(src), out, "--no-progress", "--float32"],
                     ["inverse", out, back, "--no-progress"],
                     ["normalize", str(src), out, "--mode", "layer", "-c", "vec", "--no-progress"]):
            assert main(argv) == 0, argv


def main(part: str) -> None:
    """Run one part of the warm-up (see the module docstring)."""
    from streamnorm.kernels import cpu

    table = _table(3 * cpu.CHUNK)
    {"stats": _stats, "normalize": _normalize}[part](table)


if __name__ == "__main__":
    main(sys.argv[1])
