"""BHS1 streaming vectors: decrypt through bulkhead and through a second implementation.

`reference_decrypt` is written here directly against `cryptography`'s AESGCM
and HKDF from the format in README.md (Tink's AES-GCM-HKDF streaming layout,
RFC 5869 HKDF); it shares no code with `bulkhead.crypto`.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bulkhead.crypto import DecryptionFailed, Kek, LocalKms, MemoryKekStore, decrypt_stream
from tests.vectors.streaming_aead import generate

VALID: dict[str, Any] = json.loads(generate.VALID.read_text())
INVALID: dict[str, Any] = json.loads(generate.INVALID.read_text())
MASTER = bytes.fromhex(VALID["master_key_hex"])
IDS = ("tenant_id", "kind", "object_id")


def _kms() -> LocalKms:
    return LocalKms(MemoryKekStore(VALID["keystore"]), Kek(MASTER))


def _lp(value: bytes) -> bytes:
    return struct.pack(">H", len(value)) + value


def _context(label: bytes, case: dict[str, Any]) -> bytes:
    return _lp(label) + b"".join(_lp(case[key].encode()) for key in IDS)


def _kek(tenant: str, version: int) -> bytes:
    entry = next(v for v in VALID["keystore"]["tenants"][tenant] if v["version"] == version)
    wrapped = base64.b64decode(entry["wrapped_kek"])
    aad = _lp(b"bulkhead/local-kms/kek") + _lp(tenant.encode()) + struct.pack(">I", version)
    return AESGCM(MASTER).decrypt(wrapped[:12], wrapped[12:], aad)


def reference_decrypt(case: dict[str, Any], stream: bytes) -> tuple[bytes, bytes]:
    """Return (DEK, plaintext); raises on any mismatch."""
    span = generate.header_fields(stream)
    field = {name: stream[where] for name, where in span.items()}
    assert field["magic"] == b"BHS1" and field["format-version"] == b"\x01"
    assert field["kek-id"].decode() == case["tenant_id"]
    (version,) = struct.unpack(">I", field["kek-version"])
    (size,) = struct.unpack(">I", field["segment-size"])
    wrapped = field["wrapped-dek"]
    dek_aad = _lp(b"bulkhead/local-kms/dek") + field["kek-id-length"] + field["kek-id"]
    dek_aad += field["kek-version"] + b"BHS1\x01" + _context(b"bulkhead/stream/dek", case)
    dek = AESGCM(_kek(case["tenant_id"], version)).decrypt(wrapped[:12], wrapped[12:], dek_aad)
    info = b"BHS1\x01" + field["segment-size"] + _context(b"bulkhead/stream/segment-key", case)
    key = HKDF(hashes.SHA256(), 32, field["salt"], info).derive(dek)
    body = stream[span["nonce-prefix"].stop :]
    return dek, _open_segments(AESGCM(key), field["nonce-prefix"], body, size + 16)


def _open_segments(aead: AESGCM, prefix: bytes, body: bytes, size: int) -> bytes:
    # The last segment is whatever remains after the full ones: 16 to size bytes.
    count = max(1, -(-len(body) // size))
    out = []
    for i in range(count):
        nonce = prefix + struct.pack(">IB", i, i == count - 1)
        out.append(aead.decrypt(nonce, body[i * size : (i + 1) * size], None))
    return b"".join(out)


def _stream(case: dict[str, Any]) -> bytes:
    return bytes.fromhex(case["header_hex"] + "".join(case["segments_hex"]))


@pytest.mark.parametrize("case", VALID["cases"], ids=lambda case: case["name"])
@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_bulkhead_decrypts_vector(case: dict[str, Any], chunk: int) -> None:
    stream = _stream(case)
    chunks = [stream[i : i + chunk] for i in range(0, len(stream), chunk)]
    ids = {key: case[key] for key in IDS}
    assert b"".join(decrypt_stream(chunks, **ids, kms=_kms())).hex() == case["plaintext_hex"]


@pytest.mark.parametrize("case", VALID["cases"], ids=lambda case: case["name"])
def test_reference_implementation_agrees(case: dict[str, Any]) -> None:
    dek, plaintext = reference_decrypt(case, _stream(case))
    header = bytes.fromhex(case["header_hex"])
    span = generate.header_fields(header)
    assert (dek.hex(), plaintext.hex()) == (case["dek_hex"], case["plaintext_hex"])
    assert header[span["salt"]].hex() == case["salt_hex"]
    assert header[span["nonce-prefix"]].hex() == case["nonce_prefix_hex"]


@pytest.mark.parametrize("case", INVALID["cases"], ids=lambda case: case["name"])
def test_mutation_fails_opaquely(case: dict[str, Any]) -> None:
    stream = bytes.fromhex(case["stream_hex"])
    ids = {key: case[key] for key in IDS}
    with pytest.raises(DecryptionFailed) as failure:
        b"".join(decrypt_stream([stream], **ids, kms=_kms()))
    assert str(failure.value) == "The data could not be decrypted."


@pytest.mark.parametrize("case", INVALID["cases"], ids=lambda case: case["name"])
def test_reference_implementation_rejects_mutation(case: dict[str, Any]) -> None:
    with pytest.raises(Exception):
        reference_decrypt(case, bytes.fromhex(case["stream_hex"]))


def test_mutations_cover_every_header_field() -> None:
    names = {case["name"] for case in INVALID["cases"]}
    header = bytes.fromhex(VALID["cases"][0]["header_hex"])
    assert {f"flip-header-{name}" for name in generate.header_fields(header)} <= names


def test_generator_reproduces_files() -> None:
    valid, invalid = generate.build()
    assert json.loads(json.dumps(valid)) == VALID
    assert json.loads(json.dumps(invalid)) == INVALID
