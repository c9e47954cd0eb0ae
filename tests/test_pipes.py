"""Arrow over pipes (issue 16): ``-`` as IN (stdin) and OUT (stdout), in real subprocess
pipelines, and the same from Python (file objects, readers, endless iterators).

The streaming test needs no clock: the producer writes its last batch only after the
consumer has signalled (a file) that the first normalized batch reached it, so the pipeline
can only finish if streamnorm passed the first batch on before its input ended. The memory
test reads the peak RSS of the streamnorm process (``ru_maxrss`` written by a wrapper) for
streams of N and 2N bytes generated on the fly; ``STREAMNORM_PIPE_GB=5`` runs it at 5 GB and
10 GB as well.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from helpers import CLI, assert_bad_input, assert_same_stats, call_cli, ipc_stream_bytes

import streamnorm as sn

TIMEOUT = 240

PRODUCER = textwrap.dedent("""
    # A slow producer: batch, flush, pause, ... then waits for the consumer's signal file
    # before its last batch (exit 3 if that never comes: streamnorm held the first batch back).
    import os, sys, time
    import numpy as np, pyarrow as pa, pyarrow.ipc as ipc
    signal_file, batches = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(7)
    out = sys.stdout.buffer
    writer = None
    for i in range(batches):
        if i == batches - 1:
            deadline = time.monotonic() + 120
            while not os.path.exists(signal_file):
                if time.monotonic() > deadline:
                    sys.exit(3)
                time.sleep(0.02)
        batch = pa.record_batch({"a": rng.normal(5, 2, 500), "b": rng.normal(size=500),
                                 "tag": pa.array([f"r{i}"] * 500)})
        if writer is None:
            writer = ipc.new_stream(out, batch.schema)
        writer.write_batch(batch)
        out.flush()
        time.sleep(0.05)
    writer.close()
""")

CONSUMER = textwrap.dedent("""
    # Reads the first batch, then creates the signal file, then reads the rest.
    import sys
    import pyarrow.ipc as ipc
    reader = ipc.open_stream(sys.stdin.buffer)
    rows = reader.read_next_batch().num_rows
    open(sys.argv[1], "w").close()
    rows += sum(b.num_rows for b in reader)
    print(rows)
""")

BIG_PRODUCER = textwrap.dedent("""
    # GB of Arrow IPC stream generated on the fly: one 8 MiB batch written again and again.
    import sys
    import numpy as np, pyarrow as pa, pyarrow.ipc as ipc
    total = float(sys.argv[1]) * 1e9
    rng = np.random.default_rng(0)
    batch = pa.record_batch({f"c{i}": rng.normal(3, 2, 131072) for i in range(8)})
    writer = ipc.new_stream(sys.stdout.buffer, batch.schema)
    for _ in range(int(total // batch.nbytes)):
        writer.write_batch(batch)
    writer.close()
""")

PEAK_RSS_WRAPPER = textwrap.dedent("""
    # streamnorm's main, then its peak RSS (KiB) into the file argv[1].
    import resource, sys
    from streamnorm.cli.runner import main
    code = main(sys.argv[2:])
    with open(sys.argv[1], "w") as fh:
        fh.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
    sys.exit(code)
""")


def _table(rows: int = 3000, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    a = rng.normal(1e6, 3.0, rows)
    a[::17] = np.nan
    return pa.table({"a": a, "b": pa.array(rng.normal(size=rows), pa.float32()),
                     "n": pa.array(rng.integers(-5, 5, rows)),
                     "tag": pa.array([f"t{i % 7}" for i in range(rows)])})


def _run(*args: str | Path, stdin: bytes = b"", cwd: Path) -> subprocess.CompletedProcess:
    """``streamnorm ARGS`` with ``stdin`` piped in; stdout bytes, stderr text."""
    proc = subprocess.run([*CLI, *map(str, args)], input=stdin, capture_output=True,
                          cwd=cwd, timeout=TIMEOUT)
    proc.stderr = proc.stderr.decode()
    return proc


def _here(*args: str | Path, stdin: bytes = b"", cwd: Path) -> subprocess.CompletedProcess:
    """:func:`_run` in this process (:func:`helpers.call_cli`), for what the command does with
    the bytes it reads rather than with the pipe: stdout bytes, stderr text."""
    proc = call_cli(*args, input=stdin, cwd=cwd)
    proc.stdout = proc.stdout_bytes
    return proc


def _read_stream(data: bytes) -> pa.Table:
    return ipc.open_stream(pa.BufferReader(data)).read_all()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("how", [("--mode", "layer"), ("--stats", "s.json")])
def test_first_batch_reaches_the_consumer_before_the_producer_ends(tmp_path, how):
    if how[0] == "--stats":
        sn.FeatureStats().update(pa.table({"a": [1.0, 5.0, 9.0], "b": [0.0, 1.0, 2.0]})
                                 ).save(tmp_path / "s.json")
    producer = _write(tmp_path, "producer.py", PRODUCER)
    consumer = _write(tmp_path, "consumer.py", CONSUMER)
    signal_file = tmp_path / "got-first-batch"
    prod = subprocess.Popen([sys.executable, producer, signal_file, "4"],
                            stdout=subprocess.PIPE, cwd=tmp_path)
    norm = subprocess.Popen([*CLI, "normalize", "-", "-", *how], stdin=prod.stdout,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    cons = subprocess.Popen([sys.executable, consumer, signal_file], stdin=norm.stdout,
                            stdout=subprocess.PIPE, cwd=tmp_path, text=True)
    prod.stdout.close()
    norm.stdout.close()
    rows, _ = cons.communicate(timeout=TIMEOUT)
    norm_err = norm.stderr.read().decode()
    assert prod.wait(timeout=TIMEOUT) == 0, "the producer never saw the consumer's signal"
    assert norm.wait(timeout=TIMEOUT) == 0, norm_err
    assert cons.returncode == 0
    assert rows.strip() == "2000"
    assert norm_err.startswith("normalized 2,000 rows"), norm_err  # messages on stderr


def _peak_rss_kib(tmp_path: Path, gigabytes: float, *args: str) -> int:
    producer = _write(tmp_path, "big.py", BIG_PRODUCER)
    wrapper = _write(tmp_path, "wrapper.py", PEAK_RSS_WRAPPER)
    rss = tmp_path / f"rss-{gigabytes}"
    prod = subprocess.Popen([sys.executable, producer, str(gigabytes)], stdout=subprocess.PIPE)
    norm = subprocess.Popen([sys.executable, wrapper, rss, *args], stdin=prod.stdout,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    prod.stdout.close()
    _, err = norm.communicate(timeout=3600)
    assert prod.wait(timeout=60) == 0
    assert norm.returncode == 0, err
    rows = int(gigabytes * 1e9 // (8 * 8 * 131072)) * 131072  # every batch went through
    assert err.decode().startswith(f"normalized {rows:,} rows"), err
    return int(rss.read_text())


def _sizes() -> list[float]:
    return [float(os.environ.get("STREAMNORM_PIPE_GB", "0.25"))]


@pytest.mark.parametrize("gigabytes", _sizes())
def test_peak_rss_stays_flat_however_long_the_stream(tmp_path, gigabytes):
    """N and 2N bytes through `normalize - - --stats`: the peak RSS grows by less than three
    8 MiB batches (allocator arenas move it by about one), where holding the stream would add
    N bytes."""
    sn.FeatureStats().update(pa.table({f"c{i}": [1.0, 3.0, 5.0] for i in range(8)})
                             ).save(tmp_path / "s.json")
    args = ("normalize", "-", "-", "--stats", "s.json")
    small = _peak_rss_kib(tmp_path, gigabytes, *args)
    large = _peak_rss_kib(tmp_path, 2 * gigabytes, *args)
    assert large - small < 24 * 1024, (small, large)


# --------------------------------------------------------------------------- same results


def test_stdin_statistics_equal_file_statistics(tmp_path):
    table = _table()
    data = ipc_stream_bytes(table)
    (tmp_path / "t.arrows").write_bytes(data)
    assert _run("stats", "-", "-o", "pipe.json", stdin=data, cwd=tmp_path).returncode == 0
    assert _here("stats", "t.arrows", "-o", "file.json", cwd=tmp_path).returncode == 0
    piped, filed = sn.FeatureStats.load(tmp_path / "pipe.json"), \
        sn.FeatureStats.load(tmp_path / "file.json")
    assert_same_stats(piped, filed, rtol=0.0)
    np.testing.assert_array_equal(piped.mean, filed.mean)
    np.testing.assert_array_equal(piped.m2, filed.m2)
    # and the printed table, and the library reading sys.stdin.buffer, agree too
    printed = _run("stats", "-", stdin=data, cwd=tmp_path)
    assert printed.stdout.decode() == _here("stats", "t.arrows", cwd=tmp_path).stdout.decode()
    code = ("import sys, streamnorm as sn; "
            "sn.feature_stats(sys.stdin.buffer).save('lib.json')")
    lib = subprocess.run([sys.executable, "-c", code], input=data, cwd=tmp_path,
                         capture_output=True, timeout=TIMEOUT)
    assert lib.returncode == 0, lib.stderr
    got = sn.FeatureStats.load(tmp_path / "lib.json")
    np.testing.assert_array_equal(got.mean, filed.mean)
    np.testing.assert_array_equal(got.m2, filed.m2)


def test_stdout_stream_equals_file_output_and_carries_the_record(tmp_path):
    table = _table()
    data = ipc_stream_bytes(table)
    (tmp_path / "t.arrows").write_bytes(data)
    sn.feature_stats(table).save(tmp_path / "s.json")
    piped = _run("normalize", "-", "-", "--stats", "s.json", stdin=data, cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr.startswith("normalized 3,000 rows") and "into -" in piped.stderr
    assert _here("normalize", "t.arrows", "out.arrows", "--stats", "s.json",
                 cwd=tmp_path).returncode == 0
    # stdout holds the stream and nothing else: the very bytes of the file output
    assert piped.stdout == (tmp_path / "out.arrows").read_bytes()
    got = _read_stream(piped.stdout)
    want = _read_stream((tmp_path / "out.arrows").read_bytes())
    assert got.schema.equals(want.schema) and got.num_rows == want.num_rows
    for name in got.column_names:  # NaN counts as equal here
        np.testing.assert_array_equal(got[name].to_numpy(zero_copy_only=False),
                                      want[name].to_numpy(zero_copy_only=False))
    assert got.schema.metadata == want.schema.metadata
    assert sn.Normalizer.from_metadata(got.schema).stats is not None
    # inverse - - restores the input
    back = _run("inverse", "-", "-", stdin=piped.stdout, cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    restored = _read_stream(back.stdout)
    np.testing.assert_allclose(restored["a"].to_numpy(zero_copy_only=False),
                               table["a"].to_numpy(zero_copy_only=False), rtol=1e-12)
    assert restored["tag"].equals(table["tag"])


def test_format_parquet_and_csv_on_stdout(tmp_path):
    table = _table(500).drop_columns(["tag"])
    data = ipc_stream_bytes(table, 100)
    pq_out = _run("normalize", "-", "-", "--mode", "rms", "--format", "parquet", stdin=data,
                  cwd=tmp_path)
    assert pq_out.returncode == 0, pq_out.stderr
    as_parquet = pq.read_table(pa.BufferReader(pq_out.stdout))
    assert as_parquet.num_rows == 500 and b"streamnorm" in as_parquet.schema.metadata
    csv_out = _run("normalize", "-", "-", "--mode", "rms", "--format", "csv", stdin=data,
                   cwd=tmp_path)
    assert csv_out.returncode == 0, csv_out.stderr
    as_csv = pacsv.read_csv(pa.BufferReader(csv_out.stdout))
    np.testing.assert_allclose(as_csv["a"].to_numpy(zero_copy_only=False),
                               as_parquet["a"].to_numpy(zero_copy_only=False), rtol=1e-15)
    bad = _run("normalize", "-", "out.parquet", "--mode", "rms", "--format", "csv",
               stdin=data, cwd=tmp_path)
    assert_bad_input(bad, "--format", absent=[tmp_path / "out.parquet"])


def test_inspect_stdin(tmp_path):
    proc = _run("inspect", "-", stdin=ipc_stream_bytes(_table()), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert lines[0].split()[:2] == ["column", "type"]
    assert [line.split()[0] for line in lines[1:]] == ["a", "b", "n", "tag"]


# --------------------------------------------------------------------------- Unix manners


def test_closed_consumer_ends_quietly_with_141(tmp_path):
    """`streamnorm normalize - - | head -c 100`: exit 141 (128 + SIGPIPE, what `yes | head`
    reports), nothing on stderr."""
    producer = _write(tmp_path, "big.py", BIG_PRODUCER)
    shell = (f"{sys.executable} {producer} 0.2 | {' '.join(CLI)} normalize - - --mode layer "
             "| head -c 100 > /dev/null; echo ${PIPESTATUS[1]}")
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, cwd=tmp_path,
                          timeout=TIMEOUT)
    assert proc.stdout.strip() == "141", proc.stderr
    assert "streamnorm" not in proc.stderr and "Exception ignored" not in proc.stderr
    # a Python consumer reading one batch and closing
    prod = subprocess.Popen([sys.executable, producer, "0.2"], stdout=subprocess.PIPE)
    norm = subprocess.Popen([*CLI, "normalize", "-", "-", "--mode", "layer"],
                            stdin=prod.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    prod.stdout.close()
    assert ipc.open_stream(norm.stdout).read_next_batch().num_rows > 0
    norm.stdout.close()
    assert norm.wait(timeout=TIMEOUT) == 141
    assert norm.stderr.read() == b""
    prod.wait(timeout=TIMEOUT)


def test_truncated_stream_is_exit_2_naming_stdin(tmp_path):
    data = ipc_stream_bytes(_table())
    proc = _run("stats", "-", stdin=data[: len(data) // 2], cwd=tmp_path)
    assert_bad_input(proc, "stdin", "middle of a batch")


@pytest.mark.parametrize("command, data, needle", [
    (("stats", "-"), b"col_a,col_b\n1,2\n", "not an Arrow IPC stream"),
    (("inverse", "-", "-"), b"", "no data"),
    (("inspect", "-"), b"PAR1" + bytes(64), "Parquet"),
    (("normalize", "-", "-", "--mode", "layer"), b"ARROW1\x00\x00" + bytes(64),
     "Arrow IPC file"),
])
def test_stdin_that_is_not_an_arrow_stream_is_exit_2(tmp_path, command, data, needle):
    proc = _here(*command, stdin=data, cwd=tmp_path)
    assert_bad_input(proc, "stdin", needle)
    assert proc.stdout == b""


def test_batch_mode_without_stats_refuses_stdin(tmp_path):
    proc = _here("normalize", "-", "-", stdin=ipc_stream_bytes(_table()), cwd=tmp_path)
    assert_bad_input(proc, "stdin cannot be read twice", "--stats FILE", "--online")
    assert proc.stdout == b""


@pytest.mark.parametrize("options, needle", [
    (("--schema", "a=float64"), "--schema"),
    (("--dask",), "--dask"),
])
def test_options_that_do_not_fit_stdin(tmp_path, options, needle):
    proc = _here("normalize", "-", "-", "--mode", "layer", *options,
                 stdin=ipc_stream_bytes(_table()), cwd=tmp_path)
    assert_bad_input(proc, needle)


def _normalizing_a_stalled_producer(tmp_path: Path) -> tuple[subprocess.Popen, subprocess.Popen]:
    """(producer, streamnorm) processes: ``streamnorm normalize - - --mode layer`` reading a
    producer that stops after 2 batches (it waits for a file that never comes), once the
    first normalized batch has come out: streamnorm then waits for the producer."""
    producer = _write(tmp_path, "producer.py", PRODUCER)
    prod = subprocess.Popen([sys.executable, producer, tmp_path / "never", "3"],
                            stdout=subprocess.PIPE)
    norm = subprocess.Popen([*CLI, "normalize", "-", "-", "--mode", "layer"],
                            stdin=prod.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    prod.stdout.close()
    assert ipc.open_stream(norm.stdout).read_next_batch().num_rows == 500
    return prod, norm


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"),
                                             (signal.SIGINT, 130, "interrupted")])
def test_signal_while_waiting_on_stdin(tmp_path, sig, code, word):
    """Ctrl-C / SIGTERM while streamnorm waits for the producer's next batch."""
    prod, norm = _normalizing_a_stalled_producer(tmp_path)
    norm.send_signal(sig)
    assert norm.wait(timeout=TIMEOUT) == code
    err = norm.stderr.read().decode()
    assert err.strip().splitlines() == [
        f"streamnorm: error: {word}; the output on stdout ends early"], err
    prod.kill()
    prod.wait()


def _other_thread_taking(pid: int, sig: int) -> int | None:
    """A thread of process ``pid`` other than its main thread that does not block ``sig``
    (/proc/PID/task/TID/status SigBlk), or None."""
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as fh:
                blocked = next(int(line.split()[1], 16) for line in fh
                               if line.startswith("SigBlk:"))
        except (OSError, StopIteration):
            continue
        if not blocked & (1 << (sig - 1)):
            return tid
    return None


def _signal_thread(pid: int, tid: int, sig: int) -> None:
    """tgkill(2): ``sig`` to one thread of ``pid``, as the kernel may pick for Ctrl-C."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    syscall_number = {"x86_64": 234, "aarch64": 131}[os.uname().machine]
    assert libc.syscall(syscall_number, pid, tid, sig) == 0, ctypes.get_errno()


def _wait_until_blocked(pid: int, seconds: float = 60.0) -> None:
    """Until the main thread of ``pid`` has slept (state S) for 0.5 s in a row."""
    import time

    deadline = time.monotonic() + seconds
    since = None
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        now = time.monotonic()
        since = (since or now) if state == "S" else None
        if since is not None and now - since >= 0.5:
            return
        time.sleep(0.02)
    raise AssertionError("the process never blocked")


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine not in
                    ("x86_64", "aarch64"), reason="needs Linux tgkill and /proc")
def test_signal_on_another_thread_while_waiting_on_stdin(tmp_path):
    """The kernel may hand a process's signal (a supervisor's SIGTERM, ``kill -INT``) to any
    thread not blocking it (numba's, Arrow's): the main thread, waiting for the producer's
    next batch, must still stop. It stayed blocked in read() until the producer moved. One
    signal is enough: SIGINT and SIGTERM take the same way (test above)."""
    sig, code, word = signal.SIGTERM, 143, "terminated"
    prod, norm = _normalizing_a_stalled_producer(tmp_path)
    try:
        _wait_until_blocked(norm.pid)
        tid = _other_thread_taking(norm.pid, sig)
        if tid is None:
            pytest.skip("no thread other than the main one takes the signal")
        _signal_thread(norm.pid, tid, sig)
        assert norm.wait(timeout=30) == code  # the producer waits 120 s: no help from it
        err = norm.stderr.read().decode()
        assert err.strip().splitlines() == [
            f"streamnorm: error: {word}; the output on stdout ends early"], err
    finally:
        norm.kill()
        prod.kill()
        norm.wait()
        prod.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine not in
                    ("x86_64", "aarch64"), reason="needs Linux tgkill and /proc")
def test_signal_on_another_thread_while_stdout_is_full(tmp_path, rng):
    """Writing to a consumer that stopped reading (its pipe full), a SIGINT the kernel hands
    to another thread still stops streamnorm: exit 130, one line, the input untouched. The
    main thread waited on the writing thread, which waited on the consumer."""
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"a": rng.normal(size=400_000), "b": rng.normal(size=400_000)}),
                   src)
    before = src.read_bytes()
    norm = subprocess.Popen([*CLI, "normalize", str(src), "-", "--batch-size", "10000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_until_blocked(norm.pid)  # the 64 KiB pipe is full: nobody reads it
        tid = _other_thread_taking(norm.pid, signal.SIGINT)
        if tid is None:
            pytest.skip("no thread other than the main one takes the signal")
        _signal_thread(norm.pid, tid, signal.SIGINT)
        assert norm.wait(timeout=30) == 130
        err = norm.stderr.read().decode()
        assert err.strip().splitlines() == [
            "streamnorm: error: interrupted; the output on stdout ends early"], err
    finally:
        norm.kill()
        norm.wait()
    assert src.read_bytes() == before


# --------------------------------------------------------------------------- Python


def test_reader_is_streamed_not_materialized(rng):
    """feature_stats over a RecordBatchReader of 160 MB of batches made on demand holds about
    one batch at a time (tracemalloc sees numpy's buffers)."""
    made = []

    def batches():
        for i in range(40):
            made.append(i)
            yield pa.record_batch({"x": np.random.default_rng(i).normal(2, 3, 500_000)})

    schema = pa.schema([("x", pa.float64())])
    tracemalloc.start()
    try:
        got = sn.feature_stats(pa.RecordBatchReader.from_batches(schema, batches()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(made) == 40 and got.count[0] == 20_000_000
    assert peak < 40e6, peak
    want = sn.feature_stats(pa.RecordBatchReader.from_batches(schema, batches()))
    np.testing.assert_array_equal(got.mean, want.mean)


def test_transform_batches_over_an_endless_iterator():
    batch = pa.record_batch({"x": np.arange(10_000.0), "s": pa.array(["k"] * 10_000)})

    def endless():
        while True:
            yield batch

    norm = sn.Normalizer().fit(batch)
    lazy = norm.transform_batches(endless())
    first = list(itertools.islice(lazy, 50))
    assert first[0].equals(norm.transform(batch))
    tracemalloc.start()
    try:
        for _ in itertools.islice(lazy, 20):
            pass
        base, _ = tracemalloc.get_traced_memory()
        for _ in itertools.islice(lazy, 2000):
            pass
        now, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert now - base < 1_000_000, (base, now)  # nothing accumulates per batch


def test_one_shot_sources_refuse_a_second_pass(tmp_path):
    table = _table(200)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    with pytest.raises(sn.InputError, match="cannot be read twice"):
        sn.normalize_file(reader, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
    stream = pa.BufferReader(ipc_stream_bytes(table))
    assert sn.feature_stats(stream).count[0] == 200 - len(range(0, 200, 17))
    with pytest.raises(sn.InputError, match="cannot be read twice"):
        sn.feature_stats(stream)


def test_iterator_source_keeps_its_first_batch(tmp_path):
    """normalize_file over an iterator (one pass, no fit) writes every row: learning the
    schema must not eat the first batch."""
    table = _table(600)
    got = sn.normalize_file(iter(table.to_batches(max_chunksize=200)), tmp_path / "it.parquet",
                            mode="layer")
    assert got.rows == 600 and pq.read_metadata(tmp_path / "it.parquet").num_rows == 600


def test_online_normalization_reads_stdin_once(tmp_path):
    """`normalize - - --online` needs no statistics and writes what the file version writes."""
    data = ipc_stream_bytes(_table(1500), 300)
    (tmp_path / "t.arrows").write_bytes(data)
    piped = _run("normalize", "-", "-", "--online", stdin=data, cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert "online" in piped.stderr
    assert _here("normalize", "t.arrows", "out.arrows", "--online", cwd=tmp_path).returncode == 0
    assert piped.stdout == (tmp_path / "out.arrows").read_bytes()
