"""Normalizer (batch / layer / rms) transform through the public API (docs/design.md §3)."""

from __future__ import annotations

import streamnorm as sn

from .common import feature_table, require, vector_table, wide_table


class BatchNormalize:
    params = ([100_000, 1_000_000], ["float64", "float32"])
    param_names = ["rows", "dtype"]

    def setup(self, rows, dtype):
        require("Normalizer")
        self.table = feature_table(rows, dtype)
        self.norm = sn.Normalizer(mode="batch").fit(self.table)
        self.norm.transform(self.table)

    def time_fit(self, rows, dtype):
        sn.Normalizer(mode="batch").fit(self.table)

    def time_transform(self, rows, dtype):
        self.norm.transform(self.table)

    def peakmem_transform(self, rows, dtype):
        self.norm.transform(self.table)


class RowNormalize:
    params = ([10_000, 100_000], ["layer", "rms"], ["vector", "columns"])
    param_names = ["rows", "mode", "layout"]

    def setup(self, rows, mode, layout):
        require("Normalizer")
        self.table = vector_table(rows) if layout == "vector" else wide_table(rows)
        self.norm = sn.Normalizer(mode=mode)
        self.norm.transform(self.table)

    def time_transform(self, rows, mode, layout):
        self.norm.transform(self.table)

    def peakmem_transform(self, rows, mode, layout):
        self.norm.transform(self.table)
