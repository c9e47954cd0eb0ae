"""Run one command: parse the arguments, dispatch, and turn every way out into an exit code
and at most one line on stderr (see :mod:`streamnorm.cli`)."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..config import numba_without_blas
from ..errors import StreamnormError
from .commands import cmd_inspect, cmd_inverse, cmd_normalize, cmd_stats
from .demo import cmd_demo
from .exits import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    PROG,
    Terminated,
    UsageError,
)
from .parser import build_parser

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "stats": cmd_stats, "normalize": cmd_normalize, "inverse": cmd_inverse,
    "inspect": cmd_inspect, "demo": cmd_demo,
}


def _error(message: str) -> None:
    """Write one line on stderr (newlines inside the message are flattened)."""
    flat = " ".join(message.split())
    print(f"{PROG}: error: {flat}", file=sys.stderr)


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While active (main thread only), SIGTERM raises :class:`Terminated`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _os_error_message(exc: OSError) -> str:
    where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    text = str(exc).strip()
    reason = exc.strerror or (text.splitlines()[0] if text else type(exc).__name__)
    return f"{where}{reason}; check the path, permissions and free space"


def main(argv: list[str] | None = None) -> int:
    """Run the ``streamnorm`` command with ``argv`` (default ``sys.argv[1:]``); the exit code.

    0 on success, 2 on bad usage or input (one line on stderr), 130 on Ctrl-C, 143 on SIGTERM.
    """
    # OMP_WAIT_POLICY and the thread count: streamnorm.config, applied by streamnorm.kernels.
    numba_without_blas()  # this process runs only streamnorm's kernels: no scipy.linalg
    parser = build_parser()
    args: argparse.Namespace | None = None
    try:
        with _sigterm_raises():
            try:
                args = parser.parse_args(argv)
            except SystemExit as exc:  # --help / --version
                return int(exc.code or 0)
            code = COMMANDS[args.command](args)
            sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
            return code
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except StreamnormError as exc:
        _error(str(exc))
        _settle_readers()
        return EXIT_USAGE
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        _error(_os_error_message(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error(f"interrupted; {_what_was_written(args)}")
        return EXIT_INTERRUPTED
    except Terminated:
        _error(f"terminated; {_what_was_written(args)}")
        return EXIT_TERMINATED
    except SystemError as exc:
        # A signal landing while numba loads a kernel from its cache reaches us wrapped in
        # SystemError ("returned a result with an exception set"); the cleanup already ran.
        cause = _wrapped_interrupt(exc)
        if cause is None:
            raise
        terminated = isinstance(cause, Terminated)
        _error(f"{'terminated' if terminated else 'interrupted'}; {_what_was_written(args)}")
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def _what_was_written(args: argparse.Namespace | None) -> str:
    """What an interrupt leaves: no output file, or a stream on stdout cut short."""
    if args is not None and getattr(args, "output", None) == "-":
        return "the output on stdout ends early"
    return "no output was written"


def _settle_readers() -> None:
    """Free what a failed read left behind before the interpreter exits.

    A reader abandoned mid-file (a malformed CSV row found in the first block) can still have
    a read-ahead task in flight in pyarrow's thread pool; exiting at once sometimes met it and
    aborted the process ("terminate called without an active exception", exit 134, about 1
    run in 5 on the 2-core machine). A collection pass frees the readers still held by the
    error's frames and lets that task end: 0 aborts in 120 runs after it. Only error paths
    pay for it.
    """
    gc.collect()


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush into the closed pipe
    prints no "Exception ignored" message."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _wrapped_interrupt(exc: BaseException) -> BaseException | None:
    """The KeyboardInterrupt or Terminated among the causes of ``exc``, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (KeyboardInterrupt, Terminated)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
