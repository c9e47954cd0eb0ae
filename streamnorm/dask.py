"""Fit and normalize on a Dask cluster (optional extra: ``pip install 'streamnorm[dask]'``).

Statistics are fitted with one :class:`~streamnorm.FeatureStats` per partition (or per file),
then the partial states are tree-reduced with :meth:`~streamnorm.FeatureStats.merge` by Dask's
own reduction (``dask.bag.Bag.reduction``). A state is a few numbers per column (under 1 kB
pickled for a handful of columns) and merges exactly, so the result equals a single-process fit
to the last bits of rounding, whatever the partitioning, the number of workers or the order the
partial states arrive in. Normalizing is a map over partitions or files. There is no cluster
code here: whatever scheduler is active runs the graph (a ``distributed.Client``, if one was
created, else Dask's default local scheduler; or pass ``scheduler=``).

Inputs: a Dask DataFrame (e.g. ``dask.dataframe.read_parquet(...)``), or files named by a list
of paths, a glob pattern or a directory (its Arrow IPC / Parquet files, at any depth). With files,
each task opens its own file, so no data travels through the client; the paths must be readable
from the workers (a shared filesystem). The files are read under one unified schema, as
locally (:attr:`streamnorm.arrow.dataset.DataSource.schema`: a column a file lacks is null there,
types widen), which the client finds from the files' footers.

Examples
--------
>>> from distributed import Client, LocalCluster                        # doctest: +SKIP
>>> import streamnorm.dask as snd                                        # doctest: +SKIP
>>> with LocalCluster(n_workers=4) as cluster, Client(cluster):          # doctest: +SKIP
...     stats = snd.feature_stats("data/*.parquet")
...     snd.normalize_files("data/*.parquet", "normalized/", stats=stats)
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import pyarrow as pa

from . import columns as cols
from .arrow.dataset import DataSource
from .arrow.formats import IPC_SUFFIXES, PARQUET_SUFFIXES
from .arrow.locations import has_glob, list_directory
from .arrow.outputs import check_output_not_input
from .arrow.schemas import SchemaLike
from .errors import InputError, SchemaError
from .state.features import FeatureStats, NanPolicy
from .state.features import feature_stats as _local_feature_stats

if TYPE_CHECKING:
    import dask.bag
    import dask.dataframe
    import pandas as pd

__all__ = ["feature_stats", "normalize", "normalize_files", "open_files", "resolve_paths"]

#: What names a set of files: a path, a glob pattern, a directory, or a list of paths.
FileSet = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]

_INSTALL_HINT = "pip install 'streamnorm[dask]'"
_DATA_SUFFIXES = IPC_SUFFIXES + PARQUET_SUFFIXES


# --------------------------------------------------------------------------- dask, lazily


def _require_dask() -> Any:
    """Import dask (bag + dataframe) or raise an ImportError that names the extra to install."""
    try:
        import dask
        import dask.bag
        import dask.dataframe  # noqa: F401  (needs pandas; part of the extra)
    except ImportError as exc:
        raise ImportError(
            f"streamnorm.dask needs dask[distributed,dataframe] ({exc}); install it with "
            f"{_INSTALL_HINT}"
        ) from exc
    return dask


def _is_dask_frame(obj: object) -> bool:
    """Whether ``obj`` is a Dask DataFrame (without importing dask when it is not loaded)."""
    module = type(obj).__module__ or ""
    if not module.startswith("dask"):
        return False
    import dask.dataframe as dd

    return isinstance(obj, dd.DataFrame)


# --------------------------------------------------------------------------- files


def resolve_paths(obj: FileSet) -> list[str]:
    """The files named by ``obj``, resolved on the client.

    ``obj`` is a list of paths (kept in order), a glob pattern (``**`` recurses; sorted), a
    directory (its ``.parquet``/``.arrow``/… files at any depth, sorted, hidden and
    ``_``-prefixed ones and directories skipped) or a single file. Raises :class:`~streamnorm.InputError` when nothing matches.
    The paths come back absolute: the workers' working directory is not the client's.
    """
    if isinstance(obj, (str, os.PathLike)):
        paths = [os.path.abspath(p) for p in _expand_one(os.fspath(obj))]
    elif isinstance(obj, Sequence) and not isinstance(obj, (bytes, bytearray)):
        paths = [os.path.abspath(os.fspath(p)) for p in obj]
    else:
        raise TypeError(
            "expected a dask DataFrame, a path, a glob or a list of paths, got "
            f"{type(obj).__name__}"
        )
    if not paths:
        raise InputError(f"{obj}: no input files; give Parquet or Arrow IPC files")
    return paths


def _expand_one(text: str) -> list[str]:
    if os.path.isdir(text):
        return [p for p in list_directory(text)
                if os.path.splitext(p)[1].lower() in _DATA_SUFFIXES]
    if has_glob(text):
        matches = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
        if not matches:
            raise InputError(f"{text}: the pattern matches no file; check the glob")
        return matches
    if not os.path.exists(text):
        raise InputError(f"{text}: no such file or directory; check the path")
    return [text]


def open_files(obj: FileSet | DataSource, *, schema: SchemaLike | None = None) -> DataSource:
    """The files named by ``obj`` (see :func:`resolve_paths`) as one source, whose unified
    schema (read from the files' footers on the client) every task reads its file under;
    ``schema`` gives columns their types as in :class:`~streamnorm.arrow.dataset.DataSource`."""
    if isinstance(obj, DataSource):
        return obj
    return DataSource(resolve_paths(obj), partitioning=None, schema=schema)


def _file_sources(dataset: DataSource) -> list[DataSource]:
    """One source per file of ``dataset``, each read under its unified schema."""
    return [dataset.file_source(i) for i in range(len(dataset.parts))]


def _file_bag(items: list[Any]) -> dask.bag.Bag:
    """A bag with one file (or file and output) per partition, so that each task opens
    exactly one file."""
    import dask.bag as db

    return db.from_sequence(items, npartitions=len(items))


# --------------------------------------------------------------------------- fit


def _column_list(columns: Sequence[str] | None) -> list[str] | None:
    if isinstance(columns, str):
        return [columns]
    return list(columns) if columns is not None else None


@contextlib.contextmanager
def _numba_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` numba threads in this (worker) thread; None: unchanged.

    Numba's thread count is per calling thread, so this caps one task, not the worker. One
    thread per task is the default of this module: Dask's workers are the parallelism, and a
    parallel kernel launch per column and batch inside each of them oversubscribes the cores
    (measured on 2 cores: 2 workers fitting 2 GB took ~25 s with 2 numba threads each, ~1.7 s
    with one).
    """
    if threads is None:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


@dataclass(frozen=True)
class _FitOptions:
    """How each task fits its part: :func:`streamnorm.feature_stats`'s keywords."""

    columns: list[str] | None
    batch_size: int | None = None
    nan: NanPolicy = "skip"
    target: str | None = None
    moments: int = 2
    by: list[str] | None = None
    weights: str | None = None
    inf: str = "keep"
    quantiles: bool = False

    def empty(self) -> FeatureStats:
        """An empty state of this kind (plain or grouped, 2 or 4 moments, quantiles)."""
        extra = {"quantiles": True} if self.quantiles else {}
        return FeatureStats(self.columns, nan=self.nan, target=self.target,
                            moments=self.moments, by=self.by, inf=self.inf, **extra)

    def fit(self, source: Any) -> FeatureStats:
        return _local_feature_stats(
            source, self.columns, self.batch_size, nan=self.nan, target=self.target,
            moments=self.moments, by=self.by, weights=self.weights, inf=self.inf,
            quantiles=self.quantiles,
        )

    def extra_columns(self) -> list[str]:
        """Columns read besides the features: group keys and weights."""
        return [*(self.by or []), *([self.weights] if self.weights else [])]


def _merge_all(states: Any, options: _FitOptions) -> FeatureStats:
    """Merge partial states into a new one (the inputs are left untouched: Dask may reuse them)."""
    merged = options.empty()
    for state in states:
        merged.merge(state)
    return merged


def _fit_file(source: DataSource, options: _FitOptions, threads: int | None) -> FeatureStats:
    """The statistics of one file, read on the worker one row group / IPC batch at a time."""
    with _numba_threads(threads):
        return options.fit(source)


def _frame_to_arrow(frame: pd.DataFrame) -> pa.Table:
    """A pandas partition as an Arrow table, index dropped (NaN in numpy columns → null)."""
    return pa.Table.from_pandas(frame, preserve_index=False)


def _fit_frame(
    frame: pd.DataFrame, options: _FitOptions, threads: int | None
) -> list[FeatureStats]:
    """The statistics of one pandas partition, as a one-element bag partition."""
    table = _frame_to_arrow(frame)
    with _numba_threads(threads):
        return [options.fit(table)]


def _frame_columns(
    frame: dask.dataframe.DataFrame, columns: Sequence[str] | None, extra: Sequence[str] = ()
) -> list[str]:
    """The columns to fit: ``columns`` (checked against the frame), else its numeric ones
    other than ``extra`` (group keys and weights, which must be in the frame too)."""
    schema = pa.Schema.from_pandas(frame._meta, preserve_index=False)
    missing = [c for c in [*(columns or []), *extra] if c not in schema.names]
    if missing:
        raise SchemaError(
            f"columns {missing} are not in the data (its columns: {', '.join(schema.names)}); "
            "fix columns=[...] / -c, by= or weights="
        )
    if columns is None:
        return [c for c in cols.numeric_column_names(schema) if c not in extra]
    return list(columns)


def _stats_bag(obj: Any, options: _FitOptions, threads: int | None) -> dask.bag.Bag:
    """A bag of partial FeatureStats: one per file, or one per DataFrame partition."""
    dask = _require_dask()
    import dask.bag as db

    if _is_dask_frame(obj):
        extra = options.extra_columns()
        chosen = _frame_columns(obj, options.columns, extra)
        options = replace(options, columns=chosen)
        parts = obj[[*chosen, *extra]].to_delayed()  # projection reaches read_parquet
        fit = dask.delayed(_fit_frame, pure=True)
        return db.from_delayed([fit(part, options, threads) for part in parts])
    fit_file = functools.partial(_fit_file, options=options, threads=threads)
    return _file_bag(_file_sources(open_files(obj))).map(fit_file)


def feature_stats(
    obj: Any,
    columns: Sequence[str] | None = None,
    *,
    batch_size: int | None = None,
    nan: NanPolicy = "skip",
    target: str | None = None,
    moments: int = 2,
    by: str | Sequence[str] | None = None,
    weights: str | None = None,
    inf: str = "keep",
    split_every: int | None = None,
    task_threads: int | None = 1,
    scheduler: str | None = None,
    quantiles: bool = False,
) -> FeatureStats:
    """Per-column statistics of a Dask DataFrame or a set of files, fitted on the workers.

    Parameters
    ----------
    obj : a Dask DataFrame (e.g. ``dask.dataframe.read_parquet(...)``), or files: a list of
        paths, a glob pattern or a directory (see :func:`resolve_paths`), or
        :func:`open_files` of them. Each file is read by one task on a worker, under the
        files' unified schema; a DataFrame is fitted partition by partition (pandas NaN counts
        as null there: pandas cannot tell them apart).
    columns : the columns to fit; None for every scalar numeric column (group keys and the
        weights column excluded).
    batch_size, nan, target, moments, by, weights, inf : as in
        :func:`streamnorm.feature_stats`,
        applied on the workers: ``moments=4`` adds skewness and kurtosis, ``by=`` gives a
        :class:`~streamnorm.GroupedFeatureStats` (groups found in any file are merged by key),
        ``weights=`` names a column of per-row frequency weights, ``quantiles=True`` keeps the
        quantile sketches (merged on the cluster; ranks within 0.5% whatever the partitioning).
    split_every : fan-in of the tree reduction (Dask's default, 8, when None).
    task_threads : numba threads per task (default 1: the workers are the parallelism);
        None keeps numba's setting (all cores, or ``$STREAMNORM_NUM_THREADS``).
    scheduler : passed to ``compute``; None uses the active ``distributed.Client`` if any,
        else Dask's default for bags (local processes).

    Returns
    -------
    FeatureStats (or GroupedFeatureStats with ``by=``) equal to a single-process fit of the
    same rows (counts, min and max exactly; the moments to rounding, ~1e-16 relative), on the
    client.
    """
    options = _FitOptions(
        _column_list(columns), batch_size, nan, target, moments,
        [by] if isinstance(by, str) else (list(by) if by is not None else None), weights,
        inf, quantiles,
    )
    options.empty()  # bad moments= or by= fail here, on the client, before any task runs
    bag = _stats_bag(obj, options, task_threads)
    merge = functools.partial(_merge_all, options=options)
    reduced = bag.reduction(merge, merge, split_every=split_every)
    merged = reduced.compute(scheduler=scheduler)
    return options.empty().merge(merged)


# --------------------------------------------------------------------------- normalize


def _fitted(
    obj: Any, mode: str, stats: FeatureStats | str | os.PathLike | None,
    columns: list[str] | None, batch_size: int | None, nan: NanPolicy, target: str | None,
    scheduler: str | None, threads: int | None, inf: str = "error",
    options: dict[str, Any] | None = None,
) -> FeatureStats | None:
    """The statistics a per-feature mode (batch, minmax, robust) needs: given (object or
    file, loaded on the client), or fitted over ``obj`` on the cluster (robust: with the
    quantile sketches, merged there). None in layer / rms mode. The mode and its ``options``
    (``feature_range``, ``quantile_range``) are checked first, and robust mode given
    statistics without sketches is an :class:`InputError` naming the way out: all on the
    client, before any task runs."""
    from .normalize import affine, plan

    plan.check_mode(mode)
    affine.mode_options(mode, options or {})
    if not affine.is_per_feature(mode):
        if stats is not None:
            raise ValueError(f"stats apply to the per-feature modes "
                             f"{tuple(affine.CENTER_SCALE)} only, not mode={mode!r}")
        return None
    if stats is None:
        return feature_stats(
            obj, columns, batch_size=batch_size, nan=nan, target=target, task_threads=threads,
            scheduler=scheduler, inf="skip" if inf == "skip" else "keep",
            quantiles=mode == "robust",
        )
    loaded = stats if isinstance(stats, FeatureStats) else FeatureStats.load(stats)
    if mode == "robust" and not loaded.quantiles:
        shown = "these statistics" if isinstance(stats, FeatureStats) else os.fspath(stats)
        raise InputError(f"{shown}: no quantile sketches, which mode 'robust' needs; compute "
                         "them with `streamnorm stats IN --quantiles 0.5 -o FILE` "
                         "(FeatureStats(quantiles=True)), or drop the statistics to fit them "
                         "on the cluster")
    return loaded


def _make_normalizer(
    mode: str, stats: FeatureStats | None, columns: list[str] | None, eps: float | None,
    ddof: int, nan: NanPolicy, target: str | None, options: dict[str, Any] | None = None,
) -> Any:
    """A ready Normalizer: from fitted statistics in a per-feature mode (batch, minmax,
    robust: exactly :meth:`Normalizer.from_stats`, so every partition gets the same
    ``(center, scale)`` as a single-machine normalizer of those statistics), fit-free for
    layer / rms. ``options``: the mode's own (``feature_range``, ``quantile_range``)."""
    from .normalize import Normalizer, affine

    given = {k: v for k, v in (options or {}).items() if v is not None}
    if affine.is_per_feature(mode):
        assert stats is not None
        return Normalizer.from_stats(stats, columns=columns, eps=eps, ddof=ddof, target=target,
                                     mode=mode, **given)
    return Normalizer(
        mode, columns=columns, eps=eps, ddof=ddof, nan=nan, target=target,  # type: ignore[arg-type]
        **given,
    )


def _numeric_names(frame: pd.DataFrame) -> list[str]:
    """The numeric scalar and FixedSizeList columns of a pandas frame, as Arrow types them."""
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    return [f.name for f in schema if cols.is_numeric(f.type) or cols.is_vector(f.type)]


def _normalize_frame(
    frame: pd.DataFrame, mode: str, stats: FeatureStats | None, columns: list[str] | None,
    eps: float | None, ddof: int, nan: NanPolicy, target: str | None, threads: int | None,
    options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Normalize one pandas partition through Arrow; other columns and the index are kept.

    Only the columns to normalize are converted. They come back as numpy float64 (float32
    stays float32), or as ``pd.ArrowDtype`` where the input column was Arrow-backed (nulls
    then stay ``<NA>``), so the output dtypes depend on the input dtypes only, never on the
    values: ``meta`` is this function applied to the input's meta.
    """
    import pandas as pd

    normalizer = _make_normalizer(mode, stats, columns, eps, ddof, nan, target, options)
    if columns is not None:
        names = columns
    elif stats is not None:
        names = stats.columns
    else:
        names = _numeric_names(frame)
    table = _frame_to_arrow(frame[names])
    with _numba_threads(threads):
        normalized = normalizer.transform(table)
    out = frame.copy(deep=False)
    for name in normalizer.normalized_columns(table.schema):
        mapper = pd.ArrowDtype if isinstance(frame.dtypes[name], pd.ArrowDtype) else None
        series = normalized.column(name).to_pandas(types_mapper=mapper)
        series.index = frame.index
        out[name] = series
    return out


def _read_frame(source: DataSource) -> pd.DataFrame:
    """One whole file as a pandas frame with Arrow-backed dtypes (exact types, nulls kept)."""
    import pandas as pd

    schema, batches = source.schema_and_batches()
    table = pa.Table.from_batches(list(batches), schema=schema)
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def _files_frame(dataset: DataSource) -> dask.dataframe.DataFrame:
    """A lazy DataFrame with one partition per file; meta from the files' unified schema
    (read from their footers / headers on the client, no rows)."""
    import dask.dataframe as dd
    import pandas as pd

    meta = dataset.schema.empty_table().to_pandas(types_mapper=pd.ArrowDtype)
    return dd.from_map(_read_frame, _file_sources(dataset), meta=meta, enforce_metadata=False)


def normalize(
    obj: Any,
    mode: str = "batch",
    stats: FeatureStats | str | os.PathLike | None = None,
    columns: Sequence[str] | None = None,
    eps: float | None = None,
    *,
    ddof: int = 0,
    batch_size: int | None = None,
    nan: NanPolicy = "skip",
    target: str | None = None,
    task_threads: int | None = 1,
    scheduler: str | None = None,
    feature_range: tuple[float, float] | None = None,
    quantile_range: tuple[float, float] | None = None,
) -> dask.dataframe.DataFrame:
    """A lazy Dask DataFrame of ``obj`` normalized partition by partition.

    Parameters
    ----------
    obj : a Dask DataFrame, or files (a list, glob or directory: one partition per file, read
        whole with Arrow-backed pandas dtypes).
    mode : per feature, with statistics: ``"batch"`` (mean and standard deviation),
        ``"minmax"`` (min and max onto ``feature_range``) or ``"robust"`` (median and
        ``quantile_range``, from the quantile sketches); per row: ``"layer"`` or ``"rms"``.
        Each partition gets exactly the values of a single-machine
        :meth:`streamnorm.Normalizer.from_stats` of the same statistics (bit for bit).
    stats : per-feature modes: a FeatureStats or a statistics file (robust: with quantile
        sketches, ``FeatureStats(quantiles=True)`` / ``stats --quantiles``); None fits them
        first with :func:`feature_stats` (that fit runs now, on the cluster, with the sketches
        for robust; the transform stays lazy).
    columns : the columns to normalize; None for the fitted (per-feature) or every numeric
        (layer / rms) column. Every other column, and the index, pass through unchanged.
    eps, ddof, nan, target : as in :class:`streamnorm.Normalizer`.
    task_threads, scheduler : as in :func:`feature_stats`.
    feature_range, quantile_range : minmax's ``(lo, hi)`` (default (0, 1)) and robust's
        percentages (default (25, 75)), as in :class:`streamnorm.Normalizer`; checked on the
        client.

    Returns
    -------
    dask.dataframe.DataFrame with the same columns, index and divisions; normalized columns
    are float64 (float32 stays float32). Nothing is read until it is computed.
    """
    _require_dask()
    chosen = _column_list(columns)
    source = obj if _is_dask_frame(obj) else open_files(obj)
    frame = source if _is_dask_frame(source) else _files_frame(source)
    options = {"feature_range": feature_range, "quantile_range": quantile_range}
    fitted = _fitted(
        source, mode, stats, chosen, batch_size, nan, target, scheduler, task_threads,
        options=options,
    )
    spec = {"mode": mode, "stats": fitted, "columns": chosen, "eps": eps, "ddof": ddof,
            "nan": nan, "target": target, "threads": task_threads, "options": options}
    meta = _normalize_frame(frame._meta, **spec)
    return frame.map_partitions(_normalize_frame, **spec, meta=meta)


def _destinations(paths: list[str], out_dir: Path) -> list[str]:
    """``out_dir/<stem>.parquet`` per input; refuses two inputs with one output name."""
    destinations = [out_dir / (Path(p).stem + ".parquet") for p in paths]
    seen: dict[Path, str] = {}
    for src, dst in zip(paths, destinations):
        if dst in seen:
            raise InputError(
                f"{seen[dst]} and {src} would both be written to {dst}; give inputs with "
                "distinct file names or normalize them into different directories"
            )
        seen[dst] = src
    return [str(d) for d in destinations]


def _normalize_one(pair: tuple[DataSource, str], threads: int | None, **options: Any) -> str:
    """Normalize one file into one Parquet file, on the worker, atomically (temporary file
    renamed into place by :func:`streamnorm.normalize_file`); returns its path."""
    from .pipeline import normalize_file

    src, dst = pair
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    with _numba_threads(threads):
        normalize_file(src, dst, **options)
    return dst


def normalize_files(
    paths: FileSet,
    out_dir: str | os.PathLike,
    mode: str = "batch",
    stats: FeatureStats | str | os.PathLike | None = None,
    columns: Sequence[str] | None = None,
    eps: float | None = None,
    *,
    ddof: int = 0,
    batch_size: int | None = None,
    nan: NanPolicy = "skip",
    target: str | None = None,
    task_threads: int | None = 1,
    scheduler: str | None = None,
    compression: str | None = None,
    row_group_size: int | None = None,
    float32: bool = False,
    inf: str = "error",
    feature_range: tuple[float, float] | None = None,
    quantile_range: tuple[float, float] | None = None,
) -> list[str]:
    """Normalize each input file into ``out_dir/<stem>.parquet``, one task per file.

    Each worker streams its own file (one row group / IPC batch at a time) into a temporary
    file renamed into place on success, so a failed or retried task never leaves a partial
    output. In the per-feature modes (batch, minmax with ``feature_range``, robust with
    ``quantile_range``: see :func:`normalize`) all files share one set of statistics:
    ``stats`` (a FeatureStats or a statistics file; robust needs its quantile sketches) or,
    when None, a :func:`feature_stats` fit over all the inputs first (robust: with the
    sketches). Each file gets exactly the values :func:`streamnorm.normalize_file` gives with
    those statistics, and the same record in its schema metadata (statistics, the mode's
    options, robust's per-column center and scale), so :func:`streamnorm.inverse_file`
    undoes it. ``task_threads`` and ``scheduler`` are as in
    :func:`feature_stats`; ``compression``, ``row_group_size`` and ``float32`` are the
    output options of :func:`streamnorm.normalize_file`; ``inf`` its non-finite policy. The
    mode, its options, the statistics and the columns are checked on the client before any
    task runs.

    Returns
    -------
    list of the written paths, in input order.
    """
    _require_dask()
    chosen = _column_list(columns)
    dataset = open_files(paths)
    out_dir = Path(out_dir).absolute()  # the workers' working directory is not the client's
    outputs = _destinations(dataset.files, out_dir)
    check_output_not_input(paths if isinstance(paths, (str, os.PathLike)) else dataset,
                                   out_dir, outputs)
    mode_options = {"feature_range": feature_range, "quantile_range": quantile_range}
    fitted = _fitted(
        dataset, mode, stats, chosen, batch_size, nan, target, scheduler, task_threads, inf,
        options=mode_options,
    )
    if fitted is not None and inf != "skip":
        from .normalize import check_finite_stats

        check_finite_stats(fitted, chosen)  # refused here, not in one task per file
    if fitted is not None:  # columns, and a scale beyond float64 (minmax), refused here too
        _make_normalizer(mode, fitted, chosen, eps, ddof, nan, target, mode_options
                         ).output_schema(dataset.schema)
    options: dict[str, Any] = {"mode": mode, "columns": chosen, "stats": fitted, "eps": eps,
                               "inf": inf,
                               "batch_size": batch_size, "target": target, "ddof": ddof,
                               "nan": nan, "compression": compression,
                               "row_group_size": row_group_size, "float32": float32,
                               **mode_options}
    work = functools.partial(_normalize_one, threads=task_threads, **options)
    pairs = list(zip(_file_sources(dataset), outputs))
    return list(_file_bag(pairs).map(work).compute(scheduler=scheduler))
