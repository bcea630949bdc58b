"""What tenants and the audit log store: audit entries, checkpoints and keys, files,
storage usage, model artifact files, retained exchanges and hourly model usage."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from bulkhead.store.schema._base import (
    Base,
    UTCDateTime,
)


class AuditEntryRow(Base):
    """One leaf of the audit Merkle log: the canonical event bytes and their leaf hash.

    `idx` is the leaf index, assigned by the sequencer with no gaps and no
    duplicates; rows are never updated or deleted by the application.

    Every index here is one more B-tree page written (and fsynced) by every
    audit commit, so there are no more than the readers need (migration 0040):
    on SQLite `idx` is the rowid itself (`INTEGER PRIMARY KEY`, no separate
    key index), and `target_tenant_id`, set on platform actions alone, is
    indexed only where it is set.
    """

    __tablename__ = "audit_entries"
    idx: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )
    event_id: Mapped[str] = mapped_column(String(32), unique=True)
    tenant_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # The tenant a platform action acted on: the entry is in that tenant's view too.
    target_tenant_id: Mapped[str | None] = mapped_column(String(32))
    time: Mapped[float] = mapped_column(Float)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    body: Mapped[bytes] = mapped_column(LargeBinary)


TARGET_SET = "target_tenant_id IS NOT NULL"
"""The partial index's condition; `target_tenant_id = :t` implies it, so both backends use it."""
TARGET_INDEX = Index(
    "ix_audit_entries_target_tenant_id",
    AuditEntryRow.target_tenant_id,
    sqlite_where=text(TARGET_SET),
)


def add_postgresql_options() -> None:
    """Give the partial index its PostgreSQL condition (migration 0040 makes it on both).

    Not at import: SQLAlchemy loads a dialect's module (all of
    `sqlalchemy.dialects.postgresql`, 0.04-0.09 s) to check an option named for it,
    which a SQLite gateway never needs.  `Database` calls this when it opens a
    PostgreSQL store; the option is idempotent.
    """
    TARGET_INDEX.dialect_kwargs["postgresql_where"] = text(TARGET_SET)


class AuditCheckpointRow(Base):
    """A signed checkpoint (C2SP tlog-checkpoint signed note) of the first `size` leaves."""

    __tablename__ = "audit_checkpoints"
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The compact range the checkpoint was signed from (32 bytes a subtree root, largest
    # first): a starting sequencer resumes from it (migration 0039; None before).
    border: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class AuditKeyRow(Base):
    """Public verifier keys of checkpoint signers, kept after rotation so old checkpoints verify."""

    __tablename__ = "audit_keys"
    vkey: Mapped[str] = mapped_column(String(256), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class FileRow(Base):
    """An uploaded file's metadata; its content is an encrypted blob in the blob store."""

    __tablename__ = "files"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StorageUsageRow(Base):
    """A tenant's stored file bytes: the counter its storage quota is reserved against.

    Always equal to the sum of the tenant's `files.bytes`: both change in the
    same transaction, and an upload adds to it with a conditional UPDATE that
    cannot pass the quota (`store.files`).
    """

    __tablename__ = "storage_usage"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    used_bytes: Mapped[int] = mapped_column(BigInteger)


class ModelArtifactFileRow(Base):
    """One file of a tenant's imported model; its content is a streaming-AEAD blob.

    The blob's object id is ``<artifact_id>-<seq>`` under kind "model", and its
    SHA-256 (of the plaintext) is checked every time the file is loaded.
    """

    __tablename__ = "model_artifact_files"
    artifact_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RetainedExchangeRow(Base):
    """A retained prompt/response pair (tenants with retention `encrypted` only).

    Only metadata is here; the content is an envelope-encrypted blob of kind
    "exchange", deleted with the row when `expires_at` passes.
    """

    __tablename__ = "retained_exchanges"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


LATENCY_BOUNDS_MS = (100, 250, 500, 1000, 2500, 5000, 10000)
"""Upper bounds of the latency histogram's buckets; a last one, `lat_inf`, takes the rest."""


class UsageHourRow(Base):
    """A tenant's model calls in one UTC hour, per model, API key and refusal or error code.

    Written by the audit writer in the transaction of the events it counts
    (`store.usage`), so usage is exactly what the audit log holds: durable,
    and the same whichever replica reads it.  `key_id` is the API key's id
    ("session" or "oidc" for calls made with those credentials); `reason` is
    "" for calls that succeeded, else the refusal's or error's code.
    """

    __tablename__ = "usage_hours"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    successes: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    refusals: Mapped[int] = mapped_column(BigInteger)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    latency_ms_sum: Mapped[float] = mapped_column(Float)
    latency_ms_max: Mapped[float] = mapped_column(Float)
    lat_100: Mapped[int] = mapped_column(BigInteger)
    lat_250: Mapped[int] = mapped_column(BigInteger)
    lat_500: Mapped[int] = mapped_column(BigInteger)
    lat_1000: Mapped[int] = mapped_column(BigInteger)
    lat_2500: Mapped[int] = mapped_column(BigInteger)
    lat_5000: Mapped[int] = mapped_column(BigInteger)
    lat_10000: Mapped[int] = mapped_column(BigInteger)
    lat_inf: Mapped[int] = mapped_column(BigInteger)
