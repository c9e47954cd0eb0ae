"""What a run does before its first batch (issue 14, fixed cost of a command): a plain Parquet
normalize loads neither pyarrow's compute / CSV / JSON / dataset modules nor numba's compiler
registries, and cached kernels load through :mod:`streamnorm.kernels.cache_load` (numba's
runtime only), with a compilation still possible before and after."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import assert_ok, run_python

#: Loaded only by the formats, modes and compilations that need them.
NOT_FOR_A_PLAIN_NORMALIZE = (
    "pyarrow.compute", "pyarrow.csv", "pyarrow.json", "pyarrow.dataset", "pandas",
    "numba.np.arraymath", "numba.typed.typeddict", "numba.np.random.generator_core", "cffi",
)


def _last_json(done: object) -> dict:
    assert_ok(done)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[attr-defined]


def test_plain_normalize_loads_only_what_it_needs(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    table = pa.table({f"c{j}": rng.normal(1e6, 3.0, 1000) for j in range(4)}
                     | {"k": rng.integers(0, 5, 1000)})
    pq.write_table(table, tmp_path / "in.parquet")
    script = textwrap.dedent(f"""
        import json, sys
        from streamnorm.cli import main
        assert main(["normalize", "in.parquet", "out.parquet", "--no-progress"]) == 0
        from streamnorm.kernels import cpu
        print(json.dumps({{"loaded": [m for m in {NOT_FOR_A_PLAIN_NORMALIZE!r}
                                      if m in sys.modules],
                          "cache": type(cpu.cpu_moments.serial_column_moments._cache).__name__}}))
    """)
    # The first process compiles the kernels when this tree's cache is cold (a compilation
    # loads numba's registries); the second loads them from the cache, as users' runs do.
    _last_json(run_python("-c", script, cwd=tmp_path, timeout=900))
    got = _last_json(run_python("-c", script, cwd=tmp_path))
    assert got == {"loaded": [], "cache": "QuickLoadCache"}


_MODULE = '''
import numpy as np
from numba import njit, prange
import sys

from streamnorm.kernels.cache_load import quick_cache_loads


@njit(cache=True)
def scaled(x, a):  # allocates its result: needs numba's runtime (NRT)
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = x[i] * a
    return out


@njit(cache=True, parallel=True)
def total(x):  # a parallel kernel: its threads start when it is loaded
    s = 0.0
    for i in prange(x.shape[0]):
        s += x[i]
    return s


SWITCHED = quick_cache_loads(sys.modules[__name__])
'''


def test_quick_cache_loads_compile_then_load(tmp_path: Path) -> None:
    # First process: nothing cached, numba compiles (and caches) through QuickLoadCache;
    # second: both load from the cache without numba's registries, same results; then a new
    # numba function still compiles in that process.
    (tmp_path / "quickmod.py").write_text(_MODULE)
    script = textwrap.dedent("""
        import json, sys
        import numpy as np
        import quickmod
        x = np.arange(1.0, 1001.0)
        got = {"switched": quickmod.SWITCHED, "scaled": quickmod.scaled(x, 0.5).tolist(),
               "total": quickmod.total(x),
               "registries": "numba.np.arraymath" in sys.modules}
        import numba
        got["later"] = numba.njit(lambda v: v.sum())(x)
        print(json.dumps(got))
    """)
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{root}")
    first = _last_json(run_python("-c", script, cwd=tmp_path, env=env, timeout=600))
    second = _last_json(run_python("-c", script, cwd=tmp_path, env=env, timeout=600))
    want = (np.arange(1.0, 1001.0) * 0.5).tolist()
    assert first["switched"] == second["switched"] == 2
    assert first["scaled"] == second["scaled"] == want
    assert first["total"] == second["total"] == 500500.0
    assert first["later"] == second["later"] == 500500.0
    assert first["registries"] is True  # it compiled
    assert second["registries"] is False  # it loaded from the cache only


def test_bench_file_children_share_one_environment_with_bytecode_cached(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every way of the file target runs as an installed package does (bytecode cached), in
    # the bench's working directory, whatever PYTHONDONTWRITEBYTECODE says around it.
    from streamnorm.bench.files import child_environment

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = child_environment(2, str(tmp_path))
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert Path(env["PYTHONPYCACHEPREFIX"]).parent == tmp_path
    assert env["STREAMNORM_NUM_THREADS"] == env["POLARS_MAX_THREADS"] == "2"
