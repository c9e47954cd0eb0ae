"""Normalize record batches inside an iterator pipeline, with bounded memory.

    python examples/pipeline_batches.py [ROWS]

Three pipelines over the same generated data (ROWS defaults to 500,000, or
$STREAMNORM_EXAMPLE_ROWS):

1. a ``pyarrow.dataset`` scanner with a filter, fitted then normalized batch by batch
   (BatchNorm-style, two passes over the scanner);
2. a polars lazy query streamed as record batches, normalized per row (LayerNorm-style,
   one pass, no fit), feeding a consumer that only ever holds one batch;
3. embeddings (a FixedSizeList column) RMS-normalized vector by vector.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

import streamnorm as sn


def make_dataset(directory: Path, rows: int) -> Path:
    """A two-file Parquet dataset with a label, three features and a 8-wide embedding."""
    rng = np.random.default_rng(1)
    for part in range(2):
        n = rows // 2
        emb = rng.normal(0.5, 2.0, (n, 8)).astype(np.float32)
        pq.write_table(pa.table({
            "label": rng.integers(0, 3, n),
            "f1": rng.normal(10, 2, n), "f2": rng.normal(-3, 0.5, n), "f3": rng.exponential(4, n),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 8),
        }), directory / f"part-{part}.parquet", row_group_size=50_000)
    return directory


def scanner_pipeline(root: Path) -> None:
    """Per-feature normalization of a filtered dataset scan."""
    dataset = ds.dataset(root, format="parquet")

    def batches() -> Iterator[pa.RecordBatch]:
        scan = dataset.scanner(columns=["label", "f1", "f2", "f3"], filter=ds.field("label") > 0,
                               batch_size=65_536)
        return scan.to_batches()

    norm = sn.Normalizer(columns=["f1", "f2", "f3"]).fit(batches())      # pass 1
    rows, total = 0, np.zeros(3)
    for out in norm.transform_batches(batches()):                       # pass 2
        rows += out.num_rows
        total += [pa.compute.sum(out[c]).as_py() for c in ("f1", "f2", "f3")]
    print(f"scanner: {rows} rows normalized; column means now {np.round(total / rows, 12)}")


def polars_pipeline(root: Path) -> None:
    """Per-row (layer) normalization of a polars lazy query, one batch in memory at a time."""
    import polars as pl

    query = pl.scan_parquet(root / "*.parquet").select("f1", "f2", "f3").filter(pl.col("f3") > 1)
    norm = sn.Normalizer(mode="layer")
    rows = 0
    for frame in query.collect_batches(chunk_size=65_536) if hasattr(
        query, "collect_batches"
    ) else query.collect().iter_slices(65_536):
        out = norm.transform(frame.to_arrow())
        row_means = np.mean([out[c].to_numpy() for c in ("f1", "f2", "f3")], axis=0)
        assert np.abs(row_means).max() < 1e-12
        rows += out.num_rows
    print(f"polars: {rows} rows layer-normalized, every row now has mean 0")


def embedding_pipeline(root: Path) -> None:
    """RMS-normalize embeddings vector by vector, as torch.nn.functional.rms_norm would."""
    reader = pq.ParquetFile(root / "part-0.parquet")
    norm = sn.Normalizer(mode="rms", columns=["embedding"])
    for batch in norm.transform_batches(reader.iter_batches(columns=["embedding"])):
        first = np.array(batch.column("embedding")[0].as_py())
        print(f"embeddings: first vector's mean square is now {np.mean(first ** 2):.5f}")
        break


if __name__ == "__main__":
    n_rows = int(sys.argv[1]) if len(sys.argv) > 1 else int(
        os.environ.get("STREAMNORM_EXAMPLE_ROWS", 500_000)
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(Path(tmp), n_rows)
        scanner_pipeline(root)
        polars_pipeline(root)
        embedding_pipeline(root)
