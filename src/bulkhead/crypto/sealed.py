"""Operations on a sealed object of either format, told apart by its magic.

The keyring re-wraps and inspects every blob a tenant has without knowing
which service wrote it; these keep that knowledge of the formats in crypto.
"""

from __future__ import annotations

from bulkhead.crypto._errors import DecryptionFailed
from bulkhead.crypto._wire import Reader
from bulkhead.crypto.envelope import MAGIC as ENVELOPE_MAGIC
from bulkhead.crypto.envelope import rewrap
from bulkhead.crypto.kms import Kms
from bulkhead.crypto.streaming import MAGIC as STREAM_MAGIC
from bulkhead.crypto.streaming import rewrap_stream


def rewrap_sealed(sealed: bytes, *, tenant_id: str, kind: str, object_id: str, kms: Kms) -> bytes:
    """Re-wrap an envelope (BHE1) or a stream (BHS1) under the tenant's primary KEK."""
    if sealed.startswith(STREAM_MAGIC):
        return rewrap_stream(sealed, tenant_id=tenant_id, kind=kind, object_id=object_id, kms=kms)
    if sealed.startswith(ENVELOPE_MAGIC):
        return rewrap(sealed, tenant_id=tenant_id, kind=kind, object_id=object_id, kms=kms)
    raise DecryptionFailed()


def is_sealed(data: bytes) -> bool:
    """Whether `data` starts like a sealed object of either format."""
    return data.startswith((STREAM_MAGIC, ENVELOPE_MAGIC))


def kek_version(sealed: bytes, tenant_id: str) -> int:
    """The KEK version in the header (both formats: magic, version byte, tenant, u32)."""
    if not is_sealed(sealed):
        raise DecryptionFailed()
    reader = Reader(sealed)
    reader.take(len(ENVELOPE_MAGIC) + 1)
    if reader.field() != tenant_id.encode():
        raise DecryptionFailed()
    return reader.u32()
