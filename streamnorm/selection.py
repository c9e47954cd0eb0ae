"""Column selection for wide data: names and globs (``emb_*``), exclusions, and :func:`inspect`.

>>> import pyarrow as pa
>>> schema = pa.schema([("id", pa.string()), ("emb_0", pa.float32()), ("emb_1", pa.float32()),
...                     ("age", pa.int64())])
>>> select_columns(schema, ["emb_*"])
['emb_0', 'emb_1']
>>> select_columns(schema, exclude=["age"])
['emb_0', 'emb_1']
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from . import columns as cols
from .arrow.locations import has_glob
from .arrow.open import Source, schema_and_batches
from .columns import is_partition_key
from .errors import SchemaError
from .normalize.plan import MODES


def _matches(names: Sequence[str], pattern: str) -> list[str]:
    if not has_glob(pattern):
        return [pattern] if pattern in names else []
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def _eligible(f: pa.Field, mode: str) -> str | None:
    """Why ``mode`` would not normalize this field when chosen automatically (None: it would)."""
    if is_partition_key(f):
        return "partition key from the directory layout; name it with -c / columns= to include it"
    if cols.is_numeric(f.type):
        return None
    if cols.is_vector(f.type):
        if mode in ("batch", "robust"):
            return (f"vector column: {mode} mode normalizes scalar columns; use --mode layer "
                    "or rms")
        return None
    return cols.why_not_numeric(f.name, f.type).split(" has ", 1)[-1]


def select_columns(
    schema: pa.Schema,
    include: Sequence[str] | str | None = None,
    exclude: Sequence[str] | str | None = None,
    mode: str = "batch",
) -> list[str]:
    """Column names chosen by ``include`` (names or globs; default: every column ``mode``
    normalizes automatically) minus ``exclude`` (names or globs), in schema order.

    A name or pattern in ``include`` that matches no column is a :class:`SchemaError`. Globs
    pick only columns ``mode`` can normalize; exact names are kept as given (so that a
    non-numeric name fails later with its own message).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    include = [include] if isinstance(include, str) else include
    exclude = [exclude] if isinstance(exclude, str) else exclude
    names = schema.names
    if include is None:
        chosen = {f.name for f in schema if _eligible(f, mode) is None}
    else:
        chosen = set()
        for pattern in include:
            found = _matches(names, pattern)
            if has_glob(pattern):
                found = [n for n in found if not _eligible_reason_blocks(schema.field(n), mode)]
            if not found:
                raise SchemaError(f"-c / columns: {pattern!r} matches no column (the columns: "
                                  f"{', '.join(names[:20])}{' …' if len(names) > 20 else ''}); "
                                  "fix the name or the pattern")
            chosen.update(found)
    for pattern in exclude or ():
        chosen.difference_update(_matches(names, pattern))
    return [n for n in names if n in chosen]


def _eligible_reason_blocks(f: pa.Field, mode: str) -> bool:
    """Whether a glob should skip this field: only types ``mode`` cannot normalize (a glob may
    still pick partition keys, which are numeric)."""
    reason = _eligible(f, mode)
    return reason is not None and not is_partition_key(f)


@dataclass(frozen=True)
class Inspection:
    """What :func:`inspect` found: the schema and a table with, per column, its type, role,
    whether each mode would normalize it and why not."""

    schema: pa.Schema
    table: pa.Table

    def __str__(self) -> str:
        rows = self.table.to_pylist()
        width = max([len("column")] + [len(r["column"]) for r in rows])
        type_width = max([len("type")] + [len(r["type"]) for r in rows])
        lines = [f"{'column':<{width}}  {'type':<{type_width}}  batch layer rms  note"]
        for r in rows:
            marks = "  ".join(f"{'yes' if r[m] else 'no':<3}" for m in MODES)
            lines.append(f"{r['column']:<{width}}  {r['type']:<{type_width}}  {marks}  "
                         f"{r['reason'] or ''}".rstrip())
        return "\n".join(lines)


def inspect(
    source: Source,
    include: Sequence[str] | str | None = None,
    exclude: Sequence[str] | str | None = None,
) -> Inspection:
    """The schema of ``source`` (reading only its first block) and, for each column, whether
    ``batch``, ``layer`` and ``rms`` modes would normalize it (with ``include`` / ``exclude``
    as :func:`select_columns`) and, if not, why.

    >>> import pyarrow as pa
    >>> found = inspect(pa.table({"x": [1.0], "flag": [True], "v": pa.array([[1.0, 2.0]],
    ...                           pa.list_(pa.float64(), 2))}))
    >>> found.table.column("batch").to_pylist(), found.table.column("layer").to_pylist()
    ([True, False, False], [True, False, True])
    """
    schema, batches = schema_and_batches(source)
    if hasattr(batches, "close"):
        batches.close()
    if schema is None:
        raise SchemaError("the source holds no batch, so it has no schema to inspect")
    chosen = {m: set(select_columns(schema, include, exclude, m)) for m in MODES}
    rows = []
    for f in schema:
        reasons = {m: _reason(f, m, exclude, chosen[m]) for m in MODES}
        distinct = list(dict.fromkeys(r for r in reasons.values() if r))
        if len(distinct) == 1 and all(reasons.values()):
            note = distinct[0]
        else:
            note = "; ".join(
                f"{'/'.join(m for m in MODES if reasons[m] == r)}: {r}" for r in distinct)
        rows.append({
            "column": f.name, "type": str(f.type),
            "role": "partition" if is_partition_key(f) else "data",
            **{m: reasons[m] is None for m in MODES},
            "reason": note or None,
        })
    types = [("column", pa.string()), ("type", pa.string()), ("role", pa.string()),
             *((m, pa.bool_()) for m in MODES), ("reason", pa.string())]
    return Inspection(schema, pa.Table.from_pylist(rows, schema=pa.schema(types)))


def _reason(f: pa.Field, mode: str, exclude: Sequence[str] | str | None,
            chosen: set[str]) -> str | None:
    """Why ``mode`` would not normalize ``f`` under this selection (None: it would)."""
    type_ok = cols.is_numeric(f.type) or (cols.is_vector(f.type) and mode not in ("batch", "robust"))
    if f.name in chosen:
        return None if type_ok else _eligible(f, mode)
    patterns = [exclude] if isinstance(exclude, str) else list(exclude or ())
    if any(_matches([f.name], p) for p in patterns):
        return "excluded by --exclude"
    return _eligible(f, mode) or "not selected by -c / columns="
