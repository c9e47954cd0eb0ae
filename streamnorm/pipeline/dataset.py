"""Directory → directory: normalize every file of a dataset into an output directory, all or
nothing (staged in a hidden directory, published once every file is written)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from collections.abc import Iterator, Sequence
from typing import Any

from ..arrow.dataset import DataSource, open_source
from ..arrow.failures import first_line
from ..arrow.formats import output_format
from ..arrow.locations import is_uri, join_location
from ..arrow.outputs import check_output_not_input, output_name
from ..arrow.sinks import BatchWriter, atomic_path
from ..errors import InputError, StreamnormError
from ..normalize import Normalizer, affine


def normalize_dataset(
    src: str | os.PathLike | Sequence[str | os.PathLike] | DataSource,
    dst_dir: str | os.PathLike,
    mode: str = "batch",
    columns: Sequence[str] | None = None,
    stats: Any = None,
    batch_size: int | None = None,
    eps: float | None = None,
    *,
    ddof: int = 0,
    target: str | None = None,
    suffix: str | None = None,
    compression: str | None = None,
    row_group_size: int | None = None,
    float32: bool = False,
    inf: str = "error",
    feature_range: tuple[float, float] | None = None,
    quantile_range: tuple[float, float] | None = None,
) -> list[str]:
    """Normalize every file of a directory / glob / list into ``dst_dir``, one output file per
    input file at the same relative path (so ``year=2024/`` partitions are kept). Batch (and
    minmax with ``feature_range``, robust with ``quantile_range``) mode fits once over all
    the files (partition keys are not features), then transforms file by file. Returns the
    written paths (or URIs).

    All or nothing on a local ``dst_dir``: the files are written into a hidden staging
    directory beside it and moved into place once every one is complete, so a failure (a
    corrupt input, a full disk, Ctrl-C) leaves ``dst_dir`` as it was; the error names the
    input that failed. An output directory that is, or lies inside, an input directory is
    refused (:func:`check_output_not_input`). On an object store each file is written
    atomically, one after the other.
    """
    source = open_source(src)
    root = os.fspath(dst_dir)
    names = [output_name(part.relative, suffix) for part in source.parts]
    destinations = [join_location(root, name) for name in names]
    check_output_not_input(source, root, destinations)
    if affine.is_per_feature(mode) and stats is not None:
        norm = Normalizer.from_stats(stats, columns=columns, eps=eps, ddof=ddof, target=target,
                                     mode=mode, feature_range=feature_range,
                                     quantile_range=quantile_range)
    else:
        norm = Normalizer(mode, columns=columns, eps=eps, ddof=ddof, target=target,  # type: ignore[arg-type]
                          inf=inf, feature_range=feature_range,  # type: ignore[arg-type]
                          quantile_range=quantile_range)
        if affine.is_per_feature(mode):
            norm.fit(source, batch_size=batch_size)
    normalized = norm.normalized_columns(source.schema)
    keys = set(source.partition_columns) & set(normalized)
    if keys:
        raise InputError(f"partition key(s) {sorted(keys)} are in the directory names, not in the "
                         "files; normalize them into a single output file instead")
    options = dict(compression=compression, row_group_size=row_group_size,
                   float32=normalized if float32 else False)
    if is_uri(root):
        for index, destination in enumerate(destinations):
            write_one(norm, source, index, destination, batch_size, options)
        return destinations
    with _staged_directory(root) as staging:
        for index, name in enumerate(names):
            staged = os.path.join(staging, name)
            os.makedirs(os.path.dirname(staged), exist_ok=True)
            write_one(norm, source, index, staged, batch_size, options)
    return destinations


def write_one(norm: Any, dataset: DataSource, index: int, destination: str,
               batch_size: int | None, options: dict[str, Any]) -> None:
    """Transform file ``index`` of ``dataset`` into ``destination`` atomically; an error names
    that input file."""
    source = dataset.file_source(index)
    shown = source.location
    try:
        schema, batches = source.schema_and_batches(None, batch_size)
        out_schema = norm.output_schema(schema)
        with atomic_path(destination) as tmp:
            with BatchWriter(tmp, out_schema, output_format(destination), **options
                                ) as writer:
                # the batches themselves, not an Arrow stream over them: a reading error
                # stays the InputError naming the file instead of an ArrowInvalid
                for batch in norm.transform_batches(batches):
                    writer.write(batch)
    except StreamnormError as exc:
        if shown in str(exc):
            raise
        raise type(exc)(f"{shown}: {exc}") from None
    except OSError as exc:
        reason = exc.strerror or first_line(exc)
        raise InputError(f"{shown}: writing its output failed ({reason}); nothing was written, "
                         "check the free space and permissions of the output directory") from None


@contextlib.contextmanager
def _staged_directory(root: str) -> Iterator[str]:
    """A new hidden directory beside ``root``; on success its contents move into ``root``
    (created if missing), on any failure (Ctrl-C and SIGTERM included) it is removed together
    with any parent directory this call created, and ``root`` is left as it was."""
    root = os.path.abspath(root)
    created: list[str] = []
    staging: str | None = None
    try:
        created = _make_parents(os.path.dirname(root))
        while staging is None:  # bound before it exists: an interrupt still removes it
            staging = os.path.join(os.path.dirname(root),
                                   f".{os.path.basename(root)}.{secrets.token_hex(6)}.tmp")
            try:
                os.mkdir(staging, 0o777)  # the umask applies, as to any directory
            except FileExistsError:
                staging = None
        yield staging
        _publish(staging, root)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        raise


def _make_parents(directory: str) -> list[str]:
    """Create ``directory`` and its missing parents; the ones created, outermost first."""
    missing = []
    while not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    missing.reverse()
    for path in missing:
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"{path}: cannot create it ({exc.strerror}); choose another "
                             "output directory") from None
    return missing


def _publish(staging: str, root: str) -> None:
    """Move the staged tree into ``root``: one rename when ``root`` does not exist, else file
    by file (replacing older files, which keep their permissions) after checking that no file
    would land on a directory or the reverse."""
    if not os.path.exists(root):
        os.rename(staging, root)
        return
    moves = []
    for folder, _, files in os.walk(staging):
        target_folder = os.path.join(root, os.path.relpath(folder, staging))
        if os.path.exists(target_folder) and not os.path.isdir(target_folder):
            raise InputError(f"{target_folder}: exists and is not a directory; move it away")
        for name in files:
            target = os.path.join(target_folder, name)
            if os.path.isdir(target):
                raise InputError(f"{target}: is a directory where an output file goes; move it "
                                 "away")
            moves.append((os.path.join(folder, name), target))
    for staged, target in moves:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(staged, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(staged, target)
    shutil.rmtree(staging, ignore_errors=True)
