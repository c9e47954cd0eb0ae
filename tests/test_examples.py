"""The scripts in examples/ run end to end on small sizes (their ROWS argument)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script", ["normalize_parquet.py", "pipeline_batches.py"])
def test_example_runs(tmp_path, script):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "20000"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.strip()
