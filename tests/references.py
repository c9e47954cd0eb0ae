"""Exact and float64 references the tests compare against.

The exact ones compute in fractions (every float64 is a fraction, so no rounding happens until
the result is turned back into a float).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def exact_central_moments(
    values: np.ndarray | list[float], weights: np.ndarray | None = None,
    orders: tuple[int, ...] = (2,),
) -> tuple[Fraction, Fraction, dict[int, Fraction]]:
    """``(n, mean, {k: sum w * (x - mean)**k})`` of float ``values`` (frequency ``weights``,
    default 1 each), all exact fractions; ``n`` is the total weight."""
    xs = [Fraction(float(v)) for v in values]
    ws = [Fraction(1)] * len(xs) if weights is None else [Fraction(float(w)) for w in weights]
    n = sum(ws, Fraction(0))
    mean = sum((w * x for w, x in zip(ws, xs)), Fraction(0)) / n
    sums = {k: sum((w * (x - mean) ** k for w, x in zip(ws, xs)), Fraction(0)) for k in orders}
    return n, mean, sums


def exact_mean_var(values: np.ndarray | list[float]) -> tuple[float, float]:
    """Mean and population variance of float64 ``values``, each rounded once from the exact
    value."""
    n, mean, sums = exact_central_moments(values)
    return float(mean), float(sums[2] / n)


def exact_mean_std(values: np.ndarray | list[float]) -> tuple[float, float]:
    """Exact mean and population std of finite floats of any magnitude (the std rounded once
    from the exact variance, whose square root is taken in a range where float64 cannot
    overflow)."""
    n, mean, sums = exact_central_moments(values)
    var = sums[2] / n
    # sqrt(var) = sqrt(var / 4**k) * 2**k, exact scaling by a power of four
    k = max(0, (var.numerator.bit_length() - var.denominator.bit_length()) // 2 - 500)
    return float(mean), math.ldexp(math.sqrt(float(var / 4**k)), k)


def exact_moments(values: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    """Exact (fractions) weighted count ``n``, ``mean``, ``m2``, ``m3``, ``m4`` (sums of
    weighted powers of deviations), ``skew`` and Fisher ``kurt``."""
    n, mean, m = exact_central_moments(values, weights, orders=(2, 3, 4))
    m2, m3, m4 = (float(m[k]) for k in (2, 3, 4))
    skew = float(m[3] / n) / float(m[2] / n) ** 1.5
    kurt = float(m[4] * n / (m[2] * m[2])) - 3.0
    return {"n": float(n), "mean": float(mean), "m2": m2, "m3": m3, "m4": m4, "skew": skew,
            "kurt": kurt}


def rel_err(got: float, want: float) -> float:
    """Relative error of ``got`` against a non-zero ``want`` (absolute when want is 0)."""
    return abs(got - want) / abs(want) if want else abs(got)
