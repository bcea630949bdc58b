"""`Pkcs11Kms`: per-tenant KEKs held in a PKCS#11 token (an HSM, or SoftHSM2 in tests).

Each KEK version is an AES-256 secret key generated inside the token as a
token object with ``CKA_SENSITIVE=True``, ``CKA_EXTRACTABLE=False``,
``CKA_PRIVATE=True``, allowed only to encrypt and decrypt.  Its label is
``bulkhead:kek:<tenant_id>:<version>`` and its ``CKA_ID`` is the tenant id, so
every key of a tenant (orphans from an interrupted operation included) can be
found and destroyed in one search.  Key bytes never leave the token.

A wrapped DEK is ``nonce(12) ‖ AES-256-GCM(kek, dek) ‖ tag(16)``, computed in
the token, with associated data ``"bulkhead/pkcs11-kms/dek" ‖ tenant ‖ version
‖ caller's aad``: moving it to another tenant, version or object fails, as with
`LocalKms`.

The version list (created and retired timestamps) is kept in the token too, so
every process that opens the token sees the same state: one private ``CKO_DATA``
object per tenant, application ``bulkhead-kms``, label
``bulkhead:meta:<tenant_id>``, whose ``CKA_VALUE`` is a small JSON document
(format ``bulkhead-pkcs11-kms/1``) with a ``generation`` counter.  Data object
values are read-only once created, so an update creates the next generation
and then destroys the older ones; a reader takes the highest generation.

Retiring a version records ``retired_at`` and then destroys that key object,
so ciphertexts under it fail closed for good.  `destroy` deletes every key of
the tenant first (crypto-shredding), then its metadata.  Every order of steps
fails closed if a process dies half-way, and the next management call on that
tenant removes what was left over.

The lock makes one instance thread-safe; it keeps one logged-in read/write
session, used only under the lock.  Two processes changing the same tenant at
the same moment are not serialised (the token has no compare-and-swap);
management calls are rare admin operations and should come from one place.
The PIN is used to log in and then forgotten: it is never stored, shown in
`repr` or put into an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Attribute, GCMParams, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.types import DecryptMixin, EncryptMixin

from bulkhead.crypto import _pkcs11_ed25519 as ed25519
from bulkhead.crypto._errors import DecryptionFailed
from bulkhead.crypto._keys import EXPORT_KEY_MATERIAL, DataKey, Rng
from bulkhead.crypto._wire import field, u32
from bulkhead.crypto.hazmat import AES_KEY_SIZE, GCM_NONCE_SIZE
from bulkhead.crypto.kms import KekVersionStatus, TenantKeyStatus
from bulkhead.errors import ConfigError, Conflict, NotFound

META_FORMAT = "bulkhead-pkcs11-kms/1"
APPLICATION = "bulkhead-kms"
_DEK_LABEL = field(b"bulkhead/pkcs11-kms/dek")
_TAG_SIZE = 16
_MAX_VERSION = 0xFFFFFFFF
_Role = TypeVar("_Role", EncryptMixin, DecryptMixin)

# PKCS#11 logs in per application, not per session: a second `C_Login` in the
# same process answers "already logged in" without looking at the PIN.  So the
# process remembers a keyed digest of the PIN each token was logged in with,
# and a later instance must present the same PIN (or it is a wrong PIN).
_PROCESS_SALT = os.urandom(32)
_LOGINS: dict[tuple[str, bytes], bytes] = {}
_LOGINS_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class _Version:
    number: int
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Meta:
    generation: int
    versions: tuple[_Version, ...]


class Pkcs11Kms:
    """Per-tenant KEKs with versions, generated and used inside a PKCS#11 token."""

    def __init__(
        self,
        module_path: str,
        token_label: str,
        pin: str,
        *,
        rng: Rng | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._token_label = token_label
        self._rng = rng or os.urandom
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._session = _open_session(module_path, token_label, pin)

    def __repr__(self) -> str:
        return f"Pkcs11Kms(token={self._token_label!r})"

    def close(self) -> None:
        """Close the session; the instance is unusable afterwards."""
        with self._lock:
            self._session.close()

    # Management operations.

    def create_tenant(self, tenant_id: str) -> TenantKeyStatus:
        with self._lock:
            if self._find_meta(tenant_id):
                raise Conflict("This tenant already has a key.")
            self._destroy_keys(tenant_id)  # orphans of an interrupted create or destroy
            version = self._new_version(tenant_id, 1)
            self._write_meta(tenant_id, _Meta(0, (version,)), [])
            return _status(tenant_id, (version,))

    def rotate(self, tenant_id: str) -> int:
        """Add a KEK version; it wraps every new DEK, and older versions still unwrap."""
        with self._lock:
            meta, old = self._meta(tenant_id)
            number = meta.versions[-1].number + 1
            self._write_meta(
                tenant_id,
                replace(meta, versions=(*meta.versions, self._new_version(tenant_id, number))),
                old,
            )
            return number

    def retire(self, tenant_id: str, version: int) -> None:
        """Stop `version` from unwrapping, for good; the primary version cannot be retired."""
        with self._lock:
            meta, old = self._meta(tenant_id)
            if version == meta.versions[-1].number:
                raise Conflict("The primary key version cannot be retired; rotate first.")
            index = _index_of(meta.versions, version)
            if meta.versions[index].retired_at is None:
                retired = replace(meta.versions[index], retired_at=self._clock())
                versions = (*meta.versions[:index], retired, *meta.versions[index + 1 :])
                self._write_meta(tenant_id, replace(meta, versions=versions), old)
            # Record first, destroy second: a crash in between still fails closed.
            for key in self._keys(tenant_id, version):
                key.destroy()

    def destroy(self, tenant_id: str) -> None:
        """Destroy every KEK version of the tenant in the token: its data becomes unreadable."""
        with self._lock:
            _meta, old = self._meta(tenant_id)
            self._destroy_keys(tenant_id)
            for obj in old:
                obj.destroy()

    def status(self, tenant_id: str) -> TenantKeyStatus:
        with self._lock:
            meta, _old = self._meta(tenant_id)
            return _status(tenant_id, meta.versions)

    # Data-key operations.

    def wrap_dek(self, tenant_id: str, dek: DataKey, aad: bytes) -> tuple[int, bytes]:
        """Wrap `dek` under the tenant's primary KEK version; return (version, wrapped)."""
        nonce = self._rng(GCM_NONCE_SIZE)
        material = dek.reveal(EXPORT_KEY_MATERIAL)
        with self._lock:
            meta, _old = self._meta(tenant_id)
            number = meta.versions[-1].number
            key = self._key(tenant_id, number, EncryptMixin)
            if key is None:
                raise NotFound("The primary key of this tenant is missing from the token.")
            params = GCMParams(nonce, _dek_aad(tenant_id, number, aad), _TAG_SIZE * 8)
            sealed = key.encrypt(material, mechanism=Mechanism.AES_GCM, mechanism_param=params)
        if not isinstance(sealed, bytes):
            raise TypeError("a one-shot PKCS#11 encrypt returns bytes")
        return number, nonce + sealed

    def unwrap_dek(self, tenant_id: str, version: int, wrapped: bytes, aad: bytes) -> DataKey:
        if len(wrapped) < GCM_NONCE_SIZE + _TAG_SIZE or not 0 < version <= _MAX_VERSION:
            raise DecryptionFailed()
        nonce, sealed = wrapped[:GCM_NONCE_SIZE], wrapped[GCM_NONCE_SIZE:]
        with self._lock:
            try:
                params = GCMParams(nonce, _dek_aad(tenant_id, version, aad), _TAG_SIZE * 8)
                found = self._find_meta(tenant_id)
                usable = bool(found) and any(
                    v.number == version and v.retired_at is None for v in _parse(found[-1]).versions
                )
                key = self._key(tenant_id, version, DecryptMixin) if usable else None
                if key is None:
                    raise DecryptionFailed()
                material = key.decrypt(sealed, mechanism=Mechanism.AES_GCM, mechanism_param=params)
            except (pkcs11.PKCS11Error, ConfigError, ValueError, KeyError, TypeError):
                raise DecryptionFailed() from None
        if not isinstance(material, bytes) or len(material) != AES_KEY_SIZE:
            raise DecryptionFailed()
        return DataKey(material)

    def rewrap(self, tenant_id: str, version: int, wrapped: bytes, aad: bytes) -> tuple[int, bytes]:
        """Re-wrap a stored DEK under the primary version without touching the data."""
        return self.wrap_dek(tenant_id, self.unwrap_dek(tenant_id, version, wrapped, aad), aad)

    # Ed25519 signing keys (`kms.Ed25519Keys`), for the audit log's checkpoints.

    def ed25519_supported(self) -> bool:
        with self._lock:
            return ed25519.supported(self._session)

    def create_ed25519(self, label: str) -> bytes:
        """Generate a non-extractable Ed25519 key pair in the token; return its public key."""
        with self._lock:
            return ed25519.create(self._session, label)

    def sign_ed25519(self, label: str, public_key: bytes, message: bytes) -> bytes:
        with self._lock:
            return ed25519.sign(self._session, label, public_key, message)

    def destroy_ed25519(self, label: str) -> None:
        with self._lock:
            ed25519.destroy(self._session, label)

    # Internals; the caller holds the lock.

    def _new_version(self, tenant_id: str, number: int) -> _Version:
        for stale in self._keys(tenant_id, number):  # an orphan of an interrupted rotate
            stale.destroy()
        self._session.generate_key(
            KeyType.AES,
            AES_KEY_SIZE * 8,
            id=tenant_id.encode(),
            label=_key_label(tenant_id, number),
            store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.PRIVATE: True,
            },
        )
        return _Version(number, self._clock(), None)

    def _keys(self, tenant_id: str, number: int) -> list[pkcs11.Object]:
        return list(
            self._session.get_objects(
                {
                    Attribute.CLASS: ObjectClass.SECRET_KEY,
                    Attribute.ID: tenant_id.encode(),
                    Attribute.LABEL: _key_label(tenant_id, number),
                }
            )
        )

    def _key(self, tenant_id: str, number: int, role: type[_Role]) -> _Role | None:
        """The one key object of this version, able to play `role` (encrypt or decrypt)."""
        keys = self._keys(tenant_id, number)
        if len(keys) != 1 or not isinstance(keys[0], role):
            return None
        return keys[0]

    def _destroy_keys(self, tenant_id: str) -> None:
        query = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.ID: tenant_id.encode()}
        for key in list(self._session.get_objects(query)):
            key.destroy()

    def _find_meta(self, tenant_id: str) -> list[pkcs11.Object]:
        """The tenant's metadata objects, oldest generation first (normally just one)."""
        found = list(
            self._session.get_objects(
                {
                    Attribute.CLASS: ObjectClass.DATA,
                    Attribute.APPLICATION: APPLICATION,
                    Attribute.LABEL: _meta_label(tenant_id),
                }
            )
        )
        return sorted(found, key=lambda obj: _parse(obj).generation)

    def _meta(self, tenant_id: str) -> tuple[_Meta, list[pkcs11.Object]]:
        found = self._find_meta(tenant_id)
        if not found:
            raise NotFound("No key exists for this tenant.")
        return _parse(found[-1]), found

    def _write_meta(self, tenant_id: str, meta: _Meta, old: list[pkcs11.Object]) -> None:
        document = {
            "format": META_FORMAT,
            "tenant_id": tenant_id,
            "generation": meta.generation + 1,
            "versions": [_version_json(v) for v in meta.versions],
        }
        self._session.create_object(
            {
                Attribute.CLASS: ObjectClass.DATA,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.APPLICATION: APPLICATION,
                Attribute.LABEL: _meta_label(tenant_id),
                Attribute.VALUE: json.dumps(document, sort_keys=True).encode(),
            }
        )
        for obj in old:
            obj.destroy()


def _open_session(module_path: str, token_label: str, pin: str) -> pkcs11.Session:
    """Log in to the token; every failure is a one-line `ConfigError` without the PIN."""
    try:
        lib = pkcs11.lib(module_path)
    except (pkcs11.PKCS11Error, OSError):
        raise ConfigError(f"The PKCS#11 module {module_path} could not be loaded.") from None
    try:
        token = lib.get_token(token_label=token_label)
    except pkcs11.NoSuchToken:
        raise ConfigError(f"No PKCS#11 token is labelled {token_label!r}.") from None
    except pkcs11.PKCS11Error as exc:
        raise ConfigError(f"The PKCS#11 token list could not be read ({_name(exc)}).") from None
    digest = hmac.new(_PROCESS_SALT, pin.encode(), hashlib.sha256).digest()
    login = (module_path, token.serial)
    with _LOGINS_LOCK:
        try:
            session = token.open(rw=True, user_pin=pin)
            _LOGINS[login] = digest
        except pkcs11.UserAlreadyLoggedIn:
            session = token.open(rw=True)
            known = _LOGINS.get(login)
            if known is not None and not hmac.compare_digest(known, digest):
                session.close()
                raise _wrong_pin(token_label) from None
        except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange):
            raise _wrong_pin(token_label) from None
        except pkcs11.PinLocked:
            raise ConfigError(f"The PIN of PKCS#11 token {token_label!r} is locked.") from None
        except pkcs11.PKCS11Error as exc:
            raise ConfigError(
                f"Could not log in to PKCS#11 token {token_label!r} ({_name(exc)})."
            ) from None
    try:
        supported = Mechanism.AES_GCM in token.slot.get_mechanisms()
    except pkcs11.PKCS11Error:
        supported = False
    if not supported:
        session.close()
        raise ConfigError(f"PKCS#11 token {token_label!r} does not offer AES-GCM.")
    return session


def _wrong_pin(token_label: str) -> ConfigError:
    return ConfigError(f"The PIN was rejected by PKCS#11 token {token_label!r}.")


def _name(exc: BaseException) -> str:
    return type(exc).__name__


def _key_label(tenant_id: str, number: int) -> str:
    return f"bulkhead:kek:{tenant_id}:{number}"


def _meta_label(tenant_id: str) -> str:
    return f"bulkhead:meta:{tenant_id}"


def _dek_aad(tenant_id: str, number: int, aad: bytes) -> bytes:
    return _DEK_LABEL + field(tenant_id.encode()) + u32(number) + aad


def _index_of(versions: tuple[_Version, ...], number: int) -> int:
    for index, version in enumerate(versions):
        if version.number == number:
            return index
    raise NotFound("No such key version for this tenant.")


def _status(tenant_id: str, versions: tuple[_Version, ...]) -> TenantKeyStatus:
    described = tuple(KekVersionStatus(v.number, v.created_at, v.retired_at) for v in versions)
    return TenantKeyStatus(tenant_id, versions[-1].number, described)


def _version_json(version: _Version) -> dict[str, Any]:
    retired = version.retired_at.isoformat() if version.retired_at else None
    return {
        "version": version.number,
        "created_at": version.created_at.isoformat(),
        "retired_at": retired,
    }


def _parse(obj: pkcs11.Object) -> _Meta:
    document: dict[str, Any] = json.loads(bytes(obj[Attribute.VALUE]))
    if document.get("format") != META_FORMAT:
        raise ConfigError("A key metadata object in the PKCS#11 token has an unknown format.")
    versions = tuple(
        _Version(
            number=int(item["version"]),
            created_at=datetime.fromisoformat(item["created_at"]),
            retired_at=datetime.fromisoformat(item["retired_at"]) if item["retired_at"] else None,
        )
        for item in document["versions"]
    )
    return _Meta(int(document["generation"]), versions)
