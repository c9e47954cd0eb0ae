"""Normalization of Arrow data: per feature (BatchNorm-style) or per sample (LayerNorm / RMSNorm).

:class:`Normalizer` works on record batches and tables in memory (its column plan in
:mod:`.plan`, one mapper per mode in :mod:`.mappers`, the record it leaves in output metadata
in :mod:`.record`); :func:`~streamnorm.normalize_file` streams a whole file through it into
another, atomically.

Modes (docs/design.md §3, §4):

``"batch"``
    each chosen column ``x`` becomes ``(x - mean) / sqrt(var + eps)`` with the column's mean
    and variance (``ddof``) over the data given to :meth:`Normalizer.fit`; ``eps`` defaults to
    0 and a constant or near-constant column (scikit-learn's rule, see
    :meth:`FeatureStats.scale`) is scaled by 1, so constants become 0, not NaN. The scale is
    computed without overflow, so finite data of any magnitude normalizes to finite values.
    Statistics holding ±inf are refused (:class:`~streamnorm.errors.NonFiniteError`) unless
    ``inf="skip"``, which leaves ±inf out of the statistics and passes them through as ±inf.
``"layer"``
    each row becomes ``(x - mean_r) / sqrt(var_r + eps)`` with its own mean and variance
    (``ddof``, default 0 as in ``torch.nn.functional.layer_norm``) over the numeric scalar
    columns taken together; each FixedSizeList column is normalized within itself, vector by
    vector. ``eps`` defaults to 1e-5.
``"robust"``
    each chosen column becomes ``(x - median) / (q_hi - q_lo)`` (scikit-learn's
    ``RobustScaler``; ``quantile_range`` in percent, default the interquartile range) from
    mergeable quantile sketches (:mod:`.robust`); a zero range scales by 1. Invertible.
``"rms"``
    as ``"layer"`` but ``x / sqrt(mean_r(x²) + eps)`` (``torch.nn.functional.rms_norm``
    without weight; note torch's own default ``eps`` is the dtype's machine epsilon, ours is
    1e-5 as for layer norm).

Whatever the mode: computation in float64, float32 columns stay float32 (rounded once),
every other numeric column becomes float64; nulls stay null (the validity bitmap is reused);
non-numeric and unchosen columns pass through unchanged; the schema order is kept; and the
output schema carries, under the metadata key ``streamnorm``, a JSON record of the mode, eps,
ddof, columns and (batch mode) the full statistics, so :meth:`Normalizer.from_metadata` can
undo a normalized file without the statistics file. NaN values are skipped by the statistics
(``nan="skip"``) and stay NaN; with ``nan="propagate"`` a NaN poisons its column (batch) or
its row (layer / rms). In every mode a zero scale (a constant row with ``eps=0``) is replaced
by 1, and statistics that are NaN (no valid value, or ``count <= ddof``) give NaN outputs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import pyarrow as pa

from ..arrow.open import Source, schema_and_batches
from ..errors import InputError
from ..kernels import backend
from ..progress import Progress
from ..state.features import FeatureStats
from . import mappers, plan, record, robust
from .online import OnlineState, check_online, check_online_options, stats_rows
from .plan import PER_FEATURE_MODES, Mode

_DEFAULT_EPS = {"batch": 0.0, "layer": 1e-5, "rms": 1e-5, "robust": 0.0}


def _map_batches(
    data: Source,
    per_batch: Callable[[pa.RecordBatch], pa.RecordBatch],
    schema_of: Callable[[pa.Schema], pa.Schema],
    verb: str,
) -> pa.RecordBatch | pa.Table:
    """Apply ``per_batch`` to every batch of ``data``: a RecordBatch gives a RecordBatch,
    anything else a Table whose schema is ``schema_of(input schema)``."""
    if isinstance(data, pa.RecordBatch):
        return per_batch(data)
    schema, batches = schema_and_batches(data)
    out = [per_batch(batch) for batch in batches]
    if schema is None:
        raise ValueError(f"cannot {verb} an empty iterable: it has no schema")
    out_schema = plan.widened(schema_of(schema), out)
    return pa.Table.from_batches(
        [b if b.schema.equals(out_schema) else b.cast(out_schema) for b in out], schema=out_schema
    )


class Normalizer:
    """Normalize numeric columns of Arrow data per feature (batch) or per sample (layer / rms).

    Parameters
    ----------
    mode : ``"batch"`` (BatchNorm / StandardScaler), ``"layer"`` (LayerNorm) or ``"rms"``
        (RMSNorm); see the module docstring for the exact formulas.
    columns : columns to normalize; None for every numeric scalar column (batch mode), or
        every numeric scalar column plus every FixedSizeList column (layer / rms).
    eps : added to the variance (mean square for rms) under the square root; default 0 for
        batch, 1e-5 for layer and rms.
    ddof : delta degrees of freedom of the variance (batch and layer; rms ignores it).
    nan : ``"skip"`` (NaN ignored by the statistics, stays NaN) or ``"propagate"``.
    inf : ``"error"`` (default): batch mode refuses statistics that hold ±inf (they would make
        every value of the column NaN) with a :class:`~streamnorm.errors.NonFiniteError`
        naming the columns; ``"skip"``: the statistics skip ±inf like NaN (counted in
        ``stats.inf_count``) and ±inf values pass through the transform unchanged.
    target : ``"cpu"`` or ``"cuda"``; default ``$STREAMNORM_TARGET`` or ``"cpu"``.
    quantile_range : ``(lo, hi)`` percentages for mode ``"robust"`` (default ``(25, 75)``).
    by : key column(s), batch mode only: fit one set of statistics per key
        (``FeatureStats(by=...)``) and normalize each row with its key's; rows whose key
        was not seen in ``fit`` come out null.
    online : batch mode only: normalize each batch with the statistics of everything seen so
        far, that batch included (no look-ahead), for streams read once; see
        :mod:`streamnorm.normalize.online` and the README section "Online normalization".
        ``transform`` / ``transform_batches`` then advance the stream (each call continues the
        statistics), ``fit`` seeds the statistics the stream continues, ``stats`` holds the
        statistics of all rows seen, and there is no inverse.
    momentum : online only: normalize with the exponentially forgetting statistics of
        :class:`~streamnorm.RunningStats` (factor in (0, 1]) instead of those of all rows.
    warmup : online only: hold back the first batches until this many rows are seen, then
        normalize them with the statistics of all of them.

    Examples
    --------
    >>> import pyarrow as pa, streamnorm as sn
    >>> t = pa.table({"x": [1.0, 2.0, 3.0, None], "tag": ["a", "b", "c", "d"]})
    >>> norm = sn.Normalizer().fit(t)
    >>> out = norm.transform(t)
    >>> [round(v, 6) if v is not None else None for v in out["x"].to_pylist()]
    [-1.224745, 0.0, 1.224745, None]
    >>> norm.inverse_transform(out)["x"].to_pylist()
    [1.0, 2.0, 3.0, None]
    >>> rows = pa.table({"a": [1.0, 4.0], "b": [3.0, 4.0]})
    >>> sn.Normalizer("layer", eps=0).transform(rows).to_pydict()
    {'a': [-1.0, 0.0], 'b': [1.0, 0.0]}
    """

    def __init__(
        self,
        mode: Mode = "batch",
        columns: Sequence[str] | None = None,
        eps: float | None = None,
        ddof: int = 0,
        nan: Literal["skip", "propagate"] = "skip",
        target: str | None = None,
        by: str | Sequence[str] | None = None,
        inf: Literal["error", "skip"] = "error",
        online: bool = False,
        momentum: float | None = None,
        warmup: int = 0,
        quantile_range: tuple[float, float] = robust.DEFAULT_QUANTILE_RANGE,
    ) -> None:
        self.mode = plan.check_mode(mode)
        self.quantile_range = robust.check_quantile_range(quantile_range)
        self._recorded: dict[str, tuple[float, float]] | None = None
        self.by = [by] if isinstance(by, str) else (list(by) if by is not None else None)
        if self.by is not None and self.mode != "batch":
            raise ValueError(f"by= (per-key statistics) needs mode='batch', not {mode!r}")
        if isinstance(columns, str):
            columns = [columns]
        self.columns = list(columns) if columns is not None else None
        self.eps = float(_DEFAULT_EPS[mode] if eps is None else eps)
        if not self.eps >= 0.0:
            raise ValueError(f"eps must be a non-negative number, got {eps!r}")
        self.ddof = int(ddof)
        if nan not in ("skip", "propagate"):
            raise ValueError(f"nan must be 'skip' or 'propagate', got {nan!r}")
        self.nan = nan
        if inf not in ("error", "skip"):
            raise ValueError(f"inf must be 'error' or 'skip', got {inf!r}")
        if inf == "skip" and self.by is not None:
            raise ValueError("inf='skip' is not supported with by= yet; remove the infinities "
                             "or drop by=")
        self.inf = inf
        self.target = target
        check_online_options(online, momentum, warmup)
        if online:
            check_online(self.mode, self.by, momentum, warmup, self.ddof, inf)
        self.online = bool(online)
        self.momentum = None if momentum is None else float(momentum)
        self.warmup = int(warmup)
        self._online = OnlineState(self.columns, nan, inf, target, momentum, warmup
                                   ) if online else None
        self._stats: FeatureStats | None = None
        self._record_json: str | None = None
        self._stats_file: str | None = None
        self._schema_cache: tuple[pa.Schema, pa.Schema, Any] | None = None
        self._inverse_cache: tuple[pa.Schema, pa.Schema, list[str], Any] | None = None

    def __repr__(self) -> str:
        return (
            f"Normalizer(mode={self.mode!r}, columns={self.columns}, eps={self.eps}, "
            f"ddof={self.ddof}, nan={self.nan!r}"
            + (f", online=True, momentum={self.momentum}, warmup={self.warmup})"
               if self.online else ")")
        )

    # ------------------------------------------------------------------ fitting
    @property
    def stats(self) -> FeatureStats | None:
        """The per-column statistics used in batch mode (None in layer / rms mode).

        Raises ``RuntimeError`` in batch mode before :meth:`fit` / :meth:`from_stats`. Online:
        the statistics of every row seen so far (fitted and streamed; with ``momentum`` too:
        the running ones that normalize are :attr:`running`), empty before any data.
        """
        if self.mode not in PER_FEATURE_MODES:
            return None
        if self._online is not None:
            return self._online.stats
        return self._require_stats()

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`transform` can run (always True in layer / rms mode)."""
        return (self.mode not in PER_FEATURE_MODES or self._stats is not None
                or self._online is not None)

    @property
    def online_state(self) -> OnlineState | None:
        """The :class:`~streamnorm.normalize.online.OnlineState` of online mode (None else)."""
        return self._online

    @property
    def running(self) -> Any:
        """Online with ``momentum``: the :class:`~streamnorm.RunningStats` that normalize the
        stream (None before the first batch, and without momentum)."""
        return self._online.running if self._online is not None else None

    def _require_stats(self) -> FeatureStats:
        if self._stats is None:
            raise RuntimeError(
                "this batch-mode Normalizer is not fitted: call fit(source) first, or build it "
                "with Normalizer.from_stats(...)"
            )
        return self._stats

    def _set_stats(self, stats: FeatureStats) -> None:
        self._stats = stats
        self._record_json = None
        self._schema_cache = self._inverse_cache = None

    def fit(
        self, source: Source, batch_size: int | None = None, *, progress: Progress | None = None,
        check_finite: bool = True,
    ) -> Normalizer:
        """Stream ``source`` once into the per-column statistics (batch mode); returns self.

        ``source`` is a path or any in-memory source (:mod:`streamnorm.arrow.open`). Layer and
        rms modes need no statistics: ``fit`` does nothing there. ``progress`` (optional) is
        told the rows and bytes of each batch. Statistics holding ±inf (with ``inf="error"``)
        are a :class:`~streamnorm.errors.NonFiniteError` naming the columns, unless
        ``check_finite=False`` (``streamnorm stats`` reports them as they are; the check then
        comes when the statistics are used to normalize).
        """
        if self.mode not in PER_FEATURE_MODES:
            return self
        extra: dict[str, Any] = {"inf": "skip"} if self.inf == "skip" else {}
        if self.mode == "robust":
            extra["quantiles"] = True
        stats = FeatureStats(self.columns, nan=self.nan, target=self.target, by=self.by, **extra)
        read = None if self.columns is None else [*self.columns, *(self.by or [])]
        schema, batches = schema_and_batches(source, read, batch_size)
        if schema is not None and self.columns is not None:
            # check_finite=False is `streamnorm stats`: statistics only, so a named bool
            # column is counted as 0/1 there; normalizing refuses it
            plan.check_batch_columns(schema, self.columns, bools=not check_finite)
        seen = False
        rows = 0
        for batch in batches:
            stats.update(batch)
            seen = True
            rows += batch.num_rows
            if progress is not None:
                progress.update(batch.num_rows, batch.nbytes)
        if not seen and schema is not None:
            stats.update(plan.empty_batch(schema))  # fixes the columns of a source without rows
        if self._online is not None:
            if check_finite:
                mappers.check_finite_stats(stats, self.columns)
            self._online.seed(stats, rows)  # the stream continues these statistics
            self._record_json = None
            self._schema_cache = self._inverse_cache = None
            return self
        self._set_stats(stats)
        if check_finite:
            mappers.check_finite_stats(stats, self.columns)
        return self

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_stats(
        cls,
        stats: FeatureStats | str | os.PathLike,
        *,
        columns: Sequence[str] | None = None,
        eps: float | None = None,
        ddof: int | None = None,
        target: str | None = None,
        online: bool = False,
        momentum: float | None = None,
        warmup: int = 0,
        mode: Mode = "batch",
        quantile_range: tuple[float, float] = robust.DEFAULT_QUANTILE_RANGE,
    ) -> Normalizer:
        """A fitted batch- (or robust-) mode Normalizer from statistics computed elsewhere.

        ``stats`` is a :class:`FeatureStats`, a saved statistics file (``.json``, ``.arrow``,
        ``.parquet``), or a file this library normalized (its schema metadata holds the
        statistics: then ``eps``/``ddof``/``columns`` default to the ones it was made with,
        and its mode and robust parameters are used). ``columns`` restricts normalization to
        some of the statistics' columns. ``mode="robust"`` needs statistics with quantile
        sketches (``FeatureStats(quantiles=True)``, ``streamnorm stats --quantiles``).

        ``online=True`` (``momentum``, ``warmup`` as in the constructor): an online Normalizer
        whose stream continues these statistics, as after :meth:`fit` (their rows count towards
        the warm-up); for instance to resume a stream from the statistics that
        ``normalize --online -o`` saved at the end of the last one.
        """
        recorded = None
        if not isinstance(stats, FeatureStats):
            path = record.stats_location(stats)
            if record.holds_record(stats):
                made = cls.from_metadata(path, target=target)
                if made.mode not in PER_FEATURE_MODES:
                    raise InputError(
                        f"{path}: was normalized in {made.mode} mode, which has no "
                        "per-column statistics; give a batch-mode file or a stats file"
                    )
                mode, quantile_range, recorded = made.mode, made.quantile_range, made._recorded
                eps = made.eps if eps is None else eps
                ddof = made.ddof if ddof is None else ddof
                columns = made.columns if columns is None else columns
                stats = made._require_stats()
            else:
                stats = FeatureStats.load(path)
        if columns is not None:
            columns = [columns] if isinstance(columns, str) else list(columns)
            plan.check_stats_columns(columns, stats)
        if online and getattr(stats, "by", None) is not None:
            raise InputError("grouped (by=) statistics cannot start online normalization, which "
                             "has no per-key mode; give ungrouped statistics")
        if mode == "robust" and recorded is None and not stats.quantiles:
            raise InputError("mode 'robust' needs statistics with quantile sketches: compute "
                             "them with FeatureStats(quantiles=True) or `streamnorm stats "
                             "--quantiles 0.5 -o FILE`")
        norm = cls(
            mode, columns=columns, eps=eps, ddof=ddof or 0, nan=stats.nan, target=target,
            inf="skip" if stats.inf == "skip" else "error",
            by=getattr(stats, "by", None), online=online, momentum=momentum, warmup=warmup,
            quantile_range=quantile_range,
        )
        if norm._online is not None:
            norm._online.seed(stats, stats_rows(stats))
            return norm
        norm._set_stats(stats)
        norm._recorded = recorded
        return norm

    @classmethod
    def from_metadata(
        cls, source: pa.Schema | pa.RecordBatch | pa.Table | str | os.PathLike,
        *, target: str | None = None,
    ) -> Normalizer:
        """The Normalizer recorded in the schema metadata of normalized data (or a file).

        Raises :class:`InputError` when the schema carries no ``streamnorm`` record.
        """
        found, where, location = record.locate_record(source)
        norm = cls(
            found["mode"], columns=found.get("columns"), eps=found["eps"],
            ddof=found.get("ddof", 0), nan=found.get("nan", "skip"), target=target,
            inf=found.get("inf", "error"),
            by=found.get("by"), quantile_range=found.get("quantile_range", (25.0, 75.0)),
        )
        if found["mode"] in PER_FEATURE_MODES:
            norm._set_stats(record.recorded_stats(found, where, location))
            norm._recorded = record.recorded_center_scale(found)
        return norm

    def record(self) -> dict[str, Any]:
        """The JSON-ready record written to output metadata: mode, eps, ddof, nan, columns,
        and (batch mode) the statistics: as :meth:`FeatureStats.to_dict` gives them, or for
        grouped statistics as Arrow IPC (``stats_arrow``, base64; much smaller than JSON) or,
        in a file written by :func:`~streamnorm.normalize_file` when they are large, the name
        of the statistics file beside it (``stats_file``)."""
        if self._online is not None:
            return record.make_record(self.mode, self.eps, self.ddof, self.nan, self.columns,
                                      self.inf, None, None, None,
                                      online={"momentum": self.momentum, "warmup": self.warmup})
        stats = self._require_stats() if self.mode in PER_FEATURE_MODES else None
        made = record.make_record(self.mode, self.eps, self.ddof, self.nan, self.columns,
                                  self.inf, self.by, stats, self._stats_file)
        if self.mode == "robust":
            made.update(record.robust_fields(self.quantile_range, self._center_scale(
                stats.columns, check=False)))  # type: ignore[union-attr]
        return made

    def _center_scale(self, names: Sequence[str], check: bool = True
                      ) -> dict[str, tuple[float, float]]:
        """``{column: (center, scale)}`` of a per-feature mode (batch or robust)."""
        stats = self._require_stats()
        if check:
            mappers.check_finite_stats(stats, names)
        if self.mode == "robust":
            return robust.robust_center_scale(stats, names, self.quantile_range, self._recorded)
        return mappers.batch_center_scale(stats, names, self.eps, self.ddof)

    @property
    def stats_file(self) -> str | None:
        """The name of a statistics file beside the output that the record names instead of
        holding (grouped) statistics inline; None (the default): inline. Set by
        :func:`~streamnorm.normalize_file` while it writes an output with large grouped
        statistics."""
        return self._stats_file

    @stats_file.setter
    def stats_file(self, name: str | None) -> None:
        self._stats_file = name
        self._record_json = self._schema_cache = None

    def _record_text(self) -> str:
        if self._record_json is None:
            self._record_json = json.dumps(self.record())
        return self._record_json

    # ------------------------------------------------------------------ planning
    def normalized_columns(self, schema: pa.Schema) -> list[str]:
        """The columns of ``schema`` this Normalizer changes, in schema order."""
        if self._online is not None:
            return self._online.bind(schema)
        if self.mode in PER_FEATURE_MODES:
            chosen = plan.batch_columns(schema, self.columns, self._require_stats())
        else:
            scalars, vectors = plan.row_columns(schema, self.columns)
            chosen = [*scalars, *vectors]
        return plan.in_schema_order(schema, chosen)

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The schema of transformed data: normalized columns retyped, metadata recorded."""
        return self._plan(schema)[0]

    def _plan(self, schema: pa.Schema) -> tuple[pa.Schema, Any]:
        """(output schema, what the mode's mapper needs), cached for the last schema seen."""
        cached = self._schema_cache
        if cached is not None and cached[0].equals(schema, check_metadata=True):
            return cached[1], cached[2]
        chosen = self.normalized_columns(schema)
        out_schema = plan.output_schema(schema, chosen, record.METADATA_KEY,
                                        self._record_text().encode())
        if self._online is not None:
            how: Any = chosen  # centers and scales change from batch to batch
        elif self.mode == "batch" and self.by is not None:
            mappers.check_finite_stats(self._require_stats(), chosen)
            how = {n: None for n in chosen}  # per key, per row
        elif self.mode in PER_FEATURE_MODES:
            how = self._center_scale(chosen)
        else:
            how = plan.row_columns(schema, self.columns)
        self._schema_cache = (schema, out_schema, how)
        return out_schema, how

    # ------------------------------------------------------------------ transform
    def transform(self, data: Source) -> pa.RecordBatch | pa.Table:
        """Normalize ``data``: a RecordBatch gives a RecordBatch, anything else a Table.

        Same columns in the same order; normalized columns become float64 (float32 stays
        float32); nulls stay null; other columns pass through unchanged. Online: ``data`` is
        the next part of the stream (the statistics advance; a warm-up still pending is ended
        by the end of ``data``), and a RecordBatch still gives one RecordBatch.
        """
        if self._online is not None:
            schema, batches = schema_and_batches(data)
            if schema is None:
                raise ValueError("cannot transform an empty iterable: it has no schema")
            out = list(self._online_stream(batches))
            out_schema = plan.widened(self.output_schema(schema), out)
            out = [b if b.schema.equals(out_schema) else b.cast(out_schema) for b in out]
            if isinstance(data, pa.RecordBatch):
                return out[0]
            return pa.Table.from_batches(out, schema=out_schema)
        return _map_batches(data, self._transform_batch, self.output_schema, "transform")

    def transform_batches(
        self, source: Source, batch_size: int | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Normalize ``source`` lazily, one output batch per input batch (bounded memory).

        Online, each batch is read, taken into the statistics and normalized before the next
        one is read (only a warm-up reads ahead, up to its rows), so ``source`` may be an
        endless iterator: nothing accumulates but the warm-up buffer.
        """
        _, batches = schema_and_batches(source, batch_size=batch_size)
        if self._online is not None:
            yield from self._online_stream(batches)
            return
        for batch in batches:
            yield self._transform_batch(batch)

    def _online_stream(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Online: each batch into the statistics, then out normalized as soon as released."""
        state = self._online
        assert state is not None
        for batch in batches:
            for ready in state.feed(batch):
                yield self._transform_batch(ready)
        for ready in state.end():
            yield self._transform_batch(ready)

    def _transform_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if not self.is_fitted:
            self._require_stats()
        out_schema, how = self._plan(batch.schema)
        kernels = backend(self.target)
        if self._online is not None:
            centers = self._online.center_scale(how, self.eps, self.ddof)
            arrays = mappers.map_batch(batch, out_schema, centers, kernels, inverse=False)
        elif self.mode == "batch" and self.by is not None:
            arrays = mappers.map_grouped_batch(self._require_stats(), batch, out_schema,
                                               list(how), self.eps, self.ddof, inverse=False)
        elif self.mode in PER_FEATURE_MODES:
            arrays = mappers.map_batch(batch, out_schema, how, kernels, inverse=False)
        else:
            rule = mappers.RowRule(self.mode, self.eps, self.ddof, self.nan)
            arrays = mappers.map_rows(batch, out_schema, how, kernels, rule)
        return pa.RecordBatch.from_arrays(arrays, schema=out_schema)

    # ------------------------------------------------------------------ inverse
    def inverse_transform(self, data: Source) -> pa.RecordBatch | pa.Table:
        """Undo a batch-mode :meth:`transform`: ``x = y * scale + mean`` per column.

        A RecordBatch gives a RecordBatch, anything else a Table. Restored columns are float64
        (float32 stays float32); the ``streamnorm`` metadata record is dropped. Layer and rms
        modes cannot be undone (the per-row statistics are not kept): ``ValueError``.
        """
        return _map_batches(data, self._inverse_batch, self._inverse_schema, "inverse-transform")

    def inverse_transform_batches(
        self, source: Source, batch_size: int | None = None
    ) -> Iterator[pa.RecordBatch]:
        """:meth:`inverse_transform` lazily, one output batch per input batch."""
        _, batches = schema_and_batches(source, batch_size=batch_size)
        for batch in batches:
            yield self._inverse_batch(batch)

    def _inverse_schema(self, schema: pa.Schema) -> pa.Schema:
        if self._online is not None:
            raise ValueError(record.ONLINE_NO_INVERSE)
        if self.mode not in PER_FEATURE_MODES:
            raise ValueError(
                f"mode {self.mode!r} cannot be inverted: each row's statistics are not kept; "
                "only batch- and robust-mode normalization have an inverse"
            )
        chosen = plan.batch_columns(schema, self.columns, self._require_stats())
        return plan.inverse_schema(schema, chosen, record.METADATA_KEY)

    def _inverse_plan(self, schema: pa.Schema) -> tuple[pa.Schema, list[str], Any]:
        """(restored schema, restored columns, their (center, scale) or None with ``by``),
        cached for the last schema seen: a batch costs no per-column lookup over the schema or
        the statistics (linear in the column count, not quadratic)."""
        cached = self._inverse_cache
        if cached is not None and cached[0].equals(schema, check_metadata=True):
            return cached[1], cached[2], cached[3]
        out_schema = self._inverse_schema(schema)
        names = self.normalized_columns(schema)
        centers = None if self.by is not None else self._center_scale(names)
        self._inverse_cache = (schema, out_schema, names, centers)
        return out_schema, names, centers

    def _inverse_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        out_schema, names, centers = self._inverse_plan(batch.schema)
        if self.by is not None:
            arrays = mappers.map_grouped_batch(self._require_stats(), batch, out_schema, names,
                                               self.eps, self.ddof, inverse=True)
            return pa.RecordBatch.from_arrays(arrays, schema=out_schema)
        arrays = mappers.map_batch(batch, out_schema, centers, backend(self.target),
                                   inverse=True)
        return pa.RecordBatch.from_arrays(arrays, schema=out_schema)
