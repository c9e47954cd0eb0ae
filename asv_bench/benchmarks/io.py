"""File to file: statistics of a Parquet file and batch-mode normalize_file (bounded memory)."""

from __future__ import annotations

import os
import shutil
import tempfile

import streamnorm as sn
from streamnorm.arrow.open import iter_batches

from .common import parquet_file, require


class ParquetFiles:
    params = [200_000, 1_000_000]
    param_names = ["rows"]
    timeout = 300

    def setup(self, rows):
        self.dir = tempfile.mkdtemp(prefix="streamnorm-asv-")
        self.src = parquet_file(rows, self.dir)
        self.dst = os.path.join(self.dir, "out.parquet")
        sn.feature_stats(self.src)  # warm the JIT

    def teardown(self, rows):
        shutil.rmtree(self.dir, ignore_errors=True)

    def time_read_batches(self, rows):
        """Decoding alone (one thread per column group)."""
        for _ in iter_batches(self.src):
            pass

    def time_feature_stats(self, rows):
        sn.feature_stats(self.src)

    def peakmem_feature_stats(self, rows):
        sn.feature_stats(self.src)

    def time_normalize_file(self, rows):
        require("normalize_file")
        sn.normalize_file(self.src, self.dst, mode="batch")

    def peakmem_normalize_file(self, rows):
        require("normalize_file")
        sn.normalize_file(self.src, self.dst, mode="batch")


class WideInverse:
    """``inverse_file`` against ``normalize_file`` of a wide Parquet file (issue 14: inverse
    grew faster than linearly with the column count)."""

    params = [100, 1000]
    param_names = ["cols"]
    timeout = 600

    def setup(self, cols):
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.dir = tempfile.mkdtemp(prefix="streamnorm-asv-wide-")
        self.src = os.path.join(self.dir, "wide.parquet")
        self.normalized = os.path.join(self.dir, "wide_norm.parquet")
        self.restored = os.path.join(self.dir, "wide_back.parquet")
        rng = np.random.default_rng(14)
        table = pa.table({f"c{j}": rng.normal(10.0, 2.0, 200) for j in range(cols)})
        pq.write_table(table, self.src, row_group_size=10)  # 20 row groups
        sn.normalize_file(self.src, self.normalized)
        sn.inverse_file(self.normalized, self.restored)  # warm the JIT

    def teardown(self, cols):
        shutil.rmtree(self.dir, ignore_errors=True)

    def time_normalize(self, cols):
        sn.normalize_file(self.src, self.normalized)

    def time_inverse(self, cols):
        sn.inverse_file(self.normalized, self.restored)
