"""Configuration read from the environment, in one place (docs/design.md §2).

``STREAMNORM_TARGET``: default compute target, ``cpu`` (default) or ``cuda``.
``STREAMNORM_NUM_THREADS``: threads for the CPU kernels (default: numba's default, all cores).
``STREAMNORM_JSON_BLOCK_SIZE``: bytes per JSON-lines block, also the longest line read (1 MiB).

The settings that concern numba are applied by :func:`prepare_numba`, which
:mod:`streamnorm.kernels` (the only package that loads numba) runs at its import, before any
kernel module imports numba, and by :func:`apply_thread_count`, which
:func:`streamnorm.kernels.backend` runs at the first kernel use. Nothing else sets them, and
they are not changed later (``--threads`` of the bench and ``threads=`` of the Dask helpers
are explicit per-call choices on top).
"""

from __future__ import annotations

import os
import sys

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


def prepare_numba() -> None:
    """Environment numba reads when it loads or starts its threads; call before numba loads.

    ``OMP_WAIT_POLICY=PASSIVE`` unless already set: the kernels share the cores with Arrow's
    decoding / encoding threads, and OpenMP workers spinning after each kernel launch
    (libgomp's default) take their CPU (4M x 32 Parquet normalize: 4.4 s -> 3.6 s).
    ``NUMBA_NUM_THREADS`` from ``$STREAMNORM_NUM_THREADS`` unless set, while numba is not
    loaded yet: the size of numba's thread pool and the default of every thread.
    """
    global _pool_from_env
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    threads = os.environ.get("STREAMNORM_NUM_THREADS", "").strip()
    if threads.isdigit() and int(threads) >= 1 and "numba" not in sys.modules:
        _pool_from_env = os.environ.setdefault("NUMBA_NUM_THREADS", threads) == threads


_pool_from_env = False  # prepare_numba sized numba's pool from $STREAMNORM_NUM_THREADS
_numba_blas = True  # numba's array math may load scipy.linalg (see numba_without_blas)


def numba_without_blas() -> None:
    """Have :func:`load_numba_math` load numba's array math without ``scipy.linalg``: for a
    process that runs only streamnorm's kernels (the command line). Numba's CPU target imports
    ``scipy.linalg`` (16 MB resident) when it first loads, only to check that a BLAS exists
    for ``np.correlate`` / ``np.convolve``; no kernel of streamnorm uses BLAS."""
    global _numba_blas
    _numba_blas = False


def load_numba_math() -> None:
    """Load numba's NumPy overloads (``numba.np.arraymath``, which numba's CPU target loads
    before it compiles; :mod:`streamnorm.kernels.cache_load` calls this before a kernel missing
    from the cache compiles, and a kernel loaded from the cache needs none of it); after
    :func:`numba_without_blas`, with ``scipy.linalg`` hidden while it loads, so that numba's
    BLAS check finds none (``np.correlate`` and ``np.convolve`` in numba functions of this
    process then use numba's own loop; ``np.dot`` and ``np.linalg`` still load
    ``scipy.linalg`` when compiled). Nothing when numba's array math or ``scipy.linalg`` is
    loaded already."""
    if _numba_blas or "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    sys.modules["scipy.linalg"] = None  # type: ignore[assignment]  # import fails: no BLAS
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        if "scipy.linalg" in sys.modules and sys.modules["scipy.linalg"] is None:
            del sys.modules["scipy.linalg"]


_applied = False  # the thread count was applied (from the environment or explicitly)


def apply_thread_count(threads: int | None = None) -> None:
    """Set numba's thread count from ``threads``, else (once per process, at the first kernel
    use) from ``$STREAMNORM_NUM_THREADS`` if set; an explicit count wins over the variable.

    When :func:`prepare_numba` sized numba's pool from the variable before numba loaded, every
    thread already has that count and nothing is set here; otherwise (numba was loaded first)
    it is set for the calling thread. Raises ``ValueError`` for a count outside
    ``1..NUMBA_NUM_THREADS``.
    """
    global _applied
    if threads is None and _applied:
        return
    value: object = threads
    if threads is None:
        value = os.environ.get("STREAMNORM_NUM_THREADS", "").strip()
    if value not in (None, ""):
        import numba

        try:
            count = int(value)  # type: ignore[call-overload]
        except ValueError:
            count = 0
        if not 1 <= count <= numba.config.NUMBA_NUM_THREADS:
            where = " (STREAMNORM_NUM_THREADS)" if threads is None else ""
            raise ValueError(f"thread count {value!r}{where} is out of range: use "
                             f"1..{numba.config.NUMBA_NUM_THREADS}")
        if threads is not None or not _pool_from_env:
            numba.set_num_threads(count)
    _applied = True


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
