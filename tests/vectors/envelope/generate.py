"""Generate the BHE1 envelope vectors: ``python -m tests.vectors.envelope.generate``.

Every random byte comes from `SeededRng` (SHA-256 in counter mode over a fixed
seed) and the clock is fixed, so running this again rewrites identical files;
`test_envelope_vectors.py` checks that it does.  See README.md.
"""

from __future__ import annotations

import hashlib
import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bulkhead.crypto import Kek, LocalKms, MemoryKekStore, encrypt

HERE = Path(__file__).resolve().parent
VALID = HERE / "bulkhead-bhe1-valid.json"
INVALID = HERE / "bulkhead-bhe1-invalid.json"
MASTER_KEY = hashlib.sha256(b"bulkhead envelope test vector master key").digest()
CLOCK = datetime(2024, 1, 1, tzinfo=UTC)


class SeededRng:
    """Deterministic bytes: SHA-256(seed ‖ uint64 counter) blocks; records every draw."""

    def __init__(self, seed: bytes) -> None:
        self._seed, self._counter, self.draws = seed, 0, []

    def __call__(self, size: int) -> bytes:
        out = b""
        while len(out) < size:
            out += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        self.draws.append(out[:size])
        return out[:size]


def build() -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the valid and invalid vector documents."""
    store = MemoryKekStore()
    kms = LocalKms(store, Kek(MASTER_KEY), rng=SeededRng(b"kms"), clock=lambda: CLOCK)
    kms.create_tenant("acme")
    kms.create_tenant("globex")
    cases = [
        _case(kms, "acme", "file", "file-1", b""),
        _case(kms, "acme", "file", "file-2", b"hello, tenant"),
        _case(kms, "globex", "file", "file-1", b"the same ids, another tenant"),
    ]
    kms.rotate("acme")
    cases.append(_case(kms, "acme", "dataset", "ds-\u00e9", bytes(range(256)) * 4))
    valid = {
        "format": "BHE1 version 1",
        "master_key_hex": MASTER_KEY.hex(),
        "keystore": store.load(),
        "cases": cases,
    }
    return valid, {"format": "BHE1 version 1", "cases": _mutations(cases)}


def _case(
    kms: LocalKms, tenant: str, kind: str, object_id: str, plaintext: bytes
) -> dict[str, Any]:
    rng = SeededRng(f"envelope {tenant} {kind} {object_id}".encode())
    ct = encrypt(plaintext, tenant_id=tenant, kind=kind, object_id=object_id, kms=kms, rng=rng)
    dek, nonce = rng.draws
    return {
        "name": f"{tenant}-{kind}-{object_id}",
        "tenant_id": tenant,
        "kind": kind,
        "object_id": object_id,
        "plaintext_hex": plaintext.hex(),
        "dek_hex": dek.hex(),
        "nonce_hex": nonce.hex(),
        "ciphertext_hex": ct.hex(),
    }


def fields(ct: bytes) -> dict[str, slice]:
    """Byte ranges of each field of a BHE1 ciphertext (parsed independently of bulkhead)."""
    (n,) = struct.unpack_from(">H", ct, 5)
    (m,) = struct.unpack_from(">H", ct, 11 + n)
    body = 13 + n + m
    return {
        "magic": slice(0, 4),
        "format-version": slice(4, 5),
        "kek-id-length": slice(5, 7),
        "kek-id": slice(7, 7 + n),
        "kek-version": slice(7 + n, 11 + n),
        "wrapped-dek-length": slice(11 + n, 13 + n),
        "wrapped-dek": slice(13 + n, body),
        "nonce": slice(body, body + 12),
        "ciphertext": slice(body + 12, len(ct) - 16),
        "tag": slice(len(ct) - 16, len(ct)),
    }


def _flip(ct: bytes, at: int) -> bytes:
    return ct[:at] + bytes([ct[at] ^ 0x01]) + ct[at + 1 :]


def _mutations(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    one, other, v2 = (bytes.fromhex(cases[i]["ciphertext_hex"]) for i in (1, 0, 3))
    span = fields(one)
    out = {f"flip-{name}": _flip(one, s.start) for name, s in span.items()}
    out |= {
        "truncated-tag": one[:-1],
        "truncated-header": one[:10],
        "empty": b"",
        "trailing-garbage": one + b"\x00",
        "swapped-header": other[: fields(other)["nonce"].start] + one[span["nonce"].start :],
        "kek-version-unknown": _set(one, span["kek-version"], struct.pack(">I", 7)),
        "kek-id-rewritten": one[:5]
        + struct.pack(">H", 6)
        + b"globex"
        + one[span["kek-version"].start :],
    }
    cases_out = [_mutated(cases[1], name, ct) for name, ct in out.items()]
    cases_out.append(_mutated(cases[3], "kek-version-downgraded", _downgrade(v2)))
    cases_out += _wrong_context(cases[1], one)
    return cases_out


def _set(ct: bytes, where: slice, value: bytes) -> bytes:
    return ct[: where.start] + value + ct[where.stop :]


def _downgrade(ct: bytes) -> bytes:
    return _set(ct, fields(ct)["kek-version"], struct.pack(">I", 1))


def _mutated(case: dict[str, Any], name: str, ct: bytes, **context: str) -> dict[str, Any]:
    ids = {key: case[key] for key in ("tenant_id", "kind", "object_id")} | context
    return {"name": name, **ids, "ciphertext_hex": ct.hex()}


def _wrong_context(case: dict[str, Any], ct: bytes) -> list[dict[str, Any]]:
    return [
        _mutated(case, "wrong-tenant", ct, tenant_id="globex"),
        _mutated(case, "wrong-kind", ct, kind="dataset"),
        _mutated(case, "wrong-object-id", ct, object_id="file-1"),
    ]


def main() -> None:
    valid, invalid = build()
    for path, document in ((VALID, valid), (INVALID, invalid)):
        path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
