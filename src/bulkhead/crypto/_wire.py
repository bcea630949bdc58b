"""Byte-level helpers shared by the envelope and streaming formats."""

from __future__ import annotations

import struct

from bulkhead.crypto._errors import DecryptionFailed

MAX_FIELD = 0xFFFF
"""Length-prefixed fields carry a uint16 length, so at most 65535 bytes."""


def field(value: bytes) -> bytes:
    """`value` with a big-endian uint16 length in front, so concatenations parse one way."""
    if len(value) > MAX_FIELD:
        raise ValueError("field longer than 65535 bytes")
    return struct.pack(">H", len(value)) + value


def u32(value: int) -> bytes:
    """`value` as a big-endian uint32."""
    return struct.pack(">I", value)


def context(label: bytes, tenant_id: str, kind: str, object_id: str) -> bytes:
    """Associated data naming where a ciphertext belongs (STYLE rule 10).

    Every part is length-prefixed, so ("ab", "c") and ("a", "bc") differ, and
    `label` separates the uses of one context (body, DEK wrap, segment key).
    """
    parts = (tenant_id, kind, object_id)
    return field(label) + b"".join(field(part.encode()) for part in parts)


class Reader:
    """Reads fields off the front of a buffer; any shortfall is `DecryptionFailed`."""

    __slots__ = ("_data", "_offset")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def take(self, size: int) -> bytes:
        end = self._offset + size
        if end > len(self._data):
            raise DecryptionFailed()
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def field(self) -> bytes:
        (size,) = struct.unpack(">H", self.take(2))
        return self.take(size)

    def u32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def rest(self) -> bytes:
        return self._data[self._offset :]

    @property
    def offset(self) -> int:
        return self._offset
