"""Pipe readers whose waits notice Ctrl-C and SIGTERM, whichever thread receives them.

Python runs a signal's handler (``KeyboardInterrupt``, the CLI's SIGTERM handler) only in the
main thread, between bytecodes. The kernel delivers a process-wide signal (``kill``, a
supervisor's SIGTERM) to any thread that does not block it, and streamnorm's processes have
several (numba's and Arrow's workers). When it lands on another thread while the main thread
sits in ``read()`` on a quiet pipe (a producer between batches), that system call is not
interrupted: the process stayed blocked until the producer wrote again or ended.

:func:`signal_aware_reader` wraps a file descriptor so that every wait happens in ``poll()``
with a timeout of :data:`WAIT_SECONDS`: the main thread comes back to the interpreter at
least that often while the pipe is idle, and a pending signal's handler runs there. Data
moves as before (one ``read()`` per ready pipe, buffered by :mod:`io`); only an idle wait is
cut into slices. Where ``poll`` is missing (Windows), the plain file object is used.

Writing is done by :class:`~streamnorm.arrow.sinks.BatchWriter`'s thread, which may stay in
``write()`` on a full pipe; the main thread waits for it in slices of :data:`WAIT_SECONDS` too,
and an interrupted stream does not wait for it at all.
"""

from __future__ import annotations

import io
import os
import select
from typing import IO

#: Longest time (seconds) a signal waits for the main thread while a pipe is idle.
WAIT_SECONDS = 0.2


class _PolledPipe(io.RawIOBase):
    """Raw reads of one file descriptor, each after ``poll()`` says it is ready (slices of
    :data:`WAIT_SECONDS`). The descriptor is closed only when ``owned``."""

    def __init__(self, fd: int, owned: bool) -> None:
        super().__init__()
        self._fd = fd
        self._owned = owned
        self._poller = select.poll()
        # POLLHUP / POLLERR are always reported: an ended pipe is "ready" too, and the read
        # that follows returns its end (0 bytes).
        self._poller.register(fd, select.POLLIN)

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def readable(self) -> bool:
        return True

    def _wait(self) -> None:
        while not self._poller.poll(int(WAIT_SECONDS * 1000)):
            pass  # back in the interpreter: a pending signal's handler runs here

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        self._wait()
        return os.readv(self._fd, [buffer])

    def close(self) -> None:
        if not self.closed and self._owned:
            os.close(self._fd)
        super().close()


def signal_aware_reader(fd: int, owned: bool) -> IO[bytes]:
    """A buffered binary reader of ``fd`` whose waits notice signals (module docstring).
    ``owned``: closing the reader closes ``fd``."""
    if not hasattr(select, "poll"):
        return open(fd, "rb", closefd=owned)  # noqa: SIM115  (the caller closes it)
    return io.BufferedReader(_PolledPipe(fd, owned=owned))
