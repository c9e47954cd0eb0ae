"""Outputs against inputs: refusing an output a source reads (or would read on its next
run), and naming the output of each input file of a dataset."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pyarrow.fs as pafs

from ..errors import InputError
from .dataset import DataSource
from .formats import COMPRESSION_SUFFIXES, format_of
from .locations import (
    expand_glob,
    has_glob,
    is_path_list,
    is_uri,
    list_files,
    resolve,
    split_glob,
)


def _input_locations(source: Any) -> list[str]:
    """The local paths, directories and globs ``source`` reads (none for URIs and data)."""
    if isinstance(source, DataSource):
        local = isinstance(source.filesystem, pafs.LocalFileSystem)
        return _input_locations(source.location) + [p.path for p in source.parts if local]
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        return [] if is_uri(text) else [text, *_files_under(text)]
    if is_path_list(source):
        return [path for item in source for path in _input_locations(item)]
    return []


def _files_under(location: str) -> list[str]:
    """The files a local glob matches or a local directory holds (none if it holds none)."""
    fs, path = resolve(location)
    try:
        if has_glob(path):
            return expand_glob(fs, path, location)[1]
        return list_files(fs, path) if os.path.isdir(path) else []
    except (InputError, OSError):
        return []  # reading the source will report it


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def _inside(path: str, directory: str) -> bool:
    """Whether ``path`` is ``directory`` or lies under it (symlinks resolved)."""
    real, base = os.path.realpath(path), os.path.realpath(directory)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _collision(location: str, output: str) -> str | None:
    """Why a later reading of input ``location`` would take the file ``output`` as input (it
    lies in the directory, or matches the glob); None if it would not."""
    if has_glob(location):
        base, regex = split_glob(resolve(location)[1])
        if _inside(output, base):
            relative = os.path.relpath(os.path.realpath(output), os.path.realpath(base))
            if regex.match(relative):
                return f"matches the input pattern {location}, so it would be read as input"
    elif os.path.isdir(location) and _inside(output, location):
        return f"is inside the input directory {location}, so a later run would read it as input"
    return None


def check_output_not_input(source: Any, output: str | os.PathLike,
                           files: Sequence[str | os.PathLike] | None = None) -> None:
    """Refuse, with an :class:`InputError`, an output that ``source`` reads or would read.

    ``output`` is a file (``files`` None) or a directory receiving ``files``. A file may not
    be an input (symlinks, hard links, ``./`` and relative paths resolved), lie inside an input
    directory nor match an input glob; a directory may not be an input directory nor lie
    inside one. Object-store URIs are not checked.
    """
    if is_uri(os.fspath(output)):
        return
    locations = _input_locations(source)
    if files is not None:
        for location in locations:
            if not has_glob(location) and os.path.isdir(location) \
                    and _inside(output, location):
                raise InputError(f"{os.fspath(output)}: is inside the input directory "
                                 f"{location} (or is it), whose next reading would take the "
                                 "outputs as inputs; choose a directory outside it")
    for target in map(os.fspath, [output] if files is None else files):
        for location in locations:
            if not has_glob(location) and not os.path.isdir(location) \
                    and _same_file(location, target):
                raise InputError(f"{target}: is also an input ({location}); refusing to "
                                 "overwrite the input, choose another output")
        for location in locations:
            why = _collision(location, target)
            if why is not None:
                raise InputError(f"{target}: {why}; choose another output")


def output_name(relative: str, suffix: str | None = None) -> str:
    """The output path of an input file: the same relative path; CSV / JSON lines (and any
    compression suffix) become ``.parquet`` unless ``suffix`` is given."""
    stem, ext = relative, ""
    lower = relative.lower()
    for compression in COMPRESSION_SUFFIXES:
        if lower.endswith(compression):
            stem = relative[: -len(compression)]
            break
    stem, ext = os.path.splitext(stem)
    if suffix is None:
        suffix = ext if format_of(relative) in ("parquet", "ipc") else ".parquet"
    return stem + suffix
