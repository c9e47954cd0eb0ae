"""The explicit vector first pass of the moments kernel (streamnorm/kernels/cpu_block.py):
exact min/max (signed zeros included), the documented summation order to the bit, strided
input, and the kernels that use it against float64 references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from streamnorm.kernels import cpu
from streamnorm.kernels.cpu_block import UNROLL, WIDTH, contiguous_sum_minmax

EMPTY = np.zeros(0, dtype=np.uint8)
STEP = WIDTH * UNROLL


@njit(cache=True)
def _first_pass(values, start, stop, shift):
    return contiguous_sum_minmax(values, start, stop, shift)


def _pairwise(values):
    """((v0 + v1) + (v2 + v3)) ...: adjacent pairs, level by level."""
    while len(values) > 1:
        values = [values[k] + values[k + 1] for k in range(0, len(values), 2)]
    return values[0]


def _documented_sum(x: np.ndarray, shift: float) -> float:
    """The module docstring's order, in scalar float64 steps: lane l of accumulator u sums
    values STEP*i + WIDTH*u + l; accumulators then lanes pairwise; the tail one by one."""
    x = x.astype(np.float64)
    n_vec = len(x) // STEP * STEP
    acc = np.zeros((UNROLL, WIDTH))
    for i in range(0, n_vec, STEP):
        for u in range(UNROLL):
            for lane in range(WIDTH):
                acc[u, lane] = acc[u, lane] + (x[i + WIDTH * u + lane] - shift)
    vec = _pairwise(list(acc))
    total = float(_pairwise(list(vec)))
    for v in x[n_vec:]:
        total = total + (float(v) - shift)
    return total


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 33, 2047, 2048])
def test_first_pass_is_exact_in_its_documented_order(dtype, n):
    rng = np.random.default_rng(n)
    data = (rng.standard_normal(n + 7) * 1e3).astype(dtype)
    start, stop = 3, 3 + n
    total, lo, hi = _first_pass(data, start, stop, 0.25)
    block = data[start:stop]
    assert total == _documented_sum(block, 0.25)  # the same bits, whatever the CPU
    if n:
        assert (lo, hi) == (float(block.min()), float(block.max()))
    else:
        assert (lo, hi) == (math.inf, -math.inf)


def _sign(x: float) -> float:
    return math.copysign(1.0, x)


@pytest.mark.parametrize("where", [0, 5, 17, 2040, 2046])  # vector part and tail
def test_zero_min_and_max_keep_the_order_of_signed_zeros(where):
    """Within a block, -0.0 orders below +0.0 (as the order keys did), wherever it sits.
    (Blocks, chunks and batches then merge with ``min``/``max``, which keep the first of two
    zeros, as before.)"""
    x = np.abs(np.random.default_rng(1).standard_normal(2047))  # one block: 255 x 8 + 7
    x[100] = 0.0
    x[where] = -0.0
    lo = cpu.column_moments(x, EMPTY, 0, False, 0.0)[4]
    assert lo == 0.0 and _sign(lo) < 0
    y = -x
    y[where] = 0.0
    y[100] = -0.0
    hi = cpu.column_moments(y, EMPTY, 0, False, 0.0)[5]
    assert hi == 0.0 and _sign(hi) > 0
    for zeros in (np.zeros(2047), -np.zeros(2047)):
        got = cpu.column_moments(zeros, EMPTY, 0, False, 0.0)
        assert _sign(got[4]) == _sign(got[5]) == _sign(zeros[0])
    positive = x.copy()
    positive[where] = 0.0  # only +0.0: min +0.0
    assert _sign(cpu.column_moments(positive, EMPTY, 0, False, 0.0)[4]) > 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_strided_columns_agree_with_their_contiguous_copy(dtype):
    """A strided view takes the first pass through a contiguous copy of each block: the same
    count and min/max, and moments to rounding (numba compiles the second pass per layout)."""
    x = np.random.default_rng(2).normal(1e9, 1.0, 2 * 70001).astype(dtype)
    strided = x[::2]
    assert not strided.flags.c_contiguous
    got = cpu.column_moments(strided, EMPTY, 0, False, float(strided[0]))
    want = cpu.column_moments(strided.copy(), EMPTY, 0, False, float(strided[0]))
    assert (got[0], got[4], got[5]) == (want[0], want[4], want[5])
    np.testing.assert_allclose(got[2:4], want[2:4], rtol=1e-12)


def test_moments_at_a_huge_offset_stay_accurate():
    """Variance within 1e-13 relative at an offset of 1e9 x spread (docs/design.md §4)."""
    rng = np.random.default_rng(3)
    spread = rng.uniform(-1.0, 1.0, 3 * 32768 + 5)
    x = 1e9 + spread
    count, _, mean, m2, lo, hi = cpu.column_moments(x, EMPTY, 0, False, float(x[0]))
    exact = x - 1e9  # exact: x was built as 1e9 + spread, and this subtraction is exact
    want = float(np.sum((exact - exact.mean()) ** 2))
    assert count == x.size and (lo, hi) == (x.min(), x.max())
    assert abs(m2 - want) <= 1e-13 * want
