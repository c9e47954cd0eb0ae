"""Compute kernels, one backend per target; :func:`backend` picks one.

Every backend provides the functions of :class:`.api.Backend` on host numpy arrays, so the
layers above never know where they run (docs/design.md §2). :mod:`.memory` holds all the unsafe
pointer code. Importing this package loads no kernel: the backend modules (and numba) load
on first use, after :func:`streamnorm.config.prepare_numba` has set numba's environment.
"""

from __future__ import annotations

from ..config import apply_thread_count, prepare_numba, resolve_target
from .api import Backend
from .cache_guard import drop_stale_caches

prepare_numba()  # before any module of this package imports numba
drop_stale_caches()  # before any kernel loads from numba's cache

__all__ = ["Backend", "backend"]


def backend(target: str | None = None) -> Backend:
    """The kernel backend for ``target`` (``"cpu"``/``"cuda"``/None for the configured default).

    The first call applies ``$STREAMNORM_NUM_THREADS``. Raises ``RuntimeError`` with the way
    out when the CUDA target is asked for but unusable, ``ValueError`` for an unknown target
    or a bad thread count.
    """
    chosen = resolve_target(target)
    apply_thread_count()
    if chosen == "cpu":
        # its cached kernels load without numba's compiler set-up (.cache_load)
        from . import cpu

        return cpu  # type: ignore[return-value]  # a module satisfying the protocol
    try:
        from . import cuda
    except ImportError as exc:  # numba-cuda not installed, or the module not built
        raise RuntimeError(
            f"target 'cuda' is unavailable ({exc}): install streamnorm[cuda] and use an NVIDIA "
            "GPU, or use target='cpu'"
        ) from None
    cuda.require_device()
    return cuda  # type: ignore[return-value]
