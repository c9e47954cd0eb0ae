"""How a command ends: the exit codes, and the two exceptions that end it early."""

from __future__ import annotations

PROG = "streamnorm"
EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 2, 130, 143
# A reader that closed the pipe early (``streamnorm inspect f | head -1``): exit quietly with
# the status a Unix tool killed by SIGPIPE reports (128 + 13), as `yes | head` does.
EXIT_BROKEN_PIPE = 141


class UsageError(Exception):
    """Bad command-line usage: reported as one line, exit code 2."""


class Terminated(BaseException):
    """Raised by the SIGTERM handler so that temporary files are cleaned up on the way out."""
