"""In-memory targets: per-feature statistics (one table, and 64k-row batches against
scikit-learn) and per-row LayerNorm (a vector column and separate columns, against torch)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import Case, best_of, print_table, skip
from .machine import ceiling_kernel
from .report import CEILING, SKLEARN_BATCHES


def bench_stats(rows: int, cols: int, batch_rows: int, repeat: int, threads: int,
                out: Any) -> dict[str, dict[str, float]]:
    import pyarrow as pa

    import streamnorm as sn

    rng = np.random.default_rng(0)
    data = [rng.normal(1e6, 3.0, rows) for _ in range(cols)]
    names = [f"c{j}" for j in range(cols)]
    table = pa.table(dict(zip(names, data)))
    nbytes = rows * cols * 8
    cases = [Case("streamnorm FeatureStats.update", lambda: sn.FeatureStats().update(table),
                  nbytes, ours=True, note="count/mean/var/min/max")]
    ceiling = ceiling_kernel()
    cases.append(Case(CEILING,
                      lambda: [ceiling(c) for c in data], nbytes))
    try:
        import polars as pl

        frame = pl.from_arrow(table)
        cases.append(Case("polars mean+var", lambda: frame.select(
            pl.all().mean().name.suffix("_mean"), pl.all().var(ddof=0).name.suffix("_var")),
            nbytes))
        cases.append(Case("polars mean+var+min+max", lambda: frame.select(
            pl.all().mean().name.suffix("_mean"), pl.all().var(ddof=0).name.suffix("_var"),
            pl.all().min().name.suffix("_min"), pl.all().max().name.suffix("_max")), nbytes))
    except ImportError as exc:
        skip("polars", exc, out)
    try:
        import pyarrow.compute as pc

        def arrow_compute() -> None:
            for column in table.columns:
                pc.mean(column), pc.variance(column, ddof=0), pc.min_max(column)

        cases.append(Case("pyarrow.compute mean+variance+min_max", arrow_compute, nbytes))
    except ImportError as exc:  # pragma: no cover - pyarrow is a dependency
        skip("pyarrow.compute", exc, out)
    try:
        import duckdb

        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")
        con.register("t", table)
        query = "SELECT " + ", ".join(
            f"avg({n}), var_pop({n}), min({n}), max({n})" for n in names) + " FROM t"
        cases.append(Case("duckdb avg+var_pop+min+max", lambda: con.execute(query).fetchall(),
                          nbytes))
    except ImportError as exc:
        skip("duckdb", exc, out)

    def numpy_stats() -> None:
        for c in data:
            c.mean(), c.var(), c.min(), c.max()

    cases.append(Case("numpy mean+var+min+max", numpy_stats, nbytes, note="1 thread"))
    best_of(cases, repeat)
    results = {"stats": print_table(
        f"per-feature statistics, {rows:,}x{cols} float64 Arrow table", cases, out)}

    # the same data in batches of batch_rows rows, against scikit-learn's partial_fit
    batches = table.to_batches(max_chunksize=batch_rows)

    def ours_batches() -> None:
        stats = sn.FeatureStats()
        for batch in batches:
            stats.update(batch)

    cases = [Case(f"streamnorm, {batch_rows:,}-row batches", ours_batches, nbytes, ours=True),
             Case(CEILING, lambda: [ceiling(c) for c in data], nbytes)]  # the bound
    try:
        from sklearn.preprocessing import StandardScaler

        matrix = np.column_stack(data)
        blocks = [matrix[i : i + batch_rows] for i in range(0, rows, batch_rows)]

        def sklearn_fit() -> None:
            scaler = StandardScaler()
            for block in blocks:
                scaler.partial_fit(block)

        cases.append(Case(SKLEARN_BATCHES, sklearn_fit, nbytes))
    except ImportError as exc:
        skip("scikit-learn", exc, out)
    best_of(cases, max(1, repeat // 2))
    results["batches"] = print_table(
        f"per-feature statistics over {batch_rows:,}-row batches", cases, out)
    return results


def bench_layer(rows: int, width: int, repeat: int, threads: int,
                out: Any) -> dict[str, dict[str, float]]:
    import pyarrow as pa

    import streamnorm as sn

    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((rows, width), dtype=np.float32)
    vector_table = pa.table({"x": pa.FixedSizeListArray.from_arrays(
        pa.array(matrix.reshape(-1)), width)})
    column_table = pa.table({f"f{j}": np.ascontiguousarray(matrix[:, j]) for j in range(width)})
    nbytes = matrix.nbytes
    norm = sn.Normalizer("layer", eps=1e-5)
    cases = [
        Case("streamnorm Normalizer('layer'), FixedSizeList", lambda: norm.transform(vector_table),
             nbytes, ours=True),
        Case(f"streamnorm Normalizer('layer'), {width} columns",
             lambda: norm.transform(column_table), nbytes),
    ]
    try:
        import torch

        torch.set_num_threads(threads)
        tensor = torch.from_numpy(matrix)
        cases.append(Case("torch.nn.functional.layer_norm", lambda: torch.nn.functional.layer_norm(
            tensor, (width,), eps=1e-5), nbytes, note=f"{threads} threads"))
    except ImportError as exc:
        skip("torch (install the CPU build)", exc, out)

    def numpy_layer() -> np.ndarray:
        x = matrix.astype(np.float64)
        mean = x.mean(axis=1, keepdims=True)
        var = x.var(axis=1, keepdims=True)
        return ((x - mean) / np.sqrt(var + 1e-5)).astype(np.float32)

    cases.append(Case("numpy (float64, 1 thread)", numpy_layer, nbytes))
    best_of(cases, max(1, repeat // 2))
    ours_columns = cases[1]
    table = print_table(f"per-row LayerNorm, {rows:,}x{width} float32", cases, out)
    torch_case = next((c for c in cases if c.name.startswith("torch")), None)
    if torch_case is not None:
        print(f"  torch / streamnorm({width} columns): "
              f"{torch_case.best / ours_columns.best:.2f}", file=out)
    return {"layer": table}


QUANTILES_CASE = "streamnorm FeatureStats(quantiles=True).update"
PLAIN_CASE = "streamnorm FeatureStats.update (no quantiles)"


def bench_quantiles(rows: int, cols: int, repeat: int, out: Any) -> dict[str, dict[str, float]]:
    """Per-feature statistics of the stats target's table with and without the quantile
    sketches (goal: at most 8x the time without), and numpy's exact quantiles for scale."""
    import pyarrow as pa

    import streamnorm as sn

    rng = np.random.default_rng(0)
    data = [rng.normal(1e6, 3.0, rows) for _ in range(cols)]
    table = pa.table({f"c{j}": c for j, c in enumerate(data)})
    nbytes = rows * cols * 8
    qs = [0.01, 0.25, 0.5, 0.75, 0.99]
    cases = [
        Case(QUANTILES_CASE, lambda: sn.FeatureStats(quantiles=True).update(table).quantile(qs),
             nbytes, ours=True, note="KLL sketch per column + quantile(5 q)"),
        Case(PLAIN_CASE, lambda: sn.FeatureStats().update(table), nbytes),
        Case("numpy.quantile (exact, sorts each column)",
             lambda: [np.quantile(c, qs) for c in data], nbytes, note="1 thread"),
    ]
    best_of(cases, max(1, repeat // 2))
    return {"quantiles": print_table(
        f"per-feature statistics with quantile sketches, {rows:,}x{cols} float64", cases, out)}
