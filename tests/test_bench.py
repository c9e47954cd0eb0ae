"""Smoke test of the peer comparison (``python -m streamnorm.bench``): tiny sizes, no timings."""

from __future__ import annotations

import json
import os

from helpers import run_python

from streamnorm import bench


def test_bench_quick_runs_every_target_and_prints_the_machine(tmp_path, capsys):
    """The in-process run of the targets below; its header (every run prints one) names the
    machine and its measured bandwidth."""
    out_json = tmp_path / "bench.json"
    code = bench.main(["--quick", "--rows", "3000", "--cols", "3", "--batch-rows", "1000",
                       "--ln-rows", "300", "--ln-width", "8", "--file-rows", "2000",
                       "--targets", "stats,layer,quantiles", "--json", str(out_json)])
    assert code == 0
    text = capsys.readouterr().out
    assert "per-feature statistics" in text and "per-row LayerNorm" in text
    assert "streamnorm FeatureStats.update" in text
    assert "per-feature statistics with quantile sketches" in text
    assert "the time without quantiles, stats with quantile sketches (goal <= 8)" in text
    results = json.loads(out_json.read_text())
    assert results["stats"]["streamnorm FeatureStats.update"] > 0
    for line in ("machine: ", "vector extensions: ", "caches: ", "cores: ",
                 "memory-read bandwidth: "):
        assert line in text
    machine = results["machine"]
    assert machine["memory_read_gbs"] > 0 and machine["logical_cpus"] >= 1
    assert isinstance(machine["vector_extensions"], list) and machine["cpu"] and machine["llvm_cpu"]


def test_bench_rejects_unknown_target(capsys):
    assert bench.main(["--quick", "--targets", "nope"]) == 2
    assert "unknown target" in capsys.readouterr().err


def test_bench_new_targets_and_goal_lines(tmp_path):
    out_json = tmp_path / "bench.json"
    done = run_python("-m", "streamnorm.bench", "--quick", "--targets", "small,wide,grouped,file",
                      "--small-calls", "3", "--wide-rows", "20", "--wide-cols", "30",
                      "--wide-groups", "2", "--group-rows", "3000", "--group-keys", "300",
                      "--file-rows", "3000", "--cols", "3", "--workdir", tmp_path,
                      "--json", out_json, timeout=900)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "streamnorm normalize (command line)" in text  # the file target, run as a module
    assert "polars two-pass: collect stats, then sink" in text
    assert "polars one expression scan ... sink_parquet" in text
    assert "update of a 1-row, 32-column batch" in text
    assert "streamnorm inverse_file" in text and "wide file: 20 rows x 30" in text
    assert "grouped statistics, 3,000 rows, 300 keys" in text
    assert "## targets (issue 14)" in text
    assert "MB peak RSS, file -> file (goal <= 400)" in text
    assert "x normalize, inverse of the wide file (goal <= 1.5)" in text
    assert "x polars group_by, grouped statistics" in text
    results = json.loads(out_json.read_text())
    assert set(results["small_us"]) >= {"streamnorm update", "streamnorm update, weights",
                                        "streamnorm update, moments=4"}
    assert set(results["file"]) == {"streamnorm", "polars-expr", "polars-2pass"}
    assert all(status in ("HIT", "MISS", "note") for status, _ in results["goals"])
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]  # data files cleaned up


def test_goal_lines_use_the_issue_thresholds():
    from streamnorm.bench.report import goal_lines

    lines = dict((text.strip().split("  ", 1)[1], status) for status, text in goal_lines({
        "stats": {"streamnorm FeatureStats.update": 1.0, "polars mean+var+min+max": 2.4,
                  "numba prange sum (memory-read ceiling)": 0.66},
        "batches": {"streamnorm, 64k": 1.0, "scikit-learn StandardScaler.partial_fit": 31.0,
                    "numba prange sum (memory-read ceiling)": 0.8},
        "file": {"streamnorm": 0.79, "polars-expr": 2.0, "polars-2pass": 1.0},
        "file_rss": {"streamnorm": 401e6},
        "small_us": {"streamnorm update": 10.0, "sklearn partial_fit": 99.0,
                     "streamnorm update, weights": 10.0,
                     "sklearn partial_fit, sample_weight": 50.0,
                     "streamnorm update, moments=4": 10.0},
        "wide": {"streamnorm normalize_file": 1.0, "streamnorm inverse_file": 1.5},
    }))
    status = {key.split(" (")[0]: value for key, value in lines.items()}
    assert status["x polars mean+var+min+max, stats"] == "MISS"
    assert status["of the memory-read ceiling, stats"] == "HIT"
    assert status["x scikit-learn partial_fit over batches"] == "HIT"
    assert status["x the faster polars way's wall"] == "HIT"  # 0.79 of polars-2pass
    assert status["MB peak RSS, file -> file"] == "MISS"
    assert status["x sklearn partial_fit of 1 row, streamnorm update"] == "MISS"  # 9.9x
    assert status["x normalize, inverse of the wide file"] == "HIT"
    # the bound of the batches' ratio: scikit-learn against a kernel at the read ceiling
    assert status["x scikit-learn partial_fit at the memory-read ceiling"] == "note"
    assert any(k.startswith("x scikit-learn partial_fit at the") and "at 0.80 of the ceiling" in k
               for k in lines)
    assert any(text.strip().startswith("38.75  x scikit-learn partial_fit at the")
               for _, text in goal_lines({"batches": {
                   "streamnorm, 64k": 1.0, "scikit-learn StandardScaler.partial_fit": 31.0,
                   "numba prange sum (memory-read ceiling)": 0.8}}))
    assert sum(v == "HIT" for v in lines.values()) == 6  # weighted 5x, moments=4 9.9x too


def test_bench_gpu_without_a_gpu_is_one_clear_line():
    done = run_python("-m", "streamnorm.bench", "--gpu", "--quick",
                      env=dict(os.environ, NUMBA_ENABLE_CUDASIM="1"), timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --gpu needs a CUDA GPU: ")


def test_bench_gpu_timings_run_under_the_simulator():
    """The timing half of ``--gpu`` at tiny sizes on the CUDA simulator (no GPU needed)."""
    import importlib.util

    import pytest

    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda is not installed")
    # (a 0.1 ms GIL switch interval: the simulator's thread polling, see tests/cuda_sim)
    code = ("import sys; sys.setswitchinterval(1e-4); "
            "from streamnorm.bench.gpu import time_kernels; "
            "r = time_kernels(8 * 4096, 256, 8, 1, sys.stdout); "
            "assert r['streamnorm cuda LayerNorm s'] > 0 and r['host -> device GB/s'] > 0")
    done = run_python("-c", code, env=dict(os.environ, NUMBA_ENABLE_CUDASIM="1"), timeout=600)
    assert done.returncode == 0, done.stderr
    assert "## CUDA kernels on " in done.stdout
