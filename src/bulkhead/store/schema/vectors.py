"""Vector stores, their files and their sealed chunks (`store.vectors`, migration 0035).

Every row is tenant-owned (`tenant_id`, 0004's row-level security on
PostgreSQL).  Chunk text and vectors are never stored in the clear: a
`vector_store_chunks` row is one *segment* (up to `SEGMENT` chunks of one
file in one store) sealed under the tenant's KEK with associated data
(tenant, "vector-chunks", segment id), and the segment id names the store,
the file and the segment's place (`<store>/<file>/<n>`), so a segment copied
to another tenant, store, file or place fails to open.  The column is
declared sealed, so KEK rotation re-wraps it (`store.sealed.SealedColumns`)
without re-embedding anything.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from bulkhead.store.schema._base import Base, UTCDateTime, sealed


class VectorStoreRow(Base):
    """One vector store: its name, its embedding model, and a generation that changes with
    its chunks (a replica's in-memory index of an older generation is rebuilt)."""

    __tablename__ = "vector_stores"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    model: Mapped[str] = mapped_column(String(128))  # the embedding model of every chunk
    dimensions: Mapped[int | None] = mapped_column(Integer, nullable=True)
    metadata_json: Mapped[str] = mapped_column(Text)
    generation: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_active_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VectorStoreFileRow(Base):
    """A tenant's file attached to a store: how it is chunked and how far ingestion got."""

    __tablename__ = "vector_store_files"
    store_id: Mapped[str] = mapped_column(
        ForeignKey("vector_stores.id", ondelete="CASCADE"), primary_key=True
    )
    file_id: Mapped[str] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # Indexed with the store (below): every query names both, and a count of one store's
    # links walks only that store's (0041).
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    error_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(512), nullable=True)
    chunking: Mapped[str] = mapped_column(Text)  # the chunking strategy, as JSON
    attributes: Mapped[str] = mapped_column(Text)  # the file's attributes, as JSON
    usage_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # While `in_progress`: when the ingesting replica last said it is still at it (0037).
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


Index(
    "ix_vector_store_files_tenant_store", VectorStoreFileRow.tenant_id, VectorStoreFileRow.store_id
)


class VectorChunkRow(Base):
    """One sealed segment of a file's chunks in a store: text and vectors together."""

    __tablename__ = "vector_store_chunks"
    __table_args__ = (
        ForeignKeyConstraint(
            ["store_id", "file_id"],
            ["vector_store_files.store_id", "vector_store_files.file_id"],
            ondelete="CASCADE",
        ),
    )
    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # <store>/<file>/<n>
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    store_id: Mapped[str] = mapped_column(String(64), index=True)
    file_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    sealed_bytes: Mapped[int] = mapped_column(BigInteger)
    sealed: Mapped[bytes] = mapped_column(LargeBinary(), info=sealed("vector-chunks", "id"))
