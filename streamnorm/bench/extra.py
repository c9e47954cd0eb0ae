"""Targets of issue 14 beyond the main job: small batches (a 1-row update against
scikit-learn's ``partial_fit``), a wide table (``inverse`` against ``normalize`` of a
1000-column file) and grouped statistics (``FeatureStats(by=...)`` against polars
``group_by``)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .common import Case, best_of, interleaved_us, print_table, skip


def bench_small(cols: int, calls: int, out: Any) -> dict[str, dict[str, float]]:
    """µs of one update of a 1-row batch (a ``pa.Table``; a ``pa.RecordBatch`` for
    comparison): plain, weighted, ``moments=4``, against scikit-learn's ``partial_fit`` of
    one row, all timed in interleaved rounds (:func:`.common.interleaved_us`). ``small_us``
    holds the best single call (the goals' figure), ``small_median_us`` the medians."""
    import pyarrow as pa

    import streamnorm as sn

    rng = np.random.default_rng(3)
    row = rng.normal(1e6, 3.0, (1, cols))
    batch = pa.table({f"c{j}": row[:, j] for j in range(cols)})
    weighted = batch.append_column("w", pa.array([2.0]))
    record = pa.record_batch({f"c{j}": row[:, j] for j in range(cols)})
    weighted_record = pa.record_batch({**{f"c{j}": row[:, j] for j in range(cols)}, "w": [2.0]})
    plain, wstats, m4 = sn.FeatureStats(), sn.FeatureStats(), sn.FeatureStats(moments=4)
    plain_r, wstats_r, m4_r = sn.FeatureStats(), sn.FeatureStats(), sn.FeatureStats(moments=4)
    fns = {
        "streamnorm update": lambda: plain.update(batch),
        "streamnorm update, weights": lambda: wstats.update(weighted, weights="w"),
        "streamnorm update, moments=4": lambda: m4.update(batch),
        "streamnorm update (RecordBatch)": lambda: plain_r.update(record),
        "streamnorm update, weights (RecordBatch)":
            lambda: wstats_r.update(weighted_record, weights="w"),
        "streamnorm update, moments=4 (RecordBatch)": lambda: m4_r.update(record),
    }
    try:
        from sklearn.preprocessing import StandardScaler

        scaler, wscaler = StandardScaler(), StandardScaler()
        weight = np.array([2.0])
        fns["sklearn partial_fit"] = lambda: scaler.partial_fit(row)
        fns["sklearn partial_fit, sample_weight"] = lambda: wscaler.partial_fit(
            row, sample_weight=weight)
    except ImportError as exc:
        skip("scikit-learn (small batches)", exc, out)
    best, median = interleaved_us(fns, calls)
    print(f"\n## update of a 1-row, {cols}-column batch (up to {calls:,} calls each, in "
          "interleaved rounds of 25; 30 s at most)", file=out)
    print(f"{'implementation':<58} {'best µs':>9} {'median µs':>10}", file=out)
    for name in fns:
        print(f"{name:<58} {best[name]:9.1f} {median[name]:10.1f}", file=out)
    return {"small_us": best, "small_median_us": median}


def _wide_file(path: str, rows: int, cols: int, row_groups: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(4)
    table = pa.table({f"c{j}": rng.normal(10.0, 2.0, rows) for j in range(cols)})
    pq.write_table(table, path, row_group_size=max(1, rows // row_groups))


def bench_wide(rows: int, cols: int, row_groups: int, repeat: int, workdir: str,
               out: Any) -> dict[str, dict[str, float]]:
    """``inverse_file`` against ``normalize_file`` of a wide Parquet file (the library)."""
    import streamnorm as sn

    src = os.path.join(workdir, "wide_src.parquet")
    normalized = os.path.join(workdir, "wide_norm.parquet")
    restored = os.path.join(workdir, "wide_back.parquet")
    _wide_file(src, rows, cols, row_groups)
    sn.normalize_file(src, normalized)
    sn.inverse_file(normalized, restored)  # warm (compiles), once: inverse can be slow
    nbytes = rows * cols * 8
    cases = [Case("streamnorm normalize_file", lambda: sn.normalize_file(src, normalized),
                  nbytes, ours=True),
             Case("streamnorm inverse_file", lambda: sn.inverse_file(normalized, restored),
                  nbytes)]
    best_of(cases, repeat, warm=False)
    for path in (src, normalized, restored):
        os.remove(path)
    table = print_table(f"wide file: {rows:,} rows x {cols:,} float64 columns, {row_groups} "
                        "row groups (ratio = inverse / normalize)", cases, out)
    return {"wide": table}


def bench_grouped(rows: int, keys: int, cols: int, repeat: int,
                  out: Any) -> dict[str, dict[str, float]]:
    """``FeatureStats(by="k")`` against polars ``group_by(k).agg(mean, var, min, max)``."""
    import pyarrow as pa

    import streamnorm as sn

    rng = np.random.default_rng(5)
    columns = {"k": rng.integers(0, keys, rows)}
    columns.update({f"c{j}": rng.normal(1e6, 3.0, rows) for j in range(cols)})
    table = pa.table(columns)
    names = [f"c{j}" for j in range(cols)]
    nbytes = rows * (cols + 1) * 8
    cases = [Case("streamnorm FeatureStats(by='k').update",
                  lambda: sn.FeatureStats(names, by="k").update(table), nbytes, ours=True)]
    try:
        import polars as pl

        frame = pl.from_arrow(table)
        aggs = [e for c in names for e in (pl.col(c).mean().alias(c + "_mean"),
                                           pl.col(c).var(ddof=0).alias(c + "_var"),
                                           pl.col(c).min().alias(c + "_min"),
                                           pl.col(c).max().alias(c + "_max"))]
        cases.append(Case("polars group_by(k).agg(mean, var, min, max)",
                          lambda: frame.group_by("k").agg(aggs), nbytes))
    except ImportError as exc:
        skip("polars (grouped)", exc, out)
    best_of(cases, repeat)
    table_out = print_table(f"grouped statistics, {rows:,} rows, {keys:,} keys, {cols} float64 "
                            "column(s)", cases, out)
    return {"grouped": table_out}
