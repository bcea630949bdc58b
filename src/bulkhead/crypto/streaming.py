"""Streaming AEAD for large objects, after Tink's AES-GCM-HKDF streaming design.

A stream is a header followed by segments (all integers big-endian; pinned by
``tests/vectors/streaming_aead/``)::

    magic            4   b"BHS1"
    format version   1   0x01
    KEK id           2+n tenant id, UTF-8, uint16 length prefix
    KEK version      4   uint32
    wrapped DEK      2+m uint16 length prefix (the KMS's format)
    segment size     4   uint32, plaintext bytes per segment
    salt            32   random, per object
    nonce prefix     7   random, per object
    segments         *   AES-256-GCM(segment key, nonce, plaintext segment, b"")

As in Tink (``streamingaead/_aes_gcm_hkdf_streaming``, RFC 5869 for HKDF), the
segment key is ``HKDF-SHA256(DEK, salt, info)`` and segment ``i`` has the
nonce ``nonce_prefix(7) ‖ uint32(i) ‖ last(1)``, where ``last`` is 1 only on the
final segment.  The counter stops reordering, dropping and duplication; the
last-segment flag stops truncation at a segment boundary and appending (the
STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár).  Two choices
differ from Tink: every segment holds exactly `segment size` plaintext bytes
except the last (Tink shortens the first by the header length), and ``info``
is not the associated data alone but ``magic ‖ version ‖ segment size ‖
context`` (tenant, object kind and object id, length-prefixed), so the
segment size in the header cannot be changed either.  The last segment holds
1 to `segment size` bytes, or 0 when the whole plaintext is empty.

`decrypt_stream` yields each segment's plaintext as soon as it is
authenticated; truncation is only detected at the end, so a consumer must not
act on the output until the iterator has finished without raising.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from bulkhead.crypto._errors import DecryptionFailed
from bulkhead.crypto._keys import DataKey, Rng, aead_of, derive
from bulkhead.crypto._wire import context, field, u32
from bulkhead.crypto.hazmat import GCM_TAG_SIZE, AesGcm
from bulkhead.crypto.kms import Kms

MAGIC = b"BHS1"
VERSION = 1
DEFAULT_SEGMENT_SIZE = 1 << 20
MIN_SEGMENT_SIZE = 16
MAX_SEGMENT_SIZE = 1 << 26
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
_PREFIX = MAGIC + bytes([VERSION])
_MAX_SEGMENTS = 1 << 32

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class _Header:
    tenant_id: str
    kek_version: int
    wrapped_dek: bytes
    segment_size: int
    salt: bytes
    nonce_prefix: bytes

    def encode(self) -> bytes:
        return b"".join(
            (
                _PREFIX,
                field(self.tenant_id.encode()),
                u32(self.kek_version),
                field(self.wrapped_dek),
                u32(self.segment_size),
                self.salt,
                self.nonce_prefix,
            )
        )


def encrypt_stream(
    chunks: Iterable[Buffer],
    *,
    tenant_id: str,
    kind: str,
    object_id: str,
    kms: Kms,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    rng: Rng | None = None,
) -> Iterator[bytes]:
    """Encrypt a stream of chunks; yields the header, then one ciphertext per segment.

    The DEK is drawn and wrapped now, so KMS errors surface here, not mid-stream.
    """
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError("segment size out of range")
    rng = rng or os.urandom
    dek = DataKey.generate(rng)
    wrap_aad = _wrap_aad(tenant_id, kind, object_id)
    version, wrapped = kms.wrap_dek(tenant_id, dek, wrap_aad)
    salt, prefix = rng(SALT_SIZE), rng(NONCE_PREFIX_SIZE)
    header = _Header(tenant_id, version, wrapped, segment_size, salt, prefix)
    return _seal_segments(_segment_aead(dek, header, kind, object_id), header, chunks)


def decrypt_stream(
    chunks: Iterable[Buffer], *, tenant_id: str, kind: str, object_id: str, kms: Kms
) -> Iterator[bytes]:
    """Decrypt a stream of `encrypt_stream`; any failure raises `DecryptionFailed`."""
    pull = _Pull(iter(chunks))
    header = _read_header(pull, tenant_id)
    wrap_aad = _wrap_aad(tenant_id, kind, object_id)
    dek = kms.unwrap_dek(tenant_id, header.kek_version, header.wrapped_dek, wrap_aad)
    aead = _segment_aead(dek, header, kind, object_id)
    for index, (segment, last) in enumerate(
        _split(pull.rest(), header.segment_size + GCM_TAG_SIZE)
    ):
        yield aead.open(_nonce(header.nonce_prefix, index, last), segment, b"")


def decrypt_stream_into(
    ciphertext: Buffer,
    *,
    tenant_id: str,
    kind: str,
    object_id: str,
    kms: Kms,
    on_segment: Callable[[memoryview], None] | None = None,
) -> bytearray:
    """Decrypt a whole stream held in memory into one new buffer, without joining segments.

    Segment boundaries follow from the length, so the last-segment flag is
    still checked.  `on_segment` sees each authenticated plaintext segment as
    it is written (to hash it on the side, say).  On any failure the buffer
    is zeroed and dropped, and `DecryptionFailed` is raised.
    """
    failed = False
    try:
        return _open_all(ciphertext, tenant_id, kind, object_id, kms, on_segment)
    except DecryptionFailed:
        # Raised afresh below, outside this handler, so that no traceback keeps
        # views of `ciphertext` alive (a memory-mapped caller must be able to unmap).
        failed = True
    assert failed
    raise DecryptionFailed()


def _open_all(
    ciphertext: Buffer,
    tenant_id: str,
    kind: str,
    object_id: str,
    kms: Kms,
    on_segment: Callable[[memoryview], None] | None,
) -> bytearray:
    pull = _Pull(iter([ciphertext]))
    header = _read_header(pull, tenant_id)
    rest = [c for c in pull.rest() if len(c)]
    body = memoryview(rest[0] if len(rest) == 1 else b"".join(bytes(c) for c in rest))
    sealed = header.segment_size + GCM_TAG_SIZE
    count = max(1, -(-len(body) // sealed))
    last_size = len(body) - (count - 1) * sealed - GCM_TAG_SIZE
    if last_size < 0 or (last_size == 0 and count > 1):
        raise DecryptionFailed()
    wrap_aad = _wrap_aad(tenant_id, kind, object_id)
    dek = kms.unwrap_dek(tenant_id, header.kek_version, header.wrapped_dek, wrap_aad)
    aead = _segment_aead(dek, header, kind, object_id)
    out = bytearray(len(body) - count * GCM_TAG_SIZE)
    view = memoryview(out)
    try:
        for index in range(count):
            segment = view[index * header.segment_size : (index + 1) * header.segment_size]
            nonce = _nonce(header.nonce_prefix, index, index == count - 1)
            aead.open_into(nonce, body[index * sealed : (index + 1) * sealed], b"", segment)
            if on_segment is not None:
                on_segment(segment)
    except DecryptionFailed:
        view[:] = bytes(len(view))
        raise
    return out


def encrypt_stream_bytes(
    plaintext: bytes,
    *,
    tenant_id: str,
    kind: str,
    object_id: str,
    kms: Kms,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    rng: Rng | None = None,
) -> bytes:
    """`encrypt_stream` over one buffer, joined."""
    stream = encrypt_stream(
        [plaintext], tenant_id=tenant_id, kind=kind, object_id=object_id, kms=kms,
        segment_size=segment_size, rng=rng,
    )  # fmt: skip
    return b"".join(stream)


def decrypt_stream_bytes(
    ciphertext: bytes, *, tenant_id: str, kind: str, object_id: str, kms: Kms
) -> bytes:
    """`decrypt_stream` over one buffer, joined."""
    stream = decrypt_stream(
        [ciphertext], tenant_id=tenant_id, kind=kind, object_id=object_id, kms=kms
    )
    return b"".join(stream)


def rewrap_stream(
    ciphertext: Buffer, *, tenant_id: str, kind: str, object_id: str, kms: Kms
) -> bytes:
    """Re-wrap a stream's DEK under the tenant's primary KEK; segments are copied unchanged."""
    pull = _Pull(iter([ciphertext]))
    header = _read_header(pull, tenant_id)
    version, wrapped = kms.rewrap(
        tenant_id, header.kek_version, header.wrapped_dek, _wrap_aad(tenant_id, kind, object_id)
    )
    fresh = _Header(
        tenant_id, version, wrapped, header.segment_size, header.salt, header.nonce_prefix
    )
    return fresh.encode() + b"".join(bytes(c) for c in pull.rest())


def _seal_segments(aead: AesGcm, header: _Header, chunks: Iterable[Buffer]) -> Iterator[bytes]:
    yield header.encode()
    for index, (segment, last) in enumerate(_split(chunks, header.segment_size)):
        yield aead.seal(_nonce(header.nonce_prefix, index, last), segment, b"")


def _segment_aead(dek: DataKey, header: _Header, kind: str, object_id: str) -> AesGcm:
    # Tink derives the segment key with HKDF (RFC 5869) from the key, a per-object
    # salt and the associated data; see the module docstring for our `info`.
    ctx = context(b"bulkhead/stream/segment-key", header.tenant_id, kind, object_id)
    info = _PREFIX + u32(header.segment_size) + ctx
    return aead_of(derive(dek, salt=header.salt, info=info))


def _wrap_aad(tenant_id: str, kind: str, object_id: str) -> bytes:
    return _PREFIX + context(b"bulkhead/stream/dek", tenant_id, kind, object_id)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    # Tink's segment nonce: prefix ‖ uint32 counter ‖ last-segment byte (12 bytes,
    # the length NIST SP 800-38D §5.2.1.1 recommends).
    if index >= _MAX_SEGMENTS:
        raise DecryptionFailed()
    return prefix + struct.pack(">IB", index, last)


def _read_header(pull: _Pull, tenant_id: str) -> _Header:
    if pull.take(len(_PREFIX)) != _PREFIX or pull.field() != tenant_id.encode():
        raise DecryptionFailed()
    version, wrapped, segment_size = pull.u32(), pull.field(), pull.u32()
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise DecryptionFailed()
    salt, prefix = pull.take(SALT_SIZE), pull.take(NONCE_PREFIX_SIZE)
    return _Header(tenant_id, version, wrapped, segment_size, salt, prefix)


def _split(chunks: Iterable[Buffer], size: int) -> Iterator[tuple[Buffer, bool]]:
    """Cut chunks into `size`-byte segments; the flag marks the final one.

    A full segment is only released once a byte after it is seen, since only
    then is it known not to be the last.  Segments inside one chunk are
    sliced without copying; one that straddles chunks is joined once, in one
    allocation.  Writable chunks are copied first, so a caller reusing its
    read buffer cannot change data already handed over.
    """
    parts: list[memoryview] = []
    held = 0
    for chunk in chunks:
        view = memoryview(chunk)
        if not view.readonly:
            view = memoryview(bytes(view))
        if parts:
            need = size - held
            if len(view) <= need:
                parts.append(view)
                held += len(view)
                continue
            parts.append(view[:need])
            view = view[need:]
            yield b"".join(parts), False
            parts, held = [], 0
        offset = 0
        while len(view) - offset > size:
            yield view[offset : offset + size], False
            offset += size
        if offset < len(view):
            parts.append(view[offset:])
            held += len(view) - offset
    yield b"".join(parts), True


class _Pull:
    """Reads the header off the front of an iterator of chunks."""

    def __init__(self, chunks: Iterator[Buffer]) -> None:
        self._chunks = chunks
        self._head: Buffer = b""

    def take(self, size: int) -> bytes:
        while len(self._head) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise DecryptionFailed()
            self._head = bytes(self._head) + chunk if self._head else chunk
        taken = bytes(self._head[:size])
        self._head = memoryview(self._head)[size:]
        return taken

    def field(self) -> bytes:
        (size,) = struct.unpack(">H", self.take(2))
        return self.take(size)

    def u32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def rest(self) -> Iterator[Buffer]:
        yield self._head
        yield from self._chunks
