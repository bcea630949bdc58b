"""Signed checkpoints: round trips, and every named mutation fails to open."""

from __future__ import annotations

import base64
import copy
import hashlib
import pickle
import re
from collections.abc import Callable

import pytest

from bulkhead.audit.checkpoint import (
    Checkpoint,
    Signer,
    Verifier,
    checkpoint_body,
    key_id,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)
from bulkhead.audit.proofs import VerificationError

ORIGIN = "bulkhead.example/audit/t1"
ROOT = hashlib.sha256(b"some root").digest()
OLD = Signer.from_seed(ORIGIN, hashlib.sha256(b"old key").digest())
NEW = Signer.from_seed(ORIGIN, hashlib.sha256(b"new key").digest())
URLSAFE_ROOT = base64.urlsafe_b64encode(bytes([0xFF]) * 32).decode()
STRANGER = Signer.from_seed("stranger.example/log", hashlib.sha256(b"stranger").digest())


def _note(size: int = 5, root: bytes = ROOT, *signers: Signer) -> bytes:
    return sign_checkpoint(ORIGIN, size, root, *(signers or (OLD,)))


def _open(note: bytes, *signers: Signer) -> Checkpoint:
    verifiers = [s.verifier for s in signers or (OLD,)]
    return open_checkpoint(note, verifiers, expected_origin=ORIGIN)


def test_round_trip() -> None:
    note = _note(5)
    assert note.startswith(
        f"{ORIGIN}\n5\n{base64.b64encode(ROOT).decode()}\n\n— {ORIGIN} ".encode()
    )
    assert _open(note) == Checkpoint(ORIGIN, 5, ROOT, (ORIGIN,))


def test_round_trip_of_the_empty_tree_and_extension_lines() -> None:
    note = sign_checkpoint(ORIGIN, 0, ROOT, OLD, extensions=["a b c", "€"])
    assert _open(note) == Checkpoint(ORIGIN, 0, ROOT, (ORIGIN,), ("a b c", "€"))


def test_every_flipped_bit_fails() -> None:
    note = _note(1234)
    for position in range(len(note)):
        for bit in range(8):
            mutated = bytearray(note)
            mutated[position] ^= 1 << bit
            with pytest.raises(VerificationError):
                _open(bytes(mutated))


@pytest.mark.parametrize("bit", [0, 7, 100, 511])
def test_flipped_bit_in_the_signature_fails(bit: int) -> None:
    text, _, line = _note().rpartition(b"\n\n")
    prefix, _, encoded = line.rstrip(b"\n").rpartition(b" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[4 + bit // 8] ^= 1 << (bit % 8)
    mutated = text + b"\n\n" + prefix + b" " + base64.b64encode(bytes(raw)) + b"\n"
    with pytest.raises(VerificationError, match="does not verify"):
        _open(mutated)


def test_flipped_bit_in_the_body_fails() -> None:
    mutated = _note(5).replace(b"\n5\n", b"\n4\n", 1)
    with pytest.raises(VerificationError, match="does not verify"):
        _open(mutated)


def test_swapped_signature_fails() -> None:
    body_of_six = _note(6).rpartition(b"\n\n")[0]
    signature_of_five = _note(5).rpartition(b"\n\n")[2]
    with pytest.raises(VerificationError, match="does not verify"):
        _open(body_of_six + b"\n\n" + signature_of_five)


def test_other_origin_fails() -> None:
    note = sign_checkpoint("bulkhead.example/audit/t2", 5, ROOT, OLD)
    with pytest.raises(VerificationError, match=re.escape("not 'bulkhead.example/audit/t1'")):
        _open(note)
    assert open_checkpoint(note, [OLD.verifier]).origin == "bulkhead.example/audit/t2"


def test_unknown_key_fails() -> None:
    with pytest.raises(VerificationError, match="no signature from a trusted key"):
        _open(_note(5, ROOT, STRANGER))


def test_same_name_but_other_key_is_an_unknown_key() -> None:
    # signed-note: the key name and key ID together identify a key.
    with pytest.raises(VerificationError, match="no signature from a trusted key"):
        _open(_note(5, ROOT, NEW), OLD)


def test_forged_signature_under_a_known_key_id_fails() -> None:
    # An attacker's key that claims OLD's name and key ID still fails the signature.
    text, _, _ = _note().rpartition(b"\n\n")
    forged = base64.b64encode(OLD.key_id + STRANGER.sign(text + b"\n")).decode()
    note = text + b"\n\n" + f"— {ORIGIN} {forged}\n".encode()
    with pytest.raises(VerificationError, match="does not verify"):
        _open(note)


def test_every_truncation_fails() -> None:
    note = _note(5)
    for length in range(len(note)):
        with pytest.raises(VerificationError):
            _open(note[:length])


@pytest.mark.parametrize(
    "garbage",
    [b"x", b"\n", b"garbage\n", b"\n\n", b"-- " + ORIGIN.encode() + b" AAAA\n", b"\x00"],
)
def test_trailing_garbage_fails(garbage: bytes) -> None:
    with pytest.raises(VerificationError):
        _open(_note() + garbage)


def test_unknown_cosignature_is_ignored() -> None:
    # signed-note: signatures of unknown keys are ignored (e.g. witness cosignatures).
    cosigned = _note() + _note(5, ROOT, STRANGER).rpartition(b"\n\n")[2]
    assert _open(cosigned).key_names == (ORIGIN,)


def test_one_bad_signature_of_a_known_key_rejects_the_note() -> None:
    text, _, line = _note(5, ROOT, OLD).rpartition(b"\n\n")
    bad = _note(6, ROOT, NEW).rpartition(b"\n\n")[2]
    with pytest.raises(VerificationError, match="does not verify"):
        _open(text + b"\n\n" + line + bad, OLD, NEW)


def test_rotated_key_verifies_with_both_verifier_sets() -> None:
    # During a rotation the log signs with both keys: old and new clients open it.
    both = _note(5, ROOT, OLD, NEW)
    assert _open(both, OLD).size == 5
    assert _open(both, NEW).size == 5
    assert _open(both, OLD, NEW).key_names == (ORIGIN,)
    # After it, notes signed by the new key alone open for clients holding both.
    assert _open(_note(6, ROOT, NEW), OLD, NEW).size == 6
    with pytest.raises(VerificationError):
        _open(_note(6, ROOT, NEW), OLD)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"{ORIGIN}\n5\n", "origin, tree size and root hash"),
        ("\n5\nROOT\n", "origin is empty"),
        (f"{ORIGIN}\n05\nROOT\n", "not a canonical uint64"),
        (f"{ORIGIN}\n+5\nROOT\n", "not a canonical uint64"),
        (f"{ORIGIN}\n5.0\nROOT\n", "not a canonical uint64"),
        (f"{ORIGIN}\n\u0665\nROOT\n", "not a canonical uint64"),
        (f"{ORIGIN}\n18446744073709551616\nROOT\n", "not a canonical uint64"),
        (f"{ORIGIN}\n5\n{base64.b64encode(ROOT[:31]).decode()}\n", "not a base64 SHA-256"),
        (f"{ORIGIN}\n5\n{base64.b64encode(ROOT).decode().rstrip('=')}\n", "base64"),
        (f"{ORIGIN}\n5\n{URLSAFE_ROOT}\n", "base64"),
        (f"{ORIGIN}\n5\nROOT\n\nextension\n", "extension lines must not be empty"),
    ],
)
def test_malformed_body_fails(text: str, reason: str) -> None:
    body = text.replace("ROOT", base64.b64encode(ROOT).decode()).encode()
    with pytest.raises(VerificationError, match=reason):
        _open(sign_note(body, OLD))


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (b"\xff\xfe", "not valid UTF-8"),
        (b"a\tb\n\n", "control character"),
        (b"no blank line\n", "no blank line"),
        (b"text\n\n", "signature block is empty"),
        (b"text\n\n- name AAAAAAAA\n", "does not start with an em dash"),
        (b"text\n\n\xe2\x80\x94 na+me AAAAAAAA\n", "invalid key name"),
        (b"text\n\n\xe2\x80\x94 name AAAA\n", "too short"),
        (b"text\n\n\xe2\x80\x94 name AAAAAA==\n", "too short"),
        (b"text\n\n\xe2\x80\x94 name AAAAAAA\n", "not standard base64"),
        (b"text\n\n\xe2\x80\x94 name AAAAAAB=\n", "not canonical base64"),
        (b"text\n\n" + b"\xe2\x80\x94 name AAAAAAAA\n" * 101, "more than 100"),
    ],
)
def test_malformed_note_fails(note: bytes, reason: str) -> None:
    with pytest.raises(VerificationError, match=reason):
        open_note(note, [OLD.verifier])


def test_vkey_round_trip_and_key_id() -> None:
    verifier = Verifier.from_vkey(OLD.verifier.vkey)
    assert verifier == OLD.verifier and hash(verifier) == hash(OLD.verifier)
    public = verifier.public_key
    expected = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    assert verifier.key_id == key_id(ORIGIN, public) == expected
    encoded = base64.b64encode(bytes([1]) + public).decode()
    assert OLD.verifier.vkey == f"{ORIGIN}+{expected.hex()}+{encoded}"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda v: v.replace("+", "-", 1),
        lambda v: v.split("+", 1)[1],
        lambda v: v[:-4],
        lambda v: v + "AAAA",
        lambda v: v.rsplit("+", 1)[0] + "+" + base64.b64encode(b"\x02" + bytes(32)).decode(),
        lambda v: v.replace(v.split("+")[1], "00000000"),
        lambda v: "other.name+" + v.split("+", 1)[1],
    ],
    ids=["no-separator", "no-name", "short-key", "long-key", "not-ed25519", "wrong-id", "renamed"],
)
def test_mangled_vkeys_are_refused(mangle: Callable[[str], str]) -> None:
    with pytest.raises(ValueError):
        Verifier.from_vkey(mangle(OLD.verifier.vkey))


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\nb", "a\u00a0b", "a\x00b"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid key name"):
        Signer.from_seed(name, bytes(32))


def test_duplicate_verifiers_are_harmless() -> None:
    twin = Verifier(OLD.name, OLD.verifier.public_key)
    assert open_checkpoint(_note(), [OLD.verifier, twin]).size == 5


def test_verifiers_with_colliding_key_ids_are_refused() -> None:
    # A 32-bit key ID collision is forced here; two such keys are ambiguous.
    impostor = Verifier(ORIGIN, NEW.verifier.public_key)
    impostor._key_id = OLD.key_id
    with pytest.raises(ValueError, match="share key ID"):
        open_checkpoint(_note(), [OLD.verifier, impostor])


def test_signer_hides_its_key() -> None:
    assert repr(OLD) == f"Signer(name={ORIGIN!r}, key_id={OLD.key_id.hex()})"
    seed = hashlib.sha256(b"old key").digest()
    assert seed.hex() not in repr(OLD) and seed.hex() not in str(OLD)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(OLD)
    with pytest.raises(TypeError, match="cannot be pickled"):
        copy.deepcopy(OLD)


def test_signatures_are_deterministic() -> None:
    assert _note(7) == _note(7)
    assert _note(7) != _note(8)


@pytest.mark.parametrize(
    ("origin", "size", "root"),
    [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        (ORIGIN, -1, ROOT),
        (ORIGIN, 2**64, ROOT),
        (ORIGIN, 1, b"x"),
    ],
)
def test_invalid_checkpoints_are_not_signed(origin: str, size: int, root: bytes) -> None:
    with pytest.raises(ValueError):
        checkpoint_body(origin, size, root)


def test_notes_need_a_signer_and_a_final_newline() -> None:
    with pytest.raises(ValueError):
        sign_note(b"text\n")
    with pytest.raises(ValueError):
        sign_note(b"text", OLD)
