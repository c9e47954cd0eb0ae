"""Arrow's exceptions as one-line :class:`~streamnorm.errors.InputError` messages.

The bottom of the reading layer: every other ``arrow`` module words its errors with these.
"""

from __future__ import annotations

import pyarrow as pa

from ..errors import InputError


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type name when the message is empty)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_error(where: object, exc: BaseException) -> InputError:
    """The one-line error for data Arrow cannot open: incomplete, or holding a type Arrow
    does not read (a polars Int128 column, written as a 128-bit integer)."""
    reason = first_line(exc)
    if "more than 64 bits" in reason or "i128" in reason:
        return InputError(f"{where}: holds an integer column wider than 64 bits (such as polars "
                          f"Int128), which Arrow cannot read ({reason}); cast it to Int64 or "
                          "Float64 before writing the data")
    if isinstance(exc, pa.ArrowNotImplementedError):
        return InputError(f"{where}: holds a type Arrow cannot read ({reason}); cast that "
                          "column to a standard type before writing the data")
    return InputError(f"{where}: cannot read it ({reason}); is it complete?")


def corrupt_row_group(path: object, index: int, exc: BaseException) -> InputError:
    """The error for Parquet row group ``index`` of ``path`` failing to decode or verify."""
    return InputError(f"{path}: row group {index} is truncated or corrupt ({first_line(exc)}); "
                      "re-create the file from its source")


class Failure:
    """An exception raised in a worker thread, carried to the thread that consumes its work."""

    def __init__(self, exc: BaseException):
        self.exc = exc
