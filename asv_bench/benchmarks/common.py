"""Seeded data shared by every benchmark group (built once per process, then cached).

Sizes stay modest so ``asv run --python=same --quick`` finishes in a few minutes; the peer
comparison at full size is ``python -m streamnorm.bench``.
"""

from __future__ import annotations

import functools
import os
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20240601
#: Columns of the per-feature tables.
N_COLS = 8
#: Features per row of the per-row (LayerNorm) data.
WIDTH = 64
EMPTY = np.zeros(0, dtype=np.uint8)


def values(n: int, dtype: str, seed: int = 0) -> np.ndarray:
    """n values of ``dtype``: normal(1e6, 3) for floats, a wide uniform range for ints."""
    rng = np.random.default_rng(SEED + seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(1e6 if dtype == "float64" else 1e3, 3.0, n).astype(dtype)
    return rng.integers(-(10**6), 10**6, n).astype(dtype)


@functools.lru_cache(maxsize=8)
def feature_table(rows: int, dtype: str = "float64", null_fraction: float = 0.0) -> pa.Table:
    """A single-chunk table of N_COLS numeric columns, optionally with nulls."""
    rng = np.random.default_rng(SEED + 1)
    columns = {}
    for j in range(N_COLS):
        data = values(rows, dtype, seed=j)
        mask = rng.random(rows) < null_fraction if null_fraction else None
        columns[f"c{j}"] = pa.array(data, mask=mask)
    return pa.table(columns)


@functools.lru_cache(maxsize=4)
def row_matrix(rows: int, dtype: str = "float32") -> np.ndarray:
    return np.random.default_rng(SEED + 2).standard_normal((rows, WIDTH)).astype(dtype)


@functools.lru_cache(maxsize=4)
def vector_table(rows: int, dtype: str = "float32") -> pa.Table:
    """One FixedSizeList<WIDTH> column: a vector per row."""
    flat = pa.array(row_matrix(rows, dtype).reshape(-1))
    return pa.table({"x": pa.FixedSizeListArray.from_arrays(flat, WIDTH)})


@functools.lru_cache(maxsize=4)
def wide_table(rows: int, dtype: str = "float32") -> pa.Table:
    """The same data as :func:`vector_table`, as WIDTH separate columns."""
    matrix = row_matrix(rows, dtype)
    return pa.table({f"f{j}": np.ascontiguousarray(matrix[:, j]) for j in range(WIDTH)})


def parquet_file(rows: int, directory: str | None = None) -> str:
    """Write :func:`feature_table` as Parquet (row groups of 64k rows); returns its path."""
    directory = directory or tempfile.mkdtemp(prefix="streamnorm-asv-")
    path = os.path.join(directory, f"features_{rows}.parquet")
    if not os.path.exists(path):
        pq.write_table(feature_table(rows), path, row_group_size=65_536)
    return path


def has(name: str) -> bool:
    """Whether ``streamnorm`` exposes ``name`` (benchmarks of newer APIs skip otherwise)."""
    import streamnorm

    return hasattr(streamnorm, name)


def require(name: str) -> None:
    """Skip the benchmark (asv skips on NotImplementedError in setup) if ``name`` is absent."""
    if not has(name):
        raise NotImplementedError(f"streamnorm.{name} is not available in this version")
