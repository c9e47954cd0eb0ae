"""Small Arrow arrays built from numpy arrays and Python strings without ``pa.array``.

``pa.array`` first asks pyarrow's pandas shim whether its argument is a pandas object, and the
shim imports pandas to answer (pyarrow 14–26, for lists and numpy arrays alike): about 33 MB
of resident memory and half a second in a process that never uses pandas. The statistics
recorded in every normalized file's metadata are built here instead, from the same values
with the same types (NaN stays NaN, not null), so ``streamnorm normalize`` never loads
pandas. A process that has imported pandas itself is unaffected.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

#: Largest string data (bytes) of a 32-bit offsets ``string`` array.
_STRING_LIMIT = 2**31 - 1


def numpy_array(values: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    """``values`` (a numeric numpy array of any shape, flattened in C order) as a 1-D Arrow
    array of ``arrow_type``: what ``pa.array(np.ravel(values), arrow_type)`` gives (a safe
    cast when the types differ), without pyarrow's pandas check."""
    flat = np.ascontiguousarray(np.ravel(values))
    if flat.dtype.kind not in "iuf":  # bools, objects, dates: pyarrow's own conversion
        return pa.array(flat, arrow_type)
    if not flat.dtype.isnative:  # Arrow buffers are in the machine's byte order
        flat = flat.astype(flat.dtype.newbyteorder("="))
    base = pa.from_numpy_dtype(flat.dtype)
    array = pa.Array.from_buffers(base, len(flat), [None, pa.py_buffer(flat)], null_count=0)
    return array if base == arrow_type else array.cast(arrow_type)


def string_array(values: Sequence[str | None]) -> pa.Array:
    """``values`` (strings, None for null) as an Arrow ``string`` array, equal to
    ``pa.array(values, pa.string())``, without pyarrow's pandas check."""
    encoded = [None if v is None else v.encode("utf-8") for v in values]
    lengths = np.fromiter((0 if b is None else len(b) for b in encoded), np.int64,
                          len(encoded))
    ends = np.cumsum(lengths)
    if len(ends) and ends[-1] > _STRING_LIMIT:
        return pa.array(list(values), pa.string())
    offsets = np.zeros(len(encoded) + 1, np.int32)
    offsets[1:] = ends
    data = pa.py_buffer(b"".join(b for b in encoded if b is not None))
    nulls = np.fromiter((b is None for b in encoded), np.bool_, len(encoded))
    null_count = int(nulls.sum())
    validity = (pa.py_buffer(np.packbits(~nulls, bitorder="little")) if null_count else None)
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [validity, pa.py_buffer(offsets), data], null_count=null_count)
