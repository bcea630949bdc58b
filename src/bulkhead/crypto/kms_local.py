"""`LocalKms`: the embedded keyring, per-tenant KEKs wrapped under a master key.

KEKs exist in plaintext only in memory, for the length of one wrap or unwrap.
At rest each KEK version is stored as ``nonce(12) ‖ AES-256-GCM(master, kek)``
with associated data naming the tenant and version, so a wrapped KEK copied to
another tenant or version fails to open.  The store is one JSON document
(`FileKekStore` keeps it in ``keks.json``, mode 0600, replaced atomically).

A wrapped DEK is ``nonce(12) ‖ AES-256-GCM(kek, dek)`` with associated data
``"bulkhead/local-kms/dek" ‖ tenant ‖ version ‖ caller's aad``: moving it to
another tenant, version or object fails (tink `aead/_kms_envelope_aead.py`).

`destroy` crypto-shreds a tenant by deleting its KEKs from memory and from the
file; copies of the old file (backups, unreclaimed disk blocks) are outside
what this class can erase, which is why production uses an HSM.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from bulkhead.crypto._errors import DecryptionFailed
from bulkhead.crypto._keys import EXPORT_KEY_MATERIAL, DataKey, Kek, Rng, aead_of
from bulkhead.crypto._wire import field, u32
from bulkhead.crypto.hazmat import AES_KEY_SIZE, GCM_NONCE_SIZE, AesGcm
from bulkhead.crypto.kms import KekVersionStatus, TenantKeyStatus
from bulkhead.errors import ConfigError, Conflict, NotFound

STORE_FORMAT = "bulkhead-local-kms/1"
STORE_FILE = "keks.json"
_KEK_LABEL = field(b"bulkhead/local-kms/kek")
_DEK_LABEL = field(b"bulkhead/local-kms/dek")
_CHECK_LABEL = field(b"bulkhead/local-kms/master-key-check")

Document = dict[str, Any]


class KekStore(Protocol):
    """Where `LocalKms` keeps its JSON document of wrapped KEKs."""

    def load(self) -> Document | None: ...

    def save(self, document: Document) -> None: ...


class MemoryKekStore:
    """A store that lives and dies with the process (tests, single-run tools)."""

    def __init__(self, document: Document | None = None) -> None:
        self._document = _deep_copy(document)

    def load(self) -> Document | None:
        return _deep_copy(self._document)

    def save(self, document: Document) -> None:
        self._document = _deep_copy(document)


class FileKekStore:
    """``<directory>/keks.json``, mode 0600, written to a temporary file and renamed."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / STORE_FILE

    def load(self) -> Document | None:
        try:
            document: Document = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        return document

    def save(self, document: Document) -> None:
        _write_private(self.path, json.dumps(document, indent=1, sort_keys=True).encode())


@dataclass(frozen=True, slots=True)
class _Version:
    number: int
    created_at: datetime
    retired_at: datetime | None
    wrapped_kek: bytes


class LocalKms:
    """Per-tenant KEKs with versions, kept wrapped under `master_key`; thread-safe."""

    def __init__(
        self,
        store: Path | KekStore,
        master_key: Kek,
        *,
        rng: Rng | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._store = FileKekStore(store) if isinstance(store, Path) else store
        self._master = aead_of(master_key)
        self._rng = rng or os.urandom
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._check, self._tenants = self._load()

    def __repr__(self) -> str:
        return f"LocalKms(tenants={len(self._tenants)})"

    # Management operations.

    def create_tenant(self, tenant_id: str) -> TenantKeyStatus:
        with self._lock:
            if tenant_id in self._tenants:
                raise Conflict("This tenant already has a key.")
            self._commit(tenant_id, (self._new_version(tenant_id, 1),))
            return _status(tenant_id, self._tenants[tenant_id])

    def rotate(self, tenant_id: str) -> int:
        """Add a KEK version; it wraps every new DEK, and older versions still unwrap."""
        with self._lock:
            versions = self._versions(tenant_id)
            number = versions[-1].number + 1
            self._commit(tenant_id, (*versions, self._new_version(tenant_id, number)))
            return number

    def retire(self, tenant_id: str, version: int) -> None:
        """Stop `version` from unwrapping; the primary version cannot be retired."""
        with self._lock:
            versions = self._versions(tenant_id)
            if version == versions[-1].number:
                raise Conflict("The primary key version cannot be retired; rotate first.")
            index = _index_of(versions, version)
            if versions[index].retired_at is None:
                retired = replace(versions[index], retired_at=self._clock())
                self._commit(tenant_id, (*versions[:index], retired, *versions[index + 1 :]))

    def destroy(self, tenant_id: str) -> None:
        """Delete every KEK version of the tenant: its data becomes unreadable."""
        with self._lock:
            self._versions(tenant_id)
            self._commit(tenant_id, None)

    def status(self, tenant_id: str) -> TenantKeyStatus:
        with self._lock:
            return _status(tenant_id, self._versions(tenant_id))

    # Data-key operations.

    def wrap_dek(self, tenant_id: str, dek: DataKey, aad: bytes) -> tuple[int, bytes]:
        """Wrap `dek` under the tenant's primary KEK version; return (version, wrapped)."""
        with self._lock:
            primary = self._versions(tenant_id)[-1]
        nonce = self._rng(GCM_NONCE_SIZE)
        material = dek.reveal(EXPORT_KEY_MATERIAL)
        aead = self._kek(tenant_id, primary)
        return primary.number, nonce + aead.seal(nonce, material, _dek_aad(tenant_id, primary, aad))

    def unwrap_dek(self, tenant_id: str, version: int, wrapped: bytes, aad: bytes) -> DataKey:
        with self._lock:
            found = self._usable(tenant_id, version)
        if found is None:
            raise DecryptionFailed()
        nonce, sealed = wrapped[:GCM_NONCE_SIZE], wrapped[GCM_NONCE_SIZE:]
        aead = self._kek(tenant_id, found)
        material = aead.open(nonce, sealed, _dek_aad(tenant_id, found, aad))
        if len(material) != AES_KEY_SIZE:
            raise DecryptionFailed()
        return DataKey(material)

    def rewrap(self, tenant_id: str, version: int, wrapped: bytes, aad: bytes) -> tuple[int, bytes]:
        """Re-wrap a stored DEK under the primary version without touching the data."""
        return self.wrap_dek(tenant_id, self.unwrap_dek(tenant_id, version, wrapped, aad), aad)

    # Internals.  Callers of the underscore methods that touch `_tenants` hold the lock.

    def _versions(self, tenant_id: str) -> tuple[_Version, ...]:
        versions = self._tenants.get(tenant_id)
        if versions is None:
            raise NotFound("No key exists for this tenant.")
        return versions

    def _usable(self, tenant_id: str, version: int) -> _Version | None:
        for candidate in self._tenants.get(tenant_id, ()):
            if candidate.number == version and candidate.retired_at is None:
                return candidate
        return None

    def _new_version(self, tenant_id: str, number: int) -> _Version:
        nonce, material = self._rng(GCM_NONCE_SIZE), self._rng(AES_KEY_SIZE)
        sealed = self._master.seal(nonce, material, _kek_aad(tenant_id, number))
        return _Version(number, self._clock(), None, nonce + sealed)

    def _kek(self, tenant_id: str, version: _Version) -> AesGcm:
        nonce, sealed = version.wrapped_kek[:GCM_NONCE_SIZE], version.wrapped_kek[GCM_NONCE_SIZE:]
        return aead_of(Kek(self._master.open(nonce, sealed, _kek_aad(tenant_id, version.number))))

    def _commit(self, tenant_id: str, versions: tuple[_Version, ...] | None) -> None:
        # Save first and swap the in-memory state only if the save worked.
        tenants = dict(self._tenants)
        if versions is None:
            del tenants[tenant_id]
        else:
            tenants[tenant_id] = versions
        self._store.save(_document(self._check, tenants))
        self._tenants = tenants

    def _load(self) -> tuple[bytes, dict[str, tuple[_Version, ...]]]:
        document = self._store.load()
        if document is None:
            nonce = self._rng(GCM_NONCE_SIZE)
            return nonce + self._master.seal(nonce, b"", _CHECK_LABEL), {}
        if document.get("format") != STORE_FORMAT:
            raise ConfigError("The key store has an unknown format.")
        check = base64.b64decode(document["check"])
        try:
            self._master.open(check[:GCM_NONCE_SIZE], check[GCM_NONCE_SIZE:], _CHECK_LABEL)
        except DecryptionFailed:
            raise ConfigError("The master key does not open this key store.") from None
        return check, {tid: _parse_versions(v) for tid, v in document["tenants"].items()}


def load_or_create_master_key(path: Path, *, rng: Rng | None = None) -> Kek:
    """Read the base64 master key at `path`, creating it (mode 0600) on first use."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"The master key file {path} must be mode 0600.") from None
        return master_key_from_base64(path.read_text())
    key = Kek.generate(rng)
    with os.fdopen(fd, "wb") as out:
        out.write(base64.b64encode(key.reveal(EXPORT_KEY_MATERIAL)) + b"\n")
        os.fsync(out.fileno())
    return key


def master_key_from_base64(text: str) -> Kek:
    """The master key from its base64 text, as an environment variable carries it."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise ConfigError("The master key is not valid base64.") from None
    if len(raw) != AES_KEY_SIZE:
        raise ConfigError("The master key must be 32 bytes.")
    return Kek(raw)


def _kek_aad(tenant_id: str, number: int) -> bytes:
    return _KEK_LABEL + field(tenant_id.encode()) + u32(number)


def _dek_aad(tenant_id: str, version: _Version, aad: bytes) -> bytes:
    return _DEK_LABEL + field(tenant_id.encode()) + u32(version.number) + aad


def _index_of(versions: tuple[_Version, ...], number: int) -> int:
    for index, version in enumerate(versions):
        if version.number == number:
            return index
    raise NotFound("No such key version for this tenant.")


def _status(tenant_id: str, versions: tuple[_Version, ...]) -> TenantKeyStatus:
    described = tuple(KekVersionStatus(v.number, v.created_at, v.retired_at) for v in versions)
    return TenantKeyStatus(tenant_id, versions[-1].number, described)


def _document(check: bytes, tenants: Mapping[str, tuple[_Version, ...]]) -> Document:
    return {
        "format": STORE_FORMAT,
        "check": base64.b64encode(check).decode(),
        "tenants": {tid: [_version_json(v) for v in versions] for tid, versions in tenants.items()},
    }


def _version_json(version: _Version) -> Document:
    retired = version.retired_at.isoformat() if version.retired_at else None
    return {
        "version": version.number,
        "created_at": version.created_at.isoformat(),
        "retired_at": retired,
        "wrapped_kek": base64.b64encode(version.wrapped_kek).decode(),
    }


def _parse_versions(items: list[Document]) -> tuple[_Version, ...]:
    return tuple(
        _Version(
            number=int(item["version"]),
            created_at=datetime.fromisoformat(item["created_at"]),
            retired_at=datetime.fromisoformat(item["retired_at"]) if item["retired_at"] else None,
            wrapped_kek=base64.b64decode(item["wrapped_kek"]),
        )
        for item in items
    )


def _write_private(path: Path, data: bytes) -> None:
    # Write a 0600 temporary file beside the target, fsync it, then rename over
    # the target, so a crash leaves either the old document or the new one.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _deep_copy(document: Document | None) -> Document | None:
    return None if document is None else json.loads(json.dumps(document))
