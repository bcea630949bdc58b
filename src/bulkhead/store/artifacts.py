"""Encrypted model artifacts: a tenant's Hugging Face-format model, file by file.

Each file is a streaming-AEAD blob under kind "model" with object id
``<artifact_id>-<seq>``, so its associated data binds tenant, kind and file;
the SQL row records the file's name, size and the SHA-256 of its plaintext,
which `load` checks again every time.  Only safetensors weights and plain
JSON/text side files are accepted, each checked by `store.model_files` with
the worker's own parser before anything is stored: pickle-based weights
(``*.bin``, ``*.pt`` …) can run code when loaded, so they are refused
outright.  A fine-tuned model's LoRA adapter is an artifact too
(`import_adapter`), its files checked by `runtime.worker.adapter_format`; a tenant holds at
most `BULKHEAD_TENANT_MAX_TUNED_MODELS` of them (`check_tuned_room`, under its lock).
Plaintext exists only in memory, on its way in or on its way to a worker.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bulkhead.crypto import decrypt_stream_into, encrypt_stream
from bulkhead.domain import DeploymentKind, Endpoint, Tenant
from bulkhead.errors import Conflict, IntegrityFailure, InvalidRequest, NotFound
from bulkhead.runtime.worker import adapter_format
from bulkhead.store import repo
from bulkhead.store.bounds import bounds_of
from bulkhead.store.db import Database
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.model_files import check_files
from bulkhead.store.schema import DeploymentRow, ModelArtifactFileRow, ModelRow, utcnow

log = logging.getLogger("bulkhead.artifacts")

KIND = "model"
WORKER = "hf-causal"
OPTION = "artifact"  # the deployment option that names the artifact
# A fine-tuned model: a LoRA adapter artifact on a base (`import_adapter`).
LORA_WORKER = "hf-causal-lora"
BASE_OPTION = "base"  # a bundled model's name, or BASE_ARTIFACT + an artifact id
BASE_ARTIFACT = "artifact:"
BUNDLED_BASES = frozenset({"smollm2-135m"})  # the bundled models an adapter may sit on


def check_tuned_room(session: Session, tenant_id: str, *, jobs: int = 0) -> None:
    """Refuse (409) one more fine-tuned model of the tenant: it holds `bounds.tuned_models`
    with the `jobs` that may still make one.  Lock the tenant first (`repo.lock_tenant`):
    two transactions counting at once would each see room for one."""
    held = session.execute(
        select(func.count())
        .select_from(ModelRow)
        .join(DeploymentRow, DeploymentRow.model_id == ModelRow.id)
        .where(ModelRow.owner_tenant_id == tenant_id, DeploymentRow.worker == LORA_WORKER)
    ).scalar_one()
    if held + jobs >= bounds_of(session).tuned_models:
        waiting = f" and {jobs} fine-tuning jobs queued or running" if jobs else ""
        raise Conflict(
            f"The tenant holds {held} fine-tuned models{waiting}, the most "
            "BULKHEAD_TENANT_MAX_TUNED_MODELS allows: delete one (DELETE /v1/models/{model}) "
            "or wait for a job to end first."
        )


@dataclass(frozen=True, slots=True)
class ArtifactFile:
    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Artifact:
    id: str
    tenant_id: str
    model_name: str
    files: tuple[ArtifactFile, ...]
    created_at: datetime


def _object_id(artifact_id: str, seq: int) -> str:
    return f"{artifact_id}-{seq}"


def _artifact(rows: Sequence[ModelArtifactFileRow]) -> Artifact:
    first = rows[0]
    return Artifact(
        id=first.artifact_id,
        tenant_id=first.tenant_id,
        model_name=first.model_name,
        files=tuple(ArtifactFile(r.name, r.bytes, r.sha256) for r in rows),
        created_at=first.created_at,
    )


class ArtifactService:
    """A tenant's imported models; rotation is the keyring's (it re-wraps every blob)."""

    def __init__(self, db: Database, keyring: TenantKeyring):
        self.db, self.keyring = db, keyring
        self.blobs, self.kms = keyring.blobs, keyring.kms

    def import_model(
        self, tenant: Tenant, model_name: str, files: Sequence[tuple[str, bytes]]
    ) -> Artifact:
        """Encrypt the files, record them, and register the tenant's private model.

        One transaction: if anything fails, no row and no blob is left behind.
        """
        check_files(files)
        if not repo.MODEL_NAME.fullmatch(model_name):
            raise InvalidRequest("model name has invalid characters", param="model")

        def register(session: Session, artifact_id: str) -> None:
            self._register(session, tenant.id, model_name, artifact_id)

        return self._store(tenant.id, model_name, files, register)

    def import_adapter(
        self, tenant_id: str, model_name: str, base: str, files: Sequence[tuple[str, bytes]]
    ) -> Artifact:
        """Store a fine-tuned LoRA adapter and register `model_name`, the tenant's private model.

        `base` is a bundled model's name or ``artifact:<id>`` of the tenant's own
        imported model.  The files are checked and the config reduced to its LoRA
        settings (`runtime.worker.adapter_format`) first; then, in one transaction,
        the blobs, their rows and a LOCAL deployment of worker `LORA_WORKER`
        whose options name the adapter and the base.  On any failure nothing is left; a
        tenant at its bound of fine-tuned models gets a 409 (`check_tuned_room`).
        """
        try:
            checked = adapter_format.check_adapter(files)
        except adapter_format.AdapterFormatError as exc:
            raise InvalidRequest(f"The adapter was refused: {exc}.", param="adapter") from None
        if base.startswith(BASE_ARTIFACT):
            self.get(tenant_id, base.removeprefix(BASE_ARTIFACT))  # the tenant's own, or 404
        elif base not in BUNDLED_BASES:
            raise InvalidRequest(f"Unknown base model for an adapter: {base[:60]!r}.")

        def register(session: Session, artifact_id: str) -> None:
            # The file rows wait: flushed first, their key on the tenant's row would meet a
            # concurrent import's lock of that row (a deadlock on PostgreSQL).
            with session.no_autoflush:
                repo.lock_tenant(session, tenant_id)
                check_tuned_room(session, tenant_id)
            spec = repo.DeploymentSpec(DeploymentKind.LOCAL, worker=LORA_WORKER, timeout_s=120)
            endpoints = (Endpoint.CHAT, Endpoint.COMPLETIONS)
            text = f"Fine-tuned model (LoRA adapter {artifact_id} on {base})."
            _, deployment = repo.add_model(session, model_name, tenant_id, endpoints, spec, text)
            row = session.get(DeploymentRow, deployment.id)
            assert row is not None
            row.options = {OPTION: artifact_id, BASE_OPTION: base}

        return self._store(tenant_id, model_name, checked, register)

    def remove_adapter(self, tenant_id: str, artifact_id: str, model_name: str) -> None:
        """Undo `import_adapter`: the model (its deployment by cascade), the rows, the blobs."""
        with self.db.tenant_transaction(tenant_id) as session:
            count = len(self._rows(session, tenant_id, artifact_id))
            session.execute(
                delete(ModelArtifactFileRow).where(
                    ModelArtifactFileRow.tenant_id == tenant_id,
                    ModelArtifactFileRow.artifact_id == artifact_id,
                )
            )
            model = select(ModelRow.id).where(
                ModelRow.owner_tenant_id == tenant_id, ModelRow.name == model_name
            )
            session.execute(delete(DeploymentRow).where(DeploymentRow.model_id.in_(model)))
            session.execute(
                delete(ModelRow).where(
                    ModelRow.owner_tenant_id == tenant_id, ModelRow.name == model_name
                )
            )
            repo.bump_version(session)
        for seq in range(count):
            self.blobs.delete(tenant_id, KIND, _object_id(artifact_id, seq))

    def _store(
        self,
        tenant_id: str,
        model_name: str,
        files: Sequence[tuple[str, bytes]],
        register: Callable[[Session, str], None],
    ) -> Artifact:
        """Encrypt and record `files` as a new artifact, then `register` its model; one
        transaction, and the blobs written are deleted again if anything fails."""
        self.keyring.ensure(tenant_id)
        artifact_id = "art-" + secrets.token_hex(12)
        written: list[str] = []
        try:
            with self.db.tenant_transaction(tenant_id) as session:
                now = utcnow()
                rows = []
                for seq, (name, data) in enumerate(files):
                    object_id = _object_id(artifact_id, seq)
                    sealed = b"".join(
                        encrypt_stream(
                            [data], tenant_id=tenant_id, kind=KIND, object_id=object_id,
                            kms=self.kms,
                        )
                    )  # fmt: skip
                    self.blobs.put(tenant_id, KIND, object_id, sealed)
                    written.append(object_id)
                    rows.append(
                        ModelArtifactFileRow(
                            artifact_id=artifact_id,
                            seq=seq,
                            tenant_id=tenant_id,
                            model_name=model_name,
                            name=name,
                            bytes=len(data),
                            sha256=hashlib.sha256(data).hexdigest(),
                            created_at=now,
                        )
                    )
                session.add_all(rows)
                register(session, artifact_id)
        except BaseException:
            for object_id in written:
                self.blobs.delete(tenant_id, KIND, object_id)
            raise
        return _artifact(rows)

    def _register(
        self, session: Session, tenant_id: str, model_name: str, artifact_id: str
    ) -> None:
        spec = repo.DeploymentSpec(DeploymentKind.LOCAL, worker=WORKER, timeout_s=120)
        _, deployment = repo.add_model(
            session,
            model_name,
            tenant_id,
            (Endpoint.CHAT, Endpoint.COMPLETIONS),
            spec,
            f"Imported model (encrypted artifact {artifact_id}).",
        )
        row = session.get(DeploymentRow, deployment.id)
        assert row is not None
        row.options = {OPTION: artifact_id}

    def _rows(
        self, session: Session, tenant_id: str, artifact_id: str
    ) -> list[ModelArtifactFileRow]:
        query = (
            select(ModelArtifactFileRow)
            .where(
                ModelArtifactFileRow.tenant_id == tenant_id,
                ModelArtifactFileRow.artifact_id == artifact_id,
            )
            .order_by(ModelArtifactFileRow.seq)
        )
        rows = list(session.execute(query).scalars())
        if not rows:
            raise NotFound(f"No such model artifact: {artifact_id}")
        return rows

    def get(self, tenant_id: str, artifact_id: str) -> Artifact:
        with self.db.tenant_transaction(tenant_id) as session:
            return _artifact(self._rows(session, tenant_id, artifact_id))

    def load(self, tenant_id: str, artifact_id: str) -> list[tuple[str, bytearray]]:
        """Every file's plaintext, in memory, each checked against its recorded SHA-256.

        Each file is decrypted straight into one buffer (no per-segment copies)
        while a second thread hashes the segments already written: `hashlib`
        releases the GIL, so the check costs little wall time.  Raises
        `IntegrityFailure` (a `DecryptionFailed` for a blob that does not open)
        rather than return anything that fails a check.
        """
        artifact = self.get(tenant_id, artifact_id)
        loaded = []
        for seq, entry in enumerate(artifact.files):
            object_id = _object_id(artifact_id, seq)
            with (
                self.blobs.mapped(tenant_id, KIND, object_id) as sealed,
                _SideHasher() as hasher,
            ):
                plain = decrypt_stream_into(
                    sealed,
                    tenant_id=tenant_id,
                    kind=KIND,
                    object_id=object_id,
                    kms=self.kms,
                    on_segment=hasher.feed,
                )
            if not hmac.compare_digest(hasher.hexdigest(), entry.sha256):
                plain[:] = bytes(len(plain))
                log.error(
                    "model artifact %s file %r failed its SHA-256 check", artifact_id, entry.name
                )
                raise IntegrityFailure("A model file failed its integrity check.")
            loaded.append((entry.name, plain))
        return loaded


class _SideHasher:
    """SHA-256 of the segments fed to it, computed on its own thread."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._pending: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="artifact-sha256", daemon=True)

    def _run(self) -> None:
        while (segment := self._pending.get()) is not None:
            self._digest.update(segment)

    def feed(self, segment: memoryview) -> None:
        self._pending.put(segment)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def __enter__(self) -> _SideHasher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._pending.put(None)
        self._thread.join()
