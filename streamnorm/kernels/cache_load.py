"""Load this package's cached kernels without setting up numba's whole compiler first.

Before numba loads a function from its on-disk cache it refreshes the CPU target: it imports
and registers every typing and lowering registry numba has (about 250 modules' worth: unicode,
typed containers, random, polynomials, cffi, datetime...), which is what a *compilation*
needs. Loading machine code from the cache needs none of it: only numba's runtime (NRT, the
allocator the kernels' arrays use), which is set up here instead. The same bytes are loaded
either way, so results do not change; a 1000-row command-line ``normalize`` spends about
0.4-0.5 s (and 15 MB of RSS) less before its first batch.

When a kernel is not in the cache (first run, edited sources), the numba array math is loaded
as :func:`streamnorm.config.load_numba_math` says and numba compiles it as usual, refreshing
its target then. Numba functions outside this package are not touched.
"""

from __future__ import annotations

from types import ModuleType

from numba.core.caching import FunctionCache
from numba.core.dispatcher import Dispatcher
from numba.core.runtime import rtsys

from ..config import load_numba_math

__all__ = ["QuickLoadCache", "quick_cache_loads"]


class QuickLoadCache(FunctionCache):
    """numba's per-function cache, minus the target refresh before a load (see the module)."""

    def load_overload(self, sig: object, target_context: object) -> object:
        """The cached compile result for ``sig``, or None (then numba compiles it)."""
        rtsys.initialize(target_context)  # what cached code needs of numba's set-up
        found = None
        with self._guard_against_spurious_io_errors():
            found = self._load_overload(sig, target_context)
        if found is None:  # a compilation follows: the array math as the process wants it
            load_numba_math()
        return found


#: Whether this numba's cache has the pieces :class:`QuickLoadCache` relies on.
SUPPORTED = all(hasattr(FunctionCache, name) for name in (
    "load_overload", "_load_overload", "_guard_against_spurious_io_errors"))


def quick_cache_loads(module: ModuleType) -> int:
    """Switch every cached numba function of ``module`` to :class:`QuickLoadCache`; returns
    how many. Nothing when numba's cache class lacks what it relies on (another numba)."""
    count = 0
    if not SUPPORTED:
        return count
    for value in vars(module).values():
        cache = getattr(value, "_cache", None) if isinstance(value, Dispatcher) else None
        if type(cache) is FunctionCache:
            cache.__class__ = QuickLoadCache
            count += 1
    return count
