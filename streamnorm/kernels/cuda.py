"""CUDA kernels through ``numba.cuda``, with the host-side API of :mod:`streamnorm.kernels.cpu`.

Every public function takes and returns HOST numpy arrays with the same signature and results
as its CPU twin, so :mod:`streamnorm.state` runs unchanged with ``target="cuda"`` and CPU and
GPU partial states merge with each other. Each call copies its input buffers to the device
once (the values, plus only the bytes of the validity bitmap it needs), runs the kernels, and
copies the small results (or the normalized output) back. Nothing is compiled at import:
kernels compile on first use, with ``cache=True``. Only this module imports ``numba.cuda``;
:func:`streamnorm.kernels.backend` imports it lazily, so the CPU path never needs numba-cuda.

Numerics follow docs/design.md §4, accumulating in float64 whatever the input dtype, never
fastmath:

* Per-feature moments: each thread loads ``ITEMS`` values of a tile (``BLOCK_THREADS * ITEMS``
  values, coalesced), subtracts the column's ``shift`` and does a two-pass over its registers
  (mean, then squared deviations); the result is Chan-merged into the thread's running state.
  A block combines its threads by a Chan-merge tree in shared memory, and the host merges the
  block partials serially in block order. The grid is capped at ``MAX_BLOCKS``, a constant, so
  results do not depend on the device.
* Per-row moments of a row-major matrix (FixedSizeList values): one warp per row, a two-pass
  with butterfly (xor) shuffle sums, so every lane holds the same bitwise total.
* Per-row moments across separate columns: the columns are stacked into one
  ``(n_columns, n_rows)`` device array and each thread owns one row, so a warp reads 32
  consecutive rows of a column (coalesced); a warp per row would read with a stride of
  ``n_rows``.

* NVVM contracts ``a * b + c`` into an FMA by default, fastmath or not. In the moment kernels
  that only changes the last bits (an FMA rounds once, not twice); normalization is a
  subtraction and a correctly rounded division, so it matches the CPU bit for bit, and the
  inverse multiplies with libdevice's ``dmul_rn`` so it is never fused either.

Transfers use the host arrays as they are (pageable): pinning an Arrow buffer per batch costs
about as much as the copy it would speed up, and the driver already stages pageable copies
through pinned memory. ``first_finite`` runs on the host: it usually stops at the first value.

Under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, used by the tests) the launch geometry is
smaller, and the warp shuffle, which the simulator lacks, is emulated through shared memory
with the same butterfly; the reduction code itself is the same.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import cuda, float64, njit
from numba.cuda.core import config as _cuda_config

from . import memory
from .cpu import columns_moments_ext, columns_moments_ext_at
from .cpu_ext import column_moments_ext, grouped_moments
from .cpu_moments import (
    SERIAL_MAX_VALUES,
    chan_formula,
    chan_merge,
    serial_columns_moments_at,
    shifts_at,
)
from .cpu_moments import first_finite as _cpu_first_finite

__all__ = [
    "FUSED_ROW_NORM", "SIMULATOR", "TARGET", "column_moments", "column_moments_ext",
    "columns_moments_ext", "columns_moments_ext_at",
    "columns_moments", "columns_moments_at", "denormalize_column", "denormalize_columns",
    "first_finite", "grouped_moments", "layer_norm_columns", "normalize_column",
    "normalize_columns", "normalize_rows_columns", "normalize_rows_matrix", "require_device",
    "row_moments_columns", "row_moments_matrix",
]

#: This backend's target name (see :class:`.api.Backend`).
TARGET = "cuda"
#: No fused per-row LayerNorm / RMSNorm here: :func:`layer_norm_columns` raises.
FUSED_ROW_NORM = False

#: True when numba.cuda runs on the CPU simulator rather than a GPU.
SIMULATOR = bool(_cuda_config.ENABLE_CUDASIM)

#: Lanes per warp (all NVIDIA GPUs).
WARP = 32
if SIMULATOR:  # the simulator runs one Python thread per CUDA thread: keep launches small
    BLOCK_THREADS, ITEMS, MAX_BLOCKS, ROW_WARPS, MAX_ROW_BLOCKS = 32, 4, 4, 2, 4
else:
    #: Threads per block for the column and elementwise kernels (a power of two).
    BLOCK_THREADS = 256
    #: Values each thread holds in registers per tile: a tile is 2048 values (a block of
    #: docs/design.md §4).
    ITEMS = 8
    #: Grid cap of the column-moments kernel: a constant, so results are device-independent.
    MAX_BLOCKS = 1024
    #: Warps (rows in flight) per block of the row-moments matrix kernel.
    ROW_WARPS = 8
    #: Grid cap of the row and elementwise kernels (they loop grid-stride beyond it).
    MAX_ROW_BLOCKS = 65535

#: Shape of the shared scratch the shuffle emulation needs (a dummy cell on a real GPU).
_SHUFFLE_SCRATCH = (ROW_WARPS, WARP) if SIMULATOR else (1, 1)
#: Rows of the partials array the column kernel writes, one column per block.
_COUNT, _NAN, _MEAN, _M2, _MIN, _MAX = range(6)

#: Per-row results: (count int64[n], mean float64[n], m2 float64[n]).
RowMoments = tuple[np.ndarray, np.ndarray, np.ndarray]

_usable = False  # set once require_device() has seen a usable device


def require_device() -> None:
    """Raise ``RuntimeError`` (one line, with the way out) unless numba.cuda can run kernels.

    Passes on a visible NVIDIA GPU with a working driver and libNVVM, or under the simulator.
    """
    global _usable
    if _usable or SIMULATOR:
        return
    if cuda.is_available():
        _usable = True
        return
    error = cuda.cuda_error()
    if error is not None:
        reason = " ".join(str(error).split())
    else:
        reason = "libNVVM (the CUDA compiler) was not found; install numba-cuda[cu12] or [cu13]"
    raise RuntimeError(
        f"no CUDA GPU visible ({reason}): use target='cpu' (unset STREAMNORM_TARGET, drop "
        "--target cuda), or run where an NVIDIA GPU and its driver are available"
    )


# --------------------------------------------------------------------------- device helpers


#: The kernels' one Chan merge (:func:`.cpu_moments.chan_formula`) as a device function; the
#: host merges the block partials with its CPU twin, :data:`.cpu_moments.chan_merge`.
_chan_device = cuda.jit(device=True)(chan_formula)


@cuda.jit(device=True)
def _is_valid(validity, bit_offset, has_validity, i):
    """Whether value ``i`` is not null: bit ``bit_offset + i`` of the LSB-first bitmap."""
    if not has_validity:
        return True
    bit = bit_offset + i
    return (validity[bit >> 3] >> (bit & 7)) & 1 == 1


@cuda.jit(device=True)
def _shfl_xor_gpu(scratch, lane, warp, value, lane_mask):
    """``value`` of lane ``lane ^ lane_mask`` of this warp (all 32 lanes take part)."""
    return cuda.shfl_xor_sync(0xFFFFFFFF, value, lane_mask)


@cuda.jit(device=True)
def _shfl_xor_simulated(scratch, lane, warp, value, lane_mask):
    """The simulator's stand-in for ``shfl_xor_sync``: an exchange through shared memory.

    Every thread of the block must call it together (it holds two block barriers).
    """
    cuda.syncthreads()  # the previous exchange's reads are done
    scratch[warp, lane] = value
    cuda.syncthreads()
    return scratch[warp, lane ^ lane_mask]


_shfl_xor = _shfl_xor_simulated if SIMULATOR else _shfl_xor_gpu


@cuda.jit(device=True)
def _warp_sum(scratch, lane, warp, value):
    """Sum of ``value`` over the 32 lanes of a warp by an xor butterfly; every lane gets it."""
    lane_mask = WARP // 2
    while lane_mask > 0:
        value += _shfl_xor(scratch, lane, warp, value, lane_mask)
        lane_mask //= 2
    return value


# --------------------------------------------------------------------------- column moments


@cuda.jit(device=True)
def _thread_moments(values, validity, bit_offset, has_validity, shift):
    """This thread's moments over its share of the column, grid-stride over tiles.

    Returns (count, nan_count, shifted mean, m2, min, max) as float64.
    """
    n = values.shape[0]
    tid = cuda.threadIdx.x
    tile = BLOCK_THREADS * ITEMS
    held = cuda.local.array(ITEMS, float64)  # shifted values, NaN marks an empty slot
    count = 0.0
    nan_count = 0.0
    mean = 0.0
    m2 = 0.0
    lo = math.inf
    hi = -math.inf
    for tile_start in range(cuda.blockIdx.x * tile, n, cuda.gridDim.x * tile):
        c = 0.0
        total = 0.0
        for k in range(ITEMS):
            held[k] = math.nan
            i = tile_start + k * BLOCK_THREADS + tid
            if i < n and _is_valid(validity, bit_offset, has_validity, i):
                x = float(values[i])
                if x != x:
                    nan_count += 1.0
                else:
                    held[k] = x - shift  # finite shift: ±inf stays ±inf, never NaN
                    c += 1.0
                    total += held[k]
                    lo = min(lo, x)
                    hi = max(hi, x)
        if c > 0.0:
            tile_mean = total / c
            q = 0.0
            for k in range(ITEMS):
                if held[k] == held[k]:
                    d = held[k] - tile_mean
                    q += d * d
            count, mean, m2 = _chan_device(count, mean, m2, c, tile_mean, q)
    return count, nan_count, mean, m2, lo, hi


@cuda.jit(cache=True)
def _column_partials_kernel(values, validity, bit_offset, has_validity, shift, partials):
    """One partial state per block into ``partials[:, blockIdx.x]`` (rows: _COUNT.._MAX).

    Launch with ``BLOCK_THREADS`` threads per block; the threads' states merge by a tree in
    shared memory, in a fixed order.
    """
    tid = cuda.threadIdx.x
    s_count = cuda.shared.array(BLOCK_THREADS, float64)
    s_nan = cuda.shared.array(BLOCK_THREADS, float64)
    s_mean = cuda.shared.array(BLOCK_THREADS, float64)
    s_m2 = cuda.shared.array(BLOCK_THREADS, float64)
    s_lo = cuda.shared.array(BLOCK_THREADS, float64)
    s_hi = cuda.shared.array(BLOCK_THREADS, float64)
    c, nan_c, mu, q, lo, hi = _thread_moments(values, validity, bit_offset, has_validity, shift)
    s_count[tid] = c
    s_nan[tid] = nan_c
    s_mean[tid] = mu
    s_m2[tid] = q
    s_lo[tid] = lo
    s_hi[tid] = hi
    cuda.syncthreads()
    step = BLOCK_THREADS // 2
    while step > 0:
        if tid < step:
            other = tid + step
            c, mu, q = _chan_device(
                s_count[tid], s_mean[tid], s_m2[tid], s_count[other], s_mean[other], s_m2[other]
            )
            s_count[tid] = c
            s_mean[tid] = mu
            s_m2[tid] = q
            s_nan[tid] += s_nan[other]
            s_lo[tid] = min(s_lo[tid], s_lo[other])
            s_hi[tid] = max(s_hi[tid], s_hi[other])
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        b = cuda.blockIdx.x
        partials[_COUNT, b] = s_count[0]
        partials[_NAN, b] = s_nan[0]
        partials[_MEAN, b] = s_mean[0]
        partials[_M2, b] = s_m2[0]
        partials[_MIN, b] = s_lo[0]
        partials[_MAX, b] = s_hi[0]


@njit(cache=True)
def _merge_partials(partials):
    """Merge the block partials serially in block order: CPU ``column_moments``'s result."""
    count = 0.0
    mean = 0.0
    m2 = 0.0
    nan_count = 0.0
    lo = np.inf
    hi = -np.inf
    for b in range(partials.shape[1]):
        nan_count += partials[_NAN, b]
        if partials[_COUNT, b] > 0.0:
            count, mean, m2 = chan_merge(
                count, mean, m2, partials[_COUNT, b], partials[_MEAN, b], partials[_M2, b]
            )
            lo = min(lo, partials[_MIN, b])
            hi = max(hi, partials[_MAX, b])
    if count == 0.0:
        return np.int64(0), np.int64(nan_count), 0.0, 0.0, np.nan, np.nan
    return np.int64(count), np.int64(nan_count), mean, m2, lo, hi


# --------------------------------------------------------------------------- host transfers


def _launch(kernel: Any, blocks: int, threads: int | tuple[int, int]) -> Any:
    """``kernel[blocks, threads]`` without numba's low-occupancy warning (small batches are
    legitimate here; the warning would be noise, and an error under the test settings)."""
    with warnings.catch_warnings():
        # numba-cuda's NumbaPerformanceWarning is its own class, not numba's: match the text.
        warnings.filterwarnings("ignore", message="Grid size .* low occupancy")
        return kernel[blocks, threads]


def _device_bitmap(
    validity: np.ndarray, bit_offset: int, n: int, has_validity: bool
) -> tuple[Any, int]:
    """Copy only the bitmap bytes covering ``n`` values from ``bit_offset``; (device, offset).

    Without validity, a one-byte placeholder is allocated, not copied (kernels never read it).
    """
    if not has_validity:
        return cuda.device_array(1, dtype=np.uint8), 0
    first = bit_offset >> 3
    stop = (bit_offset + n + 7) >> 3
    piece = np.ascontiguousarray(validity[first:stop], dtype=np.uint8)
    return cuda.to_device(piece), bit_offset & 7


def _grid(n_items: int, per_block: int, cap: int) -> int:
    """Blocks to cover ``n_items`` with ``per_block`` each, at least 1 and at most ``cap``."""
    return max(1, min(cap, -(-n_items // per_block)))


def _stack_to_device(arrays: Sequence[np.ndarray], dtype: np.dtype) -> Any:
    """Copy equal-length 1-D host arrays into the rows of one ``(k, n)`` device array."""
    n = arrays[0].shape[0]
    stacked = cuda.device_array((len(arrays), n), dtype=dtype)
    for k, array in enumerate(arrays):
        stacked[k].copy_to_device(np.ascontiguousarray(array, dtype=dtype))
    return stacked


# --------------------------------------------------------------------------- column moments API


def column_moments(
    values: np.ndarray, validity: np.ndarray, bit_offset: int, has_validity: bool, shift: float
) -> tuple[np.int64, np.int64, float, float, float, float]:
    """Moments of one column of any numeric dtype, nulls and NaN skipped, on the GPU: the
    arguments (host arrays) and results of :meth:`streamnorm.kernels.api.Backend.column_moments`.
    """
    n = int(values.shape[0])
    if n == 0:
        return np.int64(0), np.int64(0), 0.0, 0.0, np.nan, np.nan
    d_values = cuda.to_device(np.ascontiguousarray(values))
    d_validity, offset = _device_bitmap(validity, bit_offset, n, bool(has_validity))
    blocks = _grid(n, BLOCK_THREADS * ITEMS, MAX_BLOCKS)
    d_partials = cuda.device_array((6, blocks), dtype=np.float64)
    _launch(_column_partials_kernel, blocks, BLOCK_THREADS)(
        d_values, d_validity, offset, bool(has_validity), float(shift), d_partials
    )
    return _merge_partials(d_partials.copy_to_host())


def columns_moments(
    columns: Sequence[np.ndarray], validities: Sequence[np.ndarray], bit_offsets: np.ndarray,
    has_validity: np.ndarray, shifts: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """:func:`column_moments` of several columns (a typed List or sequence; lengths may differ).

    ``bit_offsets`` int64[k], ``has_validity`` bool[k], ``shifts`` float64[k]. One transfer
    and one launch per column. Returns ``(count int64[k], nan_count int64[k],
    shifted_mean[k], m2[k], minimum[k], maximum[k])`` as the CPU kernel does.
    """
    k = len(columns)
    count = np.zeros(k, dtype=np.int64)
    nan_count = np.zeros(k, dtype=np.int64)
    mean, m2 = np.zeros(k), np.zeros(k)
    lo, hi = np.full(k, np.nan), np.full(k, np.nan)
    for j in range(k):
        count[j], nan_count[j], mean[j], m2[j], lo[j], hi[j] = column_moments(
            columns[j], validities[j], int(bit_offsets[j]), bool(has_validity[j]),
            float(shifts[j]),
        )
    return count, nan_count, mean, m2, lo, hi


def first_finite(
    values: np.ndarray, validity: np.ndarray, bit_offset: int, has_validity: bool
) -> float:
    """The first valid, finite value of a column (its shift), or NaN if none.

    Runs on the host: it usually stops at the first value, which is far cheaper than the
    device copy a GPU scan would need (``column_moments`` copies the column once, after).
    """
    return _cpu_first_finite(values, validity, bit_offset, has_validity)


def columns_moments_at(
    like: np.ndarray, addresses: np.ndarray, lengths: np.ndarray,
    validity_addresses: np.ndarray, bit_offsets: np.ndarray, has_validity: np.ndarray,
    shifts: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """:func:`columns_moments` of columns given by host buffer address (see
    :class:`streamnorm.kernels.api.Backend`): each address becomes a host view (the caller
    keeps the memory alive), a NaN shift the column's first finite value (0 if none).

    Returns the six arrays of :func:`columns_moments` and ``shift_used`` float64[k].

    At most :data:`~.cpu_moments.SERIAL_MAX_VALUES` values in all run on the host, in the
    serial CPU kernel (the same bits): a device copy and launch per tiny batch costs far more
    than the work (issue 14).
    """
    addresses = np.asarray(addresses, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    validity_addresses = np.asarray(validity_addresses, dtype=np.int64)
    bit_offsets = np.asarray(bit_offsets, dtype=np.int64)
    has_validity = np.asarray(has_validity, dtype=np.bool_)
    shifts = np.asarray(shifts, dtype=np.float64)
    if int(np.sum(lengths)) <= SERIAL_MAX_VALUES:
        return serial_columns_moments_at(like, addresses, lengths, validity_addresses,
                                         bit_offsets, has_validity, shifts)
    values, bitmaps = [], []
    for j in range(len(addresses)):
        n = int(lengths[j])
        values.append(memory.host_view(int(addresses[j]), n, like.dtype))
        n_bytes = (int(bit_offsets[j]) + n + 7) // 8 if has_validity[j] else 0
        bitmaps.append(memory.host_view(int(validity_addresses[j]), n_bytes, np.uint8))
    shift_used = shifts_at(like, addresses, lengths, validity_addresses, bit_offsets,
                           has_validity, shifts)
    result = columns_moments(values, bitmaps, bit_offsets, has_validity, shift_used)
    return (*result, shift_used)


# --------------------------------------------------------------------------- row moments


@cuda.jit(cache=True)
def _row_moments_matrix_kernel(values, validity, bit_offset, has_validity, out):
    """Per-row (count, mean, m2) of an (n_rows, width) matrix into ``out[0..2, row]``.

    Launch with (WARP, ROW_WARPS) threads per block: warp ``threadIdx.y`` owns one row per
    step, its lanes stride over the row; every thread runs every step (shuffles need all
    lanes), threads past the last row add nothing.
    """
    lane = cuda.threadIdx.x
    warp = cuda.threadIdx.y
    scratch = cuda.shared.array(_SHUFFLE_SCRATCH, float64)
    n_rows = values.shape[0]
    width = values.shape[1]
    for first in range(cuda.blockIdx.x * ROW_WARPS, n_rows, cuda.gridDim.x * ROW_WARPS):
        row = first + warp
        active = row < n_rows
        base = row * width
        c = 0.0
        total = 0.0
        if active:
            for j in range(lane, width, WARP):
                if _is_valid(validity, bit_offset, has_validity, base + j):
                    x = float(values[row, j])
                    if x == x:
                        c += 1.0
                        total += x
        c = _warp_sum(scratch, lane, warp, c)
        total = _warp_sum(scratch, lane, warp, total)
        mean = total / c if c > 0.0 else 0.0
        q = 0.0
        if active:
            for j in range(lane, width, WARP):
                if _is_valid(validity, bit_offset, has_validity, base + j):
                    x = float(values[row, j])
                    if x == x:
                        d = x - mean
                        q += d * d
        q = _warp_sum(scratch, lane, warp, q)
        if active and lane == 0:
            out[0, row] = c
            out[1, row] = mean if c > 0.0 else math.nan
            out[2, row] = q if c > 0.0 else math.nan


@cuda.jit(cache=True)
def _row_moments_columns_kernel(columns, validities, bit_offsets, has_validity, out):
    """Per-row (count, mean, m2) across the rows of a stacked (n_cols, n_rows) array.

    One thread per row (grid-stride), two passes over the columns; ``validities[k]`` is
    column k's bitmap, starting at bit ``bit_offsets[k]``.
    """
    n_cols = columns.shape[0]
    n_rows = columns.shape[1]
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for row in range(start, n_rows, stride):
        c = 0.0
        total = 0.0
        for k in range(n_cols):
            if _is_valid(validities[k], bit_offsets[k], has_validity[k] != 0, row):
                x = float(columns[k, row])
                if x == x:
                    c += 1.0
                    total += x
        if c == 0.0:
            out[0, row] = 0.0
            out[1, row] = math.nan
            out[2, row] = math.nan
            continue
        mean = total / c
        q = 0.0
        for k in range(n_cols):
            if _is_valid(validities[k], bit_offsets[k], has_validity[k] != 0, row):
                x = float(columns[k, row])
                if x == x:
                    d = x - mean
                    q += d * d
        out[0, row] = c
        out[1, row] = mean
        out[2, row] = q


def _row_results(d_out: Any) -> RowMoments:
    """(count int64, mean, m2) host arrays from a (3, n_rows) float64 device result."""
    host = d_out.copy_to_host()
    return host[0].astype(np.int64), host[1].copy(), host[2].copy()


def _empty_row_results(n_rows: int) -> RowMoments:
    return np.zeros(n_rows, dtype=np.int64), np.full(n_rows, np.nan), np.full(n_rows, np.nan)


def row_moments_matrix(
    values: np.ndarray, validity: np.ndarray, bit_offset: int, has_validity: bool
) -> RowMoments:
    """Per-row moments of a row-major (n_rows, width) host matrix (a FixedSizeList's values).

    ``validity`` describes the flattened values (bit ``bit_offset + r*width + j``). Nulls and
    NaN are skipped. Returns ``(count int64[n], mean float64[n], m2 float64[n])``; rows with no
    valid value get count 0 and mean/m2 NaN (as :func:`streamnorm.kernels.cpu.row_moments_matrix`).
    """
    n_rows, width = values.shape
    if n_rows == 0 or width == 0:
        return _empty_row_results(n_rows)
    d_values = cuda.to_device(np.ascontiguousarray(values))
    d_validity, offset = _device_bitmap(validity, bit_offset, n_rows * width, bool(has_validity))
    d_out = cuda.device_array((3, n_rows), dtype=np.float64)
    blocks = _grid(n_rows, ROW_WARPS, MAX_ROW_BLOCKS)
    _launch(_row_moments_matrix_kernel, blocks, (WARP, ROW_WARPS))(
        d_values, d_validity, offset, bool(has_validity), d_out
    )
    return _row_results(d_out)


def _stacked_bitmaps(
    validities: Sequence[np.ndarray], bit_offsets: np.ndarray, has_validity: np.ndarray,
    n_rows: int,
) -> tuple[Any, Any]:
    """One (n_cols, n_bytes) device bitmap array and the per-column bit offsets within it."""
    n_cols = len(validities)
    width = (n_rows + 7 + 7) >> 3  # room for a bit offset of up to 7
    host = np.zeros((n_cols, width), dtype=np.uint8)
    offsets = np.zeros(n_cols, dtype=np.int64)
    for k in range(n_cols):
        if has_validity[k]:
            first = int(bit_offsets[k]) >> 3
            piece = validities[k][first : first + width]
            host[k, : piece.shape[0]] = piece
            offsets[k] = int(bit_offsets[k]) & 7
    return cuda.to_device(host), cuda.to_device(offsets)


def row_moments_columns(
    columns: Sequence[np.ndarray], validities: Sequence[np.ndarray], bit_offsets: np.ndarray,
    has_validity: np.ndarray,
) -> RowMoments:
    """Per-row moments across a list of same-dtype 1-D host columns of equal length.

    ``columns`` is a numba typed List (or any sequence) of arrays; ``validities[k]``/
    ``bit_offsets[k]``/``has_validity[k]`` describe column k. Returns ``(count, mean, m2)`` as
    :func:`row_moments_matrix` (mean/m2 NaN where count is 0).
    """
    n_cols = len(columns)
    n_rows = int(columns[0].shape[0]) if n_cols > 0 else 0
    if n_cols == 0 or n_rows == 0:
        return _empty_row_results(n_rows)
    d_columns = _stack_to_device(list(columns), columns[0].dtype)
    d_validities, d_offsets = _stacked_bitmaps(validities, bit_offsets, has_validity, n_rows)
    d_has = cuda.to_device(np.asarray(has_validity, dtype=np.uint8))
    d_out = cuda.device_array((3, n_rows), dtype=np.float64)
    blocks = _grid(n_rows, BLOCK_THREADS, MAX_ROW_BLOCKS)
    _launch(_row_moments_columns_kernel, blocks, BLOCK_THREADS)(
        d_columns, d_validities, d_offsets, d_has, d_out
    )
    return _row_results(d_out)


# --------------------------------------------------------------------------- normalization


@cuda.jit(cache=True)
def _normalize_column_kernel(values, center, scale, out):
    """``out[i] = (values[i] - center) / scale`` in float64, rounded once on the store."""
    for i in range(cuda.grid(1), values.shape[0], cuda.gridsize(1)):
        out[i] = (float(values[i]) - center) / scale


@cuda.jit(cache=True)
def _normalize_rows_kernel(values, center, scale, out, stats_axis):
    """Elementwise ``(values[a, b] - center[s]) / scale[s]`` over a 2-D array, flat
    grid-stride; ``s`` is ``a`` when ``stats_axis`` is 0 (rows of a matrix), else ``b``
    (stacked columns, shape (n_cols, n_rows))."""
    n_a = values.shape[0]
    n_b = values.shape[1]
    for flat in range(cuda.grid(1), n_a * n_b, cuda.gridsize(1)):
        a = flat // n_b
        b = flat - a * n_b
        s = a if stats_axis == 0 else b
        out[a, b] = (float(values[a, b]) - center[s]) / scale[s]


if SIMULATOR:  # Python floats never fuse

    @cuda.jit(device=True)
    def _mul_rn(a, b):
        """``a * b`` rounded on its own (the simulator's stand-in for libdevice's dmul_rn)."""
        return a * b

else:
    from numba.cuda import libdevice

    #: ``a * b`` rounded on its own: NVVM contracts ``a * b + c`` into an FMA by default
    #: (even without fastmath), which would make results differ from the CPU's and numpy's.
    _mul_rn = libdevice.dmul_rn


@cuda.jit(cache=True)
def _denormalize_column_kernel(values, center, scale, out):
    """``out[i] = values[i] * scale + center`` in float64 (no FMA), rounded once on the store."""
    for i in range(cuda.grid(1), values.shape[0], cuda.gridsize(1)):
        out[i] = _mul_rn(float(values[i]), scale) + center


def _elementwise_blocks(n_items: int) -> int:
    return _grid(n_items, BLOCK_THREADS * ITEMS, MAX_ROW_BLOCKS)


def _map_column(kernel: Any, values: np.ndarray, center: float, scale: float,
                out: np.ndarray) -> None:
    """Run an elementwise map ``kernel`` over ``values`` on the GPU into the host ``out``."""
    n = int(values.shape[0])
    if n == 0:
        return
    d_values = cuda.to_device(np.ascontiguousarray(values))
    d_out = cuda.device_array(n, dtype=out.dtype)
    _launch(kernel, _elementwise_blocks(n), BLOCK_THREADS)(
        d_values, float(center), float(scale), d_out
    )
    d_out.copy_to_host(out)


def normalize_column(values: np.ndarray, center: float, scale: float, out: np.ndarray) -> None:
    """``out[i] = (values[i] - center) / scale`` on the GPU into the host array ``out``.

    Computed in float64 and rounded once to ``out``'s dtype. Null slots are computed too
    (their values are undefined and masked by the caller).
    """
    _map_column(_normalize_column_kernel, values, center, scale, out)


def denormalize_column(values: np.ndarray, center: float, scale: float, out: np.ndarray) -> None:
    """``out[i] = values[i] * scale + center`` on the GPU into the host array ``out``.

    The inverse of :func:`normalize_column`, computed in float64 without a fused
    multiply-add (so results match the CPU and numpy) and rounded once to ``out``'s dtype.
    Null slots are computed too (masked by the caller).
    """
    _map_column(_denormalize_column_kernel, values, center, scale, out)


def normalize_columns(
    columns: Sequence[np.ndarray], centers: np.ndarray, scales: np.ndarray,
    outs: Sequence[np.ndarray],
) -> None:
    """:func:`normalize_column` over a typed List (or sequence) of columns into ``outs``:
    ``outs[k][i] = (columns[k][i] - centers[k]) / scales[k]``."""
    for k in range(len(columns)):
        normalize_column(columns[k], float(centers[k]), float(scales[k]), outs[k])


def denormalize_columns(
    columns: Sequence[np.ndarray], centers: np.ndarray, scales: np.ndarray,
    outs: Sequence[np.ndarray],
) -> None:
    """:func:`denormalize_column` over a typed List (or sequence) of columns into ``outs``:
    ``outs[k][i] = columns[k][i] * scales[k] + centers[k]`` (no FMA)."""
    for k in range(len(columns)):
        denormalize_column(columns[k], float(centers[k]), float(scales[k]), outs[k])


def normalize_rows_matrix(
    values: np.ndarray, center: np.ndarray, scale: np.ndarray, out: np.ndarray
) -> None:
    """Row-wise ``out[r, j] = (values[r, j] - center[r]) / scale[r]`` for an (n, width)
    host matrix; ``center``/``scale`` float64 of shape (n,); ``out`` a host (n, width) array."""
    n_rows, width = values.shape
    if n_rows == 0 or width == 0:
        return
    d_values = cuda.to_device(np.ascontiguousarray(values))
    d_center = cuda.to_device(np.ascontiguousarray(center, dtype=np.float64))
    d_scale = cuda.to_device(np.ascontiguousarray(scale, dtype=np.float64))
    d_out = cuda.device_array((n_rows, width), dtype=out.dtype)
    _launch(_normalize_rows_kernel, _elementwise_blocks(n_rows * width), BLOCK_THREADS)(
        d_values, d_center, d_scale, d_out, 0
    )
    d_out.copy_to_host(out)


def normalize_rows_columns(
    columns: Sequence[np.ndarray], center: np.ndarray, scale: np.ndarray,
    outs: Sequence[np.ndarray],
) -> None:
    """Row-wise ``outs[k][r] = (columns[k][r] - center[r]) / scale[r]`` across a typed List
    (or sequence) of same-dtype host columns into the host arrays ``outs`` (same dtype each)."""
    n_cols = len(columns)
    n_rows = int(center.shape[0])
    if n_cols == 0 or n_rows == 0:
        return
    d_columns = _stack_to_device(list(columns), columns[0].dtype)
    d_center = cuda.to_device(np.ascontiguousarray(center, dtype=np.float64))
    d_scale = cuda.to_device(np.ascontiguousarray(scale, dtype=np.float64))
    d_out = cuda.device_array((n_cols, n_rows), dtype=outs[0].dtype)
    _launch(_normalize_rows_kernel, _elementwise_blocks(n_cols * n_rows), BLOCK_THREADS)(
        d_columns, d_center, d_scale, d_out, 1
    )
    for k in range(n_cols):
        d_out[k].copy_to_host(outs[k])


def layer_norm_columns(
    columns: Sequence[np.ndarray], validities: Sequence[np.ndarray], bit_offsets: np.ndarray,
    has_validity: np.ndarray, rms: bool, eps: float, ddof: int, propagate: bool,
    out: np.ndarray,
) -> None:
    """Not on this target (``FUSED_ROW_NORM`` is False): raises ``NotImplementedError``. Use
    :func:`row_moments_columns` then :func:`normalize_rows_columns`."""
    raise NotImplementedError(
        "layer_norm_columns is CPU-only (FUSED_ROW_NORM is False on the cuda backend): use "
        "row_moments_columns and normalize_rows_columns"
    )
