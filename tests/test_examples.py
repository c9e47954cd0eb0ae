"""The scripts in examples/ run end to end on small sizes (their ROWS argument)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_python

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script", ["normalize_parquet.py", "pipeline_batches.py",
                                    "pipe_normalize.py"])
def test_example_runs(tmp_path, script):
    proc = run_python(EXAMPLES / script, "20000", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.strip()
