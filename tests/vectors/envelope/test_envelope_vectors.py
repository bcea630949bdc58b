"""BHE1 envelope vectors: decrypt through bulkhead and through a second implementation.

The second implementation (`reference_decrypt`) is written here directly
against `cryptography`'s AESGCM from the format description in README.md; it
shares no code with `bulkhead.crypto`, so the two must agree byte for byte.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bulkhead.crypto import DecryptionFailed, Kek, LocalKms, MemoryKekStore, decrypt
from tests.vectors.envelope import generate

VALID: dict[str, Any] = json.loads(generate.VALID.read_text())
INVALID: dict[str, Any] = json.loads(generate.INVALID.read_text())
MASTER = bytes.fromhex(VALID["master_key_hex"])


def _kms() -> LocalKms:
    return LocalKms(MemoryKekStore(VALID["keystore"]), Kek(MASTER))


def _lp(value: bytes) -> bytes:
    return struct.pack(">H", len(value)) + value


def _context(label: bytes, case: dict[str, Any]) -> bytes:
    ids = (case["tenant_id"], case["kind"], case["object_id"])
    return b"BHE1\x01" + _lp(label) + b"".join(_lp(part.encode()) for part in ids)


def reference_kek(tenant: str, version: int) -> bytes:
    """Unwrap a KEK from the keystore document (LocalKms's documented format)."""
    entry = next(v for v in VALID["keystore"]["tenants"][tenant] if v["version"] == version)
    wrapped = base64.b64decode(entry["wrapped_kek"])
    aad = _lp(b"bulkhead/local-kms/kek") + _lp(tenant.encode()) + struct.pack(">I", version)
    return AESGCM(MASTER).decrypt(wrapped[:12], wrapped[12:], aad)


def reference_decrypt(case: dict[str, Any]) -> tuple[bytes, bytes]:
    """Return (DEK, plaintext) of a vector; raises on any mismatch."""
    ct = bytes.fromhex(case["ciphertext_hex"])
    span = generate.fields(ct)
    assert ct[span["magic"]] == b"BHE1" and ct[span["format-version"]] == b"\x01"
    tenant = ct[span["kek-id"]].decode()
    assert tenant == case["tenant_id"]
    (version,) = struct.unpack(">I", ct[span["kek-version"]])
    wrapped = ct[span["wrapped-dek"]]
    dek_aad = (
        _lp(b"bulkhead/local-kms/dek")
        + _lp(tenant.encode())
        + struct.pack(">I", version)
        + _context(b"bulkhead/envelope/dek", case)
    )
    dek = AESGCM(reference_kek(tenant, version)).decrypt(wrapped[:12], wrapped[12:], dek_aad)
    body = ct[span["nonce"].start :]
    aad = _context(b"bulkhead/envelope/body", case)
    return dek, AESGCM(dek).decrypt(body[:12], body[12:], aad)


@pytest.mark.parametrize("case", VALID["cases"], ids=lambda case: case["name"])
def test_bulkhead_decrypts_vector(case: dict[str, Any]) -> None:
    ct = bytes.fromhex(case["ciphertext_hex"])
    ids = {key: case[key] for key in ("tenant_id", "kind", "object_id")}
    assert decrypt(ct, **ids, kms=_kms()).hex() == case["plaintext_hex"]


@pytest.mark.parametrize("case", VALID["cases"], ids=lambda case: case["name"])
def test_reference_implementation_agrees(case: dict[str, Any]) -> None:
    dek, plaintext = reference_decrypt(case)
    assert dek.hex() == case["dek_hex"]
    assert plaintext.hex() == case["plaintext_hex"]
    assert (
        bytes.fromhex(case["ciphertext_hex"])[
            generate.fields(bytes.fromhex(case["ciphertext_hex"]))["nonce"]
        ].hex()
        == case["nonce_hex"]
    )


@pytest.mark.parametrize("case", INVALID["cases"], ids=lambda case: case["name"])
def test_mutation_fails_opaquely(case: dict[str, Any]) -> None:
    ct = bytes.fromhex(case["ciphertext_hex"])
    ids = {key: case[key] for key in ("tenant_id", "kind", "object_id")}
    with pytest.raises(DecryptionFailed) as failure:
        decrypt(ct, **ids, kms=_kms())
    assert str(failure.value) == "The data could not be decrypted."


@pytest.mark.parametrize("case", INVALID["cases"], ids=lambda case: case["name"])
def test_reference_implementation_rejects_mutation(case: dict[str, Any]) -> None:
    with pytest.raises(Exception):
        reference_decrypt(case)


def test_mutations_cover_every_field() -> None:
    names = {case["name"] for case in INVALID["cases"]}
    sample = bytes.fromhex(VALID["cases"][1]["ciphertext_hex"])
    assert {f"flip-{field}" for field in generate.fields(sample)} <= names


def test_generator_reproduces_files() -> None:
    valid, invalid = generate.build()
    assert json.loads(json.dumps(valid)) == VALID
    assert json.loads(json.dumps(invalid)) == INVALID
