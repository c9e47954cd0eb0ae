"""Schemas: given ones (``schema=``, ``--schema``), one schema unified over many files, and
batches conformed or cast to a schema."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pyarrow as pa

from ..columns import common_type, is_numeric, is_partition_key
from ..errors import InputError
from .failures import first_line

SchemaLike = pa.Schema | Mapping[str, "pa.DataType | str"]


def _as_type(name: str, value: pa.DataType | str) -> pa.DataType:
    if isinstance(value, pa.DataType):
        return value
    try:
        return pa.type_for_alias(str(value))
    except (ValueError, KeyError):
        raise InputError(f"schema: unknown type {value!r} for column {name!r}; use e.g. float64, "
                         "int64, string") from None


def as_schema(schema: SchemaLike | None) -> pa.Schema | None:
    """A ``pa.Schema`` from a schema or a ``{name: type or type name}`` mapping."""
    if schema is None or isinstance(schema, pa.Schema):
        return schema
    return pa.schema([(name, _as_type(name, value)) for name, value in schema.items()])


def parse_schema_text(text: str) -> dict[str, pa.DataType]:
    """``"a=float64,b=int32"`` → ``{"a": float64, "b": int32}`` (the CLI's ``--schema``)."""
    out: dict[str, pa.DataType] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--schema: {item!r} is not NAME=TYPE; write e.g. price=float64")
        out[name.strip()] = _as_type(name.strip(), value.strip())
    return out


def check_unique_names(schema: pa.Schema, where: object) -> pa.Schema:
    """``schema``, after checking that no column name repeats (columns are chosen by name,
    so a repeated one is ambiguous): :class:`InputError` naming the repeated names."""
    names = schema.names
    if len(set(names)) == len(names):
        return schema
    repeated = ", ".join(repr(n) for n in dict.fromkeys(
        n for i, n in enumerate(names) if n in names[:i]))
    raise InputError(f"{where}: more than one column is named {repeated}; give every column "
                     "its own name (rename them where the data is written)")


def unify_schemas(found: Sequence[tuple[str, pa.Schema]],
                  given: pa.Schema | None = None) -> pa.Schema:
    """One schema for the files of a dataset, from ``(file, schema)`` pairs (docs/design.md §3).

    Every column of every file, in order of first appearance; a column some file lacks is
    nullable (null there); a column whose type differs between files gets the type they
    widen to (:func:`streamnorm.columns.common_type`: int32 and float64 give float64). The
    types in ``given`` (``schema=`` / ``--schema``) win. Two types that cannot be unified (a
    string and a number) are an :class:`InputError` naming the column, both files and the fix.
    The metadata is the first file's.
    """
    fields: dict[str, pa.Field] = {}
    first_seen: dict[str, str] = {}
    seen_in: dict[str, int] = {}
    for shown, schema in found:
        for f in schema:
            seen_in[f.name] = seen_in.get(f.name, 0) + 1
            known = fields.get(f.name)
            if known is None:
                fields[f.name], first_seen[f.name] = f, shown
                continue
            if given is not None and f.name in given.names:
                continue
            common = common_type(known.type, f.type)
            if common is None:
                raise InputError(
                    f"column {f.name!r} is {known.type} in {first_seen[f.name]} but {f.type} in "
                    f"{shown}, and these types have no common type; read it as one type with "
                    f"--schema {f.name}=float64 (numbers) or --schema {f.name}=string (any value) "
                    "/ schema=, or leave one of the files out")
            fields[f.name] = known.with_type(common).with_nullable(
                known.nullable or f.nullable)
    for name, f in fields.items():
        if given is not None and name in given.names:
            f = f.with_type(given.field(name).type)
        if seen_in[name] < len(found):
            f = f.with_nullable(True)
        fields[name] = f
    metadata = found[0][1].metadata if found else None
    return pa.schema(list(fields.values()), metadata=metadata)


def conform(batch: pa.RecordBatch, schema: pa.Schema, partition: Mapping[str, Any],
             shown: str) -> pa.RecordBatch:
    """``batch`` with the columns and types of ``schema``; partition keys filled in, missing
    columns null."""
    if batch.schema.equals(schema, check_metadata=False) and not partition:
        return batch
    arrays = []
    for f in schema:
        if is_partition_key(f):
            arrays.append(pa.repeat(pa.scalar(partition.get(f.name), f.type), batch.num_rows))
            continue
        index = batch.schema.get_field_index(f.name)
        if index < 0:
            arrays.append(pa.nulls(batch.num_rows, f.type))
            continue
        column = batch.column(index)
        if column.type != f.type:
            column = _cast(column, f.type, f.name, shown)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _cast(column: pa.Array, to: pa.DataType, name: str, shown: str) -> pa.Array:
    """``column`` as type ``to``: numbers to a float type round as float64 does (an integer
    beyond 2**53 loses its last bits, like every value statistics accumulate); other casts
    (those ``schema=`` asks for) must keep every value, else :class:`InputError`."""
    rounding = is_numeric(column.type) and pa.types.is_floating(to)
    try:
        return column.cast(to, safe=not rounding)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise InputError(f"{shown}: column {name!r} ({column.type}) cannot be read as {to} "
                         f"({first_line(exc)}); read it as another type with --schema "
                         f"{name}=TYPE / schema= (string keeps any value), or fix the file"
                         ) from None


def float32_schema(schema: pa.Schema, columns: Collection[str] | None = None) -> pa.Schema:
    """``schema`` with every float64 column (and float64 vector) as float32; only those
    named in ``columns`` when given."""
    fields = []
    for f in schema:
        narrow = columns is None or f.name in columns
        if narrow and pa.types.is_float64(f.type):
            f = f.with_type(pa.float32())
        elif (narrow and pa.types.is_fixed_size_list(f.type)
              and pa.types.is_float64(f.type.value_type)):
            value = f.type.value_field.with_type(pa.float32())
            f = f.with_type(pa.list_(value, f.type.list_size))
        fields.append(f)
    return pa.schema(fields, metadata=schema.metadata)
