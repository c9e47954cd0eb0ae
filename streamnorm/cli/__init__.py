"""The ``streamnorm`` command (also ``python -m streamnorm``).

Subcommands: ``stats``, ``normalize``, ``inverse``, ``inspect`` and ``demo`` (see
``streamnorm --help``).
Exit codes: 0 on success; 2 on bad usage or bad input, with one line on stderr naming the
problem and the way out; 130 on Ctrl-C and 143 on SIGTERM, after removing any temporary file
(outputs are written beside their destination and renamed into place only on success).
An input without rows is not an error: its statistics have count 0 and ``normalize`` writes
an output without rows that has the output schema.

Modules, each with one job: ``runner`` (main: parse, dispatch, exit codes), ``parser`` (the
subcommands), ``options`` (the shared options and what they turn into: sources, columns,
writer keywords), ``commands`` (stats, normalize, inverse, inspect), ``cluster`` (the same on
Dask), ``demo``, ``tables`` (text tables), ``exits`` (exit codes, UsageError, Terminated).
"""

from .exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE, UsageError
from .parser import build_parser
from .runner import main
from .tables import format_table

__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_TERMINATED", "EXIT_USAGE", "UsageError",
           "build_parser", "format_table", "main"]
