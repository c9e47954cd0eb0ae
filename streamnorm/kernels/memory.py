"""All the unsafe memory access of streamnorm: arrays read at raw addresses.

The kernels take their columns by address (an int64 per column) rather than as numba typed
Lists, and :func:`streamnorm.columns.locate_columns` finds those addresses by reading the Arrow
C Data Interface export of a record batch. Everything that turns an integer into memory lives
here, so the rules below are the whole contract.

Invariants
----------
* **The caller keeps the memory alive.** An address is only a number: nothing here holds a
  reference to the object that owns the memory. Whoever computes an address keeps its owner
  alive until the kernel reading it has returned: :func:`addresses_of` returns the arrays it
  read (``keep``) for that; a :class:`streamnorm.columns.BufferGroup` holds its record batch
  (``owner``). Arrays made by :func:`array_at` are borrowed views, never stored past the call.
* **Alignment.** A values address is aligned for its dtype: :func:`locate_children` reports a
  misaligned (or absent) values buffer as unusable and the caller falls back to numpy views;
  :func:`addresses_of` only takes numpy arrays, which are aligned. Bitmaps are bytes.
* **Lengths.** :func:`array_at` reads exactly ``length`` items; bitmap lengths cover
  ``(bit_offset + n + 7) // 8`` bytes, all of which Arrow guarantees to exist.
* **The exported capsule.** :func:`arrow_array_struct` takes the ``arrow_array`` capsule of
  ``__arrow_c_array__()``; the struct it points to (and the child structs and buffer-pointer
  arrays below it) live exactly as long as that capsule, whose destructor releases the export.
  Read the structs only while the capsule is referenced. The *data* buffers they point to
  belong to the exported batch and stay valid while the batch is alive, after the capsule
  is gone.
* **No process-wide side effects.** ``PyCapsule_GetPointer`` is called through a private
  ctypes prototype, so ``ctypes.pythonapi``'s own function object is left untouched.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Sequence

import numpy as np
from numba import carray, njit, types
from numba.extending import intrinsic

from .cache_load import quick_cache_loads

# A private prototype bound to the symbol: setting restype/argtypes on
# ctypes.pythonapi.PyCapsule_GetPointer would change it for every library in the process.
_capsule_get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)


def arrow_array_struct(capsule: object) -> int:
    """Address of the ``struct ArrowArray`` inside an ``arrow_array`` PyCapsule (valid while
    the capsule is referenced)."""
    return int(_capsule_get_pointer(capsule, b"arrow_array"))


@intrinsic
def _pointer_to(typingctx, address, like):
    """An integer ``address`` as a pointer to ``like``'s dtype (``like`` is only its type)."""
    if not isinstance(address, types.Integer) or not isinstance(like, types.Array):
        return None
    pointer = types.CPointer(like.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer))

    return pointer(address, like), codegen


@njit(cache=True, inline="always")
def array_at(address, length, like):
    """The ``length`` values of ``like``'s dtype stored at ``address``, as a borrowed 1-D C
    array (the caller keeps the memory alive while it is used)."""
    return carray(_pointer_to(address, like), length)


def addresses_of(
    arrays: Sequence[np.ndarray], *, writable: bool = False
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """``(keep, addresses int64[k], lengths int64[k])`` of 1-D arrays of one dtype.

    ``arrays`` is any sequence (list, tuple, numba typed List) of numpy arrays. A strided
    input is copied to a contiguous one (``keep`` holds what was read: keep it referenced
    until the kernel returns); outputs (``writable``) must already be contiguous, since a
    copy would lose the writes. Raises ``ValueError`` for mixed dtypes or non-1-D arrays.
    """
    keep = []
    dtype = None
    for array in arrays:
        if array.ndim != 1:
            raise ValueError(f"expected 1-D arrays, got shape {array.shape}")
        if dtype is None:
            dtype = array.dtype
        elif array.dtype != dtype:
            raise ValueError(f"arrays of one dtype expected, got {dtype} and {array.dtype}")
        if not array.flags.c_contiguous:
            if writable:
                raise ValueError("output arrays must be contiguous")
            array = np.ascontiguousarray(array)
        keep.append(array)
    addresses = np.array([a.ctypes.data for a in keep], dtype=np.int64)
    lengths = np.array([a.shape[0] for a in keep], dtype=np.int64)
    return keep, addresses, lengths


def host_view(address: int, length: int, dtype: np.dtype) -> np.ndarray:
    """A read-only numpy view of ``length`` items of ``dtype`` at ``address`` (borrowed: the
    caller keeps the memory alive while the view is used)."""
    dtype = np.dtype(dtype)
    if length == 0 or address == 0:
        return np.zeros(0, dtype=dtype)
    raw = (ctypes.c_char * (length * dtype.itemsize)).from_address(address)
    view = np.frombuffer(raw, dtype=dtype, count=length)
    view.flags.writeable = False
    return view


# struct ArrowArray of the C Data Interface: the int64-sized fields read here (pointers are
# 64-bit on every platform numba supports).
_LENGTH, _NULL_COUNT, _OFFSET, _N_BUFFERS, _N_CHILDREN, _BUFFERS, _CHILDREN = range(7)
_ARROW_ARRAY_WORDS = 10


@njit(cache=True)
def locate_children(struct, children, itemsize):
    """Buffers of the ``children`` (int64[k], child indexes) of the exported struct ArrowArray
    at address ``struct`` (a record batch), whose values are ``itemsize`` bytes each.

    Returns ``(addresses, lengths, validity addresses, bit offsets, has_validity, usable)``:
    int64[k] x4 and bool[k] as :class:`streamnorm.columns.BufferGroup` holds them, and False
    for ``usable`` when a values buffer is absent or misaligned (the caller then reads numpy
    views instead).
    """
    words = np.empty(0, dtype=np.int64)
    top = array_at(struct, _ARROW_ARRAY_WORDS, words)
    child_structs = array_at(top[_CHILDREN], top[_N_CHILDREN], words)
    k = children.shape[0]
    addresses = np.zeros(k, dtype=np.int64)
    lengths = np.full(k, top[_LENGTH], dtype=np.int64)
    validity_addresses = np.zeros(k, dtype=np.int64)
    bit_offsets = np.zeros(k, dtype=np.int64)
    has_validity = np.zeros(k, dtype=np.bool_)
    for j in range(k):
        child = array_at(child_structs[children[j]], _ARROW_ARRAY_WORDS, words)
        buffers = array_at(child[_BUFFERS], child[_N_BUFFERS], words)
        first = child[_OFFSET] + top[_OFFSET]  # a struct's offset applies to its children
        if top[_LENGTH] > 0 and (buffers[1] == 0 or buffers[1] % itemsize):
            return addresses, lengths, validity_addresses, bit_offsets, has_validity, False
        addresses[j] = buffers[1] + first * itemsize
        # null_count -1 means "not computed": read the bitmap then, if there is one
        if buffers[0] != 0 and child[_NULL_COUNT] != 0:
            validity_addresses[j] = buffers[0]
            bit_offsets[j] = first
            has_validity[j] = True
    return addresses, lengths, validity_addresses, bit_offsets, has_validity, True


@njit(cache=True, inline="always")
def bitmap_at(address, bit_offset, length, has_validity, empty):
    """The validity bitmap bytes covering ``length`` values from bit ``bit_offset`` at
    ``address`` (borrowed, as :func:`array_at`); ``empty`` (an empty uint8 array) when
    ``has_validity`` is False (the kernels then never read it)."""
    if not has_validity:
        return empty
    return array_at(address, (bit_offset + length + 7) // 8, empty)


quick_cache_loads(sys.modules[__name__])  # cached kernels load without numba's compiler set-up
