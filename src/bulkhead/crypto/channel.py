"""A one-way sealed channel: records under a fresh key that only the two ends hold.

Used where a byte stream must pass through something that keeps a copy (a container's
stdout is written to the node's log files by the container runtime): the sender seals each
chunk as one record, the receiver opens them in order.  Each record is

    length   4   uint32, the sealed record's size (at most `MAX_RECORD` + tag)
    sealed   n   AES-256-GCM of the chunk, nonce = 4 zero bytes + uint64 record index

under a 32-byte key made by `new_key` and never reused for a second channel, so a nonce
never repeats; a record dropped, reordered, replayed or changed fails to open.  The end
of the stream is not sealed: the reader of the opened bytes must know where its message
ends (the fine-tuning stream does: an end event, then counted frames).
"""

from __future__ import annotations

import os
import struct
from typing import Final

from bulkhead.crypto._errors import DecryptionFailed
from bulkhead.crypto.hazmat import AES_KEY_SIZE, GCM_TAG_SIZE, AesGcm

MAX_RECORD: Final = 1 << 20
_AAD: Final = b"bulkhead channel v1"


def new_key() -> bytes:
    """A fresh channel key (32 random bytes)."""
    return os.urandom(AES_KEY_SIZE)


def _nonce(index: int) -> bytes:
    return b"\0\0\0\0" + struct.pack(">Q", index)


class ChannelSealer:
    """The sending end: `seal(chunk)` gives the record(s) to write, in order."""

    __slots__ = ("_aead", "_index")

    def __init__(self, key: bytes) -> None:
        self._aead = AesGcm(key)
        self._index = 0

    def __repr__(self) -> str:
        return "ChannelSealer(<key hidden>)"

    def seal(self, chunk: bytes | bytearray | memoryview) -> bytes:
        view = memoryview(chunk)
        out = bytearray()
        for start in range(0, len(view), MAX_RECORD):
            sealed = self._aead.seal(_nonce(self._index), view[start : start + MAX_RECORD], _AAD)
            self._index += 1
            out += struct.pack(">I", len(sealed)) + sealed
        return bytes(out)


class ChannelOpener:
    """The receiving end: `feed(data)` gives the plaintext of every whole record so far;
    `DecryptionFailed` for a record that is not the next one sealed with the key."""

    __slots__ = ("_aead", "_buffer", "_index", "broken")

    def __init__(self, key: bytes) -> None:
        self._aead = AesGcm(key)
        self._index = 0
        self._buffer = bytearray()
        self.broken = False

    def __repr__(self) -> str:
        return "ChannelOpener(<key hidden>)"

    def feed(self, data: bytes) -> bytes:
        """The plaintext of the whole records so far.  At a bad record it returns what
        opened before it (if anything) and raises from then on (`broken`)."""
        if self.broken:
            raise DecryptionFailed()
        self._buffer += data
        out = bytearray()
        try:
            while len(self._buffer) >= 4:
                (size,) = struct.unpack(">I", self._buffer[:4])
                if not GCM_TAG_SIZE <= size <= MAX_RECORD + GCM_TAG_SIZE:
                    raise DecryptionFailed()
                if len(self._buffer) < 4 + size:
                    break
                record = bytes(self._buffer[4 : 4 + size])
                del self._buffer[: 4 + size]
                out += self._aead.open(_nonce(self._index), record, _AAD)
                self._index += 1
        except DecryptionFailed:
            self.broken = True
            self._buffer.clear()
            if not out:
                raise
        return bytes(out)

    @property
    def pending(self) -> int:
        """Bytes of a record begun and not finished (a cut stream leaves some)."""
        return len(self._buffer)
