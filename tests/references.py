"""Exact and float64 references the tests compare against."""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def exact_mean_var(values: np.ndarray) -> tuple[float, float]:
    """Mean and population variance of float64 ``values``, computed exactly with fractions."""
    xs = [Fraction(float(v)) for v in values]
    n = len(xs)
    mean = sum(xs, Fraction(0)) / n
    var = sum(((x - mean) ** 2 for x in xs), Fraction(0)) / n
    return float(mean), float(var)


def rel_err(got: float, want: float) -> float:
    """Relative error of ``got`` against a non-zero ``want`` (absolute when want is 0)."""
    return abs(got - want) / abs(want) if want else abs(got)
