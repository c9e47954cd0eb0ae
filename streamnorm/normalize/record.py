"""The normalization record: what a normalized output's schema metadata says about how it was
made (mode, eps, ddof, nan, inf, columns, by and, in batch mode, the statistics), so that
:meth:`Normalizer.from_metadata` can undo the output without the statistics file.

The statistics go inline as JSON (``stats``), as base64 Arrow IPC for grouped statistics
(``stats_arrow``), or, when grouped statistics are larger than :data:`INLINE_STATS_BYTES`,
into a statistics file beside the output whose name the record holds (``stats_file``).
This module writes the record's JSON and reads records back; it also finds statistics given
as a file (a statistics file or a normalized file).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..arrow.locations import is_uri
from ..arrow.open import schema_and_batches
from ..arrow.stdio import is_stream_location
from ..errors import InputError, StatsFileError
from ..state.features import FeatureStats
from ..state.persist import json_float, naming
from ..state.quantiles import strip_sketches
from ..state.statsfile import (
    decode_ipc,
    encode_ipc,
    is_int,
    names_problem,
    parse_json,
    show,
)
from .affine import check_mode_options
from .plan import MODES, PER_FEATURE_MODES

#: Schema metadata key under which the normalization record is stored.
METADATA_KEY = b"streamnorm"
RECORD_VERSION = 1
#: Grouped (``by=``) statistics go into an output file's metadata (Arrow IPC, base64) up to
#: this many bytes of state; larger ones into a statistics file beside the output, which the
#: metadata names. Parquet keeps schema metadata twice (key-value and in ARROW:schema), so an
#: inline state costs about 3x this in the file.
INLINE_STATS_BYTES = 256 * 1024
#: Suffix of the statistics file written beside a normalized output: ``out.parquet.stats.arrow``.
STATS_FILE_SUFFIX = ".stats.arrow"
_FIX_RECORD = "normalize the data again, or give the statistics with --stats"
#: Why online-normalized data has no inverse (docs: README "Online normalization").
ONLINE_NO_INVERSE = (
    "online normalization has no inverse: each batch was normalized with the statistics of the "
    "rows up to it, so no one set of statistics undoes it; keep the original data"
)
#: Key of a Parquet footer entry holding the statistics at the end of an online stream.
FINAL_STATS_KEY = b"streamnorm.final_stats"


def file_schema(path: str | os.PathLike) -> pa.Schema:
    """The Arrow schema of an IPC or Parquet file (or any source a path names), without
    reading its data."""
    schema, batches = schema_and_batches(path)
    if hasattr(batches, "close"):
        batches.close()
    assert schema is not None
    return schema


# --------------------------------------------------------------------------- writing


def make_record(
    mode: str, eps: float, ddof: int, nan: str, columns: Sequence[str] | None, inf: str,
    by: Sequence[str] | None, stats: FeatureStats | None, stats_file: str | None,
    options: dict[str, Any] | None = None, *, online: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON-ready record of a Normalizer so configured. ``online`` (online batch mode:
    ``{"momentum": ..., "warmup": ...}``) goes in instead of statistics, which change from
    batch to batch. ``stats`` (batch mode) go in as
    :meth:`FeatureStats.to_dict` gives them, or for grouped statistics as Arrow IPC
    (``stats_arrow``, base64; much smaller than JSON) or, when ``stats_file`` is given, as the
    name of the statistics file beside the output (``stats_file``). ``options``: the mode's own
    (``feature_range`` for minmax), recorded under ``options`` when there are any."""
    record: dict[str, Any] = {
        "version": RECORD_VERSION, "kind": "Normalizer", "mode": mode,
        "eps": eps, "ddof": ddof, "nan": nan, "columns": columns,
    }
    if inf != "error":
        record["inf"] = inf
    if by is not None:
        record["by"] = by
    if options:
        record["options"] = {k: list(v) if isinstance(v, tuple) else v
                             for k, v in options.items()}
    if online is not None:
        record["online"] = online
    if mode not in PER_FEATURE_MODES or online is not None:
        return record
    assert stats is not None
    if by is None:
        record["stats"] = strip_sketches(stats.to_dict()) if stats.quantiles else stats.to_dict()
    elif stats_file:
        record["stats_file"] = stats_file
    else:  # compact, and keeps keys JSON cannot (dates, binary)
        blob = encode_ipc(stats.to_arrow())
        record["stats_arrow"] = base64.b64encode(blob).decode("ascii")
    return record


def robust_fields(center_scale: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """The record fields of robust mode, per statistics column ``center`` (median) and
    ``scale`` (the quantile range, 1 where zero): what the inverse needs, so the sketches
    themselves stay out of the output's metadata (``quantile_range`` is in ``options``)."""
    return {"center": {n: json_float(c) for n, (c, _) in center_scale.items()},
            "scale": {n: json_float(v) for n, (_, v) in center_scale.items()}}


def recorded_center_scale(record: dict[str, Any]) -> dict[str, tuple[float, float]] | None:
    """``{column: (center, scale)}`` of a checked robust-mode record; None for other modes."""
    if record.get("mode") != "robust":
        return None
    return {n: (float(c), float(record["scale"][n])) for n, c in record["center"].items()}


def _robust_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with the robust-mode fields of a record; None if nothing."""
    center, scale = record.get("center"), record.get("scale")
    if not isinstance(center, dict) or not isinstance(scale, dict) or set(center) != set(scale):
        return "fields 'center' and 'scale' are not objects over the same columns"
    for name in center:
        for field, value in (("center", center[name]), ("scale", scale[name])):
            try:
                float(value)
            except (TypeError, ValueError):
                return f"field {field!r} of column {name!r} is {show(value)}, not a number"
            if isinstance(value, bool):
                return f"field {field!r} of column {name!r} is {show(value)}, not a number"
    return None


# --------------------------------------------------------------------------- reading


def is_record(metadata: dict[bytes, bytes] | None) -> bool:
    """Whether schema metadata holds a Normalizer record (not a FeatureStats table's)."""
    if not metadata or METADATA_KEY not in metadata:
        return False
    try:
        return json.loads(metadata[METADATA_KEY]).get("kind") == "Normalizer"
    except (ValueError, AttributeError, RecursionError):
        return False


def read_record(schema: pa.Schema, where: str) -> dict[str, Any]:
    """The checked normalization record of ``schema`` (whose metadata :func:`is_record`
    accepted): a :class:`StatsFileError` naming ``where`` and the field when it is not one
    streamnorm wrote."""
    with naming(where):
        record = parse_json(schema.metadata[METADATA_KEY], "its normalization record")
    version = record.get("version", RECORD_VERSION)
    if not is_int(version) or version > RECORD_VERSION:
        raise InputError(f"{where}: normalized by a newer streamnorm; upgrade streamnorm")
    problem = record_problem(record)
    if problem is not None:
        raise StatsFileError(f"{where}: its normalization record: {problem}; {_FIX_RECORD}")
    return record


def record_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with the fields of a normalization record; None if nothing."""
    eps, ddof, mode, nan = (record.get("eps"), record.get("ddof", 0), record.get("mode"),
                            record.get("nan", "skip"))
    if mode not in MODES:
        return f"field 'mode' is {show(mode)}, not one of {MODES}"
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < float("inf"):
        return f"field 'eps' is {show(eps)}, not a finite number >= 0"
    if not is_int(ddof) or ddof < 0:
        return f"field 'ddof' is {show(ddof)}, not a whole number >= 0"
    if nan not in ("skip", "propagate"):
        return f"field 'nan' is {show(nan)}, not 'skip' or 'propagate'"
    if record.get("inf", "error") not in ("error", "skip"):
        return f"field 'inf' is {show(record.get('inf'))}, not 'error' or 'skip'"
    if "online" in record and not isinstance(record["online"], dict):
        return f"field 'online' is {show(record['online'])}, not an object"
    if (mode in PER_FEATURE_MODES and "online" not in record
            and not {"stats", "stats_arrow", "stats_file"} & set(record)):
        return "it holds no statistics"
    options = check_mode_options(mode, record.get("options", {}))
    if options is not None:
        return options
    if mode == "robust" and (problem := _robust_problem(record)):
        return problem
    return (names_problem(record, "columns")
            or names_problem(record, "by", empty=False))


def locate_record(
    source: pa.Schema | pa.RecordBatch | pa.Table | str | os.PathLike,
) -> tuple[dict[str, Any], str, str | None]:
    """The checked record of normalized data or a normalized file, with the name errors use
    for it and the file's location (None for data in memory). :class:`InputError` when the
    schema carries no record."""
    location = None
    if isinstance(source, (str, os.PathLike)):
        schema = file_schema(source)
        where = str(source)
        location = os.fspath(source)
    else:
        schema = source if isinstance(source, pa.Schema) else source.schema
        where = "the data"
    if not is_record(schema.metadata):
        raise InputError(
            f"{where}: has no streamnorm normalization record in its schema metadata; "
            "give the statistics with --stats / Normalizer.from_stats"
        )
    found = read_record(schema, where)
    refuse_online(found, where)
    return found, where, location


def refuse_online(record: dict[str, Any], where: str) -> None:
    """An :class:`InputError` when ``record`` is that of online normalization, whose data no
    one set of statistics can undo or reproduce."""
    if "online" in record:
        raise InputError(f"{where}: was normalized online (each batch with the statistics of "
                         "the rows up to it), so no one set of statistics undoes or repeats it; "
                         "keep the original data, and take the final statistics from "
                         "`normalize --online -o STATS` (or a Parquet output's footer)")


def stats_file_beside(location: Any, name: str) -> Any:
    """The statistics file ``name`` in the directory of ``location`` (a path or URI)."""
    if isinstance(location, str) and is_uri(location):
        return location.rsplit("/", 1)[0] + "/" + name
    return Path(location).parent / name


def recorded_stats(record: dict[str, Any], where: str, location: Any) -> FeatureStats:
    """The statistics of a batch-mode record: inline JSON (``stats``), inline Arrow IPC
    (``stats_arrow``, base64) or a statistics file beside the normalized file (``stats_file``,
    found from ``location``, the normalized file's path; None when only a schema is known)."""
    with naming(f"{where}: its normalization record"):
        if "stats" in record:
            return FeatureStats.from_dict(record["stats"])
        if "stats_arrow" in record:
            text = record["stats_arrow"]
            try:
                blob = base64.b64decode(text.encode("ascii"), validate=True)
            except (AttributeError, UnicodeEncodeError, binascii.Error):
                raise StatsFileError(f"field 'stats_arrow' is not base64 text; {_FIX_RECORD}"
                                     ) from None
            return FeatureStats.from_arrow(decode_ipc(blob))
    name = record["stats_file"]
    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        raise StatsFileError(f"{where}: its normalization record: field 'stats_file' is "
                             f"{show(name)}, not a file name; {_FIX_RECORD}")
    if location is None:
        raise InputError(f"{where}: its statistics are in the file {name} beside it; give the "
                         "normalized file's path (Normalizer.from_metadata(path)) or --stats")
    path = stats_file_beside(location, name)
    if isinstance(path, Path) and not path.is_file():
        raise InputError(f"{where}: its statistics file {path} is missing; keep it beside the "
                         "normalized file, or give the statistics with --stats")
    return FeatureStats.load(path)


def stats_location(stats: str | os.PathLike) -> Any:
    """Where statistics given as a file are: a ``Path``, or the string of an object-store URI
    (``Path()`` would break ``s3://``)."""
    text = os.fspath(stats)
    return text if is_uri(text) else Path(text)


def holds_record(stats: str | os.PathLike) -> bool:
    """Whether the file ``stats`` is normalized data carrying a record rather than a statistics
    file; a ``.json`` file is never opened for this."""
    if os.fspath(stats).lower().endswith(".json") or is_stream_location(stats):
        return False  # a stream is read once, by the loader (statistics only)
    return is_record(file_schema(stats_location(stats)).metadata)
