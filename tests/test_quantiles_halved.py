"""The halved path of the quantile sketches (streamnorm/state/quantiles.py ``_add_halved``).

Once a column's rows are halved twice or more, a block is first halved in groups of 8 by a
SIMD sorting network (``cpu_sketch.sketch_halve_groups``), then sorted as rows. Checked here:
the kernel against numpy, exact counts and extremes whatever sits where (NaN, ±inf, the
values past the last whole tile, other dtypes), the rank bound on orders that put every
group across the distribution, and that a run merged in place (``sketch_add_sorted``) gives
the bits of ``sketch_merge``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from test_quantiles import QS, RANK_ERROR, fit, rank_error

import streamnorm as sn
from streamnorm.kernels import cpu_sketch
from streamnorm.state import quantiles

TILE = cpu_sketch.GROUP_VALUES * cpu_sketch.GROUP_LANES


def _groups(values: np.ndarray) -> np.ndarray:
    """The kernel's groups of ``values`` (whole tiles), sorted: (tiles * 64, 8)."""
    tiles = len(values) // TILE
    return np.sort(values[:tiles * TILE].reshape(tiles, cpu_sketch.GROUP_VALUES,
                                                  cpu_sketch.GROUP_LANES).transpose(0, 2, 1)
                   .reshape(-1, cpu_sketch.GROUP_VALUES), axis=1)


def test_first_block_of_a_column_takes_the_halved_path() -> None:
    """The sizes the tests below use do reach the halved path (else they test nothing)."""
    info = np.array([1, 0], dtype=np.int64)
    j, _ = cpu_sketch.sketch_row_level(info, quantiles.BLOCK_VALUES, quantiles.ROW_VALUES)
    assert j >= quantiles.HALVED_MIN_LEVEL
    assert quantiles.BLOCK_VALUES >= 8 * TILE


def test_halve_groups_keeps_one_half_of_each_sorted_group() -> None:
    rng = np.random.default_rng(40)
    values = rng.lognormal(0.0, 3.0, 7 * TILE + 300)
    values[5] = np.inf
    values[TILE + 9] = -np.inf
    values[-1] = np.nan  # past the last whole tile: not read
    out = np.zeros(7 * TILE // 2)
    bad, low, high = cpu_sketch.sketch_halve_groups(values, 12345, out)
    whole = values[:7 * TILE]
    assert not bad and low == whole.min() == -np.inf and high == whole.max() == np.inf
    groups = _groups(values)
    got = out.reshape(7, 4, cpu_sketch.GROUP_LANES).transpose(0, 2, 1).reshape(-1, 4)
    even = np.all(got == groups[:, 0::2], axis=1)
    odd = np.all(got == groups[:, 1::2], axis=1)
    assert np.all(even | odd)
    assert 0.4 < even.mean() < 0.6  # hashed coins, not one fixed half
    again = np.zeros_like(out)
    cpu_sketch.sketch_halve_groups(values, 12345, again)
    np.testing.assert_array_equal(again, out)  # the coins depend on n only
    cpu_sketch.sketch_halve_groups(values, 12346, again)
    assert not np.array_equal(again, out)


@pytest.mark.parametrize("where", [0, 3 * TILE + 17, 8 * TILE - 1])
def test_halve_groups_reports_nan(where: int) -> None:
    values = np.random.default_rng(41).normal(size=8 * TILE)
    values[where] = np.nan
    assert cpu_sketch.sketch_halve_groups(values, 0, np.empty(4 * TILE))[0]


@pytest.mark.parametrize("spot", ["tile", "leftover"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_counts_and_extremes_are_exact_wherever_they_sit(spot: str, dtype: type) -> None:
    """The min and max inside a tile or among the values past a block's last whole tile;
    other dtypes are converted before the kernel."""
    rng = np.random.default_rng(42)
    n = 2 * quantiles.BLOCK_VALUES + 1000  # batches of 300,000 and 225,288: 8 left over
    raw = rng.normal(1000.0, 50.0, n)
    low_at, high_at = (12_345, 400_000) if spot == "tile" else (n - 3, n - 5)
    raw[low_at], raw[high_at] = -5000.0, 9000.0
    x = raw.astype(dtype)
    fs = fit(x, [300_000])
    as64 = x.astype(np.float64)
    assert fs.count[0] == n
    got = fs.quantile(QS)[:, 0]
    assert got[0] == -5000.0 and got[-1] == 9000.0
    assert rank_error(as64, got, QS) <= RANK_ERROR


@pytest.mark.parametrize("inf", ["keep", "skip"])
def test_a_nan_or_an_inf_in_a_grown_column_takes_the_other_path(inf: str) -> None:
    rng = np.random.default_rng(43)
    x = rng.lognormal(0.0, 1.0, 800_000)
    x[300_000] = np.nan
    x[600_000] = np.inf
    x[700_000] = -np.inf
    fs = sn.FeatureStats(quantiles=True, inf=inf).update(pa.table({"x": x}))
    valid = x[np.isfinite(x)] if inf == "skip" else x[~np.isnan(x)]
    assert fs.count[0] == len(valid)
    saved = fs.to_arrow()  # quantile(0) is NaN with -inf kept, as numpy.quantile's
    assert saved["quantile_min"][0].as_py() == valid.min()
    assert saved["quantile_max"][0].as_py() == valid.max()
    inner = (QS >= 0.01) & (QS <= 0.99)  # numpy.quantile is NaN next to a kept ±inf
    assert rank_error(valid, fs.quantile(QS)[inner, 0], QS[inner]) <= RANK_ERROR


def _spread(sorted_values: np.ndarray) -> np.ndarray:
    """An order in which each group of the kernel holds one value of each eighth of the
    distribution: every group lies across every quantile."""
    n = len(sorted_values) - len(sorted_values) % TILE
    eighths = sorted_values[:n].reshape(cpu_sketch.GROUP_VALUES, -1)
    tiles = n // TILE
    # eighths[k, g]: member k of group g; groups laid out lane by lane within their tile
    laid = eighths.reshape(cpu_sketch.GROUP_VALUES, tiles, cpu_sketch.GROUP_LANES)
    return np.concatenate([laid.transpose(1, 0, 2).reshape(-1), sorted_values[n:]])


@pytest.mark.parametrize("order", ["sorted", "reversed", "spread", "sawtooth"])
def test_rank_bound_for_orders_that_defeat_the_groups(order: str) -> None:
    rng = np.random.default_rng(44)
    s = np.sort(rng.lognormal(0.0, 2.0, 1_500_000))
    x = {"sorted": s, "reversed": s[::-1].copy(), "spread": _spread(s),
         "sawtooth": s.reshape(-1, 1000).T.reshape(-1).copy()}[order]
    for sizes in (None, [65_536] * 23, [int(v) for v in rng.integers(1, 300_000, 12)]):
        fs = fit(x, sizes)
        assert fs.count[0] == len(x)
        assert rank_error(s, fs.quantile(QS)[:, 0], QS) <= RANK_ERROR


def _coin(n: int, level: int) -> int:
    """cpu_sketch's coin (the top bit of splitmix64 of ``(n, level)``), in Python."""
    mask = (1 << 64) - 1
    z = (n * 64 + level + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return (z ^ (z >> 31)) >> 63


def _one_run_sketch(info: np.ndarray, run: np.ndarray, base: int) -> tuple[np.ndarray, ...]:
    """The one-run sketch sketch_add_sorted documents: ``run`` halved (odd items left at
    their level) up to the lowest level whose capacity holds it in the target sketch."""
    m, j = len(run), base
    while (m >> (j - base)) > cpu_sketch.LEVEL_CAPACITY[max(info[0], j + 1), j]:
        j += 1
    n_after = int(info[1]) + (m << base)
    work, left = list(run), {}
    for h in range(base, j):
        if len(work) & 1:
            left[h], work = work[0], work[1:]
        work = work[_coin(n_after, h)::2]
    below = [left[h] for h in range(j) if h in left]
    items = np.array(below + work)
    levels = np.full(cpu_sketch.MAX_LEVELS + 2, len(items), dtype=np.int64)
    position = 0
    for h in range(j + 1):
        levels[h] = position
        position += 1 if h in left else 0
    return items, levels, np.array([j + 1, m << base]), np.array([run[0], run[-1]])


def test_runs_merged_in_place_equal_the_merge_of_a_one_run_sketch() -> None:
    """sketch_add_sorted merges a run in place when the sketch has room; the result is the
    one sketch_merge gives for the one-run sketch, item for item."""
    rng = np.random.default_rng(45)
    sketches = quantiles.QuantileSketches(1)
    sketch = sketches.column(0)
    for step in range(400):
        m, base = int(rng.integers(1, 2500)), int(rng.integers(0, 7))
        run = np.sort(np.round(rng.normal(size=m), int(rng.integers(1, 4))))  # with ties
        expected = sketches.copy()
        cpu_sketch.sketch_merge(*expected.column(0), *_one_run_sketch(sketch[2], run, base))
        cpu_sketch.sketch_add_sorted(*sketch, run, base, run[0], run[-1])
        assert sketches.equals(expected), step
    assert sketches.count[0] > 5_000_000
