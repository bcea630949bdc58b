"""Signed checkpoint vectors: this project's, and Go's sumdb/note (see checkpoint/README.md)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from bulkhead.audit.checkpoint import (
    Signer,
    Verifier,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)
from bulkhead.audit.proofs import VerificationError

HERE = Path(__file__).resolve().parent / "checkpoint"
PROJECT: dict[str, Any] = json.loads((HERE / "vectors.json").read_text())
GO: dict[str, Any] = json.loads((HERE / "golang-x-mod-sumdb-note.json").read_text())
CASES = [pytest.param(case, id=case["file"]) for case in PROJECT["checkpoints"]]


def _verifier(label: str) -> Verifier:
    return Verifier.from_vkey(PROJECT["keys"][label]["vkey"])


def _signer(label: str) -> Signer:
    return Signer.from_seed(PROJECT["origin"], bytes.fromhex(PROJECT["keys"][label]["seed"]))


@pytest.mark.parametrize("case", CASES)
def test_project_vector_opens(case: dict[str, Any]) -> None:
    note = (HERE / case["file"]).read_bytes()
    verifiers = [_verifier(label) for label in case["keys"]]
    checkpoint = open_checkpoint(note, verifiers, expected_origin=PROJECT["origin"])
    assert (checkpoint.origin, checkpoint.size) == (PROJECT["origin"], case["size"])
    assert checkpoint.root.hex() == case["root"]
    assert checkpoint.extensions == tuple(case["extensions"])
    assert checkpoint.key_names == (PROJECT["origin"],)


@pytest.mark.parametrize("case", CASES)
def test_project_vector_is_reproduced_byte_for_byte(case: dict[str, Any]) -> None:
    signers = [_signer(label) for label in case["keys"]]
    root = bytes.fromhex(case["root"])
    note = sign_checkpoint(
        PROJECT["origin"], case["size"], root, *signers, extensions=case["extensions"]
    )
    assert note == (HERE / case["file"]).read_bytes()


@pytest.mark.parametrize("case", CASES)
def test_project_vector_needs_one_of_its_own_keys(case: dict[str, Any]) -> None:
    note = (HERE / case["file"]).read_bytes()
    others = [_verifier(label) for label in PROJECT["keys"] if label not in case["keys"]]
    with pytest.raises(VerificationError, match="no signature from a trusted key"):
        open_checkpoint(note, others)


def test_the_vkeys_are_derived_from_the_seeds() -> None:
    for label, key in PROJECT["keys"].items():
        assert _signer(label).verifier.vkey == key["vkey"]


@pytest.mark.parametrize("file", sorted(GO["notes"]))
def test_go_sumdb_note_opens(file: str) -> None:
    names = GO["notes"][file]
    note = (HERE / file).read_bytes()
    verifiers = [Verifier.from_vkey(GO["keys"][name]["vkey"]) for name in names]
    assert open_note(note, verifiers) == (GO["text"].encode(), tuple(names))
    for verifier in verifiers:
        assert open_note(note, [verifier]) == (GO["text"].encode(), (verifier.name,))


def test_go_sumdb_note_is_reproduced_byte_for_byte() -> None:
    peter = GO["keys"]["PeterNeumann"]
    seed = base64.b64decode(peter["skey"].split("+", 4)[4])
    assert seed[:1] == b"\x01"
    signers = [
        Signer.from_seed("PeterNeumann", seed[1:]),
        Signer.from_seed("EnochRoot", bytes.fromhex(GO["keys"]["EnochRoot"]["seed"])),
    ]
    for signer in signers:
        assert signer.verifier.vkey == GO["keys"][signer.name]["vkey"]
    expected = (HERE / "golang-x-mod-sumdb-note-PeterNeumann-EnochRoot.note").read_bytes()
    assert sign_note(GO["text"].encode(), *signers) == expected
    lines = [GO["keys"][name]["signature_line"] for name in ("PeterNeumann", "EnochRoot")]
    assert expected == (GO["text"] + "\n" + "".join(lines)).encode()


@pytest.mark.parametrize("vkey", sorted(GO["other_vkeys"]))
def test_other_implementations_vkeys_parse(vkey: str) -> None:
    assert Verifier.from_vkey(vkey).vkey == vkey
