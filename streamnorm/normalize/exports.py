"""Take a fitted normalization where it is used: as a ``torch.nn.Module``, as polars
expressions, or as a fitted scikit-learn scaler, with no streamnorm at run time.

Everything starts from an :class:`ExportPlan` (:meth:`Normalizer.export_plan`): the mode, the
columns in order and, for the per-feature modes (batch, minmax, and any other mode of
:data:`.affine.CENTER_SCALE`), one ``(center, scale)`` pair per column, so any per-feature mode
exports as ``(x - center) / scale``. The per-row modes (layer, rms) export their formula, with
the normalizer's ``eps``, ``ddof`` and ``nan``.

torch, polars and scikit-learn stay optional: each is imported only by the function that
needs it, and a missing one is an ``ImportError`` naming the extra to install.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ..state.exports import require, set_seen, standard_scaler
from .affine import MINMAX_ZERO_RANGE
from .mappers import HUGE
from .plan import output_type


@dataclass(frozen=True)
class ExportPlan:
    """What an export needs to reproduce a fitted :class:`~streamnorm.Normalizer`.

    ``columns``: the normalized columns in order (the order of a tensor's F axis); None for a
    per-row mode told no columns and no schema (then every column given is normalized).
    ``center`` / ``scale``: float64 arrays (len(columns),) of a per-feature mode, else None.
    ``vectors``: FixedSizeList columns of a per-row mode (each normalized within itself).
    """

    mode: str
    columns: list[str] | None
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    eps: float = 0.0
    ddof: int = 0
    nan: str = "skip"
    options: dict[str, Any] = field(default_factory=dict)
    vectors: list[str] = field(default_factory=list)

    @property
    def per_feature(self) -> bool:
        """Whether each column has its own fitted ``(center, scale)``."""
        return self.center is not None


def arrow_schema(schema: Any) -> pa.Schema | None:
    """``schema`` as a ``pyarrow.Schema``: a pyarrow schema, a polars schema / DataFrame /
    LazyFrame, or anything with an Arrow schema; None stays None."""
    if schema is None or isinstance(schema, pa.Schema):
        return schema
    if hasattr(schema, "collect_schema"):  # polars DataFrame / LazyFrame
        schema = schema.collect_schema()
    if hasattr(schema, "__arrow_c_schema__") and not hasattr(schema, "items"):
        return pa.schema(schema)
    if hasattr(schema, "items"):  # polars Schema or {name: polars dtype}
        pl = require("polars", "polars", "a polars schema")
        return pl.DataFrame(schema=dict(schema.items())).to_arrow().schema
    raise TypeError(f"schema must be a pyarrow or polars schema, got {type(schema).__name__}")


def _refuse_vectors(plan: ExportPlan, where: str) -> None:
    if plan.vectors:
        raise ValueError(
            f"{where}: vector column(s) {plan.vectors} are normalized vector by vector in "
            f"{plan.mode} mode, which this export does not do; export a normalizer of the "
            "scalar columns (columns=[...]), or normalize the vectors with transform()"
        )


# --------------------------------------------------------------------------- polars


def polars_expressions(plan: ExportPlan, schema: pa.Schema | None = None) -> list[Any]:
    """polars expressions, one per normalized column (aliased to its name), such that
    ``df.with_columns(exprs)`` equals ``Normalizer.transform(df)``.

    Computed in Float64 and cast to ``Float32`` for a float32 column and to ``Float64`` for
    any other: from ``schema`` (Arrow) when given, else decided by polars when the expressions
    run (``pl.dtype_of(column + 0.0)``; polars marks ``dtype_of`` unstable, and a ``Float16``
    column would stay Float16 where ``transform`` gives Float64: give the schema to be sure).
    Nulls stay null, NaN as in ``transform``.
    """
    pl = require("polars", "polars", "Normalizer.to_polars()")
    _refuse_vectors(plan, "to_polars()")
    if plan.columns is None:
        raise ValueError(f"to_polars(): a {plan.mode}-mode normalizer without columns= needs "
                         "the data's schema to know its columns: norm.to_polars(df.schema)")

    def out_type(name: str) -> Any:
        if schema is not None and name in schema.names:
            return pl.Float32 if output_type(schema.field(name).type) == pa.float32() else (
                pl.Float64)
        if not hasattr(pl, "dtype_of"):
            raise ImportError("to_polars() without a schema needs a polars with pl.dtype_of "
                              "(upgrade polars), or give the schema: norm.to_polars(df.schema)")
        return pl.dtype_of(pl.col(name) + 0.0)

    if plan.per_feature:
        assert plan.center is not None and plan.scale is not None
        exprs = []
        for name, c, s in zip(plan.columns, plan.center.tolist(), plan.scale.tolist()):
            x = pl.col(name).cast(pl.Float64)
            if abs(c) > HUGE or s > HUGE:  # as the mapper: halved operands cannot overflow
                y = (x * 0.5 - c * 0.5) / (s * 0.5)
            else:
                y = (x - c) / s
            exprs.append(y.cast(out_type(name)).alias(name))
        return exprs
    if not plan.columns:
        return []
    center, scale = _polars_row_center_scale(pl, plan)
    return [((pl.col(n).cast(pl.Float64) - center) / scale).cast(out_type(n)).alias(n)
            for n in plan.columns]


def _polars_row_center_scale(pl: Any, plan: ExportPlan) -> tuple[Any, Any]:
    """Per-row (center, scale) expressions of layer / rms mode over ``plan.columns``, as
    :func:`.mappers.row_center_scale` (two passes: mean, then squared deviations)."""
    xs = [pl.col(n).cast(pl.Float64) for n in plan.columns or ()]
    values = [x.fill_nan(None) for x in xs] if plan.nan == "skip" else xs
    count = pl.sum_horizontal([v.is_not_null().cast(pl.Float64) for v in values])
    mean = pl.sum_horizontal(values) / count
    m2 = pl.sum_horizontal([(v - mean) ** 2 for v in values])
    if plan.mode == "layer":
        denominator = count - plan.ddof
        var = pl.when(denominator > 0).then(m2 / denominator).otherwise(float("nan"))
        center = mean
        scale = (var + plan.eps).sqrt()
    else:
        center = pl.when(count > 0).then(pl.lit(0.0)).otherwise(float("nan"))
        scale = (m2 / count + mean * mean + plan.eps).sqrt()
    scale = pl.when(scale == 0.0).then(pl.lit(1.0)).otherwise(scale)
    if plan.nan == "propagate":
        poisoned = pl.any_horizontal([x.is_nan().fill_null(False) for x in xs])
        center = pl.when(poisoned).then(float("nan")).otherwise(center)
    return center, scale


# --------------------------------------------------------------------------- torch


def torch_module(plan: ExportPlan) -> Any:
    """A ``torch.nn.Module`` applying ``plan`` to an ``(N, F)`` floating tensor whose F columns
    are ``plan.columns`` in that order (see :class:`~streamnorm.Normalizer.to_torch`)."""
    torch = require("torch", "torch", "Normalizer.to_torch()")
    _refuse_vectors(plan, "to_torch()")
    if plan.per_feature:
        assert plan.center is not None and plan.scale is not None
        return _affine_module_class(torch)(plan)
    return _row_module_class(torch)(plan)


def _forward_dtype(torch: Any, x: Any, buffer: Any) -> Any:
    return x.dtype if x.is_floating_point() else buffer.dtype


def _affine_module_class(torch: Any) -> type:
    class AffineNorm(torch.nn.Module):  # type: ignore[misc, name-defined]
        """``(x - center) / scale`` per column of an ``(N, F)`` tensor; buffers ``center``
        and ``scale`` (F,), float64 unless moved with ``.to(dtype)``; computed in the
        buffers' dtype, returned in x's floating dtype. NaN stays NaN."""

        def __init__(self, plan: ExportPlan) -> None:
            super().__init__()
            self.mode = plan.mode
            self.columns = list(plan.columns or [])
            self.options = dict(plan.options)
            self.register_buffer("center", torch.from_numpy(np.array(plan.center)))
            self.register_buffer("scale", torch.from_numpy(np.array(plan.scale)))

        def _check(self, x: Any) -> None:
            if x.dim() != 2 or x.shape[1] != len(self.columns):
                raise ValueError(f"expected an (N, {len(self.columns)}) tensor (columns "
                                 f"{self.columns}), got shape {tuple(x.shape)}")

        def forward(self, x: Any) -> Any:
            self._check(x)
            out = (x.to(self.center.dtype) - self.center) / self.scale
            return out.to(_forward_dtype(torch, x, self.center))

        def inverse(self, y: Any) -> Any:
            """``y * scale + center``: back to the original units."""
            self._check(y)
            out = y.to(self.center.dtype) * self.scale + self.center
            return out.to(_forward_dtype(torch, y, self.center))

        def extra_repr(self) -> str:
            return f"mode={self.mode!r}, columns={self.columns}"

    return AffineNorm


def _row_module_class(torch: Any) -> type:
    class RowNorm(torch.nn.Module):  # type: ignore[misc, name-defined]
        """Layer / rms normalization of each row of an ``(N, F)`` tensor, as streamnorm's
        (population variance unless ``ddof``; ``eps`` under the root; a zero scale is 1; NaN
        skipped by the row statistics or, with ``nan="propagate"``, poisoning its row).
        Computed in the dtype of the ``eps`` buffer (float64 unless moved with
        ``.to(dtype)``), returned in x's floating dtype."""

        def __init__(self, plan: ExportPlan) -> None:
            super().__init__()
            self.mode = plan.mode
            self.columns = None if plan.columns is None else list(plan.columns)
            self.ddof = plan.ddof
            self.nan = plan.nan
            self.register_buffer("eps", torch.tensor(float(plan.eps), dtype=torch.float64))

        def forward(self, x: Any) -> Any:
            if x.dim() != 2 or (self.columns is not None and x.shape[1] != len(self.columns)):
                width = "F" if self.columns is None else len(self.columns)
                raise ValueError(f"expected an (N, {width}) tensor, got shape {tuple(x.shape)}")
            v = x.to(self.eps.dtype)
            isnan = torch.isnan(v)
            valid = ~isnan if self.nan == "skip" else torch.ones_like(isnan)
            count = valid.sum(dim=1, keepdim=True).to(v.dtype)
            zero = torch.zeros((), dtype=v.dtype, device=v.device)
            kept = torch.where(valid, v, zero)
            mean = kept.sum(dim=1, keepdim=True) / count
            m2 = torch.where(valid, (v - mean) ** 2, zero).sum(dim=1, keepdim=True)
            if self.mode == "layer":
                denominator = count - self.ddof
                var = torch.where(denominator > 0, m2 / denominator.clamp(min=1),
                                  torch.full_like(m2, float("nan")))
                center = mean
                scale = torch.sqrt(var + self.eps)
            else:
                center = torch.where(count > 0, torch.zeros_like(mean),
                                     torch.full_like(mean, float("nan")))
                scale = torch.sqrt(m2 / count + mean * mean + self.eps)
            scale = torch.where(scale == 0, torch.ones_like(scale), scale)
            if self.nan == "propagate":
                center = torch.where(isnan.any(dim=1, keepdim=True),
                                     torch.full_like(center, float("nan")), center)
            return ((v - center) / scale).to(_forward_dtype(torch, x, self.eps))

        def extra_repr(self) -> str:
            return f"mode={self.mode!r}, columns={self.columns}, eps={float(self.eps):g}"

    return RowNorm


# --------------------------------------------------------------------------- scikit-learn


def sklearn_scaler(plan: ExportPlan, count: np.ndarray, rows: np.ndarray, mean: np.ndarray,
                   var: np.ndarray, low: np.ndarray, high: np.ndarray) -> Any:
    """A fitted scikit-learn scaler equivalent to a per-feature ``plan``: ``StandardScaler``
    (batch: ``mean_``, ``var_``, ``scale_`` = the plan's scale), ``RobustScaler`` (robust:
    ``center_``, ``scale_``) or ``MinMaxScaler`` (minmax:
    ``data_min_``, ``data_max_``, ``data_range_``, ``scale_``, ``min_`` as its ``fit`` sets
    them). ``count`` (valid values), ``rows`` (rows seen, NaN and nulls included: sklearn's
    ``MinMaxScaler.n_samples_seen_``), ``mean``, ``var``, ``low``, ``high``: the statistics
    over ``plan.columns``, arrays (len(columns),)."""
    preprocessing = require("sklearn.preprocessing", "sklearn", "Normalizer.to_sklearn()")
    if not plan.per_feature:
        raise ValueError(f"{plan.mode} mode has no scikit-learn scaler (its statistics are "
                         "per row); only batch, minmax and robust normalizers convert")
    assert plan.columns is not None and plan.scale is not None
    if plan.mode == "batch":
        return standard_scaler(plan.columns, count, mean, var, plan.scale)
    if plan.mode == "minmax":
        lo, hi = plan.options["feature_range"]
        scaler = preprocessing.MinMaxScaler(feature_range=(lo, hi))
        scaler.data_min_, scaler.data_max_ = np.array(low), np.array(high)
        scaler.data_range_ = high - low
        divisor = scaler.data_range_.copy()
        divisor[divisor < MINMAX_ZERO_RANGE] = 1.0  # sklearn's _handle_zeros_in_scale
        scaler.scale_ = (hi - lo) / divisor
        scaler.min_ = lo - low * scaler.scale_
        set_seen(scaler, plan.columns, rows)
        return scaler
    if plan.mode == "robust":
        lo, hi = plan.options["quantile_range"]
        scaler = preprocessing.RobustScaler(quantile_range=(lo, hi))
        scaler.center_, scaler.scale_ = np.array(plan.center), np.array(plan.scale)
        set_seen(scaler, plan.columns, rows)
        return scaler
    raise ValueError(f"mode {plan.mode!r} has no scikit-learn scaler wired in yet; use "
                     "transform(), to_torch() or to_polars()")
