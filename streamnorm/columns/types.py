"""Which Arrow types streamnorm normalizes, and the type a column takes across sources.

No numpy views and no kernels here: only type rules and schema lookups (docs/design.md §3).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from ..errors import SchemaError


def is_numeric(arrow_type: pa.DataType) -> bool:
    """Whether streamnorm normalizes this type: ints, uints, floats (bool, decimal, … are not)."""
    if pat.is_dictionary(arrow_type):
        return is_numeric(arrow_type.value_type)
    return pat.is_integer(arrow_type) or pat.is_floating(arrow_type)


def is_vector(arrow_type: pa.DataType) -> bool:
    """Whether the type is a FixedSizeList of numeric values (one vector per row)."""
    return pat.is_fixed_size_list(arrow_type) and is_numeric(arrow_type.value_type)


def plain_type(arrow_type: pa.DataType) -> pa.DataType:
    """The value type of a dictionary type, else the type itself."""
    return arrow_type.value_type if pat.is_dictionary(arrow_type) else arrow_type


def promoted_type(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """The type two numeric types widen to (docs/design.md §3), or None when one is not numeric.

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
    a, b = plain_type(a), plain_type(b)
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
        hint = ("normalizing does not turn flags into numbers (statistics count a bool "
                "column named in columns=[...] as 0/1); cast it to int8 or float first")
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


def bools_as_uint8(data: pa.RecordBatch | pa.Table | pa.Schema, names: list[str]) -> Any:
    """``data`` (a batch, table or schema) with its bool columns among ``names`` as uint8
    (false 0, true 1, nulls kept): how a bool column named explicitly is counted, as pandas
    and numbagg count it. The same object when there is none (the common case costs one
    type check per name)."""
    schema = data if isinstance(data, pa.Schema) else data.schema
    for name in names:
        index = schema.get_field_index(name)
        if index < 0 or not pat.is_boolean(schema.field(index).type):
            continue
        field = schema.field(index).with_type(pa.uint8())
        if isinstance(data, pa.Schema):
            data = data.set(index, field)
        else:
            data = data.set_column(index, field, data.column(index).cast(pa.uint8()))
        schema = data if isinstance(data, pa.Schema) else data.schema
    return data


def check_numeric(name: str, arrow_type: pa.DataType) -> None:
    """Raise ``TypeError`` naming the column unless its type is numeric."""
    if not is_numeric(arrow_type):
        raise TypeError(why_not_numeric(name, arrow_type))


#: Field metadata key and value that mark a dataset partition key column (``year`` of
#: ``year=2024/``), set by streamnorm.arrow.dataset.
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
