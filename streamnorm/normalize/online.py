"""Online normalization: each batch normalized with the statistics of everything seen so far,
that batch included (no look-ahead), for streams that never end.

:class:`OnlineState` is the state a ``Normalizer(online=True)`` carries between batches; the
Normalizer maps each batch it releases with :meth:`OnlineState.center_scale` at that moment.

* ``momentum=None``: the statistics are a :class:`~streamnorm.FeatureStats` of all rows seen,
  updated batch by batch, so batch ``i`` is normalized exactly as a fresh fit on batches
  ``0..i`` would normalize it (up to the rounding of the merge order).
* ``momentum=M``: the statistics are those of :class:`~streamnorm.RunningStats` (BatchNorm's
  running buffers: each batch's mean and unbiased variance blended in with factor ``M``,
  starting at mean 0, variance 1, or at the warm-up's / :meth:`Normalizer.fit`'s statistics).
  The exact statistics of all rows are kept beside them (``stats``), for saving.
* ``warmup=ROWS``: batches are held back until ``ROWS`` rows have been seen (rows given to
  ``fit`` count), then all of them are released and normalized with the statistics of all of
  them; later batches are online. A source that ends first ends the warm-up: its rows are
  normalized with the statistics of all of them. Memory: the warm-up buffer (``ROWS`` plus one
  batch), nothing else grows with the stream.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..arrow.locations import is_uri, resolve
from ..errors import InputError, NonFiniteError
from ..state.features import FeatureStats
from ..state.running import RunningStats
from . import mappers, plan
from .record import FINAL_STATS_KEY


def check_online(mode: str, by: Sequence[str] | None, momentum: float | None, warmup: int,
                 ddof: int, inf: str) -> None:
    """Refuse (``ValueError``, one line naming the way out) what online mode does not support:
    layer / rms modes, ``by=``, a bad ``momentum`` or ``warmup``, and with ``momentum``:
    ``ddof`` other than 0 or ``inf="skip"``."""
    if mode != "batch":
        raise ValueError(f"online=True needs mode='batch': mode {mode!r} normalizes each row with "
                         "its own statistics, so there is nothing to accumulate; drop online")
    if by is not None:
        raise ValueError("online=True does not support by= (per-key statistics) yet; drop by= "
                         "or normalize in two passes")
    if momentum is not None and not (isinstance(momentum, (int, float))
                                     and 0.0 < float(momentum) <= 1.0):
        raise ValueError(f"momentum must be in (0, 1] or None, got {momentum!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, (int, np.integer)) or warmup < 0:
        raise ValueError(f"warmup must be a whole number of rows >= 0, got {warmup!r}")
    if momentum is not None and ddof != 0:
        raise ValueError("ddof does not apply with momentum: the running variance is "
                         "BatchNorm's (each batch's unbiased variance); drop ddof or momentum")
    if momentum is not None and inf == "skip":
        raise ValueError("inf='skip' is not supported with momentum: the running statistics "
                         "take ±inf as values; drop momentum or remove the infinities")


def check_online_options(online: bool, momentum: float | None, warmup: int) -> None:
    """``momentum`` and ``warmup`` mean something only with ``online=True``: ``ValueError``."""
    if not online and (momentum is not None or warmup):
        raise ValueError("momentum= and warmup= apply to online normalization only; pass "
                         "online=True or drop them")


def stats_rows(stats: FeatureStats) -> int:
    """The rows ``stats`` cover (what counts towards a warm-up when a stream continues them):
    the most, over the columns, of values, nulls, NaN (and ±inf skipped)."""
    if not stats.columns:
        return 0
    rows = stats.count + stats.null_count + stats.nan_count
    if stats.inf == "skip":
        rows = rows + stats.inf_count
    return int(np.max(rows))


class OnlineState:
    """What online normalization carries from batch to batch (see the module docstring).

    Parameters are the Normalizer's: ``columns`` (None: every numeric scalar column of the
    first schema), ``nan``, ``inf`` ("error" or "skip"), ``target``, ``momentum``, ``warmup``.
    """

    def __init__(self, columns: Sequence[str] | None, nan: str, inf: str, target: str | None,
                 momentum: float | None, warmup: int) -> None:
        self.columns = list(columns) if columns is not None else None
        self.nan = nan
        self.inf = inf
        self.target = target
        self.momentum = None if momentum is None else float(momentum)
        self.warmup = int(warmup)
        self.stats = self._new_stats()
        self.running: RunningStats | None = None
        #: rows seen: fitted, buffered or released
        self.rows = 0
        self.warming = self.warmup > 0
        self.buffer: list[pa.RecordBatch] = []

    def _new_stats(self) -> FeatureStats:
        extra: dict[str, Any] = {"inf": "skip"} if self.inf == "skip" else {}
        return FeatureStats(self.columns, nan=self.nan, target=self.target,  # type: ignore[arg-type]
                            **extra)

    def seed(self, stats: FeatureStats, rows: int) -> None:
        """Start from fitted statistics of ``rows`` rows (what :meth:`Normalizer.fit` gave):
        the stream continues them; with ``momentum`` the running buffers start at their mean
        and unbiased variance. The warm-up is over once ``rows`` reach it."""
        self.stats = stats.copy()
        self.rows = int(rows)
        self.running = None
        if self.momentum is not None and stats.columns:
            self.running = RunningStats.from_stats(stats, self.momentum)
        self.warming = self.warming and self.rows < self.warmup
        self.buffer = []

    def bind(self, schema: pa.Schema) -> list[str]:
        """The normalized columns for batches of ``schema`` (fixing the tracked columns on the
        first schema, as a fit would), in schema order."""
        if not self.stats.columns:
            self.stats.update(plan.empty_batch(schema))
        if self.momentum is not None:
            self._start_running()
        chosen = plan.batch_columns(schema, self.columns, self.stats)
        return plan.in_schema_order(schema, chosen)

    def _start_running(self) -> RunningStats:
        """With ``momentum``: the running statistics, started at mean 0, variance 1 over the
        tracked columns if nothing seeded them."""
        if self.running is None:
            self.running = RunningStats(self.momentum, self.stats.columns or None,
                                        nan=self.nan)  # type: ignore[arg-type]
        return self.running

    def feed(self, batch: pa.RecordBatch) -> list[pa.RecordBatch]:
        """Take one input batch into the statistics; return the input batches to normalize now
        (with :meth:`center_scale` as it is after this call): ``[batch]`` online, nothing while
        warming up, the whole warm-up buffer when it fills."""
        self.stats.update(batch)
        if self.momentum is not None and not self.warming:
            self._start_running().update(batch)
        self.rows += batch.num_rows
        if not self.warming:
            return [batch]
        self.buffer.append(batch)
        if self.rows < self.warmup:
            return []
        return self.end()

    def end(self) -> list[pa.RecordBatch]:
        """The source ended (or the warm-up filled): release the warm-up buffer, normalized with
        the statistics of everything seen; the warm-up is then over."""
        released, self.buffer = self.buffer, []
        if self.warming:
            self.warming = False
            if self.momentum is not None and self.stats.columns:
                self.running = RunningStats.from_stats(self.stats, self.momentum)
        return released

    def center_scale(self, names: Sequence[str], eps: float, ddof: int
                     ) -> dict[str, tuple[float, float]]:
        """``{column: (center, scale)}`` for the batches released now: the mean and
        ``sqrt(var + eps)`` of all rows seen (:meth:`FeatureStats.scale`'s rule), or with
        ``momentum`` the running mean and ``sqrt(running_var + eps)`` (a zero scale becomes 1).
        Statistics holding ±inf are a :class:`NonFiniteError`."""
        if self.running is None:
            return mappers.batch_center_scale(self.stats, names, eps, ddof)
        index = {name: j for j, name in enumerate(self.running.columns)}
        mean = self.running.running_mean
        scale = np.sqrt(self.running.running_var + eps)
        scale[scale == 0.0] = 1.0
        bad = [n for n in names if not (np.isfinite(mean[index[n]])
                                        and np.isfinite(scale[index[n]]))
               and np.isinf([mean[index[n]], scale[index[n]]]).any()]
        if bad:
            raise NonFiniteError(
                f"cannot normalize column(s) {bad} online: their running statistics are not "
                "finite (a batch held ±inf), so every later value would be NaN; remove the "
                "infinities, or drop momentum and use inf='skip'"
            )
        return {n: (float(mean[index[n]]), float(scale[index[n]])) for n in names}


# --------------------------------------------------------------------------- final statistics


def final_record(state: OnlineState) -> dict[str, Any]:
    """The JSON-ready record of the statistics at the end of a stream: ``rows`` seen, ``stats``
    (:meth:`FeatureStats.to_dict` of every row) and, with momentum, ``running`` (columns,
    running_mean, running_var, updates, momentum, num_batches_tracked)."""
    found: dict[str, Any] = {"kind": "OnlineFinal", "rows": state.rows,
                             "stats": state.stats.to_dict()}
    if state.running is not None:
        running = state.running
        found["running"] = {
            "momentum": running.momentum, "num_batches_tracked": running.num_batches_tracked,
            "columns": running.columns, "running_mean": running.running_mean.tolist(),
            "running_var": running.running_var.tolist(), "updates": running.updates.tolist(),
        }
    return found


def final_metadata(state: OnlineState) -> dict[bytes, bytes]:
    """:func:`final_record` as the Parquet footer entry ``streamnorm.final_stats``."""
    return {FINAL_STATS_KEY: json.dumps(final_record(state)).encode()}


def read_final_stats(path: str | os.PathLike) -> FeatureStats:
    """The statistics of every row of a Parquet file written by ``streamnorm normalize
    --online`` (its footer entry ``streamnorm.final_stats``): what ``-o`` saved.

    :class:`InputError` for a file without that entry (Arrow IPC outputs never have it: their
    metadata is written before the first batch).
    """
    location = os.fspath(path)
    try:
        if is_uri(location):
            fs, inner = resolve(location)
            with fs.open_input_file(inner) as handle:
                metadata = pq.ParquetFile(handle).metadata.metadata or {}
        else:
            metadata = pq.ParquetFile(location).metadata.metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{location}: not a readable Parquet file ({exc}); give the Parquet "
                         "output of `streamnorm normalize --online`") from None
    if FINAL_STATS_KEY not in metadata:
        raise InputError(f"{location}: holds no final statistics of online normalization; give "
                         "a Parquet output of `streamnorm normalize --online` (or save them "
                         "with -o)")
    try:
        found = json.loads(metadata[FINAL_STATS_KEY])
        return FeatureStats.from_dict(found["stats"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{location}: its final statistics are damaged ({exc}); save them "
                         "with -o next time") from None
