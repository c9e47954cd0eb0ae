"""The column plan of a normalization: which columns change, their output types, the schemas.

Everything here depends on the schema (and, in batch mode, the statistics' columns) only, never
on the values: it is decided once per schema and checked before any data is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pyarrow as pa
import pyarrow.types as pat

from .. import columns as cols
from ..errors import SchemaError
from ..state.features import FeatureStats

Mode = Literal["batch", "layer", "rms", "robust"]
#: The normalization modes, in the order the CLI and ``inspect`` show them.
MODES: tuple[str, ...] = ("batch", "layer", "rms", "robust")
#: Modes that map each column with its own fitted ``(x - center) / scale`` (invertible).
PER_FEATURE_MODES: tuple[str, ...] = ("batch", "robust")


def check_mode(mode: str) -> str:
    """``mode`` when it is one of :data:`MODES`, else ``ValueError``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def output_type(arrow_type: pa.DataType) -> pa.DataType:
    """The type a numeric column has once normalized: float32 stays float32, else float64.

    >>> output_type(pa.float32()), output_type(pa.int16()), output_type(pa.float16())
    (DataType(float), DataType(double), DataType(double))
    """
    if pat.is_dictionary(arrow_type):
        return output_type(arrow_type.value_type)
    return pa.float32() if pat.is_float32(arrow_type) else pa.float64()


def check_batch_columns(schema: pa.Schema, names: Sequence[str], *, bools: bool = False) -> None:
    """Raise :class:`SchemaError` unless every name is a scalar numeric column of ``schema``
    (or bool with ``bools``: statistics only, which count a named bool column as 0/1)."""
    for name in names:
        field_type = cols.field_type(schema, name)
        if cols.is_vector(field_type):
            raise SchemaError(
                f"column {name!r} is a vector column ({field_type}); per-feature statistics take "
                "scalar columns: normalize vectors with mode 'layer' or 'rms'"
            )
        if not (cols.is_numeric(field_type) or (bools and pa.types.is_boolean(field_type))):
            raise SchemaError(cols.why_not_numeric(name, field_type))


def check_stats_columns(columns: Sequence[str], stats: FeatureStats) -> None:
    """Raise :class:`SchemaError` unless the statistics cover every one of ``columns``."""
    known = set(stats.columns)  # one copy: ``stats.columns`` builds a new list per call
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise SchemaError(
            f"column(s) {unknown} are not in the statistics (they cover "
            f"{stats.columns}); compute statistics over them or fix columns=[...] / -c"
        )


def batch_columns(
    schema: pa.Schema, columns: Sequence[str] | None, stats: FeatureStats
) -> list[str]:
    """Columns normalized in batch mode (``columns``, default the statistics' columns), checked
    against the schema and the statistics."""
    names = columns if columns is not None else stats.columns
    known = set(stats.columns)  # one copy: ``stats.columns`` builds a new list per call
    for name in names:
        field_type = cols.field_type(
            schema, name, of=" of the statistics", fix="use statistics of this data"
        )
        if not cols.is_numeric(field_type):
            raise SchemaError(cols.why_not_numeric(name, field_type))
        if name not in known:
            raise SchemaError(
                f"column {name!r} is not in the statistics (they cover {stats.columns}); "
                "fit on it or fix columns=[...] / -c"
            )
    return list(names)


def row_columns(
    schema: pa.Schema, columns: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """Layer / rms mode: (scalar columns normalized together, vector columns each normalized
    alone); ``columns`` None for every numeric scalar and every FixedSizeList column."""
    if columns is None:
        scalars = cols.numeric_column_names(schema)
        vectors = [f.name for f in schema if cols.is_vector(f.type)]
        return scalars, vectors
    scalars, vectors = [], []
    for name in columns:
        field_type = cols.field_type(schema, name)
        if cols.is_vector(field_type):
            vectors.append(name)
        elif cols.is_numeric(field_type):
            scalars.append(name)
        else:
            raise SchemaError(cols.why_not_numeric(name, field_type))
    return scalars, vectors


def in_schema_order(schema: pa.Schema, chosen: Sequence[str]) -> list[str]:
    """The names of ``chosen`` in the order of ``schema``."""
    wanted = set(chosen)
    return [name for name in schema.names if name in wanted]


def output_fields(schema: pa.Schema, chosen: Sequence[str]) -> list[pa.Field]:
    """The fields of ``schema`` with each chosen column retyped by :func:`output_type` (a
    vector column: its values), every other field unchanged."""
    wanted = set(chosen)
    fields = []
    for f in schema:
        if f.name not in wanted:
            fields.append(f)
        elif cols.is_vector(f.type):
            value_field = f.type.value_field
            new_value = value_field.with_type(output_type(value_field.type))
            fields.append(f.with_type(pa.list_(new_value, f.type.list_size)))
        else:
            fields.append(f.with_type(output_type(f.type)))
    return fields


def output_schema(
    schema: pa.Schema, chosen: Sequence[str], key: bytes, record: bytes
) -> pa.Schema:
    """The schema of normalized data: chosen columns retyped, ``record`` stored in the
    metadata under ``key`` (other metadata kept)."""
    metadata = dict(schema.metadata or {})
    metadata[key] = record
    return pa.schema(output_fields(schema, chosen), metadata=metadata)


def inverse_schema(schema: pa.Schema, chosen: Sequence[str], key: bytes) -> pa.Schema:
    """The schema of restored data: chosen (scalar) columns retyped by :func:`output_type`,
    the metadata entry ``key`` dropped."""
    wanted = set(chosen)
    fields = [f.with_type(output_type(f.type)) if f.name in wanted else f for f in schema]
    metadata = {k: v for k, v in (schema.metadata or {}).items() if k != key}
    return pa.schema(fields, metadata=metadata or None)


def widened(schema: pa.Schema, batches: list[pa.RecordBatch]) -> pa.Schema:
    """``schema`` with each column's type widened to hold every batch's (docs/design.md §3: a
    float32 batch and a float64 one give float64); :class:`SchemaError` when a type cannot
    widen."""
    fields = {f.name: f for f in schema}
    for batch in batches:
        for f in batch.schema:
            known = fields.get(f.name)
            if known is None or known.type == f.type:
                continue
            common = cols.common_type(known.type, f.type)
            if common is None:
                raise SchemaError(f"column {f.name!r} changed type from {known.type} to {f.type} "
                                  "between batches; cast the batches to one type first")
            fields[f.name] = known.with_type(common)
    return pa.schema(list(fields.values()), metadata=schema.metadata)


def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    """A record batch with no rows and the given schema."""
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)
