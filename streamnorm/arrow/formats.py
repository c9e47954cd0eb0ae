"""File formats: suffixes, magic bytes, the one sniffer, output formats and codecs.

Reading formats are ``"parquet"``, ``"ipc"``, ``"csv"`` and ``"json"`` (JSON lines), told by
suffix (:func:`format_of`); a binary file's exact kind (``"parquet"``, ``"ipc-file"``,
``"ipc-stream"``) is told by its first bytes (:func:`sniff`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputError

#: Suffixes read and written as Arrow IPC; ``.arrows`` is written in the stream format.
IPC_SUFFIXES = (".arrow", ".feather", ".ipc", ".arrows")
PARQUET_SUFFIXES = (".parquet", ".pq")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4", ".br")
CSV_SUFFIXES = (".csv", ".tsv")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
#: The formats a :class:`~streamnorm.arrow.dataset.DataSource` reads (its ``format=``).
FORMATS = ("parquet", "ipc", "csv", "json")

IPC_FILE_MAGIC = b"ARROW1"
PARQUET_MAGIC = b"PAR1"
#: An encapsulated IPC message (the stream format) starts with this continuation marker.
IPC_STREAM_MARKER = b"\xff\xff\xff\xff"

#: Compression codecs accepted by :class:`~streamnorm.arrow.sinks.BatchWriter`; ``None``
#: means the format's default (zstd for Parquet, uncompressed for Arrow IPC so that it can be
#: memory-mapped).
PARQUET_CODECS = ("zstd", "lz4", "snappy", "gzip", "brotli", "none")
IPC_CODECS = ("zstd", "lz4", "none")


def format_of(name: str) -> str | None:
    """``"parquet"``, ``"ipc"``, ``"csv"``, ``"json"`` from a file name's suffixes, or None."""
    lower = name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
            break
    suffix = os.path.splitext(lower)[1]
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in IPC_SUFFIXES:
        return "ipc"
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in JSON_SUFFIXES:
        return "json"
    return None


def dataset_format(formats: set[str | None]) -> str:
    """The ``pyarrow.dataset`` format name for a set of :func:`format_of` results."""
    fmt = next(iter(formats), None) or "parquet"
    return {"ipc": "ipc", "csv": "csv", "json": "json"}.get(fmt, "parquet")


def sniff(head: bytes, ipc_named: bool) -> str | None:
    """``"parquet"``, ``"ipc-file"`` or ``"ipc-stream"`` from a file's first (up to 8) bytes,
    or None. The IPC stream format has no magic: an encapsulated message starts with
    0xFFFFFFFF, or (pre-1.0 files) directly with a little-endian metadata length, so a file
    whose name says IPC (``ipc_named``) and has no other magic is read as a stream."""
    if head[:4] == PARQUET_MAGIC:
        return "parquet"
    if head[:6] == IPC_FILE_MAGIC:
        return "ipc-file"
    if head[:4] == IPC_STREAM_MARKER or ipc_named:
        return "ipc-stream"
    return None


def file_format(path: str | os.PathLike) -> str:
    """``"parquet"``, ``"ipc-file"`` or ``"ipc-stream"`` for an existing local file, from its
    bytes (:func:`sniff`); :class:`InputError` when it is missing, a directory, empty or
    neither format."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give an Arrow IPC or Parquet file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise InputError(f"{path}: the file is empty (0 bytes); give an Arrow IPC or Parquet file")
    fmt = sniff(head, path.suffix.lower() in IPC_SUFFIXES)
    if fmt is None:
        raise InputError(
            f"{path}: not an Arrow IPC or Parquet file; convert it to .parquet or .arrow first"
        )
    return fmt


def sniff_binary(fs: Any, path: str, shown: str) -> str:
    """:func:`file_format` for a file of any ``pyarrow.fs`` filesystem (``shown`` names it)."""
    with fs.open_input_file(path) as fh:
        head = fh.read(8)
    if not head:
        raise InputError(f"{shown}: the file is empty (0 bytes); give a file with data")
    fmt = sniff(head, format_of(path) == "ipc")
    if fmt is None:
        raise InputError(f"{shown}: not an Arrow IPC, Parquet, CSV or JSON lines file; name it "
                         ".parquet, .arrow, .csv or .jsonl, or pass format=")
    return fmt


def output_format(path: str | os.PathLike) -> str:
    """``"parquet"``, ``"ipc-file"`` or ``"ipc-stream"`` for a destination, by its suffix."""
    suffix = os.path.splitext(str(path).split("?", 1)[0])[1].lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix == ".arrows":
        return "ipc-stream"
    if suffix in IPC_SUFFIXES:
        return "ipc-file"
    raise InputError(
        f"{path}: unknown output format {suffix or '(no suffix)'}; use .parquet, .arrow, "
        ".feather, .ipc or .arrows"
    )


def check_codec(fmt: str, compression: str | None) -> str | None:
    """The codec to pass to pyarrow (None: uncompressed) for output format ``fmt``, after
    checking it fits the format (:class:`ValueError` otherwise)."""
    if fmt == "parquet":
        codec = "zstd" if compression is None else compression.lower()
        if codec not in PARQUET_CODECS:
            raise ValueError(f"compression {compression!r} is not one of {PARQUET_CODECS} "
                             "(Parquet)")
        return codec
    codec = "none" if compression is None else compression.lower()
    if codec not in IPC_CODECS:
        raise ValueError(f"compression {compression!r} is not one of {IPC_CODECS} (Arrow IPC "
                         "compresses with zstd or lz4 only)")
    return None if codec == "none" else codec
