from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkhead.crypto import (
    DecryptionFailed,
    LocalKms,
    decrypt_stream,
    decrypt_stream_bytes,
    encrypt_stream,
    encrypt_stream_bytes,
)

IDS = {"tenant_id": "acme", "kind": "blob", "object_id": "b-1"}
SEGMENT = 64
SHARED = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# Sizes around segment multiples (0, 64, 128, ...) are the boundary cases.
SIZES = st.one_of(
    st.integers(0, 5 * SEGMENT),
    st.sampled_from([0, SEGMENT, 2 * SEGMENT, 3 * SEGMENT]),
)


@SHARED
@given(size=SIZES, chunk=st.integers(1, 300), data=st.data())
def test_round_trip_any_chunking(kms: LocalKms, size: int, chunk: int, data: st.DataObject) -> None:
    plaintext = data.draw(st.binary(min_size=size, max_size=size))
    pieces = encrypt_stream(_chunked(plaintext, chunk), **IDS, kms=kms, segment_size=SEGMENT)
    stream = b"".join(pieces)
    out = decrypt_stream(_chunked(stream, data.draw(st.integers(1, 300))), **IDS, kms=kms)
    assert b"".join(out) == plaintext


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT])
def test_segment_count(kms: LocalKms, size: int) -> None:
    parts = list(encrypt_stream([bytes(size)], **IDS, kms=kms, segment_size=SEGMENT))
    assert len(parts) - 1 == max(1, -(-size // SEGMENT))
    assert all(len(part) == SEGMENT + 16 for part in parts[1:-1])


def test_whole_bytes_helpers(kms: LocalKms) -> None:
    stream = encrypt_stream_bytes(b"abc" * 1000, **IDS, kms=kms, segment_size=SEGMENT)
    assert decrypt_stream_bytes(stream, **IDS, kms=kms) == b"abc" * 1000


def _segments(kms: LocalKms) -> list[bytes]:
    return list(encrypt_stream([bytes(3 * SEGMENT)], **IDS, kms=kms, segment_size=SEGMENT))


@pytest.mark.parametrize(
    "reshape",
    [
        pytest.param(lambda p: [p[0], p[2], p[1], p[3]], id="reordered"),
        pytest.param(lambda p: [p[0], p[1], p[3]], id="dropped-middle"),
        pytest.param(lambda p: p[:3], id="dropped-last"),
        pytest.param(lambda p: [*p, p[3]], id="appended"),
        pytest.param(lambda p: [p[0], p[1], p[1], p[2], p[3]], id="duplicated"),
        pytest.param(lambda p: [*p[:3], p[3][:-1]], id="truncated"),
        pytest.param(lambda p: [*p, b"\x00"], id="trailing-garbage"),
        pytest.param(lambda p: p[:1], id="header-only"),
    ],
)
def test_stream_tampering_fails(kms: LocalKms, reshape: object) -> None:
    parts = reshape(_segments(kms))  # type: ignore[operator]
    with pytest.raises(DecryptionFailed):
        b"".join(decrypt_stream([b"".join(parts)], **IDS, kms=kms))


def test_swapped_header_fails(kms: LocalKms) -> None:
    first, second = _segments(kms), _segments(kms)
    with pytest.raises(DecryptionFailed):
        b"".join(decrypt_stream([second[0], *first[1:]], **IDS, kms=kms))


@pytest.mark.parametrize("other", [{"tenant_id": "globex"}, {"kind": "x"}, {"object_id": "b-2"}])
def test_context_is_bound(kms: LocalKms, other: dict[str, str]) -> None:
    stream = b"".join(_segments(kms))
    with pytest.raises(DecryptionFailed):
        b"".join(decrypt_stream([stream], **(IDS | other), kms=kms))


def test_bad_segment_size_is_refused(kms: LocalKms) -> None:
    with pytest.raises(ValueError):
        encrypt_stream([b""], **IDS, kms=kms, segment_size=1)


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 31, 32, 33, 100])
def test_decrypt_into_matches_and_fails_closed(size: int) -> None:
    from bulkhead.crypto import Kek, LocalKms, MemoryKekStore, decrypt_stream_into

    kms = LocalKms(MemoryKekStore(), Kek.generate())
    kms.create_tenant("t")
    where = {"tenant_id": "t", "kind": "model", "object_id": "o", "kms": kms}
    plain = os.urandom(size)
    sealed = encrypt_stream_bytes(plain, segment_size=16, **where)  # type: ignore[arg-type]
    seen: list[bytes] = []
    out = decrypt_stream_into(sealed, on_segment=lambda v: seen.append(bytes(v)), **where)  # type: ignore[arg-type]
    assert bytes(out) == plain and b"".join(seen) == plain
    flipped = sealed[:-5] + bytes([sealed[-5] ^ 1]) + sealed[-4:]
    for bad in (sealed[:-1], sealed[: len(sealed) - 32], flipped, sealed + bytes(32)):
        with pytest.raises(DecryptionFailed):
            decrypt_stream_into(bad, **where)  # type: ignore[arg-type]
    with pytest.raises(DecryptionFailed):
        decrypt_stream_into(sealed, tenant_id="t", kind="model", object_id="x", kms=kms)
