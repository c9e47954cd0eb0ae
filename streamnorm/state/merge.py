"""The one Python merge of moment states (Chan's formula for two moments, Pébay's for four),
and :class:`Moments`, the arrays a statistics state is made of.

A state is (count, shift, shifted_mean, m2[, m3, m4]) per entry: ``shift`` the first finite
value the entry saw, ``shifted_mean`` the mean of ``x - shift`` and m2..m4 the sums of the
powers of the deviations from the mean (docs/design.md §4). Every merge of the package goes through
:func:`merge_moment_arrays`: batches into a column, partial states of threads, files or workers,
and the dtype groups of per-row statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: The exponent of a scaled state: values are multiplied by 2**-BIG_EXPONENT before their
#: moments are taken, so that float64 data of any magnitude (< 2**1024) gives deviations
#: below 2**425 and sums of squares far from overflow. Used only for a column whose plain
#: moments overflow; a power of two, so the scaling itself is exact (values below 2**-474
#: round, far below the resolution of a column that holds values beyond 1e150).
BIG_EXPONENT = 600

#: The arrays of a state, one entry per column (or per key and column).
STATE_ARRAYS = ("count", "null_count", "nan_count", "shift", "shifted_mean", "m2", "min", "max",
                "inf_count", "scale_exp")
#: The extra arrays of a ``moments=4`` state.
HIGHER_ARRAYS = ("m3", "m4")
#: The value of each array for an entry that has seen nothing.
EMPTY_VALUES = {"count": 0, "null_count": 0, "nan_count": 0, "shift": np.nan,
                "shifted_mean": 0.0, "m2": 0.0, "min": np.nan, "max": np.nan, "m3": 0.0,
                "m4": 0.0, "inf_count": 0, "scale_exp": 0}


def _merge_same_exponent(
    a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, ...]:
    """:func:`merge_moment_arrays` of two states in the same units (same scale exponent)."""
    n_a, k_a, mean_a, m2_a = a[:4]
    n_b, k_b, mean_b, m2_b = b[:4]
    na = np.asarray(n_a, dtype=np.float64)
    nb = np.asarray(n_b, dtype=np.float64)
    empty_a, empty_b = na == 0, nb == 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mb = mean_b + (k_b - k_a)
        n = na + nb
        delta = mb - mean_a
        mean = mean_a + delta * (nb / n)
        merged = [m2_a + (m2_b + delta * delta * (na * nb / n))]
        if len(a) == 6:
            m3_a, m4_a = a[4:]
            m3_b, m4_b = b[4:]
            d_n = delta / n
            ab = na * nb
            merged.append(m3_a + m3_b + delta * d_n * d_n * ab * (na - nb)
                          + 3.0 * d_n * (na * m2_b - nb * m2_a))
            merged.append(m4_a + m4_b + delta * d_n**3 * ab * (na * na - ab + nb * nb)
                          + 6.0 * d_n * d_n * (na * na * m2_b + nb * nb * m2_a)
                          + 4.0 * d_n * (na * m3_b - nb * m3_a))
        infinite = ~(np.isfinite(mb) & np.isfinite(mean_a))
        mean = np.where(infinite, mean_a + mb, mean)
    merged = [np.where(infinite, np.nan, moment) for moment in merged]

    def pick(x_a: np.ndarray, x_b: np.ndarray, x_merged: np.ndarray) -> np.ndarray:
        return np.where(empty_b, x_a, np.where(empty_a, x_b, x_merged))

    return (
        n_a + n_b,
        pick(k_a, k_b, k_a),  # an empty side never sets the shift
        pick(mean_a, mean_b, mean),
        *(pick(x_a, x_b, x) for x_a, x_b, x in zip(a[3:], b[3:], merged)),
    )


def rescale_state(
    state: tuple[np.ndarray, ...], exponent: Any, to: Any
) -> tuple[np.ndarray, ...]:
    """A moment state ``(count, shift, shifted_mean, m2[, m3, m4])`` in units of
    ``2**exponent`` re-expressed in units of ``2**to`` (m_k by ``2**(k*(exponent - to))``).

    Exact (a power-of-two scaling) unless a value underflows; the identity where the
    exponents are equal.
    """
    step = np.asarray(exponent, dtype=np.int64) - np.asarray(to, dtype=np.int64)
    if not np.any(step):
        return state
    count, shift, mean, *moments = state
    return (count, np.ldexp(shift, step), np.ldexp(mean, step),
            *(np.ldexp(m, (k + 2) * step) for k, m in enumerate(moments)))


def merge_moment_arrays(
    a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...], exponent_a: Any = 0,
    exponent_b: Any = 0,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Vectorised merge of moment states ``(count, shift, shifted_mean, m2[, m3, m4])``.

    Chan's formula for two moments, Pébay's for four (both sides give the same number of
    moments). Each side holds equal-shape arrays with its own shifts; the result keeps a's
    shift where a has data, else b's (b's mean is re-expressed in a's shift:
    ``mean_b + (K_b - K_a)``). m2..m4 are shift-invariant, so only the mean needs re-expressing.
    Counts may be int or float. An empty side leaves the other as it is. With ±inf among the
    values Chan's delta would make inf + finite a NaN whatever the order, so, like numpy, the
    mean is then the sum of the infinities and m2..m4 are NaN.

    ``exponent_a``/``exponent_b`` (int arrays or scalars): each side's scale exponent (see
    :data:`BIG_EXPONENT`); the result is in the larger one's units. Where two finite states
    overflow when merged (huge values of both signs), they are merged again in units of
    ``2**BIG_EXPONENT``, so finite data never gives an overflowed mean or m2.

    Returns ``(merged state, exponent int64 array)``.
    """
    exp_a = np.asarray(exponent_a, dtype=np.int64)
    exp_b = np.asarray(exponent_b, dtype=np.int64)
    shape = np.shape(a[2])
    if not (exp_a.any() or exp_b.any()):  # the common case: plain float64 units on both sides
        exponent = np.zeros(shape, dtype=np.int64)
        merged = _merge_same_exponent(a, b)
    else:
        empty_a, empty_b = np.asarray(a[0]) == 0, np.asarray(b[0]) == 0
        exponent = np.where(empty_a, exp_b, np.where(empty_b, exp_a, np.maximum(exp_a, exp_b)))
        exponent = np.broadcast_to(exponent, shape).astype(np.int64)
        merged = _merge_same_exponent(rescale_state(a, exp_a, exponent),
                                      rescale_state(b, exp_b, exponent))
    if np.isfinite(merged[2]).all() and np.isfinite(merged[3]).all():
        return merged, exponent
    # Redo, at the big exponent, the merges of two finite non-empty states that overflowed.
    finite_sides = np.isfinite(a[2]) & np.isfinite(a[3]) & np.isfinite(b[2]) & np.isfinite(b[3])
    redo = (~(np.isfinite(merged[2]) & np.isfinite(merged[3])) & finite_sides
            & (np.asarray(a[0]) != 0) & (np.asarray(b[0]) != 0) & (exponent < BIG_EXPONENT))
    if np.any(redo):
        exponent = np.where(redo, BIG_EXPONENT, exponent)
        merged = _merge_same_exponent(rescale_state(a, exp_a, exponent),
                                      rescale_state(b, exp_b, exponent))
    return merged, exponent


def unmerge_moment_arrays(
    c: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...], exponent_c: Any = 0,
    exponent_b: Any = 0,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """The inverse of :func:`merge_moment_arrays`: the state ``a`` with ``merge(a, b) == c``,
    given ``c`` and ``b`` (``(count, shift, shifted_mean, m2[, m3, m4])`` each, b no larger).

    Chan's and Pébay's formulas solved for ``a``: with ``n = n_c``, ``n_a = n - n_b`` and b's
    mean re-expressed in c's shift, ``mean_a = mean_c - (mean_b - mean_c) n_b / n_a``,
    ``d = mean_b - mean_a`` and ``m2_a = m2_c - m2_b - d² n_a n_b / n`` (m3, m4 likewise, in
    that order). The result keeps c's shift and the larger scale exponent. The count is
    exact; the moments lose what the subtraction cancels: relative error about
    ``eps · (n / n_a) · (1 + d² n_b / m2_a)``, small when a is a large part of c and large
    when b holds nearly all of it. m2 and m4 are clamped at 0, an unweighted single remaining
    value has m2 = m3 = m4 = 0 exactly, and an emptied entry is empty (shift NaN, moments 0).
    An empty b leaves c as it is. Returns ``(state, exponent int64 array)``.
    """
    exp_c = np.asarray(exponent_c, dtype=np.int64)
    exp_b = np.asarray(exponent_b, dtype=np.int64)
    shape = np.shape(c[2])
    empty_b = np.asarray(b[0]) == 0
    exponent = np.broadcast_to(np.where(empty_b, exp_c, np.maximum(exp_c, exp_b)),
                               shape).astype(np.int64)
    c = rescale_state(c, exp_c, exponent)
    b = rescale_state(b, exp_b, exponent)
    n_c, k_c, mean_c, m2_c = c[:4]
    n_b, k_b, mean_b, m2_b = b[:4]
    n = np.asarray(n_c, dtype=np.float64)
    nb = np.asarray(n_b, dtype=np.float64)
    na = n - nb
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mb = mean_b + (k_b - k_c)
        mean = mean_c - (mb - mean_c) * (nb / na)
        d = mb - mean
        m2 = m2_c - m2_b - d * d * (na * nb / n)
        moments = [np.maximum(m2, 0.0)]
        if len(c) == 6:
            m3_c, m4_c = c[4:]
            m3_b, m4_b = b[4:]
            d_n = d / n
            ab = na * nb
            m3 = (m3_c - m3_b - d * d_n * d_n * ab * (na - nb)
                  - 3.0 * d_n * (na * m2_b - nb * m2))
            m4 = (m4_c - m4_b - d * d_n**3 * ab * (na * na - ab + nb * nb)
                  - 6.0 * d_n * d_n * (na * na * m2_b + nb * nb * m2)
                  - 4.0 * d_n * (na * m3_b - nb * m3))
            moments += [m3, np.maximum(m4, 0.0)]
    count = n_c - n_b
    if np.asarray(count).dtype.kind == "f":  # sums of weights: a rounding-level rest is none
        count = np.where(count <= 16 * np.finfo(np.float64).eps * n, 0.0, count)
    single = (count == 1) if np.asarray(count).dtype.kind in "iu" else np.zeros(shape, bool)
    emptied = count == 0
    moments = [np.where(single | emptied, 0.0, m) for m in moments]
    mean = np.where(emptied, 0.0, mean)
    shift = np.where(emptied, np.nan, k_c)
    exponent = np.where(emptied, 0, exponent)

    def keep_c(x_c: np.ndarray, x: np.ndarray) -> np.ndarray:
        return np.where(empty_b, x_c, x)

    return (count, keep_c(k_c, shift), keep_c(mean_c, mean),
            *(keep_c(x_c, x) for x_c, x in zip(c[3:], moments))), exponent


def merge_row_moments(
    a: tuple[np.ndarray, np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge per-row states ``(count int64, mean, m2)`` (arrays of one length, no shift):
    :func:`merge_moment_arrays` with both shifts 0. NaN mean and m2 where the merged count is
    0, as the row kernels give them."""
    zero = np.zeros(np.shape(a[1]))
    (count, _, mean, m2), _ = merge_moment_arrays((a[0], zero, a[1], a[2]),
                                                  (b[0], zero, b[1], b[2]))
    empty = count == 0
    return count, np.where(empty, np.nan, mean), np.where(empty, np.nan, m2)


class Moments:
    """The state arrays of statistics, all of one shape (``(k,)`` per column, ``(g, k)`` per
    key and column), as public attributes named by :data:`STATE_ARRAYS` (and m3, m4 when
    ``moments == 4``): ``count`` (int64; float64 once weighted), ``null_count``,
    ``nan_count``, ``inf_count`` (int64), ``shift``, ``shifted_mean``, ``m2``, ``min``,
    ``max`` (float64) and ``scale_exp`` (int64: shift and shifted_mean in units of
    ``2**scale_exp``, m_k of ``2**(k*scale_exp)``; see :data:`BIG_EXPONENT`).
    """

    count: np.ndarray
    null_count: np.ndarray
    nan_count: np.ndarray
    shift: np.ndarray
    shifted_mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray
    inf_count: np.ndarray
    scale_exp: np.ndarray
    m3: np.ndarray
    m4: np.ndarray

    def __init__(self, shape: int | tuple[int, ...] = 0, moments: int = 2,
                 weighted: bool = False) -> None:
        self.moments = moments
        self.weighted = weighted
        self.allocate(shape)

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the arrays this state holds."""
        return STATE_ARRAYS + (HIGHER_ARRAYS if self.moments == 4 else ())

    def allocate(self, shape: int | tuple[int, ...]) -> None:
        """Empty arrays of ``shape`` (every entry has seen nothing)."""
        for name in self.names:
            setattr(self, name, self._empty(name, shape))

    def _empty(self, name: str, shape: int | tuple[int, ...]) -> np.ndarray:
        value = EMPTY_VALUES[name]
        if name == "count":
            dtype: Any = np.float64 if self.weighted else np.int64
        else:
            dtype = np.int64 if isinstance(value, int) else np.float64
        return np.full(shape, value, dtype=dtype)

    def add_rows(self, n: int) -> None:
        """Append ``n`` empty rows to 2-D arrays (new keys of grouped statistics)."""
        if n:
            for name in self.names:
                old = getattr(self, name)
                rows = np.full((n, old.shape[1]), EMPTY_VALUES[name], dtype=old.dtype)
                setattr(self, name, np.concatenate([old, rows]))

    def set_weighted(self) -> None:
        """From now on counts are sums of weights (float64)."""
        if not self.weighted:
            self.weighted = True
            self.count = self.count.astype(np.float64)

    def copy(self) -> Moments:
        """An independent copy."""
        twin = Moments.__new__(Moments)
        twin.moments, twin.weighted = self.moments, self.weighted
        for name in self.names:
            setattr(twin, name, getattr(self, name).copy())
        return twin

    def equals(self, other: Moments, rows: Any = slice(None)) -> bool:
        """Whether every array equals ``other``'s (its ``rows``), NaN equal to NaN."""
        return all(np.array_equal(getattr(self, name), getattr(other, name)[rows], equal_nan=True)
                   for name in self.names)

    def skew(self, bias: bool = True) -> np.ndarray:
        """Skewness per entry, ``g1 = sqrt(n) m3 / m2**1.5``; ``bias=False``: the adjusted
        Fisher–Pearson ``g1 sqrt(n (n-1)) / (n-2)``, NaN where ``n < 3``. NaN where m2 == 0."""
        n = self.count.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.sqrt(n) * self.m3 / self.m2**1.5
            if not bias:
                out = np.where(n >= 3, out * np.sqrt(n * (n - 1.0)) / (n - 2.0), np.nan)
        out[self.m2 == 0] = np.nan
        return out

    def kurtosis(self, fisher: bool = True, bias: bool = True) -> np.ndarray:
        """Kurtosis per entry, ``g2 = n m4 / m2**2`` (minus 3 when ``fisher``); ``bias=False``:
        ``((n+1) g2 - 3 (n-1)) (n-1) / ((n-2)(n-3)) + 3``, NaN where ``n < 4``. NaN where
        m2 == 0."""
        n = self.count.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = n * self.m4 / (self.m2 * self.m2)
            if not bias:
                excess = ((n + 1.0) * out - 3.0 * (n - 1.0)) * (n - 1.0) / ((n - 2.0) * (n - 3.0))
                out = np.where(n >= 4, excess + 3.0, np.nan)
        out[self.m2 == 0] = np.nan
        return out - 3.0 if fisher else out

    def merge_at(
        self, idx: Any, count: np.ndarray, shift: np.ndarray, mean: np.ndarray,
        m2: np.ndarray, lo: np.ndarray, hi: np.ndarray, m3: np.ndarray | None = None,
        m4: np.ndarray | None = None, exponent: np.ndarray | None = None,
    ) -> None:
        """Merge partial states, each with its own shift, into the entries ``idx`` (distinct
        entries; ``m3``/``m4`` are read for four-moment states only).

        The arguments are arrays shaped like ``self.count[idx]``: counts (int or float),
        shifts, shifted means, m2 (m3, m4) and min/max of the partial states; ``exponent`` their
        scale exponents (default 0: plain float64 units). Null, NaN and inf counts are the
        caller's.
        """
        mine = (self.count[idx], self.shift[idx], self.shifted_mean[idx], self.m2[idx])
        theirs = (count, shift, mean, m2)
        if self.moments == 4:
            mine += (self.m3[idx], self.m4[idx])
            theirs += (m3, m4)
        merged, self.scale_exp[idx] = merge_moment_arrays(
            mine, theirs, self.scale_exp[idx], 0 if exponent is None else exponent
        )
        self.count[idx], self.shift[idx], self.shifted_mean[idx], self.m2[idx] = merged[:4]
        if self.moments == 4:
            self.m3[idx], self.m4[idx] = merged[4:]
        self.min[idx] = np.fmin(self.min[idx], lo)
        self.max[idx] = np.fmax(self.max[idx], hi)

    def subtract(self, other: Moments, idx: Any = slice(None),
                 names: Sequence[str] = ()) -> None:
        """Remove ``other`` (same moments, merged into these entries earlier) from the
        entries ``idx``: :func:`unmerge_moment_arrays` for the moments, exact subtraction of
        the counts. min and max cannot be taken back: they stay as they are, outer bounds of
        the remaining values, NaN where nothing remains.

        A ``ValueError`` (naming the column ``names[j]`` of the last axis), changing nothing,
        when ``other`` holds more values, nulls, NaN or ±inf in an entry than this state, or
        all of an entry's ±inf taken as values (its moments are NaN: the rest's are lost)."""
        for field, what in (("count", "values"), ("null_count", "nulls"), ("nan_count", "NaN"),
                            ("inf_count", "±inf")):
            theirs, mine_ = getattr(other, field), getattr(self, field)[idx]
            slack = 16 * np.finfo(np.float64).eps * mine_ if mine_.dtype.kind == "f" else 0
            over = np.argwhere(theirs > mine_ + slack)  # (weights: sums of other roundings)
            if len(over):
                at = tuple(over[0])
                column = repr(names[at[-1]]) if names else str(at[-1])
                raise ValueError(
                    f"cannot subtract: column {column} holds {theirs[at]} {what} in the "
                    f"subtracted statistics, more than the {mine_[at]} here; subtract only a "
                    "part merged into these statistics")
        lost = ((self.inf_count[idx] > 0) & (self.inf_count[idx] == other.inf_count)
                & ~(np.isfinite(self.shifted_mean[idx]) & np.isfinite(self.m2[idx])))
        if np.any(lost):
            at = tuple(np.argwhere(lost)[0])
            column = repr(names[at[-1]]) if names else str(at[-1])
            raise ValueError(
                f"cannot subtract: column {column} took ±inf as values, so its moments are "
                "NaN and the rest's cannot be recovered; fit with inf='skip' to subtract")
        if not np.size(self.count):
            return
        mine = (self.count[idx], self.shift[idx], self.shifted_mean[idx], self.m2[idx])
        theirs = (other.count, other.shift, other.shifted_mean, other.m2)
        if self.moments == 4:
            mine += (self.m3[idx], self.m4[idx])
            theirs += (other.m3, other.m4)
        state, self.scale_exp[idx] = unmerge_moment_arrays(mine, theirs, self.scale_exp[idx],
                                                           other.scale_exp)
        self.count[idx], self.shift[idx], self.shifted_mean[idx], self.m2[idx] = state[:4]
        if self.moments == 4:
            self.m3[idx], self.m4[idx] = state[4:]
        for name in ("null_count", "nan_count", "inf_count"):
            getattr(self, name)[idx] -= getattr(other, name)
        emptied = state[0] == 0
        self.min[idx] = np.where(emptied, np.nan, self.min[idx])
        self.max[idx] = np.where(emptied, np.nan, self.max[idx])

    def merge(self, other: Moments, idx: Any = slice(None)) -> None:
        """Merge the whole of ``other`` (same moments) into the entries ``idx``."""
        if other.weighted:
            self.set_weighted()
        self.null_count[idx] += other.null_count
        self.nan_count[idx] += other.nan_count
        self.inf_count[idx] += other.inf_count
        self.merge_at(idx, other.count, other.shift, other.shifted_mean, other.m2, other.min,
                      other.max, m3=getattr(other, "m3", None), m4=getattr(other, "m4", None),
                      exponent=other.scale_exp)


#: The moment orders a state can carry.
MOMENTS = (2, 4)


def check_moments(moments: int) -> int:
    """``moments`` as an int; a ``ValueError`` unless it is 2 or 4."""
    if moments not in MOMENTS:
        raise ValueError(f"moments must be 2 or 4, got {moments!r}")
    return int(moments)
