"""Saved statistics: the table layout of a state, and reading and writing it (``.json``, Arrow
IPC or Parquet; local paths or object-store URIs; atomic writes).

A saved state is a table with one row per column (per key and column when grouped): the
fields of :func:`state_fields`, the optional fields of :data:`OPTIONAL_FIELDS`, and ``type``,
with the settings as JSON under :data:`METADATA_KEY` in the schema metadata. ``.json`` files
hold the same rows as a list of objects beside the settings. Every load is checked by
:mod:`streamnorm.state.statsfile`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..arrow.formats import IPC_SUFFIXES, PARQUET_SUFFIXES
from ..arrow.locations import is_uri, resolve
from ..arrow.open import schema_and_batches
from ..arrow.sinks import atomic_path, write_table
from ..arrow.stdio import (
    is_stdio,
    is_stream_location,
    open_stream_reader,
    open_stream_sink,
    stdin_file,
    stdout_file,
)
from ..columns.arrays import numpy_array, string_array
from ..errors import InputError, StatsFileError
from . import statsfile
from .merge import Moments, check_moments

#: Newest format this version reads and the version it writes.
FORMAT_VERSION = statsfile.FORMAT_VERSION
#: The schema-metadata key of a saved state's settings.
METADATA_KEY = b"streamnorm"

#: Fields of the saved state, in order, after the ``column`` name.
STATE_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("count", pa.int64()),
    ("null_count", pa.int64()),
    ("nan_count", pa.int64()),
    ("mean", pa.float64()),
    ("m2", pa.float64()),
    ("min", pa.float64()),
    ("max", pa.float64()),
    ("shift", pa.float64()),
    ("shifted_mean", pa.float64()),
)
#: Fields added later: saved always, optional when loading (older files hold none: 0); what
#: they mean is in :data:`statsfile.OPTIONAL_FIELDS`.
OPTIONAL_FIELDS: tuple[tuple[str, pa.DataType], ...] = tuple(statsfile.OPTIONAL_FIELDS.items())


def state_fields(moments: int = 2, weighted: bool = False) -> list[tuple[str, pa.DataType]]:
    """The saved fields for a state: ``count`` is float64 when weighted; m3/m4 follow m2."""
    fields = []
    for name, arrow_type in STATE_FIELDS:
        if name == "count" and weighted:
            arrow_type = pa.float64()
        fields.append((name, arrow_type))
        if name == "m2" and moments == 4:
            fields += [("m3", pa.float64()), ("m4", pa.float64())]
    return fields


def rows_schema(meta: dict[str, Any]) -> pa.Schema:
    """The Arrow schema of the rows of a saved state with settings ``meta`` (no key columns)."""
    moments = check_moments(meta.get("moments", 2))
    fields = state_fields(moments, bool(meta.get("weighted", False)))
    return pa.schema([("column", pa.string()), *fields, *OPTIONAL_FIELDS, ("type", pa.string())])


def state_columns(state: Moments, mean: np.ndarray) -> dict[str, pa.Array]:
    """The saved fields of ``state`` as flat Arrow arrays (row-major over any leading key
    axis); ``mean`` is the mean as the results give it (NaN where there is none)."""
    raw = {
        "count": state.count, "null_count": state.null_count, "nan_count": state.nan_count,
        "mean": mean, "m2": state.m2, "min": state.min, "max": state.max,
        "shift": state.shift, "shifted_mean": state.shifted_mean,
        "inf_count": state.inf_count, "scale_exponent": state.scale_exp,
    }
    if state.moments == 4:
        raw.update(m3=state.m3, m4=state.m4)
    return {
        name: numpy_array(raw[name], arrow_type)
        for name, arrow_type in (*state_fields(state.moments, state.weighted), *OPTIONAL_FIELDS)
    }


def type_column(types: Sequence[pa.DataType | None]) -> pa.Array:
    """The saved ``type`` field: each column's Arrow type as a string (null when unknown)."""
    return string_array([str(t) if t is not None else None for t in types])


def load_arrays(state: Moments, table: pa.Table, shape: tuple[int, ...]) -> None:
    """Fill the arrays of ``state`` (allocated with ``shape``) from a checked table's fields."""
    names = ["count", "null_count", "nan_count", "shift", "shifted_mean", "m2", "min", "max"]
    if state.moments == 4:
        names += ["m3", "m4"]
    for name in names:
        column = table.column(name).to_numpy(zero_copy_only=False)
        getattr(state, name)[...] = column.reshape(shape)
    for name, attr in (("inf_count", "inf_count"), ("scale_exponent", "scale_exp")):
        if name in table.column_names:  # absent from files of older versions: 0
            column = table.column(name).fill_null(0).to_numpy(zero_copy_only=False)
            getattr(state, attr)[...] = column.reshape(shape)


def with_metadata(table: pa.Table, meta: dict[str, Any]) -> pa.Table:
    """``table`` with the settings ``meta`` in its schema metadata."""
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(meta)})


def read_metadata(metadata: dict[bytes, bytes] | None) -> dict[str, Any]:
    """The checked settings in a statistics table's schema metadata."""
    return statsfile.read_meta(metadata, METADATA_KEY)


def dict_meta(state: Any) -> dict[str, Any]:
    """The checked settings of a ``to_dict`` state (all but its rows)."""
    if not isinstance(state, dict) or state.get("kind") != "FeatureStats" or "columns" not in state:
        raise StatsFileError(
            "not a streamnorm statistics file (no FeatureStats state in it); create it with "
            "FeatureStats.save or `streamnorm stats -o`"
        )
    return statsfile.check_meta({k: v for k, v in state.items() if k != "columns"})


def table_to_dict(table: pa.Table) -> dict[str, Any]:
    """A saved state's table as a JSON-ready dict: its settings and ``columns``, its rows
    (non-finite floats as strings)."""
    rows = []
    for row in table.to_pylist():
        rows.append({k: json_float(v) if isinstance(v, float) else
                     [json_float(x) for x in v] if isinstance(v, list) else v
                     for k, v in row.items()})
    return {**read_metadata(table.schema.metadata), "columns": rows}


def dict_to_table(state: dict[str, Any], meta: dict[str, Any], schema: pa.Schema,
                  keys: Sequence[str] = ()) -> pa.Table:
    """The table of a ``to_dict`` state whose checked settings are ``meta``."""
    table = statsfile.rows_table(state["columns"], schema, keys=keys)
    return with_metadata(table, meta)


def json_float(value: float) -> float | str:
    """Finite floats stay numbers (Python's repr round-trips exactly); others become strings."""
    return value if math.isfinite(value) else repr(value)


def parse_type(name: str | None) -> pa.DataType | None:
    """Arrow type from its saved string form; None (type not checked) when it has no alias."""
    try:
        return pa.type_for_alias(name) if name else None
    except ValueError:
        return None


@contextlib.contextmanager
def naming(where: str) -> Iterator[None]:
    """Prefix the message of a :class:`StatsFileError` raised inside with ``where``."""
    try:
        yield
    except StatsFileError as exc:
        raise StatsFileError(f"{where}: {exc}") from None


def location(path: str | os.PathLike) -> str | Path:
    """A URI stays a string (``Path`` would fold ``s3://`` into ``s3:/``); a path is a Path."""
    name = os.fspath(path)
    return name if is_uri(name) else Path(name)


def save_state(path: str | os.PathLike, to_dict: Callable[[], dict[str, Any]],
               to_arrow: Callable[[], pa.Table]) -> None:
    """Write a state atomically: ``to_dict()`` as ``.json``, else ``to_arrow()`` as Arrow IPC
    or Parquet by suffix. ``path`` is a local path or an object-store URI string."""
    if is_stream_location(path):
        _save_json_to_stream(path, to_dict)
        return
    where = location(path)
    if os.fspath(path).lower().endswith(".json"):
        data = _json_bytes(to_dict)
        with atomic_path(where) as tmp:
            filesystem, inner = resolve(tmp)
            with filesystem.open_output_stream(inner, compression=None) as out:
                out.write(data)
    else:
        write_table(to_arrow(), where)


def _save_json_to_stream(path: str | os.PathLike, to_dict: Callable[[], dict[str, Any]]) -> None:
    """``-`` (stdout), a pipe or a device path: the JSON state written as a stream (nothing
    to rename, so not atomic: a consumer sees the end of the text when it is complete)."""
    name = os.fspath(path)
    if not is_stdio(name) and name.lower().endswith(_NOT_JSON_SUFFIXES):
        raise InputError(f"{name}: statistics written to a pipe or device are JSON; drop the "
                         "suffix, or write a file")
    data = _json_bytes(to_dict)
    if is_stdio(name):
        out = stdout_file()
        out.write(data)
        out.flush()
        return
    with open_stream_sink(name) as out:
        out.write(data)


#: Suffixes that name a binary state format, which a stream cannot hold (Parquet needs to
#: seek; the JSON text is what pipes and devices carry).
_NOT_JSON_SUFFIXES = (*IPC_SUFFIXES, *PARQUET_SUFFIXES)


def _json_bytes(to_dict: Callable[[], dict[str, Any]]) -> bytes:
    """The ``.json`` state file's bytes: ``to_dict()`` indented, with a final newline."""
    return (json.dumps(to_dict(), indent=1) + "\n").encode()


def _load_from_stream(name: str, from_dict: Callable[[dict[str, Any]], Any],
                      from_arrow: Callable[[pa.Table], Any]) -> Any:
    """``-`` (stdin), a pipe or a device path: read to its end once, JSON when the text starts
    with ``{`` (what :func:`save_state` writes there), else an Arrow IPC stream."""
    shown = "stdin" if is_stdio(name) else name
    try:
        if is_stdio(name):
            data = stdin_file().read()
        else:
            with open_stream_reader(name) as raw:
                data = raw.read()
    except OSError as exc:
        raise InputError(f"{shown}: cannot read it ({exc.strerror or exc}); check the path"
                         ) from None
    if not data.strip():
        raise StatsFileError(f"{shown}: no statistics arrived (the stream is empty); check "
                             "the command that writes them")
    with naming(shown):
        if data.lstrip()[:1] == b"{":
            return from_dict(statsfile.parse_json(data))
        return from_arrow(statsfile.decode_ipc(
            data, "the statistics, neither JSON nor an Arrow IPC stream,"))


def load_state(path: str | os.PathLike, from_dict: Callable[[dict[str, Any]], Any],
               from_arrow: Callable[[pa.Table], Any]) -> Any:
    """Read a state written by :func:`save_state` and rebuild it with ``from_dict`` (``.json``)
    or ``from_arrow``; problems are :class:`StatsFileError` / :class:`InputError` naming the
    file."""
    name = os.fspath(path)
    if is_stream_location(name):
        return _load_from_stream(name, from_dict, from_arrow)
    if name.lower().endswith(".json"):
        try:
            filesystem, inner = resolve(name)
            with filesystem.open_input_stream(inner, compression=None) as raw:
                text = raw.read()
        except FileNotFoundError:
            raise InputError(f"{name}: no such statistics file; check the path") from None
        except OSError as exc:
            raise InputError(f"{name}: cannot read it ({exc}); check the path") from None
        with naming(name):
            return from_dict(statsfile.parse_json(text))
    try:
        schema, batches = schema_and_batches(location(path))
        table = pa.Table.from_batches(list(batches), schema=schema)
    except StatsFileError:
        raise
    except InputError as exc:  # unreadable, corrupt, or two fields of one name
        raise StatsFileError(str(exc)) from None
    with naming(name):
        return from_arrow(table)
