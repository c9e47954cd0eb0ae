"""Per-feature modes as one affine map per column: ``y = (x - center) / scale``.

Every per-feature mode (batch, minmax, and any later one such as robust) is a function in
:data:`CENTER_SCALE` turning the fitted :class:`FeatureStats` into ``(center, scale)`` float64
arrays over the chosen columns. The mappers (:func:`.mappers.map_batch`), the inverse
(``x = y * scale + center``), the normalization record and the exports
(:mod:`streamnorm.exports`: scikit-learn, torch, polars) all start from that one pair, so a
mode added to the table is transformed, inverted and exported alike.

Each function takes ``(stats, names, *, eps, ddof, **options)`` with the mode's options named
in :data:`OPTIONS` (e.g. ``feature_range`` for minmax) and ignores the options of others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import NonFiniteError
from ..state.features import FeatureStats
from . import mappers
from . import robust as robust_mode
from .plan import PER_FEATURE_MODES

CenterScale = Callable[..., tuple[np.ndarray, np.ndarray]]

#: scikit-learn's ``_handle_zeros_in_scale``: a min-max range below this is taken as 1 (a
#: constant column then maps to ``feature_range[0]``).
MINMAX_ZERO_RANGE = 10 * np.finfo(np.float64).eps


def _positions(stats: FeatureStats, names: Sequence[str]) -> np.ndarray:
    index = {name: j for j, name in enumerate(stats.columns)}
    return np.array([index[name] for name in names], dtype=np.int64)


def batch(stats: FeatureStats, names: Sequence[str], *, eps: float, ddof: int,
          **_: Any) -> tuple[np.ndarray, np.ndarray]:
    """Batch mode: ``(mean, sqrt(var + eps))`` per column, a (near-)constant column scaled by 1
    (:func:`.mappers.batch_center_scale`, :meth:`FeatureStats.scale`); arrays of shape
    (len(names),), float64."""
    pairs = mappers.batch_center_scale(stats, names, eps, ddof)
    return (np.array([pairs[n][0] for n in names], dtype=np.float64),
            np.array([pairs[n][1] for n in names], dtype=np.float64))


def check_feature_range(feature_range: Any) -> tuple[float, float]:
    """``feature_range`` as two floats ``(lo, hi)`` with ``lo < hi``, both finite; else a
    one-line ``ValueError``."""
    try:
        lo, hi = (float(v) for v in feature_range)
    except (TypeError, ValueError):
        raise ValueError(f"feature_range must be two numbers (lo, hi), got {feature_range!r}"
                         ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and math.isfinite(hi - lo)):
        raise ValueError(f"feature_range must be finite with lo < hi, got ({lo:g}, {hi:g}); "
                         "give e.g. (0, 1) or (-1, 1)")
    return lo, hi


def minmax(stats: FeatureStats, names: Sequence[str], *, feature_range: Any = (0.0, 1.0),
           **_: Any) -> tuple[np.ndarray, np.ndarray]:
    """Minmax mode (scikit-learn ``MinMaxScaler``): ``y = (x - min) / d + lo`` with
    ``d = (max - min) / (hi - lo)``, written ``(x - center) / d`` with ``center = min - lo*d``.

    A range below :data:`MINMAX_ZERO_RANGE` counts as 1 (sklearn), so a constant column maps
    to ``lo``. The range is taken from halves, so ``max - min`` beyond float64's range still
    gives a finite scale when ``hi - lo > 1``; a scale that is not finite is a
    :class:`NonFiniteError` naming the columns (sklearn silently maps them to 0). Columns with no value (or NaN under ``nan="propagate"``) give NaN.
    Arrays of shape (len(names),), float64.
    """
    lo, hi = check_feature_range(feature_range)
    at = _positions(stats, names)
    low, high = stats.min[at], stats.max[at]
    with np.errstate(invalid="ignore", over="ignore"):
        half_range = high * 0.5 - low * 0.5
        data_range = half_range * 2.0
        zero = data_range < MINMAX_ZERO_RANGE
        half_range[zero] = 0.5
        scale = half_range / (hi - lo) * 2.0
        center = low if lo == 0.0 else low - lo * scale
    beyond = np.isinf(scale) | np.isinf(center)
    if beyond.any():
        bad = [name for name, b in zip(names, beyond) if b]
        raise NonFiniteError(
            f"cannot minmax-normalize column(s) {bad}: (max - min) / (hi - lo) exceeds "
            "float64's range; divide the column(s) by a constant first, or widen feature_range")
    return np.asarray(center, dtype=np.float64), scale


def robust(stats: FeatureStats, names: Sequence[str], *,
           quantile_range: Any = robust_mode.DEFAULT_QUANTILE_RANGE,
           **_: Any) -> tuple[np.ndarray, np.ndarray]:
    """Robust mode (scikit-learn ``RobustScaler``): ``(median, q_hi - q_lo)`` from the quantile
    sketches, a range below ``10 * eps`` scaled by 1 (:mod:`.robust`); arrays of shape
    (len(names),), float64."""
    center, scale = robust_mode.robust_arrays(stats, quantile_range)
    at = _positions(stats, names)
    return center[at], scale[at]


#: mode -> the function giving its (center, scale); the per-feature modes are its keys.
CENTER_SCALE: dict[str, CenterScale] = {"batch": batch, "minmax": minmax, "robust": robust}
assert tuple(CENTER_SCALE) == PER_FEATURE_MODES  # plan's list, which layers below may read
#: mode -> its own options with their defaults (recorded in the output metadata).
OPTIONS: dict[str, dict[str, Any]] = {
    "batch": {}, "minmax": {"feature_range": (0.0, 1.0)},
    "robust": {"quantile_range": robust_mode.DEFAULT_QUANTILE_RANGE},
}
#: options -> the function checking (and normalizing) a given value.
CHECKS: dict[str, Callable[[Any], Any]] = {"feature_range": check_feature_range,
                                           "quantile_range": robust_mode.check_quantile_range}


def is_per_feature(mode: str) -> bool:
    """Whether ``mode`` maps each column with fitted per-column statistics."""
    return mode in CENTER_SCALE


def mode_options(mode: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``mode`` (its defaults completed by the non-None ``given`` ones, each
    checked); ``ValueError`` naming an option given to a mode that has no such option."""
    known = OPTIONS.get(mode, {})
    out = dict(known)
    for name, value in given.items():
        if value is None:
            continue
        if name not in known:
            owners = [m for m, o in OPTIONS.items() if name in o]
            if not owners:
                raise ValueError(f"{name}= is not an option of any mode; drop it")
            raise ValueError(f"{name}= applies to mode {' or '.join(map(repr, owners))}, not "
                             f"{mode!r}; drop it or change the mode")
        out[name] = CHECKS[name](value) if name in CHECKS else value
    return out


def center_scale(
    mode: str, stats: FeatureStats, names: Sequence[str], *, eps: float, ddof: int,
    options: Mapping[str, Any], check_finite: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(center, scale)`` float64 arrays (len(names),) of per-feature ``mode`` over ``names``;
    statistics holding ±inf are a :class:`NonFiniteError` unless ``check_finite=False``."""
    if check_finite:
        mappers.check_finite_stats(stats, names)
    center, scale = CENTER_SCALE[mode](stats, names, eps=eps, ddof=ddof, **options)
    return np.asarray(center, dtype=np.float64), np.asarray(scale, dtype=np.float64)


def center_scale_plan(
    mode: str, stats: FeatureStats, names: Sequence[str], *, eps: float, ddof: int,
    options: Mapping[str, Any], check_finite: bool = True,
) -> dict[str, tuple[float, float]]:
    """:func:`center_scale` as ``{column: (center, scale)}``, what the mappers take."""
    center, scale = center_scale(mode, stats, names, eps=eps, ddof=ddof, options=options,
                                 check_finite=check_finite)
    return {name: (float(c), float(s)) for name, c, s in zip(names, center, scale)}


def check_mode_options(mode: str, options: Any) -> str | None:
    """What is wrong with a recorded ``options`` field of ``mode`` (a mapping of the mode's
    own options); None if nothing."""
    if not isinstance(options, Mapping):
        return f"field 'options' is {type(options).__name__}, not an object"
    try:
        mode_options(mode, options)
    except ValueError as err:
        return f"field 'options': {err}"
    return None
