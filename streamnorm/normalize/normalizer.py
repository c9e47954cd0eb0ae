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
``"minmax"``
    scikit-learn's ``MinMaxScaler``: each chosen column maps its fitted ``[min, max]`` onto
    ``feature_range=(lo, hi)`` (default (0, 1)), ``(x - min) / (max - min) * (hi - lo) + lo``,
    computed as ``(x - center) / scale`` (:func:`.affine.minmax`); a range below 10 machine
    epsilons counts as 1 (sklearn), so a constant column maps to ``lo``. No clipping: values
    outside the fitted range map outside ``feature_range``.

Per-feature modes (batch, minmax) are one ``(center, scale)`` pair per column
(:mod:`.affine`), so they transform, invert and export (:mod:`streamnorm.exports`) alike.

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

import numpy as np
import pyarrow as pa

from ..arrow.open import Source, schema_and_batches
from ..errors import InputError
from ..kernels import backend
from ..progress import Progress
from ..state.features import FeatureStats
from . import affine, exports, mappers, plan, record
from .online import OnlineState, check_online, check_online_options, stats_rows
from .plan import Mode

_DEFAULT_EPS = {"batch": 0.0, "layer": 1e-5, "rms": 1e-5, "minmax": 0.0, "robust": 0.0}


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
    mode : ``"batch"`` (BatchNorm / StandardScaler), ``"layer"`` (LayerNorm), ``"rms"``
        (RMSNorm) or ``"minmax"`` (MinMaxScaler); see the module docstring for the formulas.
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
    feature_range : minmax mode: ``(lo, hi)`` with ``lo < hi``, default (0, 1).
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
        feature_range: tuple[float, float] | None = None,
        quantile_range: tuple[float, float] | None = None,
    ) -> None:
        self.mode = plan.check_mode(mode)
        #: the mode's own options (``feature_range`` for minmax, ``quantile_range`` for
        #: robust), checked, defaults filled in
        self.options = affine.mode_options(
            mode, {"feature_range": feature_range, "quantile_range": quantile_range})
        #: robust mode read back from a record: its recorded ``{column: (center, scale)}``
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
            + "".join(f", {k}={v!r}" for k, v in self.options.items())
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
        if not affine.is_per_feature(self.mode):
            return None
        if self._online is not None:
            return self._online.stats
        return self._require_stats()

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`transform` can run (always True in layer / rms mode)."""
        return (not affine.is_per_feature(self.mode) or self._stats is not None
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
                f"this {self.mode}-mode Normalizer is not fitted: call fit(source) first, or "
                "build it with Normalizer.from_stats(...)"
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
        if not affine.is_per_feature(self.mode):
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
        mode: str | None = None,
        feature_range: tuple[float, float] | None = None,
        quantile_range: tuple[float, float] | None = None,
    ) -> Normalizer:
        """A fitted per-feature (batch, minmax or robust) Normalizer from statistics computed
        elsewhere.

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
                if not affine.is_per_feature(made.mode):
                    raise InputError(
                        f"{path}: was normalized in {made.mode} mode, which has no "
                        "per-column statistics; give a batch-mode file or a stats file"
                    )
                mode = made.mode if mode is None else mode
                if mode == made.mode:
                    if feature_range is None:
                        feature_range = made.options.get("feature_range")
                    recorded_range = made.options.get("quantile_range")
                    if quantile_range is None or tuple(quantile_range) == recorded_range:
                        quantile_range, recorded = recorded_range, made._recorded
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
        mode = "batch" if mode is None else mode
        if not affine.is_per_feature(mode):
            raise ValueError(f"statistics apply to the per-feature modes "
                             f"{tuple(affine.CENTER_SCALE)}, not mode={mode!r}")
        if mode == "robust" and recorded is None and not stats.quantiles:
            raise InputError("mode 'robust' needs statistics with quantile sketches: compute "
                             "them with FeatureStats(quantiles=True) or `streamnorm stats "
                             "--quantiles 0.5 -o FILE`")
        norm = cls(
            mode, columns=columns, eps=eps, ddof=ddof or 0, nan=stats.nan, target=target,  # type: ignore[arg-type]
            feature_range=feature_range,
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
            by=found.get("by"), **found.get("options", {}),
        )
        if affine.is_per_feature(found["mode"]):
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
        stats = self._require_stats() if affine.is_per_feature(self.mode) else None
        made = record.make_record(self.mode, self.eps, self.ddof, self.nan, self.columns,
                                  self.inf, self.by, stats, self._stats_file, self.options)
        if self.mode == "robust":  # the inverse needs no sketch: center and scale go along
            made.update(record.robust_fields(self._center_scale(
                stats.columns, check=False)))  # type: ignore[union-attr]
        return made

    def _center_scale(self, names: Sequence[str], check: bool = True
                      ) -> dict[str, tuple[float, float]]:
        """``{column: (center, scale)}`` of the per-feature mode over ``names``: the recorded
        ones (robust mode read back from a normalized file), else from the statistics
        (:mod:`~streamnorm.normalize.affine`); ``check``: refuse statistics holding ±inf."""
        if self._recorded is not None:
            return {name: self._recorded[name] for name in names}
        return affine.center_scale_plan(self.mode, self._require_stats(), names, eps=self.eps,
                                        ddof=self.ddof, options=self.options,
                                        check_finite=check)

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

    # ------------------------------------------------------------------ exports
    def export_plan(self, schema: Any = None) -> exports.ExportPlan:
        """What the exports need (:class:`~streamnorm.normalize.exports.ExportPlan`): the
        columns in order and, per-feature modes, their ``(center, scale)`` float64 arrays.

        ``schema`` (pyarrow or polars; optional) fixes the columns as :meth:`transform` would
        on such data; without it: ``columns=``, else the statistics' columns (per-feature) or
        None (layer / rms: every column given at run time).
        """
        schema = exports.arrow_schema(schema)
        if affine.is_per_feature(self.mode):
            stats = self._require_stats()
            if self.by is not None:
                raise ValueError("a normalizer with by= (statistics per key) has no single "
                                 "(center, scale) per column to export; drop by=")
            names = (self.normalized_columns(schema) if schema is not None
                     else list(self.columns if self.columns is not None else stats.columns))
            plan.check_stats_columns(names, stats)
            pairs = self._center_scale(names)
            center = np.array([pairs[n][0] for n in names], dtype=np.float64)
            scale = np.array([pairs[n][1] for n in names], dtype=np.float64)
            return exports.ExportPlan(self.mode, names, center, scale, self.eps, self.ddof,
                                      self.nan, dict(self.options))
        if schema is not None:
            scalars, vectors = plan.row_columns(schema, self.columns)
            columns: list[str] | None = plan.in_schema_order(schema, scalars)
            vectors = plan.in_schema_order(schema, vectors)
        else:
            columns, vectors = (None if self.columns is None else list(self.columns)), []
        return exports.ExportPlan(self.mode, columns, None, None, self.eps, self.ddof,
                                  self.nan, dict(self.options), vectors)

    def to_torch(self, schema: Any = None) -> Any:
        """A ``torch.nn.Module`` applying this normalization to an ``(N, F)`` floating tensor
        whose F columns are ``module.columns``, in that order (:meth:`export_plan`).

        Per-feature modes: buffers ``center`` and ``scale`` (F,), so ``.to(device)`` moves
        them; float64 by default, so the module computes in float64 and returns x's dtype
        (the values :meth:`transform` gives); ``.to(torch.float32)`` computes in float32.
        ``module.inverse(y)`` undoes it. Layer / rms: each row over its F values, with this
        normalizer's ``eps``, ``ddof`` and ``nan``. Tensors have no nulls: give missing values
        as NaN; NaN stays NaN. Needs torch (``ImportError`` otherwise); vector columns of a
        layer / rms normalizer are refused.
        """
        return exports.torch_module(self.export_plan(schema))

    def to_polars(self, schema: Any = None) -> list[Any]:
        """polars expressions such that ``df.with_columns(norm.to_polars())`` equals
        ``norm.transform(df)`` (values, nulls, NaN and Float32 / Float64 output types).

        Layer / rms normalizers need ``columns=`` or the data's ``schema`` (e.g.
        ``df.schema``) to know their columns; their vector columns are refused. With a
        schema, the output types come from it; without, polars decides them as the
        expressions run (``pl.dtype_of``). Needs polars.
        """
        arrow = exports.arrow_schema(schema)
        return exports.polars_expressions(self.export_plan(arrow), arrow)

    def to_sklearn(self) -> Any:
        """A fitted scikit-learn scaler doing this normalization on the columns of
        :meth:`export_plan`: ``StandardScaler`` (batch; ``scale_`` is this normalizer's, so
        eps and ddof are honoured) or ``MinMaxScaler`` (minmax). Needs scikit-learn."""
        if not affine.is_per_feature(self.mode):
            raise ValueError(f"{self.mode} mode has no scikit-learn scaler (its statistics are "
                             "per row); only per-feature normalizers convert")
        found = self.export_plan()
        stats = self._require_stats()
        at = [stats.columns.index(n) for n in found.columns or ()]
        rows = stats.count + stats.null_count + stats.nan_count
        if stats.inf == "skip":
            rows = rows + stats.inf_count
        return exports.sklearn_scaler(found, stats.count[at], rows[at], stats.mean[at],
                                      stats.var(self.ddof)[at], stats.min[at], stats.max[at])

    # ------------------------------------------------------------------ planning
    def normalized_columns(self, schema: pa.Schema) -> list[str]:
        """The columns of ``schema`` this Normalizer changes, in schema order."""
        if self._online is not None:
            return self._online.bind(schema)
        if affine.is_per_feature(self.mode):
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
        elif affine.is_per_feature(self.mode):
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
        elif affine.is_per_feature(self.mode):
            arrays = mappers.map_batch(batch, out_schema, how, kernels, inverse=False)
        else:
            rule = mappers.RowRule(self.mode, self.eps, self.ddof, self.nan)
            arrays = mappers.map_rows(batch, out_schema, how, kernels, rule)
        return pa.RecordBatch.from_arrays(arrays, schema=out_schema)

    # ------------------------------------------------------------------ inverse
    def inverse_transform(self, data: Source) -> pa.RecordBatch | pa.Table:
        """Undo a per-feature (batch, minmax) :meth:`transform`: ``x = y * scale + center``.

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
        if not affine.is_per_feature(self.mode):
            raise ValueError(
                f"mode {self.mode!r} cannot be inverted: each row's statistics are not kept; "
                "only per-feature (batch, minmax, robust) normalization has an inverse"
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
