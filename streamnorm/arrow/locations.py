"""Where data lives: URIs and local paths, filesystems, globs, directory listings.

The one glob detector (:func:`has_glob`) and the one recursive directory expansion
(:func:`list_files`, :func:`list_directory`) of the package live here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from ..errors import InputError
from .failures import first_line
from .formats import format_of

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
_GLOB_CHARS = re.compile(r"[*?\[]")


def is_path(source: object) -> bool:
    """Whether ``source`` names a file (str or os.PathLike) rather than holding data."""
    return isinstance(source, (str, os.PathLike))


def is_uri(text: str) -> bool:
    """Whether ``text`` is a URI with a scheme (``s3://…``, ``file://…``), not a local path."""
    return bool(_URI.match(text))


def has_glob(text: str) -> bool:
    """Whether ``text`` holds a glob character (``*``, ``?`` or ``[``): a file pattern, or a
    column-name pattern."""
    return bool(_GLOB_CHARS.search(text))


def is_path_list(source: object) -> bool:
    """Whether ``source`` is a non-empty list or tuple of paths / URIs."""
    return (isinstance(source, (list, tuple)) and bool(source)
            and all(isinstance(item, (str, os.PathLike)) for item in source))


def is_local_file(source: object) -> bool:
    """A local path, not a directory nor a glob nor CSV / JSON: read by the file reader
    itself (which reports a missing file)."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    text = os.fspath(source)
    return (not is_uri(text) and not has_glob(text) and not Path(text).is_dir()
            and format_of(text) not in ("csv", "json"))


def resolve(path: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or an object-store URI."""
    text = os.fspath(path)
    if is_uri(text):
        try:
            return pafs.FileSystem.from_uri(text)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise InputError(f"{text}: cannot open this location ({first_line(exc)}); check "
                             "the URI, the credentials and e.g. AWS_ENDPOINT_URL") from None
    return pafs.LocalFileSystem(), os.path.abspath(text)


def display(fs: pafs.FileSystem, path: str) -> str:
    """How a file is named in messages: its path, or ``scheme://path`` on an object store."""
    if isinstance(fs, pafs.LocalFileSystem):
        return path
    return f"{fs.type_name}://{path}"


def file_info(fs: pafs.FileSystem, path: str, shown: str) -> pafs.FileInfo:
    """``fs.get_file_info(path)``; an unreachable location is an :class:`InputError`."""
    try:
        return fs.get_file_info(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{shown}: cannot reach it ({first_line(exc)}); check the location "
                         "and the credentials") from None


def _visible(relative: str) -> bool:
    """Files that datasets skip: any path segment starting with ``.`` or ``_``."""
    return not any(part.startswith((".", "_")) for part in relative.split("/") if part)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` within one path segment, ``**/`` across segments, ``[...]`` classes."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def split_glob(path: str) -> tuple[str, re.Pattern[str]]:
    """(the directory before the first segment with a glob character, the regex the rest
    of a path below it must match)."""
    parts = path.split("/")
    static = []
    for part in parts:
        if has_glob(part):
            break
        static.append(part)
    return "/".join(static) or "/", _glob_regex("/".join(parts[len(static):]))


def list_files(fs: pafs.FileSystem, base: str) -> list[str]:
    """Every visible file under directory ``base``, recursively, sorted (a path segment
    starting with ``.`` or ``_`` hides what is below it, as in datasets)."""
    selector = pafs.FileSelector(base, recursive=True)
    found = []
    for info in fs.get_file_info(selector):
        if info.type == pafs.FileType.File and _visible(info.path[len(base):]):
            found.append(info.path)
    return sorted(found)


def list_directory(directory: str | os.PathLike) -> list[str]:
    """:func:`list_files` of a local directory, each path starting with ``directory`` as
    given (relative stays relative)."""
    text = os.fspath(directory)
    base = os.path.abspath(text)
    return [os.path.join(text, *path[len(base):].lstrip("/").split("/"))
            for path in list_files(pafs.LocalFileSystem(), base)]


def expand_glob(fs: pafs.FileSystem, path: str, shown: str) -> tuple[str, list[str]]:
    """(base directory, matching files) for a path containing glob characters."""
    base, regex = split_glob(path)
    if file_info(fs, base, shown).type != pafs.FileType.Directory:
        raise InputError(f"{shown}: no file matches ({base} is not a directory); check the pattern")
    files = [p for p in list_files(fs, base) if regex.match(p[len(base):].lstrip("/"))]
    if not files:
        raise InputError(f"{shown}: no file matches the pattern; check it")
    return base, files


def join_location(root: str, relative: str) -> str:
    """``relative`` below directory ``root`` (a local path or a URI)."""
    return root.rstrip("/") + "/" + relative if is_uri(root) else os.path.join(root, relative)
