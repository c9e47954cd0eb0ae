"""The closing line of ``streamnorm normalize`` names what each mode ran with.

Batch and the per-row modes show ``eps``; minmax shows its ``feature_range`` and robust its
``quantile_range`` (eps plays no part in either: it used to print ``eps=0`` there). One
subprocess per case: the line is the CLI's own output.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import assert_ok, run_cli

import streamnorm as sn


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(4)
    table = pa.table({"x": rng.lognormal(0, 2, 300), "y": rng.normal(1e6, 1, 300)})
    pq.write_table(table, tmp_path / "in.parquet")
    return table


@pytest.mark.parametrize(("options", "shown"), [
    ((), "(batch mode, eps=0, 2 passes)"),
    (("--mode", "layer", "--eps", "0.5"), "(layer mode, eps=0.5, 1 pass)"),
    (("--mode", "minmax"), "(minmax mode, feature_range=(0, 1), 2 passes)"),
    (("--mode", "minmax", "--feature-range=-1,2.5"),
     "(minmax mode, feature_range=(-1, 2.5), 2 passes)"),
    (("--mode", "robust"), "(robust mode, quantile_range=(25, 75), 2 passes)"),
    (("--mode", "robust", "--quantile-range", "5,95"),
     "(robust mode, quantile_range=(5, 95), 2 passes)"),
    (("--online",), "(batch mode, online, eps=0, 1 pass)"),
])
def test_summary_line_shows_the_mode_options(tmp_path, data, options, shown) -> None:
    proc = run_cli("normalize", "in.parquet", "out.parquet", *options, cwd=tmp_path)
    assert_ok(proc)
    line = proc.stdout.strip()
    assert line.startswith("normalized 300 rows of 2 columns ") and shown in line, line
    if "--mode" in options and options[1] in ("minmax", "robust"):
        assert "eps=" not in line


def test_directory_output_honours_and_shows_the_quantile_range(tmp_path, data) -> None:
    """``normalize DIR OUTDIR --mode robust --quantile-range`` used to ignore the range."""
    (tmp_path / "d").mkdir()
    pq.write_table(data.slice(0, 100), tmp_path / "d" / "a.parquet")
    pq.write_table(data.slice(100), tmp_path / "d" / "b.parquet")
    proc = run_cli("normalize", "d", "out", "--mode", "robust", "--quantile-range", "10,90",
                   cwd=tmp_path)
    assert_ok(proc)
    assert "(robust mode, quantile_range=(10, 90))" in proc.stdout
    record = json.loads(pq.read_schema(tmp_path / "out" / "b.parquet").metadata[b"streamnorm"])
    assert record["options"] == {"quantile_range": [10.0, 90.0]}
    want = sn.Normalizer("robust", quantile_range=(10, 90)).fit(data).transform(data.slice(100))
    got = pq.read_table(tmp_path / "out" / "b.parquet")
    for name in ["x", "y"]:
        np.testing.assert_array_equal(got[name].to_numpy(), want[name].to_numpy())
