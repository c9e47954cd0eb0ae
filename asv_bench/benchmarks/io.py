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
