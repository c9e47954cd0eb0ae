"""Small batches: one ``FeatureStats.update`` of a 1-row, 32-column batch (issue 14: the cost
of a launch, not of the data). Plain, with frequency weights, and with ``moments=4``."""

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
