"""Per-column statistics: :class:`FeatureStats` (state, update dispatch, merge, results).

The state of each column is (count, null_count, nan_count, inf_count, shift, shifted_mean, m2,
min, max, scale_exponent), held in a :class:`~streamnorm.state.merge.Moments`: ``shift`` is the
first finite value the column saw, ``shifted_mean`` the mean of ``x - shift`` and ``m2`` the sum
of squared deviations from the mean (docs/design.md §4). ``scale_exponent`` e is 0 except for
a column whose float64 moments would overflow (values beyond ~1e150 of both signs, or a spread
beyond ~1e154): its shift and shifted_mean are then in units of 2**e and m2 in units of 4**e,
so mean and std stay finite and accurate. States merge exactly and associatively, whatever produced
them (batches, threads, files, workers, CPU or GPU). The ingest paths are in
:mod:`~streamnorm.state.ingest`, the saved layout and file I/O in
:mod:`~streamnorm.state.persist`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa

from .. import columns as cols
from ..arrow.open import Source, schema_and_batches
from ..errors import SchemaError
from ..kernels import backend
from . import ingest, persist, small, statsfile
from .merge import Moments, check_moments
from .quantiles import QuantileSketches, quantile_array, table_with_json_sketches

NanPolicy = Literal["skip", "propagate"]
NAN_POLICIES = ("skip", "propagate")
InfPolicy = Literal["keep", "skip"]
INF_POLICIES = ("keep", "skip")


def check_nan_policy(nan: str) -> str:
    """``nan`` unchanged; a ``ValueError`` unless it is one of :data:`NAN_POLICIES`."""
    if nan not in NAN_POLICIES:
        raise ValueError(f"nan must be one of {NAN_POLICIES}, got {nan!r}")
    return nan


def check_inf_policy(inf: str) -> str:
    """``inf`` unchanged; a ``ValueError`` unless it is one of :data:`INF_POLICIES`."""
    if inf not in INF_POLICIES:
        raise ValueError(f"inf must be one of {INF_POLICIES}, got {inf!r}")
    return inf


class FeatureStats:
    """Per-column count, mean, variance, min and max over every row seen (BatchNorm-style).

    Parameters
    ----------
    columns : list of column names, or None for every scalar numeric column of the first
        batch (bool, decimal, string, temporal and list columns are skipped). A bool column
        named here is counted as 0/1 (false 0, true 1), as pandas and numbagg do.
    nan : ``"skip"`` (default) skips NaN and counts it in ``nan_count``; ``"propagate"`` makes
        the mean, variance, min and max of a column with any NaN be NaN.
    target : ``"cpu"`` or ``"cuda"``; default ``$STREAMNORM_TARGET`` or ``"cpu"``.
    inf : ``"keep"`` (default) takes ±inf as values, as numpy does (the mean becomes ±inf or
        NaN, the variance NaN); ``"skip"`` skips them like NaN. Either way ``inf_count``
        counts them (in ``"skip"`` mode they are not in ``count``).
    moments : 2 (default) or 4. With 4 the state also carries m3 and m4 (sums of the third
        and fourth powers of the deviations, merged with Pébay's formulas), for
        :meth:`skew` and :meth:`kurtosis`. The default path does no extra work.
    by : a key column name or a list of them: keep one state per key (see
        :class:`streamnorm.GroupedFeatureStats`).
    quantiles : also keep a mergeable quantile sketch per column (KLL, at most 28 KB each) for
        :meth:`quantile` and :meth:`median`; see :mod:`streamnorm.state.quantiles`.

    ``moments=4``, weights and ``by=`` run on the CPU extension kernels whatever the target.

    Frequency weights: ``update(data, weights="w")`` counts each row ``w`` times. The weights
    column is never a feature; ``count`` becomes the sum of the weights, as float64 (exact for
    integer weights while the sum stays below 2**53; sklearn's ``n_samples_seen_`` does the
    same), and ``var(ddof)`` is ``m2 / (sum_w - ddof)``. A weight of 0 or null drops the row
    (it is not counted in ``null_count``/``nan_count`` either); negative, NaN or infinite
    weights are a ``ValueError``. ``null_count``/``nan_count`` stay row counts (int64).

    Examples
    --------
    >>> import pyarrow as pa, streamnorm as sn
    >>> fs = sn.FeatureStats()
    >>> _ = fs.update(pa.table({"a": [1.0, 2.0, None], "b": [10, 20, 30]}))
    >>> fs.columns, fs.count.tolist(), fs.null_count.tolist()
    (['a', 'b'], [2, 3], [1, 0])
    >>> fs.mean.tolist(), fs.var(ddof=1).tolist()
    ([1.5, 20.0], [0.5, 100.0])

    Higher moments and weights:

    >>> fs4 = sn.FeatureStats(moments=4).update(pa.table({"x": [1.0, 2.0, 3.0, 10.0]}))
    >>> fs4.skew().round(6).tolist(), fs4.kurtosis().round(6).tolist()
    ([1.018234], [-0.7696])
    >>> fw = sn.FeatureStats().update(pa.table({"x": [1.0, 3.0], "w": [3, 1]}), weights="w")
    >>> fw.columns, fw.count.tolist(), fw.mean.tolist(), fw.var(ddof=1).tolist()
    (['x'], [4.0], [1.5], [1.0])
    """

    #: Subclasses chosen by a keyword, filled by ``__init_subclass__(option=...)``: with
    #: ``{"by": GroupedFeatureStats}``, ``FeatureStats(by=...)`` makes a GroupedFeatureStats
    #: and ``FeatureStats.from_arrow`` / ``from_dict`` / ``load`` of a state whose saved
    #: settings hold ``by`` rebuild one, without this module knowing the subclass.
    _variants: ClassVar[dict[str, type[FeatureStats]]] = {}

    def __init_subclass__(cls, *, option: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if option is not None:
            FeatureStats._variants[option] = cls

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is FeatureStats:
            for option, variant in FeatureStats._variants.items():
                if kwargs.get(option) is not None:
                    return super().__new__(variant)
        return super().__new__(cls)

    @classmethod
    def _saved_class(cls, settings: Mapping[str, Any]) -> type[FeatureStats]:
        """The class that rebuilds a state saved with ``settings`` (called on FeatureStats:
        the registered variant whose option the settings hold; on a subclass: itself)."""
        if cls is FeatureStats:
            for option, variant in FeatureStats._variants.items():
                if settings.get(option):
                    return variant
        return cls

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        *,
        nan: NanPolicy = "skip",
        target: str | None = None,
        moments: int = 2,
        by: str | Sequence[str] | None = None,
        inf: InfPolicy = "keep",
        quantiles: bool = False,
    ) -> None:
        if isinstance(columns, str):
            columns = [columns]
        self._requested = list(columns) if columns is not None else None
        self.nan = check_nan_policy(nan)
        self.inf = check_inf_policy(inf)
        self.target = target
        self.moments = check_moments(moments)
        self._columns: list[str] | None = None
        self._types: dict[str, pa.DataType | None] = {}
        self._checked_schema: pa.Schema | None = None
        self._plan: cols.BatchPlan | None = None
        self._small: small.SmallPlan | None = None
        self._state = Moments(self._shape(0), self.moments)
        self.quantiles = bool(quantiles)
        self._sketch: QuantileSketches | None = None

    @property
    def weighted(self) -> bool:
        """Whether any weighted update or merge went into this state (counts are float64)."""
        return self._state.weighted

    def _shape(self, k: int) -> tuple[int, ...]:
        """The shape of the state arrays for ``k`` columns."""
        return (k,)

    def _not_features(self) -> set[str]:
        """Columns never picked automatically as features (weights, group keys)."""
        return set(getattr(self, "_exclude", ()))

    def _bind(self, schema: pa.Schema) -> None:
        """Choose and check the tracked columns from the first schema seen."""
        if self._requested is None:
            skip = self._not_features()
            names = [n for n in cols.numeric_column_names(schema) if n not in skip]
        else:
            names = self._requested
            for name in names:
                cols.check_numeric(name, cols.field_type(schema, name))
        self._columns = list(names)
        self._types = {name: schema.field(name).type for name in names}
        self._state.allocate(self._shape(len(names)))
        if self.quantiles:
            self._sketch = QuantileSketches(len(names))
        self._remember_schema(schema)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the schema cache: partial states travel between Dask workers."""
        state = self.__dict__.copy()
        state["_checked_schema"] = state["_plan"] = state["_small"] = None
        return state

    def _remember_schema(self, schema: pa.Schema) -> None:
        """Batches of this schema need no more checks; plan where their columns lie."""
        self._checked_schema = schema
        self._plan = cols.plan_batches(schema, self._columns)  # type: ignore[arg-type]
        self._small = None  # made for this schema at its first small batch

    def _check_schema(self, schema: pa.Schema) -> None:
        assert self._columns is not None
        if self._checked_schema is not None and schema.equals(self._checked_schema):
            return  # the batches of one source share a schema: check it once
        for name in self._columns:
            index = schema.get_field_index(name)
            if index < 0:
                raise SchemaError(
                    f"column {name!r} is missing from this batch (it has: "
                    f"{', '.join(schema.names)}); every batch must carry the tracked columns"
                )
            new_type = schema.field(index).type
            known = self._types.get(name)
            if known is not None and new_type != known:
                widened = cols.promoted_type(known, new_type)
                if widened is None:
                    raise SchemaError(
                        f"column {name!r} changed type from {known} to {new_type}; cast the "
                        "batches to one numeric type first"
                    )
                self._types[name] = widened
        self._remember_schema(schema)

    # ------------------------------------------------------------------ update
    def update(self, data: Source, weights: str | None = None) -> FeatureStats:
        """Add the rows of ``data`` (any source, see :mod:`streamnorm.arrow.open`); returns self.

        ``weights`` names a column of per-row frequency weights (see the class docstring).
        """
        return self._update_from(data, None, weights)

    def _update_from(
        self, data: Source, batch_size: int | None, weights: str | None = None
    ) -> FeatureStats:
        if weights is not None:
            if self.quantiles:
                raise ValueError("quantiles=True does not take weights yet; drop weights= or "
                                 "quantiles=True")
            if weights not in self._not_features():
                self._exclude = (*getattr(self, "_exclude", ()), weights)
            if self._columns is not None and weights in self._columns:
                raise ValueError(
                    f"weights column {weights!r} is a tracked feature; choose the features with "
                    "columns=[...] or weight from the first update on"
                )
        known = self._checked_schema
        if (batch_size is None and isinstance(data, (pa.RecordBatch, pa.Table))
                and known is not None and data.schema.equals(known)):
            # a stream's next batch: its schema is known and checked, nothing to open
            for batch in [data] if isinstance(data, pa.RecordBatch) else data.to_batches():
                self._update_batch(batch, weights)
            return self
        wanted = None if self._requested is None else [*self._requested, *self._not_features()]
        schema, batches = schema_and_batches(data, wanted, batch_size)
        named = self._requested or []  # named bool columns count as 0/1 (uint8)
        if self._columns is None and schema is not None:
            self._bind(cols.bools_as_uint8(schema, named))  # a source without rows fixes them
        for batch in batches:
            self._update_batch(cols.bools_as_uint8(batch, named), weights)
        return self

    def _update_batch(self, batch: pa.RecordBatch, weights: str | None = None) -> None:
        """Add one batch (a RecordBatch, or a Table whose columns may be chunked)."""
        if self._columns is None:
            self._bind(batch.schema)
        else:
            self._check_schema(batch.schema)
        kernels = backend(self.target)
        plan = self._small
        if plan is None or plan.weights != weights:
            plan = self._small = small.plan_small(batch.schema, self._plan, weights,
                                                 self.moments, kernels)
        names: list[str] = self._columns  # type: ignore[assignment]
        if plan is None or not small.add_small(self._state, batch, names, plan, kernels,
                                               self.inf):
            ingest.add_batch(self._state, batch, self._columns,  # type: ignore[arg-type]
                             self._plan, kernels, self.inf, weights)
        if self._sketch is not None:
            self._sketch.update(batch, self._columns, self.inf == "skip")  # type: ignore[arg-type]

    # ------------------------------------------------------------------ merge
    def _check_mergeable(self, other: object) -> None:
        """Raise unless ``other`` is a state of the same kind and settings."""
        if not isinstance(other, FeatureStats):
            raise TypeError(f"can only merge FeatureStats, not {type(other).__name__}")
        if other.nan != self.nan:
            raise ValueError(f"cannot merge nan={self.nan!r} with nan={other.nan!r} statistics")
        if other.inf != self.inf:
            raise ValueError(f"cannot merge inf={self.inf!r} with inf={other.inf!r} statistics")
        if other.moments != self.moments:
            raise ValueError(
                f"cannot merge moments={other.moments} statistics into moments={self.moments} "
                "ones; fit both with the same moments="
            )
        if type(other) is not type(self):
            raise TypeError("cannot merge grouped (by=) and ungrouped statistics")
        if other.quantiles != self.quantiles:
            raise ValueError("cannot merge statistics with and without quantiles; fit both "
                             "with the same quantiles=")

    def _start_merge(self, other: FeatureStats) -> bool:
        """The checks and trivial cases every merge shares; True when there is work left.

        An empty ``other`` leaves this state as it is; an empty ``self`` becomes a copy of
        ``other``; otherwise the columns must match.
        """
        self._check_mergeable(other)
        if other._columns is None:
            return False
        if self._columns is None:
            self._copy_state_from(other)
            return False
        if other._columns != self._columns:
            raise SchemaError(
                f"cannot merge statistics of columns {other._columns} into {self._columns}; "
                "fit both on the same columns"
            )
        for name, theirs in other._types.items():
            mine = self._types.get(name)
            if mine is not None and theirs is not None:
                self._types[name] = cols.promoted_type(mine, theirs) or mine
        return True

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Merge ``other`` into this state, in place; returns self. Exact and associative."""
        if self._start_merge(other):
            self._state.merge(other._state)
            if self._sketch is not None and other._sketch is not None:
                self._sketch.merge(other._sketch)
        return self

    def _copy_state_from(self, other: FeatureStats) -> None:
        self._columns = list(other._columns or [])
        self._types = dict(other._types)
        self._exclude = tuple(getattr(other, "_exclude", ()))
        self._state = other._state.copy()
        self._sketch = other._sketch.copy() if other._sketch is not None else None

    def copy(self) -> FeatureStats:
        """An independent copy of this state."""
        twin = FeatureStats(
            self._requested, nan=self.nan, target=self.target,  # type: ignore[arg-type]
            moments=self.moments, inf=self.inf, quantiles=self.quantiles,  # type: ignore[arg-type]
        )
        if self._columns is not None:
            twin._copy_state_from(self)
        return twin

    def __add__(self, other: FeatureStats) -> FeatureStats:
        return self.copy().merge(other)

    def _rows_of(self, other: FeatureStats) -> Any:
        """The entries of this state that ``other``'s entries are (grouped: by key)."""
        return slice(None)

    def subtract(self, other: FeatureStats) -> FeatureStats:
        """Remove ``other``, a part merged into this state earlier, in place; returns self.

        The inverse of :meth:`merge` (river's ``-``): counts exact, mean and m2 (m3, m4) from
        Chan's (Pébay's) merge solved for the remainder (relative error about ``eps · n /
        n_rest``: README), min and max kept as outer bounds. ``ValueError`` when ``other``
        holds more of anything, other columns, settings or weights, or quantile sketches.
        """
        self._check_mergeable(other)
        if other._columns is None:
            return self
        if self.quantiles:  # a sketch keeps no trace of which values went into it
            raise ValueError("quantile sketches cannot be subtracted; fit the rest afresh")
        if self._columns is not None and other._columns != self._columns:
            raise SchemaError(f"cannot subtract statistics of columns {other._columns} from "
                              f"{self._columns}; both must be fitted on the same columns")
        if other.weighted and not self.weighted:
            raise ValueError("cannot subtract weighted statistics from unweighted ones")
        if self._columns is None:  # nothing here: only an empty part can be taken away
            Moments(other._state.count.shape).subtract(other._state, names=other.columns)
            return self
        self._state.subtract(other._state, self._rows_of(other), names=self.columns)
        return self

    def __sub__(self, other: FeatureStats) -> FeatureStats:
        return self.copy().subtract(other)

    # ------------------------------------------------------------------ results
    @property
    def columns(self) -> list[str]:
        """Names of the tracked columns (empty before the first update)."""
        return list(self._columns or [])

    @property
    def count(self) -> np.ndarray:
        """Valid values per column (nulls and NaN excluded), int64, shape (n_columns,).

        With weights: the sum of the weights of the valid values, float64."""
        return self._state.count.copy()

    @property
    def null_count(self) -> np.ndarray:
        """Arrow nulls per column, int64, shape (n_columns,)."""
        return self._state.null_count.copy()

    @property
    def nan_count(self) -> np.ndarray:
        """NaN values per column, int64, shape (n_columns,)."""
        return self._state.nan_count.copy()

    @property
    def inf_count(self) -> np.ndarray:
        """±inf values per column (non-null), int64, shape (n_columns,); with ``inf="skip"``
        they are not in ``count``."""
        return self._state.inf_count.copy()

    def _poisoned(self) -> np.ndarray:
        """Columns whose results are NaN: no value, or NaN under ``nan="propagate"``."""
        empty = self._state.count == 0
        if self.nan == "propagate":
            return empty | (self._state.nan_count > 0)
        return empty

    @property
    def mean(self) -> np.ndarray:
        """Mean per column, float64 (NaN for a column with no valid value)."""
        s = self._state
        out = np.ldexp(s.shift + s.shifted_mean, s.scale_exp)
        out[self._poisoned()] = np.nan
        return out

    @property
    def min(self) -> np.ndarray:
        """Minimum per column, float64 (NaN for a column with no valid value)."""
        out = self._state.min.copy()
        out[self._poisoned()] = np.nan
        return out

    @property
    def max(self) -> np.ndarray:
        """Maximum per column, float64 (NaN for a column with no valid value)."""
        out = self._state.max.copy()
        out[self._poisoned()] = np.nan
        return out

    @property
    def m2(self) -> np.ndarray:
        """Sum of squared deviations from the mean per column, float64 (inf where it exceeds
        float64's range: data beyond ~1e154)."""
        with np.errstate(over="ignore"):
            out = np.ldexp(self._state.m2, 2 * self._state.scale_exp)
        out[self._poisoned()] = np.nan
        return out

    def _scaled_var(self, ddof: int) -> np.ndarray:
        """``m2 / (count - ddof)`` in the state's units (``2**(2 * scale_exponent)``)."""
        count = self._state.count
        denominator = (count - ddof).astype(np.float64)
        out = np.full(count.shape, np.nan)
        ok = denominator > 0
        out[ok] = self._state.m2[ok] / denominator[ok]
        out[self._poisoned()] = np.nan
        return out

    def var(self, ddof: int = 0) -> np.ndarray:
        """Variance per column, ``m2 / (count - ddof)``; NaN where ``count <= ddof``.

        inf where the variance itself exceeds float64's range (a spread beyond ~1.3e154);
        :meth:`std` is finite for any finite data."""
        with np.errstate(over="ignore"):
            return np.ldexp(self._scaled_var(ddof), 2 * self._state.scale_exp)

    def std(self, ddof: int = 0) -> np.ndarray:
        """Standard deviation per column, ``sqrt(var(ddof))``, computed without overflow."""
        return np.ldexp(np.sqrt(self._scaled_var(ddof)), self._state.scale_exp)

    def scale(self, ddof: int = 0, eps: float = 0.0) -> np.ndarray:
        """The divisor of per-feature normalization, ``sqrt(var(ddof) + eps)`` per column.

        Computed in the state's units, so it is finite for any finite data (even where the
        variance overflows float64). A constant or near-constant column is scaled by 1 (with
        any ``eps``), by scikit-learn's rule: ``var <= n*e*var + (n*e*mean)**2`` with ``e`` the
        float64 machine epsilon and ``n`` the count, i.e. the variance is at the rounding level
        of the mean and holds no information. NaN where the variance is NaN (no value,
        ``count <= ddof``, or ±inf kept as values). Shape and dtype as :meth:`var`.
        """
        if not eps >= 0.0:
            raise ValueError(f"eps must be a non-negative number, got {eps!r}")
        s = self._state
        var = self._scaled_var(ddof)  # in units of 4**e
        exponent = s.scale_exp
        n = s.count.astype(np.float64)
        machine_eps = np.finfo(np.float64).eps
        with np.errstate(over="ignore", invalid="ignore"):
            mean = s.shift + s.shifted_mean  # in units of 2**e
            near_constant = var <= n * machine_eps * var + (n * machine_eps * mean) ** 2
            out = np.ldexp(np.sqrt(var + np.ldexp(float(eps), -2 * exponent)), exponent)
        out[near_constant] = 1.0
        return out

    def _require_moments4(self, what: str) -> None:
        if self.moments != 4:
            raise ValueError(f"{what}() needs the third and fourth moments: use moments=4")

    def skew(self, bias: bool = True) -> np.ndarray:
        """Skewness per column, ``g1 = sqrt(n) m3 / m2**1.5`` (``scipy.stats.skew``).

        ``bias=False``: the adjusted Fisher–Pearson estimator ``g1 sqrt(n (n-1)) / (n-2)``
        (scipy's and pandas' unbiased skew), NaN where ``n < 3`` (pandas; scipy returns the
        biased value there). NaN where the column has no value or no spread (m2 == 0).
        Needs ``moments=4``.
        """
        self._require_moments4("skew")
        out = self._state.skew(bias)
        out[self._poisoned()] = np.nan
        return out

    def kurtosis(self, fisher: bool = True, bias: bool = True) -> np.ndarray:
        """Kurtosis per column, ``g2 = n m4 / m2**2``, minus 3 when ``fisher`` (scipy).

        ``bias=False``: the unbiased estimator of the excess kurtosis,
        ``((n+1) g2 - 3 (n-1)) (n-1) / ((n-2)(n-3))`` (plus 3 without ``fisher``), scipy's
        and pandas' formula; NaN where ``n < 4`` (pandas; scipy returns the biased value
        there). NaN where the column has no value or no spread (m2 == 0). Needs ``moments=4``.
        """
        self._require_moments4("kurtosis")
        out = self._state.kurtosis(fisher, bias)
        out[self._poisoned()] = np.nan
        return out

    def quantile(self, q: float | Sequence[float], *, median: bool = False) -> np.ndarray:
        """Quantiles per column from the sketches (``quantiles=True``): a float ``q`` in [0, 1]
        gives shape (n_columns,), a list shape (len(q), n_columns); float64.

        numpy.quantile's linear method over the values the sketch stands for: exact up to
        1024 values per column, beyond that a value whose rank is within 0.5% of ``q``
        (:mod:`streamnorm.state.quantiles`). NaN for a column with no value (or with NaN
        under ``nan="propagate"``). ``median=True``: a position halfway between two values
        gives their mean, ``(a + b) / 2``, as numpy.median (the default lerp can differ from
        it in the last bit).
        """
        if self._sketch is None and not self.quantiles:
            raise ValueError("quantile() needs the quantile sketches: use "
                             "FeatureStats(quantiles=True) (or `streamnorm stats --quantiles`)")
        qs, scalar = quantile_array(q)
        if self._sketch is None:
            return np.full(len(self.columns), np.nan) if scalar else np.full((len(qs), 0), np.nan)
        out = self._sketch.quantiles(qs, median)
        out[:, self._poisoned()] = np.nan
        return out[0] if scalar else out

    def median(self) -> np.ndarray:
        """The median per column, float64 (n_columns,): as ``numpy.median`` (exact up to 1024
        values per column), else within 0.5% in rank."""
        return self.quantile(0.5, median=True)

    # ------------------------------------------------------------------ persistence
    def _metadata(self) -> dict[str, Any]:
        """The settings saved with the state (defaults left out)."""
        meta: dict[str, Any] = {"version": persist.FORMAT_VERSION, "kind": "FeatureStats",
                                "nan": self.nan}
        optional = {"moments": (self.moments, 2), "weighted": (self.weighted, False),
                    "inf": (self.inf, "keep"), "quantiles": (self.quantiles, False)}
        meta.update({k: value for k, (value, default) in optional.items() if value != default})
        return meta

    def _saved_types(self) -> pa.Array:
        """The ``type`` field of the saved rows."""
        return persist.type_column([self._types.get(c) for c in self.columns])

    def to_arrow(self) -> pa.Table:
        """The state as a table, one row per column (see :mod:`~streamnorm.state.persist`);
        reloads exactly."""
        values: dict[str, Any] = {"column": cols.string_array(self.columns)}
        values.update(persist.state_columns(self._state, self.mean))
        values["type"] = self._saved_types()
        if self._sketch is not None:
            values.update(self._sketch.arrow_columns())
        return persist.with_metadata(pa.table(values), self._metadata())

    @classmethod
    def from_arrow(cls, table: pa.Table) -> FeatureStats:
        """Rebuild a state saved by :meth:`to_arrow` (grouped ones as their class)."""
        meta = persist.read_metadata(table.schema.metadata)
        chosen = cls._saved_class(meta)
        if chosen is not cls:
            return chosen.from_arrow(table)
        moments = check_moments(meta.get("moments", 2))
        weighted = bool(meta.get("weighted", False))
        table = statsfile.check_state_table(table, persist.state_fields(moments, weighted))
        names = table.column("column").to_pylist()
        stats = cls(names, nan=meta.get("nan", "skip"), moments=moments,
                    inf=meta.get("inf", "keep"), quantiles=meta.get("quantiles") is True)
        if stats.quantiles:
            stats._sketch = QuantileSketches.from_table(table, names)
        stats._columns = names
        stats._types = stats._loaded_types(table, names)
        stats._state = Moments((len(names),), moments, weighted)
        persist.load_arrays(stats._state, table, (len(names),))
        return stats

    @staticmethod
    def _loaded_types(table: pa.Table, names: list[str]) -> dict[str, pa.DataType | None]:
        """The column types of a saved table's first ``len(names)`` rows (None: unknown)."""
        saved = table.column("type").to_pylist() if "type" in table.column_names else None
        return {n: persist.parse_type(saved[j]) if saved else None for j, n in enumerate(names)}

    @classmethod
    def from_moments(cls, columns: Sequence[str], state: Moments, *,
                     nan: NanPolicy = "skip") -> FeatureStats:
        """A state over ``columns`` holding ``state`` (a :class:`Moments` of shape
        ``(len(columns),)``, taken as it is, not copied): for statistics computed outside
        :meth:`update`, such as those of a sparse matrix (:mod:`~streamnorm.state.sparse`)."""
        stats = cls(list(columns), nan=nan, moments=state.moments)
        stats._columns = list(columns)
        stats._types = {name: None for name in columns}
        stats._state = state
        return stats

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the state; floats as exact decimal strings for non-finite ones."""
        return persist.table_to_dict(self.to_arrow())

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> FeatureStats:
        """Rebuild a state from :meth:`to_dict` output (grouped ones as their class)."""
        meta = persist.dict_meta(state)
        chosen = cls._saved_class(meta)
        if chosen is not cls:
            return chosen.from_dict(state)
        table = persist.dict_to_table(state, meta, persist.rows_schema(meta))
        if meta.get("quantiles") is True:
            table = table_with_json_sketches(table, state["columns"])
        return cls.from_arrow(table)

    def save(self, path: str | os.PathLike) -> None:
        """Write the state atomically: ``.json``, or Arrow IPC / Parquet by suffix.

        ``path`` is a local path or an object-store URI string (``s3://bucket/stats.json``).
        """
        persist.save_state(path, self.to_dict, self.to_arrow)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStats:
        """Read a state written by :meth:`save` (``.json``, Arrow IPC or Parquet; a local path
        or an object-store URI)."""
        return persist.load_state(path, cls.from_dict, cls.from_arrow)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ display
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureStats):
            return NotImplemented
        if (self.columns, self.nan, self.inf, self.moments, self.weighted, self.quantiles) != (
            other.columns, other.nan, other.inf, other.moments, other.weighted, other.quantiles
        ):
            return False
        if (self._sketch is None) != (other._sketch is None) or (
                self._sketch is not None and not self._sketch.equals(other._sketch)):  # type: ignore[arg-type]
            return False
        return self._state.equals(other._state)

    def __repr__(self) -> str:
        extra = f", moments={self.moments}" if self.moments != 2 else ""
        return f"FeatureStats(columns={self.columns}, nan={self.nan!r}{extra})"

    def to_sklearn(self) -> Any:
        """A fitted ``sklearn.preprocessing.StandardScaler`` holding these statistics (ddof 0):
        ``mean_``, ``var_``, ``scale_`` (:meth:`scale`; constant columns 1), ``n_samples_seen_``,
        ``n_features_in_``, ``feature_names_in_`` (:func:`.exports.standard_scaler`)."""
        from .exports import standard_scaler

        if getattr(self, "by", None):
            raise ValueError("statistics per key (by=) have no single StandardScaler")
        return standard_scaler(self.columns, self.count, self.mean, self.var(), self.scale())

    def summary(self, ddof: int = 0) -> pa.Table:
        """A readable table: column, count, null_count, nan_count, inf_count, mean, std (with
        ``ddof``), min, max."""
        return pa.table({"column": self.columns, "count": self.count,
                         "null_count": self.null_count, "nan_count": self.nan_count,
                         "inf_count": self.inf_count, "mean": self.mean, "std": self.std(ddof),
                         "min": self.min, "max": self.max})


def feature_stats(
    source: Source,
    columns: Sequence[str] | None = None,
    batch_size: int | None = None,
    *,
    nan: NanPolicy = "skip",
    target: str | None = None,
    moments: int = 2,
    by: str | Sequence[str] | None = None,
    weights: str | None = None,
    inf: InfPolicy = "keep",
    quantiles: bool = False,
) -> FeatureStats:
    """Per-column statistics of a whole source (a path or any in-memory source), streamed.

    Files are read one IPC batch or Parquet row group at a time, so memory is bounded by the
    batch, not the file. ``moments``, ``by``, ``weights`` and ``quantiles`` are as in
    :class:`FeatureStats`.
    """
    extra = {"quantiles": True} if quantiles else {}
    stats = FeatureStats(columns, nan=nan, target=target, moments=moments, by=by, inf=inf,
                         **extra)
    return stats._update_from(source, batch_size, weights)
