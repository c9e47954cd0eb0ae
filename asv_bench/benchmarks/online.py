"""Online normalization (``Normalizer(online=True)``) against the two-pass batch mode over the
same batches (README "Online normalization")."""

from __future__ import annotations

import streamnorm as sn

from .common import feature_table, require


def _online(**options):
    try:
        return sn.Normalizer(online=True, **options)
    except TypeError:  # a version without online normalization
        raise NotImplementedError("Normalizer(online=True) is not available") from None


class OnlineNormalize:
    params = ([1_000, 65_536], [None, 0.1])
    param_names = ["batch_rows", "momentum"]

    def setup(self, batch_rows, momentum):
        require("Normalizer")
        _online()
        self.batches = feature_table(1_000_000).to_batches(max_chunksize=batch_rows)
        for _ in _online(momentum=momentum).transform_batches(self.batches[:3]):
            pass  # compile

    def time_online(self, batch_rows, momentum):
        for _ in _online(momentum=momentum).transform_batches(self.batches):
            pass

    def time_two_pass(self, batch_rows, momentum):
        norm = sn.Normalizer().fit(self.batches)
        for _ in norm.transform_batches(self.batches):
            pass

    def peakmem_online(self, batch_rows, momentum):
        for _ in _online(momentum=momentum).transform_batches(self.batches):
            pass
