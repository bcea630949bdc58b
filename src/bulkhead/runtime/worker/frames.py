"""The in-memory weights a worker gets on stdin, after its token line.

Length-prefixed frames, integers big-endian::

    count      4   uint32, number of files
    per file:
      name     2+n uint16 length prefix, UTF-8
      data     8+m uint64 length prefix

The supervisor writes them into the pipe and the worker reads them into
memory, so decrypted weights are never written to a file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import BinaryIO, Final

MAX_FILES: Final = 256
MAX_NAME_BYTES: Final = 255
MAX_FILE_BYTES: Final = 1 << 40


class FrameError(Exception):
    """The weights on stdin are malformed or cut short."""


def encode(files: Sequence[tuple[str, bytes | bytearray]]) -> Iterator[bytes | bytearray]:
    """Yield the frames of ``files``; large payloads are yielded as they are, not copied."""
    yield struct.pack(">I", len(files))
    for name, data in files:
        raw = name.encode()
        yield struct.pack(">H", len(raw)) + raw + struct.pack(">Q", len(data))
        yield data


def _exactly(stream: BinaryIO, size: int) -> bytes:
    # A buffered binary stream's read(n) returns fewer than n bytes only at end of file.
    data = stream.read(size)
    if len(data) != size:
        raise FrameError("the weights on stdin end early")
    return data


def decode(stream: BinaryIO) -> list[tuple[str, bytes]]:
    """Read the frames of `encode` from ``stream``."""
    (count,) = struct.unpack(">I", _exactly(stream, 4))
    if not 0 < count <= MAX_FILES:
        raise FrameError(f"the weights must be 1 to {MAX_FILES} files")
    files = []
    for _ in range(count):
        (length,) = struct.unpack(">H", _exactly(stream, 2))
        if not 0 < length <= MAX_NAME_BYTES:
            raise FrameError("a weights file name is empty or too long")
        name = _exactly(stream, length).decode("utf-8", errors="strict")
        (size,) = struct.unpack(">Q", _exactly(stream, 8))
        if size > MAX_FILE_BYTES:
            raise FrameError("a weights file is too large")
        files.append((name, _exactly(stream, size)))
    return files
