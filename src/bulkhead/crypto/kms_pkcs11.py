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
session, used only under the lock.  The lock is the module's, one per process
(`module_lock`): the library is one per process however many instances use it
(several replicas in one test process, or a re-initialisation after a lost
token, which every instance's session feels), and a PKCS#11 library need not
be safe to call from two threads at once, so no two calls into it overlap.
Two processes changing the same tenant at the same moment are not serialised
(the token has no compare-and-swap);
management calls are rare admin operations and should come from one place.

The token may go away underneath (an HSM restarted or unplugged, its session
closed, a SoftHSM token directory gone): a failed call, or a search that
finds nothing, asks the library whether the token is still there.  If it is
not, the session is dropped and the call raises `KmsUnavailable` (503, never
a 404 or a "cannot decrypt"), and the next call - at most one try every
`RECONNECT_S` - re-initialises the library and logs in again, so the gateway
recovers without a restart once the token is back.  For that the PIN is kept
in memory (as the settings keep it), wrapped so that no `repr` shows it; it is
never logged or put into an error message.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Attribute, GCMParams, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.types import DecryptMixin, EncryptMixin

from bulkhead.crypto import _pkcs11_ed25519 as ed25519
from bulkhead.crypto._errors import DecryptionFailed
from bulkhead.crypto._keys import EXPORT_KEY_MATERIAL, DataKey, Rng
from bulkhead.crypto._pkcs11_session import Pin, forget_logins, open_session
from bulkhead.crypto._wire import field, u32
from bulkhead.crypto.hazmat import AES_KEY_SIZE, GCM_NONCE_SIZE
from bulkhead.crypto.kms import KekVersionStatus, TenantKeyStatus
from bulkhead.errors import ConfigError, Conflict, KmsUnavailable, NotFound

META_FORMAT = "bulkhead-pkcs11-kms/1"
APPLICATION = "bulkhead-kms"
_DEK_LABEL = field(b"bulkhead/pkcs11-kms/dek")
_TAG_SIZE = 16
_MAX_VERSION = 0xFFFFFFFF
_Role = TypeVar("_Role", EncryptMixin, DecryptMixin)
_T = TypeVar("_T")
_MODULE_LOCKS: dict[str, threading.RLock] = {}
_MODULE_LOCKS_LOCK = threading.Lock()


def module_lock(module_path: str) -> threading.RLock:
    """The process's one lock for the PKCS#11 module at `module_path` (re-entrant: an
    instance's call may reach another instance of the same module)."""
    with _MODULE_LOCKS_LOCK:
        return _MODULE_LOCKS.setdefault(module_path, threading.RLock())


_SESSION_LOST = (pkcs11.SessionHandleInvalid, pkcs11.SessionClosed, pkcs11.UserNotLoggedIn)
RECONNECT_S = 0.5
"""While the token is away, how often a call may try to log in again (others get 503 at once)."""


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
        self._token_label, self._module_path = token_label, module_path
        self._pin = Pin(pin)  # to log in again after the token comes back; never shown
        self._rng = rng or os.urandom
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = module_lock(module_path)
        self._session: pkcs11.Session | None = open_session(module_path, token_label, pin)
        self._retry_at = 0.0

    def __repr__(self) -> str:
        return f"Pkcs11Kms(token={self._token_label!r})"

    def close(self) -> None:
        """Close the session; the instance is unusable afterwards."""
        with self._lock:
            self._drop()
            self._retry_at = float("inf")

    # The session, and what happens when the token goes away (see the module's docstring).

    @property
    def _live(self) -> pkcs11.Session:
        """The logged-in session, reconnecting first if it was lost; the caller holds the lock."""
        if self._session is None:
            if time.monotonic() < self._retry_at:
                raise KmsUnavailable()
            self._retry_at = time.monotonic() + RECONNECT_S
            self._session = self._reconnect()
        return self._session

    def _reconnect(self) -> pkcs11.Session:
        """Log in again: as it is, else (a library that lost its token keeps failing until
        then) after initialising the library again, which ends every session of the process."""
        for fresh in (False, True):
            try:
                if fresh:
                    pkcs11.lib(self._module_path).reinitialize()
                    forget_logins(self._module_path)
                return open_session(self._module_path, self._token_label, self._pin.value)
            except (ConfigError, pkcs11.PKCS11Error, RuntimeError):
                continue
        raise KmsUnavailable()

    def _drop(self) -> None:
        if self._session is not None:
            # A session on a token that is gone may not close.
            with contextlib.suppress(pkcs11.PKCS11Error, RuntimeError):
                self._session.close()
            self._session = None

    def _present(self) -> bool:
        """Whether the token is still there; if not, the session is dropped."""
        try:
            pkcs11.lib(self._module_path).get_token(token_label=self._token_label)
            return True
        except (pkcs11.PKCS11Error, RuntimeError):
            self._drop()
            return False

    def _unless_lost(self) -> None:
        """Raise `KmsUnavailable` if the token is gone (after a failure or an empty search)."""
        if not self._present():
            raise KmsUnavailable()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The lock; a token failure while the token is gone becomes `KmsUnavailable`."""
        with self._lock:
            try:
                yield
            except _SESSION_LOST:
                self._drop()  # the token may be fine: the next call logs in again
                raise KmsUnavailable() from None
            except pkcs11.PKCS11Error:
                self._unless_lost()
                raise

    # Management operations.

    def create_tenant(self, tenant_id: str) -> TenantKeyStatus:
        with self._locked():
            if self._find_meta(tenant_id):
                raise Conflict("This tenant already has a key.")
            self._destroy_keys(tenant_id)  # orphans of an interrupted create or destroy
            version = self._new_version(tenant_id, 1)
            self._write_meta(tenant_id, _Meta(0, (version,)), [])
            return _status(tenant_id, (version,))

    def rotate(self, tenant_id: str) -> int:
        """Add a KEK version; it wraps every new DEK, and older versions still unwrap."""
        with self._locked():
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
        with self._locked():
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
        with self._locked():
            _meta, old = self._meta(tenant_id)
            self._destroy_keys(tenant_id)
            for obj in old:
                obj.destroy()

    def status(self, tenant_id: str) -> TenantKeyStatus:
        with self._locked():
            meta, _old = self._meta(tenant_id)
            return _status(tenant_id, meta.versions)

    # Data-key operations.

    def wrap_dek(self, tenant_id: str, dek: DataKey, aad: bytes) -> tuple[int, bytes]:
        """Wrap `dek` under the tenant's primary KEK version; return (version, wrapped)."""
        nonce = self._rng(GCM_NONCE_SIZE)
        material = dek.reveal(EXPORT_KEY_MATERIAL)
        with self._locked():
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
        with self._locked():
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
            except _SESSION_LOST:
                self._drop()
                raise KmsUnavailable() from None
            except pkcs11.PKCS11Error:
                self._unless_lost()
                raise DecryptionFailed() from None
            except (ConfigError, ValueError, KeyError, TypeError):
                raise DecryptionFailed() from None
        if not isinstance(material, bytes) or len(material) != AES_KEY_SIZE:
            raise DecryptionFailed()
        return DataKey(material)

    def rewrap(self, tenant_id: str, version: int, wrapped: bytes, aad: bytes) -> tuple[int, bytes]:
        """Re-wrap a stored DEK under the primary version without touching the data."""
        return self.wrap_dek(tenant_id, self.unwrap_dek(tenant_id, version, wrapped, aad), aad)

    # Ed25519 signing keys (`kms.Ed25519Keys`), for the audit log's checkpoints.

    def ed25519_supported(self) -> bool:
        with self._locked():
            return ed25519.supported(self._live)

    def create_ed25519(self, label: str) -> bytes:
        """Generate a non-extractable Ed25519 key pair in the token; return its public key."""
        with self._locked():
            return ed25519.create(self._live, label)

    def sign_ed25519(self, label: str, public_key: bytes, message: bytes) -> bytes:
        with self._locked():
            return ed25519.sign(self._live, label, public_key, message)

    def destroy_ed25519(self, label: str) -> None:
        with self._locked():
            ed25519.destroy(self._live, label)

    # Internals; the caller holds the lock.

    def _new_version(self, tenant_id: str, number: int) -> _Version:
        for stale in self._keys(tenant_id, number):  # an orphan of an interrupted rotate
            stale.destroy()
        self._live.generate_key(
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
        found = list(
            self._live.get_objects(
                {
                    Attribute.CLASS: ObjectClass.SECRET_KEY,
                    Attribute.ID: tenant_id.encode(),
                    Attribute.LABEL: _key_label(tenant_id, number),
                }
            )
        )
        if not found:
            self._unless_lost()  # a token that went away finds nothing, without an error
        return found

    def _key(self, tenant_id: str, number: int, role: type[_Role]) -> _Role | None:
        """The one key object of this version, able to play `role` (encrypt or decrypt)."""
        keys = self._keys(tenant_id, number)
        if len(keys) != 1 or not isinstance(keys[0], role):
            return None
        return keys[0]

    def _destroy_keys(self, tenant_id: str) -> None:
        query = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.ID: tenant_id.encode()}
        for key in list(self._live.get_objects(query)):
            key.destroy()

    def _find_meta(self, tenant_id: str) -> list[pkcs11.Object]:
        """The tenant's metadata objects, oldest generation first (normally just one)."""
        found = list(
            self._live.get_objects(
                {
                    Attribute.CLASS: ObjectClass.DATA,
                    Attribute.APPLICATION: APPLICATION,
                    Attribute.LABEL: _meta_label(tenant_id),
                }
            )
        )
        if not found:
            self._unless_lost()
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
        self._live.create_object(
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
