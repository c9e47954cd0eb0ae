"""Exponential running statistics, as ``torch.nn.BatchNorm1d`` keeps them for inference.

:class:`RunningStats` holds, per column, a running mean and a running variance updated once
per batch from that batch's mean and *unbiased* variance (``ddof=1``):

``running = (1 - momentum) * running + momentum * batch``

starting at mean 0 and variance 1, exactly like BatchNorm's ``running_mean``/``running_var``
buffers. ``momentum=None`` gives the cumulative average of the batch statistics, like
``BatchNorm1d(momentum=None)``: the k-th update uses ``1 / k`` as its factor. These are not
the statistics of the data seen (use :class:`~streamnorm.FeatureStats` for those): they weight
recent batches more, and are what a BatchNorm layer trained on these batches would hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from ..arrow.open import Source, iter_batches
from .features import FeatureStats, NanPolicy


class RunningStats:
    """Per-column exponential moving mean and variance of batch statistics (BatchNorm buffers).

    Parameters
    ----------
    momentum : float in (0, 1], or None for the cumulative average of the batch statistics.
    columns : list of column names, or None for every scalar numeric column of the first batch.
        Named columns hold mean 0 and variance 1 from construction on, as BatchNorm's buffers.
    nan : as :class:`~streamnorm.FeatureStats` (``"skip"`` skips NaN within a batch).

    Notes
    -----
    Each ``update`` call is one batch, whatever its source: a Table or reader is reduced to one
    set of batch statistics (``update_batches`` updates once per record batch instead). Batch
    statistics skip nulls and NaN. A column with fewer than two valid values in a batch has no
    unbiased variance, so that column keeps its running values for that batch (torch refuses
    such batches in training mode); ``momentum=None`` then averages over the batches each
    column did take, ``updates`` per column. ``num_batches_tracked`` counts every update call.

    Examples
    --------
    >>> import pyarrow as pa, streamnorm as sn
    >>> rs = sn.RunningStats(momentum=0.1)
    >>> _ = rs.update(pa.table({"x": [1.0, 3.0]}))   # batch mean 2, unbiased var 2
    >>> rs.mean.tolist(), rs.var().tolist()
    ([0.2], [1.1])
    >>> _ = rs.update(pa.table({"x": [5.0, 7.0, 9.0]}))  # batch mean 7, unbiased var 4
    >>> [round(v, 12) for v in rs.mean.tolist()], [round(v, 12) for v in rs.var().tolist()]
    ([0.88], [1.39])
    """

    def __init__(
        self,
        momentum: float | None = 0.1,
        columns: Sequence[str] | None = None,
        *,
        nan: NanPolicy = "skip",
    ) -> None:
        if momentum is not None and not 0.0 < float(momentum) <= 1.0:
            raise ValueError(f"momentum must be in (0, 1] or None, got {momentum!r}")
        self.momentum = None if momentum is None else float(momentum)
        if isinstance(columns, str):
            columns = [columns]
        self._requested = list(columns) if columns is not None else None
        self.nan = nan
        # named columns have their buffers (mean 0, variance 1) from the start, as
        # torch.nn.BatchNorm1d(num_features) has; otherwise the first batch fixes the columns
        self._columns: list[str] | None = self._requested
        self.reset()

    @classmethod
    def from_stats(cls, stats: FeatureStats, momentum: float | None = 0.1) -> RunningStats:
        """Running statistics that start at the mean and unbiased variance (``ddof=1``) of
        ``stats`` instead of mean 0, variance 1, as if ``stats`` had been one batch taken with
        factor 1 (``updates`` 1 and ``num_batches_tracked`` 1; a column with fewer than two
        values keeps mean 0, variance 1). Online normalization seeds them so from its warm-up.
        """
        running = cls(momentum, stats.columns, nan=stats.nan)  # type: ignore[arg-type]
        running._columns = stats.columns
        ok = stats.count > 1
        running.running_mean = np.where(ok, stats.mean, 0.0)
        running.running_var = np.where(ok, stats.var(ddof=1), 1.0)
        running.updates = ok.astype(np.int64)
        running.num_batches_tracked = 1
        return running

    def update(self, batch: Source) -> RunningStats:
        """Update the running statistics with one batch (any source, taken as a whole)."""
        stats = FeatureStats(self._columns or self._requested, nan=self.nan).update(batch)
        self._apply(stats)
        return self

    def update_batches(self, source: Source, batch_size: int | None = None) -> RunningStats:
        """One update per record batch of ``source`` (``batch_size`` caps the rows per batch)."""
        for batch in iter_batches(source, None, batch_size):
            self.update(batch)
        return self

    def _apply(self, stats: FeatureStats) -> None:
        if self._columns is None:
            if not stats.columns:
                return  # nothing seen yet: wait for a batch that fixes the columns
            self._columns = stats.columns
            self.reset()
        self.num_batches_tracked += 1
        batch_mean = stats.mean
        batch_var = stats.var(ddof=1)  # unbiased, as torch uses for the running estimate
        ok = stats.count > 1
        self.updates[ok] += 1
        if self.momentum is None:
            factor = np.where(ok, 1.0 / np.maximum(self.updates, 1), 0.0)
        else:
            factor = np.where(ok, self.momentum, 0.0)
        self.running_mean = np.where(
            ok, (1.0 - factor) * self.running_mean + factor * batch_mean, self.running_mean
        )
        self.running_var = np.where(
            ok, (1.0 - factor) * self.running_var + factor * batch_var, self.running_var
        )

    @property
    def columns(self) -> list[str]:
        """Names of the tracked columns (empty before the first update)."""
        return list(self._columns or [])

    @property
    def mean(self) -> np.ndarray:
        """The running mean per column, float64 (a copy of ``running_mean``)."""
        return self.running_mean.copy()

    def var(self) -> np.ndarray:
        """The running (unbiased-batch) variance per column, float64 (``running_var``)."""
        return self.running_var.copy()

    def std(self) -> np.ndarray:
        """``sqrt(var())`` per column."""
        return np.sqrt(self.running_var)

    def reset(self) -> None:
        """Back to mean 0, variance 1 and no batches tracked (columns are kept)."""
        k = len(self.columns)
        self.running_mean = np.zeros(k)
        self.running_var = np.ones(k)
        self.updates = np.zeros(k, dtype=np.int64)
        self.num_batches_tracked = 0

    def to_arrow(self) -> pa.Table:
        """One row per column: column, running_mean, running_var, updates."""
        return pa.table({
            "column": pa.array(self.columns, pa.string()),
            "running_mean": self.running_mean,
            "running_var": self.running_var,
            "updates": self.updates,
        })

    def __repr__(self) -> str:
        return (f"RunningStats(momentum={self.momentum}, columns={self.columns}, "
                f"num_batches_tracked={self.num_batches_tracked})")
