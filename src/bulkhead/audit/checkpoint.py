"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, signed with Ed25519.

A checkpoint commits the log to its first `size` entries through their Merkle
root.  The body is the note text of c2sp.org/tlog-checkpoint::

    <origin>
    <tree size, decimal>
    <root hash, base64>
    [extension lines]

and the signed note (c2sp.org/signed-note) is that text, a blank line, then
one line per signature, ``— <key name> base64(key ID || Ed25519 signature)``.
The text of a note is ignored until a trusted key's signature over it verifies.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NoReturn, SupportsIndex

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bulkhead.audit.hashing import HASH_SIZE
from bulkhead.audit.proofs import VerificationError

SIGNATURE_PREFIX = "\u2014 "
"""Every signature line starts with an em dash (U+2014) and a space (signed-note, Format)."""

ED25519_TYPE = b"\x01"
"""The signature type identifier byte of Ed25519 (signed-note, Signature types)."""

_KEY_ID_SIZE = 4
_PUBLIC_KEY_SIZE = 32
_MAX_SIGNATURES = 100
_MAX_TREE_SIZE = 2**64 - 1
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_DECIMAL = re.compile("0|[1-9][0-9]*")
_HEX_KEY_ID = re.compile("[0-9a-fA-F]{8}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A verified checkpoint: the log `origin` vouches for `root` over its first `size` entries."""

    origin: str
    size: int
    root: bytes
    key_names: tuple[str, ...]
    extensions: tuple[str, ...] = ()


def key_id(name: str, public_key: bytes) -> bytes:
    """Returns SHA-256(key name || 0x0A || 0x01 || public key)[:4] (signed-note, Ed25519)."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519_TYPE + public_key).digest()
    return digest[:_KEY_ID_SIZE]


class Verifier:
    """An Ed25519 public key under a key name: checks note signatures."""

    __slots__ = ("_key", "_key_id", "_name", "_public_key")

    def __init__(self, name: str, public_key: bytes) -> None:
        _check_key_name(name)
        if len(public_key) != _PUBLIC_KEY_SIZE:
            raise ValueError(f"an Ed25519 public key is {_PUBLIC_KEY_SIZE} bytes")
        self._name = name
        self._public_key = bytes(public_key)
        self._key = Ed25519PublicKey.from_public_bytes(self._public_key)
        self._key_id = key_id(name, self._public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parses a verifier key ``<name>+<hex key ID>+<base64(0x01 || public key)>``."""
        name, hex_id, encoded = _split_vkey(vkey)
        key = _decode_base64(encoded, ValueError)
        if len(key) != 1 + _PUBLIC_KEY_SIZE or key[:1] != ED25519_TYPE:
            raise ValueError("verifier key is not an Ed25519 key")
        verifier = cls(name, key[1:])
        if verifier.key_id != bytes.fromhex(hex_id):
            raise ValueError("verifier key's ID does not match its name and public key")
        return verifier

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def public_key(self) -> bytes:
        return self._public_key

    @property
    def vkey(self) -> str:
        encoded = base64.b64encode(ED25519_TYPE + self._public_key).decode("ascii")
        return f"{self._name}+{self._key_id.hex()}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> None:
        """Checks an Ed25519 signature over `message`, raising VerificationError if bad."""
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            raise VerificationError(
                f"signature by {self._name} ({self._key_id.hex()}) does not verify"
            ) from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verifier):
            return NotImplemented
        return (self._name, self._public_key) == (other._name, other._public_key)

    def __hash__(self) -> int:
        return hash((self._name, self._public_key))

    def __repr__(self) -> str:
        return f"Verifier({self.vkey!r})"


class Signer:
    """An Ed25519 private key under a key name: signs notes.

    Its repr names the key but never shows key material, and it refuses to be
    pickled or copied, so it cannot leak through logs, caches or queues.
    """

    __slots__ = ("_sign", "_verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._verifier = Verifier(name, public)
        self._sign: Callable[[bytes], bytes] = private_key.sign

    @classmethod
    def in_device(cls, name: str, public_key: bytes, sign: Callable[[bytes], bytes]) -> Signer:
        """A signer whose private key lives in a device (an HSM) that `sign` asks to sign."""
        signer = cls.__new__(cls)
        signer._verifier = Verifier(name, public_key)
        signer._sign = sign
        return signer

    @classmethod
    def generate(cls, name: str) -> Signer:
        """Returns a signer with a fresh key from the operating system's randomness."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """Returns the signer of a 32-byte RFC 8032 private key (the seed)."""
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def name(self) -> str:
        return self._verifier.name

    @property
    def key_id(self) -> bytes:
        return self._verifier.key_id

    @property
    def verifier(self) -> Verifier:
        return self._verifier

    def sign(self, message: bytes) -> bytes:
        """Returns the Ed25519 signature of `message` (deterministic, RFC 8032)."""
        return self._sign(message)

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError("a Signer holds a private key and cannot be pickled or copied")

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id.hex()})"


def checkpoint_body(origin: str, size: int, root: bytes, extensions: Iterable[str] = ()) -> bytes:
    """Returns the note text of a checkpoint (c2sp.org/tlog-checkpoint, Note text)."""
    lines = [origin, str(size), base64.b64encode(root).decode("ascii"), *extensions]
    if not origin:
        raise ValueError("a checkpoint's origin must not be empty")
    if not 0 <= size <= _MAX_TREE_SIZE:
        raise ValueError(f"tree size {size} is not a uint64")
    if len(root) != HASH_SIZE:
        raise ValueError(f"a root hash is {HASH_SIZE} bytes")
    if not all(lines) or any("\n" in line or _CONTROL.search(line) for line in lines):
        raise ValueError("checkpoint lines must be non-empty, without control characters")
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def sign_checkpoint(
    origin: str, size: int, root: bytes, *signers: Signer, extensions: Iterable[str] = ()
) -> bytes:
    """Returns a checkpoint as a signed note, signed by every one of `signers`."""
    return sign_note(checkpoint_body(origin, size, root, extensions), *signers)


def sign_note(text: bytes, *signers: Signer) -> bytes:
    """Returns `text` followed by a blank line and one signature line per signer."""
    if not signers:
        raise ValueError("a signed note needs at least one signer")
    if not text.endswith(b"\n") or _CONTROL.search(text.decode("utf-8")):
        raise ValueError("note text must end in a newline and hold no control characters")
    lines = [_signature_line(text, signer) for signer in signers]
    return text + b"\n" + "".join(lines).encode("utf-8")


def open_checkpoint(
    note: bytes, verifiers: Iterable[Verifier], *, expected_origin: str | None = None
) -> Checkpoint:
    """Verifies a signed checkpoint and returns it; raises VerificationError otherwise.

    Signatures by keys outside `verifiers` are ignored, so a note signed by an
    old and a new key opens with either set during a key rotation.
    """
    text, key_names = open_note(note, verifiers)
    checkpoint = _parse_body(text, key_names)
    if expected_origin is not None and checkpoint.origin != expected_origin:
        raise VerificationError(
            f"checkpoint is for log {checkpoint.origin!r}, not {expected_origin!r}"
        )
    return checkpoint


def open_note(note: bytes, verifiers: Iterable[Verifier]) -> tuple[bytes, tuple[str, ...]]:
    """Verifies a signed note; returns its text and the names of the keys that signed it."""
    known = _index(verifiers)
    text, lines = _split_note(note)
    names: list[str] = []
    for line in lines:
        name, signer_id, signature = _parse_signature_line(line)
        verifier = known.get((name, signer_id))
        # signed-note, Signatures: verifiers MUST ignore signatures from unknown keys...
        if verifier is None:
            continue
        # ...MUST verify those from known keys, and SHOULD reject the note if one fails.
        verifier.verify(text, signature)
        if name not in names:
            names.append(name)
    # signed-note, Signatures: if no signature from a known key verifies, reject the note.
    if not names:
        raise VerificationError("note carries no signature from a trusted key")
    return text, tuple(names)


def _signature_line(text: bytes, signer: Signer) -> str:
    encoded = base64.b64encode(signer.key_id + signer.sign(text)).decode("ascii")
    return f"{SIGNATURE_PREFIX}{signer.name} {encoded}\n"


def _split_note(note: bytes) -> tuple[bytes, list[str]]:
    """Splits a note into its text and signature lines (signed-note, Format)."""
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError("note is not valid UTF-8") from None
    if _CONTROL.search(decoded):
        raise VerificationError("note holds a control character other than newline")
    # The text ends at the last blank line; it keeps its final newline.
    split = note.rfind(b"\n\n")
    if split < 0:
        raise VerificationError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith(b"\n"):
        raise VerificationError("note's signature block is empty or lacks its final newline")
    lines = block[:-1].decode("utf-8").split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise VerificationError(f"note has more than {_MAX_SIGNATURES} signatures")
    return text, lines


def _parse_signature_line(line: str) -> tuple[str, bytes, bytes]:
    """Returns (key name, key ID, signature) of ``— <name> base64(key ID || signature)``."""
    if not line.startswith(SIGNATURE_PREFIX):
        raise VerificationError(f"signature line does not start with an em dash: {line!r}")
    name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not _is_key_name(name):
        raise VerificationError(f"signature line has an invalid key name: {name!r}")
    raw = _decode_base64(encoded, VerificationError)
    if len(raw) <= _KEY_ID_SIZE:
        raise VerificationError(f"signature by {name} is too short to hold a key ID")
    return name, raw[:_KEY_ID_SIZE], raw[_KEY_ID_SIZE:]


def _parse_body(text: bytes, key_names: tuple[str, ...]) -> Checkpoint:
    """Parses verified note text as a checkpoint (c2sp.org/tlog-checkpoint, Note text)."""
    lines = text.decode("utf-8").split("\n")[:-1]
    if len(lines) < 3:
        raise VerificationError("checkpoint needs origin, tree size and root hash lines")
    origin, size, root, *extensions = lines
    if not origin:
        raise VerificationError("checkpoint origin is empty")
    if not all(extensions):
        raise VerificationError("checkpoint extension lines must not be empty")
    return Checkpoint(origin, _parse_size(size), _parse_root(root), key_names, tuple(extensions))


def _parse_size(line: str) -> int:
    # ASCII decimal without leading zeros; int() alone would take "+1", "1_0" or non-ASCII digits.
    if not _DECIMAL.fullmatch(line) or int(line) > _MAX_TREE_SIZE:
        raise VerificationError(f"checkpoint tree size {line!r} is not a canonical uint64")
    return int(line)


def _parse_root(line: str) -> bytes:
    root = _decode_base64(line, VerificationError)
    if len(root) != HASH_SIZE:
        raise VerificationError(f"checkpoint root hash {line!r} is not a base64 SHA-256 hash")
    return root


def _decode_base64(text: str, error: type[ValueError]) -> bytes:
    # Only the canonical encoding is accepted (zero padding bits, RFC 4648
    # §3.5), so that every changed bit of a note changes what it says.
    try:
        decoded = base64.b64decode(text, validate=True)
    except ValueError:
        raise error(f"not standard base64: {text!r}") from None
    if base64.b64encode(decoded).decode("ascii") != text:
        raise error(f"not canonical base64: {text!r}")
    return decoded


def _split_vkey(vkey: str) -> tuple[str, str, str]:
    # The name and key ID hold no "+", but the base64 key may.
    parts = vkey.split("+", 2)
    if len(parts) != 3 or not _HEX_KEY_ID.fullmatch(parts[1]):
        raise ValueError("a verifier key reads <name>+<8 hex digits>+<base64 key>")
    return parts[0], parts[1], parts[2]


def _index(verifiers: Iterable[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    """Maps (key name, key ID) to its verifier; that pair identifies a key (signed-note)."""
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        if known.setdefault((verifier.name, verifier.key_id), verifier) != verifier:
            raise ValueError(
                f"two verifiers for {verifier.name} share key ID {verifier.key_id.hex()}"
            )
    return known


def _is_key_name(name: str) -> bool:
    # signed-note, Format: non-empty, no Unicode spaces, no "+"; notes hold no control characters.
    return bool(name) and not any(c.isspace() or c == "+" or c < " " for c in name)


def _check_key_name(name: str) -> None:
    if not _is_key_name(name):
        raise ValueError(f"invalid key name {name!r}: non-empty, without spaces or '+'")
