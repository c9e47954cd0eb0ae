"""Configuration read from the environment, in one place (DESIGN §2).

``STREAMNORM_TARGET``: default compute target, ``cpu`` (default) or ``cuda``.
``STREAMNORM_NUM_THREADS``: threads for the CPU kernels (default: numba's default, all cores).
"""

from __future__ import annotations

import os

TARGETS = ("cpu", "cuda")


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
