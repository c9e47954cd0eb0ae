"""Numba CPU kernels: plain loops over numpy arrays and Arrow validity bitmaps.

No Arrow objects and no classes here (DESIGN §2). Every kernel accumulates in float64
whatever the input dtype. Validity is passed as Arrow's packed bitmap (LSB first) plus the
bit offset of the first value, so null bitmaps are read in place and never unpacked into a
filled copy of the column.

Per-feature moments (DESIGN §4): each value is shifted by ``shift`` (the column's first
finite value), then processed in blocks of ``BLOCK`` values with a two-pass (block mean, then
sum of squared deviations). Blocks merge into fixed chunks of ``CHUNK`` values with Chan's
formula; chunks are processed in parallel with ``prange`` and merged serially in chunk order,
so the result does not depend on the number of threads.

A moment state in these kernels is the tuple ``(count, shifted_mean, m2, minimum, maximum)``
with ``count`` a float64 (Chan's formula needs it as a float anyway).
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit, prange, types
from numba.extending import intrinsic, overload


def _cache_typed_list_helpers() -> None:
    """Let numba's typed ``List`` helpers use the on-disk cache, as these kernels do.

    Kernels over several columns take them as a ``numba.typed.List``; numba compiles that
    List's own helpers (``_make_list``, ``_append``) afresh in every process unless they are
    cached: 0.15 s per item type, 0.6 s before the first batch of a file is processed. Caching
    compiles nothing at import. Best effort: without a writable cache location they stay
    uncached (and work as before).
    """
    try:
        from numba.core.dispatcher import Dispatcher
        from numba.typed import typedlist
    except ImportError:  # pragma: no cover - numba without typed lists
        return
    for name in ("_make_list", "_append", "_length", "_getitem", "_setitem"):
        helper = getattr(typedlist, name, None)
        if isinstance(helper, Dispatcher) and getattr(helper, "_cache", None) is not None:
            try:
                if type(helper._cache).__name__ == "NullCache":
                    helper.enable_caching()
            except Exception:  # pragma: no cover - no cache locator for numba's directory
                pass


_cache_typed_list_helpers()

#: Values per two-pass block: small enough to stay in L1 between the two passes.
BLOCK = 2048
#: Values per parallel chunk: a fixed size, so results do not depend on the thread count.
CHUNK = 16 * BLOCK

# Only the flags that reorder a block-local sum (no compensation lives there) are allowed:
# never nnan/ninf, which would break NaN and inf handling (DESIGN §4).
_BLOCK_MATH = {"reassoc", "contract"}


@njit(cache=True, inline="always")
def _bit_is_set(bitmap, bit_index):
    """Whether bit ``bit_index`` of an Arrow LSB-first packed bitmap is set."""
    return (bitmap[bit_index >> 3] >> (bit_index & 7)) & 1


@njit(cache=True, inline="always")
def chan_merge(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Chan et al. pairwise merge of two (count, mean, m2) states with the same shift."""
    if n_b == 0.0:
        return n_a, mean_a, m2_a
    if n_a == 0.0:
        return n_b, mean_b, m2_b
    n = n_a + n_b
    if not (np.isfinite(mean_a) and np.isfinite(mean_b)):
        # A side holding ±inf: the mean is the inf (or NaN for +inf with -inf) and m2 is NaN,
        # as numpy; the formula below would turn inf - inf into a NaN mean.
        return n, mean_a + mean_b, np.nan
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta * delta * (n_a * n_b / n)
    return n, mean, m2


# --------------------------------------------------------------------------- order keys
# Min/max of a NaN-free float block as an *integer* reduction: a float's bits, with the
# magnitude bits flipped for negative numbers, order exactly like the float values (-0.0 sorts
# just below +0.0). Integer min/max reductions vectorise without any fast-math flag, whereas a
# float compare-select reduction needs ``nnan`` (DESIGN §4 forbids it). Integer inputs are
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


@njit(cache=True, fastmath=_BLOCK_MATH)
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


@njit(cache=True, fastmath=_BLOCK_MATH)
def _dense_block_m2(values, start, stop, shift, block_mean):
    block = values[start:stop]
    m2 = 0.0
    for i in range(block.shape[0]):
        d = (float(block[i]) - shift) - block_mean
        m2 += d * d
    return m2


@njit(cache=True, inline="always")
def _valid_bit(validity, bit_index):
    """Bit ``bit_index`` of a packed bitmap, indexed unsigned (no wraparound check)."""
    u = np.uint64(bit_index)
    return (validity[u >> np.uint64(3)] >> (u & np.uint64(7))) & np.uint8(1)


@njit(cache=True, fastmath=_BLOCK_MATH)
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
            valid = _valid_bit(validity, first_bit + i) != 0
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
            valid = _valid_bit(validity, first_bit + i) != 0
        d = ((x - shift) - block_mean) if (valid and x == x) else 0.0
        m2 += d * d
    first = values[start]
    return count, nan_count, block_mean, m2, _from_order_key(lo, first), _from_order_key(hi, first)


@njit(cache=True)
def _block_moments(values, validity, bit_offset, has_validity, start, stop, shift):
    """Moments of ``values[start:stop]``: (count, nan_count, shifted mean, m2, min, max)."""
    if not has_validity:
        # Fast path: one vectorised read gives the shifted sum and the min/max keys; a finite
        # sum proves the block holds no NaN or inf, so the keys are valid and no per-value
        # check is needed. The second pass then reads the block from L1.
        total, lo_key, hi_key = _dense_block_sum_keys(values, start, stop, shift)
        if np.isfinite(total):
            n = stop - start
            block_mean = total / n
            m2 = _dense_block_m2(values, start, stop, shift, block_mean)
            first = values[start]
            return (n, 0, block_mean, m2, _from_order_key(lo_key, first),
                    _from_order_key(hi_key, first))
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
def _serial_column_moments(values, validity, bit_offset, has_validity, shift):
    """:func:`column_moments` without a parallel launch, for columns of one chunk or less.

    Same chunks, same merge order, so the same bits as the parallel kernel.
    """
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
def _parallel_column_moments(values, validity, bit_offset, has_validity, shift):
    n = values.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    counts = np.zeros(n_chunks)
    nan_counts = np.zeros(n_chunks, dtype=np.int64)
    means = np.zeros(n_chunks)
    m2s = np.zeros(n_chunks)
    los = np.full(n_chunks, np.inf)
    his = np.full(n_chunks, -np.inf)
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
def column_moments(values, validity, bit_offset, has_validity, shift):
    """Moments of one column of any numeric dtype, nulls and NaN skipped.

    Parameters
    ----------
    values : 1-D numpy array, shape (n,), any int/uint/float32/float64 dtype.
    validity : uint8 array, Arrow packed validity bitmap (ignored unless ``has_validity``).
    bit_offset : int, bit index of ``values[0]`` in ``validity``.
    has_validity : bool, whether to honour ``validity``.
    shift : float64, subtracted from every value before accumulation (the column's shift).

    Returns
    -------
    (count, nan_count, shifted_mean, m2, minimum, maximum)
        ``count`` and ``nan_count`` as int64; ``shifted_mean`` is the mean of ``x - shift``;
        ``m2`` the sum of squared deviations from the mean; min/max NaN when count is 0.

    Chunks of ``CHUNK`` values run in parallel (one chunk or less: no parallel launch) and
    merge serially in chunk order, so the result does not depend on the thread count.
    """
    if values.shape[0] <= CHUNK:
        return _serial_column_moments(values, validity, bit_offset, has_validity, shift)
    return _parallel_column_moments(values, validity, bit_offset, has_validity, shift)


@njit(cache=True)
def _task_layout(lengths):
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
def _merge_tasks(first_task, counts, nan_counts, means, m2s, los, his):
    """Each column's task states merged in chunk order: the six result arrays of
    :func:`columns_moments`."""
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


@njit(cache=True, parallel=True)
def columns_moments(columns, validities, bit_offsets, has_validity, shifts):
    """:func:`column_moments` of several same-dtype columns in one parallel launch.

    ``columns``/``validities`` are numba typed Lists of arrays (the columns may differ in
    length), ``bit_offsets`` int64[k], ``has_validity`` bool[k], ``shifts`` float64[k]. Work
    items are (column, chunk) pairs, so a batch of many short columns still fills every
    thread; each column's chunks merge serially in chunk order, giving the same bits as
    :func:`column_moments` on that column.

    The same loop as :func:`columns_moments_at`, kept separate on purpose: a cached njit
    function that calls a parallel one can crash when loaded from the cache (numba issue
    8578; seen here as a segfault), so neither calls the other.

    Returns
    -------
    (count int64[k], nan_count int64[k], shifted_mean[k], m2[k], minimum[k], maximum[k])
    """
    k = len(columns)
    lengths = np.empty(k, dtype=np.int64)
    for j in range(k):
        lengths[j] = columns[j].shape[0]
    first_task, task_column = _task_layout(lengths)
    n_tasks = task_column.shape[0]
    counts = np.zeros(n_tasks)
    nan_counts = np.zeros(n_tasks, dtype=np.int64)
    means = np.zeros(n_tasks)
    m2s = np.zeros(n_tasks)
    los = np.full(n_tasks, np.inf)
    his = np.full(n_tasks, -np.inf)
    for t in prange(n_tasks):
        j = task_column[t]
        start = (t - first_task[j]) * CHUNK
        stop = min(start + CHUNK, lengths[j])
        counts[t], nan_counts[t], means[t], m2s[t], los[t], his[t] = _chunk_moments(
            columns[j], validities[j], bit_offsets[j], has_validity[j], start, stop, shifts[j]
        )
    return _merge_tasks(first_task, counts, nan_counts, means, m2s, los, his)


@intrinsic
def _pointer_to(typingctx, address, like):
    """An integer ``address`` as a pointer to ``like``'s dtype (``like`` is only its type)."""
    if not isinstance(address, types.Integer) or not isinstance(like, types.Array):
        return None
    pointer = types.CPointer(like.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer))

    return pointer(address, like), codegen


@njit(cache=True, inline="always")
def array_at(address, length, like):
    """The ``length`` values of ``like``'s dtype stored at ``address``, as a borrowed array
    (the caller keeps the memory alive while it is used)."""
    return carray(_pointer_to(address, like), length)


@njit(cache=True, parallel=True)
def columns_moments_at(like, addresses, lengths, validity_addresses, bit_offsets,
                       has_validity, shifts):
    """:func:`columns_moments` of columns given by buffer address: no typed List to build.

    Building a typed List costs about 1.5 µs per column from Python, which for a 64k-row batch
    of 32 columns is a fifth of the kernel's own time; addresses cost nothing to pass.

    ``like`` is any array of the values dtype (only its type is used). ``addresses`` int64[k]:
    address of each column's first value; ``lengths`` int64[k]; ``validity_addresses``
    int64[k]: address of each Arrow validity bitmap (read only where ``has_validity`` bool[k]),
    whose bit ``bit_offsets[j]`` is the first value's. The caller keeps the buffers alive.
    ``shifts`` float64[k]: NaN asks for the column's first finite value (0 if it has none).

    Returns
    -------
    (count int64[k], nan_count int64[k], shifted_mean[k], m2[k], minimum[k], maximum[k],
    shift_used float64[k]); the same bits as :func:`columns_moments` with those shifts.
    """
    k = addresses.shape[0]
    bitmap = np.empty(0, dtype=np.uint8)
    shift_used = shifts.copy()
    for j in range(k):
        if np.isnan(shift_used[j]):
            validity = bitmap
            if has_validity[j]:
                validity = array_at(validity_addresses[j],
                                     (bit_offsets[j] + lengths[j] + 7) // 8, bitmap)
            found = first_finite(array_at(addresses[j], lengths[j], like), validity,
                                 bit_offsets[j], has_validity[j])
            shift_used[j] = 0.0 if np.isnan(found) else found
    first_task, task_column = _task_layout(lengths)
    n_tasks = task_column.shape[0]
    counts = np.zeros(n_tasks)
    nan_counts = np.zeros(n_tasks, dtype=np.int64)
    means = np.zeros(n_tasks)
    m2s = np.zeros(n_tasks)
    los = np.full(n_tasks, np.inf)
    his = np.full(n_tasks, -np.inf)
    for t in prange(n_tasks):
        j = task_column[t]
        start = (t - first_task[j]) * CHUNK
        stop = min(start + CHUNK, lengths[j])
        values = array_at(addresses[j], lengths[j], like)
        validity = bitmap
        if has_validity[j]:
            validity = array_at(validity_addresses[j],
                                 (bit_offsets[j] + lengths[j] + 7) // 8, bitmap)
        counts[t], nan_counts[t], means[t], m2s[t], los[t], his[t] = _chunk_moments(
            values, validity, bit_offsets[j], has_validity[j], start, stop, shift_used[j]
        )
    count, nan_count, mean, m2, lo, hi = _merge_tasks(
        first_task, counts, nan_counts, means, m2s, los, his
    )
    return count, nan_count, mean, m2, lo, hi, shift_used


@njit(cache=True)
def first_finite(values, validity, bit_offset, has_validity):
    """The first valid, finite value of a column (used as its shift), or NaN if none."""
    for i in range(values.shape[0]):
        if has_validity and not _bit_is_set(validity, bit_offset + i):
            continue
        x = float(values[i])
        if np.isfinite(x):
            return x
    return np.nan


@njit(cache=True)
def merge_states(count_a, shift_a, mean_a, m2_a, count_b, shift_b, mean_b, m2_b):
    """Merge per-column states that may carry different shifts (arrays of equal shape).

    The result keeps side a's shift where a has data, else b's. Returns
    (count, shift, shifted_mean, m2) as new arrays.
    """
    k = count_a.shape[0]
    count = np.empty(k)
    shift = np.empty(k)
    mean = np.empty(k)
    m2 = np.empty(k)
    for j in range(k):
        if count_a[j] == 0:
            count[j] = count_b[j]
            shift[j] = shift_b[j] if count_b[j] > 0 else shift_a[j]
            mean[j] = mean_b[j]
            m2[j] = m2_b[j]
            continue
        shift[j] = shift_a[j]
        # Re-express b's shifted mean in a's shift (DESIGN §4).
        mean_b_in_a = mean_b[j] + (shift_b[j] - shift_a[j]) if count_b[j] > 0 else 0.0
        n, mu, q = chan_merge(count_a[j], mean_a[j], m2_a[j], count_b[j], mean_b_in_a, m2_b[j])
        count[j] = n
        mean[j] = mu
        m2[j] = q
    return count, shift, mean, m2


# --------------------------------------------------------------------------- per-row moments


#: Rows per parallel block for per-row kernels: a block of rows across all columns should
#: stay in L2 between the two passes.
ROW_BLOCK = 256


@njit(cache=True, fastmath=_BLOCK_MATH)
def _row_moments(row, validity, first_bit, has_validity):
    """Two-pass (count, mean, m2) of one row vector, nulls and NaN skipped (branch-free)."""
    c = 0
    total = 0.0
    for j in range(row.shape[0]):
        x = float(row[j])
        ok = x == x
        if has_validity:
            ok = ok and _valid_bit(validity, first_bit + j) != 0
        c += 1 if ok else 0
        total += x if ok else 0.0
    if c == 0:
        return 0, np.nan, np.nan
    mu = total / c
    q = 0.0
    for j in range(row.shape[0]):
        x = float(row[j])
        ok = x == x
        if has_validity:
            ok = ok and _valid_bit(validity, first_bit + j) != 0
        d = (x - mu) if ok else 0.0
        q += d * d
    return c, mu, q


@njit(cache=True, parallel=True)
def row_moments_matrix(values, validity, bit_offset, has_validity):
    """Per-row moments of a row-major (n_rows, width) matrix (a FixedSizeList's values).

    ``validity`` describes the flattened values (bit ``bit_offset + r*width + j``). Nulls and
    NaN are skipped. Returns ``(count int64[n], mean float64[n], m2 float64[n])``; rows with
    no valid value get count 0 and mean/m2 NaN. Each row is independent, so the result does
    not depend on the thread count.
    """
    n_rows, width = values.shape
    count = np.zeros(n_rows, dtype=np.int64)
    mean = np.empty(n_rows)
    m2 = np.empty(n_rows)
    n_blocks = (n_rows + ROW_BLOCK - 1) // ROW_BLOCK
    for b in prange(n_blocks):
        for r in range(b * ROW_BLOCK, min((b + 1) * ROW_BLOCK, n_rows)):
            c, mu, q = _row_moments(values[r], validity, bit_offset + r * width, has_validity)
            count[r] = c
            mean[r] = mu
            m2[r] = q
    return count, mean, m2


@njit(cache=True, fastmath=_BLOCK_MATH)
def _accumulate_rows(col, validity, first_bit, has_validity, count, total):
    """count[i] += valid; total[i] += x  for one column segment (NaN and nulls skipped)."""
    for i in range(col.shape[0]):
        x = float(col[i])
        ok = x == x
        if has_validity:
            ok = ok and _valid_bit(validity, first_bit + i) != 0
        count[i] += 1 if ok else 0
        total[i] += x if ok else 0.0


@njit(cache=True, fastmath=_BLOCK_MATH)
def _accumulate_row_m2(col, validity, first_bit, has_validity, mean, m2):
    for i in range(col.shape[0]):
        x = float(col[i])
        ok = x == x
        if has_validity:
            ok = ok and _valid_bit(validity, first_bit + i) != 0
        d = (x - mean[i]) if ok else 0.0
        m2[i] += d * d


@njit(cache=True, parallel=True)
def row_moments_columns(columns, validities, bit_offsets, has_validity):
    """Per-row moments across a list of same-dtype 1-D column arrays of equal length.

    ``columns`` is a numba typed List of arrays; ``validities[k]``/``bit_offsets[k]``/
    ``has_validity[k]`` describe column k. Two-pass per block of ``ROW_BLOCK`` rows, column by
    column, so each column is read contiguously. Returns ``(count, mean, m2)`` as in
    :func:`row_moments_matrix` (mean/m2 NaN where count is 0). Row blocks are independent and
    columns are added in order, so the result does not depend on the thread count.
    """
    n_cols = len(columns)
    n_rows = columns[0].shape[0] if n_cols > 0 else 0
    count = np.zeros(n_rows, dtype=np.int64)
    mean = np.zeros(n_rows)
    m2 = np.zeros(n_rows)
    n_blocks = (n_rows + ROW_BLOCK - 1) // ROW_BLOCK
    for b in prange(n_blocks):
        start = b * ROW_BLOCK
        stop = min(start + ROW_BLOCK, n_rows)
        count_b = count[start:stop]
        mean_b = mean[start:stop]
        m2_b = m2[start:stop]
        for k in range(n_cols):
            _accumulate_rows(columns[k][start:stop], validities[k], bit_offsets[k] + start,
                             has_validity[k], count_b, mean_b)
        for i in range(stop - start):
            mean_b[i] = mean_b[i] / count_b[i] if count_b[i] > 0 else np.nan
        for k in range(n_cols):
            _accumulate_row_m2(columns[k][start:stop], validities[k], bit_offsets[k] + start,
                               has_validity[k], mean_b, m2_b)
        for i in range(stop - start):
            if count_b[i] == 0:
                m2_b[i] = np.nan
    return count, mean, m2


# --------------------------------------------------------------------------- normalization


@njit(cache=True)
def _normalize_segment(values, center, scale, out):
    for i in range(values.shape[0]):
        out[i] = (float(values[i]) - center) / scale


@njit(cache=True, parallel=True)
def normalize_column(values, center, scale, out):
    """``out[i] = (values[i] - center) / scale`` in float64, rounded once to out's dtype.

    Null slots are computed too (their values are undefined and masked by the caller).
    """
    n = values.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        _normalize_segment(values[start:stop], center, scale, out[start:stop])


@njit(cache=True, parallel=True)
def normalize_columns(columns, centers, scales, outs):
    """:func:`normalize_column` over a typed List of same-dtype columns, one parallel launch.

    ``out_k[i] = (columns[k][i] - centers[k]) / scales[k]``; work items are (column, chunk)
    pairs so many short columns still fill every thread.
    """
    k = len(columns)
    first_task = np.zeros(k + 1, dtype=np.int64)
    for j in range(k):
        first_task[j + 1] = first_task[j] + (columns[j].shape[0] + CHUNK - 1) // CHUNK
    task_column = np.empty(first_task[k], dtype=np.int64)
    for j in range(k):
        for t in range(first_task[j], first_task[j + 1]):
            task_column[t] = j
    for t in prange(first_task[k]):
        j = task_column[t]
        values = columns[j]
        start = (t - first_task[j]) * CHUNK
        stop = min(start + CHUNK, values.shape[0])
        _normalize_segment(values[start:stop], centers[j], scales[j], outs[j][start:stop])


@njit(cache=True)
def _normalize_row(row, center, scale, out):
    for j in range(row.shape[0]):
        out[j] = (float(row[j]) - center) / scale


@njit(cache=True, parallel=True)
def normalize_rows_matrix(values, center, scale, out):
    """Row-wise ``out[r, j] = (values[r, j] - center[r]) / scale[r]`` for an (n, width) matrix."""
    n_rows = values.shape[0]
    n_blocks = (n_rows + ROW_BLOCK - 1) // ROW_BLOCK
    for b in prange(n_blocks):
        for r in range(b * ROW_BLOCK, min((b + 1) * ROW_BLOCK, n_rows)):
            _normalize_row(values[r], center[r], scale[r], out[r])


@njit(cache=True)
def _normalize_rows_segment(col, center, scale, out):
    for i in range(col.shape[0]):
        out[i] = (float(col[i]) - center[i]) / scale[i]


@njit(cache=True, parallel=True)
def normalize_rows_columns(columns, center, scale, outs):
    """Row-wise normalization across a typed List of same-dtype columns into ``outs``."""
    n_cols = len(columns)
    n_rows = center.shape[0]
    n_blocks = (n_rows + ROW_BLOCK - 1) // ROW_BLOCK
    for b in prange(n_blocks):
        start = b * ROW_BLOCK
        stop = min(start + ROW_BLOCK, n_rows)
        center_b = center[start:stop]
        scale_b = scale[start:stop]
        for k in range(n_cols):
            _normalize_rows_segment(columns[k][start:stop], center_b, scale_b,
                                    outs[k][start:stop])


#: Bytes of a row tile of :func:`layer_norm_columns` (every column, some rows): it stays in L2
#: for the second and third pass. Rows are independent, so the tile size never changes a result.
LAYER_TILE_BYTES = 1 << 19


@njit(cache=True, fastmath=_BLOCK_MATH)
def _accumulate_rows_dense(col, total):
    """total[i] += x  for one column segment without nulls (NaN checked afterwards)."""
    for i in range(col.shape[0]):
        total[i] += float(col[i])


@njit(cache=True)
def _tile_center_scale(count, mean, m2, rms, eps, ddof, center, scale):
    """normalize._row_center_scale, value for value, on one tile's rows."""
    for i in range(count.shape[0]):
        if count[i] == 0:
            m2[i] = np.nan
        if rms:
            center[i] = 0.0 if count[i] > 0 else np.nan
            mean_square = m2[i] / count[i] if count[i] > 0 else np.nan  # numba: no NaN for x/0
            scale[i] = np.sqrt(mean_square + mean[i] * mean[i] + eps)
        else:
            denominator = float(count[i] - ddof)
            var = m2[i] / denominator if denominator > 0 else np.nan
            center[i] = mean[i]
            scale[i] = np.sqrt(var + eps)
        if scale[i] == 0.0:
            scale[i] = 1.0


@njit(cache=True)
def _layer_tile(columns, validities, bit_offsets, has_validity, rms, eps, ddof, propagate,
                out, start, stop):
    """:func:`layer_norm_columns` on rows ``start:stop``: moments, center/scale, output."""
    n = stop - start
    n_cols = len(columns)
    count = np.zeros(n, dtype=np.int64)
    mean = np.zeros(n)
    dense = True
    for k in range(n_cols):
        dense = dense and not has_validity[k]
    if dense:
        # No nulls: a plain sum; a finite sum proves the row holds no NaN (or inf), and then
        # it is exactly the sum the checked helper gives (every value taking part).
        for k in range(n_cols):
            _accumulate_rows_dense(columns[k][start:stop], mean)
        for i in range(n):
            if not np.isfinite(mean[i]):
                dense = False
                break
        if dense:
            count[:] = n_cols
        else:
            mean[:] = 0.0
    if not dense:  # the same helpers, in the same order, as row_moments_columns
        for k in range(n_cols):
            _accumulate_rows(columns[k][start:stop], validities[k], bit_offsets[k] + start,
                             has_validity[k], count, mean)
    for i in range(n):
        mean[i] = mean[i] / count[i] if count[i] > 0 else np.nan
    m2 = np.zeros(n)
    for k in range(n_cols):
        _accumulate_row_m2(columns[k][start:stop], validities[k], bit_offsets[k] + start,
                           has_validity[k] and not dense, mean, m2)
    center = np.empty(n)
    scale = np.empty(n)
    _tile_center_scale(count, mean, m2, rms, eps, ddof, center, scale)
    if propagate and not dense:
        for k in range(n_cols):
            col = columns[k][start:stop]
            for i in range(n):
                x = float(col[i])
                if x != x and (not has_validity[k]
                               or _valid_bit(validities[k], bit_offsets[k] + start + i) != 0):
                    center[i] = np.nan
    if out.itemsize == 4:
        # float32 output: multiply by the float64 reciprocal (a division costs as much as the
        # rest of the kernel). The float64 product is within 2^-52 (relative) of the quotient,
        # so the float32 result is the correctly rounded quotient except when the quotient
        # lies that close to a float32 rounding boundary (odds ~2^-28 per value; then 1 ulp).
        for i in range(n):
            scale[i] = 1.0 / scale[i]
        for k in range(n_cols):
            _scale_rows_segment(columns[k][start:stop], center, scale, out[k, start:stop])
    else:
        for k in range(n_cols):
            _normalize_rows_segment(columns[k][start:stop], center, scale, out[k, start:stop])


@njit(cache=True)
def _scale_rows_segment(col, center, inverse_scale, out):
    for i in range(col.shape[0]):
        out[i] = (float(col[i]) - center[i]) * inverse_scale[i]


@njit(cache=True, parallel=True)
def layer_norm_columns(columns, validities, bit_offsets, has_validity, rms, eps, ddof,
                       propagate, out):
    """Per-row LayerNorm / RMSNorm across same-dtype columns, fused: one read from memory.

    Parameters
    ----------
    columns, validities, bit_offsets, has_validity : as in :func:`row_moments_columns`
        (typed Lists of equal-length columns of one dtype and their validity bitmaps).
    rms : bool; False: ``(x - mean_r) / sqrt(m2_r / (count_r - ddof) + eps)``, True:
        ``x / sqrt(m2_r / count_r + mean_r**2 + eps)``. A zero scale becomes 1; a row with no
        valid value (or, layer, ``count_r <= ddof``) gives NaN.
    eps : float64; ddof : int (layer only).
    propagate : bool; True: a row holding a (valid) NaN gives NaN everywhere.
    out : float32 or float64 array, shape (n_columns, n_rows), C order; ``out[k]`` receives
        column k normalized (null slots computed too; the caller masks them). One 2-D
        allocation rather than one per column: large enough for transparent huge pages, it
        costs a fraction of the page faults of many separate arrays.

    Each tile of rows (:data:`LAYER_TILE_BYTES` of input) gets its moments (the arithmetic
    of :func:`row_moments_columns`, NaN and nulls skipped) and is normalized while still in
    cache. The moments, centers and scales equal those of ``row_moments_columns`` bit for bit;
    float64 output equals :func:`normalize_rows_columns`'s bit for bit, float32 output is
    computed with the reciprocal of the scale (see :func:`_layer_tile`). Rows are
    independent: the result does not depend on the thread count.
    """
    n_cols = len(columns)
    n_rows = out.shape[1]
    if n_cols == 0 or n_rows == 0:
        return
    row_bytes = n_cols * columns[0].itemsize
    tile = min(1024, max(64, LAYER_TILE_BYTES // row_bytes // 64 * 64))
    n_tiles = (n_rows + tile - 1) // tile
    for t in prange(n_tiles):
        start = t * tile
        _layer_tile(columns, validities, bit_offsets, has_validity, rms, eps, ddof, propagate,
                    out, start, min(start + tile, n_rows))


@njit(cache=True, parallel=True)
def denormalize_column(values, center, scale, out):
    """``out[i] = values[i] * scale + center`` in float64, rounded once to out's dtype.

    The inverse of :func:`normalize_column` (no fused multiply-add, so results match numpy).
    Null slots are computed too (their values are undefined and masked by the caller).
    """
    n = values.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        for i in range(c * CHUNK, min((c + 1) * CHUNK, n)):
            out[i] = float(values[i]) * scale + center


# --------------------------------------------------------------------------- extensions
# Higher moments (M3, M4), frequency weights and grouped (per-key) moments (issue 8). A state
# here is ``(weight_sum, shifted_mean, m2, m3, m4)``: ``weight_sum`` is the count (the sum of
# the frequency weights, float64), ``m_k`` the weighted sum of the k-th powers of deviations
# from the mean. Deviations do not depend on the shift, so m2..m4 are shift-invariant; only
# the mean has to be re-expressed when states with different shifts merge.


@njit(cache=True, inline="always")
def pebay_merge(n_a, mean_a, m2_a, m3_a, m4_a, n_b, mean_b, m2_b, m3_b, m4_b):
    """Pébay's pairwise merge of two (count, mean, m2, m3, m4) states with the same shift.

    Counts may be non-integer (sums of frequency weights). Reduces to Chan's merge for m2.
    """
    if n_b == 0.0:
        return n_a, mean_a, m2_a, m3_a, m4_a
    if n_a == 0.0:
        return n_b, mean_b, m2_b, m3_b, m4_b
    n = n_a + n_b
    if not (np.isfinite(mean_a) and np.isfinite(mean_b)):
        return n, mean_a + mean_b, np.nan, np.nan, np.nan  # ±inf: as chan_merge
    delta = mean_b - mean_a
    d_n = delta / n
    ab = n_a * n_b
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta * delta * (ab / n)
    m3 = (m3_a + m3_b + delta * d_n * d_n * ab * (n_a - n_b)
          + 3.0 * d_n * (n_a * m2_b - n_b * m2_a))
    m4 = (m4_a + m4_b + delta * d_n * d_n * d_n * ab * (n_a * n_a - ab + n_b * n_b)
          + 6.0 * d_n * d_n * (n_a * n_a * m2_b + n_b * n_b * m2_a)
          + 4.0 * d_n * (n_a * m3_b - n_b * m3_a))
    return n, mean, m2, m3, m4


@njit(cache=True, inline="always")
def _ext_weight(weights, has_weights, i):
    return weights[i] if has_weights else 1.0


@njit(cache=True)
def _ext_block(values, validity, bit_offset, has_validity, weights, has_weights, higher,
               start, stop, shift):
    """Two-pass moments of ``values[start:stop]`` with optional weights and M3/M4.

    Rows of weight 0 are ignored entirely. Returns (weight_sum, nan_count, null_count,
    shifted_mean, m2, m3, m4, min, max); nan/null counts are of rows with positive weight.
    """
    wsum = 0.0
    total = 0.0
    nan_count = 0
    null_count = 0
    lo = np.inf
    hi = -np.inf
    for i in range(start, stop):
        w = _ext_weight(weights, has_weights, i)
        if w == 0.0:
            continue
        if has_validity and not _bit_is_set(validity, bit_offset + i):
            null_count += 1
            continue
        x = float(values[i])
        if x != x:
            nan_count += 1
            continue
        wsum += w
        total += w * (x - shift)
        lo = min(lo, x)
        hi = max(hi, x)
    if wsum == 0.0:
        return 0.0, nan_count, null_count, 0.0, 0.0, 0.0, 0.0, np.nan, np.nan
    mean = total / wsum
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    for i in range(start, stop):
        w = _ext_weight(weights, has_weights, i)
        if w == 0.0 or (has_validity and not _bit_is_set(validity, bit_offset + i)):
            continue
        x = float(values[i])
        if x != x:
            continue
        d = (x - shift) - mean
        d2 = d * d
        m2 += w * d2
        if higher:
            m3 += w * d2 * d
            m4 += w * d2 * d2
    return wsum, nan_count, null_count, mean, m2, m3, m4, lo, hi


@njit(cache=True)
def _ext_chunk(values, validity, bit_offset, has_validity, weights, has_weights, higher,
               start, stop, shift):
    """Blocks of ``BLOCK`` values merged in order with :func:`pebay_merge`."""
    n = 0.0
    mean = 0.0
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    nan_count = 0
    null_count = 0
    lo = np.inf
    hi = -np.inf
    for block_start in range(start, stop, BLOCK):
        block_stop = min(block_start + BLOCK, stop)
        n_b, nan_b, null_b, mean_b, m2_b, m3_b, m4_b, lo_b, hi_b = _ext_block(
            values, validity, bit_offset, has_validity, weights, has_weights, higher,
            block_start, block_stop, shift
        )
        nan_count += nan_b
        null_count += null_b
        if n_b > 0.0:
            n, mean, m2, m3, m4 = pebay_merge(n, mean, m2, m3, m4, n_b, mean_b, m2_b, m3_b, m4_b)
            lo = min(lo, lo_b)
            hi = max(hi, hi_b)
    return n, nan_count, null_count, mean, m2, m3, m4, lo, hi


@njit(cache=True, parallel=True)
def column_moments_ext(values, validity, bit_offset, has_validity, weights, has_weights, higher,
                       shift):
    """Moments of one column with optional frequency weights and optional M3/M4.

    Parameters
    ----------
    values, validity, bit_offset, has_validity, shift : as in :func:`column_moments`.
    weights : float64 array, shape (n,), finite and >= 0 (read only if ``has_weights``).
    has_weights : bool; without weights every row has weight 1.
    higher : bool, whether to accumulate m3 and m4 (else they are returned as 0).

    Returns
    -------
    (weight_sum, nan_count, null_count, shifted_mean, m2, m3, m4, minimum, maximum)
        ``weight_sum`` float64; nan/null counts int64, of rows with positive weight;
        min/max NaN when weight_sum is 0. Blocks and chunks merge in a fixed order.
    """
    n = values.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    out = np.zeros((n_chunks, 7))
    nans = np.zeros(n_chunks, dtype=np.int64)
    nulls = np.zeros(n_chunks, dtype=np.int64)
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        w_c, nan_c, null_c, mean_c, m2_c, m3_c, m4_c, lo_c, hi_c = _ext_chunk(
            values, validity, bit_offset, has_validity, weights, has_weights, higher,
            start, stop, shift
        )
        out[c, 0] = w_c
        out[c, 1] = mean_c
        out[c, 2] = m2_c
        out[c, 3] = m3_c
        out[c, 4] = m4_c
        out[c, 5] = lo_c
        out[c, 6] = hi_c
        nans[c] = nan_c
        nulls[c] = null_c
    wsum = 0.0
    mean = 0.0
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    lo = np.inf
    hi = -np.inf
    for c in range(n_chunks):  # serial, in chunk order: thread-count independent
        if out[c, 0] > 0.0:
            wsum, mean, m2, m3, m4 = pebay_merge(
                wsum, mean, m2, m3, m4, out[c, 0], out[c, 1], out[c, 2], out[c, 3], out[c, 4]
            )
            lo = min(lo, out[c, 5])
            hi = max(hi, out[c, 6])
    if wsum == 0.0:
        lo = np.nan
        hi = np.nan
    return wsum, nans.sum(), nulls.sum(), mean, m2, m3, m4, lo, hi


@njit(cache=True)
def grouped_moments(values, validity, bit_offset, has_validity, groups, shifts, weights,
                    has_weights, higher):
    """Per-group moments of one column: a two-pass over the rows with one shift per group.

    Parameters
    ----------
    values, validity, bit_offset, has_validity : the column, as in :func:`column_moments`.
    groups : int64 array, shape (n,), the group of each row, in ``[0, n_groups)``.
    shifts : float64 array, shape (n_groups,), each group's shift; NaN entries are set here, in
        place, to the group's first valid finite value of positive weight (0 if none).
    weights, has_weights, higher : as in :func:`column_moments_ext`.

    Returns
    -------
    (weight_sum, nan_count, null_count, shifted_mean, m2, m3, m4, minimum, maximum)
        arrays of shape (n_groups,), float64 except the int64 nan/null counts.
    """
    n_groups = shifts.shape[0]
    n = values.shape[0]
    for i in range(n):  # shifts of groups seen for the first time
        g = groups[i]
        if shifts[g] == shifts[g] or _ext_weight(weights, has_weights, i) == 0.0:
            continue
        if has_validity and not _bit_is_set(validity, bit_offset + i):
            continue
        x = float(values[i])
        if np.isfinite(x):
            shifts[g] = x
    for g in range(n_groups):
        if shifts[g] != shifts[g]:
            shifts[g] = 0.0
    wsum = np.zeros(n_groups)
    mean = np.zeros(n_groups)
    nan_count = np.zeros(n_groups, dtype=np.int64)
    null_count = np.zeros(n_groups, dtype=np.int64)
    lo = np.full(n_groups, np.inf)
    hi = np.full(n_groups, -np.inf)
    for i in range(n):
        w = _ext_weight(weights, has_weights, i)
        if w == 0.0:
            continue
        g = groups[i]
        if has_validity and not _bit_is_set(validity, bit_offset + i):
            null_count[g] += 1
            continue
        x = float(values[i])
        if x != x:
            nan_count[g] += 1
            continue
        wsum[g] += w
        mean[g] += w * (x - shifts[g])
        lo[g] = min(lo[g], x)
        hi[g] = max(hi[g], x)
    for g in range(n_groups):
        if wsum[g] > 0.0:
            mean[g] /= wsum[g]
        else:
            lo[g] = np.nan
            hi[g] = np.nan
    m2 = np.zeros(n_groups)
    m3 = np.zeros(n_groups)
    m4 = np.zeros(n_groups)
    for i in range(n):
        w = _ext_weight(weights, has_weights, i)
        if w == 0.0 or (has_validity and not _bit_is_set(validity, bit_offset + i)):
            continue
        x = float(values[i])
        if x != x:
            continue
        g = groups[i]
        d = (x - shifts[g]) - mean[g]
        d2 = d * d
        m2[g] += w * d2
        if higher:
            m3[g] += w * d2 * d
            m4[g] += w * d2 * d2
    return wsum, nan_count, null_count, mean, m2, m3, m4, lo, hi


# --------------------------------------------------------------------------- batched normalization
# Several columns of one dtype in one call: one parallel launch per record batch instead of one
# per column, and none at all for small batches (a launch costs more than the work there).


@njit(cache=True)
def _map_span(values, center, scale, out, start, stop, inverse):
    """``out[i] = (x - center) / scale`` (or ``x * scale + center`` if ``inverse``) on a span."""
    if inverse:
        for i in range(start, stop):
            out[i] = float(values[i]) * scale + center
    else:
        for i in range(start, stop):
            out[i] = (float(values[i]) - center) / scale


@njit(cache=True, parallel=True)
def _map_columns_parallel(columns, centers, scales, outs, inverse, first_chunk):
    for item in prange(first_chunk[-1]):
        j = np.searchsorted(first_chunk, item, side="right") - 1
        start = (item - first_chunk[j]) * CHUNK
        stop = min(start + CHUNK, columns[j].shape[0])
        _map_span(columns[j], centers[j], scales[j], outs[j], start, stop, inverse)


@njit(cache=True)
def _map_columns(columns, centers, scales, outs, inverse):
    k = len(columns)
    first_chunk = np.zeros(k + 1, dtype=np.int64)
    total = 0
    for j in range(k):
        n = columns[j].shape[0]
        total += n
        first_chunk[j + 1] = first_chunk[j] + (n + CHUNK - 1) // CHUNK
    if total <= CHUNK:
        for j in range(k):
            _map_span(columns[j], centers[j], scales[j], outs[j], 0, columns[j].shape[0], inverse)
    else:
        _map_columns_parallel(columns, centers, scales, outs, inverse, first_chunk)


@njit(cache=True)
def denormalize_columns(columns, centers, scales, outs):
    """:func:`denormalize_column` over several columns: ``outs[j] = columns[j] * scales[j] +
    centers[j]``.

    ``columns``/``outs`` are numba typed Lists of 1-D arrays (one input dtype, one output
    dtype; lengths may differ, ``outs[j]`` as long as ``columns[j]``); ``centers``/``scales``
    float64[k]. Computed in float64 and rounded once; no parallel launch for small inputs.
    """
    _map_columns(columns, centers, scales, outs, True)
