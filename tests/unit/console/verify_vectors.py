"""Vectors for the browser's verifier (`static/verify.js`), made by the Python implementation.

A small log is written with the writer's own encoding (`audit.append.encode`),
signed with the checkpoint vectors' test key, and exported as a full and a
tenant bundle exactly as `audit.export` shapes them; then each is tampered with
in the ways an attacker would.  Every bundle's verdict is the Python verifier's
(`audit.bundle.verify_bundle`): the JavaScript must reach the same one, and
fail at the same index.  Events and their proofs are shaped as the proofs API
answers (`audit.export.prove`).
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

from bulkhead.audit.append import encode
from bulkhead.audit.bundle import FORMAT, b64, verify_bundle
from bulkhead.audit.checkpoint import Signer, sign_checkpoint
from bulkhead.audit.events import AuditEvent
from bulkhead.audit.hashing import leaf_hash
from bulkhead.audit.proofs import VerificationError
from bulkhead.audit.tree import inclusion_proof, root

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
_KEYS = json.loads((VECTORS / "checkpoint" / "vectors.json").read_text())
ORIGIN = _KEYS["origin"]
SIGNER = Signer.from_seed(ORIGIN, bytes.fromhex(_KEYS["keys"]["key-1"]["seed"]))
OTHER = Signer.from_seed(ORIGIN, bytes.fromhex(_KEYS["keys"]["key-2"]["seed"]))
TENANT = "t-acme"


def _events() -> list[AuditEvent]:
    made = []
    for n in range(11):
        mine = n % 3 != 1
        made.append(
            AuditEvent(
                action="v1:chat" if n % 2 else "tenant:keys.create",
                outcome="success" if n % 4 else "failure",
                status=200 if n % 4 else 429,
                tenant_id=TENANT if mine else "t-other",
                principal_id=f"p-{n}",
                model="demo-chat",
                prompt_tokens=n * 7,
                latency_ms=0.1 + n * 1.25,
                reason='naïve \u2014 "quoted"\n' if n == 5 else None,
                time=1_700_000_000.5 + n,
                event_id=f"{n:032x}",
            )
        )
    return made


def _log() -> tuple[list[bytes], list[bytes], list[bytes]]:
    """Bodies, leaf hashes and the checkpoints signed at sizes 4, 8 and 10 (one unsigned)."""
    bodies: list[bytes] = []
    prev = bytes(32)
    for idx, event in enumerate(_events()):
        body = encode(event, idx, prev)
        bodies.append(body)
        prev = leaf_hash(body)
    hashes = [leaf_hash(b) for b in bodies]
    notes = [sign_checkpoint(ORIGIN, n, root(hashes[:n]), SIGNER) for n in (4, 8, 10)]
    return bodies, hashes, notes


def _bundle(tenant: str | None) -> dict[str, Any]:
    bodies, hashes, notes = _log()
    signed = 10
    own = [
        i for i, b in enumerate(bodies) if tenant is None or json.loads(b)["tenant_id"] == tenant
    ]
    entries = [
        {"body": b.decode()} if i in own else {"hash": b64(hashes[i])} for i, b in enumerate(bodies)
    ]
    proofs = (
        {}
        if tenant is None
        else {
            str(i): [b64(h) for h in inclusion_proof(hashes, i, signed)] for i in own if i < signed
        }
    )
    return {
        "format": FORMAT,
        "origin": ORIGIN,
        "tenant": tenant,
        "size": len(entries),
        "entries": entries,
        "checkpoints": [n.decode() for n in notes],
        "verifiers": [SIGNER.verifier.vkey],
        "proofs": proofs,
    }


def _tamperings(good: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What an attacker would change, each on a copy of `good`."""
    out: dict[str, dict[str, Any]] = {}

    def variant(name: str) -> dict[str, Any]:
        out[name] = copy.deepcopy(good)
        return out[name]

    first = next(i for i, e in enumerate(good["entries"]) if "body" in e)
    body = json.loads(good["entries"][first]["body"])
    variant("status-changed")["entries"][first]["body"] = good["entries"][first]["body"].replace(
        f'"status":{body["status"]}', '"status":200' if body["status"] != 200 else '"status":201'
    )
    del variant("entry-deleted")["entries"][3]
    out["entry-deleted"]["size"] -= 1
    swapped = variant("entries-swapped")["entries"]
    swapped[2], swapped[3] = swapped[3], swapped[2]
    variant("truncated")["entries"] = good["entries"][:6]
    out["truncated"]["size"] = 6
    note = good["checkpoints"][1]
    variant("signature-flipped")["checkpoints"][1] = (
        note[:-6] + ("A" if note[-6] != "A" else "B") + note[-5:]
    )
    variant("root-resigned-by-unknown-key")["checkpoints"][2] = sign_checkpoint(
        ORIGIN, 10, bytes(32), OTHER
    ).decode()
    variant("checkpoints-reordered")["checkpoints"].reverse()
    variant("other-origin")["origin"] = "evil.example/log"
    variant("no-checkpoints")["checkpoints"] = []
    variant("unknown-field")["extra"] = 1
    variant("bad-format")["format"] = "bulkhead-audit-bundle/2"
    variant("hash-not-canonical")["entries"][1] = {"hash": "not base64!"}
    if good["tenant"] is None:
        variant("full-export-hides-an-entry")["entries"][4] = {
            "hash": b64(leaf_hash(good["entries"][4]["body"].encode()))
        }
    else:
        proofs = variant("proof-changed")["proofs"]
        key = sorted(proofs, key=int)[0]
        proofs[key][0] = b64(bytes(32))
        shown = variant("other-tenant-shown")
        shown["tenant"] = "t-other"
    return out


def _verdict(bundle: dict[str, Any]) -> dict[str, Any]:
    try:
        report = verify_bundle(bundle, [SIGNER.verifier], origin=ORIGIN)
    except VerificationError as exc:
        return {"ok": False, "index": getattr(exc, "index", None), "reason": str(exc)}
    return {"ok": True, "size": report.size, "signed": report.signed_size}


def _event_cases() -> list[dict[str, Any]]:
    bodies, hashes, notes = _log()
    cases = []
    for idx in (0, 5, 9):
        event = json.loads(bodies[idx])
        proof = {
            "event_id": event["event_id"],
            "index": idx,
            "size": 10,
            "leaf_hash": b64(hashes[idx]),
            "checkpoint": notes[2].decode(),
            "proof": [b64(h) for h in inclusion_proof(hashes, idx, 10)],
        }
        cases.append({"name": f"event-{idx}", "event": event, "proof": proof, "ok": True})
        altered = {**event, "status": 599}
        cases.append(
            {"name": f"event-{idx}-altered", "event": altered, "proof": proof, "ok": False}
        )
        wrong_path = {**proof, "proof": list(reversed(proof["proof"]))}
        cases.append(
            {"name": f"event-{idx}-bad-path", "event": event, "proof": wrong_path, "ok": False}
        )
    foreign = {
        **cases[0]["proof"],
        "checkpoint": sign_checkpoint(ORIGIN, 10, root(hashes[:10]), OTHER).decode(),
    }
    cases.append(
        {"name": "event-0-unknown-key", "event": cases[0]["event"], "proof": foreign, "ok": False}
    )
    cases.extend(_forged_proofs(cases[0]["event"], cases[0]["proof"], hashes, notes))
    return cases


def _forged_proofs(
    event: dict[str, Any], proof: dict[str, Any], hashes: list[bytes], notes: list[bytes]
) -> list[dict[str, Any]]:
    """Event 0 against proofs a forger would try: each must fail, but the last."""
    other = {
        **proof,
        "index": 1,
        "leaf_hash": b64(hashes[1]),
        "proof": [b64(h) for h in inclusion_proof(hashes, 1, 10)],
    }
    good_note = notes[2].decode()
    theirs = sign_checkpoint(ORIGIN, 10, root(hashes[:10]), OTHER).decode()
    their_line = theirs.rsplit("\n\n", 1)[1]
    name, sig = their_line.removeprefix("\u2014 ").rstrip("\n").split(" ")
    ours = base64.b64decode(good_note.rsplit("\n\n", 1)[1].split(" ")[-1])[:4]
    collided = base64.b64encode(ours + base64.b64decode(sig)[4:]).decode()
    forged: dict[str, dict[str, Any]] = {
        "proof-of-another-entry": other,
        "proof-of-another-entry-relabelled": {**other, "index": 0},
        "smaller-checkpoint": {**proof, "checkpoint": notes[0].decode()},
        "other-origin": {
            **proof,
            "checkpoint": sign_checkpoint(
                "evil.example/log", 10, root(hashes[:10]), SIGNER
            ).decode(),
        },
        "trusted-key-id-bad-signature": {
            **proof,
            "checkpoint": f"{good_note}\u2014 {name} {collided}\n",
        },
    }
    cases = [
        {"name": f"event-0-{what}", "event": event, "proof": p, "ok": False}
        for what, p in forged.items()
    ]
    # A signature by a key the auditor does not trust is ignored (C2SP signed-note).
    extra = {**proof, "checkpoint": good_note + their_line}
    cases.append(
        {"name": "event-0-extra-unknown-signature", "event": event, "proof": extra, "ok": True}
    )
    return cases


def write(path: Path) -> dict[str, Any]:
    """Writes every vector to `path` as JSON and returns it."""
    bundles: dict[str, Any] = {}
    for kind, tenant in (("full", None), ("tenant", TENANT)):
        good = _bundle(tenant)
        bundles[f"{kind}-good"] = good
        for name, bad in _tamperings(good).items():
            bundles[f"{kind}-{name}"] = bad
    vectors = {
        "origin": ORIGIN,
        "vkey": SIGNER.verifier.vkey,
        "other_vkey": OTHER.verifier.vkey,
        "canonical": [{"value": json.loads(b), "text": b.decode()} for b in _log()[0]],
        "bundles": {name: {"bundle": b, "verdict": _verdict(b)} for name, b in bundles.items()},
        "events": _event_cases(),
        "leaf_of_empty": base64.b64encode(leaf_hash(b"")).decode(),
    }
    path.write_text(json.dumps(vectors, ensure_ascii=False))
    return vectors
