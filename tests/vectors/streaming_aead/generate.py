"""Generate the BHS1 streaming vectors: ``python -m tests.vectors.streaming_aead.generate``.

Same seeded randomness and fixed clock as the envelope vectors, with 16-byte
plaintext segments so a few dozen bytes span several segments.  See README.md.
"""

from __future__ import annotations

import hashlib
import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bulkhead.crypto import Kek, LocalKms, MemoryKekStore, encrypt_stream
from tests.vectors.envelope.generate import SeededRng

HERE = Path(__file__).resolve().parent
VALID = HERE / "bulkhead-bhs1-valid.json"
INVALID = HERE / "bulkhead-bhs1-invalid.json"
MASTER_KEY = hashlib.sha256(b"bulkhead streaming test vector master key").digest()
CLOCK = datetime(2024, 1, 1, tzinfo=UTC)
SEGMENT = 16
TAG = 16
SIZES = (0, 5, 16, 32, 40)


def build() -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the valid and invalid vector documents."""
    store = MemoryKekStore()
    kms = LocalKms(store, Kek(MASTER_KEY), rng=SeededRng(b"kms"), clock=lambda: CLOCK)
    kms.create_tenant("acme")
    kms.create_tenant("globex")
    cases = [_case(kms, f"blob-{size}", bytes(range(size)), "") for size in SIZES]
    again = _case(kms, "blob-40", bytes(range(40)), " again")
    valid = {
        "format": "BHS1 version 1",
        "segment_size": SEGMENT,
        "master_key_hex": MASTER_KEY.hex(),
        "keystore": store.load(),
        "cases": cases,
    }
    return valid, {"format": "BHS1 version 1", "cases": _mutations(cases, again)}


def _case(kms: LocalKms, object_id: str, plaintext: bytes, seed: str) -> dict[str, Any]:
    rng = SeededRng(f"stream {object_id}{seed}".encode())
    ids = {"tenant_id": "acme", "kind": "blob", "object_id": object_id}
    parts = list(encrypt_stream([plaintext], **ids, kms=kms, segment_size=SEGMENT, rng=rng))
    dek, salt, prefix = rng.draws
    return {
        "name": f"{object_id}-bytes{seed.replace(' ', '-')}",
        **ids,
        "plaintext_hex": plaintext.hex(),
        "dek_hex": dek.hex(),
        "salt_hex": salt.hex(),
        "nonce_prefix_hex": prefix.hex(),
        "header_hex": parts[0].hex(),
        "segments_hex": [part.hex() for part in parts[1:]],
    }


def header_fields(header: bytes) -> dict[str, slice]:
    """Byte ranges of each BHS1 header field (parsed independently of bulkhead)."""
    (n,) = struct.unpack_from(">H", header, 5)
    (m,) = struct.unpack_from(">H", header, 11 + n)
    size_at = 13 + n + m
    return {
        "magic": slice(0, 4),
        "format-version": slice(4, 5),
        "kek-id-length": slice(5, 7),
        "kek-id": slice(7, 7 + n),
        "kek-version": slice(7 + n, 11 + n),
        "wrapped-dek-length": slice(11 + n, 13 + n),
        "wrapped-dek": slice(13 + n, size_at),
        "segment-size": slice(size_at, size_at + 4),
        "salt": slice(size_at + 4, size_at + 36),
        "nonce-prefix": slice(size_at + 36, size_at + 43),
    }


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _mutations(cases: list[dict[str, Any]], again: dict[str, Any]) -> list[dict[str, Any]]:
    case = cases[4]
    head = bytes.fromhex(case["header_hex"])
    s0, s1, s2 = (bytes.fromhex(s) for s in case["segments_hex"])
    out = {
        f"flip-header-{k}": [_flip(head, v.start), s0, s1, s2]
        for k, v in header_fields(head).items()
    }
    out |= {
        "flip-segment-0": [head, _flip(s0, 0), s1, s2],
        "flip-segment-1-tag": [head, s0, _flip(s1, len(s1) - 1), s2],
        "flip-last-segment": [head, s0, s1, _flip(s2, 3)],
        "reordered-segments": [head, s1, s0, s2],
        "dropped-middle-segment": [head, s0, s2],
        "dropped-last-segment": [head, s0, s1],
        "duplicated-segment": [head, s0, s0, s1, s2],
        "appended-segment": [head, s0, s1, s2, s2],
        "truncated-mid-segment": [head, s0, s1, s2[:-1]],
        "trailing-garbage": [head, s0, s1, s2, b"\x00"],
        "header-only": [head],
        "truncated-header": [head[:-1]],
        "empty": [],
        "segment-size-doubled": [_set(head, header_fields(head)["segment-size"], 32), s0, s1, s2],
        "swapped-header": [bytes.fromhex(again["header_hex"]), s0, s1, s2],
        "swapped-segment-from-other-stream": [
            head,
            s0,
            bytes.fromhex(again["segments_hex"][1]),
            s2,
        ],
    }
    exact = cases[3]
    full = [bytes.fromhex(exact["header_hex"]), bytes.fromhex(exact["segments_hex"][0])]
    result = [_mutated(case, name, parts) for name, parts in out.items()]
    result.append(_mutated(exact, "exact-multiple-last-segment-dropped", full))
    wrong = (("tenant_id", "globex"), ("kind", "dataset"), ("object_id", "blob-32"))
    whole = [head, s0, s1, s2]
    result += [_mutated(case, f"wrong-{key}", whole, **{key: value}) for key, value in wrong]
    return result


def _set(header: bytes, where: slice, value: int) -> bytes:
    return header[: where.start] + struct.pack(">I", value) + header[where.stop :]


def _mutated(case: dict[str, Any], name: str, parts: list[bytes], **ids: str) -> dict[str, Any]:
    context = {key: case[key] for key in ("tenant_id", "kind", "object_id")} | ids
    return {"name": name, **context, "stream_hex": b"".join(parts).hex()}


def main() -> None:
    valid, invalid = build()
    for path, document in ((VALID, valid), (INVALID, invalid)):
        path.write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
