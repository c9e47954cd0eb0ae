"""Configuration read from the environment, in one place (DESIGN §2).

``STREAMNORM_TARGET``: default compute target, ``cpu`` (default) or ``cuda``.
``STREAMNORM_NUM_THREADS``: threads for the CPU kernels (default: numba's default, all cores).
``STREAMNORM_JSON_BLOCK_SIZE``: bytes per JSON-lines block, also the longest line read (1 MiB).
"""

from __future__ import annotations

import os

TARGETS = ("cpu", "cuda")
#: Bytes per JSON-lines block by default (pyarrow's default): also the longest line read, so
#: that a file without line breaks (or full of NUL bytes) fails in bounded memory.
JSON_BLOCK_SIZE = 1 << 20
_MAX_BLOCK_SIZE = (1 << 31) - 1  # pyarrow's block size is a 32-bit int


def resolve_target(target: str | None) -> str:
    """The compute target to use: ``target`` if given, else ``$STREAMNORM_TARGET``, else cpu."""
    chosen = (target or os.environ.get("STREAMNORM_TARGET") or "cpu").strip().lower()
    if chosen not in TARGETS:
        raise ValueError(f"unknown target {chosen!r}: use one of {', '.join(TARGETS)}")
    return chosen


def apply_thread_count(threads: int | None = None) -> None:
    """Set numba's thread count from ``threads`` or ``$STREAMNORM_NUM_THREADS`` (if either set)."""
    value = threads if threads is not None else os.environ.get("STREAMNORM_NUM_THREADS")
    if value in (None, ""):
        return
    import numba

    count = int(value)
    if not 1 <= count <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(
            f"thread count {count} is out of range: use 1..{numba.config.NUMBA_NUM_THREADS}"
        )
    numba.set_num_threads(count)


def json_block_size(block_size: int | None = None) -> int:
    """Bytes per JSON-lines block, which is also the longest line that can be read:
    ``block_size`` if given, else ``$STREAMNORM_JSON_BLOCK_SIZE``, else :data:`JSON_BLOCK_SIZE`."""
    value: object = block_size
    if value is None:
        value = os.environ.get("STREAMNORM_JSON_BLOCK_SIZE") or JSON_BLOCK_SIZE
    try:
        size = int(value)  # type: ignore[call-overload]
    except ValueError:
        size = 0
    if not 1 <= size <= _MAX_BLOCK_SIZE:
        from .errors import InputError

        raise InputError(f"JSON block size {value!r} is not a number of bytes from 1 to "
                         f"{_MAX_BLOCK_SIZE}; fix STREAMNORM_JSON_BLOCK_SIZE or block_size=")
    return size
