"""Writes the project's signed-checkpoint vectors, or cross-checks them with OpenSSL.

    python tests/vectors/checkpoint/generate.py          # rewrite the vector files
    python tests/vectors/checkpoint/generate.py --check  # verify them with the openssl CLI

The keys are test keys derived from fixed labels; never use them for a real log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from bulkhead.audit.checkpoint import Signer, sign_checkpoint
from bulkhead.audit.hashing import EMPTY_ROOT, leaf_hash
from bulkhead.audit.tree import root

HERE = Path(__file__).resolve().parent
ORIGIN = "bulkhead.example/audit/test"
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
# Ed25519 seeds (RFC 8032 private keys): SHA-256 of a fixed label.
SEEDS = {
    "key-1": hashlib.sha256(b"bulkhead checkpoint test vector key 1").digest(),
    "key-2": hashlib.sha256(b"bulkhead checkpoint test vector key 2").digest(),
}
# Where DER wraps a raw Ed25519 key (RFC 8410): PKCS #8 private key, SPKI public key.
PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


class Case(NamedTuple):
    file: str
    size: int
    root: bytes
    keys: tuple[str, ...] = ("key-1",)
    extensions: tuple[str, ...] = ()


def _cases() -> list[Case]:
    hashes = [leaf_hash(leaf) for leaf in CT_LEAVES]
    return [
        Case("empty-tree.note", 0, EMPTY_ROOT),
        Case("rfc6962-size-1.note", 1, root(hashes[:1])),
        Case("rfc6962-size-7.note", 7, root(hashes[:7])),
        Case("rfc6962-size-8.note", 8, root(hashes)),
        Case("extension-lines.note", 8, root(hashes), extensions=("time 1700000000", "v1")),
        Case("rotation-both-keys.note", 8, root(hashes), keys=("key-1", "key-2")),
        Case("rotated-key-2-only.note", 8, root(hashes), keys=("key-2",)),
    ]


def generate() -> None:
    signers = {label: Signer.from_seed(ORIGIN, seed) for label, seed in SEEDS.items()}
    keys = {
        label: {"seed": seed.hex(), "vkey": signers[label].verifier.vkey}
        for label, seed in SEEDS.items()
    }
    checkpoints = []
    for case in _cases():
        chosen = [signers[label] for label in case.keys]
        note = sign_checkpoint(ORIGIN, case.size, case.root, *chosen, extensions=case.extensions)
        (HERE / case.file).write_bytes(note)
        checkpoints.append({**case._asdict(), "root": case.root.hex()})
    manifest = {"origin": ORIGIN, "keys": keys, "checkpoints": checkpoints}
    (HERE / "vectors.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def check() -> None:
    """Checks every key and signature with the openssl CLI, not with `cryptography`."""
    manifest = json.loads((HERE / "vectors.json").read_text())
    public = {label: _check_key(key) for label, key in manifest["keys"].items()}
    for case in manifest["checkpoints"]:
        note = (HERE / case["file"]).read_bytes()
        text, _, block = note.rpartition(b"\n\n")
        lines = block.decode().splitlines()
        assert len(lines) == len(case["keys"]), case["file"]
        for line, label in zip(lines, case["keys"], strict=True):
            _check_signature(text + b"\n", line, public[label], manifest["origin"])
        print(f"ok {case['file']}: {len(lines)} signature(s) verified by openssl")


def _check_key(key: dict[str, str]) -> bytes:
    # OpenSSL derives the public key from the seed; it must match the vkey.
    der = _openssl("pkey", "-inform", "DER", "-pubout", "-outform", "DER",
                   data=PKCS8_PREFIX + bytes.fromhex(key["seed"]))  # fmt: skip
    raw = der[len(SPKI_PREFIX) :]
    assert base64.b64decode(key["vkey"].split("+", 2)[2]) == b"\x01" + raw, key["vkey"]
    return raw


def _check_signature(text: bytes, line: str, public_key: bytes, name: str) -> None:
    signature = base64.b64decode(line.split(" ")[2])
    key_id = _openssl("dgst", "-sha256", "-binary", data=name.encode() + b"\n\x01" + public_key)
    assert signature[:4] == key_id[:4], "key ID mismatch"
    with tempfile.TemporaryDirectory() as tmp:
        paths = {n: Path(tmp) / n for n in ("pub.der", "sig", "msg")}
        paths["pub.der"].write_bytes(SPKI_PREFIX + public_key)
        paths["sig"].write_bytes(signature[4:])
        paths["msg"].write_bytes(text)
        _openssl("pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", str(paths["pub.der"]),
                 "-rawin", "-in", str(paths["msg"]), "-sigfile", str(paths["sig"]))  # fmt: skip


if __name__ == "__main__":
    check() if sys.argv[1:] == ["--check"] else generate()
