"""Progress bars on stderr for the passes over a file: rows done and MB/s.

Uses ``tqdm`` when it is installed (the ``progress`` extra), else a small built-in bar. A
bar that is not enabled does nothing, so callers never branch on whether one is shown.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    """What the passes call: ``update`` after each batch, ``close`` at the end of the pass."""

    def update(self, rows: int, nbytes: int) -> None:
        """Record ``rows`` more rows and ``nbytes`` more input bytes."""

    def close(self) -> None:
        """Finish the bar (a final newline on a terminal)."""


class NullProgress:
    """A progress bar that shows nothing.

    >>> bar = NullProgress()
    >>> bar.update(10, 80); bar.close()
    """

    def update(self, rows: int, nbytes: int) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


def _human(count: float) -> str:
    """A count with a k/M/G suffix: ``_human(1234567) == '1.23M'``.

    >>> _human(999), _human(1234567)
    ('999', '1.23M')
    """
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.3g}{unit}"
    return f"{count:.0f}"


class SimpleProgress:
    """A one-line bar redrawn at most ten times a second: ``desc  rows/total  pct  MB/s``."""

    def __init__(self, desc: str, total: int | None, stream: TextIO | None = None) -> None:
        self.desc = desc
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.rows = 0
        self.nbytes = 0
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._drawn = 0  # characters on the line after the last drawing

    def update(self, rows: int, nbytes: int) -> None:
        """Add a batch; redraw when 0.1 s have passed since the last drawing."""
        self.rows += rows
        self.nbytes += nbytes
        now = time.perf_counter()
        if now - self._last_draw >= 0.1:
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.nbytes / elapsed / 1e6
        if self.total:
            width = 24
            filled = int(width * min(self.rows / self.total, 1.0))
            bar = "#" * filled + "-" * (width - filled)
            done = f"[{bar}] {_human(self.rows)}/{_human(self.total)} rows"
        else:
            done = f"{_human(self.rows)} rows"
        text = f"{self.desc}: {done}  {rate:,.0f} MB/s  {elapsed:.1f} s"
        # A shorter line than the last one (the rate fell from 1,234 to 987 MB/s) would leave
        # the old line's last characters behind: blank them.
        self.stream.write("\r" + text.ljust(self._drawn))
        self._drawn = len(text)
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        self._draw(time.perf_counter())
        self.stream.write("\n")
        self.stream.flush()


class TqdmProgress:
    """A tqdm bar counting rows, with the input MB/s as its postfix."""

    def __init__(self, desc: str, total: int | None, stream: TextIO | None = None) -> None:
        from tqdm import tqdm

        self.bar: Any = tqdm(
            total=total, desc=desc, unit=" rows", unit_scale=True, dynamic_ncols=True,
            file=stream if stream is not None else sys.stderr, leave=True,
        )
        self.nbytes = 0
        self.start = time.perf_counter()

    def update(self, rows: int, nbytes: int) -> None:
        """Add a batch and refresh the MB/s postfix."""
        self.nbytes += nbytes
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{self.nbytes / elapsed / 1e6:,.0f} MB/s", refresh=False)
        self.bar.update(rows)

    def close(self) -> None:
        """Close the tqdm bar."""
        self.bar.close()


def progress_bar(
    desc: str, total: int | None, enabled: bool, stream: TextIO | None = None
) -> Progress:
    """A bar for one pass: tqdm if importable, else :class:`SimpleProgress`; nothing if disabled.

    Parameters
    ----------
    desc : the pass's name, shown on the left (e.g. ``"fit"``, ``"normalize"``).
    total : the rows the pass will read, or None when unknown (an IPC stream).
    enabled : False gives a :class:`NullProgress`.
    stream : where to draw (default ``sys.stderr``).

    >>> progress_bar("fit", 100, enabled=False).__class__.__name__
    'NullProgress'
    """
    if not enabled:
        return NullProgress()
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return SimpleProgress(desc, total, stream)
    return TqdmProgress(desc, total, stream)
