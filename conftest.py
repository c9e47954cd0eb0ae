"""Root pytest configuration: modules that must not be imported by doctest collection, and the
numba cache filled once before pytest-xdist starts its workers."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

collect_ignore = ["streamnorm/__main__.py"]

_WARM = Path(__file__).resolve().parent / "tests" / "warm_kernels.py"


def _kernel_cache_is_fresh() -> bool:
    """Whether numba's cache index of the main kernel module is newer than its source."""
    spec = importlib.util.find_spec("streamnorm")
    if spec is None or spec.origin is None:
        return False
    source = Path(spec.origin).parent / "kernels" / "cpu_moments.py"
    if os.environ.get("NUMBA_CACHE_DIR"):  # one folder per source folder, named after it
        index = list(Path(os.environ["NUMBA_CACHE_DIR"]).glob("kernels*/cpu_moments.*.nbi"))
    else:
        index = list((source.parent / "__pycache__").glob("cpu_moments.*.nbi"))
    return bool(index) and min(p.stat().st_mtime for p in index) >= source.stat().st_mtime


def pytest_configure(config) -> None:
    """With ``-n``: compile the CPU kernels into numba's cache (``tests/warm_kernels.py``, its
    two parts at once) before the workers start, unless the cache is already filled. Each
    worker, and each ``streamnorm`` subprocess of a test, then loads them instead of compiling
    the same ones again. A failed warm-up only costs that saving: it is reported, not fatal."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    if _kernel_cache_is_fresh() or os.environ.get("STREAMNORM_TEST_NO_WARMUP") == "1":
        return  # (the variable: to time the suite without the warm-up)
    runs = [(part, subprocess.Popen([sys.executable, str(_WARM), part], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True))
            for part in ("stats", "normalize")]
    for part, run in runs:
        output, _ = run.communicate()
        if run.returncode != 0:
            tail = output.strip().splitlines()[-1:] or ["(no output)"]
            print(f"tests/warm_kernels.py {part} failed (the kernels compile where first used): "
                  f"{tail[0]}", file=sys.stderr)
