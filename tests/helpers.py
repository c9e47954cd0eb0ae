"""What the test files share: the command in a subprocess or in this process, the bad-input
contract it keeps, and two statistics states compared.

Exact and float64 references live in :mod:`references`.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

import streamnorm as sn
from streamnorm.cli import main as cli_main

PYTHON = (sys.executable, "-P")
"""This interpreter, importing the installed streamnorm (and PYTHONPATH's), never the copy in
its working directory: ``-P`` keeps ``-m`` and ``-c`` from putting the directory first on
``sys.path``. From the repository root (CI's working directory) every subprocess otherwise
ran the checkout instead of the package CI installed, compiling its kernels from a cold
cache that the suite's warm-up had not filled."""
CLI = (*PYTHON, "-m", "streamnorm")
"""The command line that runs ``streamnorm`` with this interpreter (and its PYTHONPATH)."""


def run_python(*args: str | Path, cwd: str | Path | None = None, timeout: float = 180,
               **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` (this interpreter) in ``cwd``; stdout and stderr captured as text.

    Extra keywords go to :func:`subprocess.run` (``env``, ``umask``, ...).
    """
    return subprocess.run([*PYTHON, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def run_cli(*args: str | Path, cwd: str | Path, timeout: float = 180,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``streamnorm ARGS`` in a subprocess in ``cwd`` (see :func:`run_python`)."""
    return run_python("-m", "streamnorm", *args, cwd=cwd, timeout=timeout, **kwargs)


# Shown by a fresh interpreter's default warning filters (the others are ignored outside
# __main__), so call_cli's stderr holds the warnings that run_cli's would.
_HIDDEN_BY_DEFAULT = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def _as_text(data: bytes) -> str:
    """``data`` as :func:`subprocess.run` with ``text=True`` decodes it (universal newlines);
    binary output (see ``stdout_bytes``) is not refused."""
    return data.decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def call_cli(*args: str | Path, cwd: str | Path,
             input: bytes | str = b"") -> subprocess.CompletedProcess[str]:
    """Run ``streamnorm ARGS`` in this process: :func:`streamnorm.cli.main` in ``cwd``, with
    ``input`` on stdin and stdout and stderr captured; the same result as :func:`run_cli`.

    For tests of what the command does with its arguments and files, without a second of
    interpreter start and kernel loading per call; what is about the process itself (pipes,
    signals, exit statuses, ``python -m``) stays with :func:`run_cli` and :func:`start_cli`.
    An exception escaping ``main`` (the traceback a process would print) fails the calling
    test; warnings a fresh interpreter would print go to the captured stderr.
    ``stdout_bytes`` holds stdout undecoded (binary outputs written to ``-``).
    """
    argv = [str(a) for a in args]
    data = input.encode() if isinstance(input, str) else input
    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.stdin, sys.stdout, sys.stderr, os.getcwd()
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.BytesIO(data)), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    sys.stderr = io.TextIOWrapper(err, encoding="utf-8", write_through=True)
    try:
        os.chdir(cwd)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                code = cli_main(argv)
            except SystemExit as exc:  # the status the process would exit with
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        for w in caught:
            if not issubclass(w.category, _HIDDEN_BY_DEFAULT):
                sys.stderr.write(warnings.formatwarning(w.message, w.category, w.filename,
                                                        w.lineno, w.line))
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue(), err.getvalue()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved[:3]
        os.chdir(saved[3])
    done = subprocess.CompletedProcess(["streamnorm", *argv], code, _as_text(stdout),
                                       _as_text(stderr))
    done.stdout_bytes = stdout  # type: ignore[attr-defined]
    return done


def start_cli(*args: str | Path, cwd: str | Path, text: bool = False) -> subprocess.Popen:
    """Start ``streamnorm ARGS`` without waiting (to signal it, or close its pipe); stdout
    and stderr are pipes."""
    return subprocess.Popen([*CLI, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=text)


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    """Exit code 0 and no traceback on stderr."""
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def assert_bad_input(proc: subprocess.CompletedProcess[str], *needles: str,
                     absent: Iterable[str | Path] = ()) -> None:
    """The command's contract for bad usage or input: exit code 2, exactly one line on stderr,
    ``streamnorm: error: ...`` holding every one of ``needles``, no traceback, and none of the
    ``absent`` paths (outputs it must not have left) on disk."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("streamnorm: error:"), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    for path in absent:
        assert not Path(path).exists(), f"{path} was left behind"


def assert_same_stats(got: sn.FeatureStats, want: sn.FeatureStats, *, rtol: float = 1e-15,
                      nulls_as_nan: bool = False) -> None:
    """Two states of the same data (other batchings, merge orders or machines).

    Columns, NaN policy, counts, min and max exactly equal (``nulls_as_nan``: only nulls +
    NaN together, for sources such as pandas' numpy columns that cannot tell them apart);
    mean within ``rtol`` of the column's magnitude (max |min|, |max|), m2 within ``rtol`` of
    itself. Works for plain and grouped (``by=``) states, whose arrays are (groups, columns).
    """
    assert got.columns == want.columns
    assert got.nan == want.nan
    np.testing.assert_array_equal(got.count, want.count)
    if nulls_as_nan:
        np.testing.assert_array_equal(got.null_count + got.nan_count,
                                      want.null_count + want.nan_count)
    else:
        np.testing.assert_array_equal(got.null_count, want.null_count)
        np.testing.assert_array_equal(got.nan_count, want.nan_count)
    np.testing.assert_array_equal(got.min, want.min)
    np.testing.assert_array_equal(got.max, want.max)
    scale = np.maximum(np.abs(want.min), np.abs(want.max))
    assert np.all(np.abs(got.mean - want.mean) <= rtol * scale), got.mean - want.mean
    assert np.all(np.abs(got.m2 - want.m2) <= rtol * np.abs(want.m2)), got.m2 / want.m2 - 1


def ipc_stream_bytes(table: pa.Table, max_chunksize: int = 700) -> bytes:
    """``table`` as the bytes of an Arrow IPC stream, in batches of at most ``max_chunksize``
    rows: what a producer pipes into ``streamnorm ... -``."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=max_chunksize):
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes()
