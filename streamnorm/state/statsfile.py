"""Checks for saved statistics from anywhere: one place that decides whether a loaded state is
one streamnorm could have written.

Every loader (``FeatureStats.load`` / ``from_arrow`` / ``from_dict``, grouped statistics, the
record in a normalized file's metadata, ``--stats``) goes through :func:`parse_json` (bytes →
JSON), :func:`check_meta` (the settings), :func:`rows_table` (JSON rows → a typed table) and
:func:`check_state_table` (the table's fields and values). A problem is a
:class:`~streamnorm.errors.StatsFileError` naming the field and the problem; the loaders
prefix the file name. Never another exception type, never a silently wrong state.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import StatsFileError

#: The way out offered by every message.
FIX = "re-create it with FeatureStats.save or `streamnorm stats -o`"
#: Newest format this version reads.
FORMAT_VERSION = 1
#: Fields a state may carry besides the ones its settings call for (added after format 1, so
#: absent from older files): checked when present, never required.
#: ``inf_count``: the ±inf among the values; ``scale_exponent`` e: shift, shifted_mean and m2
#: (m3, m4) are in units of 2**e (m_k of 2**(k*e)), 0 unless the moments would overflow.
OPTIONAL_FIELDS: dict[str, pa.DataType] = {"inf_count": pa.int64(),
                                           "scale_exponent": pa.int64()}
#: The largest scale exponent a state can hold (values are float64: below 2**1024).
MAX_SCALE_EXPONENT = 1100
_INT64_MAX = 2**63 - 1
_NAN_POLICIES = ("skip", "propagate")
_INF_POLICIES = ("keep", "skip")


def _fail(problem: str) -> StatsFileError:
    return StatsFileError(f"{problem}; {FIX}")


def parse_json(data: bytes | str, what: str = "statistics") -> Any:
    """Decode JSON text or UTF-8 bytes; any failure (bad UTF-8, bad syntax, nesting too deep
    for the parser, a number too long) is a :class:`StatsFileError`."""
    try:
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise _fail(f"{what} are not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise _fail(f"{what} are JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and int() of a number with too many digits
        raise _fail(f"{what} are not valid JSON ({exc})") from None


def is_int(value: Any) -> bool:
    """Whether a JSON value is a whole number (``true`` is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def names_problem(meta: dict[str, Any], name: str, *, empty: bool = True) -> str | None:
    """What is wrong with the optional list of names ``meta[name]``; None if nothing."""
    value = meta.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return f"field {name!r} is {show(value)}, not a list of names"
    if not value and not empty:
        return f"field {name!r} is an empty list"
    if len(set(value)) < len(value):
        return f"field {name!r} names {_first_duplicate(value)!r} twice"
    return None


def _check_str_list(meta: dict[str, Any], name: str, *, empty: bool = True) -> list[str] | None:
    problem = names_problem(meta, name, empty=empty)
    if problem is not None:
        raise _fail(problem)
    return meta.get(name)


def check_meta(meta: Any, kind: str = "FeatureStats") -> dict[str, Any]:
    """The settings of a saved state (its schema metadata, or the JSON object minus its rows),
    checked: an object whose ``version``, ``kind``, ``nan``, ``inf``, ``moments``, ``weighted``, ``by``,
    ``features`` and ``key_types`` have the types and values streamnorm writes."""
    if not isinstance(meta, dict):
        raise _fail(f"its settings are {show(meta)}, not a JSON object")
    version = meta.get("version", FORMAT_VERSION)
    if not is_int(version) or version < 0:
        raise _fail(f"field 'version' is {show(version)}, not a format number")
    if version > FORMAT_VERSION:
        raise StatsFileError(
            f"statistics saved by a newer streamnorm (format {version}); upgrade streamnorm"
        )
    if meta.get("kind", kind) != kind:
        raise _fail(f"field 'kind' is {show(meta.get('kind'))}, not {kind!r}")
    if meta.get("nan", "skip") not in _NAN_POLICIES:
        raise _fail(f"field 'nan' is {show(meta.get('nan'))}, not one of {_NAN_POLICIES}")
    if meta.get("inf", "keep") not in _INF_POLICIES:
        raise _fail(f"field 'inf' is {show(meta.get('inf'))}, not one of {_INF_POLICIES}")
    moments = meta.get("moments", 2)
    if not is_int(moments) or moments not in (2, 4):
        raise _fail(f"field 'moments' is {show(moments)}, not 2 or 4")
    if not isinstance(meta.get("weighted", False), bool):
        raise _fail(f"field 'weighted' is {show(meta.get('weighted'))}, not true or false")
    by = _check_str_list(meta, "by", empty=False)
    _check_str_list(meta, "features")
    key_types = _check_str_list(meta, "key_types")
    if key_types is not None and by is not None and len(key_types) != len(by):
        raise _fail(f"field 'key_types' has {len(key_types)} entries for {len(by)} key columns")
    return meta


def read_meta(metadata: dict[bytes, bytes] | None, key: bytes) -> dict[str, Any]:
    """The checked settings stored under ``key`` in Arrow schema metadata (defaults when
    there are none: a table of statistics written by hand)."""
    if not metadata or key not in metadata:
        return {"version": FORMAT_VERSION, "kind": "FeatureStats", "nan": "skip"}
    return check_meta(parse_json(metadata[key], "its settings (schema metadata)"))


# --------------------------------------------------------------------------- JSON rows


def show(value: Any, limit: int = 40) -> str:
    """A short description of a (JSON) value for a message."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int too long for repr
        text = f"a {type(value).__name__}"
    if isinstance(value, (list, dict)) and len(text) > limit:
        text = f"a {type(value).__name__} ({len(value)} entries)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_duplicate(values: Sequence[Any]) -> Any:
    seen = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def _json_value(value: Any, arrow_type: pa.DataType) -> Any:
    """One JSON value as the Python value of ``arrow_type``; raises ValueError on a mismatch."""
    if pa.types.is_int64(arrow_type):
        if not is_int(value):
            raise ValueError(f"{show(value)} is not an integer")
        if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
            raise ValueError(f"{show(value)} does not fit in 64 bits")
        return value
    if pa.types.is_float64(arrow_type):
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"{show(value)} is not a number")
        try:
            return float(value)  # strings: the non-finite values ("nan", "inf", "-inf")
        except OverflowError:
            raise ValueError(f"{show(value)} is too large for a float64") from None
        except ValueError:
            raise ValueError(f"{show(value)} is not a number") from None
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{show(value)} is not a string")
    return value


def rows_table(rows: Any, schema: pa.Schema, keys: Sequence[str] = ()) -> pa.Table:
    """The ``columns`` rows of a JSON state as a table of ``schema``, each value checked.

    State fields are required in every row (a JSON null float is NaN); key columns ``keys``
    take any value Arrow can hold in their type (null included); unknown fields are ignored.
    """
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise _fail(f"field 'columns' is {show(rows)}, not a list of objects")
    extra = [pa.field(n, t) for n, t in OPTIONAL_FIELDS.items()
             if n not in schema.names and any(n in row for row in rows)]
    schema = pa.schema([*schema, *extra])
    arrays = []
    for field in schema:
        if field.name in keys:
            values = [row.get(field.name) for row in rows]
            known = None if pa.types.is_null(field.type) else field.type  # else: infer it
            try:
                arrays.append(pa.array(values, type=known))
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                raise _fail(f"key column {field.name!r} holds values that are not "
                            f"{known or 'of one type'}") from None
            continue
        optional = field.name == "type" or field.name in OPTIONAL_FIELDS
        values = []
        for i, row in enumerate(rows):
            if field.name not in row:
                if optional:
                    values.append(None)
                    continue
                raise _fail(f"{_where(row, i)}: field {field.name!r} is missing")
            try:
                values.append(_json_value(row[field.name], field.type))
            except ValueError as exc:
                raise _fail(f"{_where(row, i)}: field {field.name!r}: {exc}") from None
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, names=schema.names)


def _where(row: dict[str, Any], i: int) -> str:
    name = row.get("column")
    return f"statistics of column {name!r}" if isinstance(name, str) else f"row {i}"


# --------------------------------------------------------------------------- the table


def _as_type(table: pa.Table, name: str, want: pa.DataType) -> pa.ChunkedArray:
    """Column ``name`` cast to ``want`` when its type is of the same kind (any integer for an
    integer field, integer or floating for a float field, any string for a string field)."""
    column = table.column(name)
    have = column.type
    if pa.types.is_dictionary(have):
        have = have.value_type
        column = column.cast(have)
    if pa.types.is_int64(want):
        ok = pa.types.is_integer(have)
    elif pa.types.is_float64(want):
        ok = pa.types.is_integer(have) or pa.types.is_floating(have)
    else:
        ok = (pa.types.is_string(have) or pa.types.is_large_string(have)
              or pa.types.is_string_view(have) or pa.types.is_null(have))
    if not ok:
        raise _fail(f"field {name!r} has type {column.type}, not {want}")
    try:
        return column.cast(want)
    except pa.ArrowInvalid:
        raise _fail(f"field {name!r} holds values that do not fit in {want}") from None


def check_state_table(
    table: pa.Table, fields: Sequence[tuple[str, pa.DataType]], keys: Sequence[str] = (),
) -> pa.Table:
    """The saved state ``table`` checked and with its fields in their exact types.

    ``fields`` are the state fields its settings call for (name, type), after ``column``;
    ``keys`` the key columns of grouped statistics. Checks: every field present once and of
    its kind of type; names not null (and, ungrouped, each once); counts whole, >= 0 and
    their sum below 2**63; m2 (and m4) not negative; shifts not infinite; min <= max; the
    mean (shift + shifted_mean) within [min, max] up to rounding where both are finite.
    Optional fields
    (:data:`OPTIONAL_FIELDS`) are checked when present. Returns the table with the fields
    cast (integer widths, float32, large strings, dictionaries) to the types ``fields`` name.
    """
    names = table.column_names
    duplicate = _first_duplicate(names)
    if duplicate is not None:
        raise _fail(f"field {duplicate!r} appears twice")
    wanted = [("column", pa.string()), *fields]
    wanted += [(n, t) for n, t in OPTIONAL_FIELDS.items() if n in names]
    if "type" in names:
        wanted.append(("type", pa.string()))
    missing = [n for n in [*keys, *(n for n, _ in wanted)] if n not in names]
    if missing:
        raise _fail(f"not a streamnorm statistics table: field(s) {missing} are missing")
    columns = {n: _as_type(table, n, t) for n, t in wanted}
    for name in OPTIONAL_FIELDS.keys() & columns.keys():  # a null optional field: absent, 0
        columns[name] = columns[name].fill_null(0)
    if columns["column"].null_count:
        raise _fail("field 'column' has a null name")
    column_names = columns["column"].to_pylist()
    if not keys and len(set(column_names)) < len(column_names):  # grouped: once per key
        raise _fail(f"column {_first_duplicate(column_names)!r} appears twice in the statistics")
    for name, column in columns.items():
        if column.null_count and (name == "count" or name.endswith("_count")):
            _bad(name, column.is_null().to_numpy(zero_copy_only=False), column_names, "is null")
    values = {n: c.to_numpy(zero_copy_only=False) for n, c in columns.items()
              if n not in ("column", "type")}
    _check_values(values, column_names)
    out = table
    for name, column in columns.items():
        out = out.set_column(out.schema.get_field_index(name), name, column)
    return out


def _check_values(values: dict[str, np.ndarray], names: list[str]) -> None:
    """The value checks of :func:`check_state_table` over the numpy fields."""
    counts = [n for n in values if n == "count" or n.endswith("_count")]
    total = np.zeros(len(names))
    for name in counts:
        x = values[name]
        if x.dtype.kind == "f":
            _bad(name, ~np.isfinite(x), names, "is not a finite number")
        _bad(name, x < 0, names, "is negative; a count is >= 0")
        total += x.astype(np.float64)
    _bad("count", total >= 2.0**63, names, "plus the null, NaN and inf counts reaches 2**63")
    for name in ("m2", "m4"):
        if name in values:
            _bad(name, values[name] < 0, names, "is negative; a sum of squares is >= 0")
    _bad("shift", np.isinf(values["shift"]), names, "is infinite; a shift is a finite value")
    exponent = values.get("scale_exponent", np.zeros(len(names), dtype=np.int64))
    _bad("scale_exponent", (exponent < 0) | (exponent > MAX_SCALE_EXPONENT), names,
         f"is outside [0, {MAX_SCALE_EXPONENT}]")
    lo, hi = values["min"], values["max"]
    _bad("min", lo > hi, names, "is greater than max")
    with np.errstate(invalid="ignore", over="ignore"):
        mean = np.ldexp(values["shift"] + values["shifted_mean"], exponent)
        spread = np.maximum(np.abs(lo), np.abs(hi))
        slack = 1e-9 * spread + 1e-6 * (hi - lo)  # rounding of shift + mean, generously
        finite = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(mean) & np.isfinite(slack)
        outside = finite & (values["count"] > 0) & ((mean < lo - slack) | (mean > hi + slack))
    _bad("mean", outside, names, "(shift + shifted_mean) lies outside [min, max]")


def _bad(field: str, mask: np.ndarray, names: list[str], problem: str) -> None:
    """Raise naming the first row where ``mask`` holds."""
    hits = np.flatnonzero(mask)
    if len(hits):
        i = int(hits[0])
        raise _fail(f"statistics of column {names[i]!r}: field {field!r} {problem}")


def decode_ipc(data: bytes, what: str = "the embedded Arrow statistics") -> pa.Table:
    """A table from Arrow IPC stream bytes; corrupt bytes are a :class:`StatsFileError`
    saying ``what`` cannot be read."""
    import pyarrow.ipc as ipc

    try:
        return ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _fail(f"{what} cannot be read ({exc})") from None


def encode_ipc(table: pa.Table) -> bytes:
    """``table`` as Arrow IPC stream bytes (zstd-compressed where pyarrow has zstd)."""
    import pyarrow.ipc as ipc

    codec = "zstd" if pa.Codec.is_available("zstd") else None
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema,
                        options=ipc.IpcWriteOptions(compression=codec)) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()

