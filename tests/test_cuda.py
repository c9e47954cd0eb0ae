"""The CUDA target: its kernel tests (in subprocesses) and its error when there is no GPU.

The kernel tests live in ``tests/cuda_sim``. The CUDA simulator must be switched on before
``numba.cuda`` is first imported, and this process may already have imported it without the
simulator, so they run in a fresh interpreter with ``NUMBA_ENABLE_CUDASIM=1``; on a machine
with a GPU they also run on the device. Everything here is skipped when numba-cuda (the
``cuda`` extra) is not installed, except the check that the CUDA target then fails clearly.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import streamnorm as sn

ROOT = Path(__file__).resolve().parent.parent
HAS_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
needs_numba_cuda = pytest.mark.skipif(
    not HAS_NUMBA_CUDA, reason="numba-cuda is not installed (pip install 'streamnorm[cuda]')"
)


def _run_kernel_suite(**env: str) -> None:
    command = [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "tests/cuda_sim"]
    environ = {k: v for k, v in os.environ.items() if k != "STREAMNORM_TARGET"}
    environ.update(env)
    done = subprocess.run(
        command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


def _gpu_visible() -> bool:
    if not HAS_NUMBA_CUDA or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False
    from numba import cuda

    return bool(cuda.is_available())


# The simulator runs each CUDA thread as Python: one to two minutes in one process. In shards
# (tests/cuda_sim/conftest.py), the pytest-xdist workers share it instead of one of them
# ending the run alone with it.
SIMULATOR_SHARDS = 2


@needs_numba_cuda
@pytest.mark.parametrize("shard", range(SIMULATOR_SHARDS))
def test_cuda_kernels_under_the_simulator(shard):
    _run_kernel_suite(NUMBA_ENABLE_CUDASIM="1", STREAMNORM_CUDA_SHARD=f"{shard}/{SIMULATOR_SHARDS}")


@needs_numba_cuda
@pytest.mark.skipif(not _gpu_visible(), reason="no CUDA GPU visible")
def test_cuda_kernels_on_the_gpu():
    _run_kernel_suite(NUMBA_ENABLE_CUDASIM="0", STREAMNORM_TEST_CUDA="1")


@needs_numba_cuda
@pytest.mark.skipif(
    _gpu_visible() or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
    reason="a CUDA device (or the simulator) is usable here",
)
def test_cuda_target_without_a_gpu_is_one_clear_error(monkeypatch):
    table = pa.table({"a": [1.0, 2.0]})
    with pytest.raises(RuntimeError, match=r"no CUDA GPU visible.*target='cpu'") as info:
        sn.FeatureStats(target="cuda").update(table)
    assert "\n" not in str(info.value)
    with pytest.raises(RuntimeError, match="no CUDA GPU visible"):
        sn.row_stats(table, target="cuda")
    monkeypatch.setenv("STREAMNORM_TARGET", "cuda")
    with pytest.raises(RuntimeError, match="no CUDA GPU visible"):
        sn.FeatureStats().update(table)
    monkeypatch.delenv("STREAMNORM_TARGET")
    assert sn.FeatureStats().update(table).count.tolist() == [2]  # the CPU path is unaffected


_LOWER_FOR_A_GPU = """
from types import SimpleNamespace
from numba import types as t
try:  # numba-cuda internals: typing and lowering to LLVM IR need no driver, NVVM or GPU
    import numba.cuda.dispatcher as dispatcher
    from numba.cuda.compiler import compile_cuda
except ImportError as exc:
    raise SystemExit(f"SKIP {exc}")
dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=(9, 0))
from streamnorm.kernels import cuda as g
assert not g.SIMULATOR
for dt in (t.float64, t.int64):
    for kernel, sig in [
        (g._column_partials_kernel,
         (dt[::1], t.uint8[::1], t.int64, t.boolean, t.float64, t.float64[:, ::1])),
        (g._row_moments_matrix_kernel,
         (dt[:, ::1], t.uint8[::1], t.int64, t.boolean, t.float64[:, ::1])),
        (g._row_moments_columns_kernel,
         (dt[:, ::1], t.uint8[:, ::1], t.int64[::1], t.uint8[::1], t.float64[:, ::1])),
        (g._normalize_column_kernel, (dt[::1], t.float64, t.float64, t.float32[::1])),
        (g._denormalize_column_kernel, (dt[::1], t.float64, t.float64, t.float64[::1])),
        (g._normalize_rows_kernel,
         (dt[:, ::1], t.float64[::1], t.float64[::1], t.float32[:, ::1], t.int64)),
    ]:
        ir = compile_cuda(kernel.py_func, t.void, sig, cc=(9, 0)).library.get_llvm_str()
        if kernel is g._row_moments_matrix_kernel:
            assert "shfl.sync" in ir, "the warp sums must use real shuffles on a GPU"
        if kernel is g._denormalize_column_kernel:
            assert "dmul_rn" in ir, "the inverse must not contract into an FMA"
print("OK")
"""


@needs_numba_cuda
def test_the_gpu_code_path_types_and_lowers_without_a_gpu():
    """The simulator runs the kernels as Python; this compiles the real device path (the
    shuffles, libdevice) through numba's typing and lowering, which needs no GPU."""
    environ = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run(
        [sys.executable, "-P", "-c", _LOWER_FOR_A_GPU],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300,
    )
    if done.stdout.startswith("SKIP"):
        pytest.skip(done.stdout.strip())
    assert done.returncode == 0 and done.stdout.strip() == "OK", done.stdout + done.stderr


_WITHOUT_NUMBA_CUDA = """
import sys
sys.modules["numba.cuda"] = None  # as if numba-cuda were not installed
import pyarrow as pa, streamnorm as sn
table = pa.table({"a": [1.0, 2.0]})
assert sn.FeatureStats().update(table).count.tolist() == [2]
assert "numba.cuda" not in sys.modules or sys.modules["numba.cuda"] is None
try:
    sn.FeatureStats(target="cuda").update(table)
except RuntimeError as exc:
    print(exc)
else:
    raise SystemExit("target='cuda' did not fail")
"""


def test_cuda_target_without_numba_cuda_says_what_to_install():
    environ = {k: v for k, v in os.environ.items() if k != "STREAMNORM_TARGET"}
    done = subprocess.run(
        [sys.executable, "-P", "-c", _WITHOUT_NUMBA_CUDA],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "install streamnorm[cuda]" in done.stdout and "target='cpu'" in done.stdout


def test_the_cpu_path_never_imports_numba_cuda():
    code = (
        "import sys, pyarrow as pa, streamnorm as sn\n"
        "sn.FeatureStats().update(pa.table({'a': [1.0, 2.0]}))\n"
        "sn.row_stats(pa.table({'a': [1.0, 2.0], 'b': [3, 4]}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('numba.cuda') or m == 'numba_cuda'))\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "STREAMNORM_TARGET"}
    done = subprocess.run(
        [sys.executable, "-P", "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "[]"
