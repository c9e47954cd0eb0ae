"""Drop this package's cached kernels when any of its source files changed.

Numba keys a cached kernel on its own source file only (its modification time and size), but
a kernel compiles in the code of every function it calls, and the kernels here call across
files (``cpu_small`` and ``cpu_update`` inline ``cpu_moments``' block loops, which inline
``cpu_block``'s vector code). After an edit to one file, or an upgrade that rewrites only some
files, the kernels of the other files would load their old code from the cache: two paths
that must agree to the bit would not. So the package keeps one fingerprint of all its source
files beside the caches, and when it differs the cached kernels are deleted before any is
loaded; the next calls compile afresh and cache again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

#: The file, in the package's ``__pycache__``, holding the fingerprint the caches were made
#: with.
STAMP_NAME = "streamnorm-kernels.sha256"


def source_fingerprint(package: Path) -> str:
    """SHA-256 (hex) over the names and bytes of ``package``'s ``*.py`` files, in name order."""
    digest = hashlib.sha256()
    for path in sorted(package.glob("*.py")):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def drop_stale_caches(package: Path = Path(__file__).parent) -> bool:
    """Delete numba's cache files (``*.nbi``, ``*.nbc``) in ``package/__pycache__`` unless they
    were made from the same sources (:func:`source_fingerprint`); True when it deleted.

    Only numba's in-tree cache is concerned: with ``NUMBA_CACHE_DIR`` set, or a read-only
    install (then numba caches in a user-wide directory), nothing is done here. Never raises
    for a file system that refuses: a cache it cannot delete is one it cannot write either.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return False
    cache = package / "__pycache__"
    stamp = cache / STAMP_NAME
    fingerprint = source_fingerprint(package)
    try:
        if stamp.read_text() == fingerprint:
            return False
    except OSError:
        pass  # no stamp yet: caches from before the guard, or none
    dropped = False
    for pattern in ("*.nbi", "*.nbc"):
        for path in cache.glob(pattern):
            with contextlib.suppress(OSError):
                path.unlink()
                dropped = True
    with contextlib.suppress(OSError):
        cache.mkdir(exist_ok=True)
        staged = cache / f"{STAMP_NAME}.{os.getpid()}.tmp"
        staged.write_text(fingerprint)
        os.replace(staged, stamp)  # processes starting together each write the same text
    return dropped
