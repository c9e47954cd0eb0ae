"""Named pipes and devices given as paths: read and written as streams, exactly as ``-``.

A FIFO (``os.mkfifo``), bash's ``<(producer)`` / ``>(consumer)``, ``/dev/stdin`` when it is a
pipe and ``/dev/null`` cannot be memory-mapped or renamed into (they used to fail with
"lseek failed"). Each test feeds or drains a real FIFO from a thread of this process while a
``streamnorm`` subprocess (or the library) is on the other end; the results are compared with
the same command on a regular file, and the errors are the one-line errors of ``-`` naming
the path.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from helpers import CLI, assert_bad_input, assert_ok, call_cli, ipc_stream_bytes

import streamnorm as sn

TIMEOUT = 180

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")


def _table(rows: int = 2000, seed: int = 5) -> pa.Table:
    rng = np.random.default_rng(seed)
    a = rng.normal(1e7, 2.0, rows)
    a[::13] = np.nan
    return pa.table({"a": a, "b": pa.array(rng.normal(size=rows), pa.float32()),
                     "n": pa.array(rng.integers(-9, 9, rows), mask=rng.random(rows) < 0.1),
                     "tag": pa.array([f"t{i % 5}" for i in range(rows)])})


def _run(*args: str | Path, cwd: Path, stdin: bytes | None = None
         ) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *map(str, args)], input=stdin, capture_output=True, cwd=cwd,
                          timeout=TIMEOUT)
    proc.stderr = proc.stderr.decode()
    return proc


@contextlib.contextmanager
def feeding(fifo: Path, data: bytes) -> Iterator[None]:
    """Write ``data`` into the FIFO from a thread while the block runs. On the way out, a
    writer still waiting for a reader (the command refused before opening it) is released by
    opening the FIFO here and draining it."""
    def write() -> None:
        with contextlib.suppress(BrokenPipeError), open(fifo, "wb") as fh:
            fh.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=0.5)
        if thread.is_alive():
            with open(fifo, "rb") as fh:
                fh.read()
        thread.join(timeout=TIMEOUT)
        assert not thread.is_alive()


@contextlib.contextmanager
def draining(fifo: Path) -> Iterator[list[bytes]]:
    """Read everything written into the FIFO from a thread; the bytes are in the yielded list
    once the block is left. A reader still waiting for a writer is released likewise."""
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as fh:
            got.append(fh.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        thread.join(timeout=0.5)
        if thread.is_alive():
            with open(fifo, "wb"):
                pass
        thread.join(timeout=TIMEOUT)
        assert not thread.is_alive()


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[pa.Table, bytes]:
    """The table, its IPC stream bytes in ``t.arrows``, and its statistics in ``s.json``."""
    table = _table()
    data = ipc_stream_bytes(table, 300)
    (tmp_path / "t.arrows").write_bytes(data)
    sn.feature_stats(table).save(tmp_path / "s.json")
    return table, data


# --------------------------------------------------------------------------- reading


def test_stats_of_a_fifo_equal_the_file_stats(tmp_path, fifo, files) -> None:
    _, data = files
    with feeding(fifo, data):
        proc = _run("stats", fifo, "-o", "fifo.json", cwd=tmp_path)
    assert_ok(proc)
    got = sn.FeatureStats.load(tmp_path / "fifo.json")
    want = sn.feature_stats(tmp_path / "t.arrows")
    for field in ("count", "null_count", "nan_count", "mean", "m2", "min", "max"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)


def test_process_substitution_in_bash(tmp_path, files) -> None:
    """`streamnorm stats <(producer)`: bash hands over /dev/fd/63, a pipe."""
    producer = "import sys; sys.stdout.buffer.write(open('t.arrows', 'rb').read())"
    shell = f"{' '.join(CLI)} stats <({sys.executable} -c \"{producer}\")"
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, cwd=tmp_path,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == _run("stats", "t.arrows", cwd=tmp_path).stdout.decode()


def test_dev_stdin_as_a_path(tmp_path, files) -> None:
    """`producer | streamnorm normalize /dev/stdin OUT --stats S`: the same bytes as from the
    file, and as from `-`."""
    _, data = files
    assert_ok(_run("normalize", "/dev/stdin", "pipe.arrows", "--stats", "s.json",
                   stdin=data, cwd=tmp_path))
    sn.normalize_file(tmp_path / "t.arrows", tmp_path / "file.arrows", stats=tmp_path / "s.json")
    assert (tmp_path / "pipe.arrows").read_bytes() == (tmp_path / "file.arrows").read_bytes()


def test_dev_stdin_redirected_from_a_file_is_that_file(tmp_path, files) -> None:
    """`streamnorm normalize /dev/stdin OUT < file`: a regular file, so batch mode reads it
    twice (fit, then normalize) as it would the file's own path."""
    with open(tmp_path / "t.arrows", "rb") as stdin:
        proc = subprocess.run([*CLI, "normalize", "/dev/stdin", "out.arrows"], stdin=stdin,
                              capture_output=True, text=True, cwd=tmp_path, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert "2 passes" in proc.stdout
    sn.normalize_file(tmp_path / "t.arrows", tmp_path / "file.arrows")
    assert (tmp_path / "out.arrows").read_bytes() == (tmp_path / "file.arrows").read_bytes()


def test_library_reads_a_fifo_once(tmp_path, fifo, files) -> None:
    table, data = files
    with feeding(fifo, data):
        got = sn.feature_stats(fifo)
    np.testing.assert_array_equal(got.mean, sn.feature_stats(tmp_path / "t.arrows").mean)
    with feeding(fifo, data), pytest.raises(sn.InputError) as err:
        sn.normalize_file(fifo, tmp_path / "out.parquet")  # batch mode: two passes
    assert str(err.value).startswith(f"{fifo} cannot be read twice")
    assert not (tmp_path / "out.parquet").exists()


def test_library_normalizes_a_new_fifo_with_stats(tmp_path, files) -> None:
    table, data = files
    fifo = tmp_path / "other-pipe"
    os.mkfifo(fifo)
    with feeding(fifo, data):
        result = sn.normalize_file(fifo, tmp_path / "out.parquet", stats=tmp_path / "s.json")
    assert result.rows == table.num_rows and result.passes == 1
    want = sn.Normalizer.from_stats(tmp_path / "s.json").transform(table)
    got = pq.read_table(tmp_path / "out.parquet")
    assert got.schema.equals(want.schema, check_metadata=True)
    for name in want.column_names:  # NaN == NaN here
        np.testing.assert_array_equal(got[name].to_numpy(zero_copy_only=False),
                                      want[name].to_numpy(zero_copy_only=False), err_msg=name)


# --------------------------------------------------------------------------- writing


@pytest.mark.parametrize("fmt", [None, "parquet"])
def test_normalize_into_a_fifo(tmp_path, fifo, files, fmt) -> None:
    """OUT a FIFO: written as `-` is (Arrow IPC stream unless --format), message on stderr;
    the stream holds what the file output holds (the same bytes for Arrow IPC streams)."""
    extra = ("--format", fmt) if fmt else ()
    with draining(fifo) as got:
        proc = _run("normalize", "t.arrows", fifo, "--stats", "s.json", *extra, cwd=tmp_path)
    assert_ok(proc)
    assert proc.stdout == b"" and f"into {fifo}" in proc.stderr
    file = tmp_path / ("file.parquet" if fmt else "file.arrows")
    sn.normalize_file(tmp_path / "t.arrows", file, stats=tmp_path / "s.json")
    if fmt is None:
        assert got[0] == file.read_bytes()
        return
    piped, filed = pq.read_table(pa.BufferReader(got[0])), pq.read_table(file)
    assert piped.schema.equals(filed.schema, check_metadata=True)
    for name in filed.column_names:
        np.testing.assert_array_equal(piped[name].to_numpy(zero_copy_only=False),
                                      filed[name].to_numpy(zero_copy_only=False), err_msg=name)


def test_fifo_to_fifo_through_bash(tmp_path, files) -> None:
    """`streamnorm normalize <(producer) >(consumer) --stats S`."""
    shell = (f"{' '.join(CLI)} normalize <(cat t.arrows) >(cat > out.arrows) --stats s.json; "
             "wait")
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, cwd=tmp_path,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    sn.normalize_file(tmp_path / "t.arrows", tmp_path / "file.arrows", stats=tmp_path / "s.json")
    for _ in range(100):  # the consumer may still be writing when bash returns
        if (tmp_path / "out.arrows").read_bytes() == (tmp_path / "file.arrows").read_bytes():
            break
        threading.Event().wait(0.05)
    assert (tmp_path / "out.arrows").read_bytes() == (tmp_path / "file.arrows").read_bytes()


def test_dev_null_as_out(tmp_path, files) -> None:
    proc = _run("normalize", "t.arrows", "/dev/null", "--mode", "layer", cwd=tmp_path)
    assert_ok(proc)
    assert "2,000 rows" in proc.stderr


# --------------------------------------------------------------------------- errors


def test_batch_mode_without_stats_refuses_a_fifo(tmp_path, fifo, files) -> None:
    with feeding(fifo, files[1]):
        proc = _run("normalize", fifo, "out.parquet", cwd=tmp_path)
    assert_bad_input(proc, f"{fifo} cannot be read twice", "--stats FILE",
                     absent=[tmp_path / "out.parquet"])


@pytest.mark.parametrize("command, data, needle", [
    (("stats",), b"col_a,col_b\n1,2\n", "not an Arrow IPC stream"),
    (("inspect",), b"PAR1" + bytes(64), "holds Parquet"),
    (("stats",), b"", "no data"),
])
def test_a_fifo_that_is_not_an_arrow_stream(tmp_path, fifo, command, data, needle) -> None:
    with feeding(fifo, data):
        proc = _run(*command, fifo, cwd=tmp_path)
    assert_bad_input(proc, f"{fifo}: ", needle)


def test_a_truncated_fifo_names_the_path(tmp_path, fifo, files) -> None:
    data = files[1]
    with feeding(fifo, data[: len(data) // 2]):
        proc = _run("stats", fifo, cwd=tmp_path)
    assert_bad_input(proc, f"{fifo}: the stream ended in the middle of a batch")


def test_dev_null_as_in_is_an_empty_stream(tmp_path) -> None:
    assert_bad_input(_run("stats", "/dev/null", cwd=tmp_path), "/dev/null: no data")


@pytest.mark.parametrize("options, needle", [
    (("--schema", "a=float64"), "--schema"),
    (("--dask",), "--dask"),
])
def test_options_that_do_not_fit_a_fifo(tmp_path, fifo, options, needle) -> None:
    with feeding(fifo, b""):
        proc = _run("normalize", fifo, "out.parquet", "--mode", "layer", *options,
                    cwd=tmp_path)
    assert_bad_input(proc, needle, str(fifo), absent=[tmp_path / "out.parquet"])


def test_format_still_needs_a_stream_out(tmp_path, files) -> None:
    proc = _run("normalize", "t.arrows", "out.parquet", "--stats", "s.json", "--format", "csv",
                cwd=tmp_path)
    assert_bad_input(proc, "--format is for OUT - (stdout) or a pipe",
                     absent=[tmp_path / "out.parquet"])


def test_each_writer_of_a_fifo_is_a_new_stream(tmp_path, fifo, files) -> None:
    """Once a stream has ended (or failed), opening the path again reads the next writer's
    stream, as `cat fifo` twice does; nothing of the last one is kept."""
    _, data = files
    want = sn.feature_stats(tmp_path / "t.arrows")  # the stream's batching
    for payload in (data, b"junk", data):
        with feeding(fifo, payload):
            if payload == b"junk":
                with pytest.raises(sn.InputError, match=f"{fifo}: not an Arrow IPC stream"):
                    sn.feature_stats(fifo)
                continue
            got = sn.feature_stats(fifo)
        np.testing.assert_array_equal(got.mean, want.mean)
        np.testing.assert_array_equal(got.count, want.count)


def test_directory_into_dev_stdout_is_one_stream(tmp_path, files) -> None:
    """`normalize DIR /dev/stdout | consumer`: a pipe OUT is one stream, not a directory."""
    table, _ = files
    (tmp_path / "d").mkdir()
    pq.write_table(table.slice(0, 700), tmp_path / "d" / "a.parquet")
    pq.write_table(table.slice(700), tmp_path / "d" / "b.parquet")
    proc = _run("normalize", "d", "/dev/stdout", "--stats", "s.json", cwd=tmp_path)
    assert_ok(proc)
    assert "into /dev/stdout" in proc.stderr
    got = ipc.open_stream(pa.BufferReader(proc.stdout)).read_all()
    want = sn.Normalizer.from_stats(tmp_path / "s.json").transform(table)
    np.testing.assert_array_equal(got["a"].to_numpy(zero_copy_only=False),
                                  want["a"].to_numpy(zero_copy_only=False))


# --------------------------------------------------------------------------- statistics


def test_stats_to_stdout_and_back_through_a_pipe(tmp_path, files) -> None:
    """`stats IN -o -` writes the JSON state on stdout (the closing line on stderr), and
    `normalize IN OUT --stats -` reads it from stdin: the same output as through a file."""
    saved = call_cli("stats", "t.arrows", "-o", "-", cwd=tmp_path)
    assert_ok(saved)
    assert saved.stderr.startswith("wrote statistics of 3 columns over 2,000 rows to stdout")
    assert sn.FeatureStats.from_dict(json.loads(saved.stdout)) == \
        sn.feature_stats(tmp_path / "t.arrows")
    assert_ok(call_cli("normalize", "t.arrows", "piped.arrows", "--stats", "-",
                       input=saved.stdout, cwd=tmp_path))
    (tmp_path / "saved.json").write_text(saved.stdout)
    sn.normalize_file(tmp_path / "t.arrows", tmp_path / "file.arrows",
                      stats=tmp_path / "saved.json")
    assert (tmp_path / "piped.arrows").read_bytes() == (tmp_path / "file.arrows").read_bytes()


def test_stats_into_a_fifo(tmp_path, fifo, files) -> None:
    with draining(fifo) as got:
        assert_ok(_run("stats", "t.arrows", "-o", fifo, cwd=tmp_path))
    want = sn.feature_stats(tmp_path / "t.arrows")
    assert sn.FeatureStats.from_dict(json.loads(got[0])) == want


def test_stats_read_from_a_fifo_as_json_or_arrow(tmp_path, fifo, files) -> None:
    want = sn.FeatureStats.load(tmp_path / "s.json")
    with feeding(fifo, (tmp_path / "s.json").read_bytes()):
        assert sn.FeatureStats.load(fifo) == want
    with feeding(fifo, ipc_stream_bytes(want.to_arrow(), 1000)):
        assert sn.FeatureStats.load(fifo) == want


@pytest.mark.parametrize(("data", "needle"), [
    (b"", "no statistics arrived (the stream is empty)"),
    (b"not statistics", "neither JSON nor an Arrow IPC stream"),
    (b'{"version": 1', "statistics"),
])
def test_bad_statistics_on_stdin(tmp_path, files, data, needle) -> None:
    proc = call_cli("normalize", "t.arrows", "out.arrows", "--stats", "-", input=data,
                    cwd=tmp_path)
    assert_bad_input(proc, needle)
    assert proc.stderr.startswith("streamnorm: error: stdin: ")
    assert not (tmp_path / "out.arrows").exists()


def test_stdin_cannot_be_both_in_and_stats(tmp_path, files) -> None:
    _, data = files
    proc = call_cli("normalize", "-", "out.arrows", "--stats", "-", input=data, cwd=tmp_path)
    assert_bad_input(proc, "stdin cannot be both IN and --stats")


def test_binary_statistics_suffix_on_a_stream_is_refused(tmp_path, files) -> None:
    with pytest.raises(sn.InputError, match="statistics written to a pipe or device are JSON"):
        sn.FeatureStats.load(tmp_path / "s.json").save(_dev_null_named(tmp_path))


def _dev_null_named(tmp_path: Path) -> Path:
    """A character device whose name ends in .parquet: a symlink to /dev/null."""
    link = tmp_path / "sink.parquet"
    link.symlink_to("/dev/null")
    return link


def test_a_fifo_inside_a_list_or_data_source_says_why(tmp_path, fifo, files) -> None:
    """A pipe is read once as a stream; among other files (or as a DataSource) it used to be
    reported as "no such file"."""
    for opening in (lambda: sn.feature_stats([fifo, tmp_path / "t.arrows"]),
                    lambda: sn.DataSource(fifo)):
        with pytest.raises(sn.InputError) as err:
            opening()
        assert str(err.value) == (
            f"{fifo}: is a pipe or a device, which can be read only once as a stream, not as a "
            "file of a dataset; pass it alone as the input, or save it to a file first")
