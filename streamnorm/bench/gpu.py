"""``python -m streamnorm.bench --gpu``: the CUDA tests on a real GPU, then the CUDA kernels
timed against the device's bandwidth (a device-to-device copy, and host → device) and torch:
the moments of a 1 GiB float64 column and a (2M, 64) float32 LayerNorm.

The CUDA backend takes host (numpy / Arrow) data and copies it to the device, so its times
include that copy: the host → device bandwidth is its ceiling, the device copy the kernels'.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .common import best_seconds


def gpu_problem() -> str | None:
    """Why the CUDA kernels cannot run on a GPU here (one line), or None when they can."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "NUMBA_ENABLE_CUDASIM=1 is set: the simulator is no GPU (unset it)"
    try:
        from numba import cuda
    except ImportError:
        return "numba-cuda is not installed (pip install 'streamnorm[cuda]')"
    try:
        if cuda.is_available():
            return None
    except Exception as exc:  # noqa: BLE001 - any driver failure means no usable GPU
        return f"CUDA is unusable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return "no CUDA GPU is visible (numba.cuda.is_available() is False)"


def run_cuda_tests(out: Any) -> bool:
    """tests/test_cuda.py on the device (the suite in tests/cuda_sim run with the GPU)."""
    root = Path.cwd()
    if not (root / "tests" / "test_cuda.py").exists():
        print("  [skipped the CUDA tests: run from the repository root (tests/test_cuda.py)]",
              file=out)
        return True
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_ENABLE_CUDASIM",
                                                             "STREAMNORM_TARGET")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
               "tests/test_cuda.py"]
    print(f"\n## CUDA tests on the GPU: {' '.join(command[2:])}", file=out)
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                          check=False)
    print("\n".join(done.stdout.strip().splitlines()[-15:]), file=out)
    return done.returncode == 0


def time_kernels(column_bytes: int, ln_rows: int, ln_width: int, repeat: int,
                 out: Any) -> dict[str, float]:
    import pyarrow as pa
    from numba import cuda

    import streamnorm as sn

    from ..kernels import backend

    sync = cuda.synchronize
    device = cuda.get_current_device()
    name = getattr(device, "name", "the simulator")
    name = name.decode() if isinstance(name, bytes) else str(name)
    n = column_bytes // 8
    host = np.random.default_rng(6).normal(1e9, 3.0, n)
    d_src = cuda.to_device(host)
    d_dst = cuda.device_array_like(d_src)
    res: dict[str, float] = {}
    res["device copy GB/s (read+write)"] = 2 * host.nbytes / best_seconds(
        lambda: d_dst.copy_to_device(d_src), repeat, sync) / 1e9
    res["host -> device GB/s"] = host.nbytes / best_seconds(
        lambda: cuda.to_device(host), repeat, sync) / 1e9
    d_dst = None  # free the device copy before the kernels run (the lambda above is done with it)
    kernels = backend("cuda")
    empty = np.zeros(0, dtype=np.uint8)
    t = best_seconds(lambda: kernels.column_moments(host, empty, 0, False, float(host[0])),
                     repeat, sync)
    res["streamnorm cuda column_moments s"] = t
    res["streamnorm cuda column_moments GB/s"] = host.nbytes / t / 1e9
    matrix = np.random.default_rng(7).standard_normal((ln_rows, ln_width), dtype=np.float32)
    table = pa.table({f"f{j}": np.ascontiguousarray(matrix[:, j]) for j in range(ln_width)})
    norm = sn.Normalizer("layer", eps=1e-5, target="cuda")
    res["streamnorm cuda LayerNorm s"] = best_seconds(lambda: norm.transform(table), repeat, sync)
    try:
        import torch

        if torch.cuda.is_available():
            tsync = torch.cuda.synchronize
            t_col = torch.from_numpy(host)
            res["torch var_mean, host data s"] = best_seconds(
                lambda: torch.var_mean(t_col.cuda(), correction=0), repeat, tsync)
            d_col = t_col.cuda()
            res["torch var_mean, device data s"] = best_seconds(
                lambda: torch.var_mean(d_col, correction=0), repeat, tsync)
            del d_col
            t_mat = torch.from_numpy(matrix)
            res["torch layer_norm, host data s"] = best_seconds(
                lambda: torch.nn.functional.layer_norm(t_mat.cuda(), (ln_width,)).cpu(),
                repeat, tsync)
            d_mat = t_mat.cuda()
            res["torch layer_norm, device data s"] = best_seconds(
                lambda: torch.nn.functional.layer_norm(d_mat, (ln_width,)), repeat, tsync)
        else:
            print("  [skipped torch: no CUDA build of torch]", file=out)
    except ImportError as exc:
        print(f"  [skipped torch: {exc}]", file=out)
    print(f"\n## CUDA kernels on {name}: a {host.nbytes / 2**30:.2f} GiB float64 column, a "
          f"({ln_rows:,}, {ln_width}) float32 LayerNorm (best of {repeat})", file=out)
    for key, value in res.items():
        print(f"  {key:<44} {value:10.4f}", file=out)
    h2d = res["host -> device GB/s"]
    print(f"  column_moments share of host -> device bandwidth: "
          f"{res['streamnorm cuda column_moments GB/s'] / h2d:.2f}", file=out)
    if "torch layer_norm, host data s" in res:
        print(f"  torch layer_norm (host data) / streamnorm: "
              f"{res['torch layer_norm, host data s'] / res['streamnorm cuda LayerNorm s']:.2f}",
              file=out)
    return res


def main_gpu(quick: bool, repeat: int | None, out: Any) -> int:
    problem = gpu_problem()
    if problem is not None:
        print(f"error: --gpu needs a CUDA GPU: {problem}", file=sys.stderr)
        return 2
    tests_ok = True if quick else run_cuda_tests(out)
    sizes = (2**24, 20_000, 64, 2) if quick else (2**30, 2_000_000, 64, 5)
    results = time_kernels(sizes[0], sizes[1], sizes[2], repeat or sizes[3], out)
    if not tests_ok:
        print("error: the CUDA tests failed on the GPU (see above)", file=sys.stderr)
        return 1
    return 0 if results else 1
