"""The machine a bench run measured: CPU model, vector extensions, caches, cores, and the
memory-read bandwidth (a Numba ``prange`` sum over a large array, the ceiling of every
per-feature target)."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

import numpy as np

from .common import best_seconds

#: Vector and matrix extensions worth naming, in /proc/cpuinfo's (and LLVM's) spelling.
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl",
                "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "neon", "asimd", "sve",
                "sve2")
_LLVM_NAMES = {"sse4.2": "sse4_2", "avx512vnni": "avx512_vnni", "avx512bf16": "avx512_bf16",
               "avx512fp16": "avx512_fp16", "amx-tile": "amx_tile"}


def ceiling_kernel() -> Callable[[np.ndarray], float]:
    """A Numba parallel sum over fixed chunks: the memory-read ceiling for one column."""
    from numba import njit, prange

    from ..kernels.cpu import CHUNK

    @njit(parallel=True, fastmath={"reassoc"})
    def parallel_sum(values):  # pragma: no cover - compiled
        n = values.shape[0]
        n_chunks = (n + CHUNK - 1) // CHUNK
        partial = np.zeros(n_chunks)
        for c in prange(n_chunks):
            chunk = values[c * CHUNK : min((c + 1) * CHUNK, n)]
            total = 0.0
            for i in range(chunk.shape[0]):
                total += chunk[i]
            partial[c] = total
        return partial.sum()

    return parallel_sum


def _cpuinfo() -> dict[str, Any]:
    model, flags, cores = "", set(), set()
    physical = core = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key in ("model name", "Model", "Hardware") and not model:
                    model = value
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
                elif key == "physical id":
                    physical = value
                elif key == "core id":
                    core = value
                    cores.add((physical, core))
    except OSError:
        pass
    return {"model": model or platform.processor() or platform.machine(), "flags": flags,
            "physical_cores": len(cores) or None}


def _llvm_flags() -> set[str]:
    try:
        from llvmlite import binding

        features = binding.get_host_cpu_features()
    except Exception:  # noqa: BLE001 - optional detail; /proc/cpuinfo usually answers
        return set()
    return {_LLVM_NAMES.get(name, name.replace(".", "_")) for name, on in features.items() if on}


def _llvm_cpu() -> str:
    """LLVM's name for the host CPU (the code numba generates targets it), e.g. znver3."""
    try:
        from llvmlite import binding

        return str(binding.get_host_cpu_name())
    except Exception:  # noqa: BLE001 - optional detail
        return "unknown"


def _caches() -> list[str]:
    base = "/sys/devices/system/cpu/cpu0/cache"
    found = []
    try:
        entries = sorted(e for e in os.listdir(base) if e.startswith("index"))
    except OSError:
        return found
    for entry in entries:
        def read(name: str, entry: str = entry) -> str:
            try:
                with open(os.path.join(base, entry, name)) as fh:
                    return fh.read().strip()
            except OSError:
                return ""
        level, kind, size = read("level"), read("type"), read("size")
        if not size:
            continue
        shared = read("shared_cpu_list")
        letter = {"Data": "d", "Instruction": "i"}.get(kind, "")
        found.append(f"L{level}{letter} {size}" + (f" (cpus {shared})" if shared else ""))
    return found


def measure_bandwidth(nbytes: int, repeat: int = 5) -> float:
    """Best GB/s of the parallel sum over ``nbytes`` of float64 (compiled and warmed first)."""
    values = np.random.default_rng(9).random(max(nbytes // 8, 1))
    kernel = ceiling_kernel()
    return values.nbytes / best_seconds(lambda: kernel(values), repeat) / 1e9


def describe(threads: int, bandwidth_bytes: int) -> dict[str, Any]:
    """Everything the header prints, as a dict (also the ``machine`` entry of ``--json``)."""
    info = _cpuinfo()
    flags = info["flags"] or _llvm_flags()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    return {
        "cpu": info["model"],
        "llvm_cpu": _llvm_cpu(),
        "vector_extensions": [f for f in VECTOR_FLAGS if f in flags],
        "caches": _caches(),
        "physical_cores": info["physical_cores"],
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "threads": threads,
        "memory_read_gbs": round(measure_bandwidth(bandwidth_bytes), 2),
        "memory_read_threads": threads,
    }


def print_header(machine: dict[str, Any], out: Any) -> None:
    print(f"machine: {machine['cpu']} (LLVM target {machine['llvm_cpu']})", file=out)
    print(f"  vector extensions: {' '.join(machine['vector_extensions']) or 'unknown'}", file=out)
    print(f"  caches: {'; '.join(machine['caches']) or 'unknown'}", file=out)
    print(f"  cores: {machine['physical_cores'] or '?'} physical, {machine['logical_cpus']} "
          f"logical, {machine['usable_cpus']} usable; {machine['threads']} thread(s) used",
          file=out)
    print(f"  memory-read bandwidth: {machine['memory_read_gbs']:.2f} GB/s "
          f"(numba prange sum, {machine['memory_read_threads']} thread(s))", file=out)
