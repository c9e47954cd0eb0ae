"""Smoke test of the peer comparison (``python -m streamnorm.bench``): tiny sizes, no timings."""

from __future__ import annotations

import json

from helpers import run_python

from streamnorm import bench


def test_bench_quick_runs_every_target(tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    code = bench.main(["--quick", "--rows", "3000", "--cols", "3", "--batch-rows", "1000",
                       "--ln-rows", "300", "--ln-width", "8", "--file-rows", "2000",
                       "--targets", "stats,layer", "--json", str(out_json)])
    assert code == 0
    text = capsys.readouterr().out
    assert "per-feature statistics" in text and "per-row LayerNorm" in text
    assert "streamnorm FeatureStats.update" in text
    results = json.loads(out_json.read_text())
    assert results["stats"]["streamnorm FeatureStats.update"] > 0


def test_bench_file_target_and_module_entry_point(tmp_path):
    done = run_python("-m", "streamnorm.bench", "--quick", "--targets", "file",
                      "--file-rows", "3000", "--cols", "3", "--workdir", tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "streamnorm normalize (command line)" in done.stdout
    assert list(tmp_path.iterdir()) == []  # its Parquet files are cleaned up


def test_bench_rejects_unknown_target(capsys):
    assert bench.main(["--quick", "--targets", "nope"]) == 2
    assert "unknown target" in capsys.readouterr().err
