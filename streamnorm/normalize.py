"""Normalization of Arrow data: per feature (BatchNorm-style) or per sample (LayerNorm / RMSNorm).

:class:`Normalizer` works on record batches and tables in memory; :func:`normalize_file`
streams a whole Arrow IPC or Parquet file through it into another, atomically.

Modes (DESIGN §3, §4):

``"batch"``
    each chosen column ``x`` becomes ``(x - mean) / sqrt(var + eps)`` with the column's mean
    and variance (``ddof``) over the data given to :meth:`Normalizer.fit`; ``eps`` defaults to
    0 and a constant or near-constant column (scikit-learn's rule, see
    :meth:`FeatureStats.scale`) is scaled by 1, so constants become 0, not NaN. The scale is
    computed without overflow, so finite data of any magnitude normalizes to finite values.
    Statistics holding ±inf are refused (:class:`~streamnorm.errors.NonFiniteError`) unless
    ``inf="skip"``, which leaves ±inf out of the statistics and passes them through as ±inf.
``"layer"``
    each row becomes ``(x - mean_r) / sqrt(var_r + eps)`` with its own mean and variance
    (``ddof``, default 0 as in ``torch.nn.functional.layer_norm``) over the numeric scalar
    columns taken together; each FixedSizeList column is normalized within itself, vector by
    vector. ``eps`` defaults to 1e-5.
``"rms"``
    as ``"layer"`` but ``x / sqrt(mean_r(x²) + eps)`` (``torch.nn.functional.rms_norm``
    without weight; note torch's own default ``eps`` is the dtype's machine epsilon, ours is
    1e-5 as for layer norm).

Whatever the mode: computation in float64, float32 columns stay float32 (rounded once),
every other numeric column becomes float64; nulls stay null (the validity bitmap is reused);
non-numeric and unchosen columns pass through unchanged; the schema order is kept; and the
output schema carries, under the metadata key ``streamnorm``, a JSON record of the mode, eps,
ddof, columns and (batch mode) the full statistics, so :meth:`Normalizer.from_metadata` can
undo a normalized file without the statistics file. NaN values are skipped by the statistics
(``nan="skip"``) and stay NaN; with ``nan="propagate"`` a NaN poisons its column (batch) or
its row (layer / rms). In every mode a zero scale (a constant row with ``eps=0``) is replaced
by 1, and statistics that are NaN (no valid value, or ``count <= ddof``) give NaN outputs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pyarrow.types as pat

from . import columns as cols
from . import io
from . import sources, statsfile
from .errors import InputError, NonFiniteError, SchemaError, StatsFileError
from .kernels import backend
from .progress import Progress, progress_bar
from .stats import FeatureStats, _naming, scalar_row_moments, vector_row_moments

Mode = Literal["batch", "layer", "rms"]
MODES: tuple[str, ...] = ("batch", "layer", "rms")
#: Schema metadata key under which the normalization record is stored.
METADATA_KEY = b"streamnorm"
_RECORD_VERSION = 1
_DEFAULT_EPS = {"batch": 0.0, "layer": 1e-5, "rms": 1e-5}
#: Grouped (``by=``) statistics go into an output file's metadata (Arrow IPC, base64) up to
#: this many bytes of state; larger ones into a statistics file beside the output, which the
#: metadata names. Parquet keeps schema metadata twice (key-value and in ARROW:schema), so an
#: inline state costs about 3x this in the file.
INLINE_STATS_BYTES = 256 * 1024
#: Suffix of the statistics file written beside a normalized output: ``out.parquet.stats.arrow``.
STATS_FILE_SUFFIX = ".stats.arrow"
_FIX_RECORD = "normalize the data again, or give the statistics with --stats"


# --------------------------------------------------------------------------- Arrow helpers


def output_type(arrow_type: pa.DataType) -> pa.DataType:
    """The type a numeric column has once normalized: float32 stays float32, else float64.

    >>> output_type(pa.float32()), output_type(pa.int16()), output_type(pa.float16())
    (DataType(float), DataType(double), DataType(double))
    """
    if pat.is_dictionary(arrow_type):
        return output_type(arrow_type.value_type)
    return pa.float32() if pat.is_float32(arrow_type) else pa.float64()


def _validity_buffer(bitmap: np.ndarray, bit_offset: int, length: int) -> pa.Buffer:
    """A validity buffer for ``length`` values starting at bit ``bit_offset`` of ``bitmap``.

    Zero-copy when the offset is a whole number of bytes, else the bits are realigned (one
    pass over ``length / 8`` bytes, never over the bits before the offset).
    """
    first = bit_offset // 8
    shift = bit_offset % 8
    if shift == 0:
        return pa.py_buffer(bitmap[first : first + (length + 7) // 8])
    stop = (bit_offset + length + 7) // 8
    bits = np.unpackbits(bitmap[first:stop], bitorder="little")[shift : shift + length]
    return pa.py_buffer(np.packbits(bits, bitorder="little"))


def _float_array(
    values: np.ndarray, arrow_type: pa.DataType, bitmap: np.ndarray, bit_offset: int,
    null_count: int,
) -> pa.Array:
    """Wrap a float32/float64 numpy array (zero-copy) with the given nulls as an Arrow array."""
    length = int(values.shape[0])
    validity = _validity_buffer(bitmap, bit_offset, length) if null_count else None
    return pa.Array.from_buffers(
        arrow_type, length, [validity, pa.py_buffer(values)], null_count=null_count
    )


def _map_columns(
    columns: dict[str, pa.Array], plan: dict[str, tuple[float, float]],
    types: dict[str, pa.DataType], kernels: Any, inverse: bool,
) -> dict[str, pa.Array]:
    """``(x - center) / scale`` (``x * scale + center`` if ``inverse``) per scalar column, nulls
    kept. Columns sharing (input dtype, output type) go through one ``normalize_columns`` call
    when the backend has it, else through ``normalize_column`` one by one."""
    from numba.typed import List

    many = getattr(kernels, "denormalize_columns" if inverse else "normalize_columns", None)
    one = kernels.denormalize_column if inverse else kernels.normalize_column
    result: dict[str, pa.Array] = {}
    groups: dict[tuple[np.dtype, pa.DataType], list[tuple[str, cols.ColumnView]]] = {}
    for name, column in columns.items():
        if isinstance(column, pa.ChunkedArray):  # pragma: no cover - batches hold plain arrays
            column = column.combine_chunks()
        if len(column) == 0:
            result[name] = pa.array([], type=types[name])
            continue
        view = next(cols.column_views(column))
        center, scale = plan[name]
        if abs(center) > _HUGE or scale > _HUGE:
            out = _map_halved(view.values, center, scale, inverse)
            out = out.astype(types[name].to_pandas_dtype(), copy=False)
            result[name] = _float_array(out, types[name], view.validity, view.bit_offset,
                                        view.null_count)
            continue
        groups.setdefault((view.values.dtype, types[name]), []).append((name, view))
    for (_, arrow_type), members in groups.items():
        outs = [np.empty(len(v), dtype=arrow_type.to_pandas_dtype()) for _, v in members]
        centers = np.array([plan[name][0] for name, _ in members], dtype=np.float64)
        scales = np.array([plan[name][1] for name, _ in members], dtype=np.float64)
        if many is not None:
            many(List([v.values for _, v in members]), centers, scales, List(outs))
        else:
            for (_, v), out, center, scale in zip(members, outs, centers, scales):
                one(v.values, float(center), float(scale), out)
        for (name, v), out in zip(members, outs):
            result[name] = _float_array(out, arrow_type, v.validity, v.bit_offset, v.null_count)
    return result


#: Centers or scales beyond this may make ``x - center`` (``y * scale``) overflow for values
#: of the fitted data: std >= max|x - mean| / sqrt(n), so with n < 2**64 such an overflow
#: needs a scale above 2**(1024 - 32) or a center near float64's limit.
_HUGE = 2.0**960


def _map_halved(values: np.ndarray, center: float, scale: float, inverse: bool) -> np.ndarray:
    """:func:`_map_columns`'s formula for a column of huge values, in float64: every operand
    halved (exact), so ``x - center`` (``y * scale``) cannot overflow; the same rounding as the
    plain formula wherever that one does not overflow (values below 2**-1021 aside)."""
    x = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if inverse:
            return (x * (scale * 0.5) + center * 0.5) * 2.0
        return (x * 0.5 - center * 0.5) / (scale * 0.5)


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    """A record batch with no rows and the given schema."""
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)


# --------------------------------------------------------------------------- scales


def check_finite_stats(stats: FeatureStats, names: Sequence[str] | None = None) -> None:
    """Raise :class:`NonFiniteError` naming every column (of ``names``, default all) whose
    statistics hold ±inf: normalizing with them would turn every value of the column into NaN.

    Columns whose statistics are NaN for another reason (no value, ``count <= ddof``, NaN
    under ``nan="propagate"``) are not refused: their outputs are NaN by documented choice.
    """
    k = len(stats.columns)

    def per_column(values: np.ndarray) -> np.ndarray:  # (keys, columns): one row ungrouped
        return np.reshape(values, (-1, k))

    counted = per_column(stats.inf_count).sum(axis=0)
    if stats.inf == "skip":
        counted[:] = 0  # skipped: they are not in the statistics
    infinite = np.isinf(per_column(stats.mean)).any(axis=0) | (counted > 0)
    position = {name: j for j, name in enumerate(stats.columns)}
    chosen = stats.columns if names is None else names
    bad = [position[n] for n in chosen if infinite[position[n]]]
    if not bad:
        return
    parts = []
    for j in bad:
        signs = [sign for sign, extreme in (("+inf", per_column(stats.max)[:, j]),
                                            ("-inf", per_column(stats.min)[:, j]))
                 if np.any(extreme == float(sign))]
        held = f"{int(counted[j])} ±inf" if counted[j] else "±inf"
        parts.append(f"{stats.columns[j]!r} ({held}" + (f": {', '.join(signs)})" if signs else ")"))
    raise NonFiniteError(
        f"cannot normalize column(s) {', '.join(parts)}: their statistics are not finite, so "
        "every normalized value would be NaN; skip the infinities with inf='skip' (CLI: "
        "--inf skip; the ±inf then pass through unchanged; statistics given with --stats must "
        "come from `streamnorm stats --inf skip`), or remove them"
    )


def _batch_center_scale(
    stats: FeatureStats, names: Sequence[str], eps: float, ddof: int
) -> dict[str, tuple[float, float]]:
    """``{column: (mean, sqrt(var + eps))}``; constant and near-constant columns scaled by 1
    (:meth:`FeatureStats.scale`). Statistics holding ±inf are a :class:`NonFiniteError`."""
    check_finite_stats(stats, names)
    index = {name: j for j, name in enumerate(stats.columns)}
    mean = stats.mean
    scale = stats.scale(ddof, eps)
    return {name: (float(mean[index[name]]), float(scale[index[name]])) for name in names}


def _row_center_scale(
    mode: str, count: np.ndarray, mean: np.ndarray, m2: np.ndarray, eps: float, ddof: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (center, scale) arrays, shape (n_rows,), from per-row (count, mean, m2).

    layer: ``(mean, sqrt(m2 / (count - ddof) + eps))``; rms: ``(0, sqrt(mean(x²) + eps))`` with
    ``mean(x²) = m2 / count + mean²`` (a sum of two non-negative terms, so no cancellation).
    A zero scale becomes 1; rows with ``count <= ddof`` (layer) or no value get NaN.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        if mode == "layer":
            denominator = (count - ddof).astype(np.float64)
            var = np.where(denominator > 0, m2 / np.where(denominator > 0, denominator, 1.0),
                           np.nan)
            center = mean.astype(np.float64, copy=True)
            scale = np.sqrt(var + eps)
        else:
            mean_square = m2 / count + mean * mean
            center = np.zeros(len(count))
            center[count == 0] = np.nan
            scale = np.sqrt(mean_square + eps)
    scale[scale == 0.0] = 1.0
    return center, scale


def check_batch_columns(schema: pa.Schema, names: Sequence[str]) -> None:
    """Raise :class:`SchemaError` unless every name is a scalar numeric column of ``schema``."""
    for name in names:
        field_type = cols.field_type(schema, name)
        if cols.is_vector(field_type):
            raise SchemaError(
                f"column {name!r} is a vector column ({field_type}); per-feature statistics take "
                "scalar columns: normalize vectors with mode 'layer' or 'rms'"
            )
        if not cols.is_numeric(field_type):
            raise SchemaError(cols.why_not_numeric(name, field_type))


def _row_nan_mask(arrays: Iterable[pa.Array], n_rows: int) -> np.ndarray:
    """Rows holding a NaN in any of ``arrays`` (scalar columns), as a bool array (n_rows,)."""
    mask = np.zeros(n_rows, dtype=bool)
    for array in arrays:
        if pat.is_dictionary(array.type):
            array = array.dictionary_decode()
        if pat.is_floating(array.type):
            isnan = np.asarray(array.is_nan().fill_null(False).to_numpy(zero_copy_only=False))
            mask |= isnan
    return mask


def _vector_nan_mask(column: pa.Array) -> np.ndarray:
    """Rows of a FixedSizeList column holding a NaN inside their vector."""
    width = column.type.list_size
    flat = column.flatten() if column.null_count == 0 else column.values.slice(
        column.offset * width, len(column) * width
    )
    if not pat.is_floating(flat.type):
        return np.zeros(len(column), dtype=bool)
    isnan = np.asarray(flat.is_nan().fill_null(False).to_numpy(zero_copy_only=False))
    return isnan.reshape(len(column), width).any(axis=1)


# --------------------------------------------------------------------------- the record


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def _is_record(metadata: dict[bytes, bytes] | None) -> bool:
    """Whether schema metadata holds a Normalizer record (not a FeatureStats table's)."""
    if not metadata or METADATA_KEY not in metadata:
        return False
    try:
        return json.loads(metadata[METADATA_KEY]).get("kind") == "Normalizer"
    except (ValueError, AttributeError, RecursionError):
        return False


def _read_record(schema: pa.Schema, where: str) -> dict[str, Any]:
    """The checked normalization record of ``schema`` (whose metadata :func:`_is_record`
    accepted): a :class:`StatsFileError` naming ``where`` and the field when it is not one
    streamnorm wrote."""
    with _naming(where):
        record = statsfile.parse_json(schema.metadata[METADATA_KEY], "its normalization record")
    version = record.get("version", _RECORD_VERSION)
    if not statsfile.is_int(version) or version > _RECORD_VERSION:
        raise InputError(f"{where}: normalized by a newer streamnorm; upgrade streamnorm")
    problem = _record_problem(record)
    if problem is not None:
        raise StatsFileError(f"{where}: its normalization record: {problem}; {_FIX_RECORD}")
    return record


def _record_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with the fields of a normalization record; None if nothing."""
    show = statsfile.show
    eps, ddof, mode, nan = (record.get("eps"), record.get("ddof", 0), record.get("mode"),
                            record.get("nan", "skip"))
    if mode not in MODES:
        return f"field 'mode' is {show(mode)}, not one of {MODES}"
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < np.inf:
        return f"field 'eps' is {show(eps)}, not a finite number >= 0"
    if not statsfile.is_int(ddof) or ddof < 0:
        return f"field 'ddof' is {show(ddof)}, not a whole number >= 0"
    if nan not in ("skip", "propagate"):
        return f"field 'nan' is {show(nan)}, not 'skip' or 'propagate'"
    if record.get("inf", "error") not in ("error", "skip"):
        return f"field 'inf' is {show(record.get('inf'))}, not 'error' or 'skip'"
    if mode == "batch" and not {"stats", "stats_arrow", "stats_file"} & set(record):
        return "it holds no statistics"
    return (statsfile.names_problem(record, "columns")
            or statsfile.names_problem(record, "by", empty=False))


def _stats_file_beside(location: Any, name: str) -> Any:
    """The statistics file ``name`` in the directory of ``location`` (a path or URI)."""
    if isinstance(location, str) and sources.is_uri(location):
        return location.rsplit("/", 1)[0] + "/" + name
    return Path(location).parent / name


def _recorded_stats(record: dict[str, Any], where: str, location: Any) -> FeatureStats:
    """The statistics of a batch-mode record: inline JSON (``stats``), inline Arrow IPC
    (``stats_arrow``, base64) or a statistics file beside the normalized file (``stats_file``,
    found from ``location``, the normalized file's path; None when only a schema is known)."""
    with _naming(f"{where}: its normalization record"):
        if "stats" in record:
            return FeatureStats.from_dict(record["stats"])
        if "stats_arrow" in record:
            text = record["stats_arrow"]
            try:
                blob = base64.b64decode(text.encode("ascii"), validate=True)
            except (AttributeError, UnicodeEncodeError, binascii.Error):
                raise StatsFileError(f"field 'stats_arrow' is not base64 text; {_FIX_RECORD}"
                                     ) from None
            return FeatureStats.from_arrow(statsfile.decode_ipc(blob))
    name = record["stats_file"]
    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        raise StatsFileError(f"{where}: its normalization record: field 'stats_file' is "
                             f"{statsfile.show(name)}, not a file name; {_FIX_RECORD}")
    if location is None:
        raise InputError(f"{where}: its statistics are in the file {name} beside it; give the "
                         "normalized file's path (Normalizer.from_metadata(path)) or --stats")
    path = _stats_file_beside(location, name)
    if isinstance(path, Path) and not path.is_file():
        raise InputError(f"{where}: its statistics file {path} is missing; keep it beside the "
                         "normalized file, or give the statistics with --stats")
    return FeatureStats.load(path)


def _map_batches(
    data: io.Source,
    per_batch: Callable[[pa.RecordBatch], pa.RecordBatch],
    schema_of: Callable[[pa.Schema], pa.Schema],
    verb: str,
) -> pa.RecordBatch | pa.Table:
    """Apply ``per_batch`` to every batch of ``data``: a RecordBatch gives a RecordBatch,
    anything else a Table whose schema is ``schema_of(input schema)``."""
    if isinstance(data, pa.RecordBatch):
        return per_batch(data)
    schema, batches = io.schema_and_batches(data)
    out = [per_batch(batch) for batch in batches]
    if schema is None:
        raise ValueError(f"cannot {verb} an empty iterable: it has no schema")
    out_schema = _widened(schema_of(schema), out)
    return pa.Table.from_batches(
        [b if b.schema.equals(out_schema) else b.cast(out_schema) for b in out], schema=out_schema
    )


def _widened(schema: pa.Schema, batches: list[pa.RecordBatch]) -> pa.Schema:
    """``schema`` with each column's type widened to hold every batch's (DESIGN §3: a float32
    batch and a float64 one give float64); :class:`SchemaError` when a type cannot widen."""
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


class Normalizer:
    """Normalize numeric columns of Arrow data per feature (batch) or per sample (layer / rms).

    Parameters
    ----------
    mode : ``"batch"`` (BatchNorm / StandardScaler), ``"layer"`` (LayerNorm) or ``"rms"``
        (RMSNorm); see the module docstring for the exact formulas.
    columns : columns to normalize; None for every numeric scalar column (batch mode), or
        every numeric scalar column plus every FixedSizeList column (layer / rms).
    eps : added to the variance (mean square for rms) under the square root; default 0 for
        batch, 1e-5 for layer and rms.
    ddof : delta degrees of freedom of the variance (batch and layer; rms ignores it).
    nan : ``"skip"`` (NaN ignored by the statistics, stays NaN) or ``"propagate"``.
    inf : ``"error"`` (default): batch mode refuses statistics that hold ±inf (they would make
        every value of the column NaN) with a :class:`~streamnorm.errors.NonFiniteError`
        naming the columns; ``"skip"``: the statistics skip ±inf like NaN (counted in
        ``stats.inf_count``) and ±inf values pass through the transform unchanged.
    target : ``"cpu"`` or ``"cuda"``; default ``$STREAMNORM_TARGET`` or ``"cpu"``.
    by : key column(s), batch mode only: fit one set of statistics per key
        (``FeatureStats(by=...)``) and normalize each row with its key's; rows whose key
        was not seen in ``fit`` come out null.

    Examples
    --------
    >>> import pyarrow as pa, streamnorm as sn
    >>> t = pa.table({"x": [1.0, 2.0, 3.0, None], "tag": ["a", "b", "c", "d"]})
    >>> norm = sn.Normalizer().fit(t)
    >>> out = norm.transform(t)
    >>> [round(v, 6) if v is not None else None for v in out["x"].to_pylist()]
    [-1.224745, 0.0, 1.224745, None]
    >>> norm.inverse_transform(out)["x"].to_pylist()
    [1.0, 2.0, 3.0, None]
    >>> rows = pa.table({"a": [1.0, 4.0], "b": [3.0, 4.0]})
    >>> sn.Normalizer("layer", eps=0).transform(rows).to_pydict()
    {'a': [-1.0, 0.0], 'b': [1.0, 0.0]}
    """

    def __init__(
        self,
        mode: Mode = "batch",
        columns: Sequence[str] | None = None,
        eps: float | None = None,
        ddof: int = 0,
        nan: Literal["skip", "propagate"] = "skip",
        target: str | None = None,
        by: str | Sequence[str] | None = None,
        inf: Literal["error", "skip"] = "error",
    ) -> None:
        self.mode = _check_mode(mode)
        self.by = [by] if isinstance(by, str) else (list(by) if by is not None else None)
        if self.by is not None and self.mode != "batch":
            raise ValueError(f"by= (per-key statistics) needs mode='batch', not {mode!r}")
        if isinstance(columns, str):
            columns = [columns]
        self.columns = list(columns) if columns is not None else None
        self.eps = float(_DEFAULT_EPS[mode] if eps is None else eps)
        if not self.eps >= 0.0:
            raise ValueError(f"eps must be a non-negative number, got {eps!r}")
        self.ddof = int(ddof)
        if nan not in ("skip", "propagate"):
            raise ValueError(f"nan must be 'skip' or 'propagate', got {nan!r}")
        self.nan = nan
        if inf not in ("error", "skip"):
            raise ValueError(f"inf must be 'error' or 'skip', got {inf!r}")
        if inf == "skip" and self.by is not None:
            raise ValueError("inf='skip' is not supported with by= yet; remove the infinities "
                             "or drop by=")
        self.inf = inf
        self.target = target
        self._stats: FeatureStats | None = None
        self._record_json: str | None = None
        self._stats_file: str | None = None  # set by normalize_file: grouped stats beside it
        self._schema_cache: tuple[pa.Schema, pa.Schema, Any] | None = None

    def __repr__(self) -> str:
        return (
            f"Normalizer(mode={self.mode!r}, columns={self.columns}, eps={self.eps}, "
            f"ddof={self.ddof}, nan={self.nan!r})"
        )

    # ------------------------------------------------------------------ fitting
    @property
    def stats(self) -> FeatureStats | None:
        """The per-column statistics used in batch mode (None in layer / rms mode).

        Raises ``RuntimeError`` in batch mode before :meth:`fit` / :meth:`from_stats`.
        """
        if self.mode != "batch":
            return None
        return self._require_stats()

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`transform` can run (always True in layer / rms mode)."""
        return self.mode != "batch" or self._stats is not None

    def _require_stats(self) -> FeatureStats:
        if self._stats is None:
            raise RuntimeError(
                "this batch-mode Normalizer is not fitted: call fit(source) first, or build it "
                "with Normalizer.from_stats(...)"
            )
        return self._stats

    def _set_stats(self, stats: FeatureStats) -> None:
        self._stats = stats
        self._record_json = None
        self._schema_cache = None

    def fit(
        self, source: io.Source, batch_size: int | None = None, *, progress: Progress | None = None
    ) -> Normalizer:
        """Stream ``source`` once into the per-column statistics (batch mode); returns self.

        ``source`` is a path or any in-memory source (:mod:`streamnorm.io`). Layer and rms
        modes need no statistics: ``fit`` does nothing there. ``progress`` (optional) is told
        the rows and bytes of each batch. Statistics holding ±inf (with ``inf="error"``) are
        a :class:`~streamnorm.errors.NonFiniteError` naming the columns.
        """
        self._fit(source, batch_size, progress=progress)
        if self.mode == "batch":
            check_finite_stats(self._require_stats(), self.columns)
        return self

    def _fit(
        self, source: io.Source, batch_size: int | None = None, *, progress: Progress | None = None
    ) -> Normalizer:
        """:meth:`fit` without refusing non-finite statistics (``streamnorm stats`` reports
        them as they are)."""
        if self.mode != "batch":
            return self
        extra: dict[str, Any] = {"inf": "skip"} if self.inf == "skip" else {}
        stats = FeatureStats(self.columns, nan=self.nan, target=self.target, by=self.by, **extra)
        read = None if self.columns is None else [*self.columns, *(self.by or [])]
        schema, batches = io.schema_and_batches(source, read, batch_size)
        if schema is not None and self.columns is not None:
            check_batch_columns(schema, self.columns)
        seen = False
        for batch in batches:
            stats.update(batch)
            seen = True
            if progress is not None:
                progress.update(batch.num_rows, batch.nbytes)
        if not seen and schema is not None:
            stats.update(_empty_batch(schema))  # fixes the columns of a source without rows
        self._set_stats(stats)
        return self

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_stats(
        cls,
        stats: FeatureStats | str | os.PathLike,
        *,
        columns: Sequence[str] | None = None,
        eps: float | None = None,
        ddof: int | None = None,
        target: str | None = None,
    ) -> Normalizer:
        """A fitted batch-mode Normalizer from statistics computed elsewhere.

        ``stats`` is a :class:`FeatureStats`, a saved statistics file (``.json``, ``.arrow``,
        ``.parquet``), or a file this library normalized (its schema metadata holds the
        statistics: then ``eps``/``ddof``/``columns`` default to the ones it was made with).
        ``columns`` restricts normalization to some of the statistics' columns.
        """
        if not isinstance(stats, FeatureStats):
            text = os.fspath(stats)
            path: Any = text if sources.is_uri(text) else Path(text)  # Path() breaks s3://
            if not text.lower().endswith(".json"):
                schema = _file_schema(path)
                if _is_record(schema.metadata):
                    made = cls.from_metadata(path, target=target)
                    if made.mode != "batch":
                        raise InputError(
                            f"{path}: was normalized in {made.mode} mode, which has no "
                            "per-column statistics; give a batch-mode file or a stats file"
                        )
                    eps = made.eps if eps is None else eps
                    ddof = made.ddof if ddof is None else ddof
                    columns = made.columns if columns is None else columns
                    stats = made._require_stats()
                else:
                    stats = FeatureStats.load(path)
            else:
                stats = FeatureStats.load(path)
        if columns is not None:
            columns = [columns] if isinstance(columns, str) else list(columns)
            unknown = [c for c in columns if c not in stats.columns]
            if unknown:
                raise SchemaError(
                    f"column(s) {unknown} are not in the statistics (they cover "
                    f"{stats.columns}); compute statistics over them or fix columns=[...] / -c"
                )
        norm = cls(
            "batch", columns=columns, eps=eps, ddof=ddof or 0, nan=stats.nan, target=target,
            inf="skip" if stats.inf == "skip" else "error",
            by=getattr(stats, "by", None),
        )
        norm._set_stats(stats)
        return norm

    @classmethod
    def from_metadata(
        cls, source: pa.Schema | pa.RecordBatch | pa.Table | str | os.PathLike,
        *, target: str | None = None,
    ) -> Normalizer:
        """The Normalizer recorded in the schema metadata of normalized data (or a file).

        Raises :class:`InputError` when the schema carries no ``streamnorm`` record.
        """
        location = None
        if isinstance(source, (str, os.PathLike)):
            schema = _file_schema(source)
            where = str(source)
            location = os.fspath(source)
        else:
            schema = source if isinstance(source, pa.Schema) else source.schema
            where = "the data"
        if not _is_record(schema.metadata):
            raise InputError(
                f"{where}: has no streamnorm normalization record in its schema metadata; "
                "give the statistics with --stats / Normalizer.from_stats"
            )
        record = _read_record(schema, where)
        norm = cls(
            record["mode"], columns=record.get("columns"), eps=record["eps"],
            ddof=record.get("ddof", 0), nan=record.get("nan", "skip"), target=target,
            inf=record.get("inf", "error"),
            by=record.get("by"),
        )
        if record["mode"] == "batch":
            norm._set_stats(_recorded_stats(record, where, location))
        return norm

    def record(self) -> dict[str, Any]:
        """The JSON-ready record written to output metadata: mode, eps, ddof, nan, columns,
        and (batch mode) the statistics: as :meth:`FeatureStats.to_dict` gives them, or for
        grouped statistics as Arrow IPC (``stats_arrow``, base64; much smaller than JSON) or,
        in a file written by :func:`normalize_file` when they are large, the name of the
        statistics file beside it (``stats_file``)."""
        record: dict[str, Any] = {
            "version": _RECORD_VERSION, "kind": "Normalizer", "mode": self.mode,
            "eps": self.eps, "ddof": self.ddof, "nan": self.nan, "columns": self.columns,
        }
        if self.inf != "error":
            record["inf"] = self.inf
        if self.by is not None:
            record["by"] = self.by
        if self.mode != "batch":
            return record
        stats = self._require_stats()
        if self.by is None:
            record["stats"] = stats.to_dict()
        elif self._stats_file:
            record["stats_file"] = self._stats_file
        else:  # compact, and keeps keys JSON cannot (dates, binary)
            blob = statsfile.encode_ipc(stats.to_arrow())
            record["stats_arrow"] = base64.b64encode(blob).decode("ascii")
        return record

    def _record_text(self) -> str:
        if self._record_json is None:
            self._record_json = json.dumps(self.record())
        return self._record_json

    # ------------------------------------------------------------------ planning
    def _batch_columns(self, schema: pa.Schema) -> list[str]:
        """Columns normalized in batch mode, checked against the schema and the statistics."""
        stats = self._require_stats()
        names = self.columns if self.columns is not None else stats.columns
        for name in names:
            field_type = cols.field_type(
                schema, name, of=" of the statistics", fix="use statistics of this data"
            )
            if not cols.is_numeric(field_type):
                raise SchemaError(cols.why_not_numeric(name, field_type))
            if name not in stats.columns:
                raise SchemaError(
                    f"column {name!r} is not in the statistics (they cover {stats.columns}); "
                    "fit on it or fix columns=[...] / -c"
                )
        return list(names)

    def _row_columns(self, schema: pa.Schema) -> tuple[list[str], list[str]]:
        """(scalar columns normalized together, vector columns each normalized alone)."""
        if self.columns is None:
            scalars = cols.numeric_column_names(schema)
            vectors = [f.name for f in schema if cols.is_vector(f.type)]
            return scalars, vectors
        scalars, vectors = [], []
        for name in self.columns:
            field_type = cols.field_type(schema, name)
            if cols.is_vector(field_type):
                vectors.append(name)
            elif cols.is_numeric(field_type):
                scalars.append(name)
            else:
                raise SchemaError(cols.why_not_numeric(name, field_type))
        return scalars, vectors

    def normalized_columns(self, schema: pa.Schema) -> list[str]:
        """The columns of ``schema`` this Normalizer changes, in schema order."""
        if self.mode == "batch":
            chosen = set(self._batch_columns(schema))
        else:
            scalars, vectors = self._row_columns(schema)
            chosen = set(scalars) | set(vectors)
        return [name for name in schema.names if name in chosen]

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The schema of transformed data: normalized columns retyped, metadata recorded."""
        return self._plan(schema)[0]

    def _plan(self, schema: pa.Schema) -> tuple[pa.Schema, Any]:
        cached = self._schema_cache
        if cached is not None and cached[0].equals(schema, check_metadata=True):
            return cached[1], cached[2]
        chosen = set(self.normalized_columns(schema))
        fields = []
        for f in schema:
            if f.name not in chosen:
                fields.append(f)
            elif cols.is_vector(f.type):
                value_field = f.type.value_field
                new_value = value_field.with_type(output_type(value_field.type))
                fields.append(f.with_type(pa.list_(new_value, f.type.list_size)))
            else:
                fields.append(f.with_type(output_type(f.type)))
        metadata = dict(schema.metadata or {})
        metadata[METADATA_KEY] = self._record_text().encode()
        out_schema = pa.schema(fields, metadata=metadata)
        if self.mode == "batch" and self.by is not None:
            check_finite_stats(self._require_stats(), [n for n in schema.names if n in chosen])
            plan: Any = {n: None for n in schema.names if n in chosen}  # per key, per row
        elif self.mode == "batch":
            plan = _batch_center_scale(
                self._require_stats(), [n for n in schema.names if n in chosen], self.eps,
                self.ddof,
            )
        else:
            plan = self._row_columns(schema)
        self._schema_cache = (schema, out_schema, plan)
        return out_schema, plan

    # ------------------------------------------------------------------ transform
    def transform(self, data: io.Source) -> pa.RecordBatch | pa.Table:
        """Normalize ``data``: a RecordBatch gives a RecordBatch, anything else a Table.

        Same columns in the same order; normalized columns become float64 (float32 stays
        float32); nulls stay null; other columns pass through unchanged.
        """
        return _map_batches(data, self._transform_batch, self.output_schema, "transform")

    def transform_batches(
        self, source: io.Source, batch_size: int | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Normalize ``source`` lazily, one output batch per input batch (bounded memory)."""
        _, batches = io.schema_and_batches(source, batch_size=batch_size)
        for batch in batches:
            yield self._transform_batch(batch)

    def _transform_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if not self.is_fitted:
            self._require_stats()
        out_schema, plan = self._plan(batch.schema)
        kernels = backend(self.target)
        if self.mode == "batch" and self.by is not None:
            arrays = self._grouped_arrays(batch, out_schema, list(plan), inverse=False)
        elif self.mode == "batch":
            arrays = self._batch_arrays(batch, out_schema, plan, kernels, inverse=False)
        else:
            arrays = self._row_arrays(batch, out_schema, plan, kernels)
        return pa.RecordBatch.from_arrays(arrays, schema=out_schema)

    def _batch_arrays(
        self, batch: pa.RecordBatch, out_schema: pa.Schema,
        plan: dict[str, tuple[float, float]], kernels: Any, inverse: bool,
    ) -> list[pa.Array]:
        """Map the planned columns of a batch, one kernel call per (input, output) dtype pair."""
        mapped = _map_columns(
            {name: batch.column(name) for name in plan}, plan,
            {name: out_schema.field(name).type for name in plan}, kernels, inverse,
        )
        return [mapped.get(f.name, column) for f, column in zip(out_schema, batch.columns)]

    def _grouped_arrays(
        self, batch: pa.RecordBatch, out_schema: pa.Schema, names: list[str], inverse: bool
    ) -> list[pa.Array]:
        """Batch mode with ``by=``: each row normalized with its key's statistics."""
        from .grouped import map_grouped

        mapped = map_grouped(
            self._require_stats(), batch,  # type: ignore[arg-type]
            {name: out_schema.field(name).type for name in names}, self.eps, self.ddof, inverse,
        )
        return [mapped.get(f.name, column) for f, column in zip(out_schema, batch.columns)]

    def _row_arrays(
        self, batch: pa.RecordBatch, out_schema: pa.Schema,
        plan: tuple[list[str], list[str]], kernels: Any,
    ) -> list[pa.Array]:
        scalars, vectors = plan
        replaced: dict[str, pa.Array] = {}
        if scalars and batch.num_rows:
            replaced.update(self._row_scalars(batch, scalars, out_schema, kernels))
        for name in vectors:
            column = batch.column(name)
            if len(column):
                replaced[name] = self._row_vector(column, out_schema.field(name).type, kernels)
        arrays = []
        for f, column in zip(out_schema, batch.columns):
            if f.name in replaced:
                arrays.append(replaced[f.name])
            elif f.type != column.type:  # a chosen column of an empty batch
                arrays.append(pa.array([], type=f.type))
            else:
                arrays.append(column)
        return arrays

    def _row_scalars(
        self, batch: pa.RecordBatch, names: list[str], out_schema: pa.Schema, kernels: Any
    ) -> dict[str, pa.Array]:
        """Normalize scalar columns ``names`` of a batch together, row by row."""
        from numba.typed import List

        fused = self._row_scalars_fused(batch, names, out_schema, kernels)
        if fused is not None:
            return fused
        count, mean, m2 = scalar_row_moments(batch, names, kernels)
        center, scale = _row_center_scale(self.mode, count, mean, m2, self.eps, self.ddof)
        if self.nan == "propagate":
            center[_row_nan_mask((batch.column(n) for n in names), batch.num_rows)] = np.nan
        views = {name: next(cols.column_views(batch.column(name))) for name in names}
        groups: dict[tuple[np.dtype, pa.DataType], list[str]] = {}
        for name in names:
            groups.setdefault((views[name].values.dtype, out_schema.field(name).type), []).append(
                name
            )
        result = {}
        for (_, arrow_type), group in groups.items():
            outs = [np.empty(batch.num_rows, dtype=arrow_type.to_pandas_dtype()) for _ in group]
            kernels.normalize_rows_columns(
                List([views[n].values for n in group]), center, scale, List(outs)
            )
            for name, out in zip(group, outs):
                v = views[name]
                result[name] = _float_array(out, arrow_type, v.validity, v.bit_offset, v.null_count)
        return result

    def _row_scalars_fused(
        self, batch: pa.RecordBatch, names: list[str], out_schema: pa.Schema, kernels: Any
    ) -> dict[str, pa.Array] | None:
        """:meth:`_row_scalars` in one fused kernel call (statistics and output per row tile,
        one read of the data) when the columns share one dtype and the backend has the
        kernel; None otherwise. The outputs share one 2-D allocation (huge pages, few faults)."""
        from numba.typed import List

        fused = getattr(kernels, "layer_norm_columns", None)
        out_types = {out_schema.field(name).type for name in names}
        if fused is None or len(out_types) != 1:
            return None
        views = [next(cols.column_views(batch.column(name))) for name in names]
        if len({v.values.dtype for v in views}) != 1:
            return None
        arrow_type = out_types.pop()
        out = np.empty((len(names), batch.num_rows), dtype=arrow_type.to_pandas_dtype())
        fused(List([v.values for v in views]), List([v.validity for v in views]),
              np.array([v.bit_offset for v in views], dtype=np.int64),
              np.array([v.has_validity for v in views], dtype=np.bool_),
              self.mode == "rms", self.eps, self.ddof, self.nan == "propagate", out)
        return {name: _float_array(out[k], arrow_type, v.validity, v.bit_offset, v.null_count)
                for k, (name, v) in enumerate(zip(names, views))}

    def _row_vector(
        self, column: pa.Array, out_type: pa.DataType, kernels: Any
    ) -> pa.Array:
        """Normalize each vector of a FixedSizeList array within itself."""
        count, mean, m2 = vector_row_moments(column, kernels)
        center, scale = _row_center_scale(self.mode, count, mean, m2, self.eps, self.ddof)
        if self.nan == "propagate":
            center[_vector_nan_mask(column)] = np.nan
        view = next(cols.vector_views(column))
        value_type = out_type.value_type
        out = np.empty(view.values.shape, dtype=value_type.to_pandas_dtype())
        kernels.normalize_rows_matrix(view.values, center, scale, out)
        child = _float_array(
            out.reshape(-1), value_type, view.value_validity, view.value_bit_offset,
            view.value_null_count,
        )
        mask = None if view.row_valid.all() else pa.array(~view.row_valid)
        return pa.FixedSizeListArray.from_arrays(child, type=out_type, mask=mask)

    # ------------------------------------------------------------------ inverse
    def inverse_transform(self, data: io.Source) -> pa.RecordBatch | pa.Table:
        """Undo a batch-mode :meth:`transform`: ``x = y * scale + mean`` per column.

        A RecordBatch gives a RecordBatch, anything else a Table. Restored columns are float64
        (float32 stays float32); the ``streamnorm`` metadata record is dropped. Layer and rms
        modes cannot be undone (the per-row statistics are not kept): ``ValueError``.
        """
        return _map_batches(data, self._inverse_batch, self._inverse_schema, "inverse-transform")

    def inverse_transform_batches(
        self, source: io.Source, batch_size: int | None = None
    ) -> Iterator[pa.RecordBatch]:
        """:meth:`inverse_transform` lazily, one output batch per input batch."""
        _, batches = io.schema_and_batches(source, batch_size=batch_size)
        for batch in batches:
            yield self._inverse_batch(batch)

    def _inverse_schema(self, schema: pa.Schema) -> pa.Schema:
        if self.mode != "batch":
            raise ValueError(
                f"mode {self.mode!r} cannot be inverted: each row's statistics are not kept; "
                "only batch-mode normalization has an inverse"
            )
        chosen = set(self._batch_columns(schema))
        fields = [f.with_type(output_type(f.type)) if f.name in chosen else f for f in schema]
        metadata = {k: v for k, v in (schema.metadata or {}).items() if k != METADATA_KEY}
        return pa.schema(fields, metadata=metadata or None)

    def _inverse_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        out_schema = self._inverse_schema(batch.schema)
        names = [n for n in batch.schema.names if n in set(self._batch_columns(batch.schema))]
        if self.by is not None:
            arrays = self._grouped_arrays(batch, out_schema, names, inverse=True)
            return pa.RecordBatch.from_arrays(arrays, schema=out_schema)
        plan = _batch_center_scale(self._require_stats(), names, self.eps, self.ddof)
        arrays = self._batch_arrays(batch, out_schema, plan, backend(self.target), inverse=True)
        return pa.RecordBatch.from_arrays(arrays, schema=out_schema)


# --------------------------------------------------------------------------- files


def _file_schema(path: str | os.PathLike) -> pa.Schema:
    """The Arrow schema of an IPC or Parquet file, without reading its data."""
    schema, batches = io.schema_and_batches(path)
    if hasattr(batches, "close"):
        batches.close()
    assert schema is not None
    return schema


def count_rows(path: Any) -> int | None:
    """Rows in a local Parquet or IPC file from its metadata; None for an IPC stream, and for
    anything but a local file (directory, glob, CSV / JSON lines, URI, DataSource): unknown."""
    if not sources.is_local_file(path):
        return None
    fmt = io.file_format(path)
    try:
        if fmt == "parquet":
            return int(pq.ParquetFile(path).metadata.num_rows)
        if fmt == "ipc-file":
            with pa.memory_map(str(path)) as source:
                reader = ipc.open_file(source)
                return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        return None
    return None


def check_destination(
    src: Any, dst: str | os.PathLike, *, check_format: bool = True
) -> Any:
    """Check ``dst`` can receive output from ``src``: a known data suffix (unless
    ``check_format`` is False), not an input nor where a later reading of ``src`` would find
    it (:func:`streamnorm.sources.check_output_not_input`), not a directory, in an existing
    directory.
    Raises :class:`InputError` naming the way out. Returns ``dst`` as a ``Path``, or as the
    string it is for an object-store URI (``s3://…``; only its suffix is checked)."""
    if sources.is_uri(os.fspath(dst)):
        if check_format:
            io.output_format(os.fspath(dst))
        return os.fspath(dst)
    dst_path = Path(dst)
    if check_format:
        io.output_format(dst_path)
    sources.check_output_not_input(src, dst_path)
    if dst_path.is_dir():
        raise InputError(f"{dst_path}: is a directory; give an output file name")
    parent = dst_path.parent if str(dst_path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(
            f"{dst_path}: cannot write there: {parent} is not an existing directory; create it "
            "or choose another output"
        )
    return dst_path


def _writer_options(
    dst: Any, compression: str | None, row_group_size: int | None, float32: bool
) -> dict[str, Any]:
    """:class:`io.BatchWriter` options, checked against the output format before any reading:
    a mismatch (``row_group_size`` for Arrow IPC, a codec the format lacks) is an
    :class:`InputError` naming the way out."""
    fmt = io.output_format(dst)
    try:
        io._check_codec(fmt, compression)
    except ValueError as exc:
        raise InputError(f"{dst}: {exc}; choose another compression") from None
    if row_group_size is not None:
        if fmt != "parquet":
            raise InputError(f"{dst}: row groups exist in Parquet only; drop the row group "
                             "size or write .parquet")
        if row_group_size < 1:
            raise InputError(f"row group size must be at least 1, got {row_group_size}")
    return {"compression": compression, "row_group_size": row_group_size, "float32": float32}


@dataclass
class FileResult:
    """What :func:`normalize_file` did: rows written, passes over the input, the Normalizer."""

    rows: int
    passes: int
    normalizer: Normalizer
    columns: list[str] = field(default_factory=list)


def _tracked(batches: Iterable[pa.RecordBatch], bar: Progress) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        yield batch
        bar.update(batch.num_rows, batch.nbytes)


def normalize_file(
    src: Any,
    dst: str | os.PathLike,
    mode: Mode = "batch",
    columns: Sequence[str] | None = None,
    stats: FeatureStats | str | os.PathLike | None = None,
    batch_size: int | None = None,
    eps: float | None = None,
    target: str | None = None,
    progress: bool = False,
    *,
    ddof: int = 0,
    nan: Literal["skip", "propagate"] = "skip",
    by: str | Sequence[str] | None = None,
    inf: Literal["error", "skip"] = "error",
    compression: str | None = None,
    row_group_size: int | None = None,
    float32: bool = False,
) -> FileResult:
    """Normalize an Arrow IPC / Parquet file into another, streaming with bounded memory.

    Batch mode reads ``src`` twice (fit, then transform) unless ``stats`` (a
    :class:`FeatureStats` or a statistics file) is given; layer / rms read it once. Formats
    follow the suffixes (DESIGN §3). The output is written to a temporary file beside ``dst``
    and renamed into place only on success, so an error or interrupt leaves no output and an
    existing ``dst`` untouched. An input without rows gives an output without rows and the
    output schema. ``progress=True`` draws a bar per pass on stderr.

    ``src`` may also be anything :func:`streamnorm.io.schema_and_batches` reads (a directory,
    glob, CSV / JSON lines file, object-store URI or :class:`~streamnorm.sources.DataSource`),
    all of it going into the one output ``dst`` (a path or URI). ``compression``,
    ``row_group_size`` are as in :class:`streamnorm.io.BatchWriter`; ``float32=True`` writes
    the normalized columns as float32 (every other column keeps its type). ``inf`` is as in
    :class:`Normalizer` (batch mode): by default statistics holding ±inf are refused before
    anything is written.

    Returns a :class:`FileResult`; the statistics used are in the output's schema metadata.
    """
    dst_path = check_destination(src, dst)
    writer_options = _writer_options(dst_path, compression, row_group_size, float32)
    schema = _file_schema(src)
    total = count_rows(src) if progress else None
    if mode == "batch" and stats is not None:
        norm = Normalizer.from_stats(stats, columns=columns, eps=eps, ddof=ddof, target=target)
        passes = 1
    else:
        if stats is not None:
            raise ValueError(f"stats apply to mode='batch' only, not mode={mode!r}")
        norm = Normalizer(mode, columns=columns, eps=eps, ddof=ddof, nan=nan, target=target,
                          by=by, inf=inf)
        passes = 2 if mode == "batch" else 1
    backend(target)  # fail early on an unusable target
    if norm.is_fitted:
        norm.normalized_columns(schema)  # bad columns fail before any reading
    if norm.mode == "batch" and stats is None:
        bar = progress_bar("fit", total, progress)
        try:
            norm.fit(src, batch_size=batch_size, progress=bar)
        finally:
            bar.close()
    side = _large_grouped_stats(norm)
    if float32:
        writer_options["float32"] = norm.normalized_columns(schema)
    rows = 0
    bar = progress_bar("normalize" if passes == 1 else "normalize (pass 2)", total, progress)
    try:
        with io.atomic_path(dst_path) as tmp, _stats_beside(norm, side, dst_path):
            out_schema = norm.output_schema(schema)
            with io.BatchWriter(tmp, out_schema, io.output_format(dst_path), **writer_options
                                ) as writer:
                _, batches = io.schema_and_batches(src, batch_size=batch_size)
                for batch in _tracked(batches, bar):
                    out = norm._transform_batch(batch)
                    if not out.schema.equals(out_schema, check_metadata=False):
                        raise SchemaError(
                            f"{src}: a batch has schema {batch.schema} unlike the file's; "
                            "re-create the file"
                        )
                    writer.write(out)
                    rows += out.num_rows
    finally:
        bar.close()
    return FileResult(rows, passes, norm, norm.normalized_columns(schema))


def _large_grouped_stats(norm: Normalizer) -> pa.Table | None:
    """The grouped statistics of ``norm`` as a table when too large for an output's metadata
    (see :data:`INLINE_STATS_BYTES`); None when they go inline (or there are none)."""
    if norm.mode != "batch" or norm.by is None:
        return None
    table = norm._require_stats().to_arrow()
    return table if table.nbytes > INLINE_STATS_BYTES else None


@contextlib.contextmanager
def _stats_beside(norm: Normalizer, table: pa.Table | None, dst: Any) -> Iterator[None]:
    """With ``table`` (large grouped statistics): write it to ``dst`` + :data:`STATS_FILE_SUFFIX`
    atomically, and have ``norm``'s record name that file while the output is written. Inside
    the output's own :func:`io.atomic_path`, so the statistics file is in place just before
    the output, and neither is left behind when writing fails."""
    if table is None:
        yield
        return
    side = f"{os.fspath(dst)}{STATS_FILE_SUFFIX}"
    side_path: Any = side if sources.is_uri(side) else Path(side)
    with io.atomic_path(side_path) as tmp:
        with io.BatchWriter(tmp, table.schema, "ipc-file", compression="zstd") as writer:
            for batch in table.to_batches():
                writer.write(batch)
        norm._stats_file = side_path.name if isinstance(side_path, Path) else side.rsplit("/")[-1]
        norm._record_json = norm._schema_cache = None
        try:
            yield
        finally:
            norm._stats_file = None  # later in-memory transforms record the statistics inline
            norm._record_json = norm._schema_cache = None


def inverse_file(
    src: Any,
    dst: str | os.PathLike,
    stats: FeatureStats | str | os.PathLike | None = None,
    batch_size: int | None = None,
    target: str | None = None,
    progress: bool = False,
    *,
    compression: str | None = None,
    row_group_size: int | None = None,
    float32: bool = False,
) -> FileResult:
    """Undo a batch-mode :func:`normalize_file`: read ``src`` (normalized), write ``dst``.

    Uses ``stats`` when given, else the record in ``src``'s schema metadata. Atomic like
    :func:`normalize_file`; output options as there (``float32=True`` narrows the restored
    columns only).
    """
    dst_path = check_destination(src, dst)
    writer_options = _writer_options(dst_path, compression, row_group_size, float32)
    schema = _file_schema(src)
    if _is_record(schema.metadata):
        recorded = _read_record(schema, str(src))
        if recorded["mode"] != "batch":
            raise InputError(
                f"{src}: was normalized in {recorded['mode']} mode, which cannot be inverted: "
                "each row's own statistics are not kept; keep the original data (only batch "
                "mode has an inverse)"
            )
    if stats is not None:
        norm = Normalizer.from_stats(stats, target=target)
        if _is_record(schema.metadata):
            norm.eps, norm.ddof = recorded["eps"], recorded.get("ddof", 0)
    else:
        location = os.fspath(src) if isinstance(src, (str, os.PathLike)) else None
        norm = Normalizer.from_metadata(location if location is not None else schema,
                                        target=target)
    out_schema = norm._inverse_schema(schema)
    if float32:
        writer_options["float32"] = norm.normalized_columns(schema)
    total = count_rows(src) if progress else None
    rows = 0
    bar = progress_bar("inverse", total, progress)
    try:
        with io.atomic_path(dst_path) as tmp:
            with io.BatchWriter(tmp, out_schema, io.output_format(dst_path), **writer_options
                                ) as writer:
                _, batches = io.schema_and_batches(src, batch_size=batch_size)
                for batch in _tracked(batches, bar):
                    out = norm._inverse_batch(batch)
                    writer.write(out)
                    rows += out.num_rows
    finally:
        bar.close()
    return FileResult(rows, 1, norm, norm.normalized_columns(schema))
