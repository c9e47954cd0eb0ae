"""Thrift compact protocol, generic: any struct read into :class:`Struct` (every field kept,
known or not, in order) and written back to the same bytes, plus the pieces
:mod:`.parquet_stitch` uses to walk and patch Parquet footers without building them.

Encoding (Apache Thrift's compact protocol): a field header is one byte, the field id's
delta from the previous field (1..15) in the high nibble and the type in the low one, or a
zero nibble and the id as a zigzag varint; integers are zigzag varints, binaries a varint
length and the bytes, lists a size/type byte (size 15: a varint follows), bools in the
field header's type (or one byte inside a list), structs end with a stop byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Thrift compact protocol type codes.
STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)


@dataclass
class TList:
    """A Thrift list or set: element type code and values (bool elements as their raw byte)."""

    etype: int
    items: list[Any]
    ttype: int = LIST


@dataclass
class TMap:
    """A Thrift map: key and value type codes and the (key, value) pairs in order."""

    ktype: int
    vtype: int
    items: list[tuple[Any, Any]]


@dataclass
class Struct:
    """A Thrift struct: ``[field id, type code, value]`` for each field, in order read."""

    fields: list[list[Any]] = field(default_factory=list)

    def get(self, fid: int, default: Any = None) -> Any:
        """The value of field ``fid`` (``default`` when absent)."""
        for f in self.fields:
            if f[0] == fid:
                return f[2]
        return default

    def set(self, fid: int, ttype: int, value: Any) -> None:
        """Set field ``fid`` (type code ``ttype``), inserted in id order when absent."""
        for f in self.fields:
            if f[0] == fid:
                f[1], f[2] = ttype, value
                return
        at = next((k for k, f in enumerate(self.fields) if f[0] > fid), len(self.fields))
        self.fields.insert(at, [fid, ttype, value])


class ThriftError(ValueError):
    """Bytes that are not valid Thrift compact protocol."""


def varint_at(data: bytes, pos: int) -> tuple[int, int]:
    b = data[pos]
    if b < 0x80:
        return b, pos + 1
    result, shift = b & 0x7F, 7
    while True:
        pos += 1
        b = data[pos]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos + 1
        shift += 7
        if shift > 70:
            raise ThriftError("varint too long")


def value_at(data: bytes, pos: int, ttype: int, depth: int) -> tuple[Any, int]:
    """The value of type ``ttype`` at ``pos`` and the position after it."""
    if ttype == STRUCT:
        return _struct_at(data, pos, depth + 1)
    if ttype == I32 or ttype == I64 or ttype == I16:
        z, pos = varint_at(data, pos)
        return (z >> 1) ^ -(z & 1), pos
    if ttype == BINARY:
        n, pos = varint_at(data, pos)
        end = pos + n
        if end > len(data):
            raise ThriftError("truncated Thrift data")
        return data[pos:end], end
    if ttype == LIST or ttype == SET:
        if depth > 64:
            raise ThriftError("Thrift data nested too deeply")
        head = data[pos]
        pos += 1
        size, etype = head >> 4, head & 0x0F
        if size == 15:
            size, pos = varint_at(data, pos)
        items = []
        append = items.append
        for _ in range(size):
            item, pos = value_at(data, pos, etype, depth + 1)
            append(item)
        return TList(etype, items, ttype), pos
    if ttype == TRUE or ttype == FALSE:  # a bool element of a list / map: one byte
        return data[pos], pos + 1
    if ttype == BYTE:
        b = data[pos]
        return (b - 256 if b > 127 else b), pos + 1
    if ttype == DOUBLE:
        if pos + 8 > len(data):
            raise ThriftError("truncated Thrift data")
        return data[pos:pos + 8], pos + 8
    if ttype == MAP:
        size, pos = varint_at(data, pos)
        if size == 0:
            return TMap(0, 0, []), pos
        kv = data[pos]
        pos += 1
        k, v = kv >> 4, kv & 0x0F
        pairs = []
        for _ in range(size):
            key, pos = value_at(data, pos, k, depth + 1)
            value, pos = value_at(data, pos, v, depth + 1)
            pairs.append((key, value))
        return TMap(k, v, pairs), pos
    raise ThriftError(f"unknown Thrift type code {ttype}")


def field_header_at(data: bytes, pos: int, last: int) -> tuple[int, int, int]:
    """The field header at ``pos`` after field id ``last``: (type code, field id, position
    after it); the type code is ``STOP`` at the end of a struct (its field id then means
    nothing)."""
    head = data[pos]
    pos += 1
    ttype = head & 0x0F
    if ttype == STOP:
        return ttype, last, pos
    delta = head >> 4
    if delta:
        return ttype, last + delta, pos
    z, pos = varint_at(data, pos)
    return ttype, (z >> 1) ^ -(z & 1), pos


def _struct_at(data: bytes, pos: int, depth: int) -> tuple[Struct, int]:
    if depth > 64:
        raise ThriftError("Thrift data nested too deeply")
    fields: list[list[Any]] = []
    last = 0
    while True:
        ttype, fid, pos = field_header_at(data, pos, last)
        if ttype == STOP:
            return Struct(fields), pos
        if ttype == TRUE or ttype == FALSE:
            fields.append([fid, ttype, ttype == TRUE])
        else:
            value, pos = value_at(data, pos, ttype, depth)
            fields.append([fid, ttype, value])
        last = fid


def read_struct(data: bytes) -> tuple[Struct, int]:
    """Parse one compact-protocol struct at the start of ``data``: (struct, bytes read).
    Raises :class:`ThriftError` for data that is not one."""
    try:
        return _struct_at(data, 0, 0)
    except IndexError:
        raise ThriftError("truncated Thrift data") from None
    except RecursionError:
        raise ThriftError("Thrift data nested too deeply") from None


def write_varint(out: bytearray, n: int) -> None:
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def write_zigzag(out: bytearray, n: int) -> None:
    write_varint(out, ((n << 1) ^ (n >> 63)) & 0xFFFFFFFFFFFFFFFF)


def write_value(out: bytearray, ttype: int, value: Any) -> None:
    if ttype in (TRUE, FALSE):
        out.append(value)
    elif ttype == BYTE:
        out.append(value & 0xFF)
    elif ttype in (I16, I32, I64):
        write_zigzag(out, value)
    elif ttype == DOUBLE:
        out += value
    elif ttype == BINARY:
        write_varint(out, len(value))
        out += value
    elif ttype in (LIST, SET):
        size = len(value.items)
        if size < 15:
            out.append(size << 4 | value.etype)
        else:
            out.append(0xF0 | value.etype)
            write_varint(out, size)
        for item in value.items:
            write_value(out, value.etype, item)
    elif ttype == MAP:
        write_varint(out, len(value.items))
        if value.items:
            out.append(value.ktype << 4 | value.vtype)
            for k, v in value.items:
                write_value(out, value.ktype, k)
                write_value(out, value.vtype, v)
    elif ttype == STRUCT:
        _write_struct(out, value)
    else:
        raise ThriftError(f"unknown Thrift type code {ttype}")


def _write_struct(out: bytearray, s: Struct) -> None:
    last = 0
    for fid, ttype, value in s.fields:
        if ttype in (TRUE, FALSE):
            ttype = TRUE if value else FALSE
        write_field_header(out, last, fid, ttype)
        if ttype not in (TRUE, FALSE):
            write_value(out, ttype, value)
        last = fid
    out.append(STOP)


def write_struct(s: Struct) -> bytes:
    """The compact-protocol bytes of ``s``."""
    out = bytearray()
    _write_struct(out, s)
    return bytes(out)


def skip_value(data: bytes, pos: int, ttype: int) -> int:
    """The position after the value of type ``ttype`` at ``pos`` (nothing built)."""
    if ttype == I32 or ttype == I64 or ttype == I16:
        while data[pos] & 0x80:
            pos += 1
        return pos + 1
    if ttype == BINARY:
        n, pos = varint_at(data, pos)
        return pos + n
    if ttype == STRUCT:
        while True:
            head = data[pos]
            pos += 1
            if head & 0x0F == STOP:
                return pos
            if not head >> 4:
                while data[pos] & 0x80:
                    pos += 1
                pos += 1
            if head & 0x0F not in (TRUE, FALSE):
                pos = skip_value(data, pos, head & 0x0F)
    if ttype == LIST or ttype == SET:
        head = data[pos]
        pos += 1
        size, etype = head >> 4, head & 0x0F
        if size == 15:
            size, pos = varint_at(data, pos)
        if etype in (TRUE, FALSE, BYTE):
            return pos + size
        if etype == DOUBLE:
            return pos + 8 * size
        for _ in range(size):
            pos = skip_value(data, pos, etype)
        return pos
    if ttype in (TRUE, FALSE, BYTE):
        return pos + 1
    if ttype == DOUBLE:
        return pos + 8
    return value_at(data, pos, ttype, 0)[1]  # a map: rare, parsed


def write_field_header(out: bytearray, last: int, fid: int, ttype: int) -> None:
    """Append the header of field ``fid`` of type code ``ttype``, after field id ``last``:
    the id as a delta in the type byte when it fits, else after it as a zigzag varint."""
    delta = fid - last
    if 0 < delta <= 15:
        out.append(delta << 4 | ttype)
    else:
        out.append(ttype)
        write_zigzag(out, fid)
