"""Updates of 32-column batches (issue 14). Small batches: one ``FeatureStats.update`` of a
1-row batch (the cost of a launch, not of the data), plain, with frequency weights, and with
``moments=4``. Large batches: 65,536-row updates against one update of the same data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

import streamnorm as sn

COLS = 32


class SmallBatchUpdate:
    params = [1, 64]
    param_names = ["rows"]

    def setup(self, rows):
        rng = np.random.default_rng(14)
        self.batch = pa.table({f"c{j}": rng.normal(1e6, 3.0, rows) for j in range(COLS)})
        self.weighted = self.batch.append_column("w", pa.array(np.full(rows, 2.0)))
        self.plain = sn.FeatureStats()
        self.with_weights = sn.FeatureStats()
        self.fourth = sn.FeatureStats(moments=4)
        self.plain.update(self.batch)  # warm the JIT
        self.with_weights.update(self.weighted, weights="w")
        self.fourth.update(self.batch)

    def time_update(self, rows):
        self.plain.update(self.batch)

    def time_update_weighted(self, rows):
        self.with_weights.update(self.weighted, weights="w")

    def time_update_moments4(self, rows):
        self.fourth.update(self.batch)


class BatchUpdates:
    """``FeatureStats.update`` over 65,536-row batches of 32 float64 columns (issue 14: the
    64k-row target against scikit-learn's ``partial_fit``): 8 batches, 128 MB, sliced from one
    table as ``python -m streamnorm.bench`` does, so each batch is read from memory, not
    cache. ``time_whole_table`` is the same data in one update, the per-batch overhead's
    yardstick."""

    ROWS = 65_536
    BATCHES = 8

    def setup(self):
        rng = np.random.default_rng(15)
        rows = self.ROWS * self.BATCHES
        self.table = pa.table({f"c{j}": rng.normal(1e6, 3.0, rows) for j in range(COLS)})
        self.batches = self.table.to_batches(max_chunksize=self.ROWS)
        self.time_batches()  # warm the JIT
        self.time_whole_table()

    def time_batches(self):
        stats = sn.FeatureStats()
        for batch in self.batches:
            stats.update(batch)

    def time_whole_table(self):
        sn.FeatureStats().update(self.table)
