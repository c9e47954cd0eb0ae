"""FeatureStats(quantiles=True): the KLL sketches' update, merge and query, against the same
update without them (the bench goal: at most 8x)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

import streamnorm as sn

from .common import feature_table


class QuantileSketches:
    params = ([100_000, 1_000_000], [False, True])
    param_names = ["rows", "quantiles"]

    def setup(self, rows, quantiles):
        self.table = feature_table(rows)
        self.batches = self.table.to_batches(max_chunksize=65_536)
        sn.FeatureStats(quantiles=quantiles).update(self.table)  # warm the JIT

    def time_update_table(self, rows, quantiles):
        sn.FeatureStats(quantiles=quantiles).update(self.table)

    def time_update_batches(self, rows, quantiles):
        stats = sn.FeatureStats(quantiles=quantiles)
        for batch in self.batches:
            stats.update(batch)

    def peakmem_update_table(self, rows, quantiles):
        sn.FeatureStats(quantiles=quantiles).update(self.table)


class QuantileMergeQuery:
    def setup(self):
        table = feature_table(200_000)
        self.parts = [sn.FeatureStats(quantiles=True).update(table.slice(i, 20_000))
                      for i in range(0, 200_000, 20_000)]
        self.merged = sn.FeatureStats(quantiles=True)
        for part in self.parts:
            self.merged.merge(part)

    def time_merge_ten(self):
        total = sn.FeatureStats(quantiles=True)
        for part in self.parts:
            total.merge(part)

    def time_quantiles(self):
        self.merged.quantile([0.01, 0.25, 0.5, 0.75, 0.99])


class QuantileRowsWithNaN:
    """The sorted-row path when most rows of 64 values hold a NaN (5% NaN): the first block's
    short rows are gathered, later blocks drop NaN before they are cut; float32 input."""

    def setup(self):
        rng = np.random.default_rng(7)
        x = rng.lognormal(0.0, 1.0, 1_000_000).astype(np.float32)
        x[rng.random(len(x)) < 0.05] = np.nan
        self.table = pa.table({f"c{j}": x for j in range(4)})
        sn.FeatureStats(quantiles=True).update(self.table)  # warm the JIT

    def time_update_nan_rows(self):
        sn.FeatureStats(quantiles=True).update(self.table)
