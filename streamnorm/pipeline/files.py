"""One source into one output file: :func:`normalize_file` and :func:`inverse_file`.

Both stream with bounded memory and write atomically: the output goes to a temporary file
beside the destination, renamed into place only on success, so an error or interrupt leaves
no output and an existing destination untouched. The destination and the writer options are
checked before any reading.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..arrow.formats import check_codec, file_format, output_format
from ..arrow.locations import is_local_file, is_uri
from ..arrow.open import schema_and_batches
from ..arrow.outputs import check_output_not_input
from ..arrow.parquet import PARQUET_BATCH_ROWS
from ..arrow.sinks import BatchWriter, atomic_path
from ..arrow.stdio import (
    check_rereadable,
    is_file_object,
    is_stdio,
    is_stream_location,
    is_stream_path,
    stream_format,
    stream_source,
    stream_source_at,
)
from ..errors import InputError, SchemaError
from ..kernels import backend
from ..normalize import affine, plan, record
from ..normalize.normalizer import Normalizer
from ..normalize.online import final_metadata
from ..normalize.plan import Mode
from ..progress import Progress, progress_bar
from ..state.features import FeatureStats


def count_rows(path: Any) -> int | None:
    """Rows in a local Parquet or IPC file from its metadata; None for an IPC stream, and for
    anything but a local file (directory, glob, CSV / JSON lines, URI, DataSource): unknown."""
    if is_stream_location(path) or not is_local_file(path):
        return None
    fmt = file_format(path)
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


def _one_pass_source(src: Any) -> Any:
    """``src`` ready for the several openings a file function makes: ``-`` as stdin's
    stream, a pipe or device path as its stream, an iterator as a reader over it (opening an
    iterator takes its first batch to learn the schema, which a second opening would then
    miss)."""
    if is_stdio(src):
        return stream_source()
    if is_stream_path(src):
        return stream_source_at(src)
    if isinstance(src, Iterator) and not is_file_object(src):
        schema, batches = schema_and_batches(src)
        if schema is not None:
            return pa.RecordBatchReader.from_batches(schema, batches)
    return src


def check_destination(
    src: Any, dst: str | os.PathLike, *, check_format: bool = True
) -> Any:
    """Check ``dst`` can receive output from ``src``: a known data suffix (unless
    ``check_format`` is False), not an input nor where a later reading of ``src`` would find
    it (:func:`streamnorm.arrow.outputs.check_output_not_input`), not a directory, in an existing
    directory.
    Raises :class:`InputError` naming the way out. Returns ``dst`` as a ``Path``, or as the
    string it is for an object-store URI (``s3://…``; only its suffix is checked), for
    ``-`` (stdout) or for a pipe or device path (written as a stream, like ``-``)."""
    if is_stream_location(dst):
        return os.fspath(dst)
    if is_uri(os.fspath(dst)):
        if check_format:
            output_format(os.fspath(dst))
        return os.fspath(dst)
    dst_path = Path(dst)
    if check_format:
        output_format(dst_path)
    check_output_not_input(src, dst_path)
    if dst_path.is_dir():
        raise InputError(f"{dst_path}: is a directory; give an output file name")
    parent = dst_path.parent if str(dst_path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(
            f"{dst_path}: cannot write there: {parent} is not an existing directory; create it "
            "or choose another output"
        )
    return dst_path


def writer_format(dst: Any, format: str | None = None) -> str:
    """The :class:`BatchWriter` format of ``dst``: by its suffix, or for ``-`` (stdout) and
    pipe or device paths by ``format`` (``"arrows"``, the default, ``"parquet"`` or
    ``"csv"``), which is for those only."""
    if is_stream_location(dst):
        return stream_format(format)
    if format is not None:
        raise InputError(f"{dst}: format= (--format) is for the output - (stdout) or a pipe "
                         "only; a file's suffix decides its format, drop --format")
    return output_format(dst)


def _writer_options(
    dst: Any, compression: str | None, row_group_size: int | None, float32: bool,
    fmt: str | None = None,
) -> dict[str, Any]:
    """:class:`BatchWriter` options, checked against the output format before any reading:
    a mismatch (``row_group_size`` for Arrow IPC, a codec the format lacks) is an
    :class:`InputError` naming the way out."""
    fmt = fmt or output_format(dst)
    if fmt == "csv" and compression is not None:
        raise InputError(f"{dst}: CSV output is not compressed here; drop --compression or "
                         "pipe it through a compressor")
    try:
        check_codec(fmt, compression)
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
    online: bool = False,
    momentum: float | None = None,
    warmup: int = 0,
    save_stats: str | os.PathLike | None = None,
    feature_range: tuple[float, float] | None = None,
    quantile_range: tuple[float, float] | None = None,
    format: str | None = None,
) -> FileResult:
    """Normalize an Arrow IPC / Parquet file into another, streaming with bounded memory.

    Batch and minmax modes (``feature_range`` as in :class:`Normalizer`) read ``src`` twice (fit, then transform) unless ``stats`` (a
    :class:`FeatureStats` or a statistics file) is given; layer / rms read it once. Formats
    follow the suffixes (docs/design.md §3). The output is written to a temporary file beside
    ``dst`` and renamed into place only on success, so an error or interrupt leaves no output
    and an existing ``dst`` untouched. An input without rows gives an output without rows and
    the output schema. ``progress=True`` draws a bar per pass on stderr.

    ``src`` may also be anything :func:`streamnorm.arrow.open.schema_and_batches` reads (a
    directory, glob, CSV / JSON lines file, object-store URI or
    :class:`~streamnorm.arrow.dataset.DataSource`), all of it going into the one output ``dst``
    (a path or URI). ``compression`` and ``row_group_size`` are as in
    :class:`streamnorm.arrow.sinks.BatchWriter`; ``float32=True`` writes the normalized columns
    as float32 (every other column keeps its type). ``inf`` is as in :class:`Normalizer` (batch
    mode): by default statistics holding ±inf are refused before anything is written.
    ``quantile_range`` is as in :class:`Normalizer` (mode ``"robust"``).

    ``online=True`` (batch mode) reads ``src`` once and normalizes each batch with the
    statistics of everything before it and itself (``momentum``, ``warmup`` as in
    :class:`Normalizer`; with ``stats``, the stream continues those); the statistics at the end go to ``save_stats`` (a statistics file,
    written just before the output is renamed into place) and, for Parquet, into the output's
    footer (:func:`~streamnorm.normalize.online.read_final_stats`).

    ``src`` ``-`` reads an Arrow IPC stream from stdin, and ``dst`` ``-`` writes to stdout in
    ``format`` (``"arrows"``, the default, ``"parquet"`` or ``"csv"``), each batch flushed as
    soon as it is computed (:mod:`streamnorm.arrow.stdio`). A source that can be read only
    once (stdin, a file object, a reader, an iterator) needs ``stats`` in batch mode.

    Returns a :class:`FileResult`; the statistics used are in the output's schema metadata.
    """
    src = _one_pass_source(src)
    dst_path = check_destination(src, dst)
    fmt = writer_format(dst_path, format)
    writer_options = _writer_options(dst_path, compression, row_group_size, float32, fmt)
    if mode in plan.PER_FEATURE_MODES and stats is None and not online:
        check_rereadable(src)
    schema = record.file_schema(src)
    total = count_rows(src) if progress else None
    if save_stats is not None and not online:
        raise ValueError("save_stats= saves the final statistics of online normalization; "
                         "pass online=True, or compute statistics with feature_stats")
    if affine.is_per_feature(mode) and stats is not None:
        norm = Normalizer.from_stats(stats, columns=columns, eps=eps, ddof=ddof, target=target,
                                     online=online, momentum=momentum, warmup=warmup,
                                     mode=mode, feature_range=feature_range,
                                     quantile_range=quantile_range)
        passes = 1
    else:
        if stats is not None:
            raise ValueError(f"stats apply to the per-feature modes {tuple(affine.CENTER_SCALE)}"
                             f" only, not mode={mode!r}")
        norm = Normalizer(mode, columns=columns, eps=eps, ddof=ddof, nan=nan, target=target,
                          by=by, inf=inf, online=online, momentum=momentum, warmup=warmup,
                          feature_range=feature_range, quantile_range=quantile_range)
        passes = 2 if affine.is_per_feature(mode) and not online else 1
    backend(target)  # fail early on an unusable target
    if norm.is_fitted:
        norm.normalized_columns(schema)  # bad columns fail before any reading
    if affine.is_per_feature(norm.mode) and stats is None and not online:
        bar = progress_bar("fit", total, progress)
        try:
            norm.fit(src, batch_size=batch_size, progress=bar)
        finally:
            bar.close()
    side = _large_grouped_stats(norm)
    if side is not None and is_stream_location(dst_path):
        raise InputError("the grouped statistics are too large for the stream's metadata and "
                         f"cannot go beside {'stdout' if is_stdio(dst_path) else dst_path}; "
                         "write to a file, or save them with "
                         "`streamnorm stats --by ... -o FILE` first")
    if float32:
        writer_options["float32"] = norm.normalized_columns(schema)
    rows = 0
    read_rows = batch_size
    if _split_batches(src, fmt, batch_size, row_group_size, online):
        read_rows, writer_options["row_group_size"] = SPLIT_BATCH_ROWS, PARQUET_BATCH_ROWS
    bar = progress_bar("normalize" if passes == 1 else "normalize (pass 2)", total, progress)
    try:
        with atomic_path(dst_path) as tmp, _stats_beside(norm, side, dst_path):
            out_schema = norm.output_schema(schema)
            with BatchWriter(tmp, out_schema, fmt, **writer_options) as writer:
                _, batches = schema_and_batches(src, batch_size=read_rows)
                outs = (norm.transform_batches(_tracked(batches, bar)) if online
                        else (norm.transform(batch) for batch in _tracked(batches, bar)))
                for out in outs:
                    if not out.schema.equals(out_schema, check_metadata=False):
                        raise SchemaError(
                            f"{src}: a batch has schema {out.schema} unlike the file's; "
                            "re-create the file"
                        )
                    writer.write(out)
                    rows += out.num_rows
                if norm.online_state is not None:
                    writer.footer_metadata.update(final_metadata(norm.online_state))
            if save_stats is not None:
                norm.stats.save(save_stats)  # type: ignore[union-attr]
    finally:
        bar.close()
    return FileResult(rows, passes, norm, norm.normalized_columns(schema))


#: Rows per batch that :func:`normalize_file` reads and normalizes, Parquet to Parquet, when
#: it can write the same row groups from them (:func:`_split_batches`): a quarter of the
#: default batch, so the batches in flight between the reading, normalizing and writing
#: threads take a quarter of the memory (about 80 MB less on a 32-column float64 file).
SPLIT_BATCH_ROWS = PARQUET_BATCH_ROWS // 4


def _split_batches(src: Any, fmt: str, batch_size: int | None, row_group_size: int | None,
                   online: bool) -> bool:
    """Whether :func:`normalize_file` may read ``src`` in batches of
    :data:`SPLIT_BATCH_ROWS` and have the writer put them back into row groups of
    :data:`PARQUET_BATCH_ROWS` rows: the output is then the file the default batches give
    (the same values, row groups and metadata). True for a local Parquet file into Parquet
    with no batch size nor row group size given, outside online normalization (whose
    statistics follow the batches), when every row group but the last holds a multiple of
    :data:`PARQUET_BATCH_ROWS` rows (else the default batches would end row groups early)."""
    if (batch_size is not None or row_group_size is not None or online or fmt != "parquet"
            or is_stdio(src) or not is_local_file(src)):
        return False
    try:
        if file_format(src) != "parquet":
            return False
        metadata = pq.ParquetFile(src).metadata
    except (InputError, pa.ArrowInvalid, OSError):
        return False
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    return all(n % PARQUET_BATCH_ROWS == 0 for n in sizes[:-1])


def _large_grouped_stats(norm: Normalizer) -> pa.Table | None:
    """The grouped statistics of ``norm`` as a table when too large for an output's metadata
    (see :data:`~streamnorm.normalize.record.INLINE_STATS_BYTES`); None when they go inline
    (or there are none)."""
    if norm.mode != "batch" or norm.by is None:
        return None
    table = norm.stats.to_arrow()  # type: ignore[union-attr]
    return table if table.nbytes > record.INLINE_STATS_BYTES else None


@contextlib.contextmanager
def _stats_beside(norm: Normalizer, table: pa.Table | None, dst: Any) -> Iterator[None]:
    """With ``table`` (large grouped statistics): write it to ``dst`` + ``STATS_FILE_SUFFIX``
    atomically, and have ``norm``'s record name that file while the output is written. Inside
    the output's own :func:`atomic_path`, so the statistics file is in place just before
    the output, and neither is left behind when writing fails."""
    if table is None:
        yield
        return
    side = f"{os.fspath(dst)}{record.STATS_FILE_SUFFIX}"
    side_path: Any = side if is_uri(side) else Path(side)
    with atomic_path(side_path) as tmp:
        with BatchWriter(tmp, table.schema, "ipc-file", compression="zstd") as writer:
            for batch in table.to_batches():
                writer.write(batch)
        norm.stats_file = side_path.name if isinstance(side_path, Path) else side.rsplit("/")[-1]
        try:
            yield
        finally:
            norm.stats_file = None  # later in-memory transforms record the statistics inline


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
    format: str | None = None,
) -> FileResult:
    """Undo a per-feature (batch, minmax, robust) :func:`normalize_file`: read ``src``
    (normalized), write ``dst``.

    Uses ``stats`` when given, else the record in ``src``'s schema metadata. Atomic like
    :func:`normalize_file`; output options as there (``float32=True`` narrows the restored
    columns only; ``-`` and ``format`` as there too).
    """
    src = _one_pass_source(src)
    dst_path = check_destination(src, dst)
    fmt = writer_format(dst_path, format)
    writer_options = _writer_options(dst_path, compression, row_group_size, float32, fmt)
    schema = record.file_schema(src)
    if record.is_record(schema.metadata):
        recorded = record.read_record(schema, str(src))
        record.refuse_online(recorded, str(src))
        if not affine.is_per_feature(recorded["mode"]):
            raise InputError(
                f"{src}: was normalized in {recorded['mode']} mode, which cannot be inverted: "
                "each row's own statistics are not kept; keep the original data (only the "
                "per-feature modes have an inverse)"
            )
    if stats is not None:
        made = recorded if record.is_record(schema.metadata) else {}
        norm = Normalizer.from_stats(
            stats, target=target, mode=made.get("mode", "batch"),
            feature_range=made.get("options", {}).get("feature_range"),
            quantile_range=made.get("options", {}).get("quantile_range"))
        if record.is_record(schema.metadata):
            norm.eps, norm.ddof = recorded["eps"], recorded.get("ddof", 0)
    else:
        location = os.fspath(src) if isinstance(src, (str, os.PathLike)) else None
        norm = Normalizer.from_metadata(location if location is not None else schema,
                                        target=target)
    # norm is per-feature here (from_stats, or a per-feature record): it has an inverse
    out_schema = plan.inverse_schema(schema, norm.normalized_columns(schema), record.METADATA_KEY)
    if float32:
        writer_options["float32"] = norm.normalized_columns(schema)
    total = count_rows(src) if progress else None
    rows = 0
    bar = progress_bar("inverse", total, progress)
    try:
        with atomic_path(dst_path) as tmp:
            with BatchWriter(tmp, out_schema, fmt, **writer_options) as writer:
                _, batches = schema_and_batches(src, batch_size=batch_size)
                for batch in _tracked(batches, bar):
                    out = norm.inverse_transform(batch)
                    writer.write(out)
                    rows += out.num_rows
    finally:
        bar.close()
    return FileResult(rows, 1, norm, norm.normalized_columns(schema))
