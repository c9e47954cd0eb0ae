"""What a normalize loads (issue 14, peak memory): no pandas (33 MB), and on the command line
no scipy.linalg (16 MB); pandas users and numba users of the same process unaffected. Also the
pieces behind it: the pandas-free array builders, and the local Parquet reader's small buffers."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import assert_ok, run_python

from streamnorm.arrow.parquet import (
    PARQUET_LOCAL_BUFFER_BYTES,
    open_parquet,
    parquet_batches,
)
from streamnorm.columns import numpy_array, string_array


def _source(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    table = pa.table({"a": rng.normal(1e6, 3.0, 5000), "b": rng.integers(0, 9, 5000),
                      "s": pa.array(["x"] * 5000)})
    path = tmp_path / "in.parquet"
    pq.write_table(table, path)
    return path


def _run(tmp_path: Path, body: str) -> dict:
    """Run ``body`` in a fresh interpreter (``src``, ``dst`` given); its last line is JSON."""
    script = textwrap.dedent(f"""
        import json, sys
        src, dst = {str(tmp_path / 'in.parquet')!r}, {str(tmp_path / 'out.parquet')!r}
    """) + textwrap.dedent(body)
    done = run_python("-c", script, cwd=tmp_path)
    assert_ok(done)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_command_line_normalize_loads_neither_pandas_nor_scipy_linalg(tmp_path: Path) -> None:
    _source(tmp_path)
    got = _run(tmp_path, """
        import streamnorm
        from streamnorm.cli import main
        assert main(["normalize", src, dst, "--no-progress"]) == 0
        print(json.dumps({m: m in sys.modules for m in ("pandas", "scipy.linalg", "numba")}))
    """)
    assert got == {"pandas": False, "scipy.linalg": False, "numba": True}


def test_library_normalize_file_loads_no_pandas(tmp_path: Path) -> None:
    _source(tmp_path)
    got = _run(tmp_path, """
        import streamnorm as sn
        sn.normalize_file(src, dst)
        sn.normalize_file(src, dst + ".minmax.parquet", mode="minmax")
        stats = sn.feature_stats(src)
        stats.to_arrow(); stats.to_dict()
        print(json.dumps({"pandas": "pandas" in sys.modules}))
    """)
    assert got == {"pandas": False}


def test_after_the_command_scipy_linalg_and_numba_blas_still_work(tmp_path: Path) -> None:
    # scipy.linalg is hidden only while numba's array math loads: later imports and numba
    # functions that need BLAS (np.dot) work as usual in the same process.
    _source(tmp_path)
    got = _run(tmp_path, """
        import numpy as np
        from streamnorm.cli import main
        assert main(["normalize", src, dst, "--no-progress"]) == 0
        import scipy.linalg
        import numba
        dot = numba.njit(lambda a, b: np.dot(a, b))
        x = np.arange(4.0)
        print(json.dumps({"dot": float(dot(x, x)), "lu": callable(scipy.linalg.lu)}))
    """)
    assert got == {"dot": 14.0, "lu": True}


def test_output_is_the_same_with_pandas_loaded(tmp_path: Path) -> None:
    # The statistics record is built without pa.array: a process that loaded pandas first
    # (pyarrow's pandas paths then active) writes the same file, byte for byte.
    _source(tmp_path)
    for name, pre in (("plain", ""), ("pandas", "import pandas")):
        _run(tmp_path, f"""
            {pre}
            from streamnorm.cli import main
            assert main(["normalize", src, dst + ".{name}.parquet", "--no-progress"]) == 0
            print("{{}}")
        """)
    plain = (tmp_path / "out.parquet.plain.parquet").read_bytes()
    assert plain == (tmp_path / "out.parquet.pandas.parquet").read_bytes()


def _same_bits(got: pa.Array, want: pa.Array) -> bool:
    return (got.type == want.type and got.null_count == want.null_count
            and got.to_numpy(zero_copy_only=False).tobytes()
            == want.to_numpy(zero_copy_only=False).tobytes())


@pytest.mark.parametrize(("values", "arrow_type"), [
    (np.array([1.0, np.nan, -np.inf, -0.0, 5e-324]), pa.float64()),
    (np.arange(6).reshape(2, 3), pa.int64()),
    (np.arange(6).reshape(2, 3).T, pa.int64()),  # not C-contiguous: C order, like np.ravel
    (np.array([1, 2], np.int32), pa.int64()),
    (np.array([3.0, 4.0]), pa.int64()),
    (np.array([1.5, 2.0], np.float32), pa.float64()),
    (np.zeros(0), pa.float64()),
    (np.array([1.0, -2.5, np.nan], ">f8"), pa.float64()),  # big-endian: read as values
])
def test_numpy_array_is_pa_array(values: np.ndarray, arrow_type: pa.DataType) -> None:
    got = numpy_array(values, arrow_type)
    got.validate(full=True)
    native = np.ravel(values).astype(values.dtype.newbyteorder("="))  # pa.array refuses ">f8"
    assert _same_bits(got, pa.array(native, arrow_type))


def test_numpy_array_refuses_what_pa_array_refuses() -> None:
    with pytest.raises(pa.ArrowInvalid, match="truncated"):
        numpy_array(np.array([1.5]), pa.int64())


@pytest.mark.parametrize("values", [[], ["a", "é€𝄞", None, ""], [None, None], ["x" * 70_000]])
def test_string_array_is_pa_array(values: list[str | None]) -> None:
    got = string_array(values)
    got.validate(full=True)
    assert got.equals(pa.array(values, pa.string()))


def test_local_parquet_small_buffer_reads_every_page_size(tmp_path: Path) -> None:
    # A local path reads through a 32 KiB buffer (pages larger than it are read directly),
    # a file object through 256 KiB: the same batches either way, for pages smaller and
    # larger than the buffer, with a dictionary page, checksums verified.
    rng = np.random.default_rng(3)
    n = 60_000
    table = pa.table({f"c{j}": rng.normal(0, 1, n) for j in range(3)}
                     | {"k": rng.integers(0, 5, n), "s": pa.array(["ab"] * n)})
    for page, name in ((1 << 10, "small"), (8 * PARQUET_LOCAL_BUFFER_BYTES, "large")):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path, data_page_size=page, row_group_size=25_000,
                       write_page_checksum=True, use_dictionary=["k", "s"])
        for source in (path, str(path), pa.OSFile(str(path))):
            got = pa.Table.from_batches(
                list(parquet_batches(path, open_parquet(source), None, 4096)))
            assert got.equals(table)
