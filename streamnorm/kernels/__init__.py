"""Compute kernels, one module per target; :func:`backend` picks one.

Both modules expose the same functions (``column_moments``, ``first_finite``,
``row_moments_matrix``, ``row_moments_columns``, ``normalize_column``,
``normalize_rows_matrix``, ``normalize_rows_columns``) on host numpy arrays, so the layers above
never know where they run (DESIGN §2).
"""

from __future__ import annotations

from types import ModuleType

from ..config import resolve_target


def backend(target: str | None = None) -> ModuleType:
    """The kernel module for ``target`` (``"cpu"``/``"cuda"``/None for the configured default).

    Raises ``RuntimeError`` with the way out when the CUDA target is asked for but unusable.
    """
    chosen = resolve_target(target)
    if chosen == "cpu":
        from . import cpu

        return cpu
    try:
        from . import cuda
    except ImportError as exc:  # numba-cuda not installed, or the module not built
        raise RuntimeError(
            f"target 'cuda' is unavailable ({exc}): install streamnorm[cuda] and use an NVIDIA "
            "GPU, or use target='cpu'"
        ) from None
    cuda.require_device()
    return cuda
