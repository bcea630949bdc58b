"""What the vector store API answers about a store and an attached file (`store.vectors`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from bulkhead.store.schema import VectorStoreFileRow, VectorStoreRow


@dataclass(frozen=True, slots=True)
class StoreInfo:
    id: str
    name: str
    model: str
    dimensions: int | None
    metadata: dict[str, str]
    generation: int
    created_at: datetime
    last_active_at: datetime
    usage_bytes: int = 0
    counts: dict[str, int] | None = None

    def openai(self) -> dict[str, object]:
        counts = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0}
        counts.update(self.counts or {})
        counts["total"] = sum(counts.values())
        return {
            "id": self.id,
            "object": "vector_store",
            "created_at": int(self.created_at.timestamp()),
            "name": self.name,
            "usage_bytes": self.usage_bytes,
            "file_counts": counts,
            "status": "in_progress" if counts["in_progress"] else "completed",
            "expires_after": None,
            "expires_at": None,
            "last_active_at": int(self.last_active_at.timestamp()),
            "metadata": self.metadata,
            "embedding_model": self.model,  # Bulkhead's own field
        }


@dataclass(frozen=True, slots=True)
class FileLink:
    store_id: str
    file_id: str
    status: str
    error_code: str | None
    error_message: str | None
    chunking: dict[str, object]
    attributes: dict[str, object]
    usage_bytes: int
    created_at: datetime

    def openai(self) -> dict[str, object]:
        error = None
        if self.error_code is not None:
            error = {"code": self.error_code, "message": self.error_message or ""}
        return {
            "id": self.file_id,
            "object": "vector_store.file",
            "usage_bytes": self.usage_bytes,
            "created_at": int(self.created_at.timestamp()),
            "vector_store_id": self.store_id,
            "status": self.status,
            "last_error": error,
            "chunking_strategy": self.chunking,
            "attributes": self.attributes,
        }


def store_info(
    row: VectorStoreRow, usage: int = 0, counts: dict[str, int] | None = None
) -> StoreInfo:
    return StoreInfo(
        row.id,
        row.name,
        row.model,
        row.dimensions,
        orjson.loads(row.metadata_json),
        row.generation,
        row.created_at,
        row.last_active_at,
        usage,
        counts,
    )


def file_link(row: VectorStoreFileRow) -> FileLink:
    return FileLink(
        row.store_id,
        row.file_id,
        row.status,
        row.error_code,
        row.error_message,
        orjson.loads(row.chunking),
        orjson.loads(row.attributes),
        row.usage_bytes,
        row.created_at,
    )
