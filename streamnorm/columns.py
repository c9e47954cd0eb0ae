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
class BufferGroup:
    """Same-dtype numeric columns of one batch, located by buffer address.

    For the kernels that take addresses (``kernels.cpu.columns_moments_at``): locating a
    column costs far less than building a numpy view of it.

    Attributes (k columns)
    ----------------------
    positions : list[int], each column's index in the list given to :func:`buffer_groups`.
    like : np.ndarray, an empty array of the values dtype.
    addresses : int64[k], address of each column's first value.
    lengths : int64[k], values per column.
    validity_addresses : int64[k], address of each validity bitmap (0 when there are no nulls).
    bit_offsets : int64[k], bit index of the first value in its bitmap.
    has_validity : bool[k], whether the column has nulls (its bitmap is to be read).
    null_counts : int64[k].
    arrays : list[pa.Array], the columns: keep this group alive while the addresses are used.
    """

    positions: list[int]
    like: np.ndarray
    addresses: np.ndarray
    lengths: np.ndarray
    validity_addresses: np.ndarray
    bit_offsets: np.ndarray
    has_validity: np.ndarray
    null_counts: np.ndarray
    arrays: list[pa.Array]


def buffer_groups(arrays: list[pa.Array | pa.ChunkedArray]) -> list[BufferGroup] | None:
    """Group plain numeric arrays by dtype and locate their buffers, without copying.

    Returns None when any array needs :func:`column_views` instead: a chunked column, a
    dictionary or float16 column (they are converted), or a values buffer that is absent or
    not aligned for its dtype.
    """
    located: dict[np.dtype, list[tuple[int, pa.Array, int, int, int, int]]] = {}
    for position, arr in enumerate(arrays):
        dtype = _PLAIN_DTYPES.get(arr.type) if isinstance(arr, pa.Array) else None
        if dtype is None:
            return None
        validity_buf, data_buf = arr.buffers()
        if data_buf is None:
            return None
        address = data_buf.address + arr.offset * dtype.itemsize
        if address % dtype.itemsize:
            return None
        null_count = arr.null_count
        if null_count and validity_buf is None:
            return None  # every value null, no bitmap: column_views makes one
        validity_address = validity_buf.address if null_count else 0
        located.setdefault(dtype, []).append(
            (position, arr, address, validity_address, arr.offset if null_count else 0,
             null_count)
        )
    groups = []
    for dtype, members in located.items():
        positions, owners, addresses, validity_addresses, bit_offsets, null_counts = zip(
            *members
        )
        nulls = np.array(null_counts, dtype=np.int64)
        groups.append(BufferGroup(
            positions=list(positions),
            like=np.empty(0, dtype=dtype),
            addresses=np.array(addresses, dtype=np.int64),
            lengths=np.array([len(a) for a in owners], dtype=np.int64),
            validity_addresses=np.array(validity_addresses, dtype=np.int64),
            bit_offsets=np.array(bit_offsets, dtype=np.int64),
            has_validity=nulls > 0,
            null_counts=nulls,
            arrays=list(owners),
        ))
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
