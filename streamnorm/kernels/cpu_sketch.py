"""Numba kernels of a mergeable quantile sketch (KLL, Karnin–Lang–Liberty 2016), one per column.

A column's sketch is a few arrays (the layout of Apache DataSketches' KLL, written anew):

* ``items`` float64[CAPACITY]: the retained values. Level ``h`` is
  ``items[levels[h]:levels[h + 1]]`` and each of its items stands for ``2**h`` values; level 0
  is unsorted, every level above is sorted. Free space is at the front, and level 0 grows
  down into it.
* ``levels`` int64[MAX_LEVELS + 2]: the level boundaries; ``levels[num_levels] == CAPACITY``.
* ``info`` int64[2]: ``(num_levels, n)``, ``n`` the number of values the sketch stands for (the
  sum of the weights: a compaction keeps it exact).
* ``extremes`` float64[2]: the exact ``(min, max)``, answered for the ranks 0 and n - 1.

A level whose size reaches its capacity (``K * (2/3)**depth``, at least ``MIN_WIDTH``, depth
counted from the top level) is *compacted*: sorted (level 0), every other item kept with double
weight and merged into the level above; an odd item stays. Which of the two interleaved halves
is kept is the one coin of KLL; here it is a bit of a hash of ``(n, level)``, so a result
depends only on the values and their order, never on a seed, a thread count or a clock. The
size is bounded whatever the count: at most :data:`CAPACITY` items (27.6 KB) per column.

Values come in as sorted runs (:func:`sketch_add_sorted`: a run is halved down to the
lowest level whose capacity holds it, then merged) or, once a sketch has grown, as rows of
64 values each sorted by the caller (numpy sorts many short rows in one call) and halved
``j`` times by one strided pick (:func:`sketch_pick_rows`; ``j`` from
:func:`sketch_row_level`), the survivors then sorted by the caller and added as one run at
level ``j``. A row's pick is the KLL compaction of a sorted buffer of 64, 32, … items at
levels 0 … j-1: most of a long run's sorted order would be thrown away by its halvings.
Larger blocks are first halved in groups of 8 (:func:`sketch_halve_groups`: a 19-step
min/max network over 1024 groups side by side, in SIMD, then one hashed coin per group),
which halves the values the caller sorts as rows.

The kernels take one column at a time and release the GIL (``nogil``), so the caller runs
columns on threads; each column's result is the same whatever the thread count.
"""

from __future__ import annotations

import sys

import numpy as np
from numba import njit

from .cache_load import quick_cache_loads

#: KLL's accuracy parameter: the top level's capacity. Rank error ~ 2.3 / K**0.97 (99% of
#: sketches; DataSketches' fit): 0.27% for K = 1024, under the 0.5% promised.
K = 1024
#: The smallest capacity of a level.
MIN_WIDTH = 8
#: Levels at most: 2**60 values at weight 2**h fill no more than that.
MAX_LEVELS = 61


def _level_capacity_py(num_levels: int, height: int) -> int:
    depth = num_levels - height - 1
    return max(MIN_WIDTH, int(K * (2.0 / 3.0) ** depth + 0.5))


#: Items a sketch can hold: the sum of the level capacities with every level in use.
CAPACITY = sum(_level_capacity_py(MAX_LEVELS, h) for h in range(MAX_LEVELS))
#: ``LEVEL_CAPACITY[L, h]``: the capacity of level ``h`` in a sketch of ``L`` levels.
LEVEL_CAPACITY = np.array(
    [[_level_capacity_py(L, h) if h < L else 0 for h in range(MAX_LEVELS + 1)]
     for L in range(MAX_LEVELS + 2)], dtype=np.int64)
#: ``CAPACITY_TABLE[L]``: the total capacity of a sketch of ``L`` levels.
CAPACITY_TABLE = np.array(
    [0] + [sum(_level_capacity_py(L, h) for h in range(L)) for L in range(1, MAX_LEVELS + 1)],
    dtype=np.int64,
)


@njit(cache=True, nogil=True)
def _coin(n, level):
    """A bit of splitmix64 of ``(n, level)``: which half a compaction keeps."""
    z = np.uint64(n) * np.uint64(64) + np.uint64(level) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return int(z >> np.uint64(63))


@njit(cache=True, nogil=True)
def _insertion_sort(items, start, stop):
    for i in range(start + 1, stop):
        x = items[i]
        j = i - 1
        while j >= start and items[j] > x:
            items[j + 1] = items[j]
            j -= 1
        items[j + 1] = x


@njit(cache=True, nogil=True)
def _sort(items, start, stop):
    if stop - start <= 32:
        _insertion_sort(items, start, stop)
    else:
        items[start:stop] = np.sort(items[start:stop])


@njit(cache=True, nogil=True)
def compact_level(items, levels, num_levels, level, n):
    """Compact ``level`` (its size >= 2) into ``level + 1``; returns the new level count.

    ``levels[num_levels]`` is the end of the buffer; a compaction of the top level adds a new,
    empty top level (``levels`` must have room for it). Items below ``level`` move up by the
    freed space, so free space stays at the front.
    """
    if level == num_levels - 1:
        levels[num_levels + 1] = levels[num_levels]
        num_levels += 1
    raw_beg = levels[level]
    raw_end = levels[level + 1]
    pop_above = levels[level + 2] - raw_end
    raw_pop = raw_end - raw_beg
    odd = raw_pop & 1
    adj_beg = raw_beg + odd
    adj_pop = raw_pop - odd
    half = adj_pop // 2
    if level == 0:
        _sort(items, adj_beg, adj_beg + adj_pop)
    offset = _coin(n, level)
    if pop_above == 0:  # keep one half at the upper end of the span
        for j in range(half):
            items[adj_beg + adj_pop - 1 - j] = items[adj_beg + adj_pop - 1 - 2 * j - (1 - offset)]
    else:  # keep one half at the front, then merge it with the level above, in place
        for j in range(half):
            items[adj_beg + j] = items[adj_beg + 2 * j + offset]
        a = adj_beg
        a_end = adj_beg + half
        b = raw_end
        b_end = raw_end + pop_above
        out = adj_beg + half
        while a < a_end and b < b_end:  # writes never pass the reads of b
            if items[b] < items[a]:
                items[out] = items[b]
                b += 1
            else:
                items[out] = items[a]
                a += 1
            out += 1
        while a < a_end:
            items[out] = items[a]
            a += 1
            out += 1
        # what is left of b is already in place
    levels[level + 1] -= half
    if odd:
        levels[level] = levels[level + 1] - 1
        items[levels[level]] = items[raw_beg]
    else:
        levels[level] = levels[level + 1]
    if level > 0:  # move the levels below up over the freed space
        start = levels[0]
        for i in range(raw_beg - 1, start - 1, -1):
            items[i + half] = items[i]
    for h in range(level):
        levels[h] += half
    return num_levels


@njit(cache=True, nogil=True)
def _lowest_full_level(levels, num_levels):
    for h in range(num_levels):
        if levels[h + 1] - levels[h] >= LEVEL_CAPACITY[num_levels, h]:
            return h
    return num_levels - 1


def _full_weight_py(num_levels: int) -> float:
    return float(sum(_level_capacity_py(num_levels, h) * 2.0 ** h for h in range(num_levels)))


#: ``FULL_WEIGHT[L]``: the most values a sketch of ``L`` levels stands for with every level
#: at its capacity (float64: the top entries pass 2**63).
FULL_WEIGHT = np.array([0.0] + [_full_weight_py(L) for L in range(1, MAX_LEVELS + 1)])


@njit(cache=True, nogil=True)
def sketch_row_level(info, count, width):
    """The level ``j`` at which rows of ``width`` values (a power of two) enter a sketch that
    is about to take ``count`` more values: the lowest level whose capacity holds
    ``width >> j`` items in a sketch of the level count it will reach, or deeper while the
    rows' own compaction at level ``j - 1`` (``width >> (j - 1)`` items, rank variance about
    ``4**(j - 1) / width`` per row) stays under a quarter of the top level's (about
    ``2**(L - 1) / K`` per value). 0 while the sketch is young (up to K values nothing is
    halved). Also returns how many of its survivors' halvings as rows of ``width`` again
    (at levels ``j``, ``j + 1``: ``width``, ``width / 2`` items) pass that same test, at
    most 2: ``(j, again)``."""
    total = info[1] + count
    num_levels = max(info[0], 1)  # levels of the sketch it makes, at least
    while num_levels < MAX_LEVELS and FULL_WEIGHT[num_levels] < total:
        num_levels += 1
    j = 0
    while (width >> j) > LEVEL_CAPACITY[max(num_levels, j + 1), j] and (width >> j) > 1:
        j += 1
    top_weight = width << min(num_levels - 1, 40)
    while (width >> (j + 1)) >= MIN_WIDTH and 4 ** j * 4 * K <= top_weight:
        j += 1
    again = 0
    while again < 2 and j > 0 and (1 << (j + again)) * 4 * K <= (top_weight >> again):
        again += 1
    return j, again


@njit(cache=True, nogil=True)
def sketch_pick_rows(rows, tail, skip_inf, j, n, picked, rest, bounds, level=0):
    """Halve sorted rows ``j`` times each: the first step of adding them to a sketch.

    ``rows`` float64[r, w] (each row sorted ascending, NaN last, ``w`` a power of two) and
    ``tail`` float64[t] (sorted, NaN last, t < w). Valid values are the non-NaN ones (and not
    ±inf when ``skip_inf``). A row of ``w`` valid values is halved at levels 0 .. j-1, as KLL
    compacts a sorted buffer, by one strided pick (one coin per level from ``n``, the count
    so far, and the level): its ``w >> j`` survivors, weighing ``2**j`` each, are appended to
    ``picked`` (float64[(r + 1) * (w >> j)]). ``level``: the values' own level (their weight
    ``2**level``; the halvings are then at levels ``level`` .. ``level + j - 1``). The valid values of shorter rows (NaN, ±inf,
    the tail) are gathered, in order, into full rows first; fewer than ``w`` left over go to
    ``rest`` (float64[2 * w], sorted). ``bounds`` float64[2] gets the valid values' min and
    max. Returns the counts ``(survivors, left over, short rows)``; ``picked`` stays in row
    order (the caller sorts it: a 1 / 2**j share of the values).
    """
    width = rows.shape[1]
    count = rows.shape[0]
    first = width >> j
    gathered = 0
    out = 0
    short = 0
    low = np.inf
    high = -np.inf
    for r in range(count + 1):
        if r < count:
            stop = width
            while stop > 0 and rows[r, stop - 1] != rows[r, stop - 1]:  # NaN sort last
                stop -= 1
        else:
            stop = tail.shape[0]
            while stop > 0 and tail[stop - 1] != tail[stop - 1]:
                stop -= 1
        begin = 0
        if skip_inf:
            while begin < stop and (rows[r, begin] if r < count else tail[begin]) == -np.inf:
                begin += 1
            while stop > begin and (rows[r, stop - 1] if r < count else tail[stop - 1]) \
                    == np.inf:
                stop -= 1
        if stop == begin:
            continue
        if r < count and stop - begin == width:
            n += width
            low = min(low, rows[r, 0])
            high = max(high, rows[r, width - 1])
            pick = 0
            for h in range(j):
                pick += _coin(n, level + h) << h
            for t in range(first):
                picked[out + t] = rows[r, pick + (t << j)]
            out += first
            continue
        # a short row: its values join the gathered ones (merged from the back)
        short += 1
        i = gathered - 1
        k = gathered + stop - begin - 1
        for c in range(stop - 1, begin - 1, -1):
            value = rows[r, c] if r < count else tail[c]
            while i >= 0 and rest[i] > value:
                rest[k] = rest[i]
                i -= 1
                k -= 1
            rest[k] = value
            k -= 1
        gathered += stop - begin
        if gathered < width:
            continue
        n += width
        low = min(low, rest[0])
        high = max(high, rest[width - 1])
        pick = 0
        for h in range(j):
            pick += _coin(n, level + h) << h
        for t in range(first):
            picked[out + t] = rest[pick + (t << j)]
        out += first
        gathered -= width
        for t in range(gathered):
            rest[t] = rest[width + t]
    if gathered:
        low = min(low, rest[0])
        high = max(high, rest[gathered - 1])
    bounds[0] = low
    bounds[1] = high
    return out, gathered, short


#: Values per group of :func:`sketch_halve_groups` and the groups side by side in a tile
#: (its lanes): group ``i`` of a tile of ``GROUP_VALUES * GROUP_LANES`` values holds the
#: values ``i, i + GROUP_LANES, …``, so one loop over the lanes sorts many groups in SIMD,
#: reading 8 streams long enough for the hardware prefetcher (8 KB each).
GROUP_VALUES = 8
GROUP_LANES = 1024
#: The level number salting the groups' coins (above any level a sketch uses).
GROUP_SALT = 62


@njit(cache=True, nogil=True)
def _coin_word(n, level):
    """64 coins: splitmix64 of ``(n, level)``, as :func:`_coin` but every bit."""
    z = np.uint64(n) * np.uint64(64) + np.uint64(level) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def sketch_halve_groups(values, n, out):
    """Halve ``values`` once in groups of 8 before they are sorted as rows: a KLL compaction
    of many tiny sorted buffers at level 0, done with SIMD min/max and no sort call.

    ``values`` float64[m] (contiguous; read only), ``n`` the count so far (seeds the coins).
    The first ``m - m % 8192`` values are taken as tiles of 8192, each 1024 groups of 8
    (group ``i`` of a tile: its values ``i, i + 1024, …, i + 7168``), every group sorted by
    a 19-step network and halved by one hashed coin (positions 0, 2, 4, 6 or 1, 3, 5, 7).
    The survivors (weight 2) go to ``out`` (float64[≥ (m // 8192) * 4096]): a tile's
    ``t``-th survivors of its groups are ``out[tile * 4096 + 1024 * t:][:1024]``, so a row
    of 64 holds values of one tile. A group adds a rank error of at most 1, only to the
    quantiles that fall inside it: rank variance at most 1/8 per value (1/16 for values in
    random order).

    Returns ``(bad, low, high)``: ``bad`` true when a value is NaN (the survivors are then
    meaningless: the caller takes the other path), else the exact min and max.
    """
    tiles = values.shape[0] // (GROUP_VALUES * GROUP_LANES)
    lows = np.full(GROUP_LANES, np.inf)
    highs = np.full(GROUP_LANES, -np.inf)
    bad = False
    for tile in range(tiles):
        base = tile * (GROUP_VALUES * GROUP_LANES)
        dst = tile * (GROUP_VALUES * GROUP_LANES // 2)
        for w in range(GROUP_LANES // 64):
            word = _coin_word(n + base + w, GROUP_SALT)
            for i in range(w * 64, w * 64 + 64):
                v0 = values[base + 0 * GROUP_LANES + i]
                v1 = values[base + 1 * GROUP_LANES + i]
                v2 = values[base + 2 * GROUP_LANES + i]
                v3 = values[base + 3 * GROUP_LANES + i]
                v4 = values[base + 4 * GROUP_LANES + i]
                v5 = values[base + 5 * GROUP_LANES + i]
                v6 = values[base + 6 * GROUP_LANES + i]
                v7 = values[base + 7 * GROUP_LANES + i]
                bad |= ((v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3) | (v4 != v4)
                        | (v5 != v5) | (v6 != v6) | (v7 != v7))
                v0, v1 = min(v0, v1), max(v0, v1)
                v2, v3 = min(v2, v3), max(v2, v3)
                v0, v2 = min(v0, v2), max(v0, v2)
                v1, v3 = min(v1, v3), max(v1, v3)
                v1, v2 = min(v1, v2), max(v1, v2)
                v4, v5 = min(v4, v5), max(v4, v5)
                v6, v7 = min(v6, v7), max(v6, v7)
                v4, v6 = min(v4, v6), max(v4, v6)
                v5, v7 = min(v5, v7), max(v5, v7)
                v5, v6 = min(v5, v6), max(v5, v6)
                v0, v4 = min(v0, v4), max(v0, v4)
                v2, v6 = min(v2, v6), max(v2, v6)
                v2, v4 = min(v2, v4), max(v2, v4)
                v1, v5 = min(v1, v5), max(v1, v5)
                v3, v7 = min(v3, v7), max(v3, v7)
                v3, v5 = min(v3, v5), max(v3, v5)
                v1, v2 = min(v1, v2), max(v1, v2)
                v3, v4 = min(v3, v4), max(v3, v4)
                v5, v6 = min(v5, v6), max(v5, v6)
                lows[i] = min(lows[i], v0)
                highs[i] = max(highs[i], v7)
                c = (word >> np.uint64(i & 63)) & np.uint64(1)
                out[dst + 0 * GROUP_LANES + i] = v1 if c else v0
                out[dst + 1 * GROUP_LANES + i] = v3 if c else v2
                out[dst + 2 * GROUP_LANES + i] = v5 if c else v4
                out[dst + 3 * GROUP_LANES + i] = v7 if c else v6
    return bad, lows.min(), highs.max()


@njit(cache=True, nogil=True)
def sketch_add_sorted(items, levels, info, extremes, run, base, low, high):
    """Add ``run`` (float64[m], sorted ascending, no NaN; items weighing ``2**base`` each,
    so standing for ``m * 2**base`` values within ``[low, high]``) to a sketch.

    The run is compacted on its own first, as KLL compacts a sorted level: halved (one coin
    per halving, an odd item left at its level) up to the lowest level ``j`` whose capacity
    holds it, so each item costs a few copies after the caller's sort. Then the run's levels
    are merged into the sketch (:func:`sketch_merge`; in place by :func:`_insert_run` when
    the sketch has the room, with the same result). Rank error added per run: below
    ``2**j``, with random-looking signs across runs.
    """
    m = run.shape[0]
    if m == 0:
        return
    num_levels = info[0]
    j = base
    while (m >> (j - base)) > LEVEL_CAPACITY[max(num_levels, j + 1), j]:
        j += 1
    n_after = info[1] + (m << base)
    work = run.copy()
    size = m
    # the odd items left at levels base .. j-1 go at the front, one per level at most
    leftover = np.empty(j + 1, dtype=np.float64)
    has_leftover = np.zeros(j + 1, dtype=np.bool_)
    for h in range(base, j):
        first = 0
        if size & 1:
            leftover[h] = work[0]
            has_leftover[h] = True
            first = 1
        half = (size - first) // 2
        offset = _coin(n_after, h)
        for i in range(half):
            work[i] = work[first + 2 * i + offset]
        size = half
    if _insert_run(items, levels, info, extremes, work, size, j, leftover, has_leftover, base,
                   n_after, low, high):
        return
    capacity = MAX_LEVELS + size + 2
    items_b = np.empty(capacity, dtype=np.float64)
    levels_b = np.full(MAX_LEVELS + 2, capacity, dtype=np.int64)
    top = capacity - size
    items_b[top:] = work[:size]
    position = top
    levels_b[j] = top
    for h in range(j - 1, -1, -1):
        if has_leftover[h]:
            position -= 1
            items_b[position] = leftover[h]
        levels_b[h] = position
    info_b = np.array([j + 1, m << base], dtype=np.int64)
    extremes_b = np.array([low, high])
    sketch_merge(items, levels, info, extremes, items_b, levels_b, info_b, extremes_b)


@njit(cache=True, nogil=True)
def _insert_run(items, levels, info, extremes, run, size, j, leftover, has_leftover, base, n,
                low, high):
    """:func:`sketch_merge` of a one-run sketch into a sketch, in place, with the same result
    bits but without copying the whole sketch: ``run[:size]`` (sorted) at level ``j`` and
    ``leftover[h]`` where ``has_leftover[h]`` at the levels ``base .. j - 1``; ``n`` the count
    after it, ``low``/``high`` its extremes. The levels below ``j`` move down into the free
    space at the front, each taking its leftover where the merge puts it (level 0 appends,
    a sorted level puts it after its items that are not greater); the run is merged into
    level ``j`` from the front, into the gap that opens before it; then the lowest full
    levels are compacted as :func:`sketch_merge` does. Returns False, changing nothing, when
    this does not apply: an empty sketch, ``j`` 0 or not below the top level, or less free
    space than the items added."""
    num_levels = info[0]
    extra = size
    for h in range(base, j):
        if has_leftover[h]:
            extra += 1
    if info[1] == 0 or j == 0 or j >= num_levels or levels[0] < extra:
        return False
    moved = extra
    for h in range(j):
        begin = levels[h]
        end = levels[h + 1]
        levels[h] = begin - moved
        if h >= base and has_leftover[h]:
            x = leftover[h]
            i = begin
            while i < end and (h == 0 or not x < items[i]):
                items[i - moved] = items[i]
                i += 1
            items[i - moved] = x
            for k in range(i, end):
                items[k - moved + 1] = items[k]
            moved -= 1
        else:
            for i in range(begin, end):
                items[i - moved] = items[i]
    a = levels[j]
    a_end = levels[j + 1]
    out = a - size
    levels[j] = out
    b = 0
    while a < a_end and b < size:  # writes never pass the reads of a
        if run[b] < items[a]:
            items[out] = run[b]
            b += 1
        else:
            items[out] = items[a]
            a += 1
        out += 1
    while b < size:
        items[out] = run[b]
        b += 1
        out += 1
    while levels[num_levels] - levels[0] > CAPACITY_TABLE[num_levels]:
        level = _lowest_full_level(levels, num_levels)
        num_levels = compact_level(items, levels, num_levels, level, n)
    info[0] = num_levels
    info[1] = n
    extremes[0] = min(extremes[0], low)
    extremes[1] = max(extremes[1], high)
    return True


@njit(cache=True, nogil=True)
def sketch_add_runs(items, levels, info, extremes, runs, base, low, high):
    """:func:`sketch_add_sorted` for each row of ``runs`` (float64[r, m], each row sorted, no
    NaN, items weighing ``2**base``), in order, in one call."""
    for r in range(runs.shape[0]):
        sketch_add_sorted(items, levels, info, extremes, runs[r], base, low, high)


@njit(cache=True, nogil=True)
def sketch_merge(items, levels, info, extremes, items_b, levels_b, info_b, extremes_b):
    """Merge sketch b into sketch a (the first four arrays), in place.

    Each level of the result holds both sketches' items of that level (level 0 appended,
    the others merged in order); then the lowest full levels are compacted until the items
    fit the capacity of the level count.
    """
    n_b = info_b[1]
    if n_b == 0:
        return
    n_a = info[1]
    if n_a == 0:
        extremes[0] = extremes_b[0]
        extremes[1] = extremes_b[1]
    la = info[0]
    lb = info_b[0]
    num_levels = max(la, lb)
    size_a = levels[la] - levels[0]
    size_b = levels_b[lb] - levels_b[0]
    width = size_a + size_b + 1
    work = np.empty(width, dtype=np.float64)
    bounds = np.zeros(MAX_LEVELS + 2, dtype=np.int64)
    out = width - (size_a + size_b)
    for h in range(num_levels):
        bounds[h] = out
        a = levels[h] if h < la else 0
        a_end = levels[h + 1] if h < la else 0
        b = levels_b[h] if h < lb else 0
        b_end = levels_b[h + 1] if h < lb else 0
        if h == 0:
            for i in range(a, a_end):
                work[out] = items[i]
                out += 1
            for i in range(b, b_end):
                work[out] = items_b[i]
                out += 1
            continue
        while a < a_end and b < b_end:
            if items_b[b] < items[a]:
                work[out] = items_b[b]
                b += 1
            else:
                work[out] = items[a]
                a += 1
            out += 1
        while a < a_end:
            work[out] = items[a]
            a += 1
            out += 1
        while b < b_end:
            work[out] = items_b[b]
            b += 1
            out += 1
    bounds[num_levels] = width
    n = n_a + n_b
    while bounds[num_levels] - bounds[0] > CAPACITY_TABLE[num_levels]:
        level = _lowest_full_level(bounds, num_levels)
        num_levels = compact_level(work, bounds, num_levels, level, n)
    capacity = items.shape[0]
    shift = capacity - width
    for i in range(bounds[0], width):
        items[i + shift] = work[i]
    for h in range(num_levels + 1):
        levels[h] = bounds[h] + shift
    for h in range(num_levels + 1, levels.shape[0]):
        levels[h] = capacity
    info[0] = num_levels
    info[1] = n
    extremes[0] = min(extremes[0], extremes_b[0])
    extremes[1] = max(extremes[1], extremes_b[1])


@njit(cache=True, nogil=True)
def _lerp(a, b, t):
    """numpy's ``_lerp`` (``numpy.quantile``'s linear method), bit for bit."""
    diff = b - a
    if t >= 0.5:
        return b - diff * (1.0 - t)
    return a + diff * t


@njit(cache=True, nogil=True)
def sketch_quantiles(items, levels, info, extremes, qs, median):
    """The quantiles ``qs`` (float64[m], each in [0, 1]) of one sketch, float64[m].

    ``numpy.quantile``'s default (linear) method over the values the sketch stands for: the
    value at rank ``r`` is the item whose weight covers ``r``, rank 0 the exact min and rank
    ``n - 1`` the exact max. Exact (equal to numpy's) while nothing was compacted. NaN when
    the sketch is empty. ``median``: halfway between two ranks is their mean, ``(a + b) / 2``,
    as ``numpy.median`` computes it (the lerp can differ from it in the last bit).
    """
    num_levels = info[0]
    n = info[1]
    out = np.full(qs.shape[0], np.nan)
    if n == 0:
        return out
    start = levels[0]
    size = levels[num_levels] - start
    values = items[start:start + size].copy()
    weights = np.empty(size, dtype=np.int64)
    for h in range(num_levels):
        for i in range(levels[h], levels[h + 1]):
            weights[i - start] = np.int64(1) << np.int64(h)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    cumulative = np.cumsum(weights[order])
    for j in range(qs.shape[0]):
        position = qs[j] * (n - 1)
        below = np.floor(position)
        gamma = position - below
        r = int(below)
        a = _value_at_rank(sorted_values, cumulative, extremes, n, r)
        upper = min(r + 1, n - 1)
        b = _value_at_rank(sorted_values, cumulative, extremes, n, upper)
        if median and gamma == 0.5:
            out[j] = (a + b) / 2.0
        else:
            out[j] = _lerp(a, b, gamma)
    return out


@njit(cache=True, nogil=True)
def _value_at_rank(sorted_values, cumulative, extremes, n, r):
    if r <= 0:
        return extremes[0]
    if r >= n - 1:
        return extremes[1]
    j = np.searchsorted(cumulative, r, side="right")
    return sorted_values[min(j, sorted_values.shape[0] - 1)]


def thread_count() -> int:
    """Threads the CPU kernels may use (numba's current thread count)."""
    import numba

    return int(numba.get_num_threads())


quick_cache_loads(sys.modules[__name__])  # cached kernels load without numba's compiler set-up
