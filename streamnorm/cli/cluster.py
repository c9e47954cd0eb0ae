"""``stats`` and ``normalize`` on a Dask cluster (``--scheduler ADDRESS`` or ``--dask``)."""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import InputError
from ..state.features import FeatureStats
from .exits import UsageError
from .options import given_mode_options, resolve_columns, schema_option
from .tables import mode_text

_DASK_HINT = "--scheduler / --dask need Dask: pip install 'streamnorm[dask]'"
_DASK_LOG_ENV = "DASK_LOGGING__DISTRIBUTED"  # read by each spawned worker


def uses_dask(args: argparse.Namespace) -> bool:
    """Whether ``--scheduler`` or ``--dask`` was given."""
    return bool(args.scheduler or args.dask)


def check_dask_usage(args: argparse.Namespace, *, grouped: bool = False) -> None:
    """Options the Dask path does not take are a :class:`UsageError` naming them (``--by``
    only where ``grouped``: ``stats`` takes it, ``normalize`` into a directory does not)."""
    given = [name for name, on in (
        ("--by", args.by and not grouped),
        ("--skip-bad-rows", args.skip_bad_rows),
    ) if on]
    if given:
        raise UsageError(f"{', '.join(given)} cannot be used with --scheduler / --dask; drop "
                         "them or run without Dask")


@contextmanager
def _quiet_distributed() -> Iterator[None]:
    """Keep Dask's own logging off the command's stderr while the block runs.

    Dask logs races it recovers from as errors with tracebacks (a worker's heartbeat that meets
    a scheduler already shutting down, at the end of every ``--dask`` run now and then). A
    task that really fails reaches us as an exception and becomes our one-line error, so the
    command keeps nothing of Dask's logging. Worker processes are spawned with
    ``DASK_LOGGING__DISTRIBUTED`` set, so their ``distributed`` logger starts quiet too.
    """
    logger = logging.getLogger("distributed")
    old_level, old_env = logger.level, os.environ.get(_DASK_LOG_ENV)
    logger.setLevel(logging.CRITICAL)
    os.environ[_DASK_LOG_ENV] = "critical"
    try:
        yield
    finally:
        logger.setLevel(old_level)
        if old_env is None:
            os.environ.pop(_DASK_LOG_ENV, None)
        else:
            os.environ[_DASK_LOG_ENV] = old_env


@contextmanager
def dask_client(args: argparse.Namespace) -> Iterator[Any]:
    """A ``distributed.Client`` on ``--scheduler``, or on a local cluster for ``--dask`` (one
    single-threaded worker process per core); closed on the way out. Dask's logging stays
    off stderr (see :func:`_quiet_distributed`)."""
    try:
        import distributed
    except ImportError:
        raise UsageError(_DASK_HINT) from None
    with _quiet_distributed():
        if args.scheduler:
            try:
                client = distributed.Client(args.scheduler, timeout="10s")
            except (OSError, TimeoutError, ValueError) as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise UsageError(f"{args.scheduler}: cannot reach the Dask scheduler ({reason}); "
                                 "check the address and that the scheduler is running") from None
            with client:
                yield client
            return
        # dashboard_address=None still binds :8787 (and warns when taken): use any free port
        with distributed.LocalCluster(threads_per_worker=1, processes=True,
                                      dashboard_address=":0",
                                      silence_logs=logging.CRITICAL) as cluster:
            with distributed.Client(cluster) as client:
                yield client


def _dask_module() -> Any:
    try:
        from .. import dask as sn_dask
    except ImportError:  # pragma: no cover - the module itself imports dask lazily
        raise UsageError(_DASK_HINT) from None
    return sn_dask


def dask_stats(args: argparse.Namespace) -> tuple[FeatureStats, int]:
    """``stats IN --scheduler/--dask``: (statistics, number of files)."""
    check_dask_usage(args, grouped=True)
    sn_dask = _dask_module()
    dataset = sn_dask.open_files(args.input, schema=schema_option(args))
    columns = resolve_columns(args, dataset, "batch")
    with dask_client(args):
        stats = sn_dask.feature_stats(dataset, columns, batch_size=args.batch_size,
                                      target=args.target, by=args.by, inf=args.inf,
                                      quantiles=args.quantiles is not None)
    return stats, len(dataset.files)


def dask_normalize(args: argparse.Namespace) -> str:
    """``normalize IN OUT_DIR --scheduler/--dask``; returns the line to print."""
    check_dask_usage(args)
    output = args.output
    if os.path.exists(output) and not os.path.isdir(output):
        raise InputError(f"{output}: exists and is not a directory; with --scheduler / --dask "
                         "OUT is a directory (one OUT/<name>.parquet per input)")
    sn_dask = _dask_module()
    dataset = sn_dask.open_files(args.input, schema=schema_option(args))
    columns = resolve_columns(args, dataset, args.mode)
    start = time.perf_counter()
    with dask_client(args):
        written = sn_dask.normalize_files(
            dataset, output, mode=args.mode, stats=args.stats, columns=columns, eps=args.eps,
            batch_size=args.batch_size, target=args.target, compression=args.compression,
            row_group_size=args.row_group_size, float32=args.float32, inf=args.inf,
            feature_range=args.feature_range, quantile_range=args.quantile_range,
        )
    seconds = time.perf_counter() - start
    how = mode_text(args.mode, given_mode_options(args))
    return (f"normalized {len(written)} files ({how}) into {output} "
            f"in {seconds:.2f} s")
