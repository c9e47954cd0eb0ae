"""Arrow arrays → numpy views the kernels can read, without copying.

Each Arrow chunk becomes a :class:`ColumnView`: the values buffer as a numpy array and the
packed validity bitmap with its bit offset. Only three cases copy: dictionary-encoded columns
(decoded), float16 (numba has no CPU float16; widened to float32, which is exact) and chunks
whose values buffer is not aligned for its dtype.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from .errors import SchemaError

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


def is_numeric(arrow_type: pa.DataType) -> bool:
    """Whether streamnorm normalizes this type: ints, uints, floats (bool, decimal, … are not)."""
    if pat.is_dictionary(arrow_type):
        return is_numeric(arrow_type.value_type)
    return pat.is_integer(arrow_type) or pat.is_floating(arrow_type)


def is_vector(arrow_type: pa.DataType) -> bool:
    """Whether the type is a FixedSizeList of numeric values (one vector per row)."""
    return pat.is_fixed_size_list(arrow_type) and is_numeric(arrow_type.value_type)


def _plain(arrow_type: pa.DataType) -> pa.DataType:
    return arrow_type.value_type if pat.is_dictionary(arrow_type) else arrow_type


def promoted_type(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """The type two numeric types widen to (DESIGN §3), or None when one is not numeric.

    Integers widen to the narrowest integer type holding both (int8 and uint8 give int16);
    uint64 with a signed type, and any mix involving a float of another width, give float64
    (statistics accumulate in float64 anyway). Dictionary columns count as their values.

    >>> promoted_type(pa.int32(), pa.int64()), promoted_type(pa.int64(), pa.float64())
    (DataType(int64), DataType(double))
    >>> promoted_type(pa.int8(), pa.uint8()), promoted_type(pa.float32(), pa.float16())
    (DataType(int16), DataType(double))
    """
    if not (is_numeric(a) and is_numeric(b)):
        return None
    a, b = _plain(a), _plain(b)
    if a == b:
        return a
    if pat.is_integer(a) and pat.is_integer(b):
        if pat.is_signed_integer(a) == pat.is_signed_integer(b):
            return a if a.bit_width >= b.bit_width else b
        signed, unsigned = (a, b) if pat.is_signed_integer(a) else (b, a)
        if signed.bit_width > unsigned.bit_width:
            return signed
        if unsigned.bit_width < 64:
            return pa.from_numpy_dtype(np.dtype(f"int{2 * unsigned.bit_width}"))
    return pa.float64()


def common_type(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """The type a column has when its type is ``a`` in one place and ``b`` in another: the
    same type; an all-null column takes the other type; :func:`promoted_type` when one is a
    number (so a number and a string or a decimal have none); Arrow's permissive unification
    for the rest (string and large_string give large_string). None when there is none."""
    if a == b or pat.is_null(b):
        return a
    if pat.is_null(a):
        return b
    if is_numeric(a) or is_numeric(b):
        return promoted_type(a, b)
    try:
        unified = pa.unify_schemas([pa.schema([("c", a)]), pa.schema([("c", b)])],
                                   promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return unified.field(0).type


def why_not_numeric(name: str, arrow_type: pa.DataType) -> str:
    """A one-line explanation for a column that cannot be normalized, with the way out."""
    if pat.is_decimal(arrow_type):
        hint = "cast it to float64 first (e.g. pyarrow.compute.cast)"
    elif pat.is_boolean(arrow_type):
        hint = "bool is not numeric here; cast it to int8 or float if you mean 0/1"
    else:
        hint = "choose numeric columns with columns=[...] / -c"
    return f"column {name!r} has type {arrow_type}, which cannot be normalized: {hint}"


def field_type(
    schema: pa.Schema,
    name: str,
    *,
    role: str = "column",
    of: str = "",
    fix: str = "fix columns=[...] / -c",
) -> pa.DataType:
    """The type of column ``name`` of ``schema``.

    Raises :class:`SchemaError` naming the missing column (``role``, ``name``, ``of``), the
    columns the data does have and the way out (``fix``).
    """
    index = schema.get_field_index(name)
    if index < 0:
        raise SchemaError(
            f"{role} {name!r}{of} is not in the data (its columns: "
            f"{', '.join(schema.names) or 'none'}); {fix}"
        )
    return schema.field(index).type


def check_numeric(name: str, arrow_type: pa.DataType) -> None:
    """Raise ``TypeError`` naming the column unless its type is numeric."""
    if not is_numeric(arrow_type):
        raise TypeError(why_not_numeric(name, arrow_type))


#: Field metadata key and value that mark a dataset partition key column (``year`` of
#: ``year=2024/``), set by streamnorm.sources.
ROLE_KEY = b"streamnorm.role"
PARTITION_ROLE = b"partition"


def is_partition_key(field: pa.Field) -> bool:
    """Whether ``field`` is a partition key (``year=2024/``) added when reading a dataset."""
    return bool(field.metadata) and field.metadata.get(ROLE_KEY) == PARTITION_ROLE


def numeric_column_names(schema: pa.Schema) -> list[str]:
    """Names of the scalar numeric columns of a schema, in schema order.

    Partition keys are skipped: they are normalized only when named explicitly.
    """
    return [f.name for f in schema if is_numeric(f.type) and not is_partition_key(f)]


def _primitive_view(arr: pa.Array) -> ColumnView:
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
            yield _primitive_view(chunk)


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


def locate_columns(batch: pa.RecordBatch, plan: BatchPlan) -> list[BufferGroup] | None:
    """The buffers of ``plan``'s columns in ``batch`` (a batch of the planned schema).

    Reads the batch's Arrow C Data Interface export (one call for all columns) instead of
    wrapping each column in Python. None when a values buffer is absent or not aligned for
    its dtype: use :func:`column_views` then.
    """
    # Reading raw addresses is the kernels' unsafe memory module; loaded on first use so that
    # ``import streamnorm`` loads no numba code (the invariants are written there).
    from .kernels import memory

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
        flat = _primitive_view(child)
        matrix = flat.values.reshape(len(chunk), width)
        if chunk.null_count:
            row_valid = chunk.is_valid().to_numpy(zero_copy_only=False)
        else:
            row_valid = np.ones(len(chunk), dtype=bool)
        yield VectorView(matrix, flat.validity, flat.bit_offset, flat.null_count, row_valid)
