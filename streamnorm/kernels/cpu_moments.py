"""Numba CPU kernels for per-feature moments: one column, or many columns by address.

No Arrow objects and no classes here (docs/design.md §2). Every kernel accumulates in float64
whatever the input dtype. Validity is passed as Arrow's packed bitmap (LSB first) plus the
bit offset of the first value, so null bitmaps are read in place and never unpacked into a
filled copy of the column.

Per-feature moments (docs/design.md §4): each value is shifted by ``shift`` (the column's first
finite value), then processed in blocks of ``BLOCK`` values with a two-pass (block mean, then
sum of squared deviations). Blocks merge into fixed chunks of ``CHUNK`` values with Chan's
formula; chunks are processed in parallel with ``prange`` and merged serially in chunk order,
so the result does not depend on the number of threads.

A moment state in these kernels is the tuple ``(count, shifted_mean, m2, minimum, maximum)``
with ``count`` a float64 (Chan's formula needs it as a float anyway).

No cached function here calls a parallel one (a cached njit function calling a parallel one
can crash when loaded from the cache, numba issue 8578): the choice between the serial and
the parallel kernel is made in Python, by :mod:`streamnorm.kernels.cpu`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .cpu_block import dense_sum_minmax
from .memory import array_at, bitmap_at

#: Values per two-pass block: small enough to stay in L1 between the two passes.
BLOCK = 2048
#: Values per parallel chunk: a fixed size, so results do not depend on the thread count.
CHUNK = 16 * BLOCK

# Only the flags that reorder a block-local sum (no compensation lives there) are allowed:
# never nnan/ninf, which would break NaN and inf handling (docs/design.md §4).
BLOCK_MATH = {"reassoc", "contract"}


@njit(cache=True, inline="always")
def bit_is_set(bitmap, bit_index):
    """Whether bit ``bit_index`` of an Arrow LSB-first packed bitmap is set."""
    return (bitmap[bit_index >> 3] >> (bit_index & 7)) & 1


def chan_formula(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Chan et al. pairwise merge of two (count, mean, m2) states with the same shift.

    Plain Python compiled twice, the one formula of the kernels: :data:`chan_merge` for the
    CPU and a CUDA device function in :mod:`streamnorm.kernels.cuda`. A side whose mean is
    ±inf or NaN (it saw an ±inf value) gives numpy's result: mean ``mean_a + mean_b`` (inf, or
    NaN for inf - inf) and m2 NaN, whatever the merge order.
    """
    if n_b == 0.0:
        return n_a, mean_a, m2_a
    if n_a == 0.0:
        return n_b, mean_b, m2_b
    n = n_a + n_b
    if not (math.isfinite(mean_a) and math.isfinite(mean_b)):
        return n, mean_a + mean_b, math.nan
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta * delta * (n_a * n_b / n)
    return n, mean, m2


#: :func:`chan_formula` for CPU kernels, inlined.
chan_merge = njit(cache=True, inline="always")(chan_formula)


# --------------------------------------------------------------------------- order keys
# Min/max of a NaN-free float block as an *integer* reduction: a float's bits, with the
# magnitude bits flipped for negative numbers, order exactly like the float values (-0.0 sorts
# just below +0.0). Integer min/max reductions vectorise without any fast-math flag, whereas a
# float compare-select reduction needs ``nnan`` (docs/design.md §4 forbids it). Integer inputs are
# their own keys.


def _order_key(x):  # pragma: no cover - replaced by the overload below inside kernels
    raise NotImplementedError


def _from_order_key(key, like):  # pragma: no cover
    raise NotImplementedError


def _order_key_bounds(values):  # pragma: no cover
    raise NotImplementedError


@overload(_order_key, inline="always")
def _ov_order_key(x):
    if isinstance(x, types.Float) and x.bitwidth == 64:
        def impl(x):
            bits = np.float64(x).view(np.int64)
            return bits ^ ((bits >> 63) & np.int64(0x7FFFFFFFFFFFFFFF))
        return impl
    if isinstance(x, types.Float) and x.bitwidth == 32:
        def impl(x):
            bits = np.float32(x).view(np.int32)
            return bits ^ ((bits >> np.int32(31)) & np.int32(0x7FFFFFFF))
        return impl
    if isinstance(x, types.Integer):
        return lambda x: x
    return None


@overload(_from_order_key, inline="always")
def _ov_from_order_key(key, like):
    if isinstance(like, types.Float) and like.bitwidth == 64:
        def impl(key, like):
            bits = key ^ ((key >> 63) & np.int64(0x7FFFFFFFFFFFFFFF))
            return float(np.int64(bits).view(np.float64))
        return impl
    if isinstance(like, types.Float) and like.bitwidth == 32:
        def impl(key, like):
            bits = key ^ ((key >> np.int32(31)) & np.int32(0x7FFFFFFF))
            return float(np.int32(bits).view(np.float32))
        return impl
    if isinstance(like, types.Integer):
        return lambda key, like: float(key)
    return None


@overload(_order_key_bounds, inline="always")
def _ov_order_key_bounds(values):
    dtype = values.dtype
    if isinstance(dtype, types.Float):
        key = np.int64 if dtype.bitwidth == 64 else np.int32
    elif isinstance(dtype, types.Integer):
        key = getattr(np, str(dtype))
    else:
        return None
    info = np.iinfo(key)
    top, bottom = key(info.max), key(info.min)

    def impl(values):
        return top, bottom  # (initial minimum, initial maximum)
    return impl


# --------------------------------------------------------------------------- dense blocks


@njit(cache=True, fastmath=BLOCK_MATH)
def _dense_block_sum_keys(values, start, stop, shift):
    """One read of a block: sum of ``x - shift`` and the min/max order keys, fused."""
    # Index a slice from 0: with ``range(start, stop)`` numba cannot prove the index is
    # non-negative and the wraparound check turns every load into a gather.
    block = values[start:stop]
    total = 0.0
    lo, hi = _order_key_bounds(values)
    for i in range(block.shape[0]):
        v = block[i]
        total += float(v) - shift
        key = _order_key(v)
        lo = min(lo, key)
        hi = max(hi, key)
    return total, lo, hi


def _dense_first_pass(values, start, stop, shift):  # pragma: no cover - see the overload
    raise NotImplementedError


@overload(_dense_first_pass, inline="always")
def _ov_dense_first_pass(values, start, stop, shift):
    """(sum of ``x - shift``, min, max) of a block without validity: float blocks through
    the explicit vector loop of :mod:`.cpu_block`, integer blocks through order keys (an
    integer is its own key: plain integer min/max)."""
    if values.dtype in (types.float32, types.float64):
        return lambda values, start, stop, shift: dense_sum_minmax(values, start, stop, shift)

    def impl(values, start, stop, shift):
        total, lo_key, hi_key = _dense_block_sum_keys(values, start, stop, shift)
        first = values[start]
        return total, _from_order_key(lo_key, first), _from_order_key(hi_key, first)
    return impl


@njit(cache=True, fastmath=BLOCK_MATH)
def _dense_block_m2(values, start, stop, shift, block_mean):
    block = values[start:stop]
    m2 = 0.0
    for i in range(block.shape[0]):
        d = (float(block[i]) - shift) - block_mean
        m2 += d * d
    return m2


@njit(cache=True, inline="always")
def valid_bit(validity, bit_index):
    """Bit ``bit_index`` of a packed bitmap, indexed unsigned (no wraparound check)."""
    u = np.uint64(bit_index)
    return (validity[u >> np.uint64(3)] >> (u & np.uint64(7))) & np.uint8(1)


@njit(cache=True, fastmath=BLOCK_MATH)
def _checked_block(values, validity, bit_offset, has_validity, start, stop, shift):
    """Block moments skipping nulls and NaN: (count, nan_count, mean, m2, min, max).

    Branch-free so it vectorises: a value takes part when it is valid and not NaN, as a
    select (never a multiply by a 0/1 weight, which would turn a null slot's inf into NaN).
    ±inf take part as values (they make the mean/m2 inf/NaN); min/max use order keys, which
    order ±inf correctly, and skipped values contribute the neutral key.
    """
    block = values[start:stop]
    first_bit = bit_offset + start
    count = 0
    nan_count = 0
    total = 0.0
    top, bottom = _order_key_bounds(values)
    lo = top
    hi = bottom
    for i in range(block.shape[0]):
        v = block[i]
        x = float(v)
        valid = True
        if has_validity:
            valid = valid_bit(validity, first_bit + i) != 0
        is_nan = x != x
        ok = valid and not is_nan
        nan_count += 1 if (valid and is_nan) else 0
        count += 1 if ok else 0
        total += (x - shift) if ok else 0.0
        key = _order_key(v)
        lo = min(lo, key if ok else top)
        hi = max(hi, key if ok else bottom)
    if count == 0:
        return 0, nan_count, 0.0, 0.0, np.nan, np.nan
    block_mean = total / count
    m2 = 0.0
    for i in range(block.shape[0]):
        x = float(block[i])
        valid = True
        if has_validity:
            valid = valid_bit(validity, first_bit + i) != 0
        d = ((x - shift) - block_mean) if (valid and x == x) else 0.0
        m2 += d * d
    first = values[start]
    return count, nan_count, block_mean, m2, _from_order_key(lo, first), _from_order_key(hi, first)


@njit(cache=True)
def _block_moments(values, validity, bit_offset, has_validity, start, stop, shift):
    """Moments of ``values[start:stop]``: (count, nan_count, shifted mean, m2, min, max)."""
    if not has_validity:
        # Fast path: one vectorised read gives the shifted sum and the min/max; a finite
        # sum proves the block holds no NaN or inf, so min/max are valid and no per-value
        # check is needed. The second pass then reads the block from L1.
        total, lo, hi = _dense_first_pass(values, start, stop, shift)
        if np.isfinite(total):
            n = stop - start
            block_mean = total / n
            m2 = _dense_block_m2(values, start, stop, shift, block_mean)
            return n, 0, block_mean, m2, lo, hi
    return _checked_block(values, validity, bit_offset, has_validity, start, stop, shift)


@njit(cache=True)
def _chunk_moments(values, validity, bit_offset, has_validity, start, stop, shift):
    """Moments of ``values[start:stop]``: its blocks Chan-merged in order.

    Each block is read twice, the second time from L1. A software-pipelined variant (the next
    block's first pass fused with this block's second) was measured slower on AVX-512 (Zen 5:
    23 against 27 GB/s on one thread), so the passes stay separate loops that vectorise well.
    """
    count = 0.0
    mean = 0.0
    m2 = 0.0
    nan_count = 0
    lo = np.inf
    hi = -np.inf
    for block_start in range(start, stop, BLOCK):
        block_stop = min(block_start + BLOCK, stop)
        n_b, nan_b, mean_b, m2_b, lo_b, hi_b = _block_moments(
            values, validity, bit_offset, has_validity, block_start, block_stop, shift
        )
        nan_count += nan_b
        if n_b > 0:
            count, mean, m2 = chan_merge(count, mean, m2, float(n_b), mean_b, m2_b)
            lo = min(lo, lo_b)
            hi = max(hi, hi_b)
    return count, nan_count, mean, m2, lo, hi


@njit(cache=True)
def empty_chunk_states(n):
    """Per-chunk (count, nan_count, shifted_mean, m2, min, max) arrays for ``n`` chunks."""
    return (np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n),
            np.full(n, np.inf), np.full(n, -np.inf))


@njit(cache=True)
def _merge_chunk_states(counts, nan_counts, means, m2s, los, his, first, stop):
    """Merge chunk states ``first..stop-1`` serially, in chunk order (thread-count independent)."""
    count = 0.0
    mean = 0.0
    m2 = 0.0
    nan_count = 0
    lo = np.inf
    hi = -np.inf
    for c in range(first, stop):
        nan_count += nan_counts[c]
        if counts[c] > 0:
            count, mean, m2 = chan_merge(count, mean, m2, counts[c], means[c], m2s[c])
            lo = min(lo, los[c])
            hi = max(hi, his[c])
    if count == 0:
        return np.int64(0), nan_count, 0.0, 0.0, np.nan, np.nan
    return np.int64(count), nan_count, mean, m2, lo, hi


@njit(cache=True)
def serial_column_moments(values, validity, bit_offset, has_validity, shift):
    """:func:`streamnorm.kernels.cpu.column_moments` without a parallel launch, for columns
    of one chunk or less (the same chunks and merge order: the same bits)."""
    n = values.shape[0]
    if n == 0:
        return np.int64(0), np.int64(0), 0.0, 0.0, np.nan, np.nan
    cnt, nan_c, mean_c, m2_c, lo_c, hi_c = _chunk_moments(
        values, validity, bit_offset, has_validity, 0, n, shift
    )
    if cnt == 0:
        return np.int64(0), np.int64(nan_c), 0.0, 0.0, np.nan, np.nan
    return np.int64(cnt), np.int64(nan_c), mean_c, m2_c, lo_c, hi_c


@njit(cache=True, parallel=True)
def parallel_column_moments(values, validity, bit_offset, has_validity, shift):
    """:func:`streamnorm.kernels.cpu.column_moments` with its chunks in parallel."""
    n = values.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    counts, nan_counts, means, m2s, los, his = empty_chunk_states(n_chunks)
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        cnt, nan_c, mean_c, m2_c, lo_c, hi_c = _chunk_moments(
            values, validity, bit_offset, has_validity, start, stop, shift
        )
        counts[c] = cnt
        nan_counts[c] = nan_c
        means[c] = mean_c
        m2s[c] = m2_c
        los[c] = lo_c
        his[c] = hi_c
    return _merge_chunk_states(counts, nan_counts, means, m2s, los, his, 0, n_chunks)


@njit(cache=True)
def task_layout(lengths):
    """Split columns of ``lengths`` values into (column, chunk) tasks of ``CHUNK`` values.

    Returns ``first_task`` int64[k + 1] (column j owns tasks first_task[j]..first_task[j+1]-1)
    and ``task_column`` int64[n_tasks].
    """
    k = lengths.shape[0]
    first_task = np.zeros(k + 1, dtype=np.int64)
    for j in range(k):
        first_task[j + 1] = first_task[j] + (lengths[j] + CHUNK - 1) // CHUNK
    task_column = np.empty(first_task[k], dtype=np.int64)
    for j in range(k):
        for t in range(first_task[j], first_task[j + 1]):
            task_column[t] = j
    return first_task, task_column


@njit(cache=True)
def merge_tasks(first_task, counts, nan_counts, means, m2s, los, his):
    """Each column's task states merged in chunk order: the first six result arrays of
    :func:`columns_moments_at`."""
    k = first_task.shape[0] - 1
    count = np.zeros(k, dtype=np.int64)
    nan_count = np.zeros(k, dtype=np.int64)
    mean = np.zeros(k)
    m2 = np.zeros(k)
    lo = np.full(k, np.nan)
    hi = np.full(k, np.nan)
    for j in range(k):
        count[j], nan_count[j], mean[j], m2[j], lo[j], hi[j] = _merge_chunk_states(
            counts, nan_counts, means, m2s, los, his, first_task[j], first_task[j + 1]
        )
    return count, nan_count, mean, m2, lo, hi


#: Below this many values in all (the sum of the columns' lengths) a multi-column kernel runs
#: serially in the calling thread rather than as a parallel launch: with the cores busy a
#: launch per tiny batch cost 150-870 us (issue 14) where the serial loop over a 1-row batch
#: takes a few. Both paths cut the same (column, chunk) tasks and merge them in the same order,
#: so the choice never changes a bit. Chosen in Python (:mod:`streamnorm.kernels.cpu`), since
#: no cached function may call a parallel one.
SERIAL_MAX_VALUES = 2 * CHUNK


@njit(cache=True)
def shifts_at(like, addresses, lengths, validity_addresses, bit_offsets, has_validity, shifts):
    """``shifts`` with each NaN replaced by its column's first finite value (0 if none)."""
    bitmap = np.empty(0, dtype=np.uint8)
    shift_used = shifts.copy()
    for j in range(addresses.shape[0]):
        if np.isnan(shift_used[j]):
            validity = bitmap_at(validity_addresses[j], bit_offsets[j], lengths[j],
                                 has_validity[j], bitmap)
            found = first_finite(array_at(addresses[j], lengths[j], like), validity,
                                 bit_offsets[j], has_validity[j])
            shift_used[j] = 0.0 if np.isnan(found) else found
    return shift_used


@njit(cache=True)
def task_moments_at(t, first_task, task_column, like, addresses, lengths, validity_addresses,
                     bit_offsets, has_validity, shifts):
    """The chunk state of (column, chunk) task ``t`` (see :func:`task_layout`)."""
    j = task_column[t]
    start = (t - first_task[j]) * CHUNK
    stop = min(start + CHUNK, lengths[j])
    values = array_at(addresses[j], lengths[j], like)
    validity = bitmap_at(validity_addresses[j], bit_offsets[j], lengths[j], has_validity[j],
                         np.empty(0, dtype=np.uint8))
    return _chunk_moments(values, validity, bit_offsets[j], has_validity[j], start, stop,
                          shifts[j])


@njit(cache=True, parallel=True)
def columns_moments_at(like, addresses, lengths, validity_addresses, bit_offsets,
                       has_validity, shifts):
    """Moments of several same-dtype columns given by buffer address, in one parallel launch.

    Work items are (column, chunk) pairs, so a batch of many short columns still fills every
    thread; each column's chunks merge serially in chunk order, giving the same bits as
    ``column_moments`` on that column with the same shift.

    ``like`` is any array of the values dtype (only its type is used). ``addresses`` int64[k]:
    address of each column's first value; ``lengths`` int64[k]; ``validity_addresses``
    int64[k]: address of each Arrow validity bitmap (read only where ``has_validity`` bool[k]),
    whose bit ``bit_offsets[j]`` is the first value's. The caller keeps the buffers alive.
    ``shifts`` float64[k]: NaN asks for the column's first finite value (0 if it has none).

    Returns
    -------
    (count int64[k], nan_count int64[k], shifted_mean[k], m2[k], minimum[k], maximum[k],
    shift_used float64[k]); minimum/maximum NaN where count is 0.
    """
    shift_used = shifts_at(like, addresses, lengths, validity_addresses, bit_offsets,
                           has_validity, shifts)
    first_task, task_column = task_layout(lengths)
    n_tasks = task_column.shape[0]
    counts, nan_counts, means, m2s, los, his = empty_chunk_states(n_tasks)
    for t in prange(n_tasks):
        counts[t], nan_counts[t], means[t], m2s[t], los[t], his[t] = task_moments_at(
            t, first_task, task_column, like, addresses, lengths, validity_addresses,
            bit_offsets, has_validity, shift_used
        )
    count, nan_count, mean, m2, lo, hi = merge_tasks(
        first_task, counts, nan_counts, means, m2s, los, his
    )
    return count, nan_count, mean, m2, lo, hi, shift_used


@njit(cache=True)
def serial_columns_moments_at(like, addresses, lengths, validity_addresses, bit_offsets,
                              has_validity, shifts):
    """:func:`columns_moments_at` in the calling thread, for batches of at most
    :data:`SERIAL_MAX_VALUES` values: the same tasks and merge order, so the same bits."""
    shift_used = shifts_at(like, addresses, lengths, validity_addresses, bit_offsets,
                           has_validity, shifts)
    first_task, task_column = task_layout(lengths)
    n_tasks = task_column.shape[0]
    counts, nan_counts, means, m2s, los, his = empty_chunk_states(n_tasks)
    for t in range(n_tasks):
        counts[t], nan_counts[t], means[t], m2s[t], los[t], his[t] = task_moments_at(
            t, first_task, task_column, like, addresses, lengths, validity_addresses,
            bit_offsets, has_validity, shift_used
        )
    count, nan_count, mean, m2, lo, hi = merge_tasks(
        first_task, counts, nan_counts, means, m2s, los, his
    )
    return count, nan_count, mean, m2, lo, hi, shift_used


@njit(cache=True)
def first_finite(values, validity, bit_offset, has_validity):
    """The first valid, finite value of a column (used as its shift), or NaN if none."""
    for i in range(values.shape[0]):
        if has_validity and not bit_is_set(validity, bit_offset + i):
            continue
        x = float(values[i])
        if np.isfinite(x):
            return x
    return np.nan

