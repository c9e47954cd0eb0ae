"""The kernels' numba caches are dropped when any kernel source file changes (a kernel's
cache is keyed on its own file only, but it compiles in the code it calls from other files)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamnorm.kernels.cache_guard import (
    STAMP_NAME,
    drop_stale_caches,
    source_fingerprint,
)


def _package(tmp_path: Path) -> Path:
    package = tmp_path / "kernels"
    (package / "__pycache__").mkdir(parents=True)
    (package / "a.py").write_text("def f():\n    return 1\n")
    (package / "b.py").write_text("def g():\n    return 2\n")
    return package


def _caches(package: Path) -> set[str]:
    return {p.name for p in (package / "__pycache__").iterdir() if p.suffix in (".nbi", ".nbc")}


def _make_caches(package: Path) -> None:
    for name in ("a.f-1.py311.nbi", "a.f-1.py311.1.nbc", "b.g-1.py311.nbi"):
        (package / "__pycache__" / name).write_bytes(b"cached")


def test_caches_survive_while_the_sources_stay_the_same(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    package = _package(tmp_path)
    _make_caches(package)
    assert drop_stale_caches(package)  # no stamp: caches from before the guard go
    assert _caches(package) == set()
    stamp = package / "__pycache__" / STAMP_NAME
    assert stamp.read_text() == source_fingerprint(package)
    _make_caches(package)
    assert not drop_stale_caches(package)
    assert len(_caches(package)) == 3


def test_an_edit_to_any_source_file_drops_every_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    package = _package(tmp_path)
    drop_stale_caches(package)
    _make_caches(package)
    (package / "b.py").write_text("def g():\n    return 3\n")  # a's caches inline g
    assert drop_stale_caches(package)
    assert _caches(package) == set()
    (package / "__pycache__" / "unrelated.pyc").write_bytes(b"kept")
    (package / "c.py").write_text("")  # a new file counts too
    _make_caches(package)
    assert drop_stale_caches(package)
    assert (package / "__pycache__" / "unrelated.pyc").exists()


def test_numba_cache_dir_or_a_read_only_tree_is_left_alone(tmp_path, monkeypatch) -> None:
    package = _package(tmp_path)
    _make_caches(package)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert not drop_stale_caches(package)
    assert len(_caches(package)) == 3
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    (package / "__pycache__").chmod(0o555)
    try:
        assert not drop_stale_caches(package)  # nothing it could delete, and no error
        assert len(_caches(package)) == 3
    finally:
        (package / "__pycache__").chmod(0o755)


def test_the_package_stamp_matches_its_sources_after_import() -> None:
    """Importing the kernels leaves the stamp of the installed sources (an in-tree cache)."""
    code = ("import os, pathlib, streamnorm.kernels as k; from streamnorm.kernels.cache_guard "
            "import STAMP_NAME, source_fingerprint; p = pathlib.Path(k.__file__).parent; "
            "s = p / '__pycache__' / STAMP_NAME; "
            "print(s.read_text() == source_fingerprint(p) if os.access(p, os.W_OK) else True)")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.stdout.strip() == "True", out.stderr
