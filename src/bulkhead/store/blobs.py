"""Tenant-partitioned blob storage on the local disk (object storage later, same interface).

Blobs are ciphertexts: callers encrypt before `put`, so nothing here ever
holds plaintext.  The tenant id is part of every path, and ids are checked
so a crafted id cannot climb out of the tenant's directory.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from bulkhead.errors import NotFound

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _check(value: str) -> str:
    if not _ID.fullmatch(value):
        raise NotFound("object not found")
    return value


class BlobStore:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, tenant_id: str, kind: str, object_id: str) -> Path:
        return self.root / _check(tenant_id) / _check(kind) / f"{_check(object_id)}.blob"

    def put(self, tenant_id: str, kind: str, object_id: str, data: bytes) -> None:
        """Write atomically: a reader sees the old blob or the new one, never a mix."""
        self._write(self._path(tenant_id, kind, object_id), data, must_exist=False)

    def replace(self, tenant_id: str, kind: str, object_id: str, data: bytes) -> bool:
        """Like `put`, but only over an existing blob (a deleted object stays deleted)."""
        return self._write(self._path(tenant_id, kind, object_id), data, must_exist=True)

    def _write(self, path: Path, data: bytes, *, must_exist: bool) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = path.with_name(f".{path.stem}.{os.urandom(6).hex()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if must_exist and not path.exists():
            temp.unlink()
            return False
        os.replace(temp, path)
        return True

    def get(self, tenant_id: str, kind: str, object_id: str) -> bytes:
        try:
            return self._path(tenant_id, kind, object_id).read_bytes()
        except FileNotFoundError:
            raise NotFound("object not found") from None

    @contextlib.contextmanager
    def mapped(self, tenant_id: str, kind: str, object_id: str) -> Iterator[memoryview]:
        """The blob memory-mapped read-only: large ciphertexts are not copied into the heap."""
        try:
            fd = os.open(self._path(tenant_id, kind, object_id), os.O_RDONLY)
        except FileNotFoundError:
            raise NotFound("object not found") from None
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                yield memoryview(b"")
                return
            with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as region:
                view = memoryview(region)
                try:
                    yield view
                finally:
                    view.release()
        finally:
            os.close(fd)

    def delete(self, tenant_id: str, kind: str, object_id: str) -> None:
        self._path(tenant_id, kind, object_id).unlink(missing_ok=True)

    def list_ids(self, tenant_id: str, kind: str) -> list[str]:
        directory = self.root / _check(tenant_id) / _check(kind)
        return sorted(p.stem for p in directory.glob("*.blob")) if directory.is_dir() else []

    def list_all(self, tenant_id: str) -> list[tuple[str, str]]:
        """Every (kind, id) the tenant has."""
        directory = self.root / _check(tenant_id)
        if not directory.is_dir():
            return []
        return [
            (kind.name, blob.stem)
            for kind in sorted(directory.iterdir())
            if kind.is_dir() and _ID.fullmatch(kind.name)
            for blob in sorted(kind.glob("*.blob"))
        ]

    def drop_tenant(self, tenant_id: str) -> None:
        """Remove all of a tenant's blobs (after its keys are destroyed they are noise)."""
        shutil.rmtree(self.root / _check(tenant_id), ignore_errors=True)

    def __repr__(self) -> str:
        return f"BlobStore(root={str(self.root)!r})"
