"""Small things a user of the command notices: --version, the ddof of the printed std,
options every command takes, a closed pipe, the progress line."""

from __future__ import annotations

import importlib.metadata
import io as stdio
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from helpers import assert_bad_input, call_cli, run_cli, start_cli

import streamnorm as sn
from streamnorm.progress import SimpleProgress


def test_version_is_the_installed_one(tmp_path: Path) -> None:
    proc = call_cli("--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"streamnorm {sn.__version__}"
    assert sn.__version__ == importlib.metadata.version("streamnorm")


def test_stats_table_names_its_ddof(tmp_path: Path) -> None:
    values = np.array([1.0, 2.0, 4.0, 8.0])
    pq.write_table(pa.table({"x": values}), tmp_path / "d.parquet")
    for ddof in (0, 1):
        args = ["stats", "d.parquet", "--no-progress"] + (["--ddof", "1"] if ddof else [])
        proc = call_cli(*args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        header, row = proc.stdout.splitlines()
        names = header.split()
        assert f"std(ddof={ddof})" in names
        std = float(row.split()[names.index(f"std(ddof={ddof})")])
        assert abs(std - values.std(ddof=ddof)) < 1e-9
    assert_bad_input(call_cli("stats", "d.parquet", "--ddof", "-1", cwd=tmp_path), "--ddof")


def test_inspect_takes_no_progress(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1.0, 2.0]}), tmp_path / "d.parquet")
    proc = call_cli("inspect", "d.parquet", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith("x")


def test_in_process_runs_give_what_the_process_gives(tmp_path: Path) -> None:
    """call_cli, which most CLI tests use, reports what the real command reports: the same
    exit code, stdout and stderr for a table, a bad input and a usage error."""
    pq.write_table(pa.table({"x": [1.0, 2.0, None], "s": ["a", "b", "c"]}), tmp_path / "d.parquet")
    for args in (["stats", "d.parquet", "--ddof", "1"], ["stats", "missing.parquet"],
                 ["normalize", "d.parquet", "-c", "s", "o.parquet"], ["inspect", "d.parquet"]):
        real, here = run_cli(*args, cwd=tmp_path), call_cli(*args, cwd=tmp_path)
        assert (here.returncode, here.stdout, here.stderr) == (
            real.returncode, real.stdout, real.stderr), args
    assert not (tmp_path / "o.parquet").exists()


def test_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    # Wide enough that inspect's table (~200 kB) cannot fit in the pipe's 64 kB buffer: the
    # command is still writing when the reader goes away, like `streamnorm inspect f | head -1`.
    wide = pa.table({f"feature_{k:05d}": [1.0] for k in range(5000)})
    pq.write_table(wide, tmp_path / "wide.parquet")
    proc = start_cli("inspect", "wide.parquet", cwd=tmp_path)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"column")
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141  # 128 + SIGPIPE, what `yes | head -1` reports
    assert proc.stderr.read() == b""


def _screen(drawn: str) -> str:
    """What a terminal shows on the last line after ``drawn``: each \\r returns to column 0
    and later characters overwrite earlier ones."""
    line: list[str] = []
    column = 0
    for char in drawn.split("\n")[-1]:
        if char == "\r":
            column = 0
            continue
        if column < len(line):
            line[column] = char
        else:
            line.append(char)
        column += 1
    return "".join(line)


def test_progress_line_leaves_no_stray_characters() -> None:
    stream = stdio.StringIO()
    bar = SimpleProgress("fit", None, stream)
    bar.start = time.perf_counter() - 0.5  # "1k rows  10,000 MB/s  0.5 s"
    bar.update(1000, 5 * 10**9)
    bar.start = time.perf_counter() - 20.0  # "1k rows  250 MB/s  20.0 s": 2 characters shorter
    bar._last_draw = 0.0
    bar.update(1, 1)
    assert len(stream.getvalue().split("\r")[-1].rstrip()) < len(stream.getvalue().split("\r")[1])
    last = stream.getvalue().split("\r")[-1]
    assert _screen(stream.getvalue()).rstrip() == last.rstrip()
    assert _screen(stream.getvalue()).rstrip().endswith(" s")
