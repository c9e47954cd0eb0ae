"""FeatureStats and row_stats through the public API, on in-memory Arrow tables."""

from __future__ import annotations

import streamnorm as sn

from .common import feature_table, vector_table, wide_table


class FeatureStatsUpdate:
    params = ([100_000, 1_000_000], ["float64", "float32", "int64"], [0.0, 0.1])
    param_names = ["rows", "dtype", "null_fraction"]

    def setup(self, rows, dtype, null_fraction):
        self.table = feature_table(rows, dtype, null_fraction)
        self.batches = self.table.to_batches(max_chunksize=16_384)
        sn.FeatureStats().update(self.table)  # warm the JIT

    def time_update_table(self, rows, dtype, null_fraction):
        sn.FeatureStats().update(self.table)

    def time_update_small_batches(self, rows, dtype, null_fraction):
        stats = sn.FeatureStats()
        for batch in self.batches:
            stats.update(batch)

    def peakmem_update_table(self, rows, dtype, null_fraction):
        sn.FeatureStats().update(self.table)


class FeatureStatsMerge:
    def setup(self):
        table = feature_table(100_000)
        self.parts = [sn.FeatureStats().update(table.slice(i, 10_000))
                      for i in range(0, 100_000, 10_000)]

    def time_merge_ten(self):
        total = sn.FeatureStats()
        for part in self.parts:
            total.merge(part)

    def time_to_arrow_from_arrow(self):
        sn.FeatureStats.from_arrow(self.parts[0].to_arrow())


class RowStats:
    params = ([10_000, 100_000], ["vector", "columns"])
    param_names = ["rows", "layout"]

    def setup(self, rows, layout):
        self.table = vector_table(rows) if layout == "vector" else wide_table(rows)
        sn.row_stats(self.table)

    def time_row_stats(self, rows, layout):
        sn.row_stats(self.table)

    def peakmem_row_stats(self, rows, layout):
        sn.row_stats(self.table)
