"""Arrow arrays → numpy views the kernels can read, without copying.

Each Arrow chunk becomes a :class:`ColumnView`: the values buffer as a numpy array and the
packed validity bitmap with its bit offset. Only three cases copy: dictionary-encoded columns
(decoded), float16 (numba has no CPU float16; widened to float32, which is exact) and chunks
whose values buffer is not aligned for its dtype. :func:`locate_columns` finds the buffers of
a whole batch by address instead (for the kernels that take addresses).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

_EMPTY_BITMAP = np.zeros(0, dtype=np.uint8)


@dataclass(frozen=True)
class ColumnView:
    """One contiguous piece of a numeric Arrow column, as the kernels want it.

    Attributes
    ----------
    values : np.ndarray, shape (n,) (or (n, width) for vectors), int/uint/float32/float64.
    validity : np.ndarray[uint8], the Arrow packed bitmap (empty when there are no nulls).
    bit_offset : int, bit index of ``values[0]`` in ``validity``.
    null_count : int, number of nulls among the ``n`` values.
    """

    values: np.ndarray
    validity: np.ndarray
    bit_offset: int
    null_count: int

    @property
    def has_validity(self) -> bool:
        return self.null_count > 0

    def __len__(self) -> int:
        return int(self.values.shape[0])


def primitive_view(arr: pa.Array) -> ColumnView:
    """A zero-copy :class:`ColumnView` of one numeric Arrow array (copies only as said above)."""
    if pat.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pat.is_float16(arr.type):
        arr = arr.cast(pa.float32())  # exact widening: numba has no CPU float16
    np_dtype = np.dtype(arr.type.to_pandas_dtype())
    validity_buf, data_buf = arr.buffers()[:2]
    n = len(arr)
    if data_buf is None:  # e.g. an all-null array built without a values buffer
        values = np.zeros(n, dtype=np_dtype)
    else:
        if data_buf.address % np_dtype.itemsize:
            arr = pa.concat_arrays([arr])  # re-allocate: numpy views need alignment
            validity_buf, data_buf = arr.buffers()[:2]
        values = np.frombuffer(data_buf, dtype=np_dtype, count=arr.offset + n)[arr.offset :]
    null_count = arr.null_count
    if null_count and validity_buf is not None:
        validity = np.frombuffer(validity_buf, dtype=np.uint8)
        return ColumnView(values, validity, arr.offset, null_count)
    if null_count:  # null type or no bitmap: every value is null
        return ColumnView(values, np.zeros((n + 7) // 8, dtype=np.uint8), 0, null_count)
    return ColumnView(values, _EMPTY_BITMAP, 0, 0)


def column_views(column: pa.Array | pa.ChunkedArray) -> Iterator[ColumnView]:
    """Zero-copy views of each chunk of a numeric Arrow array (empty chunks skipped)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    for chunk in chunks:
        if len(chunk):
            yield primitive_view(chunk)


#: numpy dtype of each Arrow type whose values buffer the kernels read as it is.
_PLAIN_DTYPES = {
    t: np.dtype(t.to_pandas_dtype())
    for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(),
              pa.uint32(), pa.uint64(), pa.float32(), pa.float64())
}


@dataclass(frozen=True)
class BatchPlan:
    """Where the tracked columns sit in record batches of one schema, grouped by dtype.

    ``groups`` holds one ``(like, positions, children)`` per values dtype: an empty array of
    the dtype, each column's index in the caller's column list (intp[k]) and its child index
    in the batch (int64[k]). Made once per schema by :func:`plan_batches`.
    """

    groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class BufferGroup:
    """Same-dtype numeric columns of one batch, located by buffer address (k columns).

    For the kernels that take addresses (``Backend.columns_moments_at``): locating the
    columns of a batch this way costs a few microseconds, against about 1.5 µs per column for
    numpy views and typed Lists.

    Attributes
    ----------
    positions : intp[k], each column's index in the caller's column list.
    like : np.ndarray, an empty array of the values dtype.
    addresses : int64[k], address of each column's first value.
    lengths : int64[k], values per column.
    validity_addresses : int64[k], address of each validity bitmap (read where has_validity).
    bit_offsets : int64[k], bit index of the first value in its bitmap.
    has_validity : bool[k], whether the column may hold nulls.
    owner : the batch; the addresses are valid while it is alive.
    """

    positions: np.ndarray
    like: np.ndarray
    addresses: np.ndarray
    lengths: np.ndarray
    validity_addresses: np.ndarray
    bit_offsets: np.ndarray
    has_validity: np.ndarray
    owner: pa.RecordBatch


def plan_batches(schema: pa.Schema, names: list[str]) -> BatchPlan | None:
    """The :class:`BatchPlan` of columns ``names`` (all present in ``schema``), or None when a
    column's values need converting first (dictionary, float16): use :func:`column_views`."""
    groups: dict[np.dtype, tuple[list[int], list[int]]] = {}
    for position, name in enumerate(names):
        child = schema.get_field_index(name)
        dtype = _PLAIN_DTYPES.get(schema.field(child).type)
        if dtype is None:
            return None
        positions, children = groups.setdefault(dtype, ([], []))
        positions.append(position)
        children.append(child)
    return BatchPlan([
        (np.empty(0, dtype=dtype), np.array(positions, dtype=np.intp),
         np.array(children, dtype=np.int64))
        for dtype, (positions, children) in groups.items()
    ])


def exported_batch(batch: pa.RecordBatch) -> tuple[object, int]:
    """``(capsule, address)``: the Arrow C Data Interface export of ``batch`` and the address
    of its ``struct ArrowArray``, for kernels that locate the columns themselves (see
    :func:`streamnorm.kernels.memory.locate_children`). The struct lives as long as the
    capsule: keep it referenced until the kernel has returned."""
    from ..kernels import memory  # loaded on first use, as in locate_columns

    _, capsule = batch.__arrow_c_array__()
    return capsule, memory.arrow_array_struct(capsule)


def locate_columns(batch: pa.RecordBatch, plan: BatchPlan) -> list[BufferGroup] | None:
    """The buffers of ``plan``'s columns in ``batch`` (a batch of the planned schema).

    Reads the batch's Arrow C Data Interface export (one call for all columns) instead of
    wrapping each column in Python. None when a values buffer is absent or not aligned for
    its dtype: use :func:`column_views` then.
    """
    # Reading raw addresses is the kernels' unsafe memory module; loaded on first use so that
    # ``import streamnorm`` loads no numba code (the invariants are written there).
    from ..kernels import memory

    _, exported = batch.__arrow_c_array__()  # referenced until the structs have been read
    struct = memory.arrow_array_struct(exported)
    groups = []
    for like, positions, children in plan.groups:
        located = memory.locate_children(struct, children, like.itemsize)
        addresses, lengths, validity_addresses, bit_offsets, has_validity, usable = located
        if not usable:
            return None
        groups.append(BufferGroup(positions, like, addresses, lengths, validity_addresses,
                                  bit_offsets, has_validity, batch))
    return groups


@dataclass(frozen=True)
class VectorView:
    """One chunk of a FixedSizeList column as a row-major (n_rows, width) matrix.

    ``values`` is the matrix view; ``value_validity``/``value_bit_offset`` describe nulls
    inside vectors (flattened order); ``row_valid`` is a bool array (n_rows,) that is False
    for null rows (a null vector).
    """

    values: np.ndarray
    value_validity: np.ndarray
    value_bit_offset: int
    value_null_count: int
    row_valid: np.ndarray

    @property
    def has_value_validity(self) -> bool:
        return self.value_null_count > 0


def vector_views(column: pa.Array | pa.ChunkedArray) -> Iterator[VectorView]:
    """Zero-copy (n_rows, width) views of each chunk of a FixedSizeList column."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    for chunk in chunks:
        if not len(chunk):
            continue
        width = chunk.type.list_size
        child = chunk.values.slice(chunk.offset * width, len(chunk) * width)
        flat = primitive_view(child)
        matrix = flat.values.reshape(len(chunk), width)
        if chunk.null_count:
            row_valid = chunk.is_valid().to_numpy(zero_copy_only=False)
        else:
            row_valid = np.ones(len(chunk), dtype=bool)
        yield VectorView(matrix, flat.validity, flat.bit_offset, flat.null_count, row_valid)
